"""Which window of data a run judges, for every kind of schedule and run.

Airflow 3 runs do not all have a data interval worth judging:

- ``CronDataIntervalTimetable`` and ``timedelta`` schedules give each run the interval it covers
  (``[2026-11-23, 2026-11-24)`` for the run of the 24th);
- ``schedule="@daily"`` and other cron strings use ``CronTriggerTimetable``: the interval is
  zero-length (start = end = the run's logical date);
- a manual run triggered without a logical date, and an asset-triggered run, have no interval at all
  (only a ``run_after`` time).

A windowed check takes ``window`` (a duration such as ``"1d"``): the window then ends at the run's
data interval end, or at its logical date, or at its ``run_after`` time when it has neither, and
spans ``window`` back. Without ``window``, a run with a zero-length or no interval is an error that
says what to write, never a silent judgement of the whole table. The chosen window records how it
was chosen (:attr:`RunWindow.basis`), and the result carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.timeutil import format_duration

DATA_INTERVAL = "data interval"
EXPLICIT = "window_start/window_end"


class WindowError(MlobsInputError):
    """The run gives no window to judge and the check was not told one."""


@dataclass(frozen=True)
class RunTimes:
    """The times of a DAG run that decide its window (all aware, UTC, or None)."""

    interval_start: datetime | None = None
    interval_end: datetime | None = None
    logical_date: datetime | None = None
    run_after: datetime | None = None

    @property
    def has_interval(self) -> bool:
        """The run has a data interval of positive length."""
        return (
            self.interval_start is not None
            and self.interval_end is not None
            and self.interval_end > self.interval_start
        )

    def anchor(self) -> tuple[datetime | None, str]:
        """Where a window of fixed length ends, and what that moment is: the data interval end, else
        the logical date, else the ``run_after`` time."""
        if self.interval_end is not None:
            return self.interval_end, "the data interval end"
        if self.logical_date is not None:
            return self.logical_date, "the logical date"
        if self.run_after is not None:
            return self.run_after, "the run-after time"
        return None, "nothing"

    def kind(self) -> str:
        """A phrase for the run's interval, for messages."""
        if self.has_interval:
            return "a data interval"
        if self.interval_start is not None and self.interval_end is not None:
            return "a zero-length data interval"
        return "no data interval"


@dataclass(frozen=True)
class RunWindow:
    """The window a check judges: ``[start, end)``, and ``basis``, a sentence saying how it was chosen."""

    start: datetime | None
    end: datetime | None
    basis: str

    @property
    def is_whole(self) -> bool:
        """No bounds at all: the whole table or file."""
        return self.start is None and self.end is None


def _zero_length_message(times: RunTimes) -> str:
    at = times.interval_end.isoformat() if times.interval_end else "?"
    return (
        f"this run has a zero-length data interval (start = end = {at}): schedule='@daily' and other "
        "cron strings use CronTriggerTimetable in Airflow 3, whose runs cover no time; pass "
        'window="1d" (the day before the run) or use schedule=CronDataIntervalTimetable(...)'
    )


def _no_interval_message() -> str:
    return (
        "this run has no data interval (a manual run triggered without a logical date, or an "
        'asset-triggered run): pass window="1d" to judge the day before the run, or give '
        "window_start and window_end"
    )


def resolve_window(
    times: RunTimes,
    *,
    window: timedelta | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    required: bool = True,
) -> RunWindow:
    """The window to judge.

    - ``start`` and/or ``end`` given (rendered ``window_start``/``window_end``): they win; a missing
      bound comes from ``window`` (back from ``end``) or the run.
    - ``window`` given: ``[anchor - window, anchor)``, the anchor being the data interval end, else
      the logical date, else the run-after time.
    - neither: the run's data interval when it has positive length. A zero-length or absent interval
      raises :class:`WindowError` saying what to write, unless ``required`` is false (a check that
      reads no time column judges the whole source anyway), which gives the whole source.
    """
    if window is not None and window <= timedelta(0):
        raise WindowError(f"window must be a positive duration, got {format_duration(window)}")
    if start is not None or end is not None:
        if end is None:
            fallback = resolve_window(times, window=window, required=required)
            end = fallback.end
        if start is None:
            if window is not None and end is not None:
                start = end - window
            else:
                start = resolve_window(times, window=window, required=required).start
        if start is not None and end is not None and start >= end:
            raise WindowError(
                f"window_start ({start.isoformat()}) must be before window_end ({end.isoformat()})"
            )
        return RunWindow(start, end, EXPLICIT)
    if window is not None:
        anchor, what = times.anchor()
        if anchor is None:
            raise WindowError(
                "this run has no data interval, logical date or run-after time to end a window at"
            )
        basis = f"the {format_duration(window)} before {what} ({anchor.astimezone(UTC).isoformat()})"
        return RunWindow(anchor - window, anchor, f"window={format_duration(window)!s}: {basis}")
    if times.has_interval:
        return RunWindow(times.interval_start, times.interval_end, DATA_INTERVAL)
    if not required:
        return RunWindow(None, None, f"the whole source (the run has {times.kind()})")
    if times.interval_start is not None and times.interval_end is not None:
        raise WindowError(_zero_length_message(times))
    raise WindowError(_no_interval_message())


def as_of_moment(times: RunTimes, now: datetime) -> tuple[datetime, str]:
    """The moment a point-in-time check (freshness) judges at: the data interval end, else the
    logical date, else the run-after time, else ``now``; with a phrase saying which."""
    anchor, what = times.anchor()
    if anchor is not None:
        return anchor, what
    return now, "the time of the check"
