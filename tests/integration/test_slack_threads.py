"""One Slack thread per incident through the Web API notifier, and retries through slack_sdk's retry
handlers, against a real HTTP server on 127.0.0.1 speaking Slack's Web API (``chat.postMessage``
with ``thread_ts``, ``chat.update``; :class:`tests.servers.SlackServer`), with a real results
store: the thread survives across runs in the stored alert state."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_mlobs.core.grouping import group_results, grouped_result
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.notifiers import RetryPolicy, SlackApiNotifier, SlackWebhookNotifier
from airflow_mlobs.store import Delivery, ResultsStore, RunKey
from tests.servers import Reply, SlackServer

BOT_TOKEN = "xoxb-3333-4444-threadSecretToken13579"
DAY = datetime(2026, 11, 2, tzinfo=UTC)
RUN = RunKey(dag_id="ml", task_id="freshness", run_id="scheduled__2026-11-02")
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=5.0, timeout=5)
CHANNEL = "slack:#ml-alerts"


@pytest.fixture
def api_conn(slack: SlackServer, airflow_connection: Any) -> str:
    slack.tokens = {BOT_TOKEN}
    return str(
        airflow_connection(
            "mlobs_threads", conn_type="slack", password=BOT_TOKEN, extra={"base_url": f"{slack.url}/api/"}
        )
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """What was logged so far: stdlib records (the Slack clients', at DEBUG) and the notifiers'
    lines, which Airflow's structlog writes to stdout."""
    caplog.set_level(logging.DEBUG)

    def read() -> str:
        out, err = capfd.readouterr()
        read.text += "\n".join([out, err])  # type: ignore[attr-defined]
        return "\n".join([caplog.text, read.text])  # type: ignore[attr-defined]

    read.text = ""  # type: ignore[attr-defined]
    return read


def notifier(conn: str, **options: Any) -> SlackApiNotifier:
    options = {"renotify_after": None, "retry": FAST, **options}
    made = SlackApiNotifier(slack_conn_id=conn, channel="#ml-alerts", **options)
    return made


def stale(day: int, status: Status = Status.FAIL, age_h: int = 18) -> CheckResult:
    """A freshness result for the window ending ``DAY + day``."""
    breached = status is not Status.PASS
    return CheckResult(
        check="freshness",
        dataset="wh:events",
        status=status,
        summary=f"wh:events is stale: newest row {age_h}h old (limit 12h)"
        if breached
        else "wh:events is fresh",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        findings=(Finding("events", "age_hours", status, value=age_h, threshold=12),),
    )


def send(sender: Any, result: CheckResult, store: ResultsStore, run: RunKey = RUN) -> str | None:
    store.save(result, run)
    return sender.send_result(result, {}, store, run)  # type: ignore[no-any-return]


def incident(store: ResultsStore, check: str = "freshness", dataset: str = "wh:events") -> Any:
    state = store.alert_state(CHANNEL, check, dataset, task=RUN.alert_scope(stale(0)))
    return (state or {}).get("incident")


# --- the thread of one incident ---------------------------------------------------------------


def test_incident_is_one_thread_over_runs_and_the_parent_shows_the_recovery(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    sender = notifier(api_conn, escalate_after=3)
    kinds = [send(sender, stale(d), store) for d in range(3)]
    # Each run builds a new notifier in Airflow: the thread lives in the stored alert state.
    sender = notifier(api_conn, escalate_after=3)
    kinds.append(send(sender, stale(3, Status.PASS), store))
    assert kinds == ["alert", None, "escalation", "recovery"]

    (parent,) = slack.parents("#ml-alerts")
    replies = slack.thread(parent)
    assert [r.header for r in replies] == [
        "Escalation (3 windows in a row): FAIL: freshness on wh:events (2026-11-03 00:00 to 2026-11-04 00:00 UTC)",
        "Recovered: freshness on wh:events (2026-11-04 00:00 to 2026-11-05 00:00 UTC)",
    ]
    assert not any(r.reply_broadcast for r in replies)
    # The parent keeps the header of the message that opened the incident and now says RESOLVED.
    assert parent.header == "FAIL: freshness on wh:events (2026-11-01 00:00 to 2026-11-02 00:00 UTC)"
    assert parent.edits == 2  # after the escalation, after the recovery
    assert ":white_check_mark: RESOLVED at 2026-11-05 00:00 UTC after 3 runs" in parent.body
    assert "wh:events is stale: newest row 18h old (limit 12h)" in parent.body
    assert parent.text.startswith(":white_check_mark: RESOLVED at 2026-11-05 00:00 UTC after 3 runs: FAIL")
    assert incident(store) is None  # closed with the recovery

    # Requests: the parent, the escalation's reply and edit, the recovery's reply and edit.
    methods = [r.path for r in slack.received()]
    assert methods == ["/api/chat.postMessage"] + ["/api/chat.postMessage", "/api/chat.update"] * 2
    bodies = [r.json for r in slack.received()]
    assert bodies[1]["thread_ts"] == bodies[3]["thread_ts"] == parent.ts
    assert bodies[2]["channel"] == parent.channel and bodies[2]["ts"] == parent.ts

    # A new breach after the recovery opens a new thread.
    assert send(notifier(api_conn, escalate_after=3), stale(4), store) == "alert"
    first, second = slack.parents("#ml-alerts")
    assert first is parent and second.thread_ts is None and slack.thread(second) == []
    assert incident(store) == {
        "channel": second.channel,
        "ts": second.ts,
        "heading": "FAIL: freshness on wh:events (2026-11-05 00:00 to 2026-11-06 00:00 UTC)",
        "summary": "wh:events is stale: newest row 18h old (limit 12h)",
    }
    assert [d.kind for d in store.deliveries(stale(2), RUN)] == ["escalation"]
    assert store.deliveries(stale(3, Status.PASS), RUN) == [Delivery(CHANNEL, "recovery", True, 1, None)]


def test_worse_breach_replies_in_the_thread_and_the_parent_shows_it_ongoing(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    sender = notifier(api_conn, broadcast_escalations=True, escalate_after=3)
    assert send(sender, stale(0, Status.WARN, age_h=8), store) == "alert"
    assert send(sender, stale(1, Status.FAIL, age_h=16), store) == "alert"  # got worse
    assert send(sender, stale(2, Status.FAIL, age_h=40), store) == "escalation"
    (parent,) = slack.parents()
    replies = slack.thread(parent)
    assert [r.header[:20] for r in replies] == ["FAIL: freshness on w", "Escalation (3 window"]
    assert [r.reply_broadcast for r in replies] == [False, True]  # escalations also in the channel
    assert parent.header.startswith("WARN: freshness on wh:events (2026-11-01 00:00")
    assert (
        ":red_circle: ONGOING (3 runs): Escalation (3 windows in a row): FAIL: freshness on wh:events"
        in parent.body
    )


def test_deleted_parent_gets_a_new_parent_and_the_incident_continues_there(
    slack: SlackServer, api_conn: str, store: ResultsStore, logs: Any
) -> None:
    sender = notifier(api_conn, escalate_after=2)
    assert send(sender, stale(0), store) == "alert"
    (parent,) = slack.parents()
    slack.delete(parent)  # someone deleted the alert in Slack
    assert send(sender, stale(1), store) == "escalation"
    (new_parent,) = slack.parents()
    assert new_parent.header.startswith("Escalation (2 windows in a row): FAIL: freshness")
    assert "the thread of freshness on wh:events is gone (thread_not_found)" in logs()
    assert incident(store)["ts"] == new_parent.ts
    assert store.deliveries(stale(1), RUN) == [Delivery(CHANNEL, "escalation", True, 1, None)]

    assert send(sender, stale(2, Status.PASS), store) == "recovery"
    assert [r.header[:10] for r in slack.thread(new_parent)] == ["Recovered:"]
    assert "RESOLVED at 2026-11-04 00:00 UTC after 2 runs" in new_parent.body


def test_parent_that_cannot_be_edited_is_posted_again_with_the_current_state(
    slack: SlackServer, api_conn: str, store: ResultsStore, logs: Any
) -> None:
    sender = notifier(api_conn, escalate_after=2)
    assert send(sender, stale(0), store) == "alert"
    (parent,) = slack.parents()
    slack.uneditable.add(parent.ts)
    assert send(sender, stale(1), store) == "escalation"
    assert "cannot be updated (cant_update_message): posting a new parent" in logs()
    old, new = slack.parents()
    assert old is parent and old.edits == 0
    assert [r.header[:11] for r in slack.thread(parent)] == ["Escalation "]  # the reply was sent
    # The new parent is the old one's header with the current state; the incident moves there.
    assert new.header == parent.header
    assert ":red_circle: ONGOING (2 runs): Escalation (2 windows in a row)" in new.body
    assert incident(store)["ts"] == new.ts
    assert send(sender, stale(2, Status.PASS), store) == "recovery"
    assert [r.header[:10] for r in slack.thread(new)] == ["Recovered:"]
    assert "RESOLVED" in new.body and new.edits == 1


def test_grouped_messages_thread_per_group(slack: SlackServer, api_conn: str, store: ResultsStore) -> None:
    """The AlertGroupOperator's grouped result goes through the same send_result: one thread per
    group (its alert-state row), the recovery in it."""
    run = RunKey(dag_id="ml", task_id="alerts", run_id="r")
    sender = notifier(api_conn)

    def group(day: int, status: Status) -> CheckResult:
        drift = CheckResult(
            "drift",
            "wh:events",
            status,
            "drift",
            window_start=DAY + timedelta(days=day - 1),
            window_end=DAY + timedelta(days=day),
            findings=(Finding("amount", "psi", status, value=0.4, threshold=0.2),),
        )
        (members,) = group_results([stale(day, status), drift], f"run{day}").values()
        return grouped_result(members)

    kinds = [send(sender, group(d, s), store, run) for d, s in enumerate([Status.FAIL] * 2 + [Status.PASS])]
    assert kinds == ["alert", None, "recovery"]
    (parent,) = slack.parents()
    assert parent.header.startswith("FAIL: group on wh:events")
    assert [r.header[:10] for r in slack.thread(parent)] == ["Recovered:"]
    assert "RESOLVED at 2026-11-04 00:00 UTC after 2 runs" in parent.body


def test_webhook_messages_stay_flat(slack: SlackServer, airflow_connection: Any, store: ResultsStore) -> None:
    conn = airflow_connection(
        "mlobs_flat_hook",
        conn_type="slackwebhook",
        host=f"{slack.url}/services",
        password="T1/B1/flatSecret99",
    )
    sender = SlackWebhookNotifier(slack_webhook_conn_id=conn, retry=FAST, renotify_after=None)
    assert [send(sender, stale(0), store), send(sender, stale(1, Status.PASS), store)] == [
        "alert",
        "recovery",
    ]
    assert [r.path for r in slack.received()] == ["/services/T1/B1/flatSecret99"] * 2
    assert all("thread_ts" not in r.json for r in slack.received())
    state = store.alert_state(
        "slack-webhook:mlobs_flat_hook", "freshness", "wh:events", task=RUN.alert_scope(stale(0))
    )
    assert state is not None and "incident" not in state


# --- retries through slack_sdk's handlers -----------------------------------------------------


def test_the_clients_retry_with_slack_sdk_handlers_mapped_from_the_policy(api_conn: str) -> None:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    handlers = notifier(api_conn, retry=RetryPolicy(attempts=5)).hook.client.retry_handlers
    assert [type(h).__mro__[1] for h in handlers] == [
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
        ConnectionErrorRetryHandler,
    ]
    assert {h.max_retry_count for h in handlers} == {4}


def test_rate_limit_waits_retry_after_capped_and_delivers_once(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    slack.script(Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "120"}))
    slept: list[float] = []
    sender = notifier(api_conn, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=7.5))
    sender.sleep = slept.append
    assert send(sender, stale(0), store) == "alert"
    assert slept == [7.5]  # Retry-After, at most max_delay
    assert len(slack.received()) == 2 and len(slack.parents()) == 1  # one message
    assert store.deliveries(stale(0), RUN) == [Delivery(CHANNEL, "alert", True, 2, None)]


def test_server_errors_are_retried_with_backoff_up_to_the_attempts(
    slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    slack.script(*[Reply(502, {"ok": False, "error": "bad_gateway"})] * 3)
    slept: list[float] = []
    sender = notifier(api_conn, retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=5))
    sender.sleep = slept.append
    assert send(sender, stale(0), store) == "alert"
    assert slept == [0.5, 1.0]
    assert len(slack.received()) == 3 and slack.parents() == []
    (delivery,) = store.deliveries(stale(0), RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 3)
    assert delivery.error is not None and "server error (HTTP 502)" in delivery.error

    # Nothing was posted, so no thread: the next run's breach opens one.
    slack.script(Reply(500, {"ok": False, "error": "internal_error"}))
    assert send(sender, stale(1), store) == "alert"
    assert len(slack.parents()) == 1 and slept == [0.5, 1.0, 0.5]
    assert store.deliveries(stale(1), RUN) == [Delivery(CHANNEL, "alert", True, 2, None)]


def test_invalid_auth_is_not_retried_and_names_the_connection_not_the_token(
    slack: SlackServer,
    airflow_connection: Any,
    store: ResultsStore,
    logs: Any,
    tmp_path: Path,
) -> None:
    slack.tokens = {"xoxb-the-right-one-0000"}
    conn = airflow_connection(
        "mlobs_bad_token", conn_type="slack", password=BOT_TOKEN, extra={"base_url": f"{slack.url}/api/"}
    )
    slept: list[float] = []
    sender = notifier(conn, retry=RetryPolicy(attempts=4, base_delay=1))
    sender.sleep = slept.append
    assert send(sender, stale(0), store) == "alert"
    assert len(slack.received()) == 1 and slept == []
    (delivery,) = store.deliveries(stale(0), RUN)
    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error == (
        "SlackApiFailure: connection 'mlobs_bad_token': Slack API error: invalid_auth: the bot token is not valid"
    )
    assert "could not send alert" in logs()
    stored = (tmp_path / "results.db").read_bytes().decode("utf-8", "replace")
    for where, text in {"log": logs(), "delivery": repr(delivery), "results db": stored}.items():
        assert BOT_TOKEN not in text, where
        assert "threadSecretToken" not in text, where


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("channel_not_found", "(channel '#ml-alerts'): the bot cannot see that channel"),
        ("not_in_channel", "(channel '#ml-alerts'): the bot is not a member of that channel"),
    ],
)
def test_channel_errors_are_not_retried_and_say_what_to_fix(
    error: str, fix: str, slack: SlackServer, api_conn: str, store: ResultsStore
) -> None:
    slack.script(Reply(200, {"ok": False, "error": error}))
    assert send(notifier(api_conn), stale(0), store) == "alert"
    assert len(slack.received()) == 1
    (delivery,) = store.deliveries(stale(0), RUN)
    assert (
        delivery.error is not None
        and f"connection 'mlobs_threads': Slack API error: {error} {fix}" in delivery.error
    )


