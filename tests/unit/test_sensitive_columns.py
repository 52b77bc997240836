"""``sensitive_columns``: the values of such columns never reach a baseline, profile, finding or
summary; only counts, shares and keyed pseudonyms do (issue 14, part 3). Pure parts, per check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlobs.core.drift import compare
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, is_pseudonym, pseudonym
from airflow_mlobs.core.profile import Baseline, ColumnSpec, quantile_levels
from airflow_mlobs.core.quality import judge_validation
from airflow_mlobs.core.result import CheckResult, Finding, Status, scrub_sensitive
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.specs.drift import checked_sensitive
from airflow_mlobs.specs.performance import pseudonymized_segments

KEY = PseudonymKey(b"unit-test-key-0123456789abcdef")
OTHER_KEY = PseudonymKey(b"another-key-0123456789abcdefgh")
PLANTED = "PLANTED-7f3a9c1e"


def reference(rows: int = 4000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50_000, 8_000, rows),
            "city": rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def window_with_planted(rows: int = 2000, planted: int = 300, seed: int = 2) -> pd.DataFrame:
    frame = reference(rows, seed)
    frame.loc[: planted - 1, "city"] = PLANTED
    frame.loc[0, "income"] = 9_876_543.21  # one person's extreme value
    return frame


def sensitive_baseline(key: PseudonymKey | None = KEY) -> Baseline:
    return build_baseline(
        reference(), name="b", version="v1", sensitive_columns=["income", "city"], pseudonym_key=key
    )


def test_sensitive_levels_leave_out_the_extremes() -> None:
    levels = quantile_levels(20, sensitive=True)
    assert levels.min() == pytest.approx(0.01) and levels.max() == pytest.approx(0.99)
    assert 0.0 in quantile_levels(20) and 1.0 in quantile_levels(20)
    assert not set(np.round(levels, 6)) & {0.0, 0.001, 0.005, 0.995, 0.999, 1.0}


def test_sensitive_numeric_baseline_has_no_min_max_or_extreme_edges() -> None:
    frame = reference()
    baseline = sensitive_baseline()
    spec = baseline.columns["income"]
    assert spec.sensitive
    values = frame["income"].to_numpy()
    assert values.min() not in spec.edges and values.max() not in spec.edges
    assert spec.edges[0] == np.quantile(values, 0.01, method="lower")
    assert spec.edges[-1] == np.quantile(values, 0.99, method="lower")
    ref = baseline.reference.columns["income"]
    assert ref.min is None and ref.max is None  # type: ignore[union-attr]
    text = baseline.to_json()
    assert repr(float(values.min())) not in text and repr(float(values.max())) not in text
    # Read back, it is still sensitive (a drift check keeps honouring it).
    again = Baseline.from_dict(json.loads(text))
    assert again.columns["income"].sensitive and again.key == baseline.key


def test_sensitive_categorical_baseline_holds_pseudonyms_and_the_key_id() -> None:
    baseline = sensitive_baseline()
    spec = baseline.columns["city"]
    assert spec.pseudonym_key_id == KEY.key_id
    assert sorted(spec.categories) == sorted(pseudonym(c, KEY) for c in ("north", "south", "east", "west"))
    assert all(is_pseudonym(c) for c in spec.categories)
    assert "north" not in baseline.to_json()
    # Another key's pseudonyms would make every value new: the edges key differs, so profiles of
    # another key never merge either.
    assert sensitive_baseline(OTHER_KEY).key != baseline.key


def test_drift_over_pseudonyms_reports_the_unseen_category_without_its_text() -> None:
    baseline = sensitive_baseline()
    window = window_with_planted()
    profile = profile_frame(window, baseline.columns.values(), pseudonym_key=KEY)
    city = profile.columns["city"]
    assert city.unseen == 300  # type: ignore[union-attr]
    result = compare(baseline, profile, dataset="d")
    unseen = [f for f in result.findings if f.metric == "unseen_share"]
    assert unseen and unseen[0].status in (Status.WARN, Status.FAIL)
    assert pseudonym(PLANTED, KEY) in unseen[0].reason
    stored = result.to_json() + profile.to_json() + json.dumps(result.compact())
    assert PLANTED not in stored
    assert "9876543" not in stored


def test_the_same_check_without_sensitive_columns_shows_the_planted_value() -> None:
    """The control: the search above could not pass vacuously."""
    baseline = build_baseline(reference(), name="b", version="v1")
    profile = profile_frame(window_with_planted(), baseline.columns.values())
    result = compare(baseline, profile, dataset="d")
    assert PLANTED in result.to_json()
    assert "9876543" in profile.to_json()


def test_a_categorical_sensitive_column_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(MlobsInputError, match="MLOBS_PSEUDONYM_KEY"):
        sensitive_baseline(key=None)
    baseline = sensitive_baseline()
    with pytest.raises(MlobsInputError, match=r"MLOBS_PSEUDONYM_KEY|key_conn_id"):
        profile_frame(window_with_planted(), baseline.columns.values(), pseudonym_key=None)
    with pytest.raises(MlobsInputError, match=f"key id {KEY.key_id}.*{OTHER_KEY.key_id}"):
        checked_sensitive(baseline, ["city"], OTHER_KEY)
    assert checked_sensitive(baseline, ["city"], KEY) is baseline
    assert checked_sensitive(baseline, ["city"], None, key_needed=False) is baseline


def test_a_numeric_only_sensitive_baseline_needs_no_key() -> None:
    baseline = build_baseline(reference(), name="b", version="v1", sensitive_columns=["income"])
    assert baseline.columns["income"].sensitive and not baseline.columns["city"].sensitive
    profile = profile_frame(window_with_planted(), baseline.columns.values())
    assert profile.columns["income"].max is None  # type: ignore[union-attr]


def test_a_raw_baseline_is_refused_for_a_column_declared_sensitive() -> None:
    raw = build_baseline(reference(), name="b", version="v1")
    with pytest.raises(MlobsInputError, match="rebuild it"):
        checked_sensitive(raw, ["city"], KEY)


def test_sensitive_numeric_drift_is_still_measured_by_wasserstein() -> None:
    """Without min/max the open outer bins are bounded by the tails' means: the distance stays
    close to the one with the extremes, and to scipy's on the raw samples (in reference std units)."""
    from scipy import stats

    ref = reference(20_000, 3)
    shifted = reference(5_000, 4)
    shifted["income"] = shifted["income"] + 4_000  # half a standard deviation
    raw_b = build_baseline(ref, name="b", version="v1")
    sens_b = build_baseline(ref, name="b", version="v1", sensitive_columns=["income"])
    raw = compare(raw_b, profile_frame(shifted, raw_b.columns.values()), dataset="d")
    sens = compare(sens_b, profile_frame(shifted, sens_b.columns.values()), dataset="d")
    raw_w = raw.metrics["columns"]["income"]["wasserstein"]
    sens_w = sens.metrics["columns"]["income"]["wasserstein"]
    exact = stats.wasserstein_distance(ref["income"], shifted["income"]) / ref["income"].std(ddof=0)
    assert sens_w == pytest.approx(exact, rel=0.05)
    assert sens_w == pytest.approx(raw_w, rel=0.05)
    same = compare(sens_b, profile_frame(reference(5_000, 5), sens_b.columns.values()), dataset="d")
    assert same.metrics["columns"]["income"]["wasserstein"] < 0.05


