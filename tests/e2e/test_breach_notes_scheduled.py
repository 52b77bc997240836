"""Breach notes under a real scheduler (LocalExecutor, API server, DAG processor): the listener runs
in the scheduler's own session and the note is what the REST API returns for the task instance."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.scheduler_services import local_deployment
from tests.e2e.test_breach_notes_in_dags import PLUGIN

pytestmark = pytest.mark.e2e
DAG = """
from datetime import UTC, datetime

from airflow.sdk import DAG

from airflow_mlobs.operators import FreshnessCheckOperator

with DAG("mlobs_notes_scheduled", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=UTC), catchup=False):
    common = dict(conn_id="wh", timestamp_column="ts", max_age="6h", on_breach="continue")
    FreshnessCheckOperator(task_id="continued", table="stale_events", **common)
    FreshnessCheckOperator(task_id="passed", table="fresh_events", **common)
"""


def test_the_scheduler_writes_the_note_and_the_rest_api_shows_it(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{warehouse}")
    with engine.begin() as conn:
        for table in ("fresh_events", "stale_events"):
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER, ts TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO fresh_events VALUES (1, '2026-11-25 23:00:00.000000')"))
        conn.execute(sa.text("INSERT INTO stale_events VALUES (1, '2026-11-20 08:00:00.000000')"))
    engine.dispose()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "notes.py").write_text(textwrap.dedent(DAG))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mlobs_breach_notes_test.py").write_text(textwrap.dedent(PLUGIN))
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "GX_ANALYTICS_ENABLED": "false",
    }
    started = time.monotonic()
    with local_deployment(tmp_path, dags, env) as airflow:
        airflow.wait_for_dags(["mlobs_notes_scheduled"])
        run = airflow.trigger("mlobs_notes_scheduled", logical_date="2026-11-26T00:00:00+00:00")
        run_id = run["dag_run_id"]
        finished = airflow.wait_for_run("mlobs_notes_scheduled", run_id)
        assert finished.state == "success"
        base = f"/api/v2/dags/mlobs_notes_scheduled/dagRuns/{run_id}/taskInstances"
        continued = airflow.api("GET", f"{base}/continued")
        passed = airflow.api("GET", f"{base}/passed")
    print(f"scheduled breach-notes test took {time.monotonic() - started:.1f}s")
    assert continued["state"] == "success" and passed["state"] == "success"
    assert continued["note"].startswith(
        "ML observability: fail (on_breach='continue'): wh:stale_events is stale"
    )
    assert passed["note"] is None
