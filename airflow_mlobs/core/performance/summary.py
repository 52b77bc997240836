"""Mergeable summaries of one window of the delayed-label performance check, and how to compute
them from numpy arrays.

**Summaries** (:class:`ClassificationSummary`, :class:`RegressionSummary`,
:class:`MulticlassSummary`) are small and merge by addition (per segment, per partition, per chunk
of a streaming join). A SQL gatherer computes them in the database
(:mod:`airflow_mlobs.sources.performance_sql`); the ``summarize_*`` functions compute the same
from numpy arrays (the in-memory path, :mod:`airflow_mlobs.sources.performance_frame`, and the
tests' reference).

Binary classification keeps the confusion counts of the labelled predictions, score histograms of
the labelled positives and negatives over ``bins`` equal-width bins on [0, 1] (:func:`score_bin`:
``floor(s * bins)``, a score of exactly 1 in the last bin), and the sums of the per-row log-loss
terms (:func:`log_loss_terms`, ``s`` clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]``) and of their
squares. Rows whose score is NULL, NaN, infinite or outside [0, 1] are left out of the score
histograms (``invalid_scores``); when the predicted class comes from the score (``score >=
threshold``, no predicted-class column) they are left out of the confusion counts and every metric
too (``unscored``), never counted as predicted negative. Regression keeps the sums of the errors' powers and of the
labels'; multi-class the confusion matrix as sparse counts, the classes as canonical text.

Pure: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.performance.window import Coverage
from airflow_mlobs.core.performance_settings import DEFAULT_BINS

#: Regression errors or labels beyond this size are left out of the sums of powers (``e^4`` of
#: 1e77 overflows a double; the same rule in the database and in memory).
HUGE = 1e70

#: Scores are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` in the log-loss terms.
LOG_LOSS_EPS = 1e-15


def _add_tuples(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    if len(a) != len(b):
        raise MlobsInputError(f"cannot merge histograms of {len(a)} and {len(b)} bins")
    return tuple(int(x) + int(y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class ClassificationSummary:
    """Everything the classification metrics need, for one window (and optionally one segment).

    Labelled rows: the confusion counts; ``positives`` / ``negatives``: score histograms of the
    labelled positives and negatives over ``bins`` equal-width bins on [0, 1] (a score of exactly 1
    goes to the last bin); ``invalid_scores``: labelled rows with a NULL, NaN, infinite or
    out-of-range score; ``unscored``: those of them whose predicted class would come from the score
    (no predicted-class column), left out of the confusion counts (so ``labelled`` excludes them);
    ``log_loss_sum`` / ``log_loss_sumsq``: sums of the per-row log-loss terms and their squares over
    the labelled rows with a valid score. All rows of the window with a valid score:
    ``scored``, ``score_sum``, ``confidence_sum`` (sum of ``ŷ s + (1 - ŷ)(1 - s)``), and their score
    histograms by predicted class, ``scored_predicted_positive`` / ``scored_predicted_negative``,
    for the estimates.
    """

    bins: int = DEFAULT_BINS
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    positives: tuple[int, ...] = ()
    negatives: tuple[int, ...] = ()
    invalid_scores: int = 0
    unscored: int = 0
    log_loss_sum: float = 0.0
    log_loss_sumsq: float = 0.0
    scored: int = 0
    score_sum: float = 0.0
    confidence_sum: float = 0.0
    predicted_positive_all: int = 0
    scored_predicted_positive: tuple[int, ...] = ()
    scored_predicted_negative: tuple[int, ...] = ()
    coverage: Coverage = field(default_factory=Coverage)

    def __post_init__(self) -> None:
        for name in ("positives", "negatives", "scored_predicted_positive", "scored_predicted_negative"):
            if not getattr(self, name):
                object.__setattr__(self, name, (0,) * self.bins)

    @property
    def labelled(self) -> int:
        """Labelled predictions in the confusion table (its total; without the ``unscored``)."""
        return self.tp + self.fp + self.fn + self.tn

    def __add__(self, other: ClassificationSummary) -> ClassificationSummary:
        if self.bins != other.bins:
            raise MlobsInputError(f"cannot merge summaries of {self.bins} and {other.bins} score bins")
        return ClassificationSummary(
            bins=self.bins,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            tn=self.tn + other.tn,
            positives=_add_tuples(self.positives, other.positives),
            negatives=_add_tuples(self.negatives, other.negatives),
            invalid_scores=self.invalid_scores + other.invalid_scores,
            unscored=self.unscored + other.unscored,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            log_loss_sumsq=self.log_loss_sumsq + other.log_loss_sumsq,
            scored=self.scored + other.scored,
            score_sum=self.score_sum + other.score_sum,
            confidence_sum=self.confidence_sum + other.confidence_sum,
            predicted_positive_all=self.predicted_positive_all + other.predicted_positive_all,
            scored_predicted_positive=_add_tuples(
                self.scored_predicted_positive, other.scored_predicted_positive
            ),
            scored_predicted_negative=_add_tuples(
                self.scored_predicted_negative, other.scored_predicted_negative
            ),
            coverage=self.coverage + other.coverage,
        )


@dataclass(frozen=True)
class RegressionSummary:
    """Sums over the labelled rows with a predicted value (``e = ŷ - y``): ``count``, ``sum |e|``,
    ``sum e``, ``sum e^2``, ``sum e^4``, ``sum y``, ``sum y^2``, ``sum |e|/|y|`` and its square over
    ``y != 0`` (``nonzero_labels`` rows), ``zero_labels`` (``y == 0``), ``invalid`` (labelled rows
    whose prediction or label is NULL, NaN or infinite: left out of every sum), ``huge`` (rows whose
    ``|e|`` or ``|y|`` exceeds :data:`HUGE`: in the linear sums but left out of the sums of squares
    and fourth powers, which would overflow the double range; the metrics built on those are then
    undefined, never infinite)."""

    count: int = 0
    sum_abs_error: float = 0.0
    sum_error: float = 0.0
    sum_sq_error: float = 0.0
    sum_quartic_error: float = 0.0
    sum_y: float = 0.0
    sum_sq_y: float = 0.0
    sum_ape: float = 0.0
    sum_sq_ape: float = 0.0
    nonzero_labels: int = 0
    zero_labels: int = 0
    invalid: int = 0
    huge: int = 0
    coverage: Coverage = field(default_factory=Coverage)

    def __add__(self, other: RegressionSummary) -> RegressionSummary:
        return RegressionSummary(
            count=self.count + other.count,
            sum_abs_error=self.sum_abs_error + other.sum_abs_error,
            sum_error=self.sum_error + other.sum_error,
            sum_sq_error=self.sum_sq_error + other.sum_sq_error,
            sum_quartic_error=self.sum_quartic_error + other.sum_quartic_error,
            sum_y=self.sum_y + other.sum_y,
            sum_sq_y=self.sum_sq_y + other.sum_sq_y,
            sum_ape=self.sum_ape + other.sum_ape,
            sum_sq_ape=self.sum_sq_ape + other.sum_sq_ape,
            nonzero_labels=self.nonzero_labels + other.nonzero_labels,
            zero_labels=self.zero_labels + other.zero_labels,
            invalid=self.invalid + other.invalid,
            huge=self.huge + other.huge,
            coverage=self.coverage + other.coverage,
        )


@dataclass(frozen=True)
class MulticlassSummary:
    """The confusion matrix of the labelled rows as sparse counts: ``cells`` holds
    ``(label, predicted, count)`` for every non-empty cell, sorted, with the classes as canonical
    text (``1`` and ``1.0`` are the class ``"1"``, booleans ``"true"``/``"false"``); ``invalid``:
    labelled rows whose label or predicted class is NULL (left out of the matrix)."""

    cells: tuple[tuple[str, str, int], ...] = ()
    invalid: int = 0
    coverage: Coverage = field(default_factory=Coverage)

    @staticmethod
    def from_counts(
        counts: Mapping[tuple[str, str], int], *, invalid: int = 0, coverage: Coverage | None = None
    ) -> MulticlassSummary:
        """A summary from ``{(label, predicted): count}`` (zero counts dropped)."""
        cells = tuple(sorted((str(a), str(b), int(c)) for (a, b), c in counts.items() if c))
        return MulticlassSummary(cells, int(invalid), coverage or Coverage())

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(label, predicted): count}``."""
        return {(a, b): c for a, b, c in self.cells}

    @property
    def labelled(self) -> int:
        """Rows in the confusion matrix (labelled, with a label and a predicted class)."""
        return sum(c for _, _, c in self.cells)

    def matrix(self, classes: Sequence[str] | None = None) -> tuple[tuple[str, ...], NDArray[np.int64]]:
        """The classes (sorted; every class seen as a label or a prediction, plus ``classes``) and
        the dense matrix ``m[i, j]`` = rows labelled ``classes[i]`` predicted ``classes[j]``."""
        names = sorted({a for a, _, _ in self.cells} | {b for _, b, _ in self.cells} | set(classes or ()))
        index = {name: i for i, name in enumerate(names)}
        m = np.zeros((len(names), len(names)), dtype=np.int64)
        for a, b, c in self.cells:
            m[index[a], index[b]] += c
        return tuple(names), m

    def __add__(self, other: MulticlassSummary) -> MulticlassSummary:
        merged = self.counts()
        for a, b, c in other.cells:
            merged[(a, b)] = merged.get((a, b), 0) + c
        return MulticlassSummary.from_counts(
            merged, invalid=self.invalid + other.invalid, coverage=self.coverage + other.coverage
        )


