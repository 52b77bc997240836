"""The reduced label table in a real Airflow DAG run: ``LabelTableOperator`` builds it, then the
performance check joins it (``reduced_labels_table="auto"``) and judges exactly as the check that
joins the label table (``None``); a check with an older cut-off (a backfill) falls back and says why.
A second run of the upkeep, after new labels, refreshes only their ids."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_performance_in_dags import _load

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CHECK = """
    {task_id} = PerformanceCheckOperator(
        task_id="{task_id}",
        conn_id="wh",
        predictions_table="{schema}.predictions",
        labels_table="{schema}.labels",
        predicted_column="predicted_class",
        score_column="score",
        segment_column="channel",
        label_delay="7d",
        baseline={{"accuracy": 0.85}},
        max_drop=(0.02, 0.05),
        min_label_coverage=0.8,
        on_breach="continue",
        reduced_labels_table={reduced},{extra}
    )
"""


def _rounded(value: Any) -> Any:
    """``value`` with every float to 10 significant digits (nested dicts and lists)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_label_table_operator_feeds_the_performance_check(
    airflow_db: Path, tmp_path: Path, pg_engine: sa.Engine, pg_schema: str
) -> None:
    _load(pg_engine, pg_schema)
    with pg_engine.begin() as conn:  # every label at or before the run's cut-off (2026-11-09)
        conn.execute(sa.text(f"DELETE FROM \"{pg_schema}\".labels WHERE labelled_at > '2026-11-09'"))
    checks = "".join(
        CHECK.format(task_id=name, schema=pg_schema, reduced=reduced, extra=extra)
        for name, reduced, extra in (
            ("reduced", '"auto"', ""),
            ("full", "None", ""),
            ("backfill", '"auto"', '\n        label_cutoff="2026-11-03",'),
        )
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "label_table_dag.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import UTC, datetime
            from airflow.sdk import DAG, CronDataIntervalTimetable
            from airflow_mlobs.operators import LabelTableOperator, PerformanceCheckOperator

            with DAG(
                "mlobs_label_table",
                schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
                start_date=datetime(2026, 10, 1, tzinfo=UTC),
                catchup=False,
            ):
                upkeep = LabelTableOperator(
                    task_id="labels_reduced",
                    conn_id="wh",
                    labels_table="{pg_schema}.labels",
                )
            """
        )
        + checks
        + "    upkeep >> [reduced, full, backfill]\n"
    )
    env = {"AIRFLOW_CONN_WH": json.dumps(pg_connection_fields())}
    outcome = run_dag(airflow_db, dags, "mlobs_label_table", "2026-11-09", env)
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert set(outcome.states.values()) == {"success"}, outcome.states

    upkeep = outcome.xcoms["labels_reduced"]
    assert upkeep["check"] == "label_table" and upkeep["status"] == "pass", upkeep["summary"]
    assert (
        upkeep["metrics"]["action"] == "rebuilt" and "no reduced label table" in upkeep["metrics"]["reason"]
    )
    assert upkeep["metrics"]["reduced_table"] == f"{pg_schema}.labels_reduced"

    reduced, full, backfill = (outcome.xcoms[name] for name in ("reduced", "full", "backfill"))
    source = reduced["metrics"]["label_source"]
    assert source["reduced_table"] == f"{pg_schema}.labels_reduced", source
    assert f"labels from the reduced table {pg_schema}.labels_reduced" in reduced["summary"]
    assert "label_source" not in full["metrics"]
    assert reduced["status"] == full["status"] == "fail"
    same = {k: v for k, v in reduced["metrics"].items() if k != "label_source"}
    assert _rounded(same) == _rounded(full["metrics"])  # sums added in parallel: another order
    assert backfill["metrics"]["label_source"]["reduced_table"] is None
    assert "before the reduced table's watermark" in backfill["metrics"]["label_source"]["reason"]
    assert "reduced table not used" in backfill["summary"]

    # new labels (a correction of prediction 1, later than every label): the next upkeep refreshes
    # only that id
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO \"{pg_schema}\".labels VALUES (1, 0, '2026-11-09 00:00+00')"))
    again = run_dag(airflow_db, dags, "mlobs_label_table", "2026-11-10", env)
    assert again.returncode == 0, again.output[-4000:]
    metrics = again.xcoms["labels_reduced"]["metrics"]
    assert metrics["action"] == "refreshed" and metrics["ids_recomputed"] == 1, metrics
