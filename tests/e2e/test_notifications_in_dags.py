"""Notifications from check operators in real Airflow DAG runs (``airflow dags test``) over
consecutive daily intervals: one message per new breach, silence while it persists, an escalation
or a "got worse" alert, and a recovery, on a Slack webhook and by email (real HTTP and SMTP servers
on 127.0.0.1, reached from the Airflow subprocess); on Slack's Web API, one thread per incident
(the follow-ups and the recovery as replies, the parent edited to say RESOLVED)."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import Delivery, ResultsStore
from tests.e2e.airflow_runner import DagRunOutcome, run_dag
from tests.servers import SlackServer, SmtpServer

pytestmark = pytest.mark.e2e

WEBHOOK_TOKEN = "T0E2E0000/B0E2E0000/e2eWebhookSecret13579"
SMTP_PASSWORD = "e2eSmtpSecret-24680"
BOT_TOKEN = "xoxb-e2e0-1111-e2eBotSecret97531"


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(login="alerts", password=SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """``events`` with one row per chosen timestamp; a run at D judges the newest row at or before D."""
    return tmp_path / "wh.db"


def fill(db: Path, timestamps: list[str]) -> None:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER, ts TIMESTAMP)"))
        conn.execute(
            sa.text("INSERT INTO events VALUES (:id, :ts)"),
            [{"id": i, "ts": ts} for i, ts in enumerate(timestamps)],
        )
    engine.dispose()


class Scenario:
    """A DAG with one freshness check notifying a Slack webhook (warn and up, escalating after three
    windows) and on-call email (fail and up), run day after day; with ``web_api`` also Slack's Web
    API (channel ``#ml-alerts`` on the same server, its bot token checked)."""

    def __init__(
        self,
        airflow_home: Path,
        tmp_path: Path,
        slack: SlackServer,
        smtp: SmtpServer,
        db: Path,
        *,
        web_api: bool = False,
    ) -> None:
        self.airflow_home = airflow_home
        self.slack = slack
        self.smtp = smtp
        self.dag_id = f"mlobs_notify_{uuid.uuid4().hex[:8]}"
        self.dags = tmp_path / "dags"
        self.results_db = tmp_path / "results.db"
        self.env = {
            "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(db)}),
            "AIRFLOW_CONN_MLOBS_RESULTS": json.dumps({"conn_type": "sqlite", "host": str(self.results_db)}),
            "AIRFLOW_CONN_MLOBS_HOOK": json.dumps(
                {"conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": WEBHOOK_TOKEN}
            ),
            "AIRFLOW_CONN_MLOBS_SMTP": json.dumps(smtp.connection_fields(from_email="mlobs@example.com")),
            "AIRFLOW_CONN_MLOBS_SLACK_API": json.dumps(
                {"conn_type": "slack", "password": BOT_TOKEN, "extra": {"base_url": f"{slack.url}/api/"}}
            ),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        }
        slack.tokens = {BOT_TOKEN}
        web_api_notifier = (
            """
                        SlackApiNotifier(
                            slack_conn_id="mlobs_slack_api",
                            channel="#ml-alerts",
                            renotify_after=None,
                            retry=FAST,
                        ),"""
            if web_api
            else ""
        )
        self.dags.mkdir(parents=True, exist_ok=True)
        body = f"""
            from datetime import UTC, datetime
            from airflow.sdk import DAG, CronDataIntervalTimetable
            from airflow_mlobs.notifiers import EmailNotifier, RetryPolicy, SlackApiNotifier, SlackWebhookNotifier
            from airflow_mlobs.operators import FreshnessCheckOperator

            FAST = RetryPolicy(attempts=2, base_delay=0.1, timeout=5)
            with DAG(
                {self.dag_id!r},
                schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
                start_date=datetime(2026, 10, 1, tzinfo=UTC),
                catchup=False,
            ) as dag:
                FreshnessCheckOperator(
                    task_id="events_fresh",
                    conn_id="wh",
                    table="events",
                    timestamp_column="ts",
                    warn_after="6h",
                    max_age="12h",
                    results_conn_id="mlobs_results",
                    on_breach="continue",
                    notify=[
                        SlackWebhookNotifier(
                            slack_webhook_conn_id="mlobs_hook",
                            min_severity="warn",
                            escalate_after=3,
                            renotify_after=None,
                            retry=FAST,
                        ),
                        EmailNotifier(
                            to=["oncall@example.com"],
                            smtp_conn_id="mlobs_smtp",
                            min_severity="fail",
                            renotify_after=None,
                            retry=FAST,
                        ),{web_api_notifier}
                    ],
                )
        """
        (self.dags / f"{self.dag_id}.py").write_text(textwrap.dedent(body))
        self.outputs: list[str] = []

    def run(self, day: str) -> tuple[list[str], list[str]]:
        """Run the DAG for ``day``; returns the Slack titles and email subjects this run sent."""
        slack_before, smtp_before = len(self.slack.received()), len(self.smtp.envelopes)
        outcome: DagRunOutcome = run_dag(self.airflow_home, self.dags, self.dag_id, day, self.env)
        self.outputs.append(outcome.output)
        assert outcome.states == {"events_fresh": "success"}, outcome.output[-4000:]
        webhook = [r for r in self.slack.received()[slack_before:] if not r.path.startswith("/api/")]
        titles = [r.json["blocks"][0]["text"]["text"] for r in webhook]
        for request in webhook:
            assert request.path == f"/services/{WEBHOOK_TOKEN}"
        # A long subject is folded right after "Subject:"; the space that unfolding leaves in front
        # carries no meaning (RFC 5322 field bodies), so it is stripped.
        subjects = [str(e.message["Subject"]).strip() for e in self.smtp.envelopes[smtp_before:]]
        return titles, subjects

    def deliveries(self) -> dict[str, list[Delivery]]:
        """The deliveries recorded on each stored result, by window end date."""
        engine = sa.create_engine(f"sqlite:///{self.results_db}")
        store = ResultsStore(engine)
        found = {
            f"{s.result.window_end:%Y-%m-%d}": store.deliveries(s.result, s.run)
            for s in store.history(dag_id=self.dag_id)
        }
        engine.dispose()
        return found

    def assert_no_secrets(self) -> None:
        logs = "\n".join(self.outputs)
        log_dir = self.airflow_home / "logs" / f"dag_id={self.dag_id}"
        if log_dir.exists():
            logs += "\n".join(p.read_text(errors="replace") for p in log_dir.rglob("*") if p.is_file())
        assert "Sending a request - url:" in logs, "DEBUG logging was not on in the runs"
        stored = self.results_db.read_bytes().decode("utf-8", "replace")
        for secret in (WEBHOOK_TOKEN, SMTP_PASSWORD, BOT_TOKEN):
            # Airflow's own supervisor logs, at DEBUG, the request by which the task asks it to
            # mask the connection's password, secret included: Airflow's doing, not this package's.
            leaks = [line for line in logs.splitlines() if secret in line and "msg=MaskSecret(" not in line]
            assert not leaks, "\n".join(line[:300] for line in leaks)
            assert secret not in stored


def test_breach_is_sent_once_escalated_on_the_third_window_then_recovered(
    airflow_db: Path, tmp_path: Path, slack: SlackServer, smtp: SmtpServer, warehouse: Path
) -> None:
    # Judged at midnight: 18 h, 18 h and 18 h old (fail, limit 12 h), then 1 h old (pass).
    fill(
        warehouse,
        ["2026-11-01 06:00:00", "2026-11-02 06:00:00", "2026-11-03 06:00:00", "2026-11-04 23:00:00"],
    )
    scenario = Scenario(airflow_db, tmp_path, slack, smtp, warehouse)
    window = "(2026-11-01 00:00 to 2026-11-02 00:00 UTC)"

    titles, subjects = scenario.run("2026-11-02")
    assert titles == [f"FAIL: freshness on wh:events {window}"]
    assert subjects == titles
    (email,) = smtp.envelopes
    assert email.rcpt_tos == ["oncall@example.com"] and email.mail_from == "mlobs@example.com"
    body = email.message.get_body(preferencelist=("plain",))
    assert body is not None and "wh:events is stale: newest row 18h old (limit 12h)" in body.get_content()

    assert scenario.run("2026-11-03") == ([], [])

    titles, subjects = scenario.run("2026-11-04")
    assert titles == [
        "Escalation (3 windows in a row): FAIL: freshness on wh:events (2026-11-03 00:00 to 2026-11-04 00:00 UTC)"
    ]
    assert subjects == []

    titles, subjects = scenario.run("2026-11-05")
    recovered = "Recovered: freshness on wh:events (2026-11-04 00:00 to 2026-11-05 00:00 UTC)"
    assert titles == [recovered]
    assert subjects == [recovered]

    slack_channel, email_channel = "slack-webhook:mlobs_hook", "email:oncall@example.com"
    assert scenario.deliveries() == {
        "2026-11-02": [Delivery(slack_channel, "alert", True, 1), Delivery(email_channel, "alert", True, 1)],
        "2026-11-03": [],
        "2026-11-04": [Delivery(slack_channel, "escalation", True, 1)],
        "2026-11-05": [
            Delivery(slack_channel, "recovery", True, 1),
            Delivery(email_channel, "recovery", True, 1),
        ],
    }
    scenario.assert_no_secrets()


def test_warning_goes_to_slack_and_the_worse_breach_to_both_channels(
    airflow_db: Path, tmp_path: Path, slack: SlackServer, smtp: SmtpServer, warehouse: Path
) -> None:
    # Judged at midnight: 8 h old (warn after 6 h), 16 h old (fail after 12 h), 2 h old (pass).
    fill(warehouse, ["2026-11-01 16:00:00", "2026-11-02 08:00:00", "2026-11-03 22:00:00"])
    scenario = Scenario(airflow_db, tmp_path, slack, smtp, warehouse, web_api=True)

    titles, subjects = scenario.run("2026-11-02")
    assert titles == ["WARN: freshness on wh:events (2026-11-01 00:00 to 2026-11-02 00:00 UTC)"]
    assert subjects == []
    assert (
        slack.received()[0]
        .json["blocks"][1]["text"]["text"]
        .startswith(":warning: wh:events is getting stale")
    )

    titles, subjects = scenario.run("2026-11-03")
    worse = "FAIL: freshness on wh:events (2026-11-02 00:00 to 2026-11-03 00:00 UTC)"
    assert titles == [worse]
    assert subjects == [worse]

    titles, subjects = scenario.run("2026-11-04")
    recovered = "Recovered: freshness on wh:events (2026-11-03 00:00 to 2026-11-04 00:00 UTC)"
    assert titles == [recovered]
    assert subjects == [recovered]
    assert len(slack.received("/services/")) == 3 and len(smtp.envelopes) == 2

    # The Web API: one thread. The warning opened it; the worse breach and the recovery replied in
    # it, and the parent (still headed by the warning) now says RESOLVED. The webhook stayed flat.
    (parent,) = slack.parents("#ml-alerts")
    assert parent.header == "WARN: freshness on wh:events (2026-11-01 00:00 to 2026-11-02 00:00 UTC)"
    assert [reply.header for reply in slack.thread(parent)] == [worse, recovered]
    assert ":white_check_mark: RESOLVED at 2026-11-04 00:00 UTC after 2 runs" in parent.body
    assert parent.edits == 2
    assert [r.path for r in slack.received("/api/")] == [
        "/api/chat.postMessage",
        *["/api/chat.postMessage", "/api/chat.update"] * 2,
    ]
    api = "slack:#ml-alerts"
    assert {day: [d for d in found if d.channel == api] for day, found in scenario.deliveries().items()} == {
        "2026-11-02": [Delivery(api, "alert", True, 1)],
        "2026-11-03": [Delivery(api, "alert", True, 1)],
        "2026-11-04": [Delivery(api, "recovery", True, 1)],
    }
    scenario.assert_no_secrets()
