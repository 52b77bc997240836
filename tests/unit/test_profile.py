"""Profiles and baselines: JSON round trips, merging, category capping, storage, and building a
baseline from a DataFrame."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import (
    Baseline,
    CategoricalProfile,
    NumericProfile,
    Profile,
    baseline_path,
    capped,
    column_profile_from_dict,
    load_baseline,
    quantile_levels,
)
from airflow_mlobs.core.types import category_text
from airflow_mlobs.sources.drift_frame import (
    build_baseline,
    categorical_profile,
    numeric_profile,
    profile_frame,
)


def _frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 3.0, n)
    x[rng.integers(0, n, 40)] = np.nan
    x[rng.integers(0, n, 5)] = np.inf
    x[rng.integers(0, n, 5)] = -np.inf
    amount = rng.lognormal(3.0, 1.0, n)
    city = rng.choice(["berlin", "paris", "rome", "oslo", "lima"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).astype(
        object
    )
    city[rng.integers(0, n, 30)] = None
    return pd.DataFrame(
        {
            "x": x,
            "amount": amount,
            "flag": rng.integers(0, 2, n),
            "city": city,
            "active": rng.random(n) < 0.3,
        }
    )


def _baseline(frame: pd.DataFrame | None = None, **kwargs: object) -> Baseline:
    return build_baseline(_frame() if frame is None else frame, name="features", version="v1", **kwargs)  # type: ignore[arg-type]


# --- JSON round trips ----------------------------------------------------------------------------


def test_numeric_profile_round_trip() -> None:
    profile = numeric_profile(pd.Series([1.5, np.nan, np.inf, 2.5, 7.0, -3.0]), (0.0, 2.0, 5.0))
    assert profile.count == 4
    assert profile.nulls == 1
    assert profile.non_finite == 1
    assert profile.bins == (1, 1, 1, 1)
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert NumericProfile.from_dict(data) == profile
    assert column_profile_from_dict(data) == profile


def test_empty_numeric_profile_round_trip() -> None:
    profile = numeric_profile(pd.Series([np.nan, np.nan]), (0.0, 1.0))
    assert profile.count == 0
    assert profile.min is None and profile.mean is None and profile.std is None
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert NumericProfile.from_dict(data) == profile


def test_categorical_profile_round_trip() -> None:
    profile = categorical_profile(pd.Series(["a", "b", "b", None, "c", "c", "c"]), max_categories=2)
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert CategoricalProfile.from_dict(data) == profile
    assert column_profile_from_dict(data) == profile
    assert list(data["counts"]) == ["c", "b"]  # most frequent first


def test_unknown_column_profile_kind() -> None:
    with pytest.raises(MlobsInputError, match="unknown column profile kind"):
        column_profile_from_dict({"kind": "histogram"})


def test_profile_round_trip_with_everything_set() -> None:
    baseline = _baseline()
    profile = profile_frame(
        _frame(500, seed=1).drop(columns=["amount"]),
        baseline.columns.values(),
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
        window_end=datetime(2026, 1, 2, tzinfo=UTC),
    )
    profile = Profile(
        row_count=profile.row_count,
        columns=profile.columns,
        edges_key=profile.edges_key,
        window_start=profile.window_start,
        window_end=profile.window_end,
        missing_columns=profile.missing_columns,
        errors={"x2": "type changed"},
        segment="EU",
    )
    assert profile.missing_columns == ("amount",)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    back = Profile.from_dict(json.loads(text))
    assert back == profile
    assert Profile.from_dict(json.loads(profile.to_json())) == profile


def test_baseline_round_trip() -> None:
    baseline = _baseline()
    back = Baseline.from_dict(json.loads(baseline.to_json()))
    assert back == baseline
    assert back.key == baseline.key == baseline.reference.edges_key


# --- merging -------------------------------------------------------------------------------------


def _split(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [frame.iloc[:700], frame.iloc[700:1900], frame.iloc[1900:]]


def _assert_same_profile(merged: Profile, whole: Profile) -> None:
    assert merged.row_count == whole.row_count
    assert merged.edges_key == whole.edges_key
    assert set(merged.columns) == set(whole.columns)
    for name, expected in whole.columns.items():
        got = merged.columns[name]
        assert type(got) is type(expected)
        if isinstance(expected, NumericProfile):
            assert isinstance(got, NumericProfile)
            assert (got.count, got.nulls, got.non_finite, got.invalid) == (
                expected.count,
                expected.nulls,
                expected.non_finite,
                expected.invalid,
            )
            assert got.bins == expected.bins
            assert got.min == expected.min
            assert got.max == expected.max
            assert got.total == pytest.approx(expected.total, rel=1e-9)
            assert got.total_sq == pytest.approx(expected.total_sq, rel=1e-9)
        else:
            assert got == expected


def test_merge_equals_profile_of_concatenated_rows() -> None:
    frame = _frame()
    baseline = _baseline(frame)
    specs = list(baseline.columns.values())
    parts = [profile_frame(part, specs) for part in _split(frame)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = profile_frame(frame, specs)
    _assert_same_profile(merged, whole)
    assert sum(merged.columns["x"].bins) == merged.columns["x"].count  # type: ignore[union-attr]
    assert merged.columns["x"].non_finite == 10  # type: ignore[union-attr]


def test_merge_is_associative_and_keeps_window_bounds() -> None:
    frame = _frame(seed=3)
    specs = list(_baseline(frame).columns.values())
    days = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    a, b, c = (
        profile_frame(part, specs, window_start=days[i], window_end=days[i + 1])
        for i, part in enumerate(_split(frame))
    )
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    _assert_same_profile(left, right)
    assert left.window_start == right.window_start == days[0]
    assert left.window_end == right.window_end == days[3]


def test_merge_refuses_different_baselines() -> None:
    frame = _frame()
    coarse = build_baseline(frame, name="features", version="v1", bins=10)
    fine = build_baseline(frame, name="features", version="v2", bins=20)
    a = profile_frame(frame.iloc[:100], coarse.columns.values())
    b = profile_frame(frame.iloc[100:], fine.columns.values())
    assert a.edges_key != b.edges_key
    with pytest.raises(MlobsInputError, match="different baselines"):
        a.merge(b)


def test_numeric_merge_refuses_other_bins_and_kind_mismatch() -> None:
    with pytest.raises(MlobsInputError, match="different bin edges"):
        NumericProfile(count=1, bins=(1, 0)).merge(NumericProfile(count=1, bins=(1, 0, 0)))
    numeric = Profile(row_count=1, columns={"a": NumericProfile(count=1, bins=(1,))})
    categorical = Profile(row_count=1, columns={"a": CategoricalProfile(counts={"x": 1})})
    with pytest.raises(MlobsInputError, match="numeric in one profile, categorical in the other"):
        numeric.merge(categorical)


# --- categories ----------------------------------------------------------------------------------


def test_categorical_capping_keeps_the_most_frequent() -> None:
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 20 + ["d"] * 5 + ["e"] * 3 + ["f"] * 1 + [None] * 4
    profile = categorical_profile(pd.Series(values, dtype=object), max_categories=3)
    assert dict(profile.counts) == {"a": 50, "b": 30, "c": 20}
    assert profile.other == 9
    assert profile.overflow is True
    assert profile.nulls == 4
    assert profile.count == 109
    assert profile.rows == 113

    uncapped = categorical_profile(pd.Series(values, dtype=object), max_categories=6)
    assert uncapped.overflow is False
    assert uncapped.other == 0
    assert len(uncapped.counts) == 6


def test_capping_ties_by_name_and_merge_caps() -> None:
    profile = capped({"z": 2, "b": 2, "a": 2, "c": 1}, nulls=0, max_categories=2)
    assert dict(profile.counts) == {"a": 2, "b": 2}
    assert profile.other == 3

    one = CategoricalProfile(counts={"a": 10, "b": 1})
    two = CategoricalProfile(counts={"c": 5, "b": 1}, nulls=2)
    merged = one.merge(two, max_categories=2)
    assert dict(merged.counts) == {"a": 10, "c": 5}
    assert merged.other == 2
    assert merged.nulls == 2
    assert merged.overflow is True


def test_category_values_share_canonical_text() -> None:
    profile = categorical_profile(pd.Series([1, 1.0, "1", True, 0.1, None], dtype=object))
    assert profile.counts.get("0.1") == 1
    assert profile.nulls == 1
    # 1, 1.0 and "1" are the same category; True is spelled "true" (pandas may fold it into 1)
    assert profile.counts["1"] + profile.counts.get("true", 0) == 4
    assert profile.counts["1"] >= 3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (np.bool_(True), "true"),
        (1, "1"),
        (1.0, "1"),
        (np.int64(7), "7"),
        (np.float64(2.0), "2"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        ("x", "x"),
    ],
)
def test_category_text(value: object, text: str) -> None:
    assert category_text(value) == text


# --- storage -------------------------------------------------------------------------------------


def _save_versions(directory: Path, *versions: str) -> Baseline:
    base = _baseline()
    for version in versions:
        Baseline.from_dict({**base.to_dict(), "version": version}).save(directory)
    return base


def test_save_and_load_by_name_and_version(tmp_path: Path) -> None:
    base = _baseline()
    path = base.save(tmp_path)
    assert path == tmp_path / "features" / "v1.json"
    assert load_baseline(tmp_path, "features", "v1") == base


def test_load_newest_version_in_natural_order(tmp_path: Path) -> None:
    _save_versions(tmp_path, "v1", "v2", "v10", "v9")
    assert load_baseline(tmp_path, "features").version == "v10"
    assert load_baseline(tmp_path, "features", "v2").version == "v2"


def test_load_newest_dated_version(tmp_path: Path) -> None:
    _save_versions(tmp_path, "2026-01-09", "2026-01-10", "2025-12-31")
    assert load_baseline(tmp_path, "features").version == "2026-01-10"


def test_load_unknown_name(tmp_path: Path) -> None:
    _save_versions(tmp_path, "v1")
    with pytest.raises(MlobsInputError, match="no baseline named 'other'"):
        load_baseline(tmp_path, "other")
    with pytest.raises(MlobsInputError, match="'other' version 'v1' not found"):
        load_baseline(tmp_path, "other", "v1")


def test_load_unknown_version_lists_known_versions(tmp_path: Path) -> None:
    _save_versions(tmp_path, "v1", "v2")
    with pytest.raises(MlobsInputError, match="version 'v3' not found") as info:
        load_baseline(tmp_path, "features", "v3")
    assert "known versions" in str(info.value)
    assert "v1" in str(info.value) and "v2" in str(info.value)


def test_load_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "features" / "v1.json"
    path.parent.mkdir()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(MlobsInputError, match="not valid JSON") as info:
        load_baseline(tmp_path, "features", "v1")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("drop", ["columns", "reference", "name", "version"])
def test_load_file_missing_keys_names_the_file(tmp_path: Path, drop: str) -> None:
    data = _baseline().to_dict()
    del data[drop]
    path = tmp_path / "features" / "v1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(MlobsInputError, match="not a valid baseline") as info:
        load_baseline(tmp_path, "features", "v1")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text", ["[]", "null", "42", '{"name": "f", "version": "v1", "columns": [], "reference": []}']
)
def test_load_json_that_is_not_a_baseline_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "features" / "v1.json"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MlobsInputError) as info:
        load_baseline(tmp_path, "features", "v1")
    assert str(path) in str(info.value)


def test_load_newer_baseline_format(tmp_path: Path) -> None:
    data = {**_baseline().to_dict(), "baseline_version": 99}
    path = tmp_path / "features" / "v1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(MlobsInputError, match="newer"):
        load_baseline(tmp_path, "features", "v1")


@pytest.mark.parametrize(
    ("name", "version"), [("a/b", "v1"), ("a\\b", "v1"), (".hidden", "v1"), ("", "v1"), ("ok", "../v1")]
)
def test_baseline_path_rejects_paths(tmp_path: Path, name: str, version: str) -> None:
    with pytest.raises(MlobsInputError, match="plain name"):
        baseline_path(tmp_path, name, version)


def test_load_latest_rejects_names_with_slashes(tmp_path: Path) -> None:
    # A baseline outside the store must not be reachable through a name like "../outside".
    _baseline().save(tmp_path / "elsewhere")
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(MlobsInputError, match="plain name"):
        load_baseline(store, "../elsewhere/features")
    with pytest.raises(MlobsInputError, match="plain name"):
        load_baseline(store, "../elsewhere/features", "v1")


# --- building a baseline -------------------------------------------------------------------------


def test_build_baseline_kinds() -> None:
    frame = _frame()
    frame["when"] = pd.date_range("2026-01-01", periods=len(frame), freq="min")
    baseline = build_baseline(frame, name="features", version="v1")
    kinds = {name: spec.kind for name, spec in baseline.columns.items()}
    assert kinds == {
        "x": "numeric",
        "amount": "numeric",
        "flag": "categorical",
        "city": "categorical",
        "active": "categorical",
    }
    assert "when" not in baseline.columns
    assert "when" not in baseline.reference.columns
    assert set(baseline.columns["flag"].categories) == {"0", "1"}
    assert set(baseline.columns["active"].categories) == {"true", "false"}
    assert set(baseline.columns["city"].categories) == {"berlin", "paris", "rome", "oslo", "lima"}
    assert baseline.reference.row_count == len(frame)
    assert baseline.reference.edges_key == baseline.key


@pytest.mark.parametrize("bins", [2, 5, 20])
def test_quantile_edges_unique_and_increasing(bins: int) -> None:
    baseline = _baseline(bins=bins)
    for name in ("x", "amount"):
        edges = np.asarray(baseline.columns[name].edges)
        assert 2 <= len(edges) <= len(quantile_levels(bins))  # bins + 1 plus the tail levels
        assert np.all(np.diff(edges) > 0)
        assert np.all(np.isfinite(edges))
        profile = baseline.reference.columns[name]
        assert isinstance(profile, NumericProfile)
        assert len(profile.bins) == len(edges) + 1
        assert edges[0] == profile.min  # the 0 quantile is the smallest observed value
        assert edges[-1] == profile.max


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"bins": 1}, "bins must be an integer >= 2, got 1"),
        ({"bins": 0}, "bins must be an integer >= 2, got 0"),
        ({"max_categories": 0}, "max_categories must be an integer >= 1, got 0"),
    ],
    ids=["one-bin", "no-bins", "no-categories"],
)
def test_baseline_arguments_are_checked(arguments: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_baseline(pd.DataFrame({"v": np.arange(100.0)}), name="f", version="1", **arguments)  # type: ignore[arg-type]


def test_quantile_edges_of_tied_values_are_deduplicated() -> None:
    frame = pd.DataFrame({"v": np.repeat(np.arange(12.0), [500, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 500])})
    edges = build_baseline(frame, name="f", version="1").columns["v"].edges
    assert len(edges) <= len(quantile_levels())
    assert len(set(edges)) == len(edges)
    assert list(edges) == sorted(edges)


def test_build_baseline_kinds_override_and_explicit_columns() -> None:
    frame = _frame()
    baseline = build_baseline(
        frame,
        name="features",
        version="v1",
        columns=["flag", "x"],
        kinds={"flag": "numeric", "x": "categorical"},
    )
    assert list(baseline.columns) == ["flag", "x"]
    assert baseline.columns["flag"].kind == "numeric"
    assert baseline.columns["flag"].edges == (0.0, 1.0)
    assert baseline.columns["x"].kind == "categorical"


def test_build_baseline_unknown_columns_are_named() -> None:
    with pytest.raises(MlobsInputError, match="nope, also_missing"):
        build_baseline(_frame(), name="features", version="v1", columns=["x", "nope", "also_missing"])


def test_build_baseline_rejects_explicit_datetime_and_text_as_numeric() -> None:
    frame = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=5), "word": list("abcde")})
    with pytest.raises(MlobsInputError, match="'when'"):
        build_baseline(frame, name="f", version="1", columns=["when"])
    with pytest.raises(MlobsInputError, match="'word' has no numeric values"):
        build_baseline(frame, name="f", version="1", columns=["word"], kinds={"word": "numeric"})


def test_constant_numeric_profile_has_zero_std() -> None:
    # E[x^2] - E[x]^2 must not leave rounding noise for a constant column (the drift engine uses
    # std 0 to recognise a constant reference).
    for value in (0.1, 3.7, 123.456, 1e6 + 0.1, 1 / 3):
        for n in (10, 1000, 12345):
            profile = numeric_profile(pd.Series(np.full(n, value)), (value,))
            assert profile.std == 0.0, (value, n, profile.std)


def test_split_moments_round_trip_and_merge_across_scales() -> None:
    """A profile holding values beyond 2**480 keeps its moments in units of 2**600 (strict JSON),
    and merges with an ordinary one into the moments of all the values."""
    from fractions import Fraction

    edges = (0.0, 10.0)
    ordinary = pd.Series([1.0, 2.0, 3.0, 12.0])
    huge = pd.Series([1.7976931348623157e308, 5.0, -1e200])
    a, b = numeric_profile(ordinary, edges), numeric_profile(huge, edges)
    assert (a.scale_exp, b.scale_exp) == (0, 600)
    assert "scale_exp" not in a.to_dict()
    assert NumericProfile.from_dict(json.loads(json.dumps(b.to_dict(), allow_nan=False))) == b
    merged = a.merge(b)
    values = [Fraction(v) for v in [*ordinary, *huge]]
    mean = sum(values) / len(values)
    assert merged.scale_exp == 600 and merged.count == 7
    assert merged.mean == pytest.approx(float(mean), rel=1e-12)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    assert merged.std == pytest.approx(float(variance / 2**1200) ** 0.5 * 2.0**600, rel=1e-12)
    assert a.merge(a).total == pytest.approx(2 * a.total)  # ordinary data: plain sums as before


def test_unseen_is_counted_before_folding_and_merges() -> None:
    series = pd.Series(["a"] * 50 + ["b"] * 30 + [f"new{i}" for i in range(20)], dtype=object)
    profile = categorical_profile(series, max_categories=2, categories=("a", "b"))
    assert profile.other == 20 and profile.unseen == 20  # all of them folded into (other)
    assert CategoricalProfile.from_dict(profile.to_dict()) == profile
    assert profile.merge(profile).unseen == 40
    assert categorical_profile(series, max_categories=2).unseen is None  # no category set to compare
    assert profile.merge(categorical_profile(series, max_categories=2)).unseen is None


def test_constant_column_edges_split_below_equal_above() -> None:
    baseline = build_baseline(
        pd.DataFrame({"k": [5.0] * 50, "x": np.arange(50.0)}), name="f", version="1", kinds={"k": "numeric"}
    )
    assert baseline.columns["k"].edges == (5.0, np.nextafter(5.0, np.inf))
    profile = numeric_profile(pd.Series([4.0, 5.0, 5.0, 6.0, 100.0]), baseline.columns["k"].edges)
    assert profile.bins == (1, 2, 2)
