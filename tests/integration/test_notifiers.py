"""The Slack and email notifiers against real servers on 127.0.0.1 (HTTP for Slack's webhook and Web
API, aiosmtpd for SMTP), through the Slack and SMTP providers' hooks, with a real results store."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.exceptions import CheckBreachError
from airflow_mlobs.notifiers import EmailNotifier, RetryPolicy, SlackApiNotifier, SlackWebhookNotifier
from airflow_mlobs.notifiers.base import CheckNotifier
from airflow_mlobs.store import Delivery, ResultsStore, RunKey
from tests.servers import Reply, SlackServer, SmtpServer, free_port

WEBHOOK_TOKEN = "T0MLOBS00/B0MLOBS00/whSecretToken1234567890"
BOT_TOKEN = "xoxb-1111-2222-botSecretToken0987654321"
SMTP_LOGIN = "alerts"
SMTP_PASSWORD = "smtpSecretPassw0rd-5678"
WRONG_PASSWORD = "smtpWrongPassw0rd-9999"
SECRETS = (WEBHOOK_TOKEN, BOT_TOKEN, SMTP_PASSWORD)
LOG_URL = "http://airflow.example.com/dags/ml/runs/r1/tasks/drift?try_number=1"
DAY = datetime(2026, 11, 5, tzinfo=UTC)
RUN = RunKey(dag_id="ml", task_id="drift", run_id="scheduled__2026-11-05")
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=5.0, timeout=5)

# The drifted features (method, effect, threshold); all fail, so the table orders them by size.
DRIFTED = [
    ("age", "wasserstein", 0.31, 0.1),
    ("income", "psi", 0.87, 0.25),
    ("tenure", "wasserstein", 0.12, 0.1),
    ("region", "chi2_cramers_v", 0.45, 0.2),
    ("clicks", "psi", 1.234567, 0.25),
    ("device", "jensenshannon", 0.29, 0.2),
    ("spend", "wasserstein", 0.62, 0.1),
]
TOP_FIVE = ["clicks", "income", "spend", "region", "age"]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(login=SMTP_LOGIN, password=SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def webhook_conn(slack: SlackServer, airflow_connection: Any) -> str:
    return str(
        airflow_connection(
            "mlobs_hook",
            conn_type="slackwebhook",
            host=f"{slack.url}/services",
            password=WEBHOOK_TOKEN,
        )
    )


@pytest.fixture
def api_conn(slack: SlackServer, airflow_connection: Any) -> str:
    return str(
        airflow_connection(
            "mlobs_slack_api",
            conn_type="slack",
            password=BOT_TOKEN,
            extra={"base_url": f"{slack.url}/api/"},
        )
    )


@pytest.fixture
def smtp_conn(smtp: SmtpServer, airflow_connection: Any) -> str:
    return str(airflow_connection("mlobs_smtp", **smtp.connection_fields()))


@dataclass
class FakeTi:
    """The little of a task instance the notifiers read: its log URL and ids."""

    log_url: str = LOG_URL
    dag_id: str = "ml"
    task_id: str = "drift"


def ctx(**extra: Any) -> Any:
    return {"ti": FakeTi(), **extra}


# --- results -----------------------------------------------------------------------------------


def drift_result(status: Status = Status.FAIL, day: int = 0, drifted: int = len(DRIFTED)) -> CheckResult:
    findings = [
        Finding(c, m, Status.FAIL if status is not Status.PASS else Status.PASS, value=v, threshold=t)
        for c, m, v, t in DRIFTED[:drifted]
    ]
    if status is not Status.PASS:
        findings.append(Finding("zip", "psi", Status.WARN, value=0.2, threshold=0.1, reason="warn"))
    findings += [Finding("score", "wasserstein", Status.PASS, value=0.01, threshold=0.1)]
    judged = len(findings)
    breached = sum(f.status is not Status.PASS for f in findings)
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=status,
        summary=f"wh:activity: {breached} of {judged} columns drifted",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        metrics={
            "drift_share": breached / judged,
            "columns_drifted": breached,
            "columns_judged": judged,
            "baseline": "activity/v3",
            "rows": 1200,
        },
        findings=tuple(findings),
    )


def schema_result() -> CheckResult:
    return CheckResult(
        check="schema",
        dataset="wh:customers",
        status=Status.FAIL,
        summary="wh:customers breaks contract customers v2: `email` missing",
        window_start=DAY - timedelta(days=1),
        window_end=DAY,
        findings=(
            Finding("email", "missing", Status.FAIL, value="absent", threshold="required", reason="missing"),
            Finding("id", "type", Status.PASS, value="INTEGER", threshold="INTEGER"),
        ),
    )


def table_rows(text: str) -> list[list[str]]:
    """The rows of the monospaced findings table (split on runs of 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip("`").strip().splitlines()]