def ge_validation() -> dict[str, object]:
    return {
        "success": False,
        "suite_name": "s",
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": "city", "value_set": ["north", "south"]},
                },
                # Great Expectations sends this with every result: nothing raised, so no error.
                "exception_info": {"raised_exception": False, "exception_message": None},
                "result": {
                    "element_count": 100,
                    "unexpected_count": 3,
                    "unexpected_percent": 3.0,
                    "partial_unexpected_list": [PLANTED, PLANTED + "-b", PLANTED],
                    "partial_unexpected_counts": [{"value": PLANTED, "count": 2}],
                    "unexpected_list": [PLANTED],
                },
            },
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_max_to_be_between",
                    "kwargs": {"column": "income", "max_value": 100000},
                },
                "result": {"observed_value": 9876543.21},
            },
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_mean_to_be_between",
                    "kwargs": {"column": "income", "max_value": 10},
                },
                "result": {"observed_value": 51234.5},
            },
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_values_to_match_regex",
                    "kwargs": {"column": "city", "regex": "^[a-z]+$"},
                },
                "exception_info": {
                    "raised_exception": True,
                    "exception_message": f"invalid input syntax: '{PLANTED}'",
                },
            },
        ],
    }


def test_quality_on_sensitive_columns_keeps_counts_only() -> None:
    result = judge_validation(ge_validation(), dataset="d", sensitive_columns=["city", "income"])
    text = result.to_json()
    assert PLANTED not in text and "9876543" not in text
    by_kind = {f.metric: f for f in result.findings}
    in_set = by_kind["expect_column_values_to_be_in_set"]
    assert in_set.status is Status.FAIL
    assert "3% of values" in in_set.reason and "(3 rows)" in in_set.reason and "withheld" in in_set.reason
    assert "withheld" in by_kind["expect_column_max_to_be_between"].reason
    assert by_kind["expect_column_mean_to_be_between"].value == 51234.5  # a mean is no one's value
    assert result.status is Status.ERROR  # the withheld error text still makes an error
    # The control: without sensitive_columns the examples and the extreme are shown.
    plain = judge_validation(ge_validation(), dataset="d").to_json()
    assert PLANTED in plain and "9876543" in plain


