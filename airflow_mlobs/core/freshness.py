"""Freshness: is the newest data as new as it should be?

Definitions
-----------
``as_of``
    The moment the data is judged at. In Airflow this is the run's ``data_interval_end`` by default,
    so a backfill judges each interval as of its own time, not as of today.
``newest``
    The newest timestamp at or before ``as_of``. Rows stamped after ``as_of`` did not exist yet from
    the interval's point of view; they are counted (``rows_after_as_of``) but do not make an old
    interval look fresh.
``age``
    ``as_of - newest``. The check fails when ``age > max_age`` and warns when ``age > warn_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.timeutil import format_duration

CHECK = "freshness"


@dataclass(frozen=True)
class FreshnessObservation:
    """What the gatherer saw. All datetimes are aware (UTC).

    ``row_count`` and ``non_null_count`` are only gathered when ``newest`` is ``None`` (to tell
    "no rows" from "only NULL timestamps" without scanning a healthy table).
    """

    newest: datetime | None
    row_count: int | None = None
    non_null_count: int | None = None
    rows_after_as_of: int | None = None


def judge_freshness(
    *,
    dataset: str,
    observation: FreshnessObservation,
    as_of: datetime,
    max_age: timedelta,
    warn_after: timedelta | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """Judge the age of the newest data against ``max_age`` (fail) and ``warn_after`` (warn).

    An empty source fails with reason ``"no rows"``; a source whose timestamps are all NULL fails with
    ``"only NULL timestamps"``; a source whose rows are all newer than ``as_of`` fails with a reason
    that says so. Never raises for these cases.
    """
    if warn_after is not None and warn_after > max_age:
        raise ValueError(
            f"warn_after ({format_duration(warn_after)}) must not exceed max_age ({format_duration(max_age)})"
        )
    # Timestamps as ISO text: metrics hold JSON values, so a stored result reads back equal.
    metrics: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "max_age_seconds": max_age.total_seconds(),
        "warn_after_seconds": warn_after.total_seconds() if warn_after is not None else None,
        "newest": observation.newest.isoformat() if observation.newest is not None else None,
        "age_seconds": None,
    }
    if observation.rows_after_as_of is not None:
        metrics["rows_after_as_of"] = observation.rows_after_as_of

    def result(status: Status, summary: str, finding: Finding) -> CheckResult:
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=status,
            summary=summary,
            window_start=window_start,
            window_end=window_end,
            metrics=metrics,
            findings=(finding,),
        )

    limit = format_duration(max_age)

    if observation.newest is None:
        if observation.row_count == 0:
            reason = "no rows"
        elif observation.row_count is not None and observation.non_null_count == 0:
            reason = f"only NULL timestamps ({observation.row_count} rows, none with a timestamp)"
        else:
            reason = f"no rows at or before {as_of.isoformat()}"
            if observation.rows_after_as_of:
                reason += f" ({observation.rows_after_as_of} rows are newer: they arrived after that time)"
        metrics["row_count"] = observation.row_count
        finding = Finding(subject="newest", metric="age", status=Status.FAIL, threshold=limit, reason=reason)
        return result(Status.FAIL, f"{dataset} has no data to judge: {reason}", finding)

    age = as_of - observation.newest
    metrics["age_seconds"] = age.total_seconds()
    age_text = format_duration(age)
    if age > max_age:
        status = Status.FAIL
        reason = f"newest row is {age_text} old, over the {limit} limit"
        summary = f"{dataset} is stale: newest row {age_text} old (limit {limit})"
    elif warn_after is not None and age > warn_after:
        status = Status.WARN
        reason = f"newest row is {age_text} old, over the {format_duration(warn_after)} warning level"
        summary = f"{dataset} is getting stale: newest row {age_text} old (warn {format_duration(warn_after)}, limit {limit})"
    else:
        status = Status.PASS
        reason = f"newest row is {age_text} old, within {limit}"
        summary = f"{dataset} is fresh: newest row {age_text} old (limit {limit})"
    finding = Finding(
        subject="newest", metric="age", status=status, value=age_text, threshold=limit, reason=reason
    )
    return result(status, summary, finding)


def judge_partition(
    *,
    dataset: str,
    partition: str,
    exists: bool,
    file_count: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """Judge whether the partition a run expects exists and holds at least one file."""
    if exists and file_count > 0:
        status, reason = Status.PASS, f"partition {partition} present with {file_count} file(s)"
    elif exists:
        status, reason = Status.FAIL, f"partition {partition} exists but is empty"
    else:
        status, reason = Status.FAIL, f"partition {partition} is missing"
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=f"{dataset}: {reason}",
        window_start=window_start,
        window_end=window_end,
        metrics={"partition": partition, "exists": exists, "file_count": file_count},
        findings=(
            Finding(subject=partition, metric="partition", status=status, value=file_count, reason=reason),
        ),
    )
