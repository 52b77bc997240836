"""Distribution distances and tests on binned counts. One function per statistic.

Every function takes counts (reference first, current second) over the same bins or categories and
returns a finite number, or ``None`` with a reason where the statistic is undefined (an empty side);
none raises on degenerate input or returns an infinity.

Definitions (``p`` and ``q`` are the reference and current proportions over ``k`` bins):

PSI
    ``sum((q~ - p~) * ln(q~ / p~))`` with smoothed proportions ``p~ = (p + eps) / (1 + k*eps)``,
    ``eps = 1e-4`` (natural log). Smoothing keeps an empty bin from making PSI infinite.
Jensen-Shannon distance
    ``sqrt(JSD)`` with ``JSD = (KL(p||m) + KL(q||m)) / 2``, ``m = (p + q) / 2``, base 2: 0..1.
    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
Hellinger distance
    ``sqrt(1 - sum(sqrt(p * q)))``: 0..1.
KS statistic (binned)
    ``max |P(i) - Q(i)|`` over the cumulative proportions at the bin edges: the two-sample
    Kolmogorov-Smirnov statistic of the data rounded to bins (exact when the data have no values
    strictly inside a bin other than at its edges; otherwise a lower bound within one bin's mass).
    p-value from the asymptotic Kolmogorov distribution with ``n_eff = n*m/(n+m)``.
Wasserstein-1 (binned, normalised)
    The Wasserstein-1 distance ``integral |F(x) - G(x)| dx`` between the two binned distributions,
    values spread uniformly within each bin (CDFs linear between edges), the open-ended first and
    last bins bounded by the observed min and max, divided by the reference standard deviation.
    Exact for data uniform within bins; otherwise within about one bin width. ``None`` when the reference
    is constant (std 0) and there is nothing to scale by. Computed with the bounds scaled by a power
    of two when they reach ``2**1000`` (bins spanning a ``DBL_MAX`` sentinel), capped at the
    largest double.
Chi-square test of homogeneity
    Pearson's statistic on the 2 x k table of counts over the union of categories (categories with
    zero count on both sides dropped), ``dof = k - 1``; no continuity correction. Never infinite: an
    unseen category has expected count ``> 0`` on both sides. Effect size: Cramer's V
    ``sqrt(chi2 / N)`` (for a 2-row table).
Two-proportion z-test
    For missing rates: pooled standard error, two-sided p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special
from scipy import stats as sps

PSI_EPSILON = 1e-4

Correction = Literal["none", "bonferroni", "bh", "by"]
CORRECTIONS = ("none", "bonferroni", "bh", "by")


@dataclass(frozen=True)
class TestResult:
    """A statistic with its p-value (``None`` where the test is undefined) and why, if undefined."""

    statistic: float | None
    pvalue: float | None
    reason: str = ""
    dof: int | None = None


def _proportions(counts: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64] | None:
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum()
    return arr / total if total > 0 else None


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = PSI_EPSILON) -> float | None:
    """Population stability index (natural log, smoothed; see the module docstring)."""
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return None
    k = len(p)
    ps = (p + epsilon) / (1 + k * epsilon)
    qs = (q + epsilon) / (1 + k * epsilon)
    return float(np.sum((qs - ps) * np.log(qs / ps)))


def js_distance(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Jensen-Shannon distance, base 2 (0..1)."""
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return None
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    divergence = max(float(kl_p.sum() + kl_q.sum()) / 2, 0.0)
    return min(math.sqrt(divergence), 1.0)


