"""Notifications people act on: what to send (de-duplication, escalation, recovery) and how it reads.

Pure: no Airflow, no I/O. The notifiers in :mod:`airflow_mlobs.notifiers` deliver what this decides.

Definitions
-----------
Breach fingerprint
    A hash of the check, the dataset and the set of ``(subject, metric)`` pairs that did not pass.
    The same columns drifting again have the same fingerprint; a new column drifting changes it.
Alert state (per channel, check and dataset)
    Whether a breach is open, its fingerprint and severity, when it was last sent, and for how many
    consecutive windows it has been breached.
Decision for a new result
    - a breach (status at or above the channel's ``min_severity``) with no open alert, or with a
      different fingerprint: ``alert``;
    - the same fingerprint: nothing, unless it got worse (a more severe status: ``alert``), it has
      now persisted for ``escalate_after`` windows (``escalation``, once), or ``renotify_after``
      has passed since the last message (``reminder``);
    - a pass (or a status below ``min_severity``) while an alert is open: ``recovery``.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from airflow_mlobs.core.readings import DriftReading, FreshnessReading, PerformanceReading
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.timeutil import format_duration

Kind = Literal["alert", "escalation", "reminder", "recovery"]
MinSeverity = Literal["warn", "fail"]
MAX_TABLE_ROWS = 5

_EMOJI = {
    Status.PASS: ":white_check_mark:",
    Status.WARN: ":warning:",
    Status.FAIL: ":red_circle:",
    Status.ERROR: ":x:",
}


def breach_fingerprint(result: CheckResult) -> str:
    """Stable hash of the check, dataset and the ``(subject, metric)`` pairs that did not pass."""
    pairs = sorted({(f.subject, f.metric) for f in result.breaches()})
    payload = repr((result.check, result.dataset, pairs))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def reaches(status: Status, min_severity: MinSeverity) -> bool:
    """Whether ``status`` is at or above ``min_severity`` (``error`` counts as ``fail``)."""
    level = Status.FAIL.severity if min_severity == "fail" else Status.WARN.severity
    return status.severity >= level


@dataclass(frozen=True)
class AlertState:
    """What a channel last said about one check and dataset."""

    open: bool = False
    fingerprint: str = ""
    status: Status = Status.PASS
    consecutive: int = 0
    escalated: bool = False
    first_sent: datetime | None = None
    last_sent: datetime | None = None


@dataclass(frozen=True)
class NotificationDecision:
    """``kind`` is ``None`` when nothing is sent; ``state`` is the state to store either way."""

    kind: Kind | None
    state: AlertState
    reason: str


def decide_notification(
    previous: AlertState,
    result: CheckResult,
    *,
    now: datetime,
    min_severity: MinSeverity = "warn",
    renotify_after: timedelta | None = timedelta(hours=24),
    escalate_after: int | None = None,
) -> NotificationDecision:
    """Apply the rules of the module docstring to a new result."""
    if not reaches(result.status, min_severity):
        if previous.open:
            return NotificationDecision(
                "recovery",
                AlertState(open=False, status=result.status, last_sent=now),
                f"{result.check} on {result.dataset} recovered",
            )
        return NotificationDecision(
            None, replace(previous, consecutive=0, status=result.status), "below min_severity"
        )

    fingerprint = breach_fingerprint(result)
    consecutive = previous.consecutive + 1 if previous.open else 1
    if not previous.open or previous.fingerprint != fingerprint:
        state = AlertState(True, fingerprint, result.status, consecutive, False, now, now)
        return NotificationDecision("alert", state, "new breach" if not previous.open else "different breach")
    state = replace(previous, consecutive=consecutive, status=result.status)
    if result.status.severity > previous.status.severity:
        return NotificationDecision("alert", replace(state, last_sent=now), "the breach got worse")
    if escalate_after is not None and consecutive >= escalate_after and not previous.escalated:
        return NotificationDecision(
            "escalation",
            replace(state, escalated=True, last_sent=now),
            f"breached for {consecutive} consecutive windows",
        )
    if (
        renotify_after is not None
        and previous.last_sent is not None
        and now - previous.last_sent >= renotify_after
    ):
        return NotificationDecision("reminder", replace(state, last_sent=now), "still breached")
    since = format_duration(now - previous.last_sent) if previous.last_sent else "earlier"
    return NotificationDecision(None, state, f"same breach already sent {since} ago")


@dataclass(frozen=True)
class Links:
    """Where to look next: the task's log in the Airflow UI and an HTML report, when there is one."""

    log_url: str | None = None
    report_url: str | None = None


