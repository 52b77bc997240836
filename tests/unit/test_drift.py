"""compare(): the drift decision per column and for the dataset, and every degenerate input giving a
result with a reason (never an exception, never an infinity or NaN)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from airflow_mlobs.core.drift import DriftSettings, Threshold, compare
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import Baseline, NumericProfile, Profile
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame

NUMERIC = ("a", "b", "c", "d")
N = 20_000


def _frame(seed: int, n: int = N, shift: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Four numeric columns with different scales and one categorical; ``shift`` in sigmas."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    means = {"a": 0.0, "b": 100.0, "c": -5.0, "d": 1e3}
    sigmas = {"a": 1.0, "b": 15.0, "c": 0.2, "d": 250.0}
    data: dict[str, Any] = {
        col: rng.normal(means[col] + shift.get(col, 0.0) * sigmas[col], sigmas[col], n) for col in NUMERIC
    }
    data["city"] = rng.choice(["berlin", "paris", "rome", "oslo"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(seed=0)


@pytest.fixture(scope="module")
def baseline(reference: pd.DataFrame) -> Baseline:
    built = build_baseline(reference, name="features", version="v1")
    assert {n: s.kind for n, s in built.columns.items()} == {
        "a": "numeric",
        "b": "numeric",
        "c": "numeric",
        "d": "numeric",
        "city": "categorical",
    }
    return built


def _profile(baseline: Baseline, frame: pd.DataFrame, **kwargs: Any) -> Profile:
    return profile_frame(frame, baseline.columns.values(), **kwargs)


def _walk_numbers(value: Any, where: str) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"non-finite number at {where}: {value}"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk_numbers(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_numbers(item, f"{where}[{index}]")


def _check(result: CheckResult) -> dict[str, Any]:
    """Every result: strict JSON, no inf/NaN anywhere (before JSON hides them), reasons on anything
    not passing, and a one-line summary."""
    data = json.loads(result.to_json())
    assert data["status"] == result.status.value
    _walk_numbers(dict(result.metrics), "metrics")
    for finding in result.findings:
        _walk_numbers(finding.value, f"{finding.subject}.{finding.metric}.value")
        _walk_numbers(finding.threshold, f"{finding.subject}.{finding.metric}.threshold")
        if finding.status is not Status.PASS:
            assert finding.reason, finding
    assert result.summary
    assert "\n" not in result.summary
    return data


def _findings(result: CheckResult, subject: str) -> list[Finding]:
    return [f for f in result.findings if f.subject == subject]


def _finding(result: CheckResult, subject: str, metric: str) -> Finding:
    found = [f for f in result.findings if f.subject == subject and f.metric == metric]
    assert len(found) == 1, (subject, metric, result.findings)
    return found[0]


# --- decisions -----------------------------------------------------------------------------------


def test_no_drift_passes(baseline: Baseline) -> None:
    result = compare(baseline, _profile(baseline, _frame(seed=1)))
    _check(result)
    assert result.status is Status.PASS, result.summary
    assert result.metrics["columns_judged"] == 5
    assert result.metrics["columns_drifted"] == 0
    assert result.metrics["drift_share"] == 0.0
    assert result.metrics["drifted_columns"] == []
    assert all(f.status is Status.PASS for f in result.findings)
    for col in NUMERIC:
        assert _finding(result, col, "wasserstein").value < 0.05
    assert _finding(result, "city", "js").value < 0.03


def test_one_shifted_column_warns_and_ranks_first(baseline: Baseline) -> None:
    result = compare(baseline, _profile(baseline, _frame(seed=2, shift={"b": 0.5})))
    _check(result)
    assert result.status is Status.WARN, result.summary
    assert result.metrics["columns_drifted"] == 1
    assert result.metrics["drift_share"] == pytest.approx(0.2)
    drifted = result.metrics["drifted_columns"]
    assert drifted[0]["column"] == "b"
    assert drifted[0]["method"] == "wasserstein"
    assert drifted[0]["value"] == pytest.approx(result.metrics["columns"]["b"]["wasserstein"], abs=1e-6)
    assert drifted[0]["value"] >= 0.45  # (the binned estimate overstates a shift; see test_stats)
    main = _finding(result, "b", "wasserstein")
    assert main.status is Status.FAIL
    assert result.findings[0] == main  # the worst finding comes first
    assert "b" in result.summary
    for col in ("a", "c", "d"):
        assert _finding(result, col, "wasserstein").status is Status.PASS


def test_three_of_five_drifted_fails_ranked_by_effect(baseline: Baseline) -> None:
    current = _frame(seed=3, shift={"a": 0.3, "c": 0.8, "d": -0.5})
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert result.status is Status.FAIL, result.summary
    assert result.metrics["columns_drifted"] == 3
    assert result.metrics["drift_share"] == pytest.approx(0.6)
    assert [d["column"] for d in result.metrics["drifted_columns"]] == ["c", "d", "a"]
    values = [d["value"] for d in result.metrics["drifted_columns"]]
    assert values == sorted(values, reverse=True)


def test_drift_share_setting(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=2, shift={"b": 0.5}))
    assert compare(baseline, profile, DriftSettings(drift_share=0.2)).status is Status.FAIL
    assert compare(baseline, profile, DriftSettings(drift_share=0.21)).status is Status.WARN


def test_warn_share_setting(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=2, shift={"b": 0.5}))
    assert compare(baseline, profile, DriftSettings(warn_share=0.2)).status is Status.WARN
    quiet = compare(baseline, profile, DriftSettings(warn_share=0.3))
    _check(quiet)
    assert quiet.status is Status.PASS
    assert quiet.metrics["columns_drifted"] == 1  # still reported, just below the warn share


def test_importances_weight_the_share(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=2, shift={"b": 0.5}))
    heavy = compare(baseline, profile, DriftSettings(importances={"b": 5.0}))
    _check(heavy)
    assert heavy.metrics["drift_share"] == pytest.approx(5 / 9, abs=1e-6)
    assert heavy.status is Status.FAIL
    light = compare(baseline, profile, DriftSettings(importances={"b": 0.5, "a": 2.0}))
    assert light.metrics["drift_share"] == pytest.approx(0.5 / 5.5, abs=1e-6)
    assert light.status is Status.WARN


def test_per_column_method_override(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=2, shift={"b": 0.5}))
    result = compare(baseline, profile, DriftSettings(methods={"b": "psi", "city": "hellinger", "a": "ks"}))
    _check(result)
    psi = _finding(result, "b", "psi")
    columns = result.metrics["columns"]
    assert psi.value == pytest.approx(columns["b"]["psi"], abs=1e-6)
    assert psi.status is Status.FAIL if psi.value >= 0.25 else Status.WARN
    assert not [f for f in _findings(result, "b") if f.metric == "wasserstein"]
    assert _finding(result, "city", "hellinger").value == pytest.approx(
        columns["city"]["hellinger"], abs=1e-6
    )
    assert _finding(result, "a", "ks").value == pytest.approx(columns["a"]["ks"], abs=1e-6)
    assert _finding(result, "c", "wasserstein").status is Status.PASS


def test_per_column_threshold_override(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=2, shift={"b": 0.5}))
    lenient = compare(baseline, profile, DriftSettings(thresholds={"b": Threshold(warn=0.8, fail=1.0)}))
    _check(lenient)
    assert lenient.status is Status.PASS
    assert _finding(lenient, "b", "wasserstein").status is Status.PASS
    warn_only = compare(baseline, profile, DriftSettings(thresholds={"b": Threshold(warn=0.3, fail=1.0)}))
    main = _finding(warn_only, "b", "wasserstein")
    assert main.status is Status.WARN
    assert main.threshold == 0.3
    assert warn_only.status is Status.WARN
    assert warn_only.metrics["columns_drifted"] == 0


def test_threshold_levels_validated() -> None:
    with pytest.raises(ValueError, match="warn <= fail"):
        Threshold(warn=0.2, fail=0.1)


def test_correction_changes_adjusted_pvalues(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=4))
    plain = compare(baseline, profile, DriftSettings(correction="none"))
    strict = compare(baseline, profile, DriftSettings(correction="bonferroni"))
    _check(plain)
    _check(strict)
    assert plain.metrics["correction"] == "none"
    assert strict.metrics["correction"] == "bonferroni"
    changed = 0
    for col in (*NUMERIC, "city"):
        raw = plain.metrics["columns"][col]["p_value"]
        assert plain.metrics["columns"][col]["p_value_adjusted"] == raw
        assert strict.metrics["columns"][col]["p_value_adjusted"] == pytest.approx(
            min(1.0, 5 * raw), abs=1e-5
        )
        changed += strict.metrics["columns"][col]["p_value_adjusted"] != raw
    assert changed >= 1


def test_not_significant_effect_is_not_drift(baseline: Baseline) -> None:
    # 60 rows: a 0.15-sigma shift (plus sampling noise) puts the effect past the threshold, but the
    # KS test on so few rows cannot tell it from noise, so the column does not drift.
    small = _frame(seed=5, n=60, shift={"a": 0.15})
    result = compare(baseline, _profile(baseline, small), DriftSettings(correction="none"))
    _check(result)
    main = _finding(result, "a", "wasserstein")
    assert main.value >= 0.05
    assert result.metrics["columns"]["a"]["p_value"] >= 0.05
    assert main.status is Status.PASS
    assert "not significant" in main.reason
    assert result.status is Status.PASS


def test_large_n_tiny_shift_is_not_drift(baseline: Baseline) -> None:
    # Both sides as exact expected counts of 1,000,000 normal rows over the baseline's edges; the
    # current one shifted by 0.01 sigma: statistically significant, practically nothing.
    edges = np.asarray(baseline.columns["a"].edges)
    rows = 1_000_000

    def expected(mu: float) -> Profile:
        cdf = sps.norm.cdf(edges, mu, 1.0)
        bins = tuple(round(float(p * rows)) for p in np.diff(np.concatenate(([0.0], cdf, [1.0]))))
        count = sum(bins)
        column = NumericProfile(
            count=count,
            min=float(edges[0]) - 0.5,
            max=float(edges[-1]) + 0.5,
            total=mu * count,
            total_sq=count * (1.0 + mu * mu),
            bins=bins,
        )
        return Profile(row_count=count, columns={"a": column}, edges_key=baseline.key)

    big = replace(baseline, reference=expected(0.0))
    result = compare(big, expected(0.01), columns=["a"])
    _check(result)
    assert result.status is Status.PASS, result.summary
    metrics = result.metrics["columns"]["a"]
    assert metrics["p_value"] < 0.05  # a p-value alone would alarm
    assert 0 < metrics["wasserstein"] < 0.05
    assert _finding(result, "a", "wasserstein").status is Status.PASS


# --- degenerate inputs ---------------------------------------------------------------------------


def test_empty_window_is_an_error(baseline: Baseline, reference: pd.DataFrame) -> None:
    result = compare(baseline, _profile(baseline, reference.iloc[:0]))
    data = _check(result)
    assert result.status is Status.ERROR
    assert result.metrics["rows"] == 0
    assert "no rows" in result.summary
    assert any("no rows" in f.reason for f in result.findings)
    assert data["findings"][0]["status"] == "error"


def test_all_null_column(baseline: Baseline) -> None:
    current = _frame(seed=6)
    current["c"] = np.nan
    current.loc[current.index[:100], "city"] = None
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    missing = _finding(result, "c", "missing_rate")
    assert missing.status is Status.FAIL
    assert missing.value == pytest.approx(1.0)
    assert "100.0%" in missing.reason
    distribution = _finding(result, "c", "wasserstein")
    assert distribution.status is Status.SKIPPED
    assert "all NULL" in distribution.reason
    assert result.status is not Status.ERROR
    assert _finding(result, "city", "js").status is Status.PASS  # 0.5% more NULLs is below the level


def test_all_null_categorical_column(baseline: Baseline) -> None:
    current = _frame(seed=6)
    current["city"] = None
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert _finding(result, "city", "missing_rate").status is Status.FAIL
    distribution = _finding(result, "city", "js")
    assert distribution.status is Status.SKIPPED
    assert "all NULL" in distribution.reason


@pytest.mark.parametrize("fill", [np.nan, np.inf], ids=["all-null", "all-infinite"])
def test_reference_without_values_is_a_build_error(reference: pd.DataFrame, fill: float) -> None:
    """A baseline cannot describe a column its reference has no finite value for: before, an
    all-inf column became the category `inf` and an all-NULL one was skipped at every run."""
    frame = reference.copy()
    frame["e"] = fill
    for kinds in ({"e": "numeric"}, None):
        with pytest.raises(MlobsInputError, match="column 'e' has no finite values in the reference"):
            build_baseline(frame, name="features", version="v1", kinds=kinds)


def test_old_baseline_without_reference_values_is_skipped_with_reason(baseline: Baseline) -> None:
    """A stored baseline from before that rule: the column's distribution is skipped, by name."""
    empty = NumericProfile(nulls=N, bins=(0,) * (len(baseline.columns["a"].edges) + 1))
    columns = {**baseline.reference.columns, "a": empty}
    old = replace(baseline, reference=replace(baseline.reference, columns=columns))
    result = compare(old, _profile(baseline, _frame(seed=7)))
    _check(result)
    distribution = _finding(result, "a", "wasserstein")
    assert distribution.status is Status.SKIPPED
    assert "reference has no finite values" in distribution.reason
    assert _finding(result, "a", "missing_rate").status is Status.FAIL  # 100% -> 0% missing


