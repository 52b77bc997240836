"""The incremental-window planner (core/increments.py): aligned slices, partial ends, empty
windows, and which stored slices are trusted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_mlobs.core.increments import (
    Slice,
    StoredSlice,
    plan_increments,
    plan_slices,
    provenance_of,
)
from airflow_mlobs.specs.drift_incremental import incremental_arg

DAY = timedelta(days=1)
NOV = [datetime(2026, 11, d, tzinfo=UTC) for d in range(1, 15)]


def wanted(**changes: object) -> dict[str, object]:
    base = provenance_of(
        baseline="events",
        baseline_version="v1",
        edges_key="abc",
        source="src",
        max_categories=50,
        sampled=False,
    )
    return {**base, **changes}


def stored(day: datetime, **changes: object) -> StoredSlice:
    return StoredSlice(
        start=day,
        end=day + DAY,
        provenance=wanted(**changes),
        recorded_at=day + DAY + timedelta(hours=1),
        row_count=100,
    )


def test_aligned_window_is_seven_whole_days() -> None:
    slices = plan_slices(NOV[0], NOV[7], DAY)
    assert [(s.start, s.end, s.whole) for s in slices] == [(NOV[i], NOV[i + 1], True) for i in range(7)]
    assert slices[0].label(DAY) == "2026-11-01"


def test_partial_first_and_last_slices() -> None:
    start, end = NOV[0] + timedelta(hours=6), NOV[3] + timedelta(hours=2)
    slices = plan_slices(start, end, DAY)
    assert slices == [
        Slice(start, NOV[1], False),
        Slice(NOV[1], NOV[2], True),
        Slice(NOV[2], NOV[3], True),
        Slice(NOV[3], end, False),
    ]
    assert slices[0].label(DAY) == start.isoformat()
    # Inside one day: a single partial slice.
    assert plan_slices(start, start + timedelta(hours=1), DAY) == [
        Slice(start, start + timedelta(hours=1), False)
    ]


def test_empty_and_reversed_windows_have_no_slices() -> None:
    assert plan_slices(NOV[2], NOV[2], DAY) == []
    assert plan_slices(NOV[3], NOV[2], DAY) == []
    with pytest.raises(ValueError, match="positive"):
        plan_slices(NOV[0], NOV[1], timedelta(0))


def test_slices_are_utc_days_whatever_zone_the_bounds_carry() -> None:
    # 2026-03-29 is a DST change in Europe; UTC days stay 24 hours and start at UTC midnight.
    cet = timezone(timedelta(hours=1))
    start = datetime(2026, 3, 28, 1, 0, tzinfo=cet)  # = 2026-03-28 00:00 UTC
    slices = plan_slices(start, start + 3 * DAY, DAY)
    assert all(s.whole and s.end - s.start == DAY for s in slices)
    assert [s.start for s in slices] == [datetime(2026, 3, 28 + i, tzinfo=UTC) for i in range(3)]
    # Hourly increments align to whole UTC hours.
    hours = plan_slices(NOV[0] + timedelta(minutes=30), NOV[0] + timedelta(hours=3), timedelta(hours=1))
    assert [s.whole for s in hours] == [False, True, True]


def test_plan_reuses_trusted_days_and_scans_the_rest() -> None:
    slices = plan_slices(NOV[0], NOV[7], DAY)
    found = [stored(NOV[i]) for i in range(6)]
    plan = plan_increments(slices, found, wanted(), increment=DAY)
    assert plan.describe() == "6 days from the store, 1 scanned"
    metrics = plan.metrics()
    assert metrics["stored_days"] == [f"2026-11-0{i}" for i in range(1, 7)]
    assert metrics["scanned_days"] == ["2026-11-07"]
    assert metrics["scan_reasons"] == {"2026-11-07": "not stored"}
    assert metrics["increment"] == "1d"
    assert metrics["stored_as_of"]["2026-11-01"] == "2026-11-02T01:00:00+00:00"


def test_untrusted_days_are_scanned_saying_why() -> None:
    slices = plan_slices(NOV[0], NOV[6], DAY)
    found = [
        stored(NOV[0], baseline_version="v0"),
        stored(NOV[1], sampled=True),
        stored(NOV[2], edges_key="other"),
        stored(NOV[3], source="elsewhere"),
        StoredSlice(NOV[4], NOV[5], {}, None, 100),
        StoredSlice(NOV[5], NOV[6], wanted(), None, 0),
    ]
    plan = plan_increments(slices, found, wanted(), increment=DAY)
    reasons = list(plan.metrics()["scan_reasons"].values())
    assert plan.reused == []
    assert reasons == [
        "profiled against baseline version v0 (this check uses v1)",
        "stored from a sampled profile",
        "profiled with other bin edges or categories",
        "profiled with another source, where or timestamp column",
        "stored without provenance (by an older check, or a partitioned one)",
        "stored with no rows (data may have arrived since)",
    ]


def test_joint_needed_and_newest_of_duplicates() -> None:
    slices = plan_slices(NOV[0], NOV[1], DAY)
    old = stored(NOV[0], baseline_version="v0")
    new = StoredSlice(NOV[0], NOV[1], wanted(), NOV[5], 10, has_joint=False)
    plan = plan_increments(slices, [new, old], wanted(), increment=DAY, needs_joint=True)
    assert plan.scanned[0].reason == "stored without a covariance profile (joint drift)"
    plan = plan_increments(slices, [old, new], wanted(), increment=DAY)
    assert plan.reused[0].stored is new


def test_recheck_last_and_rescan_all() -> None:
    slices = plan_slices(NOV[0], NOV[7], DAY)
    found = [stored(NOV[i]) for i in range(6)]
    plan = plan_increments(slices, found, wanted(), increment=DAY, recheck_last=2)
    assert plan.metrics()["scanned_days"] == ["2026-11-05", "2026-11-06", "2026-11-07"]
    assert "incremental_recheck_last=2" in plan.scanned[0].reason  # type: ignore[operator]
    everything = plan_increments(slices, found, wanted(), increment=DAY, rescan_all="task try 2")
    assert everything.describe() == "0 days from the store, 7 scanned"
    with pytest.raises(ValueError, match="recheck_last"):
        plan_increments(slices, found, wanted(), increment=DAY, recheck_last=-1)


def test_incremental_argument_errors_name_the_argument() -> None:
    assert incremental_arg("t", "1d", timestamp_column="ts") == DAY
    assert incremental_arg("t", None, timestamp_column=None) is None
    with pytest.raises(ValueError, match="t: incremental='1d' needs timestamp_column"):
        incremental_arg("t", "1d", timestamp_column=None)
    with pytest.raises(ValueError, match="does not combine with sample"):
        incremental_arg("t", "1d", timestamp_column="ts", sample="1%")
    with pytest.raises(ValueError, match="does not combine with sample"):
        incremental_arg("t", "1d", timestamp_column="ts", sample_rows=1000)
    with pytest.raises(ValueError, match="partition"):
        incremental_arg("t", "1d", timestamp_column="ts", partition="p1")
    with pytest.raises(ValueError, match="incremental_recheck_last"):
        incremental_arg("t", "1d", timestamp_column="ts", recheck_last=-1)
    with pytest.raises(ValueError, match="positive"):
        incremental_arg("t", "0d", timestamp_column="ts")
    with pytest.raises(ValueError, match="not a duration"):
        incremental_arg("t", "daily", timestamp_column="ts")


def test_operator_rejects_impossible_incremental_checks_at_parse_time() -> None:
    from airflow_mlobs.operators import DriftCheckOperator

    common = dict(conn_id="wh", baseline="events", window="7d")
    with pytest.raises(ValueError, match="weekly: incremental='1d' needs timestamp_column"):
        DriftCheckOperator(task_id="weekly", sql="SELECT * FROM events", incremental="1d", **common)
    with pytest.raises(ValueError, match="weekly: incremental='1d' does not combine with sample"):
        DriftCheckOperator(
            task_id="weekly", table="events", timestamp_column="ts", incremental="1d", sample="1%", **common
        )
    task = DriftCheckOperator(
        task_id="weekly", table="events", timestamp_column="ts", incremental="1d", **common
    )
    assert task.increment == DAY