def send(
    notifier: CheckNotifier, result: CheckResult, store: ResultsStore, context: Any = None
) -> str | None:
    store.save(result, RUN)
    return notifier.send_result(result, context if context is not None else ctx(), store, RUN)


# --- message content ---------------------------------------------------------------------------


def test_webhook_posts_block_kit_with_the_top_five_drifted_features(
    slack: SlackServer, webhook_conn: str, store: ResultsStore
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"

    (request,) = slack.received()
    assert request.path == f"/services/{WEBHOOK_TOKEN}"
    assert request.headers["content-type"].startswith("application/json")
    body = request.json
    title = "FAIL: drift on wh:activity (2026-11-04 00:00 to 2026-11-05 00:00 UTC)"
    assert body["text"] == f"{title}: {result.summary}"
    blocks = body["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context", "section", "actions"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": title, "emoji": True}
    assert blocks[1]["text"]["text"] == f":red_circle: {result.summary}"
    assert blocks[2]["elements"][0]["text"] == (
        "Drift share 89% (8 of 9 columns), baseline activity/v3, 1200 rows"
    )
    table = blocks[3]["text"]["text"]
    assert table.startswith("```") and table.endswith("```")
    rows = table_rows(table)
    assert rows[0] == ["subject", "metric", "value", "threshold", "status"]
    expected = {c: (m, v, t) for c, m, v, t in DRIFTED}
    assert [r[0] for r in rows[1:]] == TOP_FIVE
    for subject, method, value, threshold, status in rows[1:]:
        m, v, t = expected[subject]
        assert (method, value, threshold, status) == (m, f"{v:.4g}", f"{t:.4g}", "fail")
    assert "zip" not in table and "score" not in table
    assert blocks[4]["elements"] == [
        {"type": "button", "text": {"type": "plain_text", "text": "Task log"}, "url": LOG_URL}
    ]
    assert store.deliveries(result, RUN) == [Delivery("slack-webhook:mlobs_hook", "alert", True, 1, None)]


def test_webhook_without_a_task_instance_has_no_link_button(
    slack: SlackServer, webhook_conn: str, store: ResultsStore
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    assert send(notifier, schema_result(), store, context={}) == "alert"
    body = slack.received()[0].json
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    assert body["blocks"][0]["text"]["text"] == (
        "FAIL: schema on wh:customers (2026-11-04 00:00 to 2026-11-05 00:00 UTC)"
    )
    rows = table_rows(body["blocks"][2]["text"]["text"])
    assert rows[1:] == [["email", "missing", "absent", "required", "fail"]]


def test_web_api_calls_chat_post_message_with_the_bot_token(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    notifier = SlackApiNotifier(slack_conn_id=api_conn, channel="#ml-alerts", retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    (request,) = slack.received()
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    body = request.json
    assert body["channel"] == "#ml-alerts"
    assert body["text"].startswith("FAIL: drift on wh:activity")
    blocks = body["blocks"]
    if isinstance(blocks, str):  # form-encoded clients send blocks as JSON text
        import json

        blocks = json.loads(blocks)
    assert blocks[0]["type"] == "header"
    assert [r[0] for r in table_rows(blocks[3]["text"]["text"])[1:]] == TOP_FIVE
    assert store.deliveries(result, RUN) == [Delivery("slack:#ml-alerts", "alert", True, 1, None)]


def test_web_api_error_answer_is_recorded_and_not_retried(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    slack.script(Reply(200, {"ok": False, "error": "channel_not_found"}))
    notifier = SlackApiNotifier(slack_conn_id=api_conn, channel="#nowhere", retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    assert len(slack.received()) == 1
    (delivery,) = store.deliveries(result, RUN)
    assert not delivery.delivered and delivery.attempts == 1
    assert delivery.error is not None and "channel_not_found" in delivery.error


def test_email_is_multipart_alternative_with_text_and_html(
    smtp: SmtpServer, smtp_conn: str, store: ResultsStore
) -> None:
    notifier = EmailNotifier(
        to=["oncall@example.com", "ml@example.com"], from_email="mlobs@example.com", smtp_conn_id=smtp_conn
    )
    notifier.retry = FAST
    result = drift_result()
    assert send(notifier, result, store) == "alert"

    assert smtp.auth_attempts == [SMTP_LOGIN]
    (envelope,) = smtp.envelopes
    assert envelope.mail_from == "mlobs@example.com"
    assert sorted(envelope.rcpt_tos) == ["ml@example.com", "oncall@example.com"]
    message = envelope.message
    assert message["Subject"] == "FAIL: drift on wh:activity (2026-11-04 00:00 to 2026-11-05 00:00 UTC)"
    assert message["To"] == "oncall@example.com, ml@example.com"
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    text, html = parts["text/plain"], parts["text/html"]
    for body in (text, html):
        assert result.summary in body
        assert "Drift share 89% (8 of 9 columns)" in body
        assert LOG_URL.replace("&", "&amp;") in body
    table_lines = [line for line in text.splitlines() if line.split(" ", 1)[0] in {"subject", *TOP_FIVE}]
    rows = table_rows("\n".join(table_lines))
    assert rows[0] == ["subject", "metric", "value", "threshold", "status"]
    assert [r[0] for r in rows[1:]] == TOP_FIVE
    assert "<table" in html
    for subject, method, value, threshold in DRIFTED:
        cells = f"<td>{subject}</td><td>{method}</td><td>{value:.4g}</td><td>{threshold:.4g}</td>"
        assert (cells in html) == (subject in TOP_FIVE), subject
    assert store.deliveries(result, RUN) == [
        Delivery("email:ml@example.com,oncall@example.com", "alert", True, 1, None)
    ]


# --- de-duplication, escalation, recovery through the store ------------------------------------


def test_same_breach_is_sent_once_then_escalated_then_recovered(
    slack: SlackServer, webhook_conn: str, store: ResultsStore
) -> None:
    notifier = SlackWebhookNotifier(
        slack_webhook_conn_id=webhook_conn, renotify_after=None, escalate_after=3, retry=FAST
    )
    kinds = [send(notifier, drift_result(day=d), store) for d in range(3)]
    kinds.append(send(notifier, drift_result(Status.PASS, day=3), store))
    assert kinds == ["alert", None, "escalation", "recovery"]
    titles = [r.json["blocks"][0]["text"]["text"] for r in slack.received()]
    assert titles[1].startswith("Escalation (3 windows in a row): FAIL: drift on wh:activity")
    assert titles[2].startswith("Recovered: drift on wh:activity")
    recovery = slack.received()[2].json
    assert not any("```" in b.get("text", {}).get("text", "") for b in recovery["blocks"])


# --- retries -----------------------------------------------------------------------------------


@pytest.fixture(params=["webhook", "api"])
def slack_notifier(request: pytest.FixtureRequest, slack: SlackServer, airflow_connection: Any) -> Any:
    def make(retry: RetryPolicy = FAST, **options: Any) -> CheckNotifier:
        if request.param == "webhook":
            conn = airflow_connection(
                "mlobs_hook", conn_type="slackwebhook", host=f"{slack.url}/services", password=WEBHOOK_TOKEN
            )
            return SlackWebhookNotifier(slack_webhook_conn_id=conn, retry=retry, **options)
        conn = airflow_connection(
            "mlobs_slack_api", conn_type="slack", password=BOT_TOKEN, extra={"base_url": f"{slack.url}/api/"}
        )
        return SlackApiNotifier(slack_conn_id=conn, channel="#ml", retry=retry, **options)

    return make


def _error_body(status: int) -> str | dict[str, Any]:
    return {"ok": False, "error": f"http_{status}"}


def test_server_error_then_success_is_delivered_on_the_second_attempt(
    slack: SlackServer, slack_notifier: Any, store: ResultsStore
) -> None:
    slack.script(Reply(500, _error_body(500)))
    result = drift_result()
    notifier = slack_notifier()
    assert send(notifier, result, store) == "alert"
    assert len(slack.received()) == 2
    assert slack.received()[0].json == slack.received()[1].json
    assert store.deliveries(result, RUN) == [Delivery(notifier.channel, "alert", True, 2, None)]


def test_rate_limit_honours_retry_after(slack: SlackServer, slack_notifier: Any, store: ResultsStore) -> None:
    slack.script(Reply(429, _error_body(429), headers={"Retry-After": "1"}))
    result = drift_result()
    notifier = slack_notifier(RetryPolicy(attempts=3, base_delay=0.01, timeout=5))
    assert send(notifier, result, store) == "alert"
    first, second = slack.received()
    assert second.at - first.at >= 1.0
    assert store.deliveries(result, RUN) == [Delivery(notifier.channel, "alert", True, 2, None)]


def test_timeouts_exhaust_the_attempts_and_are_recorded_without_changing_the_result(
    slack: SlackServer, slack_notifier: Any, store: ResultsStore
) -> None:
    slack.script(Reply(200, "ok", delay=4), Reply(200, "ok", delay=4))
    result = drift_result()
    notifier = slack_notifier(RetryPolicy(attempts=2, base_delay=0.05, timeout=1), renotify_after=None)
    started = time.monotonic()
    assert send(notifier, result, store) == "alert"
    elapsed = time.monotonic() - started
    assert len(slack.received()) == 2
    assert elapsed < 3.5, f"the 1 s timeout was not applied ({elapsed:.1f} s)"
    (delivery,) = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 2)
    assert delivery.error and "timed out" in delivery.error.lower()
    (stored,) = store.history(dataset=result.dataset)
    assert stored.result == result

    # Nothing reached the channel, so the next window's same breach is still news.
    later = drift_result(day=1)
    assert send(notifier, later, store) == "alert"
    assert len(slack.received()) == 3
    assert store.deliveries(later, RUN) == [Delivery(notifier.channel, "alert", True, 1, None)]


def test_client_error_is_not_retried(slack: SlackServer, slack_notifier: Any, store: ResultsStore) -> None:
    slack.script(Reply(404, _error_body(404)))
    result = drift_result()
    notifier = slack_notifier()
    assert send(notifier, result, store) == "alert"
    assert len(slack.received()) == 1
    (delivery,) = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error and "404" in delivery.error


def test_email_timeout_uses_the_retry_policy(smtp: SmtpServer, smtp_conn: str, store: ResultsStore) -> None:
    smtp.delay_next(4, 4)
    notifier = EmailNotifier(
        to="oncall@example.com",
        smtp_conn_id=smtp_conn,
        retry=RetryPolicy(attempts=2, base_delay=0.05, timeout=1),
    )
    result = drift_result()
    started = time.monotonic()
    assert send(notifier, result, store) == "alert"
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"the 1 s timeout was not applied ({elapsed:.1f} s)"
    (delivery,) = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 2)
    assert delivery.error and "timed out" in delivery.error.lower()


def test_unreachable_smtp_server_is_recorded(airflow_connection: Any, store: ResultsStore) -> None:
    conn = airflow_connection(
        "mlobs_smtp_down",
        conn_type="smtp",
        host="127.0.0.1",
        port=free_port(),
        extra={"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 2},
    )
    notifier = EmailNotifier(to="oncall@example.com", smtp_conn_id=conn, retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    (delivery,) = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 3)
    assert delivery.error


# --- secrets -----------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: Any) -> Any:
    """Everything logged at DEBUG: stdlib records (caplog) and Airflow's structlog output, which
    goes to stdout at the level of its per-logger table (raised to DEBUG here)."""
    import airflow._shared.logging.structlog as core_logging
    import airflow.sdk._shared.logging.structlog as sdk_logging

    for module in (core_logging, sdk_logging):
        monkeypatch.setitem(module.PER_LOGGER_LEVELS, "", logging.DEBUG)
    caplog.set_level(logging.DEBUG)

    def read() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
        return "\n".join([caplog.text, records, out, err])

    return read


def test_secrets_never_reach_logs_deliveries_or_stored_results(
    slack: SlackServer,
    smtp: SmtpServer,
    webhook_conn: str,
    api_conn: str,
    smtp_conn: str,
    store: ResultsStore,
    tmp_path: Path,
    debug_logs: Any,
    airflow_connection: Any,
) -> None:
    webhook = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST, renotify_after=None)
    api = SlackApiNotifier(slack_conn_id=api_conn, channel="#ml", retry=FAST, renotify_after=None)
    email = EmailNotifier(to="oncall@example.com", smtp_conn_id=smtp_conn, retry=FAST, renotify_after=None)

    # Day 0: everything delivered. Day 1: a new breach, every channel fails, and the servers' error
    # answers echo the secrets back (as a misbehaving proxy might).
    day0 = drift_result(day=0)
    for notifier in (webhook, api, email):
        assert send(notifier, day0, store) == "alert"
    day1 = drift_result(day=1, drifted=3)
    slack.script(
        Reply(404, f"no such hook: /services/{WEBHOOK_TOKEN}"),
        Reply(403, {"ok": False, "error": "invalid_auth", "token": BOT_TOKEN}),
    )
    # The email channel now logs in with a wrong password.
    bad = airflow_connection("mlobs_smtp_bad", **{**smtp.connection_fields(), "password": WRONG_PASSWORD})
    email.smtp_conn_id = bad
    for notifier in (webhook, api, email):
        assert send(notifier, day1, store) == "alert"
    # The on_failure_callback path, with an exception whose message holds the webhook URL.
    webhook.notify(ctx(exception=RuntimeError(f"could not post to {slack.url}/services/{WEBHOOK_TOKEN}")))

    deliveries = store.deliveries(day0, RUN) + store.deliveries(day1, RUN)
    assert [d.delivered for d in deliveries] == [True, True, True, False, False, False]
    assert all(d.error for d in deliveries[3:])
    logged = debug_logs()
    # The notifiers' and the Slack clients' log lines were captured (so the check below means
    # something), including the webhook client's request lines at DEBUG.
    assert "sent alert for drift on wh:activity" in logged
    assert "could not send alert" in logged
    assert "Sending a request - url: ***/***, body:" in logged
    texts = {
        "log": logged,
        "deliveries": repr(deliveries),
        "results db": (tmp_path / "results.db").read_bytes().decode("utf-8", "replace"),
        "callback message": repr(slack.received()[-1].json),
    }
    for where, text in texts.items():
        for secret in (*SECRETS, WRONG_PASSWORD):
            assert secret not in text, f"{secret!r} found in the {where}"


# --- on_failure_callback -----------------------------------------------------------------------


def test_failure_callback_sends_the_breached_check_result(
    slack: SlackServer, smtp: SmtpServer, webhook_conn: str, smtp_conn: str
) -> None:
    result = drift_result()
    context = ctx(exception=CheckBreachError(result))
    SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST).notify(context)
    EmailNotifier(to="oncall@example.com", smtp_conn_id=smtp_conn, retry=FAST).notify(context)

    (request,) = slack.received()
    blocks = request.json["blocks"]
    assert (
        blocks[0]["text"]["text"] == "FAIL: drift on wh:activity (2026-11-04 00:00 to 2026-11-05 00:00 UTC)"
    )
    assert [r[0] for r in table_rows(blocks[3]["text"]["text"])[1:]] == TOP_FIVE
    assert blocks[-1]["elements"][0]["url"] == LOG_URL
    (envelope,) = smtp.envelopes
    assert envelope.message["Subject"] == blocks[0]["text"]["text"]


def test_failure_callback_for_a_plain_exception_names_the_task(
    slack: SlackServer, smtp: SmtpServer, webhook_conn: str, smtp_conn: str
) -> None:
    context = ctx(exception=ValueError("the feature store is down"))
    SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST).notify(context)
    EmailNotifier(to="oncall@example.com", smtp_conn_id=smtp_conn, retry=FAST).notify(context)

    (request,) = slack.received()
    body = request.json
    assert body["blocks"][0]["text"]["text"] == "ERROR: task on ml.drift"
    assert (
        body["blocks"][1]["text"]["text"] == ":x: task ml.drift failed: ValueError: the feature store is down"
    )
    assert body["blocks"][-1]["elements"][0]["url"] == LOG_URL
    (envelope,) = smtp.envelopes
    assert envelope.message["Subject"] == "ERROR: task on ml.drift"
    text = envelope.message.get_body(preferencelist=("plain",))
    assert text is not None and "ValueError: the feature store is down" in text.get_content()


def test_failure_callback_with_only_escalations_sends_nothing(slack: SlackServer, webhook_conn: str) -> None:
    notifier = SlackWebhookNotifier(
        slack_webhook_conn_id=webhook_conn, escalate_after=2, only_escalations=True, retry=FAST
    )
    notifier.notify(ctx(exception=CheckBreachError(drift_result())))
    assert slack.received() == []


# --- secrets in every form a connection takes (issue 12) ----------------------------------------

URL_TOKEN_SEGMENTS = ("T0URLPASS0", "B0URLPASS0", "urlSecretToken0987654321abc")
URL_TOKEN = "/".join(URL_TOKEN_SEGMENTS)


def _stored_text(tmp_path: Path) -> str:
    return (tmp_path / "results.db").read_bytes().decode("utf-8", "replace")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            lambda url: {"conn_type": "slackwebhook", "password": f"{url}/services/{URL_TOKEN}"},
            id="url-in-password",
        ),
        pytest.param(
            lambda url: {
                "conn_type": "slackwebhook",
                "password": f"{url}/services/{URL_TOKEN}?sig=querySecret42",
            },
            id="url-with-query-in-password",
        ),
        pytest.param(
            lambda url: {"conn_type": "slackwebhook", "host": f"{url}/services", "password": URL_TOKEN},
            id="token-in-password-host-url",
        ),
    ],
)
def test_webhook_error_body_quoting_any_part_of_the_url_leaks_nothing(
    fields: Any,
    slack: SlackServer,
    store: ResultsStore,
    tmp_path: Path,
    debug_logs: Any,
    airflow_connection: Any,
) -> None:
    conn_id = airflow_connection("mlobs_url_hook", **fields(slack.url))
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=conn_id, retry=FAST, renotify_after=None)
    full = f"{slack.url}/services/{URL_TOKEN}"
    # The server's error answer quotes the path, each token segment and the query separately.
    body = (
        f"no such hook {full}?sig=querySecret42 (path /services/{URL_TOKEN}; team {URL_TOKEN_SEGMENTS[0]}, "
        f"bot {URL_TOKEN_SEGMENTS[1]}, secret {URL_TOKEN_SEGMENTS[2]}, tail {'/'.join(URL_TOKEN_SEGMENTS[1:])}, "
        "query sig=querySecret42)"
    )
    slack.script(Reply(404, body))
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    assert slack.received()[-1].path.startswith(f"/services/{URL_TOKEN}")  # it really was that URL
    [delivery] = store.deliveries(result, RUN)
    assert not delivery.delivered and delivery.attempts == 1  # a 404 is not retried
    assert delivery.error is not None and "rejected (HTTP 404)" in delivery.error
    logged = debug_logs()
    assert "could not send alert" in logged
    secrets = [*URL_TOKEN_SEGMENTS, URL_TOKEN]
    if "querySecret42" in str(fields(slack.url)):  # the query is the connection's only in that form
        secrets += ["querySecret42", "sig=querySecret42"]
    for where, text in {
        "log": logged,
        "delivery": repr(delivery),
        "results db": _stored_text(tmp_path),
        "stored result": repr(store.history(result.check, result.dataset)),
    }.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in the {where}"


