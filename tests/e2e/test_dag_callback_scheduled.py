"""A DAG-level ``on_failure_callback`` under a real scheduler (LocalExecutor, API server, DAG
processor): Airflow 3 runs DAG callbacks in the DAG processor, which ``dag.test()`` skips, so only a
real deployment shows what the notifier receives there. The message must name each failed check
with its stored result, read from the results history, and never say "unknown error"."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.scheduler_services import local_deployment
from tests.servers import SlackServer

pytestmark = pytest.mark.e2e
WEBHOOK_TOKEN = "T000/B000/dagcallbacksecret"
DAG = """
from datetime import UTC, datetime

from airflow.sdk import DAG

from airflow_mlobs.notifiers import SlackWebhookNotifier
from airflow_mlobs.operators import FreshnessCheckOperator

notifier = SlackWebhookNotifier(slack_webhook_conn_id="mlobs_hook", results_conn_id="mlobs_results")
with DAG(
    "mlobs_dag_callback",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    on_failure_callback=notifier,
):
    common = dict(conn_id="wh", timestamp_column="ts", max_age="6h", results_conn_id="mlobs_results")
    FreshnessCheckOperator(task_id="stale_feed", table="stale_events", **common)
    FreshnessCheckOperator(task_id="fresh_feed", table="fresh_events", **common)
"""


def test_the_dag_processor_sends_the_failed_checks_stored_results(tmp_path: Path) -> None:
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
    (dags / "callback.py").write_text(textwrap.dedent(DAG))
    slack = SlackServer().start()
    try:
        env = {
            "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
            "AIRFLOW_CONN_MLOBS_RESULTS": json.dumps(
                {"conn_type": "sqlite", "host": str(tmp_path / "results.db")}
            ),
            "AIRFLOW_CONN_MLOBS_HOOK": json.dumps(
                {"conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": WEBHOOK_TOKEN}
            ),
            "GX_ANALYTICS_ENABLED": "false",
        }
        started = time.monotonic()
        with local_deployment(tmp_path, dags, env) as airflow:
            airflow.wait_for_dags(["mlobs_dag_callback"])
            run = airflow.trigger("mlobs_dag_callback", logical_date="2026-11-26T00:00:00+00:00")
            finished = airflow.wait_for_run("mlobs_dag_callback", run["dag_run_id"])
            assert finished.state == "failed"
            states = airflow.task_states("mlobs_dag_callback", run["dag_run_id"])
            assert states == {"stale_feed": "failed", "fresh_feed": "success"}, states
            # The DAG processor runs the callback after the run is marked failed.
            airflow.wait(lambda: bool(slack.received()), 180, "the DAG callback's Slack message")
        print(f"scheduled DAG-callback test took {time.monotonic() - started:.1f}s")
        (request,) = slack.received()
    finally:
        slack.stop()
    text = json.dumps(request.json)
    body = request.json["blocks"][1]["text"]["text"]
    assert f"DAG run mlobs_dag_callback / {run['dag_run_id']} failed: 1 failed task(s)" in body, body
    assert "- stale_feed: FAIL freshness: wh:stale_events is stale" in body, body
    assert "fresh_feed" not in body and "unknown error" not in text
    assert WEBHOOK_TOKEN not in text and "dagcallbacksecret" not in text