def test_failed_edit_of_the_parent_keeps_the_sent_reply(
    slack: SlackServer, api_conn: str, store: ResultsStore, logs: Any
) -> None:
    """A reply that went out is delivered even when the parent's edit then fails (the server
    errors past the retries): the next run does not send the escalation again."""
    sender = notifier(api_conn, escalate_after=2, retry=RetryPolicy(attempts=2, base_delay=0))
    assert send(sender, stale(0), store) == "alert"
    (parent,) = slack.parents()
    slack.script(
        Reply(200, {"ok": True, "channel": parent.channel, "ts": "1700009999.000001"}),  # the reply
        Reply(503, {"ok": False, "error": "service_unavailable"}),
        Reply(503, {"ok": False, "error": "service_unavailable"}),
    )
    assert send(sender, stale(1), store) == "escalation"
    assert "the escalation reply was sent, but the thread's parent was not updated" in logs()
    assert store.deliveries(stale(1), RUN) == [Delivery(CHANNEL, "escalation", True, 2, None)]
    assert send(sender, stale(2), store) is None
    assert incident(store)["ts"] == parent.ts


def test_webhook_rejection_is_not_retried_and_names_the_connection_not_the_url(
    slack: SlackServer, airflow_connection: Any, store: ResultsStore, logs: Any
) -> None:
    conn = airflow_connection(
        "mlobs_gone_hook",
        conn_type="slackwebhook",
        host=f"{slack.url}/services",
        password="T9/B9/goneSecret77",
    )
    slack.script(Reply(403, "invalid_token"))
    slept: list[float] = []
    sender = SlackWebhookNotifier(
        slack_webhook_conn_id=conn, retry=RetryPolicy(attempts=4), renotify_after=None
    )
    sender.sleep = slept.append
    assert send(sender, stale(0), store) == "alert"
    assert len(slack.received()) == 1 and slept == []
    (delivery,) = store.deliveries(stale(0), RUN)
    assert delivery.error == "DeliveryError: connection 'mlobs_gone_hook': rejected (HTTP 403): invalid_token"
    assert "goneSecret77" not in logs() and "goneSecret77" not in repr(delivery)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        pytest.param(None, "connection 'mlobs_api_cfg' is not defined", id="undefined-connection"),
        pytest.param({"conn_type": "slack"}, "does not contain password", id="no-token"),
        pytest.param(
            {"conn_type": "slack", "password": BOT_TOKEN, "extra": {"base_url": "htp://nohost/api/"}},
            "connection 'mlobs_api_cfg': invalid Slack API URL",
            id="invalid-base-url",
        ),
    ],
)
def test_web_api_configuration_errors_are_not_retried(
    fields: dict[str, Any] | None, culprit: str, airflow_connection: Any, store: ResultsStore, logs: Any
) -> None:
    if fields is not None:
        airflow_connection("mlobs_api_cfg", **fields)
    slept: list[float] = []
    sender = notifier("mlobs_api_cfg", retry=RetryPolicy(attempts=4, base_delay=2.0))
    sender.sleep = slept.append
    assert send(sender, stale(0), store) == "alert"
    (delivery,) = store.deliveries(stale(0), RUN)
    assert (delivery.delivered, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error is not None and culprit in delivery.error
    assert BOT_TOKEN not in delivery.error and BOT_TOKEN not in logs()