Summary = ClassificationSummary | RegressionSummary | MulticlassSummary


def score_bin(scores: ArrayLike, bins: int = DEFAULT_BINS) -> NDArray[np.int64]:
    """Bin index of each score on [0, 1] (``floor(s * bins)``, 1.0 in the last bin); -1 for NaN or out of range."""
    s = np.asarray(scores, dtype=np.float64)
    valid = np.isfinite(s) & (s >= 0) & (s <= 1)
    out = np.full(s.shape, -1, dtype=np.int64)
    out[valid] = np.minimum(np.floor(s[valid] * bins).astype(np.int64), bins - 1)
    return out


def log_loss_terms(y: ArrayLike, scores: ArrayLike) -> NDArray[np.float64]:
    """Per-row log-loss terms ``-(y ln s' + (1 - y) ln(1 - s'))``, ``s'`` clipped to ``[1e-15, 1 - 1e-15]``."""
    yy = np.asarray(y, dtype=np.float64)
    s = np.clip(np.asarray(scores, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return np.asarray(-(yy * np.log(s) + (1 - yy) * np.log(1 - s)), dtype=np.float64)


def summarize_classification(
    prediction_ids: ArrayLike,
    predicted: ArrayLike,
    scores: ArrayLike,
    labels_by_id: Mapping[Any, Any],
    *,
    positive_label: Any = 1,
    label_counts: Mapping[Any, int] | None = None,
    late_ids: set[Any] | None = None,
    bins: int = DEFAULT_BINS,
    orphan_labels: int | None = None,
    score_decides: bool = False,
) -> ClassificationSummary:
    """The classification summary of one window in memory (the reference for the SQL gatherer).

    ``predicted`` holds 1 where the model predicted the positive class (booleans or 0/1);
    ``labels_by_id`` maps a prediction id to its winning label (see :func:`winning_labels`).
    """
    ids = np.asarray(prediction_ids, dtype=object)
    labelled, duplicate, late = _label_flags(ids, labels_by_id, label_counts, late_ids)
    summary = summarize_classification_arrays(
        labelled,
        np.array([labels_by_id.get(i) == positive_label for i in ids], dtype=bool),
        np.asarray(predicted, dtype=np.float64) == 1,
        scores,
        duplicate=duplicate,
        late=late,
        bins=bins,
        score_decides=score_decides,
    )
    return replace(summary, coverage=replace(summary.coverage, orphan_labels=orphan_labels))


def _label_flags(
    ids: NDArray[Any],
    labels_by_id: Mapping[Any, Any],
    label_counts: Mapping[Any, int] | None,
    late_ids: set[Any] | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Per prediction id: labelled, with duplicate labels, labelled only after the cut-off."""
    counts = label_counts or {}
    late = late_ids or set()
    return (
        np.array([i in labels_by_id for i in ids], dtype=bool),
        np.array([counts.get(i, 0) > 1 for i in ids], dtype=bool),
        np.array([i in late for i in ids], dtype=bool),
    )


def summarize_regression(
    prediction_ids: ArrayLike,
    predicted: ArrayLike,
    labels_by_id: Mapping[Any, Any],
    *,
    label_counts: Mapping[Any, int] | None = None,
    late_ids: set[Any] | None = None,
    orphan_labels: int | None = None,
) -> RegressionSummary:
    """The regression summary of one window in memory (the reference for the SQL gatherer)."""
    ids = np.asarray(prediction_ids, dtype=object)
    labelled, duplicate, late = _label_flags(ids, labels_by_id, label_counts, late_ids)
    y = [
        float(labels_by_id[i]) if labelled[k] and labels_by_id[i] is not None else np.nan
        for k, i in enumerate(ids)
    ]
    summary = summarize_regression_arrays(labelled, y, predicted, duplicate=duplicate, late=late)
    return replace(summary, coverage=replace(summary.coverage, orphan_labels=orphan_labels))


def _chunk_coverage(has: NDArray[np.bool_], duplicate: ArrayLike | None, late: ArrayLike | None) -> Coverage:
    """The coverage counts of one chunk: its predictions, the labelled ones, the ones labelled only
    after the cut-off, and the labelled ones with duplicate labels."""
    dup = np.asarray(duplicate, dtype=bool) if duplicate is not None else np.zeros(has.shape, bool)
    lt = np.asarray(late, dtype=bool) if late is not None else np.zeros(has.shape, bool)
    return Coverage(len(has), int(has.sum()), int(np.sum(lt & ~has)), int(np.sum(dup & has)))


def summarize_classification_arrays(
    labelled: ArrayLike,
    y: ArrayLike,
    predicted: ArrayLike,
    scores: ArrayLike,
    *,
    duplicate: ArrayLike | None = None,
    late: ArrayLike | None = None,
    bins: int = DEFAULT_BINS,
    score_decides: bool = False,
) -> ClassificationSummary:
    """The classification summary of one chunk of predictions, vectorised (no orphan count).

    One entry per prediction: ``labelled`` (has a label by the cut-off), ``y`` (the winning label is
    the positive class; ignored where not labelled), ``predicted`` (predicted positive), ``scores``
    (NaN for NULL), ``duplicate`` (more than one label by the cut-off), ``late`` (labelled only after
    the cut-off). ``score_decides``: ``predicted`` is ``score >= threshold``, so a prediction without
    a valid score has no predicted class and is left out of the confusion counts (``unscored``).
    Chunk summaries add up to the window's (the streaming join's building block).
    """
    has = np.asarray(labelled, dtype=bool)
    yy = np.asarray(y, dtype=bool) & has
    yhat = np.asarray(predicted, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    b = score_bin(s, bins)
    valid = b >= 0
    in_confusion = has & valid if score_decides else has
    lab_pos, lab_neg = in_confusion & yy, in_confusion & ~yy
    terms = log_loss_terms(yy[has & valid], s[has & valid])
    conf = np.where(yhat, s, 1 - s)[valid]
    return ClassificationSummary(
        bins=bins,
        tp=int(np.sum(lab_pos & yhat)),
        fp=int(np.sum(lab_neg & yhat)),
        fn=int(np.sum(lab_pos & ~yhat)),
        tn=int(np.sum(lab_neg & ~yhat)),
        positives=tuple(int(c) for c in np.bincount(b[lab_pos & valid], minlength=bins)),
        negatives=tuple(int(c) for c in np.bincount(b[lab_neg & valid], minlength=bins)),
        invalid_scores=int(np.sum(has & ~valid)),
        unscored=int(np.sum(has & ~in_confusion)),
        log_loss_sum=float(terms.sum()),
        log_loss_sumsq=float(np.sum(terms * terms)),
        scored=int(valid.sum()),
        score_sum=float(s[valid].sum()),
        confidence_sum=float(conf.sum()),
        predicted_positive_all=int(np.sum(yhat & valid)) if score_decides else int(yhat.sum()),
        scored_predicted_positive=tuple(int(c) for c in np.bincount(b[valid & yhat], minlength=bins)),
        scored_predicted_negative=tuple(int(c) for c in np.bincount(b[valid & ~yhat], minlength=bins)),
        coverage=_chunk_coverage(has, duplicate, late),
    )


def summarize_regression_arrays(
    labelled: ArrayLike,
    y: ArrayLike,
    predicted: ArrayLike,
    *,
    duplicate: ArrayLike | None = None,
    late: ArrayLike | None = None,
) -> RegressionSummary:
    """The regression summary of one chunk, vectorised (``y`` and ``predicted`` NaN for NULL; the
    other arguments as :func:`summarize_classification_arrays`)."""
    has = np.asarray(labelled, dtype=bool)
    yv = np.asarray(y, dtype=np.float64)
    pred = np.asarray(predicted, dtype=np.float64)
    ok = has & np.isfinite(yv) & np.isfinite(pred)
    with np.errstate(over="ignore", invalid="ignore"):
        e = pred[ok] - yv[ok]
    yy = yv[ok]
    small = (np.abs(e) <= HUGE) & (np.abs(yy) <= HUGE)
    es, ys = e[small], yy[small]
    nz = yy != 0
    with np.errstate(over="ignore", invalid="ignore"):
        ape = np.abs(e[nz]) / np.abs(yy[nz])
        sums = (float(np.abs(e).sum()), float(e.sum()), float(yy.sum()))
    return RegressionSummary(
        count=int(ok.sum()),
        sum_abs_error=sums[0],
        sum_error=sums[1],
        sum_sq_error=float(np.sum(es * es)),
        sum_quartic_error=float(np.sum(es**4)),
        sum_y=sums[2],
        sum_sq_y=float(np.sum(ys * ys)),
        sum_ape=float(ape.sum()),
        sum_sq_ape=float(np.sum(ape * ape)),
        nonzero_labels=int(nz.sum()),
        zero_labels=int((~nz).sum()),
        invalid=int(np.sum(has & ~ok)),
        huge=int(np.sum(~small)),
        coverage=_chunk_coverage(has, duplicate, late),
    )


def summarize_multiclass_arrays(
    labelled: ArrayLike,
    y: Sequence[str | None],
    predicted: Sequence[str | None],
    *,
    duplicate: ArrayLike | None = None,
    late: ArrayLike | None = None,
) -> MulticlassSummary:
    """The multi-class summary of one chunk: ``y`` / ``predicted`` hold the classes as canonical text
    (``None`` for NULL; ``y`` ignored where not labelled); the rest as
    :func:`summarize_classification_arrays`."""
    has = np.asarray(labelled, dtype=bool)
    counts: dict[tuple[str, str], int] = {}
    invalid = 0
    for is_labelled, label, guess in zip(has.tolist(), y, predicted, strict=True):
        if not is_labelled:
            continue
        if label is None or guess is None:
            invalid += 1
            continue
        counts[(label, guess)] = counts.get((label, guess), 0) + 1
    return MulticlassSummary.from_counts(
        counts,
        invalid=invalid,
        coverage=_chunk_coverage(has, duplicate, late),
    )


def summarize_multiclass(
    prediction_ids: ArrayLike,
    predicted: Sequence[Any],
    labels_by_id: Mapping[Any, Any],
    *,
    label_counts: Mapping[Any, int] | None = None,
    late_ids: set[Any] | None = None,
    orphan_labels: int | None = None,
) -> MulticlassSummary:
    """The multi-class summary of one window in memory (the reference for the SQL gatherer); classes
    are compared as ``str()`` of the values (pass canonical text for mixed types)."""
    ids = list(np.asarray(prediction_ids, dtype=object))
    has = [i in labels_by_id for i in ids]
    y = [None if labels_by_id.get(i) is None else str(labels_by_id[i]) for i in ids]
    guesses = [None if p is None else str(p) for p in predicted]
    counts = label_counts or {}
    summary = summarize_multiclass_arrays(
        has,
        y,
        guesses,
        duplicate=[counts.get(i, 0) > 1 for i in ids],
        late=[bool(late_ids and i in late_ids) for i in ids],
    )
    return replace(summary, coverage=replace(summary.coverage, orphan_labels=orphan_labels))
