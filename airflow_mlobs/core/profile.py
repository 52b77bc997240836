"""Profiles: small, mergeable summaries of columns over a window, and the baseline they compare to.

Definitions
-----------
Bins
    A numeric column's baseline has strictly increasing edges ``e[0] < ... < e[m-1]``. Its profile
    counts finite values in ``m + 1`` bins: bin ``0`` is ``x < e[0]``, bin ``i`` (``1 <= i < m``)
    is ``e[i-1] <= x < e[i]``, and bin ``m`` is ``x >= e[m-1]``. This is
    ``numpy.searchsorted(edges, x, side="right")`` and PostgreSQL's ``width_bucket(x, edges)``.
Nulls, non-finite and invalid values
    ``nulls`` counts SQL NULL (and NaN in pandas, where NaN is missing); ``non_finite`` counts
    ``+inf``/``-inf`` (and NaN where a database keeps it apart from NULL); ``invalid`` counts values
    that are not numbers at all (text in a numeric column). None of them is binned; ``count`` is the
    number of finite, binned values, so ``count + nulls + non_finite + invalid == row_count``.
Moments
    The moments are sums of the finite values shifted by ``shift`` (``y = x - shift``, one double
    subtraction per value, the same in numpy and in the database): ``total`` and ``total_sq`` are
    the sum of ``y`` and of ``y**2`` in units of ``2**scale_exp`` and ``2**(2*scale_exp)``, so
    ``sum(x) = count * shift + total * 2**scale_exp``. ``shift`` is :func:`moment_shift` of the
    baseline's bin edges, the middle edge (``0.0`` without edges or when the middle edge reaches
    :data:`MOMENT_SPLIT`): near the bulk of the values, so ``E[y^2] - E[y]^2`` keeps the digits
    that ``E[x^2] - E[x]^2`` cancels away (``1.7e9 + N(0, 30)``: std 30 rather than 22.6). Every
    profile over the same baseline has the same shift, so profiles still merge by addition;
    profiles with different shifts (an old profile, stored with shift 0) are converted exactly
    (:meth:`NumericProfile.merge`). ``scale_exp`` is 0 unless a shifted value reaches
    :data:`MOMENT_SPLIT` (``2**480``, about ``3e144``), whose square could overflow a double (from
    about ``1.3e154``; a ``DBL_MAX`` sentinel, say). Then the shifted values below the split are
    summed as they are and those above it multiplied by ``2**-MOMENT_SHIFT`` first, and both parts
    are added in units of ``2**MOMENT_SHIFT`` (:func:`split_moments`). Powers of two scale exactly,
    so the moments stay finite for any finite double, and strict JSON holds. In the database,
    shifted values below :data:`MOMENT_TINY` (``2**-500``) add nothing to the sum of squares
    (theirs would underflow, which PostgreSQL raises); in memory they do unless the split applies,
    a difference below ``2**-1000`` per value.
Open-ended bin totals
    The tail regions are the two outermost bins on each side (:func:`tail_width`; one with fewer
    than three edges): ``x < e[1]`` and ``x >= e[m-2]``. A baseline's outermost edges are the
    reference's own minimum and maximum, so the heavy tail lies there, with no outer edge to bound
    it. ``low_total`` and ``high_total`` are the sums of the shifted values in them, in the units
    of ``total`` (the same split, :func:`split_sum`), so :attr:`NumericProfile.low_mean` and
    :attr:`NumericProfile.high_mean` give the mean of each tail (``None`` when it is empty or the
    total unknown). ``None`` means not gathered: a profile stored before they existed, or a column
    without edges (a single bin). An empty region's total is known to be 0 whatever the field says.
Categories
    Values are compared as text. A profile keeps at most ``max_categories`` distinct values (the most
    frequent); the rest are counted in ``other``. ``overflow`` records that values were folded, which
    makes the category comparison approximate (reported, not hidden). ``unseen`` counts the non-NULL
    values not in the baseline's category set, counted by the gatherer before any folding (so values
    in ``other`` count too); ``None`` where it was not counted (a reference profile, or a profile
    stored before it existed).
Merging
    Two profiles of the same columns over the same edges merge by adding counts and moments (min of
    mins, max of maxes; open-ended bin totals add, unknown when one side's is unknown). Daily profiles roll up into weeks; partitions profiled by separate tasks combine. Merging
    categorical profiles that both overflowed is approximate for the folded tail.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.core.sampling import SampleInfo

#: The environment variable the pseudonym key is read from (``airflow_mlobs.connections``).
PSEUDONYM_KEY_ENV = "MLOBS_PSEUDONYM_KEY"

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from airflow_mlobs.core.covariance import CovarianceProfile, JointDriftModel

PROFILE_VERSION = 1
BASELINE_VERSION = 1
DEFAULT_MAX_CATEGORIES = 1000
#: Quantile bins per numeric column of a baseline (plus an open bin at each end).
DEFAULT_BINS = 20

#: A numeric column with at most this many distinct values is treated as categorical (flags, codes).
DEFAULT_CATEGORICAL_MAX_DISTINCT = 10

#: Extra quantile levels in the tails. Without them the outermost of the 20 equal-mass bins spans
#: from the 5% (95%) quantile to the sample's extreme, which for skewed or heavy-tailed columns is
#: so wide that sampling noise at its edge reads as a Wasserstein shift (measured: a no-drift
#: lognormal column reached the 0.05 level in 29% of 10k-row windows; with these edges, 0%).
TAIL_LEVELS = (0.001, 0.005, 0.01, 0.02, 0.98, 0.99, 0.995, 0.999)


#: The most extreme quantile level a sensitive column's edges keep: 1% of the reference lies below
#: the lowest edge and 1% above the highest (:func:`quantile_levels`).
SENSITIVE_LEVEL = 0.01


def quantile_levels(bins: int = DEFAULT_BINS, *, sensitive: bool = False) -> NDArray[np.float64]:
    """The quantile levels of a baseline's bin edges: ``0, 1/bins, ..., 1`` plus :data:`TAIL_LEVELS`.

    For a sensitive column (``sensitive``) only the levels in ``[0.01, 0.99]``
    (:data:`SENSITIVE_LEVEL`): never 0 and 1 (the reference's minimum and maximum, single persons'
    values) nor the extreme tail levels, so at least 1% of the reference lies beyond each outer
    edge and the outer bins are open."""
    import numpy as np  # not at import time: DAG files import this module

    levels = np.unique(np.concatenate([np.linspace(0.0, 1.0, bins + 1), TAIL_LEVELS]))
    if sensitive:
        levels = levels[(levels >= SENSITIVE_LEVEL - 1e-12) & (levels <= 1.0 - SENSITIVE_LEVEL + 1e-12)]
    return levels


ColumnKind = Literal["numeric", "categorical"]

#: Values with ``abs(x) >= MOMENT_SPLIT`` are scaled by ``2**-MOMENT_SHIFT`` before their moments
#: are summed (module docstring): ``(2**480)**2 * 2**63`` rows stays below the largest double.
MOMENT_SPLIT = 2.0**480
MOMENT_SHIFT = 600
#: Values with ``abs(x) < MOMENT_TINY`` are left out of the sum of squares: their squares (below
#: ``2**-1000``) would underflow, which PostgreSQL raises as an error; what they would add is below
#: the precision of any sum that also holds a value of ordinary size.
MOMENT_TINY = 2.0**-500


def check_baseline_args(name: str, bins: int, max_categories: int) -> None:
    """A baseline needs ``bins >= 2`` quantile bins and ``max_categories >= 1``; else a
    ``ValueError`` naming the argument."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise MlobsInputError(f"baseline {name!r}: bins must be an integer >= 2, got {bins!r}")
    if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 1:
        raise MlobsInputError(
            f"baseline {name!r}: max_categories must be an integer >= 1, got {max_categories!r}"
        )