def test_performance_segments_of_a_sensitive_column_are_pseudonyms_or_counts() -> None:
    segments = {PLANTED: "summary-a", "south": "summary-b", None: "summary-null"}
    keyed = pseudonymized_segments(segments, KEY)
    assert keyed == {
        pseudonym(PLANTED, KEY): "summary-a",
        pseudonym("south", KEY): "summary-b",
        None: "summary-null",
    }
    unkeyed = pseudonymized_segments(segments, None)
    assert set(unkeyed) == {f"{REDACTED} #1", f"{REDACTED} #2", None}
    assert sorted(map(str, unkeyed.values())) == sorted(map(str, segments.values()))
    # Numbered by size, most predictions first, whatever the values or the gatherer's order.
    from types import SimpleNamespace

    def sized(predictions: int) -> SimpleNamespace:
        return SimpleNamespace(coverage=SimpleNamespace(predictions=predictions, labelled=predictions))

    by_size = {"a-small": sized(10), "z-big": sized(500), "m-mid": sized(80)}
    for ordering in (by_size, dict(reversed(list(by_size.items())))):
        numbered = pseudonymized_segments(ordering, None)
        assert [v.coverage.predictions for v in numbered.values()] == [500, 80, 10]


def test_the_safety_net_scrubs_what_a_check_forgot() -> None:
    result = CheckResult(
        check="c",
        dataset="d",
        status=Status.FAIL,
        summary="s",
        metrics={
            "columns": {
                "city": {"min": PLANTED, "unseen_categories": [pseudonym("x", KEY)], "count": 3},
                "other": {"min": "fine"},
            },
            "rows": [{"column": "city", "examples": [PLANTED]}],
        },
        findings=(
            Finding("city", "m", Status.FAIL, value=PLANTED, reason=f"bad (e.g. {PLANTED}, 7); more"),
            Finding("other", "m", Status.FAIL, value="kept", reason="(e.g. kept)"),
        ),
    )
    clean = scrub_sensitive(result, ["city"])
    assert PLANTED not in clean.to_json()
    columns = clean.metrics["columns"]
    assert columns["city"]["min"] == REDACTED and columns["city"]["count"] == 3
    assert columns["city"]["unseen_categories"] == [pseudonym("x", KEY)]  # pseudonyms may stay
    assert columns["other"]["min"] == "fine"
    assert clean.metrics["rows"][0]["examples"] == REDACTED
    assert clean.findings[0].value == REDACTED and clean.findings[0].reason == "bad (examples withheld); more"
    assert clean.findings[1] == result.findings[1]
    assert clean.metrics["sensitive_columns"] == ["city"]
    assert scrub_sensitive(result, []) is result


def test_column_spec_round_trip_keeps_sensitivity() -> None:
    spec = ColumnSpec("c", "categorical", categories=("ps_x",), sensitive=True, pseudonym_key_id="abc")
    assert ColumnSpec.from_dict(spec.to_dict()) == spec
    plain = ColumnSpec("n", "numeric", edges=(1.0, 2.0))
    assert "sensitive" not in plain.to_dict() and ColumnSpec.from_dict(plain.to_dict()) == plain


def test_a_suite_from_a_sensitive_baseline_holds_none_of_its_values() -> None:
    from airflow_mlobs.core.quality import suite_from_baseline

    suite = suite_from_baseline(sensitive_baseline())
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_in_set", "city") not in kinds
    assert ("expect_column_values_to_be_between", "income") not in kinds
    assert ("expect_column_to_exist", "city") in kinds
    plain = suite_from_baseline(build_baseline(reference(), name="b", version="v1"))
    assert ("expect_column_values_to_be_in_set", "city") in {
        (e["type"], e["kwargs"].get("column")) for e in plain["expectations"]
    }


