"""One message per incident in real DAG runs (``airflow dags test``): a stale feed, a renamed column
and two quality failures on one dataset give ONE Slack message from the ``AlertGroupOperator``
task (quality held back by the stale feed and listed); the next day the same breaches are
de-duplicated; the repaired feed is one recovery; a silence from the command line holds the next
incident back and, expired, lets it out. The same group is one page that resolves itself
(one ``dedup_key``) and one email each way (real Slack webhook, PagerDuty Events API and SMTP servers
on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.notifiers.pagerduty import incident_key
from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import run_dag
from tests.servers import PagerDutyServer, SlackServer, SmtpServer

pytestmark = pytest.mark.e2e

WEBHOOK_TOKEN = "T0GRP0000/B0GRP0000/groupWebhookSecret97531"
ROUTING_KEY = "groupRoutingKeyPagerDuty0123456789"
SMTP_PASSWORD = "groupSmtpSecret24680"


@pytest.fixture
def slack_hook() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def pd_server() -> Iterator[PagerDutyServer]:
    server = PagerDutyServer(routing_keys={ROUTING_KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(login="alerts", password=SMTP_PASSWORD).start()
    yield server
    server.stop()


def fill(db: Path, *, newest: str, renamed: bool, bad_rows: bool) -> None:
    engine = sa.create_engine(f"sqlite:///{db}")
    amount = "amount_eur" if renamed else "amount"
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS events"))
        conn.execute(
            sa.text(f"CREATE TABLE events (id INTEGER, customer_id INTEGER, {amount} REAL, ts TIMESTAMP)")
        )
        rows = [
            {"id": i, "c": None if bad_rows and i < 5 else i, "a": 1.0, "ts": newest} for i in range(1, 21)
        ]
        if bad_rows:
            rows.append({"id": 999, "c": 1, "a": 1.0, "ts": newest})
        conn.execute(sa.text("INSERT INTO events VALUES (:id, :c, :a, :ts)"), rows)
    engine.dispose()


def test_one_message_per_run_and_dataset_dedup_then_one_recovery(
    airflow_db: Path, tmp_path: Path, slack_hook: SlackServer, pd_server: PagerDutyServer, smtp: SmtpServer
) -> None:
    db = tmp_path / "wh.db"
    dag_id = f"mlobs_group_{uuid.uuid4().hex[:8]}"
    dags = tmp_path / "dags"
    dags.mkdir()
    contract = tmp_path / "events.schema.json"
    contract.write_text(
        json.dumps(
            {
                "name": "events.schema",
                "expectations": [
                    {
                        "type": "expect_table_columns_to_match_set",
                        "kwargs": {"column_set": ["id", "customer_id", "amount", "ts"], "exact_match": False},
                    }
                ],
            }
        )
    )
    suite = tmp_path / "events.quality.json"
    suite.write_text(
        json.dumps(
            {
                "name": "events.quality",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}},
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "id", "min_value": 0, "max_value": 100},
                    },
                ],
            }
        )
    )
    body = f"""
        from datetime import UTC, datetime
        from airflow.sdk import DAG, CronDataIntervalTimetable
        from airflow_mlobs.notifiers import EmailNotifier, RetryPolicy, SlackWebhookNotifier
        from airflow_mlobs.notifiers.pagerduty import PagerDutyNotifier
        from airflow_mlobs.operators import (
            AlertGroupOperator, ExpectationSuiteOperator, FreshnessCheckOperator, SchemaCheckOperator,
        )

        fast = RetryPolicy(attempts=2, base_delay=0.1, timeout=5)
        common = dict(conn_id="wh", table="events", results_conn_id="mlobs_results", on_breach="continue")
        with DAG({dag_id!r}, schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
                 start_date=datetime(2026, 10, 1, tzinfo=UTC), catchup=False) as dag:
            checks = [
                FreshnessCheckOperator(task_id="fresh", timestamp_column="ts", max_age="12h", **common),
                SchemaCheckOperator(task_id="schema", contract={str(contract)!r}, **common),
                ExpectationSuiteOperator(task_id="quality", suite={str(suite)!r}, **common),
            ]
            checks >> AlertGroupOperator(
                task_id="alerts",
                results_conn_id="mlobs_results",
                notify=[
                    SlackWebhookNotifier(slack_webhook_conn_id="mlobs_hook", renotify_after=None, retry=fast),
                    PagerDutyNotifier(pagerduty_events_conn_id="oncall", retry=fast),
                    EmailNotifier(to=["oncall@example.com"], smtp_conn_id="mlobs_smtp", renotify_after=None,
                                  retry=fast),
                ],
            )
    """
    (dags / f"{dag_id}.py").write_text(textwrap.dedent(body))
    results_db = tmp_path / "results.db"
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(db)}),
        "AIRFLOW_CONN_MLOBS_RESULTS": json.dumps({"conn_type": "sqlite", "host": str(results_db)}),
        "AIRFLOW_CONN_MLOBS_HOOK": json.dumps(
            {"conn_type": "slackwebhook", "host": f"{slack_hook.url}/services", "password": WEBHOOK_TOKEN}
        ),
        "AIRFLOW_CONN_ONCALL": json.dumps(
            {"conn_type": "pagerduty_events", "password": ROUTING_KEY, "extra": {"base_url": pd_server.url}}
        ),
        "AIRFLOW_CONN_MLOBS_SMTP": json.dumps(smtp.connection_fields(from_email="mlobs@example.com")),
    }
    outputs: list[str] = []

    def silence(*args: str) -> None:
        """The real command line against the results history the tasks use."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow_mlobs", "silence", *args, "--url", f"sqlite:///{results_db}"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def run(day: str) -> list[str]:
        before = len(slack_hook.received())
        outcome = run_dag(airflow_db, dags, dag_id, day, env)
        outputs.append(outcome.output)
        assert outcome.states.get("alerts") == "success", outcome.output[-4000:]
        return [json.dumps(r.json) for r in slack_hook.received()[before:]]

    # Day 1: newest row 18 h old (limit 12 h), "amount" renamed, null customers and an id of 999.
    fill(db, newest="2026-11-01 06:00:00", renamed=True, bad_rows=True)
    (message,) = run("2026-11-02")
    assert "group on wh:events" in message, message
    assert "freshness: " in message and "schema: " in message, message
    assert "also failing, explained by the stale feed: quality" in message, message
    assert "quality: " not in message, message  # inhibited: listed, its findings not sent
    # a button per breached check's own result page, none for the inhibited one
    buttons = {b["text"]["text"]: b["url"] for b in json.loads(message)["blocks"][-1]["elements"]}
    assert {"freshness (fresh) report", "schema report"} <= set(buttons), buttons
    assert "task_id=fresh" in buttons["freshness (fresh) report"] and "quality report" not in buttons

    # Day 2: the same breaches (the feed still 18 h old at the next midnight): nothing sent.
    fill(db, newest="2026-11-02 06:00:00", renamed=True, bad_rows=True)
    assert run("2026-11-03") == []

    # Day 3: repaired: one recovery message for the group.
    fill(db, newest="2026-11-03 23:00:00", renamed=False, bad_rows=False)
    (recovery,) = run("2026-11-04")
    assert "Recovered: group on wh:events" in recovery, recovery

    # The same incident through PagerDuty: one page on day 1, nothing on day 2, resolved on day 3,
    # all under the group's one dedup_key; and by email one alert and one recovery.
    key = incident_key(dag_id=dag_id, task_id="alerts", check="group", dataset="wh:events")
    trigger, resolve = pd_server.events()
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == key
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "wh:events"
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == key
    assert pd_server.alerts == {key: "resolved"} and pd_server.opened == {key: 1}
    subjects = [str(e.message["Subject"]).strip() for e in smtp.envelopes]
    assert len(subjects) == 2, subjects
    assert "group on wh:events" in subjects[0] and "Recovered" in subjects[1], subjects
    first_mail = smtp.envelopes[0].message.get_body(("plain",)).get_content()
    assert "explained by the stale feed: quality" in first_mail, first_mail

    # Day 4: the same breaches again, but the on-call engineer silenced freshness and schema from
    # the command line: stored, recorded as silenced, nothing sent on any channel.
    for check in ("freshness", "schema"):
        silence(
            "add",
            "--dataset",
            "wh:events",
            "--check",
            check,
            "--for",
            "7d",
            "--reason",
            "feed fix",
            "--by",
            "ana",
        )
    fill(db, newest="2026-11-04 06:00:00", renamed=True, bad_rows=True)
    assert run("2026-11-05") == []
    assert len(pd_server.events()) == 2 and len(smtp.envelopes) == 2
    engine = sa.create_engine(f"sqlite:///{results_db}")
    store = ResultsStore(engine)
    (held,) = [s for s in store.history(dag_id=dag_id, task_id="alerts") if s.result.window_end.day == 5]
    assert held.result.metrics["silenced_only"], held.result.summary
    assert "silenced: freshness (silence #1" in held.result.summary, held.result.summary
    kinds = {d.kind for d in store.deliveries(held.result, held.run)}
    engine.dispose()
    assert kinds == {"silenced"}, kinds

    # Day 5: the silences expired, the breaches persist: one alert on each channel, a new page.
    silence("expire", "1")
    silence("expire", "2")
    fill(db, newest="2026-11-05 06:00:00", renamed=True, bad_rows=True)
    (again,) = run("2026-11-06")
    assert "group on wh:events" in again and "silenced" not in again, again
    assert [e["event_action"] for e in pd_server.events()] == ["trigger", "resolve", "trigger"]
    assert len(smtp.envelopes) == 3

    logs = "\n".join(outputs)
    stored = results_db.read_bytes().decode("utf-8", "replace")
    for secret in (WEBHOOK_TOKEN, ROUTING_KEY, SMTP_PASSWORD):
        leaks = [line for line in logs.splitlines() if secret in line and "MaskSecret(" not in line]
        assert not leaks, secret
        assert secret not in stored
