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
``(abs(key) % M * A + C) % M < rate * M`` with ``M = 1000003`` (prime), ``A = 7919``, ``C`` the seed;
this is a fixed permutation of residues, so for sequential keys the sample is close to systematic
sampling (every ~1/rate-th key), and the same key is always in or out for a given seed (reruns see
the same rows).

``sample_rows`` resolves to a rate from the table's row estimate (PostgreSQL ``pg_class.reltuples``,
which ANALYZE/autovacuum keep; a ``count(*)`` elsewhere): ``rate = min(1, sample_rows / estimate)``.
The estimate is not exact, so the sampled row count is near, not equal to, ``sample_rows``.

Nothing scales counts up: a sampled profile holds the sampled counts, so p-values are computed from
the sample size actually seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from airflow_mlobs.core.errors import MlobsInputError

#: Modulus of the key hash (a prime just above 10**6) and its multiplier.
HASH_MODULUS = 1_000_003
HASH_MULTIPLIER = 7919


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
    resolved against, and the ``sampled_rows`` the profile holds."""

    rate: float
    method: str
    seed: int
    sampled_rows: int
    key: str | None = None
    estimate: int | None = None

    def describe(self) -> str:
        key = f" on {self.key}" if self.key else ""
        return f"sampled {self.rate:.4%} by {self.method}{key} (seed {self.seed}): {self.sampled_rows} rows"


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


def keep_key(key: int, rate: float, seed: int) -> bool:
    """The key hash in Python (the in-memory twin of the SQL predicate)."""
    return (abs(key) % HASH_MODULUS * HASH_MULTIPLIER + seed) % HASH_MODULUS < hash_threshold(rate)


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
