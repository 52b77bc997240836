"""Sampling a source before it is profiled: the plan (rate, method, seed, key) and what a sampled
profile says about itself.

A sample is asked for as ``sample="1%"`` (or ``sample=0.01``) or ``sample_rows=200_000``. Where the
database has block sampling (PostgreSQL ``TABLESAMPLE SYSTEM (p) REPEATABLE (seed)``) and the source
is a table, block sampling is used: whole pages are kept with probability ``p``. Block sampling is
*clustered*: rows on one page were usually inserted together, so a page is a cluster and rows are
not independent draws. For a table whose insertion order is unrelated to the profiled columns the
sample is close to a row sample; for a table loaded in an order that tracks a column (sorted by
time or by a feature), the effective sample size is nearer the number of pages than the number of
rows, and the stated sampling error understates the true one. Elsewhere (SQLite, MariaDB, ``sql=``
queries) rows are kept by a deterministic hash of an integer key column (``sample_key=``):
``(abs(key) % M * A_s + C_s) % M < rate * M`` with ``M = 1000003`` (prime), the seed's multiplier
``A_s = 7919 * 500009**s % M`` and offset ``C_s = s % M`` (:func:`hash_parameters`; seed 0 is
``7919 * key % M``). Each seed is a different permutation of the residues, so two seeds keep
nearly unrelated rows (about ``rate**2`` of them in common), where an offset alone would only move
the cut and keep almost the same rows. For sequential keys the sample is close to systematic
sampling (about every 1/rate-th key), and the same key is always in or out for a given seed
(reruns see the same rows).

``sample_rows`` resolves to a rate from the table's row estimate (PostgreSQL ``pg_class.reltuples``,
which ANALYZE/autovacuum keep; a ``count(*)`` elsewhere): ``rate = min(1, sample_rows / estimate)``.
The estimate is not exact, so the sampled row count is near, not equal to, ``sample_rows``.

Nothing scales counts up: a sampled profile holds the sampled counts, so p-values are computed from
the sample size actually seen.

The sampling error of an effect size (:func:`bootstrap_standard_error`) is the standard deviation of
the effect over multinomial redraws of the sampled side's counts (both sides when the baseline was
sampled too), and a decision accounts for it (:func:`sampled_level`): a column fails only when the
effect stays past the fail threshold after subtracting ``Z = 1.96`` standard errors; one past it only
within its error is a ``warn`` marked *borderline*. A baseline built from a sample records its
:class:`SampleInfo` in its reference profile; its bin edges are the sample's quantiles (still valid
edges: drift is judged on the shares of the window in them, whatever edges were chosen) and its
counts are the sample's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError

#: Modulus of the key hash (a prime just above 10**6) and its multiplier.
HASH_MODULUS = 1_000_003
HASH_MULTIPLIER = 7919
#: The base whose powers make each seed's multiplier (:func:`hash_parameters`).
HASH_SEED_BASE = 500_009
#: Standard errors an effect must clear its fail threshold by before a sampled column fails (95%).
Z = 1.96
#: Redraws of the sampled counts behind :func:`bootstrap_standard_error` (the error of the stated
#: error itself is about ``1 / sqrt(2 * DRAWS)``: 7%; each redraw costs one effect computation per
#: column, about 0.25 ms for a Wasserstein distance).
DRAWS = 100


@dataclass(frozen=True)
class SampleRequest:
    """What the user asked for: a ``rate`` in (0, 1] or a target ``rows`` count, a ``seed``, and
    optionally an integer ``key`` column for the hash sample."""

    rate: float | None = None
    rows: int | None = None
    seed: int = 0
    key: str | None = None


@dataclass(frozen=True)
class SampleInfo:
    """What a sampled profile says about itself: the ``rate`` used, the ``method`` (``"system"``
    for block sampling, ``"key-hash"`` for the key hash, ``"rows"`` for an in-memory row sample),
    the ``seed``, the ``key`` column if any, the row ``estimate`` a ``sample_rows`` request was
    resolved against, the ``sampled_rows`` the profile holds, and whether the same seed gives the
    same rows again (``repeatable``: False for BigQuery's ``TABLESAMPLE``, which takes no seed)."""

    rate: float
    method: str
    seed: int
    sampled_rows: int
    key: str | None = None
    estimate: int | None = None
    repeatable: bool = True

    def describe(self) -> str:
        """``sampled 1.0000% by system (seed 0): 10234 rows`` (``not repeatable`` when it is not)."""
        key = f" on {self.key}" if self.key else ""
        seed = f"seed {self.seed}" if self.repeatable else "no seed: not repeatable"
        return f"sampled {self.rate:.4%} by {self.method}{key} ({seed}): {self.sampled_rows} rows"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored with a sampled baseline's reference profile)."""
        return {
            "rate": self.rate,
            "method": self.method,
            "seed": self.seed,
            "sampled_rows": self.sampled_rows,
            "key": self.key,
            "estimate": self.estimate,
            "repeatable": self.repeatable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rate=float(data["rate"]),
            method=str(data["method"]),
            seed=int(data.get("seed", 0)),
            sampled_rows=int(data.get("sampled_rows", 0)),
            key=data.get("key"),
            estimate=None if data.get("estimate") is None else int(data["estimate"]),
            repeatable=bool(data.get("repeatable", True)),
        )


def parse_sample(
    sample: str | float | None, sample_rows: int | None, seed: int = 0, key: str | None = None
) -> SampleRequest | None:
    """``sample="1%"``/``0.01`` or ``sample_rows=200_000`` (not both) as a :class:`SampleRequest`;
    ``None`` when neither is given. Raises ``MlobsInputError`` for a rate outside (0, 1]."""
    if sample is None and sample_rows is None:
        return None
    if sample is not None and sample_rows is not None:
        raise MlobsInputError("give sample= or sample_rows=, not both")
    if sample_rows is not None:
        if int(sample_rows) <= 0:
            raise MlobsInputError(f"sample_rows must be a positive number of rows, got {sample_rows!r}")
        return SampleRequest(rows=int(sample_rows), seed=seed, key=key)
    rate: float
    if isinstance(sample, str):
        text = sample.strip()
        try:
            rate = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise MlobsInputError(f"sample must be a rate like '1%' or 0.01, got {sample!r}") from None
    else:
        rate = float(sample)  # type: ignore[arg-type]
    if not (math.isfinite(rate) and 0.0 < rate <= 1.0):
        raise MlobsInputError(f"sample rate must be in (0, 100%], got {sample!r}")
    return SampleRequest(rate=rate, seed=seed, key=key)


def resolve_rate(request: SampleRequest, estimate: int | None) -> float:
    """The rate of a request: its own, or ``min(1, rows / estimate)`` (1 for an empty table)."""
    if request.rate is not None:
        return request.rate
    assert request.rows is not None
    if not estimate or estimate <= 0:
        return 1.0
    return min(1.0, request.rows / estimate)


def hash_threshold(rate: float) -> int:
    """Residues below this are kept by the key hash: ``ceil(rate * HASH_MODULUS)``."""
    return min(HASH_MODULUS, max(1, math.ceil(rate * HASH_MODULUS)))


def hash_parameters(seed: int) -> tuple[int, int]:
    """The key hash's multiplier and offset for ``seed``: ``(7919 * G**seed % M, seed % M)`` with
    ``G = 500009``. The multiplier is never 0 (``M`` is prime) and seeds get unrelated multipliers
    (multipliers that are small multiples of each other, as ``7919 * (1 + seed)`` would give, keep
    overlapping rows: 2 and 1 share half the sample); every intermediate of
    ``residue * multiplier + offset`` stays below ``M**2 < 2**40``."""
    return HASH_MULTIPLIER * pow(HASH_SEED_BASE, seed % (HASH_MODULUS - 1), HASH_MODULUS) % HASH_MODULUS, (
        seed % HASH_MODULUS
    )


def keep_key(key: int, rate: float, seed: int) -> bool:
    """The key hash in Python (the in-memory twin of the SQL predicate)."""
    multiplier, offset = hash_parameters(seed)
    return (abs(key) % HASH_MODULUS * multiplier + offset) % HASH_MODULUS < hash_threshold(rate)


def proportion_standard_error(p: float, n: int) -> float:
    """Standard error of a bin share ``p`` estimated from ``n`` independently sampled rows:
    ``sqrt(p (1 - p) / n)``; 0 for ``n == 0``."""
    if n <= 0:
        return 0.0
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def psi_standard_error(expected: list[float], actual: list[float], n_sampled: int) -> float:
    """Delta-method standard error of the PSI ``sum (a_i - e_i) ln(a_i / e_i)`` when the current
    shares ``a`` come from ``n_sampled`` sampled rows (the baseline shares ``e`` held fixed).

    With ``g_i = dPSI/da_i = ln(a_i / e_i) + 1 - e_i / a_i`` and the multinomial covariance
    ``Cov(a) = (diag(a) - a a^T) / n``, ``Var(PSI) ~= (sum a_i g_i^2 - (sum a_i g_i)^2) / n``.
    Bins with a zero share on either side contribute nothing (PSI's own smoothing decides them).
    When the two distributions are equal the gradient is zero and the first-order error is 0:
    the PSI's sampling noise is then second order (about ``(k - 1) / n``), which is returned
    as a floor so the error is never reported as exactly 0."""
    if n_sampled <= 0:
        return 0.0
    s1 = 0.0
    s2 = 0.0
    for e, a in zip(expected, actual, strict=True):
        if e <= 0.0 or a <= 0.0:
            continue
        g = math.log(a / e) + 1.0 - e / a
        s1 += a * g
        s2 += a * g * g
    variance = max(s2 - s1 * s1, 0.0) / n_sampled
    k = sum(1 for e in expected if e > 0.0)
    return max(math.sqrt(variance), max(k - 1, 0) / n_sampled)


def bootstrap_standard_error(
    effect: Callable[[Any, Any], float | None],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    reference_sampled: bool,
    current_sampled: bool,
    draws: int = DRAWS,
    seed: int = 0,
) -> float | None:
    """The sampling standard error of ``effect(reference_counts, current_counts)``: the standard
    deviation (``ddof=1``) of the effect over ``draws`` parametric bootstrap redraws, each side that
    was sampled redrawn as ``Multinomial(n, counts / n)`` (its own size and observed shares; a side
    holding every row is kept as it is). Deterministic for a ``seed``. ``None`` when neither side
    was sampled, a sampled side is empty, or fewer than two redraws give a finite effect.

    This is the error of a row (or key-hash) sample; a block sample's rows are clustered and its
    true error is wider (module docstring). Whatever else the effect reads from the profile (a
    tail's mean, the extremes) is held at the sample's value."""
    import numpy as np

    if not (reference_sampled or current_sampled):
        return None
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n_ref, n_cur = round(float(ref.sum())), round(float(cur.sum()))
    if (reference_sampled and n_ref <= 0) or (current_sampled and n_cur <= 0):
        return None
    rng = np.random.default_rng(seed)
    ref_draws = rng.multinomial(n_ref, ref / ref.sum(), size=draws) if reference_sampled else None
    cur_draws = rng.multinomial(n_cur, cur / cur.sum(), size=draws) if current_sampled else None
    values = []
    for i in range(draws):
        value = effect(
            ref if ref_draws is None else ref_draws[i],
            cur if cur_draws is None else cur_draws[i],
        )
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1))