def test_database_and_smtp_passwords_and_extra_tokens_are_scrubbed(airflow_connection: Any) -> None:
    from airflow_mlobs.notifiers.base import connection_secrets, redact

    airflow_connection(
        "mlobs_any",
        conn_type="smtp",
        host="mail.example.com",
        login="alerts",
        password="p@ss/w0rd?x=1",
        extra={"auth": {"api_token": "xoxp-extraToken-123456", "use_auth": "true"}, "timeout": 30},
    )
    secrets = connection_secrets("mlobs_any")
    text = (
        "login failed for alerts:p%40ss%2Fw0rd%3Fx%3D1 p@ss/w0rd?x=1 token xoxp-extraToken-123456 timeout 30"
    )
    scrubbed = redact(text, secrets)
    assert "w0rd" not in scrubbed and "extraToken" not in scrubbed
    assert "alerts" in scrubbed and "timeout 30" in scrubbed  # only secrets go
    assert redact("use_auth is true", secrets) == "use_auth is true"  # a flag is no secret


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        pytest.param(None, "connection 'mlobs_cfg' is not defined", id="undefined-connection"),
        pytest.param(
            {"conn_type": "slackwebhook", "host": "hooks.example.com"},
            "does not contain password",
            id="no-password",
        ),
        pytest.param(
            {"conn_type": "slackwebhook", "password": "htp://nohost/T1/B1/x"},
            "invalid webhook URL",
            id="invalid-url",
        ),
    ],
)
def test_webhook_configuration_errors_are_not_retried(
    fields: dict[str, Any] | None, culprit: str, store: ResultsStore, airflow_connection: Any
) -> None:
    if fields is not None:
        airflow_connection("mlobs_cfg", **fields)
    slept: list[float] = []
    notifier = SlackWebhookNotifier(
        slack_webhook_conn_id="mlobs_cfg", retry=RetryPolicy(attempts=4, base_delay=2.0), renotify_after=None
    )
    notifier.sleep = slept.append
    result = drift_result()
    started = time.monotonic()
    assert send(notifier, result, store) == "alert"
    [delivery] = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error is not None and culprit in delivery.error and "mlobs_cfg" in delivery.error
    assert time.monotonic() - started < 2.0


