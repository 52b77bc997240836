"""Joint (multivariate) drift: a mergeable covariance profile and a PCA reconstruction-error score.

Per-column drift tests compare each column's own distribution; a change in how columns move
*together* (the correlation of ``x1`` and ``x2`` flipping from +0.8 to -0.8 while both marginals
stay the same) passes them all. This module summarises a window by its row count and first and
second moment sums, which a database computes in one aggregate statement and which merge by
addition like the other profiles, and scores the window against a baseline with a PCA
reconstruction error computed from those sums alone.

Definitions
-----------
Complete cases
    Only rows where *every* included numeric column is finite (not NULL, not NaN, not +-inf) are
    summed; ``dropped`` counts the other rows, so ``n + dropped`` is the window's row count.
Shifted sums
    With a shift vector ``c`` (the baseline's means; zeros when there is none), ``y = x - c`` and
    ``sum_y = Σ y`` (length k), ``sum_yy = Σ y yᵀ`` (k x k, symmetric). Shifting by values near the
    means keeps the digits that ``Σxxᵀ - n x̄x̄ᵀ`` would cancel at a million rows. Profiles with
    different shifts merge after an exact re-shift (:meth:`CovarianceProfile.reshifted`).
Mean and covariance
    ``mean = c + sum_y / n``; ``cov = (sum_yy - sum_y sum_yᵀ / n) / (n - 1)`` (numpy's ``np.cov``,
    ``ddof=1``); ``corr = D⁻¹ cov D⁻¹`` with ``D = diag(sqrt(diag(cov)))``.
PCA model (:func:`fit_pca`)
    On the reference: standardise by the reference mean ``μ`` and std (``z = D⁻¹(x - μ)``, ``D = diag(std)``),
    eigendecompose the reference correlation ``R = V Λ Vᵀ`` (``numpy.linalg.eigh``) and keep the
    fewest leading components ``V_q`` whose eigenvalues reach ``variance_kept`` (default 0.90) of
    ``trace(R) = k``. 90% keeps the correlated structure (two columns correlated at 0.8 share one
    component holding 1.8 of their 2.0 variance) while leaving a residual space in which a broken
    correlation shows: the residual projector is ``P = I - V_q V_qᵀ``.
Reconstruction error (:func:`reconstruction_error`)
    Per row, ``e(x) = ||P z||² / k``, the mean squared residual per standardised feature. Its mean
    over the window's ``n`` rows needs only the sums::

        mean e = (1 / (n k)) Σ_i z_iᵀ P z_i = (1 / (n k)) trace(P · D⁻¹ M D⁻¹),
        M = Σ_i (x_i - μ)(x_i - μ)ᵀ = sum_yy + d sum_yᵀ + sum_y dᵀ + n d dᵀ,  d = c - μ

    (``zᵀPz = trace(P z zᵀ)``, and ``M`` is the window's second-moment matrix about the reference
    mean, the shifted sums re-shifted to ``μ``). A shift of the mean counts too (it enters ``M``).
Threshold (:class:`JointDriftModel`)
    The reference is split into ``K`` folds; for each fold a model is fitted on the other ``K - 1``
    and the held-out fold scored, giving ``K`` out-of-fit errors with mean ``m`` and sd ``s`` at
    the fold size ``n_c``. Their variance has two parts: the row noise of a mean over ``n_c`` rows
    (``s_row² / n_c``, which shrinks as ``1/n`` for a window of ``n`` rows) and the noise of the
    fitted components (``s_fit²``, which a bigger window does not shrink). The fold errors alone
    cannot separate them, so the threshold widens for windows smaller than a fold and does not
    narrow below the fold's spread for bigger ones; ``s / sqrt(K)`` adds the uncertainty of ``m``::

        threshold(n) = m + z · s · sqrt(max(1, n_c / n) + 1 / K)

    (``z`` default 4: one-sided, leaves room for the sd being estimated from ``K`` values and for
    non-normal per-row errors). Measured: narrowing as ``sqrt(n_c / n)`` for ``n > n_c`` gave 3
    false alarms in 200 at 100,000 rows x 25 columns; this form gives the rates in
    ``tests/statistical/test_joint_drift.py``. Only an increase alarms: a smaller residual is not
    drift this score sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

VARIANCE_KEPT = 0.90
"""Default share of the reference correlation's trace the kept components explain."""
THRESHOLD_Z = 4.0
"""Default one-sided z of the held-out threshold."""
FOLDS = 8
"""Default number of reference folds held out in turn."""


