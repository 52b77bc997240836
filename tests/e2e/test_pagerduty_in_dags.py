"""A page in real Airflow DAG runs (``airflow dags test``) over consecutive daily intervals: a stale
feed triggers one PagerDuty alert, the next day's same breach does not page again, and the day the
feed is fresh the alert resolves with the same ``dedup_key`` (a real Events API v2 server on
127.0.0.1, reached from the Airflow subprocess through a ``pagerduty_events`` connection)."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.notifiers.pagerduty import incident_key
from airflow_mlobs.store import Delivery, ResultsStore
from tests.e2e.airflow_runner import run_dag
from tests.servers import PagerDutyServer

pytestmark = pytest.mark.e2e

ROUTING_KEY = "e2eRoutingKeyPagerDuty0123456789"


@pytest.fixture
def pd_server() -> Iterator[PagerDutyServer]:
    server = PagerDutyServer(routing_keys={ROUTING_KEY}).start()
    yield server
    server.stop()


def test_a_page_triggers_once_and_resolves_with_one_dedup_key(
    airflow_db: Path, tmp_path: Path, pd_server: PagerDutyServer
) -> None:
    # Judged at midnight: 18 h old (fail, limit 12 h), 18 h old again, then 1 h old (pass).
    warehouse = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{warehouse}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER, ts TIMESTAMP)"))
        conn.execute(
            sa.text("INSERT INTO events VALUES (:id, :ts)"),
            [
                {"id": i, "ts": ts}
                for i, ts in enumerate(["2026-11-01 06:00:00", "2026-11-02 06:00:00", "2026-11-03 23:00:00"])
            ],
        )
    engine.dispose()
    dag_id = f"mlobs_pd_{uuid.uuid4().hex[:8]}"
    dags = tmp_path / "dags"
    dags.mkdir()
    results_db = tmp_path / "results.db"
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "AIRFLOW_CONN_MLOBS_RESULTS": json.dumps({"conn_type": "sqlite", "host": str(results_db)}),
        "AIRFLOW_CONN_ONCALL": json.dumps(
            {"conn_type": "pagerduty_events", "password": ROUTING_KEY, "extra": {"base_url": pd_server.url}}
        ),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
    }
    body = f"""
        from datetime import UTC, datetime
        from airflow.sdk import DAG, CronDataIntervalTimetable
        from airflow_mlobs.notifiers.base import RetryPolicy
        from airflow_mlobs.notifiers.pagerduty import PagerDutyNotifier
        from airflow_mlobs.operators import FreshnessCheckOperator

        with DAG(
            {dag_id!r},
            schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
            start_date=datetime(2026, 10, 1, tzinfo=UTC),
            catchup=False,
        ) as dag:
            FreshnessCheckOperator(
                task_id="events_fresh",
                conn_id="wh",
                table="events",
                timestamp_column="ts",
                max_age="12h",
                results_conn_id="mlobs_results",
                on_breach="continue",
                notify=[
                    PagerDutyNotifier(
                        pagerduty_events_conn_id="oncall",
                        retry=RetryPolicy(attempts=2, base_delay=0.1, timeout=5),
                    )
                ],
            )
    """
    (dags / f"{dag_id}.py").write_text(textwrap.dedent(body))

    outputs = []
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):
        outcome = run_dag(airflow_db, dags, dag_id, day, env)
        outputs.append(outcome.output)
        assert outcome.states == {"events_fresh": "success"}, outcome.output[-4000:]

    key = incident_key(dag_id=dag_id, task_id="events_fresh", check="freshness", dataset="wh:events")
    trigger, resolve = pd_server.events()  # nothing on 2026-11-03: the same breach
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == key
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "wh:events"
    assert trigger["payload"]["summary"].startswith(
        "FAIL: freshness on wh:events (2026-11-01 00:00 to 2026-11-02 00:00 UTC): "
    )
    report = {link["text"]: link["href"] for link in trigger["links"]}["Report"]
    assert f"dag_id={dag_id}" in report and "/mlobs/result?" in report
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
    assert pd_server.alerts == {key: "resolved"} and pd_server.opened == {key: 1}

    engine = sa.create_engine(f"sqlite:///{results_db}")
    store = ResultsStore(engine)
    deliveries = {
        f"{s.result.window_end:%Y-%m-%d}": store.deliveries(s.result, s.run)
        for s in store.history(dag_id=dag_id)
    }
    engine.dispose()
    channel = "pagerduty:oncall"
    assert deliveries == {
        "2026-11-02": [Delivery(channel, "alert", True, 1)],
        "2026-11-03": [],
        "2026-11-04": [Delivery(channel, "recovery", True, 1)],
    }

    logs = "\n".join(outputs)
    log_dir = airflow_db / "logs" / f"dag_id={dag_id}"
    if log_dir.exists():
        logs += "\n".join(p.read_text(errors="replace") for p in log_dir.rglob("*") if p.is_file())
    assert "PagerDuty accepted resolve" in logs
    # Airflow's supervisor logs, at DEBUG, the request by which the task asks it to mask the
    # connection's password, secret included: Airflow's doing, not this package's.
    leaks = [line for line in logs.splitlines() if ROUTING_KEY in line and "msg=MaskSecret(" not in line]
    assert not leaks, "\n".join(line[:300] for line in leaks)
    assert ROUTING_KEY not in results_db.read_bytes().decode("utf-8", "replace")
