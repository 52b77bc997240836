"""Delayed-label model performance: windows, mergeable summaries, metrics with standard errors, and
the judgement against a baseline. Pure: no Airflow, no I/O.

**Windows and maturity.** Labels arrive late. The run for the data interval ``[S, E)`` judges the
predictions made in ``[S - label_delay, E - label_delay)`` (:func:`evaluation_window`); a label
counts only if its label time is at or before the label cut-off (default ``E``), so a re-run of the
same interval sees the same labels. When a prediction has several labels by the cut-off, the
``duplicate_labels`` rule picks one (:func:`winning_labels`): ``"latest"`` (the default) keeps the
one with the latest label time, so a later correction replaces the first verdict; ``"earliest"``
keeps the one with the earliest label time, so the first verdict counts and later corrections are
ignored (labels after the cut-off never count, under either rule). Ties at the same label time go to
the larger label under both rules. ``label_coverage`` is labelled / predictions;
below ``min_label_coverage`` the result is ``skipped`` ("labels not mature"). Whole days of the delay
are subtracted in the wall-clock time of ``timezone``, so a daily window at local midnight maps onto
a local-midnight window across a daylight-saving change; the rest of the delay is absolute time.

**Summaries** (:class:`ClassificationSummary`, :class:`RegressionSummary`) are small and merge by
addition (per segment, per partition). A SQL gatherer computes them in the database
(:mod:`airflow_mlobs.sources.performance_sql`); :func:`summarize_classification` and
:func:`summarize_regression` compute the same from numpy arrays (the in-memory path and the tests'
reference).

**Metric definitions** (binary classification; ``y`` the label, ``ŷ`` the predicted class,
``s`` the score, the probability of the positive class; ``TP, FP, FN, TN`` the confusion counts of
the labelled predictions, ``n`` their number, ``P = TP + FN``, ``N = FP + TN``):

accuracy ``(TP + TN) / n``; precision ``TP / (TP + FP)``; recall ``TP / P``; specificity
``TN / N``; positive_rate ``(TP + FP) / n`` (the predicted-positive rate); prevalence ``P / n``.
    Standard error: binomial, ``sqrt(p (1 - p) / m)`` with ``m`` the denominator.
balanced_accuracy ``(recall + specificity) / 2``.
    SE: ``sqrt(r (1 - r) / P + t (1 - t) / N) / 2`` (independent binomials).
f1 ``2 TP / (2 TP + FP + FN)``.
    SE: delta method on the multinomial cell counts: ``sqrt(4 TP (FP + FN) (TP + FP + FN)) / (2 TP + FP + FN)^2``.
roc_auc
    The Mann-Whitney probability ``P(s+ > s-) + P(s+ = s-) / 2`` over the scores rounded to
    ``bins`` equal-width bins on [0, 1] (pairs in the same bin count one half). The error against
    the exact AUC is at most half the share of positive-negative pairs sharing a bin (reported as
    ``binning_error_bound``), below 0.005 with 1000 bins for any continuous score seen in tests.
    SE: Hanley & McNeil (1982): ``Q1 = A / (2 - A)``, ``Q2 = 2 A^2 / (1 + A)``,
    ``var = (A (1 - A) + (P - 1)(Q1 - A^2) + (N - 1)(Q2 - A^2)) / (P N)``.
pr_auc
    Average precision ``sum_k (R_k - R_{k-1}) Prec_k`` over thresholds at the bin boundaries from
    the top (sklearn's ``average_precision_score`` on binned scores). SE: the binomial SE of a
    proportion over ``P`` (an approximation; documented as such).
log_loss
    ``-mean(y ln s' + (1 - y) ln(1 - s'))`` with ``s' = clip(s, 1e-15, 1 - 1e-15)``: **exact**, from
    the sums of the per-row terms and of their squares (pushed down). SE: the sample standard
    deviation of the terms over ``sqrt(m)``.
ece (expected calibration error)
    ``sum_b (n_b / m) |mean(s)_b - mean(y)_b|`` over 10 equal-width bins; ``mean(s)_b`` from the fine
    histogram's bin midpoints (error at most half a fine bin, 0.0005 with 1000 bins).
    SE: ``sqrt(sum_b (n_b / m)^2 p_b (1 - p_b) / n_b)`` (the binomial error of each bin's label
    rate; ignores the bias of the absolute value, so it is a rough guide).

Rows whose score is NULL or outside [0, 1] count in the confusion counts but not in the score
metrics (``invalid_scores``).

Regression (``e = ŷ - y``): mae ``mean |e|``; rmse ``sqrt(mean e^2)``; bias ``mean e``; mape
``mean |e| / |y|`` over rows with ``y != 0`` only (rows with ``y = 0`` are counted in
``zero_labels`` and reported; MAPE is undefined when all labels are 0); r2 ``1 - SSE / SST`` with
``SST = sum (y - mean y)^2`` (undefined when the labels are constant). SEs: ``sd / sqrt(n)`` of the
per-row terms for mae, bias and mape; delta method for rmse (``SE(mean e^2) / (2 rmse)``, needs
``sum e^4``); r2 ``SE(mean e^2) / var(y)`` (treating the label variance as fixed; approximate).

Every metric is a :class:`MetricValue`: a finite value with its SE and the ``±3 SE`` band, or
``None`` with a reason (one class only, no predicted positives, an empty window). Nothing here
raises on degenerate input or returns an infinity.

**Multi-class** (``task="multiclass"``, :class:`MulticlassSummary`): the confusion matrix pushed
down as counts grouped by (label, predicted class), classes compared as canonical text; accuracy,
macro / weighted F1 and per-class precision / recall / F1 (:func:`multiclass_metrics` documents
the undefined cases: a class never predicted has no precision; macro F1 averages over the classes
seen as a label or a prediction).

**Estimates while labels are immature** (marked ``estimate=True``), over all predictions of the
window with a valid score, labelled or not: expected accuracy ``mean(ŷ c(s) + (1 - ŷ)(1 - c(s)))``
and expected positive rate ``mean(c(s))``, where ``c`` is the calibration map. Without a reference
window ``c(s) = s``: what the metrics would be if the model were calibrated. With a labelled
reference window (:func:`calibration_map`), ``c`` maps each of ``ECE_BINS`` equal-width score bins
to the positive rate observed in that bin of the reference (``calibration="reference"`` in the
metric); a bin the reference has no labelled rows in keeps ``c(s) = s``. Both assume that the
relation of score to outcome is unchanged since the reference (covariate shift only); a shift in
that relation (concept drift) only shows once the labels arrive.

**Baselines from a reference window**: a metric without a given baseline value can take it from a
labelled reference window (:func:`judge_performance` ``reference=``); the drop is then weighed
against the standard error of the difference, ``sqrt(SE_window^2 + SE_reference^2)``.

**Judgement** (:func:`judge_performance`): ``drop`` is the main metric's fall from its baseline in
the metric's units, positive when worse (``baseline - value`` for metrics where higher is better,
``value - baseline`` for losses and errors, ``|value| - |baseline|`` for bias). A level of
``max_drop`` is breached when ``drop`` exceeds it *and* exceeds ``sigma`` standard errors, so a
drop within the sampling error never breaches. With ``relative=True`` the levels are fractions of
``|baseline|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from airflow_mlobs.core.errors import MlobsInputError

# Defined in the light performance_settings (operators need them at DAG parse time); re-exported here.
from airflow_mlobs.core.performance_settings import ABSOLUTE as ABSOLUTE
from airflow_mlobs.core.performance_settings import CHECK as CHECK
from airflow_mlobs.core.performance_settings import CLASSIFICATION_METRICS as CLASSIFICATION_METRICS
from airflow_mlobs.core.performance_settings import DEFAULT_BINS as DEFAULT_BINS
from airflow_mlobs.core.performance_settings import DESCRIPTIVE as DESCRIPTIVE
from airflow_mlobs.core.performance_settings import HIGHER_IS_BETTER as HIGHER_IS_BETTER
from airflow_mlobs.core.performance_settings import LOWER_IS_BETTER as LOWER_IS_BETTER
from airflow_mlobs.core.performance_settings import MULTICLASS_METRICS as MULTICLASS_METRICS
from airflow_mlobs.core.performance_settings import REGRESSION_METRICS as REGRESSION_METRICS
from airflow_mlobs.core.performance_settings import DropLevels as DropLevels
from airflow_mlobs.core.performance_settings import DuplicateLabels as DuplicateLabels
from airflow_mlobs.core.performance_settings import PerformanceSettings as PerformanceSettings
from airflow_mlobs.core.performance_settings import Task as Task
from airflow_mlobs.core.performance_settings import check_duplicate_labels as check_duplicate_labels
from airflow_mlobs.core.performance_settings import parse_max_drop as parse_max_drop
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst

ECE_BINS = 10
LOG_LOSS_EPS = 1e-15
BAND_SIGMAS = 3.0


# --- windows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceWindow:
    """What one run judges: predictions made in ``[prediction_start, prediction_end)``, labels with
    label time ``<= label_cutoff``; labels that arrived in ``(arrivals_start, label_cutoff]`` are
    checked for unknown prediction ids."""

    prediction_start: datetime
    prediction_end: datetime
    label_cutoff: datetime
    arrivals_start: datetime


def shift_back(moment: datetime, delay: timedelta, zone: tzinfo) -> datetime:
    """``moment - delay``, whole days in the wall-clock time of ``zone``, the rest as absolute time.

    So 7 days before local midnight is local midnight, whether or not a daylight-saving change lies
    between. An aware ``moment`` is required; the result is in ``moment``'s zone.
    """
    if moment.tzinfo is None:
        raise MlobsInputError(f"shift_back needs an aware datetime, got {moment!r}")
    days = timedelta(days=delay.days)
    rest = delay - days
    local = moment.astimezone(zone)
    # Wall-clock arithmetic: drop the zone, subtract, put the zone back (zoneinfo resolves the offset).
    shifted = (local.replace(tzinfo=None) - days).replace(tzinfo=zone, fold=local.fold)
    return (shifted - rest).astimezone(moment.tzinfo)


def evaluation_window(
    interval_start: datetime,
    interval_end: datetime,
    label_delay: timedelta,
    *,
    label_cutoff: datetime | None = None,
    zone: tzinfo | None = None,
) -> PerformanceWindow:
    """The window judged by the run for the data interval ``[interval_start, interval_end)``.

    Predictions: the interval shifted back by ``label_delay`` (:func:`shift_back` in ``zone``,
    default the interval's own zone). Labels: label time ``<= label_cutoff`` (default
    ``interval_end``). Raises ``MlobsInputError`` for an empty interval or a cut-off before the
    predictions' end (no label could be mature).
    """
    if interval_end <= interval_start:
        raise MlobsInputError(f"empty data interval: start {interval_start} is not before end {interval_end}")
    cutoff = label_cutoff if label_cutoff is not None else interval_end
    wall = zone or interval_end.tzinfo
    assert wall is not None  # aware datetimes (checked by shift_back)
    start = shift_back(interval_start, label_delay, wall)
    end = shift_back(interval_end, label_delay, wall)
    if cutoff < end:
        raise MlobsInputError(
            f"label cut-off {cutoff.isoformat()} is before the end of the predictions' window "
            f"{end.isoformat()}; labels could not have arrived: raise label_delay or the cut-off"
        )
    arrivals = min(interval_start, cutoff)
    return PerformanceWindow(start, end, cutoff, arrivals)


# --- summaries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """How many of the window's predictions have a usable label.

    ``predictions``: in the window; ``labelled``: with a label at or before the cut-off; ``late``:
    whose only labels came after the cut-off; ``duplicate``: with more than one label by the
    cut-off (the ``duplicate_labels`` rule chose the winner); ``orphan_labels``: labels that
    arrived in the run's arrivals window for a prediction id the log does not have (``None`` when
    not counted, e.g. per segment).
    """

    predictions: int = 0
    labelled: int = 0
    late: int = 0
    duplicate: int = 0
    orphan_labels: int | None = None

    @property
    def coverage(self) -> float | None:
        """``labelled / predictions``; ``None`` for an empty window."""
        return self.labelled / self.predictions if self.predictions else None

    def __add__(self, other: Coverage) -> Coverage:
        orphans = (
            None
            if self.orphan_labels is None and other.orphan_labels is None
            else (self.orphan_labels or 0) + (other.orphan_labels or 0)
        )
        return Coverage(
            self.predictions + other.predictions,
            self.labelled + other.labelled,
            self.late + other.late,
            self.duplicate + other.duplicate,
            orphans,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the result's metrics."""
        return {
            "predictions": self.predictions,
            "labelled": self.labelled,
            "late_labels": self.late,
            "duplicate_labels": self.duplicate,
            "orphan_labels": self.orphan_labels,
            "label_coverage": self.coverage,
        }