@dataclass(frozen=True)
class CovarianceProfile:
    """Complete-case count and shifted first/second moment sums over ``columns`` (see module doc).

    ``sum_yy`` is stored as the full symmetric matrix (row-major nested lists in JSON)."""

    columns: tuple[str, ...]
    shift: tuple[float, ...]
    n: int
    dropped: int
    sum_y: tuple[float, ...]
    sum_yy: tuple[tuple[float, ...], ...]

    @classmethod
    def empty(cls, columns: Sequence[str], shift: Sequence[float] | None = None) -> CovarianceProfile:
        k = len(columns)
        c = tuple(float(v) for v in shift) if shift is not None else (0.0,) * k
        return cls(tuple(columns), c, 0, 0, (0.0,) * k, tuple((0.0,) * k for _ in range(k)))

    @classmethod
    def from_arrays(
        cls,
        columns: Sequence[str],
        shift: Sequence[float] | Matrix,
        n: int,
        dropped: int,
        sum_y: Matrix,
        sum_yy: Matrix,
    ) -> CovarianceProfile:
        return cls(
            tuple(columns),
            tuple(float(v) for v in shift),
            int(n),
            int(dropped),
            tuple(float(v) for v in sum_y),
            tuple(tuple(float(v) for v in row) for row in sum_yy),
        )

    @property
    def k(self) -> int:
        return len(self.columns)

    def arrays(self) -> tuple[Matrix, Matrix, Matrix]:
        """``(shift, sum_y, sum_yy)`` as float64 arrays."""
        return (
            np.asarray(self.shift, dtype=np.float64),
            np.asarray(self.sum_y, dtype=np.float64),
            np.asarray(self.sum_yy, dtype=np.float64).reshape(self.k, self.k),
        )

    def reshifted(self, shift: Sequence[float]) -> CovarianceProfile:
        """The same sums about another shift ``c'``: with ``d = c - c'``, ``Σ(x-c') = s + n d`` and
        ``Σ(x-c')(x-c')ᵀ = S + d sᵀ + s dᵀ + n d dᵀ``."""
        c, s, ss = self.arrays()
        new = np.asarray(shift, dtype=np.float64)
        d = c - new
        return CovarianceProfile.from_arrays(
            self.columns,
            new,
            self.n,
            self.dropped,
            s + self.n * d,
            ss + np.outer(d, s) + np.outer(s, d) + self.n * np.outer(d, d),
        )

    def merge(self, other: CovarianceProfile) -> CovarianceProfile:
        """The profile of the union of both windows' rows (``other`` re-shifted to this shift)."""
        if other.columns != self.columns:
            raise ValueError(
                f"covariance profiles over different columns cannot merge: {self.columns} vs {other.columns}"
            )
        o = other if other.shift == self.shift else other.reshifted(self.shift)
        c, s, ss = self.arrays()
        _, s2, ss2 = o.arrays()
        return CovarianceProfile.from_arrays(
            self.columns, c, self.n + o.n, self.dropped + o.dropped, s + s2, ss + ss2
        )

    def mean(self) -> Matrix:
        c, s, _ = self.arrays()
        return c + s / self.n if self.n else np.full(self.k, np.nan)

    def covariance(self) -> Matrix | None:
        """Sample covariance (``ddof=1``); ``None`` with fewer than two complete rows."""
        if self.n < 2:
            return None
        _, s, ss = self.arrays()
        cov = (ss - np.outer(s, s) / self.n) / (self.n - 1)
        return np.asarray((cov + cov.T) / 2.0, dtype=np.float64)

    def correlation(self) -> Matrix | None:
        """Pearson correlation; ``None`` with fewer than two rows or a constant column."""
        cov = self.covariance()
        if cov is None:
            return None
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        if np.any(sd <= 0.0):
            return None
        corr = cov / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        return np.asarray(np.clip(corr, -1.0, 1.0), dtype=np.float64)

    def second_moment_about(self, center: Matrix) -> Matrix:
        """``M = Σ (x - center)(x - center)ᵀ`` over the complete rows."""
        _, _, ss = self.reshifted(center.tolist()).arrays()
        return ss

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "shift": list(self.shift),
            "n": self.n,
            "dropped": self.dropped,
            "sum_y": list(self.sum_y),
            "sum_yy": [list(r) for r in self.sum_yy],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CovarianceProfile:
        return cls(
            tuple(str(c) for c in data["columns"]),
            tuple(float(v) for v in data["shift"]),
            int(data["n"]),
            int(data.get("dropped", 0)),
            tuple(float(v) for v in data["sum_y"]),
            tuple(tuple(float(v) for v in r) for r in data["sum_yy"]),
        )