def test_email_to_an_undefined_connection_is_not_retried(store: ResultsStore) -> None:
    slept: list[float] = []
    notifier = EmailNotifier(
        to="oncall@example.com", smtp_conn_id="mlobs_no_smtp", retry=RetryPolicy(attempts=4)
    )
    notifier.sleep = slept.append
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    [delivery] = store.deliveries(result, RUN)
    assert (delivery.delivered, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error is not None and "connection 'mlobs_no_smtp' is not defined" in delivery.error


@pytest.mark.parametrize(
    ("value", "parts", "kept"),
    [
        pytest.param(
            "https://hooks.slack.com/services/T1111/B2222/xyzSecret",
            ["/services/T1111/B2222/xyzSecret", "T1111", "B2222", "xyzSecret", "B2222/xyzSecret"],
            ["services", "hooks.slack.com"],
            id="webhook-url",
        ),
        pytest.param("T1111/B2222/xyzSecret", ["T1111", "B2222", "xyzSecret"], [], id="bare-token-path"),
        pytest.param(
            "postgresql://etl:dbSecret99@db.example.com/wh?sslkey=keySecret7",
            ["dbSecret99", "sslkey=keySecret7", "keySecret7"],
            ["db.example.com"],
            id="database-url",
        ),
    ],
)
def test_secret_parts_finds_every_part_that_can_leak(value: str, parts: list[str], kept: list[str]) -> None:
    from airflow_mlobs.notifiers.base import redact, secret_parts

    found = secret_parts(value)
    for part in parts:
        assert part in found, (part, found)
        assert part not in redact(f"error: {part} rejected", found)
    for word in kept:
        assert word not in found


# --- DAG-level on_failure_callback (issue 16) -----------------------------------------------------


def _dag_with_tasks(*task_ids: str) -> Any:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("ml", schedule=None) as dag:
        for task_id in task_ids:
            EmptyOperator(task_id=task_id)
    return dag


def test_dag_failure_callback_lists_each_failed_check_with_its_stored_summary(
    slack: SlackServer, webhook_conn: str, airflow_connection: Any, tmp_path: Path
) -> None:
    """As Airflow 3's DAG processor calls a DAG's on_failure_callback without a task context
    (``dag``, ``run_id``, ``reason``: dag_processing/processor.py): the run's failed checks come
    from the results history, each with its summary; a failed task without a stored result is
    listed as a failed task; another run's results are left out."""
    results = airflow_connection("mlobs_cb_results", conn_type="sqlite", host=str(tmp_path / "cb.db"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cb.db'}")
    store = ResultsStore(engine)
    run_id = "scheduled__2026-11-05"
    store.save(drift_result(), RunKey("ml", "drift", run_id))
    store.save(schema_result(), RunKey("ml", "schema", run_id))
    store.save(drift_result(Status.PASS), RunKey("ml", "drift_ok", run_id))
    earlier = schema_result().with_window(DAY - timedelta(days=2), DAY - timedelta(days=1))
    store.save(replace(earlier, summary="yesterday's run"), RunKey("ml", "schema", "scheduled__2026-11-04"))
    engine.dispose()
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, results_conn_id=results, retry=FAST)
    dag = _dag_with_tasks("drift", "schema", "drift_ok")

    # Outside a DAG processor nobody can say which tasks failed: the stored fail/error results do.
    notifier.notify({"dag": dag, "run_id": run_id, "reason": "task_failure"})  # type: ignore[arg-type]
    (request,) = slack.received()
    text = request.json["blocks"][1]["text"]["text"]
    assert "DAG run ml / scheduled__2026-11-05 failed: 2 failed task(s)" in text
    assert "- drift: FAIL drift: wh:activity: 8 of 9 columns drifted" in text
    assert "- schema: FAIL schema: wh:customers breaks contract customers v2: `email` missing" in text
    assert "drift_ok" not in text and "unknown error" not in text and "yesterday" not in text

    # The failed tasks named by Airflow: one with a stored result, one without (it never stored).
    class Asked(SlackWebhookNotifier):
        def failed_tasks(self, context: Any, dag_id: str, run_id: str) -> list[tuple[str, int]]:
            return [("load", -1), ("schema", -1)]

    Asked(slack_webhook_conn_id=webhook_conn, results_conn_id=results, retry=FAST).notify(
        {"dag": dag, "run_id": run_id, "reason": "task_failure"}  # type: ignore[arg-type]
    )
    text = slack.received()[1].json["blocks"][1]["text"]["text"]
    assert "2 failed task(s)" in text
    assert "- load: failed (no stored check result)" in text
    assert "- schema: FAIL schema:" in text and "- drift:" not in text


def test_dag_failure_callback_with_an_unreadable_history_still_sends(
    slack: SlackServer, webhook_conn: str
) -> None:
    notifier = SlackWebhookNotifier(
        slack_webhook_conn_id=webhook_conn, results_conn_id="mlobs_no_such", retry=FAST
    )
    notifier.notify({"dag": _dag_with_tasks("drift"), "run_id": "r9", "reason": "timed_out"})  # type: ignore[arg-type]
    (request,) = slack.received()
    text = request.json["blocks"][1]["text"]["text"]
    assert text.startswith(":x: DAG run ml / r9 failed (timed_out) (results history unreadable:")
    assert "mlobs_no_such" in text and request.json["blocks"][0]["text"]["text"] == "ERROR: dag_run on ml"


# --- provider info, templated connection ids (issue 16) -------------------------------------------


def test_providers_manager_lists_the_notifiers() -> None:
    """What ``airflow providers notifications`` prints: the ProvidersManager's notification list."""
    from airflow.providers_manager import ProvidersManager

    listed = set(ProvidersManager().notification)
    assert {
        "airflow_mlobs.notifiers.slack.SlackWebhookNotifier",
        "airflow_mlobs.notifiers.slack.SlackApiNotifier",
        "airflow_mlobs.notifiers.email.EmailNotifier",
        "airflow_mlobs.notifiers.pagerduty.PagerDutyNotifier",
    } <= listed


def test_connection_ids_are_templated(
    slack: SlackServer,
    smtp: SmtpServer,
    webhook_conn: str,
    api_conn: str,
    smtp_conn: str,
    store: ResultsStore,
) -> None:
    context = {**ctx(), "params": {"hook": webhook_conn, "api": api_conn, "smtp": smtp_conn}}
    notifiers: list[CheckNotifier] = [
        SlackWebhookNotifier(slack_webhook_conn_id="{{ params.hook }}", retry=FAST),
        SlackApiNotifier(slack_conn_id="{{ params.api }}", channel="#ml", retry=FAST),
        EmailNotifier(to="oncall@example.com", smtp_conn_id="{{ params.smtp }}", retry=FAST),
    ]
    for notifier in notifiers:
        notifier.render_template_fields(context)  # type: ignore[arg-type]
        assert send(notifier, schema_result(), store, context) == "alert"
    assert len(slack.received("/services")) == 1 and len(slack.received("/api/")) == 1
    assert len(smtp.envelopes) == 1
    assert [d.delivered for d in store.deliveries(schema_result(), RUN)] == [True, True, True]


def test_failed_in_states_reads_airflows_task_states_answer() -> None:
    from airflow_mlobs.notifiers.base import failed_in_states

    states = {
        "r1": {
            "drift": "failed",
            "schema": "success",
            "quality_2": "failed",
            "quality_0": "success",
            "load_v_3": "failed",
        },
        "r0": {"drift": "success"},
    }
    # quality is mapped; load_v_3 is a task of that name (the DAG has it), not instance 3 of load_v.
    assert failed_in_states(states, "r1", {"drift", "schema", "quality", "load_v_3"}) == [
        ("drift", -1),
        ("load_v_3", -1),
        ("quality", 2),
    ]
    assert failed_in_states(states, "r9", {"drift"}) == [] and failed_in_states(None, "r1", set()) == []


def test_dag_failure_callback_in_the_context_the_dag_processor_builds(
    slack: SlackServer, webhook_conn: str, airflow_connection: Any, tmp_path: Path
) -> None:
    """With the last failed task instance, Airflow's DAG processor builds the callback context with
    RuntimeTaskInstance.get_template_context() (dag_processing/processor.py): ``ti``, ``dag_run``,
    ``run_id`` and the rest, and no ``exception``."""
    import uuid

    from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    results = airflow_connection("mlobs_cb2_results", conn_type="sqlite", host=str(tmp_path / "cb2.db"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cb2.db'}")
    run_id = "manual__2026-11-05"
    ResultsStore(engine).save(schema_result(), RunKey("ml", "schema", run_id))
    engine.dispose()
    dag = _dag_with_tasks("schema", "drift")
    dag_run = DagRun.model_construct(
        dag_id="ml",
        run_id=run_id,
        logical_date=DAY,
        data_interval_start=DAY - timedelta(days=1),
        data_interval_end=DAY,
        run_after=DAY,
        start_date=DAY,
        end_date=DAY,
        run_type="manual",
        state="failed",
        conf={},
        consumed_asset_events=[],
        partition_key=None,
    )
    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id="schema",
        dag_id="ml",
        run_id=run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=dag.get_task("schema"),
        _ti_context_from_server=TIRunContext.model_construct(dag_run=dag_run, max_tries=0),
    )
    context = ti.get_template_context()
    context["reason"] = "task_failure"  # type: ignore[typeddict-unknown-key]
    assert "exception" not in context and context["dag_run"].run_id == run_id

    SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, results_conn_id=results, retry=FAST).notify(
        context
    )
    (request,) = slack.received()
    text = request.json["blocks"][1]["text"]["text"]
    assert "DAG run ml / manual__2026-11-05 failed: 1 failed task(s)" in text
    assert "- schema: FAIL schema: wh:customers breaks contract customers v2: `email` missing" in text
