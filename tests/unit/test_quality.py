"""Data quality: mapping Great Expectations validation results, loading suites, starter suites."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlobs.cli_suite import add_suite_command, suite_command
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.quality import (
    SuiteError,
    describe_expected,
    expectation_severity,
    judge_validation,
    load_suite_file,
    suite_from_baseline,
)
from airflow_mlobs.core.result import Status
from airflow_mlobs.render.text import findings_table
from airflow_mlobs.sources.drift_frame import build_baseline
from airflow_mlobs.sources.quality import build_suite, validate_frame

ROOT = Path(__file__).resolve().parents[2]


def result(kind: str, kwargs: dict[str, Any], success: bool, **extra: Any) -> dict[str, Any]:
    meta = extra.pop("meta", {})
    severity = extra.pop("severity", "critical")
    exception = extra.pop("exception_info", {"raised_exception": False})
    return {
        "success": success,
        "expectation_config": {"type": kind, "kwargs": kwargs, "meta": meta, "severity": severity},
        "result": extra,
        "exception_info": exception,
    }


def test_failed_range_expectation_names_column_share_range_and_examples() -> None:
    validation = {
        "success": False,
        "suite_name": "activity",
        "results": [
            result(
                "expect_column_values_to_be_between",
                {
                    "column": "customer_age",
                    "min_value": 18,
                    "max_value": 100,
                    "mostly": 0.999,
                    "batch_id": "x",
                },
                False,
                unexpected_count=4,
                unexpected_percent=0.4,
                partial_unexpected_list=[150, 151, 150, 160],
            ),
            result("expect_column_values_to_not_be_null", {"column": "region"}, True, unexpected_percent=0.0),
        ],
    }
    checked = judge_validation(validation, dataset="wh:customer_activity")
    assert checked.status is Status.FAIL
    age = checked.findings[0]
    assert (age.subject, age.metric, age.status) == (
        "customer_age",
        "expect_column_values_to_be_between",
        Status.FAIL,
    )
    assert age.value == 0.4
    assert age.threshold == "18..100, mostly 99.9%"
    assert age.reason.startswith(
        # Distinct values; the sample holds all 4 unexpected rows, so the counts are exact.
        "`customer_age`: 0.4% of values (4 rows) outside 18..100 (e.g. 150 x2, 151, 160)"
    )
    assert "mostly 0.999" in age.reason
    assert checked.metrics["evaluated_expectations"] == 2
    assert checked.metrics["successful_expectations"] == 1
    assert checked.metrics["failed_expectations"] == 1
    assert checked.metrics["success_percent"] == 50.0
    assert checked.summary.startswith(
        "wh:customer_activity: suite activity: 1 of 2 expectations failed: `customer_age`"
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"meta": {"severity": "warn"}, "severity": "critical"}, Status.WARN),
        ({"meta": {"severity": "fail"}, "severity": "warning"}, Status.FAIL),
        ({"meta": {}, "severity": "warning"}, Status.WARN),
        ({"meta": {}, "severity": "info"}, Status.WARN),
        ({"meta": {}, "severity": "critical"}, Status.FAIL),
        ({}, Status.FAIL),
    ],
)
def test_severity_from_meta_then_great_expectations(config: dict[str, Any], expected: Status) -> None:
    assert expectation_severity(config) is expected


def test_warn_severity_and_aggregate_expectation() -> None:
    validation = {
        "results": [
            result(
                "expect_table_row_count_to_be_between",
                {"min_value": 200, "max_value": 600},
                False,
                meta={"severity": "warn"},
                observed_value=12,
            )
        ]
    }
    checked = judge_validation(validation, dataset="wh:t", suite_name="s")
    finding = checked.findings[0]
    assert (finding.subject, finding.status, finding.value, finding.threshold) == (
        "table",
        Status.WARN,
        12,
        "200..600",
    )
    assert finding.reason == "table: row count 12, expected 200..600"
    assert checked.status is Status.WARN and checked.metrics["row_count"] == 12


def test_expectation_that_raised_is_an_error_naming_the_missing_column() -> None:
    nested = {
        "MetricConfigurationID(metric_name='column_values.between.condition')": {
            "exception_message": 'Error: The column "age" in BatchData does not exist.',
            "exception_traceback": "...",
            "raised_exception": True,
        }
    }
    validation = {
        "results": [
            result(
                "expect_column_values_to_be_between",
                {"column": "age", "min_value": 0},
                False,
                exception_info=nested,
            )
        ]
    }
    checked = judge_validation(validation, dataset="wh:t", suite_name="s")
    assert checked.status is Status.ERROR
    assert checked.findings[0].subject == "age"
    assert "`age` does not exist in wh:t" in checked.summary
    assert checked.metrics["errored_expectations"] == 1


def test_describe_expected() -> None:
    assert describe_expected(
        "expect_column_values_to_be_in_set", {"value_set": ["a", "b"], "mostly": 0.95}
    ) == ("in {'a', 'b'}, mostly 95%")
    assert describe_expected("expect_column_values_to_be_between", {"min_value": 0}) == ">= 0"
    assert describe_expected("expect_column_values_to_be_unique", {"column": "id"}) == "unique"


def test_load_suite_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite_file(tmp_path / "nowhere.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "b",\n "expectations": [')
    with pytest.raises(SuiteError, match=r"broken.json is not valid JSON: .* line 2, column"):
        load_suite_file(broken)
    not_suite = tmp_path / "list.json"
    not_suite.write_text("[]")
    with pytest.raises(
        SuiteError, match=r"list\.json is not an expectation suite: its top level is an array"
    ):
        load_suite_file(not_suite)
    no_list = tmp_path / "nolist.json"
    no_list.write_text('{"name": "x"}')
    with pytest.raises(SuiteError, match=r"nolist\.json: not an expectation suite \(no 'expectations' list"):
        load_suite_file(no_list)


def test_unknown_expectation_type_is_named_not_dropped() -> None:
    # Great Expectations' own ExpectationSuite(**suite) logs and drops it; we refuse the suite.
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_column_values_to_be_purple", "kwargs": {"column": "a"}}],
    }
    with pytest.raises(
        SuiteError, match=r"expectation #1 .*unknown expectation type 'expect_column_values_to_be_purple'"
    ):
        build_suite(suite, source="s.json")
    bad_args = {
        "name": "s",
        "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "a"}}],
    }
    with pytest.raises(SuiteError, match="invalid arguments"):
        build_suite(bad_args, source="s.json")


def test_real_validation_of_a_frame_maps_passes_failures_and_errors() -> None:
    frame = pd.DataFrame(
        {
            "customer_age": [25, 40, 150, 151, 33, 61, 70, 18, 19, 20],
            "region": ["north"] * 9 + ["mars"],
            "spend": [1.0] * 10,
        }
    )
    suite = {
        "name": "frame_suite",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "customer_age", "min_value": 18, "max_value": 100},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "region", "value_set": ["north", "south"], "mostly": 0.8},
            },
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "spend", "min_value": {"$PARAMETER": "spend_low"}},
                "severity": "warning",
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "missing_col"}},
        ],
    }
    run = validate_frame(frame, suite, suite_parameters={"spend_low": 2.0})
    checked = judge_validation(run.validation, dataset="frame")
    by_metric = {(f.subject, f.metric): f for f in checked.findings}
    age = by_metric[("customer_age", "expect_column_values_to_be_between")]
    assert age.status is Status.FAIL and age.value == pytest.approx(20.0)
    assert "(e.g. 150, 151)" in age.reason
    assert by_metric[("region", "expect_column_values_to_be_in_set")].status is Status.PASS  # mostly 0.8
    spend = by_metric[("spend", "expect_column_mean_to_be_between")]
    assert spend.status is Status.WARN and spend.value == 1.0 and spend.threshold == ">= 2"
    missing = by_metric[("missing_col", "expect_column_values_to_not_be_null")]
    assert missing.status is Status.ERROR and "`missing_col` does not exist" in missing.reason
    assert checked.status is Status.ERROR
    assert checked.metrics["evaluated_expectations"] == 4
    assert json.loads(checked.to_json())["check"] == "quality"

    with pytest.raises(MlobsInputError, match="spend_low"):
        validate_frame(frame, suite)


def reference() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ages = rng.integers(18, 80, 4000).astype(float)
    ages[:40] = np.nan
    return pd.DataFrame(
        {
            "customer_age": ages,
            "monthly_spend": rng.gamma(2.0, 30.0, 4000),
            "region": rng.choice(["north", "south", "east", "west"], 4000),
            "churned": rng.integers(0, 2, 4000),
        }
    )


def test_suite_from_baseline_loads_in_great_expectations_and_keeps_every_expectation() -> None:
    import great_expectations as gx

    frame = reference()
    baseline = build_baseline(frame, name="churn", version="v1")
    suite = suite_from_baseline(baseline, rows_per_window=400)
    kinds = [(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]]
    assert ("expect_table_row_count_to_be_between", None) in kinds
    row_band = suite["expectations"][0]["kwargs"]
    assert row_band == {"min_value": 200, "max_value": 600}
    spend_range = next(
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "monthly_spend"
    )
    assert spend_range["kwargs"]["min_value"] == pytest.approx(frame.monthly_spend.min())
    assert spend_range["kwargs"]["max_value"] == pytest.approx(frame.monthly_spend.max())
    age_nulls = next(
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_not_be_null" and e["kwargs"]["column"] == "customer_age"
    )
    assert age_nulls["kwargs"]["mostly"] == pytest.approx(1 - (2 * 0.01 + 0.01))
    regions = next(
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "region"
    )
    assert regions["kwargs"]["value_set"] == ["east", "north", "south", "west"]
    churned = next(
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "churned"
    )
    assert churned["kwargs"]["value_set"] == [0, 1]  # typed like the column, not as text

    loaded = gx.ExpectationSuite(**json.loads(json.dumps(suite)))
    assert len(loaded.expectations) == len(suite["expectations"])
    # And the reference itself passes its own starter suite.
    run = validate_frame(frame.sample(400, random_state=1), suite)
    checked = judge_validation(run.validation, dataset="reference")
    assert checked.status is Status.PASS, findings_table(checked)


def test_suite_command_writes_a_suite_and_never_overwrites(tmp_path: Path) -> None:
    baseline = build_baseline(reference(), name="churn", version="v1")
    baseline.save(tmp_path / "baselines")
    parser = argparse.ArgumentParser()
    add_suite_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "expectations" / "churn.quality.json"
    argv = [
        "suite",
        "--baseline-dir",
        str(tmp_path / "baselines"),
        "--name",
        "churn",
        "--out",
        str(out),
        "--rows-per-window",
        "400",
    ]
    assert suite_command(parser.parse_args(argv)) == 0
    written = load_suite_file(out)
    assert written["name"] == "churn.quality" and written["expectations"]
    assert suite_command(parser.parse_args(argv)) == 2  # exists: kept
    missing = [
        "suite",
        "--baseline-dir",
        str(tmp_path / "baselines"),
        "--name",
        "nope",
        "--out",
        str(tmp_path / "x.json"),
    ]
    assert suite_command(parser.parse_args(missing)) == 2


def test_example_suites_load() -> None:
    for name in ("customer_activity.quality.json", "churn_training.quality.json"):
        suite = load_suite_file(ROOT / "expectations" / name)
        built = build_suite(suite, source=name)
        assert len(built.expectations) == len(suite["expectations"])


def test_quality_spec_on_a_frame_window_without_airflow(tmp_path: Path) -> None:
    """The spec alone: a DataFrame source (or a callable returning one) filtered to the window."""
    from datetime import UTC, datetime

    from airflow_mlobs.specs.quality import QualitySpec

    suite = tmp_path / "frame.quality.json"
    suite.write_text(
        json.dumps(
            {
                "name": "frame",
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "x", "max_value": 10},
                    },
                    {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {"min_value": 2, "max_value": 2},
                    },
                ],
            }
        )
    )
    frame = pd.DataFrame(
        {"ts": pd.to_datetime(["2026-11-24 12:00", "2026-11-25 01:00", "2026-11-25 23:00"]), "x": [99, 1, 2]}
    )
    spec = QualitySpec(suite=str(suite), dataframe=True, timestamp_column="ts", dataset="frame")
    spec.validate("q")
    start, end = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    result = spec.evaluate(window_start=start, window_end=end, frame=lambda: frame)
    assert result.status is Status.PASS, result.summary  # the 99 is the day before
    assert (result.dataset, result.window_start, result.window_end) == ("frame", start, end)
    whole = QualitySpec(suite=str(suite), dataframe=True, dataset="frame").evaluate(frame=frame)
    assert whole.status is Status.FAIL and whole.window_start is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"suite": "s.json"}, "exactly one of table"),
        ({"suite": "s.json", "table": "t", "path": "p"}, "exactly one of table"),
        ({"suite": "s.json", "table": "t"}, "needs conn_id"),
        ({"suite": "", "path": "p"}, "suite is required"),
    ],
)
def test_quality_spec_rejects_impossible_arguments(kwargs: dict[str, Any], message: str) -> None:
    from airflow_mlobs.specs.quality import QualitySpec

    with pytest.raises(ValueError, match=f"q: .*{message}"):
        QualitySpec(**kwargs).validate("q")


FIRST_IMPORT = """
import json, logging, sys, tempfile
from pathlib import Path
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="LOG %(name)s %(levelname)s %(message)s")
assert "great_expectations" not in sys.modules
import pandas as pd
from airflow_mlobs.specs.quality import QualitySpec
suite = Path(tempfile.mkdtemp()) / "s.json"
suite.write_text(json.dumps({"name": "s", "expectations": [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0, "max_value": 9}}]}))
result = QualitySpec(suite=str(suite), dataframe=True, dataset="df").evaluate(frame=pd.DataFrame({"a": [1, 2]}))
print("STATUS", result.status.value)
"""


def test_first_great_expectations_import_logs_nothing_below_error() -> None:
    # Importing GE logs ~214 INFO lines (great_expectations._docs_decorators, the expectation
    # registry); a task's first quality check must not open its log with them. A fresh interpreter,
    # since GE is imported once per process.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATUS pass" in done.stdout
    noisy = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith("LOG great_expectations") and " ERROR " not in line and " CRITICAL " not in line
    ]
    assert noisy == [], f"{len(noisy)} lines, e.g. {noisy[:3]}"


def _empty_result(kind: str, kwargs: dict[str, Any], success: bool, **outcome: Any) -> dict[str, Any]:
    return {"expectation_config": {"type": kind, "kwargs": kwargs}, "success": success, "result": outcome}


def test_no_rows_judges_only_the_tables_shape() -> None:
    start, end = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    validation = {
        "results": [
            _empty_result("expect_column_to_exist", {"column": "age"}, True),
            _empty_result("expect_column_values_to_be_between", {"column": "age", "min_value": 0}, True),
            _empty_result("expect_column_mean_to_be_between", {"column": "age", "min_value": 1}, False),
        ]
    }
    judged = judge_validation(
        validation, dataset="wh:t", window_start=start, window_end=end, row_count=0, data_label="table t"
    )
    assert judged.status is Status.SKIPPED
    assert judged.summary == (
        "wh:t: suite suite: no rows in table t in the window 2026-11-25T00:00:00+00:00 .. "
        "2026-11-26T00:00:00+00:00; the 1 expectation(s) about the table's shape passed, the other 2 need rows"
    )
    assert [f.status for f in judged.findings] == [Status.PASS, Status.SKIPPED, Status.SKIPPED]
    assert judged.metrics["skipped_expectations"] == 2
    # With rows the same validation is judged as usual: the failed mean fails.
    assert judge_validation(validation, dataset="wh:t", row_count=5).status is Status.FAIL