@dataclass(frozen=True)
class PcaModel:
    """A PCA fitted on a reference covariance profile (see module doc)."""

    columns: tuple[str, ...]
    mean: Matrix
    std: Matrix
    components: Matrix  # k x q, orthonormal columns
    explained: float

    @property
    def residual_projector(self) -> Matrix:
        v = self.components
        return np.asarray(np.eye(len(self.columns)) - v @ v.T, dtype=np.float64)


def fit_pca(reference: CovarianceProfile, variance_kept: float = VARIANCE_KEPT) -> PcaModel | str:
    """The PCA model of ``reference``, or the reason there is none (too few rows, constant column)."""
    if reference.k < 2:
        return "joint drift needs at least two numeric columns"
    if reference.n <= reference.k:
        return f"joint drift needs more complete reference rows ({reference.n}) than columns ({reference.k})"
    cov = reference.covariance()
    corr = reference.correlation()
    if cov is None or corr is None:
        constant = [
            c
            for c, v in zip(reference.columns, np.diag(cov) if cov is not None else [], strict=False)
            if v <= 0
        ]
        return f"joint drift needs non-constant columns (constant: {', '.join(constant) or 'unknown'})"
    values, vectors = np.linalg.eigh(corr)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    share = np.cumsum(np.clip(values, 0.0, None)) / float(reference.k)
    q = int(np.searchsorted(share, variance_kept - 1e-12) + 1)
    q = min(q, reference.k - 1)  # always leave a residual space
    return PcaModel(
        reference.columns,
        reference.mean(),
        np.sqrt(np.diag(cov)),
        np.asarray(vectors[:, :q], dtype=np.float64),
        float(share[q - 1]),
    )


def reconstruction_error(model: PcaModel, window: CovarianceProfile) -> float | None:
    """Mean over the window's complete rows of ``||P z||² / k`` from its sums alone (module doc)."""
    if window.columns != model.columns:
        raise ValueError(f"window columns {window.columns} differ from the model's {model.columns}")
    if window.n == 0:
        return None
    m = window.second_moment_about(model.mean)
    inv = 1.0 / model.std
    scaled = m * np.outer(inv, inv)
    value = float(np.trace(model.residual_projector @ scaled)) / (window.n * len(model.columns))
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class JointDriftModel:
    """What the baseline stores for joint drift: the reference profile, the held-out error
    distribution (``heldout_mean``, ``heldout_sd`` at ``chunk_rows`` rows over ``folds`` folds)."""

    reference: CovarianceProfile
    heldout_mean: float
    heldout_sd: float
    chunk_rows: float
    folds: int
    variance_kept: float = VARIANCE_KEPT
    z: float = THRESHOLD_Z

    def threshold(self, n: int) -> float:
        """``m + z · s · sqrt(max(1, n_c / n) + 1 / K)`` (module doc)."""
        return self.heldout_mean + self.z * self.heldout_sd * math.sqrt(
            max(1.0, self.chunk_rows / max(n, 1)) + 1.0 / self.folds
        )

    def expected_sd(self, n: int) -> float:
        """The spread of a window's error under the reference (module doc: not below the fold's)."""
        return self.heldout_sd * math.sqrt(max(1.0, self.chunk_rows / max(n, 1)))

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_json(),
            "heldout_mean": self.heldout_mean,
            "heldout_sd": self.heldout_sd,
            "chunk_rows": self.chunk_rows,
            "folds": self.folds,
            "variance_kept": self.variance_kept,
            "z": self.z,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JointDriftModel:
        return cls(
            CovarianceProfile.from_json(data["reference"]),
            float(data["heldout_mean"]),
            float(data["heldout_sd"]),
            float(data["chunk_rows"]),
            int(data["folds"]),
            float(data.get("variance_kept", VARIANCE_KEPT)),
            float(data.get("z", THRESHOLD_Z)),
        )


