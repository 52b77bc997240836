"""The plain data behind the OpenLineage facets (airflow_mlobs.operators.lineage)."""

from __future__ import annotations

from airflow_mlobs.core.profile import CategoricalProfile, NumericProfile, Profile
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.operators.lineage import (
    AssertionFact,
    DatasetRef,
    file_ref,
    lineage_facts,
    operator_lineage,
)


def result(*findings: Finding, status: Status = Status.FAIL, **metrics: object) -> CheckResult:
    return CheckResult("drift", "wh:events", status, "summary", metrics=metrics, findings=findings)


def test_each_finding_is_an_assertion_warn_succeeds_and_table_subjects_name_no_column() -> None:
    facts = lineage_facts(
        result(
            Finding("x1", "wasserstein", Status.FAIL, value=0.4, threshold=0.05, reason="moved"),
            Finding("x2", "wasserstein", Status.WARN, value=0.03, threshold=0.02, reason="a bit"),
            Finding("x3", "js", Status.PASS, value=0.001),
            Finding("window", "rows", Status.SKIPPED),
            Finding("table", "row_count", Status.PASS, value=10),
            rows=250,
        )
    )
    assert facts.row_count == 250
    assert facts.assertions == (
        AssertionFact("wasserstein", False, "x1", "fail", "0.4", "0.05", "moved"),
        AssertionFact("wasserstein", True, "x2", "warn", "0.03", "0.02", "a bit"),
        AssertionFact("js", True, "x3", None, "0.001", None, None),
        AssertionFact("row_count", True, None, None, "10", None, None),
    )


def test_a_result_without_findings_is_one_assertion_named_after_the_check() -> None:
    facts = lineage_facts(result(status=Status.PASS))
    assert [(a.assertion, a.success) for a in facts.assertions] == [("drift", True)]


def test_profile_gives_null_counts_min_max_and_distinct_counts_unless_folded() -> None:
    profile = Profile(
        row_count=5,
        columns={
            "x1": NumericProfile(count=4, nulls=1, non_finite=0, min=-1.0, max=3.0),
            "region": CategoricalProfile(nulls=0, counts={"a": 3, "b": 2}),
            "city": CategoricalProfile(nulls=2, counts={"a": 1}, other=2),
        },
    )
    facts = lineage_facts(result(), profile=profile)
    assert facts.row_count == 5
    assert facts.columns["x1"].null_count == 1 and (facts.columns["x1"].min, facts.columns["x1"].max) == (
        -1.0,
        3.0,
    )
    assert facts.columns["region"].distinct_count == 2
    assert facts.columns["city"].distinct_count is None and facts.columns["city"].null_count == 2


def test_file_names() -> None:
    assert file_ref("/data/events.parquet") == DatasetRef("file", "/data/events.parquet")
    assert file_ref("s3://bucket/a/b.parquet") == DatasetRef("s3://bucket", "a/b.parquet")


def test_operator_lineage_puts_the_facets_on_the_first_input() -> None:
    facts = lineage_facts(
        result(Finding("x1", "wasserstein", Status.FAIL, value=0.4), rows=3),
        schema=[("x1", "DOUBLE PRECISION")],
    )
    lineage = operator_lineage([DatasetRef("file", "/a"), DatasetRef("file", "/b")], facts)
    first, second = lineage.inputs
    assert first.facets["dataQualityAssertions"].assertions[0].column == "x1"
    assert first.facets["schema"].fields[0].type == "DOUBLE PRECISION"
    assert first.inputFacets["dataQualityMetrics"].rowCount == 3
    assert second.facets == {} and second.inputFacets == {}


def test_quality_findings_give_min_max_distinct_and_null_counts() -> None:
    quality = CheckResult(
        "quality",
        "wh:t",
        Status.FAIL,
        "s",
        metrics={"row_count": 200},
        findings=(
            Finding("age", "expect_column_min_to_be_between", Status.PASS, value=18),
            Finding("age", "expect_column_max_to_be_between", Status.FAIL, value=150, reason="too old"),
            Finding("region", "expect_column_unique_value_count_to_be_between", Status.PASS, value=4),
            Finding("id", "expect_column_values_to_not_be_null", Status.FAIL, value=2.5, reason="nulls"),
            Finding("table", "expect_table_row_count_to_be_between", Status.PASS, value=200),
        ),
    )
    facts = lineage_facts(quality)
    assert facts.row_count == 200
    assert facts.columns["age"].min == 18 and facts.columns["age"].max == 150
    assert facts.columns["region"].distinct_count == 4
    assert facts.columns["id"].null_count == 5
    assert "table" not in facts.columns