def hellinger(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Hellinger distance (0..1)."""
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return None
    return math.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0))


def ks_binned(reference: Sequence[float], current: Sequence[float]) -> TestResult:
    """Two-sample KS statistic from binned counts, with the asymptotic p-value."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0:
        return TestResult(None, None, "no values on one side")
    statistic = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    n_eff = n * m / (n + m)
    pvalue = float(special.kolmogorov(math.sqrt(n_eff) * statistic)) if statistic > 0 else 1.0
    return TestResult(statistic, min(max(pvalue, 0.0), 1.0))


def wasserstein_binned(
    reference: Sequence[float],
    current: Sequence[float],
    edges: Sequence[float],
    *,
    low: float,
    high: float,
    reference_std: float | None,
) -> float | None:
    """Wasserstein-1 between binned distributions, divided by the reference std (module docstring).

    ``low``/``high`` bound the open-ended first and last bins (the observed min and max over both
    sides). ``None`` when a side is empty or the reference std is zero or unknown.
    """
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None or not reference_std or reference_std <= 0 or not math.isfinite(reference_std):
        return None
    bounds = np.concatenate(
        ([min(low, edges[0])], np.asarray(edges, dtype=np.float64), [max(high, edges[-1])])
    )
    # The distance is scale-free: bounds and std scaled by one power of two (exact in binary), so
    # bins spanning -1e308..1e308 have finite widths; for ordinary data the result is bit-identical.
    span = float(np.max(np.abs(bounds)))
    exponent = math.frexp(span)[1] if span > 2.0**1000 else 0
    if exponent:
        bounds = bounds * math.ldexp(1.0, -exponent)
    widths = np.diff(bounds)  # one per bin
    # CDF gap at every bound (0 at both ends); values spread uniformly within each bin, so the gap
    # is linear across a bin and its integral is a trapezoid (split where the gap changes sign).
    gap = np.concatenate(([0.0], np.cumsum(p) - np.cumsum(q)))
    gap[-1] = 0.0
    left, right = gap[:-1], gap[1:]
    magnitude = np.abs(left) + np.abs(right)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(magnitude > 0, (left**2 + right**2) / (2 * magnitude), 0.0)
    distance = float(np.sum(widths * np.where(left * right >= 0, magnitude / 2, crossing)))
    ratio = distance / reference_std
    try:
        ratio = math.ldexp(ratio, exponent)
    except OverflowError:
        ratio = math.inf
    # Capped, never infinite: a sentinel near the largest double is a huge shift, still a number.
    return min(ratio, 1.7976931348623157e308)


def chi2_homogeneity(reference: Sequence[float], current: Sequence[float]) -> TestResult:
    """Pearson chi-square test of homogeneity on a 2 x k table (module docstring)."""
    table = np.vstack([np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    row_totals = table.sum(axis=1)
    if table.shape[1] == 0 or np.any(row_totals <= 0):
        return TestResult(None, None, "no values on one side")
    if table.shape[1] == 1:
        return TestResult(0.0, 1.0, "a single category on both sides", dof=0)
    expected = np.outer(row_totals, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return TestResult(statistic, float(sps.chi2.sf(statistic, dof)), dof=dof)


def cramers_v(statistic: float, total: float) -> float:
    """Cramer's V of a 2-row contingency table: ``sqrt(chi2 / N)``, capped at 1."""
    return min(math.sqrt(statistic / total), 1.0) if total > 0 else 0.0


def two_proportion_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> TestResult:
    """Two-sided z-test that two proportions are equal (pooled SE). Statistic: ``b - a``."""
    if n_a <= 0 or n_b <= 0:
        return TestResult(None, None, "no rows on one side")
    p_a, p_b = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return TestResult(p_b - p_a, 1.0)
    z = (p_b - p_a) / se
    return TestResult(p_b - p_a, float(2 * sps.norm.sf(abs(z))))


def adjust_pvalues(pvalues: Sequence[float | None], method: Correction) -> list[float | None]:
    """Adjust p-values across columns: ``none``, ``bonferroni``, ``bh`` (Benjamini-Hochberg) or
    ``by`` (Benjamini-Yekutieli). ``None`` entries (undefined tests) stay ``None`` and do not count."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")
    present = [(i, p) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = list(pvalues)
    if not present or method == "none":
        return out
    values = np.array([p for _, p in present], dtype=np.float64)
    if method == "bonferroni":
        adjusted = np.minimum(values * len(values), 1.0)
    else:
        adjusted = sps.false_discovery_control(values, method=method)
    for (index, _), value in zip(present, adjusted, strict=True):
        out[index] = float(value)
    return out