def build_joint_model(
    folds: Sequence[CovarianceProfile],
    variance_kept: float = VARIANCE_KEPT,
    z: float = THRESHOLD_Z,
) -> JointDriftModel | str:
    """Fit on each K-1 folds, score the held-out fold; the reason when that is impossible."""
    if len(folds) < 3:
        return f"joint drift needs at least 3 reference folds, got {len(folds)}"
    total = folds[0]
    for f in folds[1:]:
        total = total.merge(f)
    errors: list[float] = []
    for i, held in enumerate(folds):
        rest = [f for j, f in enumerate(folds) if j != i]
        fit = rest[0]
        for f in rest[1:]:
            fit = fit.merge(f)
        model = fit_pca(fit, variance_kept)
        if isinstance(model, str):
            return model
        err = reconstruction_error(model, held)
        if err is None:
            return f"reference fold {i} has no complete rows"
        errors.append(err)
    if isinstance(fit_pca(total, variance_kept), str):
        return str(fit_pca(total, variance_kept))
    arr = np.asarray(errors)
    return JointDriftModel(
        total,
        float(arr.mean()),
        float(arr.std(ddof=1)),
        float(total.n) / len(folds),
        len(folds),
        variance_kept,
        z,
    )


@dataclass(frozen=True)
class PairChange:
    left: str
    right: str
    reference: float
    window: float

    @property
    def change(self) -> float:
        return self.window - self.reference


@dataclass(frozen=True)
class JointDriftResult:
    """The joint-drift verdict for one window, or ``reason`` when it could not be judged."""

    drifted: bool | None
    error: float | None = None
    expected: float | None = None
    expected_sd: float | None = None
    threshold: float | None = None
    n: int = 0
    dropped: int = 0
    pairs: tuple[PairChange, ...] = field(default_factory=tuple)
    reason: str | None = None

    def message(self) -> str:
        """A sentence for a user."""
        if self.reason is not None:
            return f"joint drift not judged: {self.reason}"
        assert self.error is not None and self.expected is not None and self.expected_sd is not None
        head = (
            f"joint drift: reconstruction error {self.error:.2f} vs {self.expected:.2f} ± "
            f"{self.expected_sd:.2f} expected"
        )
        if self.pairs:
            p = self.pairs[0]
            head += (
                f"; correlation of {p.left} and {p.right} changed from {p.reference:+.2f} to {p.window:+.2f}"
            )
        return head


def judge_joint(model: JointDriftModel, window: CovarianceProfile, top_pairs: int = 3) -> JointDriftResult:
    """Score ``window`` against ``model``; the pairs whose correlation changed most come along."""
    if window.columns != model.reference.columns:
        missing = sorted(set(model.reference.columns) - set(window.columns))
        return JointDriftResult(
            None, reason=f"window columns differ from the baseline's (missing: {missing})"
        )
    pca = fit_pca(model.reference, model.variance_kept)
    if isinstance(pca, str):
        return JointDriftResult(None, reason=pca, n=window.n, dropped=window.dropped)
    if window.n < 2:
        return JointDriftResult(
            None, reason=f"{window.n} complete rows in the window", n=window.n, dropped=window.dropped
        )
    err = reconstruction_error(pca, window)
    if err is None:
        return JointDriftResult(
            None, reason="reconstruction error is not finite", n=window.n, dropped=window.dropped
        )
    pairs: list[PairChange] = []
    ref_corr, win_corr = model.reference.correlation(), window.correlation()
    if ref_corr is not None and win_corr is not None:
        k = window.k
        for i in range(k):
            for j in range(i + 1, k):
                pairs.append(
                    PairChange(
                        window.columns[i], window.columns[j], float(ref_corr[i, j]), float(win_corr[i, j])
                    )
                )
        pairs.sort(key=lambda p: -abs(p.change))
    thr = model.threshold(window.n)
    return JointDriftResult(
        err > thr,
        err,
        model.heldout_mean,
        model.expected_sd(window.n),
        thr,
        window.n,
        window.dropped,
        tuple(pairs[:top_pairs]),
    )


def joint_inputs(
    stats: Mapping[str, tuple[float | None, float | None]],
) -> tuple[list[str], list[float]] | str:
    """The joint-drift columns and their shift from the reference's per-column ``(mean, std)``:
    the numeric columns with a mean and a non-zero spread (a constant column carries no joint
    structure), in order; the reason when fewer than two remain."""
    columns = [
        name
        for name, (mean, std) in stats.items()
        if mean is not None and std is not None and math.isfinite(mean) and std > 0
    ]
    if len(columns) < 2:
        return (
            f"joint drift needs at least 2 non-constant numeric columns, the baseline has {len(columns)}"
            + (f" ({', '.join(columns)})" if columns else "")
        )
    return columns, [float(stats[c][0]) for c in columns]  # type: ignore[arg-type]