@pytest.mark.parametrize("value", [5.0, 3.7, 123.456, 1e6 + 0.1])
def test_constant_reference_is_judged_by_js(reference: pd.DataFrame, value: float) -> None:
    frame = reference.copy()
    frame["k"] = value
    built = build_baseline(frame, name="features", version="v1", kinds={"k": "numeric"})
    assert built.columns["k"].edges == (value, math.nextafter(value, math.inf))  # below / equal / above

    same = _frame(seed=8)
    same["k"] = value
    unchanged = compare(built, _profile(built, same))
    _check(unchanged)
    assert _finding(unchanged, "k", "js").status is Status.PASS
    assert "constant" in unchanged.metrics["columns"]["k"]["note"]
    assert unchanged.metrics["columns"]["k"]["wasserstein"] is None

    moved = _frame(seed=8)
    moved["k"] = value
    moved.loc[moved.index[: len(moved) // 5], "k"] = value - 1.0  # 20% below the constant
    changed = compare(built, _profile(built, moved))
    _check(changed)
    main = _finding(changed, "k", "js")
    assert main.status is Status.FAIL
    assert main.value == pytest.approx(changed.metrics["columns"]["k"]["js"], abs=1e-6)
    assert "Jensen-Shannon" in changed.metrics["columns"]["k"]["note"]
    assert changed.metrics["drifted_columns"][0] == {"column": "k", "method": "js", "value": main.value}


def test_column_missing_from_current_is_an_error(baseline: Baseline) -> None:
    result = compare(baseline, _profile(baseline, _frame(seed=9).drop(columns=["b"])))
    _check(result)
    assert result.status is Status.ERROR
    errors = [f for f in result.findings if f.status is Status.ERROR]
    assert [f.subject for f in errors] == ["b"]
    assert "`b` is missing from the current data" in errors[0].reason
    assert "b" in result.summary
    assert _finding(result, "a", "wasserstein").status is Status.PASS  # other columns still judged


def test_column_missing_from_reference_is_an_error(baseline: Baseline) -> None:
    columns = {k: v for k, v in baseline.reference.columns.items() if k != "d"}
    broken = replace(baseline, reference=replace(baseline.reference, columns=columns))
    result = compare(broken, _profile(baseline, _frame(seed=9)))
    _check(result)
    assert result.status is Status.ERROR
    assert "`d` has no reference profile" in _finding(result, "d", "column").reason


def test_text_in_numeric_column_is_an_error(baseline: Baseline) -> None:
    current = _frame(seed=10)
    a = current["a"].astype(object)
    a.iloc[[3, 30, 300]] = ["n/a", "unknown", "12,5"]
    current["a"] = a
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert result.status is Status.ERROR
    error = _finding(result, "a", "column")
    assert error.status is Status.ERROR
    assert "not numbers" in error.reason
    assert "3 values" in error.reason


def test_numbers_as_text_in_numeric_column_are_numbers(baseline: Baseline) -> None:
    current = _frame(seed=10)
    current["a"] = current["a"].map(repr).astype(object)
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert result.status is Status.PASS, result.summary


def test_type_changed_column_is_an_error(baseline: Baseline) -> None:
    current = _frame(seed=11)
    current["b"] = pd.date_range("2026-01-01", periods=len(current), freq="s")
    current["city"] = np.arange(len(current), dtype=float)
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert result.status is Status.ERROR
    assert "type changed" in _finding(result, "b", "column").reason
    # a numeric column where the baseline has categories is still compared as categories (as text)
    assert _finding(result, "city", "js").status is Status.FAIL


def test_kind_mismatch_is_an_error(baseline: Baseline) -> None:
    profile = _profile(baseline, _frame(seed=11))
    columns = dict(profile.columns)
    columns["a"] = replace(profile.columns["city"])
    result = compare(baseline, replace(profile, columns=columns))
    _check(result)
    assert "profiled it as numeric, the current data as categorical" in _finding(result, "a", "column").reason


def test_infinities_are_a_finding_not_binned(baseline: Baseline) -> None:
    current = _frame(seed=12)
    current.loc[current.index[:7], "d"] = np.inf
    current.loc[current.index[7:10], "d"] = -np.inf
    profile = _profile(baseline, current)
    column = profile.columns["d"]
    assert isinstance(column, NumericProfile)
    assert column.non_finite == 10
    assert sum(column.bins) == column.count == len(current) - 10
    assert math.isfinite(column.total) and math.isfinite(column.max)
    result = compare(baseline, profile)
    _check(result)
    non_finite = _finding(result, "d", "non_finite")
    assert non_finite.status is Status.WARN  # 0.05% of the window: below the rate level, still named
    assert non_finite.value == pytest.approx(10 / len(current))
    assert "`d`: 10 infinite" in non_finite.reason
    assert _finding(result, "d", "wasserstein").status is Status.PASS
    assert result.status is Status.WARN


@pytest.mark.parametrize("fill", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_all_non_finite_column_drifts(baseline: Baseline, fill: float) -> None:
    """A column that becomes 100% +inf fails like one that becomes 100% NULL (before: a warning)."""
    current = _frame(seed=12)
    current["d"] = fill
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    metric = "missing_rate" if np.isnan(fill) else "non_finite"  # pandas keeps NaN as missing
    finding = _finding(result, "d", metric)
    assert finding.status is Status.FAIL
    assert finding.value == pytest.approx(1.0)
    skipped = _finding(result, "d", "wasserstein")
    assert skipped.status is Status.SKIPPED
    assert "no finite values" in skipped.reason
    assert result.metrics["drifted_columns"][0]["column"] == "d"
    assert result.status is Status.WARN  # 1 of 5 columns drifted, below drift_share


def test_mostly_infinite_column_drifts(baseline: Baseline) -> None:
    current = _frame(seed=12)
    current.loc[current.index[: len(current) * 6 // 10], "d"] = np.inf
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    finding = _finding(result, "d", "non_finite")
    assert finding.status is Status.FAIL
    assert "non-finite rate 0.0% -> 60.0%" in finding.reason
    assert [d["column"] for d in result.metrics["drifted_columns"]] == ["d"]


@pytest.mark.parametrize(
    "fill",
    [
        lambda n, rng: np.full(n, 6.0),
        lambda n, rng: rng.uniform(5.0, 100.0, n),
        lambda n, rng: np.full(n, 4.0),
    ],
    ids=["all-above", "uniform-above", "all-below"],
)
def test_constant_reference_sees_a_change_in_either_direction(reference: pd.DataFrame, fill: Any) -> None:
    frame = reference.copy()
    frame["k"] = 5.0
    built = build_baseline(frame, name="features", version="v1", kinds={"k": "numeric"})
    current = _frame(seed=8)
    current["k"] = fill(len(current), np.random.default_rng(8))
    result = compare(built, _profile(built, current))
    _check(result)
    main = _finding(result, "k", "js")
    assert main.status is Status.FAIL
    assert "reference is constant at 5; 100.0% of window values differ" in main.reason
    column = result.metrics["columns"]["k"]
    assert column["share_above_constant"] + column["share_below_constant"] == pytest.approx(1.0)


def test_million_distinct_categories_complete_approximately() -> None:
    rng = np.random.default_rng(13)
    ref = pd.DataFrame(
        {"id": np.char.add("r", np.arange(50_000).astype(str)).astype(object), "x": rng.normal(size=50_000)}
    )
    built = build_baseline(ref, name="events", version="v1", kinds={"id": "categorical"}, max_categories=1000)
    current = pd.DataFrame(
        {
            "id": np.char.add("c", np.arange(1_000_000).astype(str)).astype(object),
            "x": rng.normal(size=1_000_000),
        }
    )
    profile = profile_frame(current, built.columns.values(), max_categories=1000)
    id_profile = profile.columns["id"]
    assert len(id_profile.counts) == 1000  # type: ignore[union-attr]
    assert id_profile.other == 999_000  # type: ignore[union-attr]
    result = compare(built, profile)
    _check(result)
    assert result.status is not Status.ERROR
    assert result.metrics["columns"]["id"]["approximate"] is True
    assert result.metrics["columns"]["x"]["wasserstein"] < 0.05
    assert result.metrics["columns"]["id"]["chi2"] is not None


def test_unseen_category(baseline: Baseline) -> None:
    current = _frame(seed=14)
    current.loc[current.index[: len(current) // 20], "city"] = "tokyo"  # 5% in a new category
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    city = result.metrics["columns"]["city"]
    assert city["chi2"] is not None and math.isfinite(city["chi2"])
    assert city["chi2_dof"] == 4
    assert city["unseen_share"] == pytest.approx(0.05)
    assert city["unseen_categories"] == ["tokyo"]
    unseen = _finding(result, "city", "unseen_share")
    assert unseen.status is Status.FAIL
    assert unseen.value == pytest.approx(0.05)
    assert "tokyo" in unseen.reason
    assert city["approximate"] is False


def test_small_unseen_share_is_not_reported(baseline: Baseline) -> None:
    current = _frame(seed=14)
    current.loc[current.index[:20], "city"] = "tokyo"  # 0.1%
    result = compare(baseline, _profile(baseline, current))
    _check(result)
    assert result.metrics["columns"]["city"]["unseen_share"] == pytest.approx(0.001)
    assert not [f for f in result.findings if f.metric == "unseen_share"]


def test_column_unknown_to_the_baseline_is_an_error(baseline: Baseline) -> None:
    result = compare(baseline, _profile(baseline, _frame(seed=15)), columns=["a", "zip_code"])
    _check(result)
    assert result.status is Status.ERROR
    error = _finding(result, "zip_code", "column")
    assert "`zip_code` is not in baseline features v1" in error.reason
    assert "zip_code" in result.summary
    assert result.metrics["columns_judged"] == 1  # only the columns asked for


def test_columns_subset_judges_only_those(baseline: Baseline) -> None:
    result = compare(baseline, _profile(baseline, _frame(seed=15, shift={"b": 0.5})), columns=["a", "c"])
    _check(result)
    assert result.status is Status.PASS
    assert set(result.metrics["columns"]) == {"a", "c"}


def test_profile_over_other_edges_is_an_error(baseline: Baseline, reference: pd.DataFrame) -> None:
    coarse = build_baseline(reference, name="features", version="v0", bins=10)
    profile = profile_frame(_frame(seed=16), coarse.columns.values())
    result = compare(baseline, profile)
    _check(result)
    assert result.status is Status.ERROR
    for col in NUMERIC:
        assert "other bin edges" in _finding(result, col, "column").reason


def test_unknown_method_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match=r"methods\['a'\] must be one of wasserstein, psi"):
        DriftSettings(methods={"a": "energy"})  # type: ignore[dict-item]


def test_result_round_trips(baseline: Baseline) -> None:
    result = compare(
        baseline, _profile(baseline, _frame(seed=2, shift={"b": 0.5})), dataset="warehouse:features"
    )
    back = CheckResult.from_json(result.to_json())
    assert back.status is result.status
    assert back.dataset == "warehouse:features"
    assert back.findings == tuple(Finding.from_dict(f.to_dict()) for f in result.findings)
    assert result.metrics["baseline"] == "features/v1"
    assert result.metrics["reference_rows"] == N
