"""Continued breaches are marked in the grid: a task-instance note, in a real Airflow DAG run."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.breach_notes import breach_note
from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_checks_in_dags import env_for, warehouse_db, write_dag  # noqa: F401

pytestmark = pytest.mark.e2e
DAY = "2026-11-26"
PLUGIN = """
from airflow.plugins_manager import AirflowPlugin

from airflow_mlobs import breach_notes


class BreachNotesOnly(AirflowPlugin):
    # The listener alone, as the ML observability plugin registers it.
    name = "mlobs_breach_notes_test"
    listeners = [breach_notes]
"""


def notes(airflow_home: Path, dag_id: str) -> dict[str, tuple[str, str | None]]:
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT ti.task_id, ti.state, n.content FROM task_instance ti "
                "LEFT JOIN task_instance_note n ON n.ti_id = ti.id WHERE ti.dag_id = :dag"
            ),
            {"dag": dag_id},
        ).all()
    engine.dispose()
    return {str(task): (str(state), content) for task, state, content in rows}


def test_a_continued_breach_gets_a_note_the_grid_shows(
    airflow_db: Path,
    tmp_path: Path,
    warehouse_db: Path,  # noqa: F811
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mlobs_breach_notes_test.py").write_text(textwrap.dedent(PLUGIN))
    dags = tmp_path / "dags"
    write_dag(
        dags,
        "notes",
        """
        with DAG("mlobs_breach_notes", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            common = dict(conn_id="wh", timestamp_column="ts", max_age="6h")
            FreshnessCheckOperator(task_id="continued", table="stale_events", on_breach="continue", **common)
            FreshnessCheckOperator(task_id="failed", table="stale_events", **common)
            FreshnessCheckOperator(task_id="passed", table="fresh_events", on_breach="continue", **common)
            FreshnessCheckOperator(task_id="warned", table="fresh_events", warn_after="30m", on_breach="continue", **common)
        """,
    )
    env = env_for(warehouse_db)
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins)
    started = time.monotonic()
    outcome = run_dag(airflow_db, dags, "mlobs_breach_notes", DAY, env)
    print(f"breach notes DAG run took {time.monotonic() - started:.1f}s")
    assert outcome.states == {
        "continued": "success",
        "failed": "failed",
        "passed": "success",
        "warned": "success",
    }
    found = notes(airflow_db, "mlobs_breach_notes")
    _state, note = found["continued"]
    assert note is not None and note.startswith("ML observability: fail (on_breach='continue'): "), (
        found,
        [
            line
            for line in outcome.output.splitlines()
            if "breach" in line.lower() or "plugin" in line.lower()
        ],
    )
    assert "stale_events is stale" in note and outcome.xcoms["continued"]["summary"] in note
    # A failed task is red already; a pass and a warn are no breach.
    assert found["failed"][1] is None and found["passed"][1] is None and found["warned"][1] is None


def test_breach_note_only_for_fail_results() -> None:
    compact = {"schema_version": 1, "check": "drift", "status": "fail", "summary": "3 of 4 drifted"}
    assert breach_note(compact) == "ML observability: fail (on_breach='continue'): 3 of 4 drifted"
    assert breach_note({**compact, "status": "warn"}) is None
    assert breach_note({"status": "fail"}) is None  # not a check result
    assert breach_note("not json") is None
    long = breach_note({**compact, "summary": "x" * 5000})
    assert long is not None and len(long) == 1000 and long.endswith("...")
