"""Drift statistics on binned counts, each checked against an independent computation (scipy or a
hand-written formula from the module docstring)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from airflow_mlobs.core import stats
from airflow_mlobs.sources.drift_frame import numeric_profile, quantile_edges


def _count_vectors(seed: int, size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random count vectors, some with zeros on one side or the other."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(6):
        p = rng.integers(0, 500, size).astype(float)
        q = rng.integers(0, 500, size).astype(float)
        p[rng.integers(0, size)] = 0.0  # a bin empty in the reference
        q[rng.integers(0, size, 2)] = 0.0  # bins empty in the current
        pairs.append((p, q))
    return pairs


def _binned(a: np.ndarray, b: np.ndarray, edges: tuple[float, ...]) -> tuple[tuple[int, ...], ...]:
    return numeric_profile(pd.Series(a), edges).bins, numeric_profile(pd.Series(b), edges).bins


# --- Jensen-Shannon ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_js_distance_equals_scipy(seed: int) -> None:
    for p, q in _count_vectors(seed):
        expected = jensenshannon(p, q, base=2)
        got = stats.js_distance(p, q)
        assert got is not None
        assert got == pytest.approx(expected, abs=1e-12)
        assert 0.0 <= got <= 1.0


def test_js_distance_with_zero_only_on_one_side_matches_scipy() -> None:
    p = [10, 0, 5, 0, 1]
    q = [0, 7, 5, 3, 0]
    assert stats.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_js_distance_identical_is_zero_and_disjoint_is_one() -> None:
    assert stats.js_distance([3, 4, 5], [3, 4, 5]) == 0.0
    assert stats.js_distance([3, 4, 5], [30, 40, 50]) == pytest.approx(0.0, abs=1e-12)
    assert stats.js_distance([3, 4, 0, 0], [0, 0, 2, 9]) == pytest.approx(1.0, abs=1e-12)


def test_js_distance_empty_side_is_none() -> None:
    assert stats.js_distance([0, 0], [1, 2]) is None
    assert stats.js_distance([1, 2], [0, 0]) is None


# --- chi-square ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chi2_homogeneity_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        ref = rng.integers(1, 300, 6)
        cur = rng.integers(1, 300, 6)
        expected = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
        got = stats.chi2_homogeneity(ref, cur)
        assert got.statistic == pytest.approx(expected.statistic, rel=1e-10)
        assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-300)
        assert got.dof == expected.dof == 5
        assert got.reason == ""


def test_chi2_unseen_category_is_finite_and_matches_scipy() -> None:
    ref = [100, 200, 300, 0]  # the last category never seen in the reference
    cur = [90, 210, 280, 25]
    expected = sps.chi2_contingency(np.array([ref, cur]), correction=False)
    got = stats.chi2_homogeneity(ref, cur)
    assert got.statistic is not None and math.isfinite(got.statistic)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-8)
    assert got.dof == expected.dof == 3


def test_chi2_drops_categories_empty_on_both_sides() -> None:
    got = stats.chi2_homogeneity([10, 0, 20, 30], [15, 0, 25, 20])
    expected = sps.chi2_contingency(np.array([[10, 20, 30], [15, 25, 20]]), correction=False)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-8)
    assert got.dof == 2


def test_chi2_single_category() -> None:
    for ref, cur in (([50], [70]), ([50, 0], [70, 0])):
        got = stats.chi2_homogeneity(ref, cur)
        assert got.statistic == 0.0
        assert got.pvalue == 1.0
        assert got.dof == 0
        assert "single category" in got.reason


def test_chi2_empty_side_is_none_with_reason() -> None:
    for ref, cur in (([0, 0], [1, 2]), ([1, 2], [0, 0]), ([], [])):
        got = stats.chi2_homogeneity(ref, cur)
        assert got.statistic is None
        assert got.pvalue is None
        assert got.reason


def test_cramers_v() -> None:
    assert stats.cramers_v(40.0, 1000.0) == pytest.approx(math.sqrt(0.04))
    assert stats.cramers_v(5000.0, 1000.0) == 1.0
    assert stats.cramers_v(3.0, 0.0) == 0.0


# --- KS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "shift", "scale"), [(0, 0.0, 1.0), (1, 0.1, 1.0), (2, 0.0, 1.5), (3, 0.4, 0.7)]
)
def test_ks_binned_is_a_lower_bound_within_one_bin_mass(seed: int, shift: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=3000)
    b = rng.normal(shift, scale, size=2000)
    edges = quantile_edges(a, 20)
    ref, cur = _binned(a, b, edges)
    got = stats.ks_binned(ref, cur)
    exact = sps.ks_2samp(a, b).statistic
    largest_bin_mass = max(max(ref) / sum(ref), max(cur) / sum(cur))
    assert got.statistic is not None
    assert got.statistic <= exact + 1e-12
    assert exact - got.statistic <= largest_bin_mass + 1e-12
    assert 0.0 <= got.pvalue <= 1.0


def test_ks_binned_pvalue_close_to_scipy_for_large_n() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(size=20_000)
    b = rng.normal(0.02, size=20_000)
    edges = quantile_edges(a, 1000)
    got = stats.ks_binned(*_binned(a, b, edges))
    expected = sps.ks_2samp(a, b)
    assert 0.01 < expected.pvalue < 0.9  # a p-value in the informative range
    assert got.statistic == pytest.approx(expected.statistic, abs=0.002)
    assert got.pvalue == pytest.approx(expected.pvalue, abs=0.05)


def test_ks_binned_exact_when_values_sit_on_the_edges() -> None:
    rng = np.random.default_rng(3)
    edges = tuple(float(x) for x in range(11))
    a = rng.integers(0, 10, 5000).astype(float)
    b = rng.choice(np.arange(11.0), size=30_000, p=np.linspace(1, 2, 11) / np.linspace(1, 2, 11).sum())
    got = stats.ks_binned(*_binned(a, b, edges))
    expected = sps.ks_2samp(a, b, method="asymp")
    assert got.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, abs=0.01)


def test_ks_binned_identical_and_empty() -> None:
    same = stats.ks_binned([1, 2, 3], [2, 4, 6])
    assert same.statistic == 0.0
    assert same.pvalue == 1.0
    empty = stats.ks_binned([0, 0, 0], [1, 2, 3])
    assert empty.statistic is None
    assert empty.pvalue is None
    assert empty.reason


# --- PSI -----------------------------------------------------------------------------------------


def _psi_by_hand(ref: list[float], cur: list[float], eps: float = 1e-4) -> float:
    k = len(ref)
    total_ref, total_cur = sum(ref), sum(cur)
    out = 0.0
    for r, c in zip(ref, cur, strict=True):
        p = (r / total_ref + eps) / (1 + k * eps)
        q = (c / total_cur + eps) / (1 + k * eps)
        out += (q - p) * math.log(q / p)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_psi_matches_hand_formula(seed: int) -> None:
    assert stats.PSI_EPSILON == 1e-4
    for p, q in _count_vectors(seed):
        expected = _psi_by_hand(list(p), list(q))
        got = stats.psi(p, q)
        assert got == pytest.approx(expected, rel=1e-12)
        assert got >= 0


def test_psi_known_value_and_never_infinite() -> None:
    # 50/50 -> 90/10 without smoothing: 0.4*ln(1.8) - 0.4*ln(0.2) = 0.4*ln(9)
    assert stats.psi([50, 50], [90, 10]) == pytest.approx(0.4 * math.log(9), rel=1e-3)
    extreme = stats.psi([100, 0, 0], [0, 0, 100])
    assert extreme is not None and math.isfinite(extreme)
    assert extreme == pytest.approx(_psi_by_hand([100, 0, 0], [0, 0, 100]), rel=1e-12)
    assert stats.psi([1, 2], [2, 4]) == pytest.approx(0.0, abs=1e-15)
    assert stats.psi([0, 0], [1, 1]) is None


# --- Hellinger -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_hellinger_matches_numpy_formula(seed: int) -> None:
    for p, q in _count_vectors(seed):
        pn, qn = p / p.sum(), q / q.sum()
        expected = np.linalg.norm(np.sqrt(pn) - np.sqrt(qn)) / math.sqrt(2)
        got = stats.hellinger(p, q)
        assert got == pytest.approx(expected, abs=1e-7)
        assert 0.0 <= got <= 1.0


def test_hellinger_bounds() -> None:
    assert stats.hellinger([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-7)
    assert stats.hellinger([1, 0], [0, 1]) == 1.0
    assert stats.hellinger([1, 0], [0, 0]) is None


# --- Wasserstein ---------------------------------------------------------------------------------


def _uniform_within(edges: np.ndarray, counts: list[int]) -> np.ndarray:
    """``counts[i]`` values evenly spread inside bin ``[edges[i], edges[i+1])``."""
    parts = [
        edges[i] + (np.arange(n) + 0.5) / n * (edges[i + 1] - edges[i]) for i, n in enumerate(counts) if n
    ]
    return np.concatenate(parts)


def _wasserstein(a: np.ndarray, b: np.ndarray, edges: tuple[float, ...]) -> float | None:
    pa, pb = numeric_profile(pd.Series(a), edges), numeric_profile(pd.Series(b), edges)
    return stats.wasserstein_binned(
        pa.bins,
        pb.bins,
        edges,
        low=min(pa.min, pb.min),
        high=max(pa.max, pb.max),
        reference_std=pa.std,
    )


@pytest.mark.parametrize(
    ("ref_counts", "cur_counts"),
    [
        ([1000, 2000, 3000, 500, 1500, 2000], [3000, 500, 1000, 2000, 2000, 1500]),
        ([1000, 1000, 1000, 1000, 1000, 1000], [0, 0, 1000, 4000, 1000, 0]),
        ([2000, 0, 2000, 0, 2000, 2000], [500, 4000, 500, 500, 500, 2000]),
    ],
)
def test_wasserstein_exact_for_data_uniform_within_bins(ref_counts: list[int], cur_counts: list[int]) -> None:
    edges = np.array([0.0, 1.0, 2.0, 4.0, 5.0, 7.0, 10.0])
    a, b = _uniform_within(edges, ref_counts), _uniform_within(edges, cur_counts)
    got = _wasserstein(a, b, tuple(edges))
    expected = sps.wasserstein_distance(a, b) / a.std()
    assert got is not None
    assert got == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    ("seed", "shift", "scale"), [(0, 0.0, 1.0), (1, 0.1, 1.0), (2, 0.5, 1.0), (3, 0.0, 1.3), (4, 1.0, 2.0)]
)
def test_wasserstein_normal_within_one_interior_bin_width(seed: int, shift: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(5.0, 2.0, size=50_000)
    b = rng.normal(5.0 + 2.0 * shift, 2.0 * scale, size=50_000)
    edges = quantile_edges(a, 20)
    got = _wasserstein(a, b, edges)
    expected = sps.wasserstein_distance(a, b) / a.std()
    interior = np.diff(np.asarray(edges)[1:-1]).max() / a.std()
    assert got is not None
    assert abs(got - expected) <= interior


def test_wasserstein_normal_shift_within_ten_percent() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=50_000)
    b = rng.normal(0.5, 1.0, size=50_000)
    got = _wasserstein(a, b, quantile_edges(a, 20))
    assert got == pytest.approx(sps.wasserstein_distance(a, b) / a.std(), rel=0.1)


def test_wasserstein_identical_is_zero_and_constant_reference_is_none() -> None:
    edges = (0.0, 1.0, 2.0)
    assert (
        stats.wasserstein_binned([1, 2, 3, 4], [2, 4, 6, 8], edges, low=-1, high=3, reference_std=1.0) == 0.0
    )
    assert (
        stats.wasserstein_binned([0, 0, 5, 0], [0, 1, 5, 0], edges, low=1, high=1, reference_std=0.0) is None
    )
    assert (
        stats.wasserstein_binned([0, 0, 5, 0], [0, 1, 5, 0], edges, low=1, high=1, reference_std=None) is None
    )
    assert (
        stats.wasserstein_binned([0, 0, 0, 0], [0, 1, 5, 0], edges, low=1, high=1, reference_std=1.0) is None
    )


def test_wasserstein_constant_reference_from_data_is_none() -> None:
    a = np.full(1000, 3.0)
    b = np.random.default_rng(0).normal(3.0, 1.0, 1000)
    assert _wasserstein(a, b, quantile_edges(a, 20)) is None


def test_wasserstein_point_masses_on_edges() -> None:
    # Reference all at 0, current all at 1 (both on edges; the binned bins [0,1) and [1,2) spread
    # them over width 1, so the distance is exactly one unit), scaled by std 2.
    edges = (0.0, 1.0, 2.0)
    got = stats.wasserstein_binned([0, 10, 0, 0], [0, 0, 10, 0], edges, low=0.0, high=1.0, reference_std=2.0)
    assert got == pytest.approx(0.5)


# --- two proportions and p-value adjustment ------------------------------------------------------


@pytest.mark.parametrize(
    ("hits_a", "n_a", "hits_b", "n_b"),
    [(10, 1000, 30, 1000), (0, 500, 5, 400), (50, 100, 40, 120), (7, 7, 3, 9)],
)
def test_two_proportion_test_matches_direct_z_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> None:
    pa, pb = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    z = (pb - pa) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    expected_p = math.erfc(abs(z) / math.sqrt(2))
    got = stats.two_proportion_test(hits_a, n_a, hits_b, n_b)
    assert got.statistic == pytest.approx(pb - pa)
    assert got.pvalue == pytest.approx(expected_p, rel=1e-9)


def test_two_proportion_test_degenerate() -> None:
    same = stats.two_proportion_test(0, 100, 0, 50)
    assert same.statistic == 0.0
    assert same.pvalue == 1.0
    empty = stats.two_proportion_test(0, 0, 3, 10)
    assert empty.statistic is None
    assert empty.pvalue is None
    assert empty.reason


def test_adjust_pvalues_none_and_bonferroni() -> None:
    pvalues = [0.01, None, 0.04, 0.5]
    assert stats.adjust_pvalues(pvalues, "none") == pvalues
    assert stats.adjust_pvalues(pvalues, "bonferroni") == pytest.approx([0.03, None, 0.12, 1.0])


@pytest.mark.parametrize("method", ["bh", "by"])
def test_adjust_pvalues_fdr_equals_scipy_and_keeps_none(method: str) -> None:
    rng = np.random.default_rng(11)
    present = list(rng.uniform(0, 0.2, 8))
    pvalues: list[float | None] = [*present[:3], None, *present[3:], None]
    got = stats.adjust_pvalues(pvalues, method)  # type: ignore[arg-type]
    expected = sps.false_discovery_control(present, method=method)
    assert got[3] is None
    assert got[-1] is None
    assert [g for g in got if g is not None] == pytest.approx(list(expected), rel=1e-12)


def test_adjust_pvalues_all_none_and_bad_method() -> None:
    assert stats.adjust_pvalues([None, None], "bh") == [None, None]
    assert stats.adjust_pvalues([], "bonferroni") == []
    with pytest.raises(ValueError, match="correction must be one of"):
        stats.adjust_pvalues([0.1], "holm")  # type: ignore[arg-type]


def test_wasserstein_across_the_double_range_is_finite_and_scale_free() -> None:
    """Bins reaching a DBL_MAX sentinel have widths beyond a double: computed with the bounds scaled
    by a power of two, the value equals the same distribution scaled down (exact in binary)."""
    ref, cur = [10, 30, 40, 20], [5, 25, 40, 30]
    edges, low, high = [-1e300, 0.0, 1e300], -1.7976931348623157e308, 1.7976931348623157e308
    huge = stats.wasserstein_binned(ref, cur, edges, low=low, high=high, reference_std=1e307)
    scale = 2.0**-100
    small = stats.wasserstein_binned(
        ref, cur, [e * scale for e in edges], low=low * scale, high=high * scale, reference_std=1e307 * scale
    )
    assert huge is not None and math.isfinite(huge)
    assert huge == pytest.approx(small, rel=1e-12)
    # An ordinary reference std against a DBL_MAX spread: a huge effect, capped, never infinite.
    capped = stats.wasserstein_binned(ref, cur, edges, low=low, high=high, reference_std=1e-10)
    assert capped == 1.7976931348623157e308


def test_js_distance_of_a_constant_reference_three_bins_equals_scipy() -> None:
    """A constant reference's bins are below / equal / above: the JS distance is scipy's."""
    reference, current = [0, 1000, 0], [30, 900, 70]
    assert stats.js_distance(reference, current) == pytest.approx(
        float(jensenshannon(np.array(reference) / 1000, np.array(current) / 1000, base=2)), abs=1e-12
    )