def constant_split(edges: tuple[float, ...]) -> tuple[float, ...]:
    """A constant column's single edge ``c`` becomes ``(c, nextafter(c, +inf))``, so its bins count
    ``x < c``, ``x == c`` and ``x > c`` and a change in either direction shows (``c`` is kept
    alone when it is the largest double: nothing is above it)."""
    if len(edges) == 1 and edges[0] < 1.7976931348623157e308:
        return (edges[0], math.nextafter(edges[0], math.inf))
    return edges


def tail_width(bins: int) -> int:
    """How many outermost bins each tail region spans: 2 with at least 4 bins (3 edges), else 1.

    A baseline's outermost edges are the reference's own minimum and maximum (quantile levels 0 and
    1), so its open bins ``x < e[0]`` and ``x >= e[-1]`` hold only values beyond the reference's
    range, and the heavy tail sits in the bins next to them (``[e[0], e[1])``, ``[e[-2], e[-1])``).
    The tail totals cover both, so their means describe the whole tail."""
    return 2 if bins >= 4 else 1


def tail_edges(edges: Sequence[float]) -> tuple[float, float] | None:
    """The edges bounding the tail regions (:func:`tail_width`): values below the first and at or
    above the second are summed in ``low_total`` and ``high_total``. ``None`` without edges."""
    if not edges:
        return None
    width = tail_width(len(edges) + 1)
    return float(edges[width - 1]), float(edges[-width])


