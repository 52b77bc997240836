"""Notification rules (de-duplication, escalation, recovery) and how their messages render."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_mlobs.core.notify import (
    AlertState,
    breach_fingerprint,
    decide_notification,
    reaches,
)
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.notifiers.base import redact
from airflow_mlobs.render.email import email_message
from airflow_mlobs.render.headline import headline
from airflow_mlobs.render.message import Links, top_rows
from airflow_mlobs.render.slack import slack_message

DAY = datetime(2026, 11, 24, tzinfo=UTC)


def drift_result(
    status: Status = Status.FAIL, columns: tuple[str, ...] = ("age", "tenure"), day: int = 0
) -> CheckResult:
    findings = (
        *tuple(
            Finding(
                c,
                "wasserstein",
                status,
                value=0.2 + i / 10,
                threshold=0.05,
                reason=f"wasserstein {0.2 + i / 10}",
            )
            for i, c in enumerate(columns)
        ),
        Finding("spend", "wasserstein", Status.PASS, value=0.01, threshold=0.05, reason="below"),
    )
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=status,
        summary=f"wh:activity: {len(columns)} of 3 columns drifted",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        metrics={
            "drift_share": len(columns) / 3,
            "columns_drifted": len(columns),
            "columns_judged": 3,
            "baseline": "b/v1",
            "rows": 400,
        },
        findings=findings,
    )


def passing(day: int) -> CheckResult:
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=Status.PASS,
        summary="no drift",
        window_end=DAY + timedelta(days=day),
    )


def test_fingerprint_depends_on_the_breached_pairs_not_on_values() -> None:
    a = drift_result()
    b = drift_result(day=1)
    assert breach_fingerprint(a) == breach_fingerprint(b)
    assert breach_fingerprint(a) != breach_fingerprint(drift_result(columns=("age",)))
    assert breach_fingerprint(a) == breach_fingerprint(drift_result(status=Status.WARN))


def test_reaches() -> None:
    assert reaches(Status.WARN, "warn") and not reaches(Status.WARN, "fail")
    assert reaches(Status.ERROR, "fail") and not reaches(Status.PASS, "warn")


def test_alert_then_silence_then_reminder_then_recovery() -> None:
    first = decide_notification(AlertState(), drift_result(), now=DAY, renotify_after=timedelta(hours=36))
    assert first.kind == "alert" and first.state.open and first.state.consecutive == 1
    second = decide_notification(
        first.state, drift_result(day=1), now=DAY + timedelta(days=1), renotify_after=timedelta(hours=36)
    )
    assert second.kind is None and "already sent" in second.reason and second.state.consecutive == 2
    third = decide_notification(
        second.state, drift_result(day=2), now=DAY + timedelta(days=2), renotify_after=timedelta(hours=36)
    )
    assert third.kind == "reminder"
    recovered = decide_notification(third.state, passing(3), now=DAY + timedelta(days=3))
    assert recovered.kind == "recovery" and not recovered.state.open
    quiet = decide_notification(recovered.state, passing(4), now=DAY + timedelta(days=4))
    assert quiet.kind is None


def test_a_worse_or_different_breach_is_sent_again() -> None:
    warned = decide_notification(AlertState(), drift_result(Status.WARN), now=DAY)
    worse = decide_notification(warned.state, drift_result(Status.FAIL, day=1), now=DAY + timedelta(days=1))
    assert worse.kind == "alert" and "worse" in worse.reason
    other = decide_notification(
        worse.state, drift_result(columns=("age", "tenure", "spend"), day=2), now=DAY + timedelta(days=2)
    )
    assert other.kind == "alert" and "different" in other.reason


def test_escalation_once_after_n_windows() -> None:
    state = AlertState()
    kinds = []
    for day in range(5):
        decision = decide_notification(
            state, drift_result(day=day), now=DAY + timedelta(days=day), renotify_after=None, escalate_after=3
        )
        kinds.append(decision.kind)
        state = decision.state
    assert kinds == ["alert", None, "escalation", None, None]


def test_below_min_severity_is_not_sent_and_closes_nothing_open() -> None:
    decision = decide_notification(AlertState(), drift_result(Status.WARN), now=DAY, min_severity="fail")
    assert decision.kind is None and not decision.state.open


def test_slack_message_blocks() -> None:
    message = slack_message(
        drift_result(), kind="alert", links=Links(log_url="http://airflow/log", report_url=None)
    )
    header = message["blocks"][0]["text"]["text"]
    assert header.startswith("FAIL: drift on wh:activity (2026-11-23 00:00 to 2026-11-24 00:00 UTC)")
    text = str(message["blocks"])
    assert "2 of 3 columns drifted" in text and "Drift share 67%" in text
    assert "tenure" in text and "wasserstein" in text and "0.05" in text
    assert "spend" not in text.split("```")[1]  # passing columns are not in the table
    buttons = message["blocks"][-1]["elements"]
    assert buttons == [
        {"type": "button", "text": {"type": "plain_text", "text": "Task log"}, "url": "http://airflow/log"}
    ]
    assert message["text"].startswith("FAIL: drift on wh:activity")


def test_table_lists_the_five_worst() -> None:
    result = drift_result(columns=tuple(f"c{i}" for i in range(8)))
    rows = top_rows(result)
    assert len(rows) == 5
    assert rows[0][0] == "c7"  # the largest effect first


def test_email_has_text_and_html_and_escapes() -> None:
    result = CheckResult(
        check="schema",
        dataset="wh:<features>",
        status=Status.FAIL,
        summary="`customer_age` missing; `age` appeared with the same type: renamed?",
        findings=(Finding("customer_age", "missing", Status.FAIL, threshold="present", reason="missing"),),
    )
    subject, text, html = email_message(result, kind="escalation", consecutive=3)
    assert subject == "Escalation (3 windows in a row): FAIL: schema on wh:<features>"
    assert "renamed?" in text and "customer_age" in text
    assert "&lt;features&gt;" in html and "<table" in html and "<features>" not in html
    recovery_subject, _, _ = email_message(result, kind="recovery")
    assert recovery_subject.startswith("Recovered: schema on wh:<features>")


def test_redact() -> None:
    assert (
        redact(
            "POST https://hooks.slack.com/services/T1/B2/SECRETTOKEN failed", ["/services/T1/B2/SECRETTOKEN"]
        )
        == "POST https://hooks.slack.com*** failed"
    )
    assert redact("x", ["", "ab"]) == "x"


@pytest.mark.parametrize("kind", ["alert", "reminder", "escalation", "recovery"])
def test_every_kind_renders(kind: str) -> None:
    message = slack_message(drift_result(), kind=kind)  # type: ignore[arg-type]
    assert message["blocks"][0]["type"] == "header"


def performance_result(status: Status, metric: str, value: float | None, coverage: float) -> CheckResult:
    metrics = {"metric": metric, "value": value, "baseline_value": None, "label_coverage": coverage}
    return CheckResult("performance", "model:churn", status, f"model:churn: {metric}", metrics=metrics)


def test_performance_line_without_a_value_or_baseline_renders() -> None:
    # Defect: a performance result whose main metric is undefined (value None, e.g. only positive
    # labels) raised TypeError while rendering, so its recovery message was never delivered; and a
    # missing baseline read "against baseline None".
    undefined = performance_result(Status.SKIPPED, "roc_auc", None, 0.2)
    assert headline(undefined) is None
    assert slack_message(undefined, kind="recovery")["text"].startswith("Recovered: performance")
    no_baseline = performance_result(Status.WARN, "accuracy", 0.81234, 0.5)
    assert headline(no_baseline) == "accuracy 0.812 against baseline -, label coverage 50%"