def sampled_level(
    effect: float, standard_error: float | None, warn: float, fail: float, z: float = Z
) -> tuple[str, bool]:
    """The level (``"pass"``, ``"warn"`` or ``"fail"``) of an effect size measured on a sample, and
    whether it is *borderline* (its point estimate is past the fail threshold only within its
    sampling error).

    The rule: with ``lower = effect - z * standard_error``,

    * ``fail`` only when ``lower >= fail``: the effect is past the fail threshold even at the low
      end of its 95% interval;
    * ``warn`` when ``effect >= fail`` but ``lower < fail`` (borderline: the sample does not settle
      a failure), and when ``warn <= effect < fail`` (as without sampling);
    * ``pass`` when ``effect < warn``.

    So sampling only ever turns a fail into a borderline warn, never a pass into anything else, and
    a profile that was not sampled (``standard_error`` ``None``) is judged on its point estimate
    exactly as before."""
    if effect >= fail:
        if standard_error is not None and standard_error > 0 and effect - z * standard_error < fail:
            return "warn", True
        return "fail", False
    if effect >= warn:
        return "warn", False
    return "pass", False


def decision_note(effect: float, standard_error: float, threshold: float, z: float = 1.96) -> str | None:
    """Whether a sampled effect size is within ``z`` standard errors of its threshold: a note
    saying the decision is not settled by the sample, or ``None`` when it is."""
    if standard_error <= 0.0 or not math.isfinite(effect):
        return None
    if abs(effect - threshold) <= z * standard_error:
        return (
            f"effect {effect:.4g} is within {z:g} sampling standard errors ({standard_error:.3g}) of the "
            f"threshold {threshold:g}: the sample does not settle this decision"
        )
    return None