def test_the_operator_reads_the_key_only_for_sensitive_checks_and_falls_back_to_counts(
    monkeypatch: pytest.MonkeyPatch, airflow_connection: object
) -> None:
    from airflow_mlobs.core.errors import SourceError
    from airflow_mlobs.operators import SchemaCheckOperator

    def operator(**kwargs: object) -> SchemaCheckOperator:
        return SchemaCheckOperator(task_id="t", conn_id="wh", table="x", contract="c.json", **kwargs)  # type: ignore[arg-type]

    monkeypatch.delenv("MLOBS_PSEUDONYM_KEY", raising=False)
    assert operator().resolved_pseudonym_key() is None  # no sensitive columns: no key read
    assert operator(sensitive_columns=["c"]).resolved_pseudonym_key() is None  # counts only
    with pytest.raises(SourceError, match="MLOBS_PSEUDONYM_KEY"):
        operator(sensitive_columns=["c"]).resolved_pseudonym_key(required=True)
    monkeypatch.setenv("MLOBS_PSEUDONYM_KEY", "e" * 20)
    assert operator(sensitive_columns=["c"]).resolved_pseudonym_key() == PseudonymKey(b"e" * 20)
    airflow_connection("h3_key", conn_type="generic", password="k" * 24)  # type: ignore[operator]
    keyed = operator(sensitive_columns=["c"], key_conn_id="h3_key").resolved_pseudonym_key()
    assert keyed == PseudonymKey(b"k" * 24)
    airflow_connection("h3_empty", conn_type="generic")  # type: ignore[operator]
    with pytest.raises(SourceError, match="h3_empty"):  # a key connection given but unusable
        operator(sensitive_columns=["c"], key_conn_id="h3_empty").resolved_pseudonym_key()
    with pytest.raises(ValueError, match="list of column names"):
        operator(sensitive_columns="city")


def test_freshness_on_a_sensitive_timestamp_keeps_the_age_only() -> None:
    from datetime import UTC, datetime, timedelta

    from airflow_mlobs.core.freshness import FreshnessObservation, judge_freshness
    from airflow_mlobs.operators.freshness import without_newest

    newest = datetime(2026, 11, 5, 7, 13, 42, tzinfo=UTC)
    result = judge_freshness(
        observation=FreshnessObservation(newest=newest),
        as_of=datetime(2026, 11, 6, tzinfo=UTC),
        max_age=timedelta(days=2),
        dataset="d",
    )
    assert newest.isoformat() in result.to_json()
    hidden = without_newest(result, "ts", ["ts"])
    assert newest.isoformat() not in hidden.to_json() and hidden.metrics["newest"] == REDACTED
    assert hidden.metrics["age_seconds"] == result.metrics["age_seconds"]
    assert without_newest(result, "ts", ["other"]) is result


@pytest.mark.parametrize("shift", [0.25, 0.5])
def test_sensitive_wasserstein_follows_the_full_one_when_a_tail_empties(shift: float) -> None:
    """A skewed column shifted up leaves the window's low tail empty: the bound there is the outer
    edge (no mass needs one), and the distance stays that of the baseline with extremes."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.lognormal(0, 1, 20_000)})
    cur = pd.DataFrame({"x": rng.lognormal(0, 1, 5_000) + shift})
    raw_b = build_baseline(ref, name="b", version="v1")
    sens_b = build_baseline(ref, name="b", version="v1", sensitive_columns=["x"])
    raw = compare(raw_b, profile_frame(cur, raw_b.columns.values()), dataset="d")
    sens = compare(sens_b, profile_frame(cur, sens_b.columns.values()), dataset="d")
    assert sens.metrics["columns"]["x"]["wasserstein"] == pytest.approx(
        raw.metrics["columns"]["x"]["wasserstein"], rel=0.02
    )


def test_a_kept_baseline_without_the_sensitive_columns_is_an_error(tmp_path: Path) -> None:
    from airflow_mlobs.specs.drift import BaselineSpec

    path = tmp_path / "ref.parquet"
    reference().to_parquet(path)
    BaselineSpec(path=str(path), baseline="b", version="v1").ensure(tmp_path / "bl")
    declared = BaselineSpec(
        path=str(path), baseline="b", version="v1", sensitive_columns=("city",), pseudonym_key=KEY
    )
    with pytest.raises(MlobsInputError, match="overwrite=True"):
        declared.ensure(tmp_path / "bl")
    rebuilt = declared.ensure(tmp_path / "bl", overwrite=True)
    assert rebuilt.metrics["created"] is True
    assert declared.ensure(tmp_path / "bl").metrics["created"] is False  # kept: now it is sensitive
    assert "north" not in (tmp_path / "bl" / "b" / "v1.json").read_text()