def _add_tuples(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    if len(a) != len(b):
        raise MlobsInputError(f"cannot merge histograms of {len(a)} and {len(b)} bins")
    return tuple(int(x) + int(y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class ClassificationSummary:
    """Everything the classification metrics need, for one window (and optionally one segment).

    Labelled rows: the confusion counts; ``positives`` / ``negatives``: score histograms of the
    labelled positives and negatives over ``bins`` equal-width bins on [0, 1] (a score of exactly 1
    goes to the last bin); ``invalid_scores``: labelled rows with a NULL or out-of-range score;
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
        """Labelled predictions (the confusion table's total)."""
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
    whose prediction or label is NULL)."""

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


def _label_above(value: Any, other: Any) -> bool:
    """``value > other`` for the tie-break, a missing label (``None``) below any label."""
    return value is not None and (other is None or value > other)


def winning_labels(
    label_ids: ArrayLike,
    label_values: ArrayLike,
    label_times: ArrayLike,
    cutoff: Any,
    *,
    duplicate_labels: DuplicateLabels = "latest",
) -> tuple[dict[Any, Any], dict[Any, int], set[Any]]:
    """Labels by prediction id, the winner among the labels at or before ``cutoff`` chosen by
    ``duplicate_labels``: ``"latest"`` the latest label time, ``"earliest"`` the earliest (the first
    verdict; later corrections are ignored); ties at the same time go to the larger label under
    both rules. Also the number of labels by the cut-off per id, and the ids labelled only after it.

    Under ``"earliest"`` a label without a time (``None``) is ignored and a ``None`` label loses a
    tie, as in the SQL and in-memory joins under that rule.
    """
    rule = check_duplicate_labels(duplicate_labels)
    ids = np.asarray(label_ids, dtype=object)
    values = np.asarray(label_values, dtype=object)
    times = np.asarray(label_times, dtype=object)
    best: dict[Any, tuple[Any, Any]] = {}
    counts: dict[Any, int] = {}
    late: set[Any] = set()
    earliest = rule == "earliest"
    for i, v, t in zip(ids, values, times, strict=True):
        if earliest and t is None:
            continue
        if t > cutoff:
            late.add(i)
            continue
        counts[i] = counts.get(i, 0) + 1
        if i not in best:
            best[i] = (t, v)
        elif earliest:
            best_t, best_v = best[i]
            if t < best_t or (t == best_t and _label_above(v, best_v)):
                best[i] = (t, v)
        elif (t, v) > best[i]:
            best[i] = (t, v)
    return {i: tv[1] for i, tv in best.items()}, counts, late - set(best)


def latest_labels(
    label_ids: ArrayLike, label_values: ArrayLike, label_times: ArrayLike, cutoff: Any
) -> tuple[dict[Any, Any], dict[Any, int], set[Any]]:
    """Labels by prediction id, the latest label time at or before ``cutoff`` winning (ties: the
    larger label); also the number of labels by the cut-off per id, and the ids labelled only after it.
    (:func:`winning_labels` with the default rule.)"""
    return winning_labels(label_ids, label_values, label_times, cutoff)


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


def summarize_classification_arrays(
    labelled: ArrayLike,
    y: ArrayLike,
    predicted: ArrayLike,
    scores: ArrayLike,
    *,
    duplicate: ArrayLike | None = None,
    late: ArrayLike | None = None,
    bins: int = DEFAULT_BINS,
) -> ClassificationSummary:
    """The classification summary of one chunk of predictions, vectorised (no orphan count).

    One entry per prediction: ``labelled`` (has a label by the cut-off), ``y`` (the winning label is
    the positive class; ignored where not labelled), ``predicted`` (predicted positive), ``scores``
    (NaN for NULL), ``duplicate`` (more than one label by the cut-off), ``late`` (labelled only after
    the cut-off). Chunk summaries add up to the window's (the streaming join's building block).
    """
    has = np.asarray(labelled, dtype=bool)
    yy = np.asarray(y, dtype=bool) & has
    yhat = np.asarray(predicted, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    b = score_bin(s, bins)
    valid = b >= 0
    lab_pos, lab_neg = has & yy, has & ~yy
    terms = log_loss_terms(yy[has & valid], s[has & valid])
    conf = np.where(yhat, s, 1 - s)[valid]
    dup = np.asarray(duplicate, dtype=bool) if duplicate is not None else np.zeros(has.shape, bool)
    lt = np.asarray(late, dtype=bool) if late is not None else np.zeros(has.shape, bool)
    return ClassificationSummary(
        bins=bins,
        tp=int(np.sum(lab_pos & yhat)),
        fp=int(np.sum(lab_neg & yhat)),
        fn=int(np.sum(lab_pos & ~yhat)),
        tn=int(np.sum(lab_neg & ~yhat)),
        positives=tuple(int(c) for c in np.bincount(b[lab_pos & valid], minlength=bins)),
        negatives=tuple(int(c) for c in np.bincount(b[lab_neg & valid], minlength=bins)),
        invalid_scores=int(np.sum(has & ~valid)),
        log_loss_sum=float(terms.sum()),
        log_loss_sumsq=float(np.sum(terms * terms)),
        scored=int(valid.sum()),
        score_sum=float(s[valid].sum()),
        confidence_sum=float(conf.sum()),
        predicted_positive_all=int(yhat.sum()),
        scored_predicted_positive=tuple(int(c) for c in np.bincount(b[valid & yhat], minlength=bins)),
        scored_predicted_negative=tuple(int(c) for c in np.bincount(b[valid & ~yhat], minlength=bins)),
        coverage=Coverage(len(has), int(has.sum()), int(np.sum(lt & ~has)), int(np.sum(dup & has))),
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
    e = pred[ok] - yv[ok]
    yy = yv[ok]
    nz = yy != 0
    ape = np.abs(e[nz]) / np.abs(yy[nz])
    dup = np.asarray(duplicate, dtype=bool) if duplicate is not None else np.zeros(has.shape, bool)
    lt = np.asarray(late, dtype=bool) if late is not None else np.zeros(has.shape, bool)
    return RegressionSummary(
        count=int(ok.sum()),
        sum_abs_error=float(np.abs(e).sum()),
        sum_error=float(e.sum()),
        sum_sq_error=float(np.sum(e * e)),
        sum_quartic_error=float(np.sum(e**4)),
        sum_y=float(yy.sum()),
        sum_sq_y=float(np.sum(yy * yy)),
        sum_ape=float(ape.sum()),
        sum_sq_ape=float(np.sum(ape * ape)),
        nonzero_labels=int(nz.sum()),
        zero_labels=int((~nz).sum()),
        invalid=int(np.sum(has & ~ok)),
        coverage=Coverage(len(has), int(has.sum()), int(np.sum(lt & ~has)), int(np.sum(dup & has))),
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
    dup = np.asarray(duplicate, dtype=bool) if duplicate is not None else np.zeros(has.shape, bool)
    lt = np.asarray(late, dtype=bool) if late is not None else np.zeros(has.shape, bool)
    return MulticlassSummary.from_counts(
        counts,
        invalid=invalid,
        coverage=Coverage(len(has), int(has.sum()), int(np.sum(lt & ~has)), int(np.sum(dup & has))),
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


# --- metrics -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricValue:
    """One metric: ``value`` with its standard error ``se`` over ``n`` rows, or ``value=None`` with
    ``reason`` saying why it is undefined. ``estimate`` marks values inferred without labels."""

    name: str
    value: float | None
    se: float | None = None
    n: int = 0
    reason: str = ""
    estimate: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def low(self) -> float | None:
        """``value - 3 SE`` (``None`` when either is undefined)."""
        return None if self.value is None or self.se is None else self.value - BAND_SIGMAS * self.se

    @property
    def high(self) -> float | None:
        """``value + 3 SE``."""
        return None if self.value is None or self.se is None else self.value + BAND_SIGMAS * self.se

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the result's metrics."""
        out: dict[str, Any] = {
            "value": self.value,
            "se": self.se,
            "low": self.low,
            "high": self.high,
            "n": self.n,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.estimate:
            out["estimate"] = True
        out.update(self.extra)
        return out


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _metric(name: str, value: float, se: float | None, n: int, **extra: Any) -> MetricValue:
    """A defined metric; non-finite values become undefined (never an infinity in a result)."""
    if not math.isfinite(value):
        return MetricValue(name, None, None, n, "not finite")
    se_value = _finite_or_none(max(se, 0.0)) if se is not None else None
    return MetricValue(name, float(value), se_value, n, extra=extra)


def proportion(name: str, hits: int, total: int, undefined: str) -> MetricValue:
    """``hits / total`` with the binomial SE; undefined (``undefined`` as the reason) when ``total`` is 0."""
    if total <= 0:
        return MetricValue(name, None, None, 0, undefined)
    p = hits / total
    return _metric(name, p, math.sqrt(p * (1 - p) / total), total)


def f1_score(tp: int, fp: int, fn: int) -> MetricValue:
    """F1 with its delta-method SE (module docstring)."""
    denominator = 2 * tp + fp + fn
    if denominator == 0:
        return MetricValue("f1", None, None, 0, "no positive labels and no predicted positives")
    value = 2 * tp / denominator
    se = math.sqrt(4 * tp * (fp + fn) * (tp + fp + fn)) / denominator**2
    return _metric("f1", value, se, tp + fp + fn)


def balanced_accuracy(tp: int, fp: int, fn: int, tn: int) -> MetricValue:
    """``(recall + specificity) / 2`` with the SE of two independent binomials."""
    positives, negatives = tp + fn, fp + tn
    if positives == 0 or negatives == 0:
        return MetricValue(
            "balanced_accuracy", None, None, positives + negatives, _one_class_reason(positives, negatives)
        )
    r, t = tp / positives, tn / negatives
    se = math.sqrt(r * (1 - r) / positives + t * (1 - t) / negatives) / 2
    return _metric("balanced_accuracy", (r + t) / 2, se, positives + negatives)


def _one_class_reason(positives: int | float, negatives: int | float) -> str:
    if positives == 0 and negatives == 0:
        return "no labelled predictions with a score"
    return "only negative labels" if positives == 0 else "only positive labels"


def hanley_mcneil_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982) standard error of an ROC AUC."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(var, 0.0))


def roc_auc_binned(positives: Sequence[int], negatives: Sequence[int]) -> MetricValue:
    """ROC AUC from score histograms of positives and negatives over the same bins (module docstring)."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return MetricValue("roc_auc", None, None, int(n_pos + n_neg), _one_class_reason(n_pos, n_neg))
    below = np.cumsum(neg) - neg  # negatives in lower bins
    wins = float(np.sum(pos * below)) + 0.5 * float(np.sum(pos * neg))
    auc = wins / (n_pos * n_neg)
    bound = 0.5 * float(np.sum(pos * neg)) / (n_pos * n_neg)
    return _metric(
        "roc_auc",
        auc,
        hanley_mcneil_se(auc, n_pos, n_neg),
        int(n_pos + n_neg),
        binning_error_bound=bound,
    )


def average_precision_binned(positives: Sequence[int], negatives: Sequence[int]) -> MetricValue:
    """PR AUC as average precision over thresholds at the bin boundaries (module docstring)."""
    pos = np.asarray(positives, dtype=np.float64)[::-1]
    neg = np.asarray(negatives, dtype=np.float64)[::-1]
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0:
        return MetricValue("pr_auc", None, None, int(n_pos + n_neg), _one_class_reason(n_pos, n_neg))
    tp = np.cumsum(pos)
    predicted = tp + np.cumsum(neg)
    keep = pos > 0  # recall only changes where a bin holds positives
    precision = tp[keep] / predicted[keep]
    ap = float(np.sum(pos[keep] / n_pos * precision))
    return _metric("pr_auc", ap, math.sqrt(ap * (1 - ap) / n_pos), int(n_pos + n_neg))


def expected_calibration_error(
    positives: Sequence[int], negatives: Sequence[int], calibration_bins: int = ECE_BINS
) -> MetricValue:
    """ECE over ``calibration_bins`` equal-width bins, from the fine histograms (module docstring)."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    fine = len(pos)
    total = pos + neg
    m = float(total.sum())
    if m == 0:
        return MetricValue("ece", None, None, 0, "no labelled predictions with a score")
    midpoints = (np.arange(fine) + 0.5) / fine
    group = np.minimum((midpoints * calibration_bins).astype(np.int64), calibration_bins - 1)
    n_b = np.bincount(group, weights=total, minlength=calibration_bins)
    pos_b = np.bincount(group, weights=pos, minlength=calibration_bins)
    score_b = np.bincount(group, weights=total * midpoints, minlength=calibration_bins)
    filled = n_b > 0
    rate = pos_b[filled] / n_b[filled]
    mean_score = score_b[filled] / n_b[filled]
    weights = n_b[filled] / m
    ece = float(np.sum(weights * np.abs(mean_score - rate)))
    se = math.sqrt(float(np.sum(weights**2 * rate * (1 - rate) / n_b[filled])))
    return _metric("ece", ece, se, int(m))


def _mean_and_se(total: float, total_sq: float, n: int) -> tuple[float, float]:
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def _calibration_groups(bins: int, calibration_bins: int = ECE_BINS) -> NDArray[np.int64]:
    """The calibration bin of each fine score bin (by its midpoint)."""
    midpoints = (np.arange(bins) + 0.5) / bins
    return np.minimum((midpoints * calibration_bins).astype(np.int64), calibration_bins - 1)


def calibration_map(reference: ClassificationSummary, calibration_bins: int = ECE_BINS) -> tuple[float, ...]:
    """The positive rate observed in each of ``calibration_bins`` equal-width score bins of a
    labelled reference window; a bin without labelled rows gets its mean score midpoint (no
    correction). Used by the estimates (module docstring)."""
    group = _calibration_groups(reference.bins, calibration_bins)
    pos = np.bincount(group, weights=np.asarray(reference.positives, float), minlength=calibration_bins)
    total = pos + np.bincount(
        group, weights=np.asarray(reference.negatives, float), minlength=calibration_bins
    )
    identity = (np.arange(calibration_bins) + 0.5) / calibration_bins
    rates = np.where(total > 0, pos / np.maximum(total, 1.0), identity)
    return tuple(float(r) for r in rates)


def _estimates(s: ClassificationSummary, calibration: Sequence[float] | None) -> dict[str, MetricValue]:
    """Expected accuracy and positive rate from the scores (module docstring); their SE is left
    out: they are model-based, not sampled."""
    if s.scored <= 0:
        return {}
    if calibration is None:
        accuracy, positive_rate, extra = s.confidence_sum / s.scored, s.score_sum / s.scored, {}
    else:
        rates = np.asarray(calibration, dtype=np.float64)
        group = _calibration_groups(s.bins, len(rates))
        pred_pos = np.bincount(
            group, weights=np.asarray(s.scored_predicted_positive, float), minlength=len(rates)
        )
        pred_neg = np.bincount(
            group, weights=np.asarray(s.scored_predicted_negative, float), minlength=len(rates)
        )
        positive_rate = float(np.sum((pred_pos + pred_neg) * rates)) / s.scored
        accuracy = float(np.sum(pred_pos * rates + pred_neg * (1 - rates))) / s.scored
        extra = {"calibration": "reference"}
    return {
        "expected_accuracy": replace(
            _metric("expected_accuracy", accuracy, None, s.scored, **extra), estimate=True
        ),
        "expected_positive_rate": replace(
            _metric("expected_positive_rate", positive_rate, None, s.scored, **extra), estimate=True
        ),
    }


def classification_metrics(
    summary: ClassificationSummary, calibration: Sequence[float] | None = None
) -> dict[str, MetricValue]:
    """Every classification metric of ``summary`` (module docstring), plus the estimates
    (calibrated with ``calibration``, from :func:`calibration_map`, when given)."""
    s = summary
    n = s.labelled
    empty = "no labelled predictions"
    metrics = {
        "accuracy": proportion("accuracy", s.tp + s.tn, n, empty),
        "precision": proportion("precision", s.tp, s.tp + s.fp, "no predicted positives"),
        "recall": proportion("recall", s.tp, s.tp + s.fn, "no positive labels"),
        "f1": f1_score(s.tp, s.fp, s.fn),
        "specificity": proportion("specificity", s.tn, s.tn + s.fp, "no negative labels"),
        "balanced_accuracy": balanced_accuracy(s.tp, s.fp, s.fn, s.tn),
        "roc_auc": roc_auc_binned(s.positives, s.negatives),
        "pr_auc": average_precision_binned(s.positives, s.negatives),
        "ece": expected_calibration_error(s.positives, s.negatives),
        "positive_rate": proportion("positive_rate", s.tp + s.fp, n, empty),
        "prevalence": proportion("prevalence", s.tp + s.fn, n, empty),
    }
    scored_labelled = n - s.invalid_scores
    if scored_labelled > 0:
        mean, se = _mean_and_se(s.log_loss_sum, s.log_loss_sumsq, scored_labelled)
        metrics["log_loss"] = _metric("log_loss", mean, se, scored_labelled)
    else:
        metrics["log_loss"] = MetricValue("log_loss", None, None, 0, "no labelled predictions with a score")
    metrics.update(_estimates(s, calibration))
    return metrics


def regression_metrics(summary: RegressionSummary) -> dict[str, MetricValue]:
    """Every regression metric of ``summary`` (module docstring)."""
    s = summary
    n = s.count
    if n == 0:
        reason = "no labelled predictions"
        return {name: MetricValue(name, None, None, 0, reason) for name in REGRESSION_METRICS}
    mae, mae_se = _mean_and_se(s.sum_abs_error, s.sum_sq_error, n)
    bias, bias_se = _mean_and_se(s.sum_error, s.sum_sq_error, n)
    mse, mse_se = _mean_and_se(s.sum_sq_error, s.sum_quartic_error, n)
    rmse = math.sqrt(max(mse, 0.0))
    metrics = {
        "mae": _metric("mae", mae, mae_se, n),
        "bias": _metric("bias", bias, bias_se, n),
        "rmse": _metric("rmse", rmse, mse_se / (2 * rmse) if rmse > 0 else 0.0, n),
    }
    if s.nonzero_labels > 0:
        mape, mape_se = _mean_and_se(s.sum_ape, s.sum_sq_ape, s.nonzero_labels)
        metrics["mape"] = _metric("mape", mape, mape_se, s.nonzero_labels, zero_labels=s.zero_labels)
    else:
        metrics["mape"] = MetricValue(
            "mape", None, None, 0, f"all {s.zero_labels} labels are 0", extra={"zero_labels": s.zero_labels}
        )
    sst = s.sum_sq_y - s.sum_y * s.sum_y / n
    var_y = sst / n
    # sst is a difference of large sums: treat values below rounding noise as constant labels.
    if var_y <= 1e-12 * max(s.sum_sq_y / n, 1e-300):
        metrics["r2"] = MetricValue("r2", None, None, n, "the labels are constant")
    else:
        metrics["r2"] = _metric("r2", 1 - s.sum_sq_error / sst, mse_se / var_y, n)
    return metrics


def _mean_of(name: str, parts: Sequence[MetricValue], weights: Sequence[float] | None, n: int) -> MetricValue:
    """The (weighted) mean of defined per-class metrics, with ``sqrt(sum (w_k SE_k)^2)`` as its SE
    (per-class errors treated as independent: approximate). Undefined classes are left out and named."""
    defined = [m for m in parts if m.value is not None]
    left_out = [m.name for m in parts if m.value is None]
    extra: dict[str, Any] = {"classes": len(defined)}
    if left_out:
        extra["undefined"] = left_out
    if not defined:
        return MetricValue(name, None, None, n, "no class with a defined value", extra=extra)
    if weights is None:
        w = np.full(len(defined), 1.0 / len(defined))
    else:
        raw = np.array([wt for m, wt in zip(parts, weights, strict=True) if m.value is not None], dtype=float)
        w = raw / raw.sum() if raw.sum() > 0 else np.full(len(defined), 1.0 / len(defined))
    value = float(np.sum(w * np.array([m.value for m in defined], dtype=float)))
    se = math.sqrt(float(np.sum((w * np.array([m.se or 0.0 for m in defined])) ** 2)))
    return _metric(name, value, se, n, **extra)


def multiclass_metrics(summary: MulticlassSummary) -> dict[str, MetricValue]:
    """Multi-class metrics from the confusion matrix ``m`` (rows: label, columns: predicted class).

    accuracy ``trace(m) / n`` (binomial SE). Per class ``k`` (the one-vs-rest counts
    ``TP = m[k, k]``, ``FP = col_k - TP``, ``FN = row_k - TP``): ``precision[k] = TP / col_k``,
    undefined ("class never predicted") when ``col_k = 0``; ``recall[k] = TP / row_k``, undefined
    ("no labels of class") when ``row_k = 0``; ``f1[k] = 2 TP / (row_k + col_k)``, with the binary
    SEs. macro_f1: the mean of ``f1[k]`` over the classes seen as a label or a prediction (so a class
    never predicted but labelled counts with F1 0, as in scikit-learn); weighted_f1: weighted by
    ``row_k`` (support); macro_precision / macro_recall: the mean over the classes whose value is
    defined (classes never predicted are left out of macro_precision and named in ``undefined``;
    scikit-learn would count them as 0 with a warning). SE of the means:
    ``sqrt(sum (w_k SE_k)^2)``, treating classes as independent (approximate).
    """
    classes, m = summary.matrix()
    n = int(m.sum())
    if n == 0:
        reason = "no labelled predictions"
        return {name: MetricValue(name, None, None, 0, reason) for name in MULTICLASS_METRICS}
    rows, cols, diag = m.sum(axis=1), m.sum(axis=0), np.diag(m)
    metrics: dict[str, MetricValue] = {
        "accuracy": proportion("accuracy", int(diag.sum()), n, "no labelled predictions")
    }
    precisions, recalls, f1s = [], [], []
    for k, name in enumerate(classes):
        tp, col, row = int(diag[k]), int(cols[k]), int(rows[k])
        precisions.append(proportion(f"precision[{name}]", tp, col, f"class {name!r} never predicted"))
        recalls.append(proportion(f"recall[{name}]", tp, row, f"no labels of class {name!r}"))
        f1s.append(replace(f1_score(tp, col - tp, row - tp), name=f"f1[{name}]"))
    metrics["macro_f1"] = _mean_of("macro_f1", f1s, None, n)
    metrics["weighted_f1"] = _mean_of("weighted_f1", f1s, [float(r) for r in rows], n)
    metrics["macro_precision"] = _mean_of("macro_precision", precisions, None, n)
    metrics["macro_recall"] = _mean_of("macro_recall", recalls, None, n)
    for part in (*precisions, *recalls, *f1s):
        metrics[part.name] = part
    return metrics


def compute_metrics(summary: Summary, calibration: Sequence[float] | None = None) -> dict[str, MetricValue]:
    """The metrics of a classification or regression summary (``calibration`` for the estimates of
    a binary classifier)."""
    if isinstance(summary, ClassificationSummary):
        return classification_metrics(summary, calibration)
    if isinstance(summary, MulticlassSummary):
        return multiclass_metrics(summary)
    return regression_metrics(summary)


# --- judgement ---------------------------------------------------------------------------------------


def drop_of(metric: str, value: float, baseline: float) -> float:
    """The fall from ``baseline`` to ``value`` in the metric's units, positive when worse."""
    if metric in ABSOLUTE:
        return abs(value) - abs(baseline)
    if metric in LOWER_IS_BETTER:
        return value - baseline
    return baseline - value


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.1%}" if metric in HIGHER_IS_BETTER - {"r2"} or metric in DESCRIPTIVE else f"{value:.4g}"


@dataclass(frozen=True)
class Baseline:
    """A metric's baseline value, with its standard error when it was measured on a reference
    window (``source="reference"``) rather than given."""

    value: float
    se: float | None = None
    source: str = "given"


def _judge_metric(
    name: str, metric: MetricValue, settings: PerformanceSettings, subject: str, base: Baseline | None
) -> tuple[Finding, float | None]:
    """One metric against its baseline: the finding and the drop."""
    baseline = base.value if base is not None else None
    if metric.value is None:
        return Finding(
            subject, name, Status.SKIPPED, None, baseline, f"{name} undefined: {metric.reason}"
        ), None
    if base is None or baseline is None:
        return Finding(subject, name, Status.PASS, metric.value, None, "no baseline"), None
    drop = drop_of(name, metric.value, baseline)
    levels = settings.levels_for(name)
    se = math.hypot(metric.se or 0.0, base.se or 0.0)
    noise = settings.sigma * se
    words = f"{name} {_fmt(name, metric.value)} vs baseline {_fmt(name, baseline)} (drop {drop:+.3g}, SE {se:.2g})"
    if levels is None:
        return Finding(subject, name, Status.PASS, metric.value, baseline, words + "; no max_drop"), drop
    warn_at, fail_at = levels.absolute(baseline)
    status = Status.PASS
    reason = words
    if drop > fail_at and drop > noise:
        status, reason = Status.FAIL, f"{words} > {fail_at:.3g}"
    elif drop > warn_at and drop > noise:
        status, reason = Status.WARN, f"{words} > {warn_at:.3g}"
    elif drop > warn_at:
        reason = f"{words}: within {settings.sigma:g} SE of the baseline, not a breach"
    return Finding(subject, name, status, metric.value, fail_at, reason), drop


def judge_performance(
    summary: Summary,
    settings: PerformanceSettings,
    *,
    dataset: str,
    window: PerformanceWindow | None = None,
    segments: Mapping[str, Summary] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    reference: Summary | None = None,
    reference_window: tuple[datetime, datetime] | None = None,
) -> CheckResult:
    """Judge one window's summary (and optionally its segments) against the baselines.

    ``reference``: the summary of a labelled reference window (``reference_window``, reported). It
    gives the baseline of the main metric and of every metric with its own ``max_drop`` that has no
    given value (a given value wins), and calibrates the estimates of a binary classifier
    (module docstring). A reference without labelled rows gives no baseline (and says so).

    ``skipped`` when the window is empty or label coverage is below ``min_label_coverage`` (the
    estimates are still reported); otherwise the worst of the baseline metrics' findings decides.
    Segment findings (at least ``min_segment_labels`` labelled rows) are capped at ``warn``; the
    worst ``worst_segments`` by drop of the main metric are named in the summary. The metrics hold
    ``metric``, ``value``, ``baseline_value``, ``drop`` and ``label_coverage`` (read by the
    retraining gate and the notifications), the coverage counts, and every metric with its SE band.
    """
    baselines: dict[str, Baseline] = {k: Baseline(v) for k, v in settings.baseline.items()}
    calibration: tuple[float, ...] | None = None
    reference_notes: list[str] = []
    reference_out: dict[str, Any] | None = None
    if reference is not None:
        ref_metrics = compute_metrics(reference)
        for name in dict.fromkeys([settings.metric, *settings.max_drop]):
            ref = ref_metrics.get(name)
            if name not in baselines and ref is not None and ref.value is not None:
                baselines[name] = Baseline(ref.value, ref.se, "reference")
        ref_labelled = reference.coverage.labelled
        if isinstance(reference, ClassificationSummary) and reference.labelled - reference.invalid_scores > 0:
            calibration = calibration_map(reference)
        if ref_labelled == 0:
            reference_notes.append("the reference window has no labelled predictions: no baseline from it")
        reference_out = {
            "window": [t.isoformat() for t in reference_window] if reference_window else None,
            "labelled": ref_labelled,
            "predictions": reference.coverage.predictions,
            "label_coverage": reference.coverage.coverage,
            "metrics": {name: ref_metrics[name].to_dict() for name in baselines if name in ref_metrics},
        }
    metrics = compute_metrics(summary, calibration)
    coverage = summary.coverage
    main = settings.metric
    main_metric = metrics[main]
    main_base = baselines.get(main)
    out: dict[str, Any] = {
        "metric": main,
        "value": main_metric.value,
        "baseline_value": main_base.value if main_base else None,
        "baseline_se": main_base.se if main_base else None,
        "baseline_source": main_base.source if main_base else None,
        "drop": None,
        "se": main_metric.se,
        "band": [main_metric.low, main_metric.high],
        "label_coverage": coverage.coverage,
        "task": settings.task,
        **coverage.to_dict(),
        "metrics": {name: m.to_dict() for name, m in metrics.items()},
    }
    if window is not None:
        out["prediction_window"] = [window.prediction_start.isoformat(), window.prediction_end.isoformat()]
        out["label_cutoff"] = window.label_cutoff.isoformat()
    if reference_out is not None:
        out["reference"] = reference_out
    label_notes = reference_notes + _label_notes(coverage, settings.duplicate_labels)
    if isinstance(summary, ClassificationSummary) and summary.invalid_scores:
        label_notes.append(f"{summary.invalid_scores} labelled predictions with no valid score")
    if isinstance(summary, MulticlassSummary) and summary.invalid:
        label_notes.append(f"{summary.invalid} labelled predictions with no label or predicted class")
    if isinstance(summary, RegressionSummary) and summary.zero_labels:
        label_notes.append(f"{summary.zero_labels} labels are 0 (left out of MAPE)")
    notes = ("; " + "; ".join(label_notes)) if label_notes else ""

    def result(status: Status, summary_text: str, findings: Sequence[Finding]) -> CheckResult:
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=status,
            summary=summary_text + notes,
            window_start=window_start,
            window_end=window_end,
            metrics=out,
            findings=tuple(findings),
        )

    if coverage.predictions == 0:
        return result(
            Status.SKIPPED,
            f"{dataset}: no predictions in the window",
            [Finding("window", "predictions", Status.SKIPPED, 0, None, "no predictions in the window")],
        )
    cov = coverage.coverage or 0.0
    if cov < settings.min_label_coverage:
        estimates = [
            f"{m.name.replace('_', ' ')} {_fmt(m.name, m.value)}"
            + (
                f" (baseline {_fmt(main, main_base.value)})"
                if m.name == f"expected_{main}" and main_base is not None
                else ""
            )
            for m in metrics.values()
            if m.estimate and m.value is not None
        ]
        how = " calibrated on the reference window" if calibration is not None else ""
        est = f"; estimated from scores{how}: {', '.join(estimates)}" if estimates else ""
        reason = f"labels not mature: {cov:.0%} coverage (minimum {settings.min_label_coverage:.0%})"
        return result(
            Status.SKIPPED,
            f"{dataset}: {reason}, {coverage.labelled} of {coverage.predictions} predictions labelled{est}",
            [Finding("labels", "label_coverage", Status.SKIPPED, cov, settings.min_label_coverage, reason)],
        )

    findings: list[Finding] = []
    main_finding, main_drop = _judge_metric(main, main_metric, settings, "model", main_base)
    out["drop"] = main_drop
    findings.append(main_finding)
    for name, other in baselines.items():
        if name != main:
            finding, _ = _judge_metric(name, metrics[name], settings, "model", other)
            findings.append(finding)
    status = worst((f.status for f in findings if f.status is not Status.SKIPPED), Status.PASS)
    if main_metric.value is None:
        status = Status.SKIPPED if status is Status.PASS else status

    named: list[str] = []
    if segments:
        seg_rows: list[dict[str, Any]] = []
        for segment, seg_summary in segments.items():
            seg_metrics = compute_metrics(seg_summary)
            labelled = seg_summary.coverage.labelled
            seg_metric = seg_metrics[main]
            row: dict[str, Any] = {
                "segment": segment,
                "value": seg_metric.value,
                "se": seg_metric.se,
                "labelled": labelled,
                "label_coverage": seg_summary.coverage.coverage,
                "drop": None,
            }
            if labelled >= settings.min_segment_labels and seg_metric.value is not None:
                finding, drop = _judge_metric(main, seg_metric, settings, f"segment:{segment}", main_base)
                row["drop"] = drop
                if finding.status is Status.FAIL:
                    finding = replace(finding, status=Status.WARN)
                findings.append(finding)
                if finding.status is Status.WARN:
                    named.append(segment)
            seg_rows.append(row)
        seg_rows.sort(key=lambda r: -(r["drop"] if r["drop"] is not None else -math.inf))
        out["segments"] = seg_rows
        out["worst_segments"] = [r["segment"] for r in seg_rows if r["drop"] is not None][
            : settings.worst_segments
        ]
        if named:
            status = worst([status, Status.WARN])

    base = main_base.value if main_base else None
    head = f"{dataset}: {main} {_fmt(main, main_metric.value)}"
    if main_metric.value is None:
        head += f" ({main_metric.reason})"
    elif main_metric.se is not None:
        head += f" ± {3 * main_metric.se:.2g} (3 SE)"
    if base is not None and main_drop is not None:
        head += f" vs baseline {_fmt(main, base)}"
        if main_base is not None and main_base.source == "reference":
            head += " (reference window)"
    head += f", {coverage.labelled} of {coverage.predictions} predictions labelled ({cov:.0%})"
    bad = [f for f in findings if f.status in (Status.WARN, Status.FAIL) and f.subject == "model"]
    if bad:
        head += ": " + "; ".join(f.reason for f in bad)
    if named:
        ranked = [s for s in out["worst_segments"] if s in named] or named
        head += f"; worst segments: {', '.join(ranked[: settings.worst_segments])}"
    return result(status, head, findings)


def _label_notes(coverage: Coverage, duplicate_labels: DuplicateLabels = "latest") -> list[str]:
    notes = []
    if coverage.orphan_labels:
        notes.append(f"{coverage.orphan_labels} labels for unknown prediction ids")
    if coverage.duplicate:
        notes.append(f"{coverage.duplicate} predictions with duplicate labels ({duplicate_labels} kept)")
    if coverage.late:
        notes.append(f"{coverage.late} labels arrived after the cut-off (not counted)")
    return notes
