"""The shared result model: JSON form, compact XCom form, status ordering and the log table."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from airflow_mlobs.core.result import (
    SCHEMA_VERSION,
    CheckResult,
    Finding,
    Status,
    error_result,
    worst,
)
from airflow_mlobs.render.text import findings_table


def _result(**overrides: object) -> CheckResult:
    fields: dict[str, object] = {
        "check": "schema",
        "dataset": "warehouse:customer_features",
        "status": Status.FAIL,
        "summary": "warehouse:customer_features breaks contract customer_features",
        "window_start": datetime(2026, 11, 24, tzinfo=UTC),
        "window_end": datetime(2026, 11, 25, tzinfo=UTC),
        "metrics": {"columns_observed": 6, "missing": ["customer_age"], "ratio": 0.25, "nested": {"a": 1}},
        "findings": (
            Finding(
                subject="customer_age",
                metric="missing",
                status=Status.FAIL,
                threshold="present",
                reason="`customer_age` missing",
            ),
            Finding(subject="age", metric="added", status=Status.PASS, value="integer (int64)"),
            Finding(subject="region", metric="nullable", status=Status.WARN, value=0.5, threshold=0.0),
        ),
    }
    fields.update(overrides)
    return CheckResult(**fields)  # type: ignore[arg-type]


# --- JSON round trip -------------------------------------------------------------------------------


def test_check_result_json_round_trip_is_equal() -> None:
    result = _result()
    text = result.to_json()
    back = CheckResult.from_json(text)
    assert back == result
    assert back.window_start is not None and back.window_start.utcoffset() == timedelta(0)
    assert back.to_json() == text


def test_round_trip_keeps_a_non_utc_offset_instant() -> None:
    start = datetime(2026, 7, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    result = _result(window_start=start, window_end=None)
    back = CheckResult.from_json(result.to_json())
    assert back.window_start == start
    assert back.window_end is None


def test_round_trip_without_window_or_findings() -> None:
    result = CheckResult(check="freshness", dataset="files:/data", status=Status.PASS, summary="ok")
    back = CheckResult.from_json(result.to_json())
    assert back == result
    assert back.findings == ()
    assert back.window_start is None and back.window_end is None


def test_finding_dict_round_trip_is_equal() -> None:
    finding = Finding(
        subject="monthly_spend", metric="type", status=Status.WARN, value="x", threshold=3, reason="why"
    )
    assert Finding.from_dict(finding.to_dict()) == finding
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_to_dict_shape() -> None:
    data = _result().to_dict()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["status"] == "fail"
    assert data["window"] == {"start": "2026-11-24T00:00:00+00:00", "end": "2026-11-25T00:00:00+00:00"}
    assert [f["subject"] for f in data["findings"]] == ["customer_age", "age", "region"]
    assert data["findings"][0]["status"] == "fail"


# --- strict JSON -----------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name} in output")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_metrics_are_stored_as_null(bad: float) -> None:
    result = _result(
        metrics={"psi": bad, "ok": 1.5, "series": [1.0, bad], "nested": {"x": bad}},
        findings=(Finding(subject="c", metric="psi", status=Status.FAIL, value=bad, threshold=bad),),
    )
    text = result.to_json()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=_reject_constant)
    assert data["metrics"] == {"psi": None, "ok": 1.5, "series": [1.0, None], "nested": {"x": None}}
    assert data["findings"][0]["value"] is None
    assert data["findings"][0]["threshold"] is None
    compact = json.dumps(result.compact(), allow_nan=False)
    assert json.loads(compact, parse_constant=_reject_constant)["metrics"]["psi"] is None


def test_numpy_scalars_serialize_as_plain_json() -> None:
    result = _result(
        metrics={
            "count": np.int64(42),
            "small": np.int32(-3),
            "mean": np.float64(0.5),
            "f32": np.float32(0.25),
            "flag": np.bool_(True),
            "nan64": np.float64("nan"),
            "inf32": np.float32("inf"),
        },
        findings=(Finding(subject="c", metric="m", status=Status.PASS, value=np.int64(7)),),
    )
    data = json.loads(result.to_json(), parse_constant=_reject_constant)
    assert data["metrics"] == {
        "count": 42,
        "small": -3,
        "mean": 0.5,
        "f32": 0.25,
        "flag": True,
        "nan64": None,
        "inf32": None,
    }
    assert type(data["metrics"]["count"]) is int
    assert type(data["metrics"]["flag"]) is bool
    assert data["findings"][0]["value"] == 7


def test_datetime_metric_serializes_as_iso_text() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = json.loads(_result(metrics={"as_of": moment}).to_json())
    assert data["metrics"]["as_of"] == "2026-01-02T03:04:05+00:00"


# --- schema version -------------------------------------------------------------------------------


def test_newer_schema_version_raises_clear_error() -> None:
    data = _result().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError) as info:
        CheckResult.from_dict(data)
    message = str(info.value)
    assert f"schema_version {SCHEMA_VERSION + 1}" in message
    assert "upgrade airflow-mlobs" in message


def test_missing_schema_version_reads_as_current() -> None:
    data = _result().to_dict()
    del data["schema_version"]
    assert CheckResult.from_dict(data).schema_version == SCHEMA_VERSION


# --- compact form ---------------------------------------------------------------------------------


def _many_findings() -> tuple[Finding, ...]:
    statuses = [
        Status.PASS,
        Status.WARN,
        Status.FAIL,
        Status.ERROR,
        Status.WARN,
        Status.FAIL,
        Status.SKIPPED,
        Status.WARN,
        Status.FAIL,
        Status.PASS,
    ]
    return tuple(
        Finding(subject=f"col{i}", metric="m", status=s, reason=f"reason {i}") for i, s in enumerate(statuses)
    )


def test_compact_keeps_only_the_worst_five_and_counts() -> None:
    result = _result(status=Status.ERROR, findings=_many_findings())
    compact = result.compact()
    assert compact["findings_total"] == 10
    assert compact["findings_not_passing"] == 7
    top = compact["top_findings"]
    assert len(top) == 5
    # error first, then the three fails in their original order, then the first warn.
    assert [f["subject"] for f in top] == ["col3", "col2", "col5", "col8", "col1"]
    assert [f["status"] for f in top] == ["error", "fail", "fail", "fail", "warn"]
    assert "findings" not in compact
    json.dumps(compact, allow_nan=False)


def test_compact_max_findings_and_passing_only() -> None:
    result = _result(status=Status.ERROR, findings=_many_findings())
    assert [f["subject"] for f in result.compact(max_findings=2)["top_findings"]] == ["col3", "col2"]
    passing = _result(
        status=Status.PASS,
        findings=(Finding(subject="a", metric="m", status=Status.PASS),),
    ).compact()
    assert passing["top_findings"] == []
    assert passing["findings_total"] == 1
    assert passing["findings_not_passing"] == 0


def test_compact_form_reads_back_with_its_top_findings() -> None:
    result = _result(status=Status.ERROR, findings=_many_findings())
    back = CheckResult.from_dict(json.loads(json.dumps(result.compact())))
    assert back.status is Status.ERROR
    assert back.dataset == result.dataset
    assert [f.subject for f in back.findings] == ["col3", "col2", "col5", "col8", "col1"]


# --- status ordering ------------------------------------------------------------------------------


def test_status_severity_order() -> None:
    order = [Status.SKIPPED, Status.PASS, Status.WARN, Status.FAIL, Status.ERROR]
    assert [s.severity for s in order] == sorted(s.severity for s in order)
    assert len({s.severity for s in order}) == 5
    assert sorted(Status, key=lambda s: s.severity) == order


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([Status.PASS, Status.WARN], Status.WARN),
        ([Status.WARN, Status.FAIL, Status.PASS], Status.FAIL),
        ([Status.FAIL, Status.ERROR], Status.ERROR),
        ([Status.ERROR, Status.FAIL], Status.ERROR),
        ([Status.SKIPPED, Status.PASS], Status.PASS),
        ([Status.SKIPPED], Status.SKIPPED),
    ],
)
def test_worst(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) is expected
    assert worst(iter(statuses)) is expected


def test_worst_of_nothing_is_the_default() -> None:
    assert worst([]) is Status.PASS
    assert worst([], default=Status.FAIL) is Status.FAIL


def test_breach_statuses() -> None:
    assert not Status.PASS.is_breach
    assert not Status.WARN.is_breach
    assert not Status.SKIPPED.is_breach
    assert Status.FAIL.is_breach
    assert Status.ERROR.is_breach
    assert not _result(status=Status.WARN).is_breach
    assert _result(status=Status.FAIL).is_breach
    assert _result(status=Status.ERROR).is_breach


def test_breaches_are_not_passing_findings_worst_first() -> None:
    result = _result(findings=_many_findings())
    breaches = result.breaches()
    assert [f.status for f in breaches] == [Status.ERROR] + [Status.FAIL] * 3 + [Status.WARN] * 3
    assert all(f.status not in (Status.PASS, Status.SKIPPED) for f in breaches)


def test_with_window_copies() -> None:
    result = _result(window_start=None, window_end=None)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    moved = result.with_window(start, end)
    assert (moved.window_start, moved.window_end) == (start, end)
    assert result.window_start is None
    assert moved.findings == result.findings


# --- error result and table -----------------------------------------------------------------------


def test_error_result_shape() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    result = error_result(
        check="schema",
        dataset="warehouse:t",
        message="table t does not exist",
        subject="t",
        window_start=start,
    )
    assert result.status is Status.ERROR
    assert result.is_breach
    assert result.summary == "table t does not exist"
    assert result.window_start == start and result.window_end is None
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert finding.subject == "t"
    assert finding.metric == "error"
    assert finding.status is Status.ERROR
    assert finding.reason == "table t does not exist"
    assert CheckResult.from_json(result.to_json()) == result


def test_error_result_default_subject() -> None:
    result = error_result(check="freshness", dataset="d", message="boom")
    assert result.findings[0].subject == "check"
    assert result.metrics == {}


def test_findings_table_has_subjects_and_reasons_worst_first() -> None:
    result = _result(
        findings=(
            Finding(subject="tenure_months", metric="type", status=Status.WARN, reason="is float"),
            Finding(
                subject="customer_age", metric="missing", status=Status.FAIL, reason="`customer_age` missing"
            ),
            Finding(subject="region", metric="added", status=Status.PASS, value=0.123456789, reason=""),
        )
    )
    table = findings_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["subject", "metric", "status", "value", "threshold", "reason"]
    assert len(lines) == 4
    assert "customer_age" in lines[1] and "`customer_age` missing" in lines[1] and "fail" in lines[1]
    assert "tenure_months" in lines[2] and "is float" in lines[2]
    assert "region" in lines[3] and "0.1235" in lines[3]


def test_findings_table_truncates_rows() -> None:
    findings = tuple(
        Finding(subject=f"c{i}", metric="m", status=Status.FAIL, reason=f"r{i}") for i in range(25)
    )
    table = findings_table(_result(findings=findings), max_rows=20)
    lines = table.splitlines()
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "... 5 more findings"


def test_float_value_in_table_is_short() -> None:
    table = findings_table(
        _result(
            findings=(Finding(subject="x", metric="m", status=Status.FAIL, value=math.pi, threshold=None),)
        )
    )
    assert "3.142" in table
    assert "3.14159" not in table


# --------------------------------------------------------------------------------------------------
# Typed readings: what the gate and the notifications read, from what the judges write
# --------------------------------------------------------------------------------------------------


def test_drift_reading_reads_what_the_judge_writes() -> None:
    import pandas as pd

    from airflow_mlobs.core.drift import compare
    from airflow_mlobs.core.readings import DriftReading
    from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    current = pd.DataFrame({"a": rng.normal(3, 1, 500), "b": rng.normal(0, 1, 500)})
    baseline = build_baseline(reference, name="features", version="v1")
    result = compare(baseline, profile_frame(current, baseline.columns.values()))
    stored = CheckResult.from_json(result.to_json())
    reading = DriftReading.of(stored)
    assert reading is not None
    assert (reading.rows, reading.reference_rows, reading.baseline) == (500, 2000, "features/v1")
    assert (reading.columns_judged, reading.columns_drifted, reading.drift_share) == (2, 1, 0.5)
    assert reading.drifted() == ["a"] and reading.drifted_columns[0].method == "wasserstein"
    # Written through the same class: the metrics hold the reading's form exactly.
    assert {k: stored.metrics[k] for k in reading.to_metrics()} == reading.to_metrics()
    assert DriftReading.of(_result()) is None  # another check


def test_freshness_reading_reads_what_the_judge_writes() -> None:
    from airflow_mlobs.core.freshness import FreshnessObservation, judge_freshness
    from airflow_mlobs.core.readings import FreshnessReading

    as_of = datetime(2026, 11, 25, tzinfo=UTC)
    result = judge_freshness(
        dataset="d",
        observation=FreshnessObservation(newest=as_of - timedelta(hours=2)),
        as_of=as_of,
        max_age=timedelta(hours=6),
        warn_after=None,
    )
    assert FreshnessReading.of(CheckResult.from_json(result.to_json())) == FreshnessReading(7200.0)
    empty = judge_freshness(
        dataset="d",
        observation=FreshnessObservation(newest=None, row_count=0),
        as_of=as_of,
        max_age=timedelta(hours=6),
        warn_after=None,
    )
    assert FreshnessReading.of(empty) == FreshnessReading(None)


def test_readings_never_take_a_bool_or_text_for_a_number() -> None:
    from airflow_mlobs.core.readings import DriftReading, PerformanceReading

    drift = _result(check="drift", metrics={"drift_share": True})
    assert DriftReading.of(drift) is None
    performance = _result(check="performance", metrics={"drop": "0.2", "value": 0.7})
    reading = PerformanceReading.of(performance)
    assert reading is not None and reading.drop is None and reading.value == 0.7
    assert reading.metric == "metric"