def _title(result: CheckResult, kind: Kind, consecutive: int) -> str:
    window = ""
    if result.window_end is not None:
        window = (
            f" ({result.window_start:%Y-%m-%d %H:%M} to {result.window_end:%Y-%m-%d %H:%M} UTC)"
            if result.window_start
            else f" (as of {result.window_end:%Y-%m-%d %H:%M} UTC)"
        )
    if kind == "recovery":
        return f"Recovered: {result.check} on {result.dataset}{window}"
    prefix = {
        "alert": "",
        "reminder": "Still failing: ",
        "escalation": f"Escalation ({consecutive} windows in a row): ",
    }[kind]
    return f"{prefix}{result.status.value.upper()}: {result.check} on {result.dataset}{window}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 32 else text[:29] + "..."


def top_rows(result: CheckResult, limit: int = MAX_TABLE_ROWS) -> list[tuple[str, str, str, str, str]]:
    """The worst findings as ``(subject, metric, value, threshold, status)`` rows, most severe and
    largest first (drift: the most drifted features; schema: the missing and renamed columns)."""
    breaches = result.breaches()

    def size(f: Finding) -> float:
        return abs(f.value) if isinstance(f.value, int | float) and not isinstance(f.value, bool) else 0.0

    ordered = sorted(breaches, key=lambda f: (-f.status.severity, -size(f)))[:limit]
    return [(f.subject, f.metric, _cell(f.value), _cell(f.threshold), f.status.value) for f in ordered]


def context_line(result: CheckResult) -> str | None:
    """One line of the check's key numbers: drift share, accuracy against baseline, rows judged."""
    drift = DriftReading.of(result)
    if drift is not None:
        return f"Drift share {drift.drift_share:.0%} ({drift.columns_drifted} of {drift.columns_judged} columns), baseline {drift.baseline}, {drift.rows} rows"
    performance = PerformanceReading.of(result)
    if performance is not None and performance.value is not None:
        coverage = performance.label_coverage
        cov = f", label coverage {coverage:.0%}" if coverage is not None else ""
        baseline = performance.baseline_value if performance.baseline_value is not None else "-"
        return f"{performance.metric} {performance.value:.3g} against baseline {baseline}{cov}"
    freshness = FreshnessReading.of(result)
    if freshness is not None and freshness.age_seconds is not None:
        return f"Newest data {format_duration(timedelta(seconds=float(freshness.age_seconds)))} old"
    return None


def slack_message(
    result: CheckResult, *, kind: Kind, consecutive: int = 1, links: Links = Links()
) -> dict[str, Any]:
    """A Slack message (Block Kit, with ``text`` as the notification fallback)."""
    title = _title(result, kind, consecutive)
    emoji = _EMOJI[Status.PASS if kind == "recovery" else result.status] if result.status in _EMOJI else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {result.summary}"[:3000]}},
    ]
    line = context_line(result)
    if line:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    rows = top_rows(result) if kind != "recovery" else []
    if rows:
        header = ("subject", "metric", "value", "threshold", "status")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
        table = "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in [header, *rows])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{table}```"[:3000]}})
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
        for label, url in (("Task log", links.log_url), ("Report", links.report_url))
        if url
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": f"{title}: {result.summary}"[:3000], "blocks": blocks}


def email_message(
    result: CheckResult, *, kind: Kind, consecutive: int = 1, links: Links = Links()
) -> tuple[str, str, str]:
    """``(subject, plain text, html)`` for an email with both parts."""
    title = _title(result, kind, consecutive)
    rows = top_rows(result) if kind != "recovery" else []
    line = context_line(result)
    text_lines = [title, "", result.summary]
    if line:
        text_lines += ["", line]
    if rows:
        header = ("subject", "metric", "value", "threshold", "status")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
        text_lines += [""] + ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in [header, *rows]]
    for label, url in (("Task log", links.log_url), ("Report", links.report_url)):
        if url:
            text_lines += [f"{label}: {url}"]
    esc = html.escape
    parts = [f"<h2>{esc(title)}</h2>", f"<p>{esc(result.summary)}</p>"]
    if line:
        parts.append(f"<p><em>{esc(line)}</em></p>")
    if rows:
        head = "".join(
            f"<th align='left'>{esc(h)}</th>" for h in ("subject", "metric", "value", "threshold", "status")
        )
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts.append(f"<table border='1' cellpadding='4' cellspacing='0'><tr>{head}</tr>{body}</table>")
    link_html = " | ".join(
        f"<a href='{esc(url)}'>{esc(label)}</a>"
        for label, url in (("Task log", links.log_url), ("Report", links.report_url))
        if url
    )
    if link_html:
        parts.append(f"<p>{link_html}</p>")
    return title, "\n".join(text_lines) + "\n", "<html><body>" + "".join(parts) + "</body></html>"


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (webhook tokens, passwords; at least 4 characters) replaced."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
