"""Shifted moments and the open-ended bins' totals of numeric profiles (core.profile, in memory).

The moments are sums of ``x - shift`` with ``shift = moment_shift(edges)`` (the middle edge), so a
column far from 0 keeps its variance; the first and last bin remember the sum of their values.
Profiles merge by addition, across different shifts by an exact conversion, and old stored
profiles (no shift, no bin totals) still load and merge.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from airflow_mlobs.core.profile import (
    MOMENT_SPLIT,
    NumericProfile,
    moment_shift,
    split_sum,
    tail_edges,
)
from airflow_mlobs.sources.drift_frame import numeric_profile, quantile_edges

DBL_MAX = 1.7976931348623157e308


def _large_offset(n: int = 20_000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1.7e9 + rng.normal(0.0, 30.0, n)


def _exact_mean_std(values: np.ndarray) -> tuple[float, float]:
    exact = [Fraction(float(v)) for v in values]
    mean = sum(exact) / len(exact)
    variance = sum((v - mean) ** 2 for v in exact) / len(exact)
    return float(mean), math.sqrt(float(variance))


def test_moment_shift_is_the_middle_edge() -> None:
    assert moment_shift(()) == 0.0
    assert moment_shift((3.0,)) == 3.0
    assert moment_shift((1.0, 2.0, 3.0)) == 2.0
    assert moment_shift((1.0, 2.0, 3.0, 4.0)) == 3.0  # edges[len // 2]
    assert moment_shift((0.0, MOMENT_SPLIT, DBL_MAX)) == 0.0  # a middle edge needing the split
    assert moment_shift((-DBL_MAX, -MOMENT_SPLIT, 0.0)) == 0.0
    assert moment_shift((0.0, math.nextafter(MOMENT_SPLIT, 0.0), DBL_MAX)) == math.nextafter(
        MOMENT_SPLIT, 0.0
    )


def test_std_of_a_large_offset_column_matches_numpy() -> None:
    """1.7e9 + N(0, 30): the plain sum of squares loses the variance (about 22.6 instead of 30),
    the shifted one matches numpy's two-pass std to 1e-6 relative."""
    values = _large_offset()
    edges = quantile_edges(values)
    profile = numeric_profile(pd.Series(values), edges)
    assert profile.shift == edges[len(edges) // 2] and abs(profile.shift - 1.7e9) < 200
    assert profile.std == pytest.approx(float(np.std(values)), rel=1e-6)
    assert profile.mean == pytest.approx(float(np.mean(values)), rel=1e-15)
    # The same rows without a shift (as profiles were before): the variance is lost to rounding.
    plain = numeric_profile(pd.Series(values), ())
    assert plain.shift == 0.0 and plain.std is not None
    assert abs(plain.std / float(np.std(values)) - 1) > 1e-3


def test_open_ended_bin_means() -> None:
    # The tail regions are the two outermost bins on each side (x < e[1], x >= e[-2]): a
    # baseline's outer edges are the reference's min and max, so the tail lies next to them.
    rng = np.random.default_rng(3)
    values = rng.standard_t(3, 5000) * 10 + 100
    edges = (80.0, 90.0, 100.0, 110.0, 120.0)
    profile = numeric_profile(pd.Series([*values, np.nan, np.inf, -np.inf]), edges)
    low, high = values[values < 90.0], values[values >= 110.0]
    assert profile.tail_count(0) == low.size and profile.tail_count(-1) == high.size
    assert profile.bins[0] + profile.bins[1] == low.size
    assert profile.low_total == pytest.approx(float((low - 100.0).sum()), rel=1e-12)
    assert profile.high_total == pytest.approx(float((high - 100.0).sum()), rel=1e-12)
    assert profile.low_mean == pytest.approx(float(low.mean()), rel=1e-12)
    assert profile.high_mean == pytest.approx(float(high.mean()), rel=1e-12)
    # An empty tail region: total 0, no mean.
    inside = numeric_profile(pd.Series([95.0, 105.0]), edges)
    assert (inside.low_total, inside.high_total) == (0.0, 0.0)
    assert inside.low_mean is None and inside.high_mean is None
    # Two edges (a constant's split): one bin per tail, x < e[0] and x >= e[-1].
    two = numeric_profile(pd.Series([1.0, 3.0, 3.5, 7.0]), (3.0, 4.0))
    assert (two.low_mean, two.high_mean) == (1.0, 7.0)
    # One edge: the two bins are x < e and x >= e, both open-ended.
    one = numeric_profile(pd.Series([1.0, 2.0, 5.0, 7.0]), (3.0,))
    assert (one.low_mean, one.high_mean) == (1.5, 6.0)
    # No edges: one bin, no open-ended totals.
    none = numeric_profile(pd.Series([1.0, 2.0]), ())
    assert none.low_total is None and none.high_total is None and none.low_mean is None
    assert "low_sum" not in none.to_dict() and "shift" not in none.to_dict()


def test_merge_of_two_halves_equals_the_whole() -> None:
    values = np.concatenate([_large_offset(), [1.6e9, 1.8e9]])
    edges = quantile_edges(values[:10_000])
    whole = numeric_profile(pd.Series(values), edges)
    merged = numeric_profile(pd.Series(values[:7001]), edges).merge(
        numeric_profile(pd.Series(values[7001:]), edges)
    )
    assert merged.shift == whole.shift
    assert (merged.count, merged.bins, merged.min, merged.max) == (
        whole.count,
        whole.bins,
        whole.min,
        whole.max,
    )
    for name in ("total", "total_sq", "low_total", "high_total"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-9, abs=1e-6), name
    assert merged.std == pytest.approx(float(np.std(values)), rel=1e-6)
    low_edge, high_edge = tail_edges(edges) or (0.0, 0.0)
    assert merged.low_mean == pytest.approx(float(values[values < low_edge].mean()), rel=1e-12)
    assert merged.high_mean == pytest.approx(float(values[values >= high_edge].mean()), rel=1e-12)


def test_merge_across_shifts_converts_exactly() -> None:
    """Profiles with different shifts (an old stored one has shift 0) merge into the moments of
    all the values: Σ(x-b) = Σ(x-a) + n(a-b), Σ(x-b)² = Σ(x-a)² + 2(a-b)Σ(x-a) + n(a-b)²."""
    rng = np.random.default_rng(11)
    a_values, b_values = rng.normal(500.0, 5.0, 300), rng.normal(505.0, 5.0, 200)
    edges = (490.0, 500.0, 510.0)
    a = numeric_profile(pd.Series(a_values), edges)
    b = numeric_profile(pd.Series(b_values), edges)
    b_other = NumericProfile(  # the same rows summed around 0, as an old profile would be
        count=b.count,
        min=b.min,
        max=b.max,
        total=float(b_values.sum()),
        total_sq=float(np.dot(b_values, b_values)),
        bins=b.bins,
        low_total=float(b_values[b_values < 500.0].sum()),  # the tail regions: x < e[1], x >= e[-2]
        high_total=float(b_values[b_values >= 500.0].sum()),
    )
    everything = np.concatenate([a_values, b_values])
    mean, std = _exact_mean_std(everything)
    for merged in (a.merge(b_other), b_other.merge(a)):
        assert merged.shift == 500.0  # the shift of the side with more values
        assert merged.mean == pytest.approx(mean, rel=1e-14)
        assert merged.std == pytest.approx(std, rel=1e-9)
        assert merged.low_mean == pytest.approx(float(everything[everything < 500.0].mean()), rel=1e-12)
        assert merged.high_mean == pytest.approx(float(everything[everything >= 500.0].mean()), rel=1e-12)
    same = a.merge(b)
    assert same.total == a.total + b.total and same.total_sq == a.total_sq + b.total_sq  # equal shifts add


def test_old_format_profiles_load_and_merge() -> None:
    """A profile stored before the shift and the bin totals existed reads as shift 0 with unknown
    bin totals; merged with a new one, the bin totals stay unknown unless its bin is empty."""
    old = {
        "kind": "numeric",
        "count": 3,
        "nulls": 1,
        "non_finite": 0,
        "invalid": 0,
        "min": 1.0,
        "max": 12.0,
        "sum": 15.0,
        "sum_sq": 149.0,
        "bins": [0, 2, 1],
    }
    profile = NumericProfile.from_dict(old)
    assert (profile.shift, profile.low_total, profile.high_total) == (0.0, None, None)
    assert profile.to_dict() == old  # written back in the same form
    assert profile.mean == 5.0 and profile.low_mean is None and profile.high_mean is None
    new = numeric_profile(pd.Series([-3.0, 4.0, 20.0, 30.0]), (0.0, 10.0))
    assert new.shift == 10.0
    merged = new.merge(profile)
    assert merged.low_total == pytest.approx(-13.0) and merged.low_mean == pytest.approx(
        -3.0
    )  # old low bin empty
    assert merged.high_total is None and merged.high_mean is None  # old high bin holds a value: unknown
    values = [-3.0, 4.0, 20.0, 30.0, 1.0, 2.0, 12.0]
    assert merged.mean == pytest.approx(float(np.mean(values)), rel=1e-14)
    assert merged.std == pytest.approx(float(np.std(values)), rel=1e-12)


def test_round_trip_keeps_shift_and_bin_totals() -> None:
    profile = numeric_profile(pd.Series(_large_offset(500)), quantile_edges(_large_offset(2000, seed=1)))
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert {"shift", "low_sum", "high_sum"} <= set(data)
    assert NumericProfile.from_dict(data) == profile


def test_huge_values_split_after_the_shift() -> None:
    """Values whose squares overflow (DBL_MAX) keep the split moments on the shifted values; the
    open-ended bins' totals are split the same way (split_sum)."""
    values = np.array([1.0, 2.0, 3.0, 12.0, DBL_MAX, -1e200, 5.0])
    profile = numeric_profile(pd.Series(values), (0.0, 4.0, 10.0))
    assert profile.shift == 4.0 and profile.scale_exp == 600
    exact = [Fraction(float(v)) for v in values]
    exact_mean = sum(exact) / len(exact)
    variance = sum((v - exact_mean) ** 2 for v in exact) / len(exact)
    assert profile.mean == pytest.approx(float(exact_mean), rel=1e-12)
    assert profile.std == pytest.approx(float(variance / 2**1200) ** 0.5 * 2.0**600, rel=1e-12)
    # The tail regions (three edges): x < 4 and x >= 4.
    assert profile.low_mean == pytest.approx((1.0 + 2.0 + 3.0 - 1e200) / 4, rel=1e-15)
    assert profile.high_mean == pytest.approx((12.0 + DBL_MAX + 5.0) / 3, rel=1e-15)
    assert math.isfinite(profile.high_total or 0.0)
    json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert split_sum(3.0, 0.5, 0) == 3.0 and split_sum(2.0**600, 0.5, 600) == 1.5
