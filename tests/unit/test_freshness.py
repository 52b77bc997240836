"""Freshness judgement: boundaries, empty sources, rows newer than ``as_of``, partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_mlobs.core.freshness import FreshnessObservation, judge_freshness, judge_partition
from airflow_mlobs.core.result import CheckResult, Status

AS_OF = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
DATASET = "warehouse:transactions"


def _judge(
    newest: datetime | None = None,
    *,
    max_age: timedelta = timedelta(hours=6),
    warn_after: timedelta | None = None,
    **observation: int | None,
) -> CheckResult:
    return judge_freshness(
        dataset=DATASET,
        observation=FreshnessObservation(newest=newest, **observation),
        as_of=AS_OF,
        max_age=max_age,
        warn_after=warn_after,
    )


def test_fresh_data_passes() -> None:
    result = _judge(AS_OF - timedelta(hours=1, minutes=30))
    assert result.status is Status.PASS
    assert result.check == "freshness"
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert finding.status is Status.PASS
    assert finding.value == "1h 30m"
    assert finding.threshold == "6h"
    assert finding.reason == "newest row is 1h 30m old, within 6h"


def test_age_exactly_max_age_passes() -> None:
    result = _judge(AS_OF - timedelta(hours=6))
    assert result.status is Status.PASS
    assert result.metrics["age_seconds"] == 6 * 3600


def test_one_second_over_max_age_fails() -> None:
    result = _judge(AS_OF - timedelta(hours=6, seconds=1))
    assert result.status is Status.FAIL
    assert result.is_breach
    assert result.metrics["age_seconds"] == 6 * 3600 + 1
    assert "over the 6h limit" in result.findings[0].reason
    assert result.summary.startswith(f"{DATASET} is stale")


def test_warn_boundaries() -> None:
    at_warn = _judge(AS_OF - timedelta(hours=4), warn_after=timedelta(hours=4))
    assert at_warn.status is Status.PASS
    over_warn = _judge(AS_OF - timedelta(hours=4, seconds=1), warn_after=timedelta(hours=4))
    assert over_warn.status is Status.WARN
    assert not over_warn.is_breach
    assert "4h warning level" in over_warn.findings[0].reason
    assert DATASET in over_warn.summary
    at_max = _judge(AS_OF - timedelta(hours=6), warn_after=timedelta(hours=4))
    assert at_max.status is Status.WARN
    over_max = _judge(AS_OF - timedelta(hours=6, seconds=1), warn_after=timedelta(hours=4))
    assert over_max.status is Status.FAIL


def test_warn_after_equal_to_max_age_is_allowed() -> None:
    result = _judge(AS_OF - timedelta(hours=6, seconds=1), warn_after=timedelta(hours=6))
    assert result.status is Status.FAIL


def test_warn_after_above_max_age_raises() -> None:
    with pytest.raises(ValueError) as info:
        _judge(AS_OF, warn_after=timedelta(hours=7))
    assert "warn_after (7h)" in str(info.value)
    assert "max_age (6h)" in str(info.value)


def test_no_rows() -> None:
    result = _judge(None, row_count=0, non_null_count=0)
    assert result.status is Status.FAIL
    assert result.findings[0].status is Status.FAIL
    assert result.findings[0].reason == "no rows"
    assert result.summary == f"{DATASET} has no data to judge: no rows"
    assert result.metrics["row_count"] == 0
    assert result.metrics["age_seconds"] is None


def test_only_null_timestamps() -> None:
    result = _judge(None, row_count=12, non_null_count=0)
    assert result.status is Status.FAIL
    reason = result.findings[0].reason
    assert reason.startswith("only NULL timestamps")
    assert "12 rows" in reason
    assert "no rows" not in reason
    assert result.metrics["row_count"] == 12


def test_all_rows_after_as_of() -> None:
    result = _judge(None, row_count=3, non_null_count=3, rows_after_as_of=3)
    assert result.status is Status.FAIL
    reason = result.findings[0].reason
    assert AS_OF.isoformat() in reason
    assert "3 rows are newer" in reason
    assert reason != "no rows"
    assert result.metrics["rows_after_as_of"] == 3


def test_newest_missing_without_counts() -> None:
    result = _judge(None)
    assert result.status is Status.FAIL
    assert result.findings[0].reason == f"no rows at or before {AS_OF.isoformat()}"


def test_rows_after_as_of_do_not_make_data_fresh() -> None:
    # The gatherer only reports the newest row at or before as_of; newer rows are only counted.
    result = _judge(AS_OF - timedelta(days=2), rows_after_as_of=500)
    assert result.status is Status.FAIL
    assert result.metrics["rows_after_as_of"] == 500


def test_metrics() -> None:
    newest = AS_OF - timedelta(hours=2)
    result = _judge(newest, warn_after=timedelta(hours=1))
    metrics = result.metrics
    assert metrics["age_seconds"] == 7200.0
    assert metrics["max_age_seconds"] == 21600.0
    assert metrics["warn_after_seconds"] == 3600.0
    assert metrics["as_of"] == AS_OF.isoformat()
    assert metrics["newest"] == newest.isoformat()
    assert "rows_after_as_of" not in metrics


def test_summary_mentions_dataset() -> None:
    for result in (
        _judge(AS_OF - timedelta(hours=1)),
        _judge(AS_OF - timedelta(days=1)),
        _judge(None, row_count=0),
    ):
        assert DATASET in result.summary


def test_window_is_carried() -> None:
    start, end = AS_OF - timedelta(days=1), AS_OF
    result = judge_freshness(
        dataset=DATASET,
        observation=FreshnessObservation(newest=AS_OF),
        as_of=AS_OF,
        max_age=timedelta(hours=1),
        window_start=start,
        window_end=end,
    )
    assert (result.window_start, result.window_end) == (start, end)


@pytest.mark.parametrize(
    "result",
    [
        _judge(AS_OF - timedelta(hours=1)),
        _judge(AS_OF - timedelta(hours=5), warn_after=timedelta(hours=4)),
        _judge(AS_OF - timedelta(days=3)),
        _judge(None, row_count=0, non_null_count=0),
        _judge(None, row_count=3, non_null_count=3, rows_after_as_of=3),
    ],
)
def test_json_round_trip(result: CheckResult) -> None:
    assert CheckResult.from_json(result.to_json()) == result


def test_partition_present() -> None:
    result = judge_partition(dataset="lake:events", partition="dt=2026-11-24", exists=True, file_count=4)
    assert result.status is Status.PASS
    assert result.findings[0].value == 4
    assert result.findings[0].subject == "dt=2026-11-24"
    assert "present with 4 file(s)" in result.findings[0].reason
    assert result.metrics == {"partition": "dt=2026-11-24", "exists": True, "file_count": 4}
    assert result.summary.startswith("lake:events")


def test_partition_empty() -> None:
    result = judge_partition(dataset="lake:events", partition="dt=2026-11-24", exists=True, file_count=0)
    assert result.status is Status.FAIL
    assert result.findings[0].reason == "partition dt=2026-11-24 exists but is empty"


def test_partition_missing() -> None:
    result = judge_partition(dataset="lake:events", partition="dt=2026-11-24", exists=False, file_count=0)
    assert result.status is Status.FAIL
    assert result.findings[0].reason == "partition dt=2026-11-24 is missing"
    assert CheckResult.from_json(result.to_json()) == result


def test_freshness_spec_on_files_without_airflow(tmp_path: Path) -> None:
    """The spec alone, on a partition and on files' modification times; it round-trips through
    ``to_kwargs`` (as the trigger rebuilds it)."""
    from airflow_mlobs.specs.freshness import FreshnessSpec

    partition = tmp_path / "dt=2026-11-25"
    partition.mkdir()
    (partition / "part-0.parquet").write_bytes(b"x")
    spec = FreshnessSpec(partition=str(partition))
    spec.validate("f")
    assert FreshnessSpec(**spec.to_kwargs()) == spec
    assert spec.evaluate(as_of=AS_OF).status is Status.PASS
    missing = FreshnessSpec(partition=str(tmp_path / "dt=2026-11-26")).evaluate(as_of=AS_OF)
    assert missing.status is Status.FAIL and missing.dataset.endswith("dt=2026-11-26")
    now = datetime.now(UTC)
    files = FreshnessSpec(path=str(partition), max_age="1h").evaluate(as_of=now + timedelta(hours=2))
    assert files.status is Status.FAIL  # modified about 2 h before as_of


def test_freshness_spec_rejects_a_literal_duration_typo() -> None:
    from airflow_mlobs.specs.freshness import FreshnessSpec

    with pytest.raises(ValueError, match="f: warn_after"):
        FreshnessSpec(path="p", max_age="6h", warn_after="2 hours").validate("f")
    FreshnessSpec(path="p", max_age="{{ params.age }}").validate("f")  # read when rendered