def moment_shift(edges: Sequence[float]) -> float:
    """The shift of a numeric column's moments (module docstring): the middle bin edge
    ``edges[len(edges) // 2]``; ``0.0`` when there are no edges or when ``abs`` of the middle edge
    reaches :data:`MOMENT_SPLIT` (the shifted values would need the split anyway). A function of
    the baseline's edges alone, so every profile over one baseline shares it."""
    if not edges:
        return 0.0
    middle = float(edges[len(edges) // 2])
    if not math.isfinite(middle) or abs(middle) >= MOMENT_SPLIT:
        return 0.0
    return middle


def split_sum(small_sum: float, big_sum: float, scale_exp: int) -> float:
    """A partial sum (the open-ended bins' totals) in the units of a profile's moments: the sum of
    the shifted values below :data:`MOMENT_SPLIT` (as they are) scaled by ``2**-scale_exp`` plus
    that of the values above it (each already multiplied by ``2**-MOMENT_SHIFT``); with
    ``scale_exp == 0``, ``small_sum`` alone."""
    if not scale_exp:
        return float(small_sum)
    return math.ldexp(float(small_sum), -scale_exp) + float(big_sum)


def split_moments(
    small_sum: float, small_sq: float, big_sum: float, big_sq: float, big_count: int
) -> tuple[float, float, int]:
    """``(total, total_sq, scale_exp)`` from the moments of the values below :data:`MOMENT_SPLIT`
    (as they are) and of those above it (each multiplied by ``2**-MOMENT_SHIFT``). Without values
    above the split, the plain sums with ``scale_exp = 0``."""
    if not big_count:
        return float(small_sum), float(small_sq), 0
    return (
        math.ldexp(float(small_sum), -MOMENT_SHIFT) + float(big_sum),
        math.ldexp(float(small_sq), -2 * MOMENT_SHIFT) + float(big_sq),
        MOMENT_SHIFT,
    )


@dataclass(frozen=True)
class NumericProfile:
    """Counts and moments of one numeric column. See the module docstring for the definitions.

    ``shift``: the moments are sums of ``x - shift`` (:func:`moment_shift` of the baseline's edges;
    0 for profiles stored before it existed). ``low_total`` / ``high_total``: the sums of the
    shifted values in the low and high tail regions (:func:`tail_edges`), in the units of
    ``total``; ``None`` when not gathered (an old profile, or no edges)."""

    count: int = 0
    nulls: int = 0
    non_finite: int = 0
    invalid: int = 0
    min: float | None = None
    max: float | None = None
    total: float = 0.0
    total_sq: float = 0.0
    bins: tuple[int, ...] = ()
    scale_exp: int = 0
    shift: float = 0.0
    low_total: float | None = None
    high_total: float | None = None

    kind: ColumnKind = field(default="numeric", init=False)

    @property
    def rows(self) -> int:
        """All rows seen, whatever their value."""
        return self.count + self.nulls + self.non_finite + self.invalid

    @property
    def mean(self) -> float | None:
        """Mean of the finite values, ``shift + total / count * 2**scale_exp``; ``None`` when there
        are none."""
        if not self.count:
            return None
        return self.shift + _capped_ldexp(self.total / self.count, self.scale_exp)

    @property
    def std(self) -> float | None:
        """Population standard deviation of the finite values (never negative from rounding),
        ``sqrt(E[y^2] - E[y]^2)`` of the shifted values ``y = x - shift`` computed in the moments'
        own scale (module docstring)."""
        if not self.count:
            return None
        if self.min is not None and self.min == self.max:
            return 0.0  # a constant column: E[y^2] - E[y]^2 would leave rounding noise
        mean = self.total / self.count
        return _capped_ldexp(math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0)), self.scale_exp)

    @property
    def low_mean(self) -> float | None:
        """Mean of the values in the low tail region (``x < e[1]``, :func:`tail_edges`); ``None``
        when it is empty or its total was not gathered (:attr:`low_total` is ``None``)."""
        return self._bin_mean(0, self.low_total)

    @property
    def high_mean(self) -> float | None:
        """Mean of the values in the high tail region (``x >= e[-2]``, :func:`tail_edges`);
        ``None`` when it is empty or its total was not gathered (:attr:`high_total` is ``None``)."""
        return self._bin_mean(-1, self.high_total)

    def tail_count(self, index: int) -> int:
        """The values in the low (``index`` 0) or high (-1) tail region (:func:`tail_width`)."""
        width = tail_width(len(self.bins))
        return sum(self.bins[:width]) if index == 0 else sum(self.bins[-width:])

    def _bin_mean(self, index: int, total: float | None) -> float | None:
        if total is None or len(self.bins) < 2 or not self.tail_count(index):
            return None
        return self.shift + _capped_ldexp(total / self.tail_count(index), self.scale_exp)

    def _bin_total(self, index: int, total: float | None) -> float | None:
        """A tail region's total, known to be 0 when the region is empty."""
        if len(self.bins) < 2:
            return None
        if total is None and not self.tail_count(index):
            return 0.0
        return total

    def _moments_at(self, scale_exp: int, shift: float) -> tuple[float, float, float | None, float | None]:
        """``(total, total_sq, low_total, high_total)`` in units of ``2**scale_exp`` and shifted by
        ``shift``: Σ(x-b) = Σ(x-a) + n(a-b), Σ(x-b)² = Σ(x-a)² + 2(a-b)Σ(x-a) + n(a-b)²."""
        exp = self.scale_exp - scale_exp
        total, total_sq = math.ldexp(self.total, exp), math.ldexp(self.total_sq, 2 * exp)
        low, high = self._bin_total(0, self.low_total), self._bin_total(-1, self.high_total)
        low = None if low is None else math.ldexp(low, exp)
        high = None if high is None else math.ldexp(high, exp)
        if shift != self.shift:
            delta = math.ldexp(self.shift - shift, -scale_exp)
            total_sq = total_sq + 2.0 * delta * total + self.count * delta * delta
            total = total + self.count * delta
            low = None if low is None else low + self.tail_count(0) * delta
            high = None if high is None else high + self.tail_count(-1) * delta
        return total, total_sq, low, high

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Add ``other``'s counts; both must use the same bins. Equal shifts add as they are;
        otherwise the result takes the shift of the profile with more finite values (``self`` on a
        tie) and the other's moments are converted (module docstring)."""
        if len(self.bins) != len(other.bins):
            raise MlobsInputError("cannot merge numeric profiles over different bin edges")
        scale_exp = max(self.scale_exp, other.scale_exp)
        shift = self.shift if self.count >= other.count else other.shift
        total_a, sq_a, low_a, high_a = self._moments_at(scale_exp, shift)
        total_b, sq_b, low_b, high_b = other._moments_at(scale_exp, shift)
        return NumericProfile(
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            non_finite=self.non_finite + other.non_finite,
            invalid=self.invalid + other.invalid,
            min=_opt(min, self.min, other.min),
            max=_opt(max, self.max, other.max),
            total=total_a + total_b,
            total_sq=sq_a + sq_b,
            bins=tuple(a + b for a, b in zip(self.bins, other.bins, strict=True)),
            scale_exp=scale_exp,
            shift=shift,
            low_total=None if low_a is None or low_b is None else low_a + low_b,
            high_total=None if high_a is None or high_b is None else high_a + high_b,
        )

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form (``scale_exp`` and ``shift`` only when not 0, ``low_sum`` and
        ``high_sum`` only when gathered)."""
        out: dict[str, Any] = {
            "kind": "numeric",
            "count": self.count,
            "nulls": self.nulls,
            "non_finite": self.non_finite,
            "invalid": self.invalid,
            "min": self.min,
            "max": self.max,
            "sum": self.total,
            "sum_sq": self.total_sq,
            "bins": list(self.bins),
        }
        if self.scale_exp:
            out["scale_exp"] = self.scale_exp
        if self.shift:
            out["shift"] = self.shift
        if self.low_total is not None:
            out["low_sum"] = self.low_total
        if self.high_total is not None:
            out["high_sum"] = self.high_total
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        """Inverse of :meth:`to_dict`; a profile stored before ``shift`` / ``low_sum`` /
        ``high_sum`` existed reads as shift 0 with the open-ended bin totals unknown."""
        return cls(
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            non_finite=int(data.get("non_finite", 0)),
            invalid=int(data.get("invalid", 0)),
            min=None if data.get("min") is None else float(data["min"]),
            max=None if data.get("max") is None else float(data["max"]),
            total=float(data["sum"]),
            total_sq=float(data["sum_sq"]),
            bins=tuple(int(c) for c in data["bins"]),
            scale_exp=int(data.get("scale_exp", 0)),
            shift=float(data.get("shift", 0.0)),
            low_total=None if data.get("low_sum") is None else float(data["low_sum"]),
            high_total=None if data.get("high_sum") is None else float(data["high_sum"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts per category (as text) of one column, the most frequent ``max_categories`` kept."""

    nulls: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    other: int = 0
    overflow: bool = False
    unseen: int | None = None

    kind: ColumnKind = field(default="categorical", init=False)

    @property
    def count(self) -> int:
        """Non-null values."""
        return sum(self.counts.values()) + self.other

    @property
    def rows(self) -> int:
        """All rows seen."""
        return self.count + self.nulls

    def merge(
        self, other: CategoricalProfile, max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> CategoricalProfile:
        """Add counts; folds the least frequent categories into ``other`` beyond ``max_categories``."""
        merged = dict(self.counts)
        for key, value in other.counts.items():
            merged[key] = merged.get(key, 0) + value
        unseen = None if self.unseen is None or other.unseen is None else self.unseen + other.unseen
        return capped(
            merged,
            nulls=self.nulls + other.nulls,
            other=self.other + other.other,
            overflow=self.overflow or other.overflow,
            max_categories=max_categories,
            unseen=unseen,
        )

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form (categories sorted by count, then name)."""
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out: dict[str, Any] = {
            "kind": "categorical",
            "nulls": self.nulls,
            "counts": dict(ordered),
            "other": self.other,
            "overflow": self.overflow,
        }
        if self.unseen is not None:
            out["unseen"] = self.unseen
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            nulls=int(data["nulls"]),
            counts={str(k): int(v) for k, v in data["counts"].items()},
            other=int(data.get("other", 0)),
            overflow=bool(data.get("overflow", False)),
            unseen=None if data.get("unseen") is None else int(data["unseen"]),
        )


def capped(
    counts: Mapping[str, int],
    *,
    nulls: int,
    other: int = 0,
    overflow: bool = False,
    max_categories: int,
    unseen: int | None = None,
) -> CategoricalProfile:
    """A categorical profile keeping the ``max_categories`` most frequent values (ties by name)."""
    if len(counts) <= max_categories:
        return CategoricalProfile(
            nulls=nulls, counts=dict(counts), other=other, overflow=overflow, unseen=unseen
        )
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ordered[:max_categories])
    folded = sum(v for _, v in ordered[max_categories:])
    return CategoricalProfile(nulls=nulls, counts=kept, other=other + folded, overflow=True, unseen=unseen)


def count_unseen(counts: Mapping[str, int], categories: Sequence[str]) -> int | None:
    """Values in ``counts`` (all of them, before folding) not in the baseline's ``categories``;
    ``None`` when there is no category set to compare with."""
    if not categories:
        return None
    known = set(categories)
    return sum(n for value, n in counts.items() if value not in known)


ColumnProfile = NumericProfile | CategoricalProfile


def _capped_ldexp(value: float, exponent: int) -> float:
    """``value * 2**exponent``, capped at the largest double (rounding must not make an infinity)."""
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.copysign(1.7976931348623157e308, value)


def _opt(func: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(func(a, b))


def column_profile_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    """Read either kind of column profile."""
    if data.get("kind") == "numeric":
        return NumericProfile.from_dict(data)
    if data.get("kind") == "categorical":
        return CategoricalProfile.from_dict(data)
    raise MlobsInputError(f"unknown column profile kind {data.get('kind')!r}")


@dataclass(frozen=True)
class Profile:
    """A summary of several columns over one window; see the module docstring.

    ``missing_columns`` are columns the baseline expects but the source did not have;
    ``errors`` maps a column to why it could not be profiled (a type that changed, say).
    ``segment`` is the value of the segment column this profile covers, if any.
    """

    row_count: int
    columns: Mapping[str, ColumnProfile]
    edges_key: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    missing_columns: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    segment: str | None = None
    #: How this profile was sampled (``None``: every row); see core/sampling.py. Not kept by merge.
    sample: SampleInfo | None = None
    #: The window's covariance profile over the baseline's joint-drift columns (``None``: not
    #: gathered); merged when both sides have one (:mod:`airflow_mlobs.core.covariance`).
    joint: CovarianceProfile | None = None

    def merge(self, other: Profile, max_categories: int = DEFAULT_MAX_CATEGORIES) -> Profile:
        """Add two profiles over the same baseline edges (``edges_key`` must match)."""
        if self.edges_key != other.edges_key:
            raise MlobsInputError(
                "cannot merge profiles built against different baselines (bin edges differ); "
                "re-profile both windows against the same baseline version"
            )
        columns: dict[str, ColumnProfile] = {}
        for name in sorted(set(self.columns) | set(other.columns)):
            a, b = self.columns.get(name), other.columns.get(name)
            if a is None or b is None:
                columns[name] = a or b  # type: ignore[assignment]
            elif isinstance(a, NumericProfile) and isinstance(b, NumericProfile):
                columns[name] = a.merge(b)
            elif isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
                columns[name] = a.merge(b, max_categories)
            else:
                raise MlobsInputError(
                    f"cannot merge column {name!r}: numeric in one profile, categorical in the other"
                )
        starts = [w for w in (self.window_start, other.window_start) if w is not None]
        ends = [w for w in (self.window_end, other.window_end) if w is not None]
        return Profile(
            row_count=self.row_count + other.row_count,
            columns=columns,
            edges_key=self.edges_key,
            window_start=min(starts) if starts else None,
            window_end=max(ends) if ends else None,
            missing_columns=tuple(sorted(set(self.missing_columns) | set(other.missing_columns))),
            errors={**other.errors, **self.errors},
            segment=self.segment if self.segment == other.segment else None,
            joint=(
                self.joint.merge(other.joint)
                if self.joint is not None
                and other.joint is not None
                and self.joint.columns == other.joint.columns
                else None
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form."""
        return {
            "profile_version": PROFILE_VERSION,
            "row_count": self.row_count,
            "edges_key": self.edges_key,
            "window": {
                "start": self.window_start.isoformat() if self.window_start else None,
                "end": self.window_end.isoformat() if self.window_end else None,
            },
            "segment": self.segment,
            "missing_columns": list(self.missing_columns),
            "errors": dict(self.errors),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            **({"joint": self.joint.to_json()} if self.joint is not None else {}),
            **({"sample": self.sample.to_dict()} if self.sample is not None else {}),
        }

    def to_json(self) -> str:
        """Strict JSON (no NaN)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`."""
        window = data.get("window") or {}
        return cls(
            row_count=int(data["row_count"]),
            columns={name: column_profile_from_dict(col) for name, col in data["columns"].items()},
            edges_key=str(data.get("edges_key", "")),
            window_start=datetime.fromisoformat(window["start"]) if window.get("start") else None,
            window_end=datetime.fromisoformat(window["end"]) if window.get("end") else None,
            missing_columns=tuple(data.get("missing_columns", ())),
            errors=dict(data.get("errors", {})),
            segment=data.get("segment"),
            joint=_covariance_from_json(data["joint"]) if data.get("joint") else None,
            sample=SampleInfo.from_dict(data["sample"]) if data.get("sample") else None,
        )


@dataclass(frozen=True)
class ColumnSpec:
    """The baseline's definition of one column: its kind, bin edges or category set.

    ``sensitive``: the column's values never leave the database (``sensitive_columns``): a numeric
    one has no outer edges at its minimum and maximum (:func:`quantile_levels`) and its profiles no
    ``min``/``max``; a categorical one is counted by keyed pseudonyms of its values
    (:func:`airflow_mlobs.core.privacy.pseudonym`), ``categories`` holding pseudonyms made with the
    key whose fingerprint is ``pseudonym_key_id``, so every window must be gathered with that key."""

    name: str
    kind: ColumnKind
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    source_type: str = ""
    sensitive: bool = False
    pseudonym_key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``sensitive`` and ``pseudonym_key_id`` only when set)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "source_type": self.source_type}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["categories"] = list(self.categories)
        if self.sensitive:
            out["sensitive"] = True
        if self.pseudonym_key_id:
            out["pseudonym_key_id"] = self.pseudonym_key_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        """Inverse of :meth:`to_dict`."""
        kind = data["kind"]
        if kind not in ("numeric", "categorical"):
            raise MlobsInputError(f"baseline column {data.get('name')!r} has unknown kind {kind!r}")
        return cls(
            name=str(data["name"]),
            kind=kind,
            edges=tuple(float(e) for e in data.get("edges", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
            source_type=str(data.get("source_type", "")),
            sensitive=bool(data.get("sensitive", False)),
            pseudonym_key_id=str(data["pseudonym_key_id"]) if data.get("pseudonym_key_id") else None,
        )

    def category_key(self, text: str, key: PseudonymKey | None) -> str:
        """How a value (its canonical category text) is counted: as it is, or for a pseudonymized
        column its keyed pseudonym; the same in every gatherer, so SQL and in-memory profiles stay
        equal. ``MlobsInputError`` when the column needs a key that is absent or another key."""
        if not self.pseudonym_key_id:
            return text
        check_pseudonym_key(self, key)
        assert key is not None
        return pseudonym(text, key)


def check_pseudonym_key(spec: ColumnSpec, key: PseudonymKey | None) -> None:
    """A pseudonymized column (``spec.pseudonym_key_id``) must be gathered with the key that made
    its baseline: no key, or another one, is ``MlobsInputError`` saying how to give it (another key
    would make every value new: a silent full drift)."""
    if not spec.pseudonym_key_id:
        return
    if key is None:
        raise MlobsInputError(
            f"`{spec.name}` is a sensitive column counted by keyed pseudonyms (key id "
            f"{spec.pseudonym_key_id}), and no pseudonym key is configured: set the "
            f"{PSEUDONYM_KEY_ENV} environment variable or give key_conn_id (a connection whose "
            "password is the key)"
        )
    if key.key_id != spec.pseudonym_key_id:
        raise MlobsInputError(
            f"`{spec.name}`: the baseline's pseudonyms were made with key id {spec.pseudonym_key_id}, "
            f"this check's key has id {key.key_id}: configure the same key ({PSEUDONYM_KEY_ENV} or "
            "key_conn_id) or rebuild the baseline with this one"
        )


def sensitive_key(baseline: str, column: str, key: PseudonymKey | None) -> PseudonymKey:
    """The key a sensitive categorical column's pseudonyms are made with; without one
    ``MlobsInputError`` saying how to configure it (its categories cannot be stored as text)."""
    if key is None:
        raise MlobsInputError(
            f"baseline {baseline!r}: sensitive categorical column {column!r} is stored by keyed "
            f"pseudonyms, and no pseudonym key is configured: set the {PSEUDONYM_KEY_ENV} environment "
            "variable or give key_conn_id (a connection whose password is the key)"
        )
    return key


def without_extremes(profile: Profile, specs: Sequence[ColumnSpec]) -> Profile:
    """``profile`` with the ``min`` and ``max`` of every sensitive numeric column removed (single
    persons' values); applied by every gatherer before a profile leaves it."""
    sensitive = {s.name for s in specs if s.sensitive and s.kind == "numeric"}
    if not sensitive:
        return profile
    columns = {
        name: replace(col, min=None, max=None)
        if name in sensitive and isinstance(col, NumericProfile)
        else col
        for name, col in profile.columns.items()
    }
    return replace(profile, columns=columns)


def reference_joint_inputs(
    specs: Mapping[str, ColumnSpec], reference: Profile
) -> tuple[list[str], list[float]] | str:
    """The joint-drift columns and shift of a baseline
    (:func:`~airflow_mlobs.core.covariance.joint_inputs` over the reference's numeric columns'
    mean and spread); the reason when there are fewer than two. Shared by the in-memory and the
    SQL baseline builders."""
    from airflow_mlobs.core.covariance import joint_inputs  # numpy: not at DAG parse time

    stats = {
        n: (p.mean, p.std)
        for n, spec in specs.items()
        if spec.kind == "numeric" and isinstance(p := reference.columns.get(n), NumericProfile)
    }
    return joint_inputs(stats)


def edges_key(columns: Sequence[ColumnSpec]) -> str:
    """A fingerprint of the bin edges, so only profiles over the same edges merge; a pseudonymized
    column adds its key id, so its profiles never merge with raw ones or another key's."""
    payload = json.dumps(
        [
            (c.name, c.kind, list(c.edges), *([c.pseudonym_key_id] if c.pseudonym_key_id else []))
            for c in sorted(columns, key=lambda c: c.name)
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Baseline:
    """The reference side of drift checks, computed once and stored as a versioned JSON artifact.

    ``thresholds`` optionally holds data-driven thresholds per column (see
    :func:`airflow_mlobs.core.drift.calibrate_thresholds`) with ``calibration`` recording how they
    were computed.
    """

    name: str
    version: str
    columns: Mapping[str, ColumnSpec]
    reference: Profile
    created_at: datetime | None = None
    source: str = ""
    thresholds: Mapping[str, float] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)
    #: The joint (multivariate) drift model over the numeric columns
    #: (:mod:`airflow_mlobs.core.covariance`); ``None`` for a baseline built before joint drift or
    #: when it could not be built, ``joint_reason`` then saying why.
    joint: JointDriftModel | None = None
    joint_reason: str = ""

    @property
    def key(self) -> str:
        """The edges fingerprint current profiles must carry to be compared or merged."""
        return edges_key(list(self.columns.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "baseline_version": BASELINE_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "source": self.source,
            "columns": [spec.to_dict() for spec in self.columns.values()],
            "reference": self.reference.to_dict(),
            "thresholds": dict(self.thresholds),
            "calibration": dict(self.calibration),
            **({"joint": self.joint.to_json()} if self.joint is not None else {}),
            **({"joint_reason": self.joint_reason} if self.joint_reason else {}),
        }

    def to_json(self) -> str:
        """Strict JSON, indented for review in version control."""
        return json.dumps(self.to_dict(), allow_nan=False, indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<baseline>") -> Baseline:
        """Inverse of :meth:`to_dict`; raises ``MlobsInputError`` naming ``source`` when malformed."""
        try:
            version = int(data.get("baseline_version", BASELINE_VERSION))
            if version > BASELINE_VERSION:
                raise MlobsInputError(
                    f"{source}: baseline format {version} is newer than this airflow-mlobs reads ({BASELINE_VERSION})"
                )
            columns = [ColumnSpec.from_dict(c) for c in data["columns"]]
            created = data.get("created_at")
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                columns={c.name: c for c in columns},
                reference=Profile.from_dict(data["reference"]),
                created_at=datetime.fromisoformat(created) if created else None,
                source=str(data.get("source", "")),
                thresholds={str(k): float(v) for k, v in (data.get("thresholds") or {}).items()},
                calibration=dict(data.get("calibration") or {}),
                joint=_joint_model_from_json(data["joint"]) if data.get("joint") else None,
                joint_reason=str(data.get("joint_reason") or ""),
            )
        except MlobsInputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # AttributeError: not an object
            raise MlobsInputError(f"{source}: not a valid baseline ({type(exc).__name__}: {exc})") from exc

    def save(self, directory: str | Path) -> Path:
        """Write ``<directory>/<name>/<version>.json``; returns the path."""
        path = baseline_path(directory, self.name, self.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.to_json() + "\n"
        if isinstance(path, Path):
            # Atomic on a local or shared file system: a reader (a drift check on another worker)
            # sees the old file or the whole new one, never a half-written one.
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                partial.write_text(text, encoding="utf-8")
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        else:  # object storage: one PUT, atomic by itself
            path.write_text(text, encoding="utf-8")
        return path

    def with_thresholds(self, thresholds: Mapping[str, float], calibration: Mapping[str, Any]) -> Baseline:
        """A copy with data-driven thresholds."""
        return replace(self, thresholds=dict(thresholds), calibration=dict(calibration))


def _covariance_from_json(data: Mapping[str, Any]) -> CovarianceProfile:
    """A stored window covariance profile (numpy loads only when one is read)."""
    from airflow_mlobs.core.covariance import CovarianceProfile

    return CovarianceProfile.from_json(data)


def _joint_model_from_json(data: Mapping[str, Any]) -> JointDriftModel:
    """A stored joint-drift model (numpy loads only when one is read)."""
    from airflow_mlobs.core.covariance import JointDriftModel

    return JointDriftModel.from_json(data)


def baseline_path(directory: str | Path, name: str, version: str) -> Path:
    """Where a baseline version is stored under ``directory``."""
    for part, label in ((name, "name"), (version, "version")):
        if not part or "/" in part or "\\" in part or part.startswith("."):
            raise MlobsInputError(f"baseline {label} {part!r} must be a plain name (no slashes, not hidden)")
    path: Path = _as_path(directory) / name / f"{version}.json"
    return path


def _as_path(directory: Any) -> Any:
    """A local ``Path`` for text; path objects (``pathlib.Path``, Airflow's ``ObjectStoragePath``)
    as they are, so baselines can live in object storage."""
    return Path(directory) if isinstance(directory, str) else directory


def load_baseline(directory: str | Path, name: str, version: str | None = None) -> Baseline:
    """Load a baseline by name and version (default: the newest version by file name order)."""
    folder = baseline_path(directory, name, "latest").parent  # rejects names with slashes
    if version is None:
        versions = (
            sorted(folder.glob("*.json"), key=lambda p: _version_sort_key(p.stem)) if folder.is_dir() else []
        )
        if not versions:
            raise MlobsInputError(
                f"no baseline named {name!r} under {directory}; build it with BaselineOperator first"
            )
        path = versions[-1]
    else:
        path = baseline_path(directory, name, version)
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
            raise MlobsInputError(
                f"baseline {name!r} version {version!r} not found under {directory}"
                + (f"; known versions: {', '.join(known)}" if known else "")
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise MlobsInputError(
            f"baseline file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); baselines are "
            "UTF-8 JSON: rebuild it with BaselineOperator (or re-save the file as UTF-8)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise MlobsInputError(
            f"baseline file {path} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from exc
    return Baseline.from_dict(data, source=str(path))


def _version_sort_key(version: str) -> tuple[Any, ...]:
    """Natural order: ``v2`` < ``v10``; date-like versions sort as text."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", version))
