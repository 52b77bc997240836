"""The notifiers' "Report" button: the task instance's result page in the Airflow UI, through the
real Slack (HTTP) and SMTP servers the notifier tests use."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_mlobs.exceptions import CheckBreachError
from airflow_mlobs.notifiers import EmailNotifier, SlackWebhookNotifier
from airflow_mlobs.store import ResultsStore
from tests.integration.test_notifiers import (  # noqa: F401  (fixtures)
    FAST,
    LOG_URL,
    RUN,
    drift_result,
    send,
    smtp,
    smtp_conn,
    webhook_conn,
)
from tests.servers import SlackServer, SmtpServer

BASE = "https://airflow.example.com/prod"
RESULT_PAGE = f"{BASE}/mlobs/result?dag_id=ml&run_id=scheduled__2026-11-05T00%3A00%3A00%2B00%3A00&task_id=drift&map_index=2"


@dataclass
class RunningTi:
    """What the notifiers read of a running task instance: log URL, ids, run id and map index."""

    log_url: str = LOG_URL
    dag_id: str = "ml"
    task_id: str = "drift"
    run_id: str = "scheduled__2026-11-05T00:00:00+00:00"
    map_index: int = 2


@pytest.fixture(autouse=True)
def base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE + "/")


def buttons(server: SlackServer) -> list[dict[str, Any]]:
    (request,) = server.received()
    actions = [b for b in request.json["blocks"] if b["type"] == "actions"]
    return list(actions[0]["elements"]) if actions else []


def test_slack_report_button_opens_the_result_page(
    slack: SlackServer,
    webhook_conn: str,  # noqa: F811
    store: ResultsStore,
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    assert send(notifier, drift_result(), store, {"ti": RunningTi()}) == "alert"
    assert buttons(slack) == [
        {"type": "button", "text": {"type": "plain_text", "text": "Task log"}, "url": LOG_URL},
        {"type": "button", "text": {"type": "plain_text", "text": "Report"}, "url": RESULT_PAGE},
    ]


def test_an_explicit_report_url_wins(
    slack: SlackServer,
    webhook_conn: str,  # noqa: F811
    store: ResultsStore,
) -> None:
    notifier = SlackWebhookNotifier(
        slack_webhook_conn_id=webhook_conn, retry=FAST, report_url="https://reports.example.com/r.html"
    )
    assert send(notifier, drift_result(), store, {"ti": RunningTi()}) == "alert"
    assert buttons(slack)[1]["url"] == "https://reports.example.com/r.html"


def test_email_links_the_result_page(
    smtp: SmtpServer,  # noqa: F811
    smtp_conn: str,  # noqa: F811
    store: ResultsStore,
) -> None:
    notifier = EmailNotifier(to="oncall@example.com", smtp_conn_id=smtp_conn, retry=FAST)
    assert send(notifier, drift_result(), store, {"ti": RunningTi()}) == "alert"
    (envelope,) = smtp.envelopes
    parts = {p.get_content_type(): p.get_content() for p in envelope.message.iter_parts()}
    assert f"Report: {RESULT_PAGE}" in parts["text/plain"]
    assert f"<a href='{html.escape(RESULT_PAGE)}'>Report</a>" in parts["text/html"]


def test_failure_callback_links_the_result_page_only_for_a_check_failure(
    slack: SlackServer,
    webhook_conn: str,  # noqa: F811
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    notifier.notify({"ti": RunningTi(), "exception": CheckBreachError(drift_result())})
    assert [b["text"]["text"] for b in buttons(slack)] == ["Task log", "Report"]
    slack.requests.clear()
    notifier.notify({"ti": RunningTi(), "exception": ValueError("boom")})
    assert [b["text"]["text"] for b in buttons(slack)] == ["Task log"]


def test_unchanged_run_without_run_id_has_no_report(
    slack: SlackServer,
    webhook_conn: str,  # noqa: F811
    store: ResultsStore,
) -> None:
    @dataclass
    class BareTi:
        log_url: str = LOG_URL

    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    assert send(notifier, drift_result(), store, {"ti": BareTi()}) == "alert"
    assert [b["text"]["text"] for b in buttons(slack)] == ["Task log"]
    assert RUN.task_id == "drift"
