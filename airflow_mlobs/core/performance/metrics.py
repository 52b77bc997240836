"""The metrics of the delayed-label performance check, each with its standard error, computed
from a window's summary (:mod:`airflow_mlobs.core.performance.summary`).

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

Rows whose score is NULL, NaN, infinite or outside [0, 1] are left out of the score metrics
(``invalid_scores``); when the predicted class comes from the score they are left out of the
confusion counts and every metric too (``unscored``), never counted as predicted negative.

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

Pure: no Airflow, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from airflow_mlobs.core.performance.summary import (
    ClassificationSummary,
    MulticlassSummary,
    RegressionSummary,
    Summary,
)
from airflow_mlobs.core.performance_settings import MULTICLASS_METRICS, REGRESSION_METRICS

#: Equal-width score bins of the expected calibration error and of the calibration map.
ECE_BINS = 10
#: A metric's band is its value ``± BAND_SIGMAS`` standard errors.
BAND_SIGMAS = 3.0


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
        return MetricValue(name, None, None, n, "not finite (the sums overflow the double range)")
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
    scored_labelled = n - (s.invalid_scores - s.unscored)
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
    if s.huge:
        # Errors or labels beyond HUGE: their powers were left out, so every statistic built on
        # them is undefined ("not finite"), never an infinity.
        s = replace(s, sum_sq_error=math.inf, sum_quartic_error=math.inf, sum_sq_y=math.inf)
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
    if not math.isfinite(sst):
        metrics["r2"] = MetricValue("r2", None, None, n, "not finite (the sums overflow the double range)")
    elif var_y <= 1e-12 * max(s.sum_sq_y / n, 1e-300):
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
