"""Notifications people act on: whether to send, and what kind (de-duplication, escalation, recovery).

Pure: no Airflow, no I/O, no formatting. How a message reads is :mod:`airflow_mlobs.render`; the
notifiers in :mod:`airflow_mlobs.notifiers` deliver what this decides.

Definitions
-----------
Breach fingerprint
    A hash of the check, the dataset and the set of ``(subject, metric)`` pairs that did not pass.
    The same columns drifting again have the same fingerprint; a new column drifting changes it.
Alert state (per channel and check task: DAG, task, map index or partition, check and dataset)
    Whether a breach is open, its fingerprint and severity, when it was last sent, and for how many
    consecutive windows it has been breached. Two checks of one dataset keep a state each, so
    their fingerprints never overwrite each other.
Decision for a new result
    - a breach (status at or above the channel's ``min_severity``) with no open alert, or with a
      different fingerprint: ``alert``;
    - the same fingerprint: nothing, unless it got worse (a more severe status: ``alert``), it has
      now persisted for ``escalate_after`` windows (``escalation``, once), or ``renotify_after``
      has passed since the last message (``reminder``);
    - a pass (or a status below ``min_severity``) while an alert is open: ``recovery``.
Silence
    A stored rule (dataset, check, optional column, until, reason, who) that holds back the alert,
    escalation and reminder messages of matching breaches until it ends or is expired: the breach is
    stored and recorded as ``silenced``, and the channel's state is left as it was, so the first run
    after the silence that still finds the breach sends it. A recovery is not held back (it closes
    what people saw). ``dataset`` and ``check`` may be shell patterns (``wh:*``, ``*``); with a
    ``column`` only a breach of that column alone is silenced (another column breaching is sent).
Mute window
    A recurring period (cron expression of its start, and a duration) of a notifier during which it
    sends nothing, recoveries included; what was held back is sent on the first run after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.timeutil import format_duration

Kind = Literal["alert", "escalation", "reminder", "recovery"]
MinSeverity = Literal["warn", "fail"]


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
class Silence:
    """A stored silence (see the module docstring). ``expired_at`` is set when it was expired early."""

    id: int
    dataset: str
    check: str
    until: datetime
    reason: str
    created_by: str
    column: str | None = None
    created_at: datetime | None = None
    expired_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        """Whether the silence holds at ``at`` (before ``until``, not expired)."""
        return at < self.until and (self.expired_at is None or at < self.expired_at)

    def describe(self) -> str:
        """``"silence #3 column age by ana until 2026-11-12T00:00+00:00: upstream fixing the feed"``."""
        column = f" column {self.column}" if self.column else ""
        return f"silence #{self.id}{column} by {self.created_by} until {self.until.isoformat(timespec='minutes')}: {self.reason}"

    def matches(self, result: CheckResult) -> bool:
        """Whether the silence covers ``result``'s breach (see the module docstring)."""
        from fnmatch import fnmatchcase

        if not (fnmatchcase(result.dataset, self.dataset) and fnmatchcase(result.check, self.check)):
            return False
        if self.column is None:
            return True
        subjects = {f.subject for f in result.breaches()}
        return bool(subjects) and subjects == {self.column}


def in_mute_window(windows: list[tuple[str, timedelta]], at: datetime) -> tuple[str, timedelta] | None:
    """The mute window (cron of its start, duration) that ``at`` falls in, if any (``croniter``
    finds the latest start at or before ``at``; cron is read in ``at``'s time zone)."""
    from croniter import croniter

    for cron, duration in windows:
        start = croniter(cron, at).get_prev(datetime)
        if croniter.match(cron, at):
            start = at.replace(second=0, microsecond=0)
        if start <= at < start + duration:
            return cron, duration
    return None


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
