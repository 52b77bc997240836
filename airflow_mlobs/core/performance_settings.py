"""How a performance check judges: its name, metric names, drop levels and
:class:`PerformanceSettings`.

Light on purpose (the standard library only): operators validate these in the constructor, at DAG
parse time, and must not pay for numpy there. The windows, summaries, metrics and judgement are in
the package :mod:`airflow_mlobs.core.performance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CHECK = "performance"
DEFAULT_BINS = 1000

Task = Literal["classification", "regression", "multiclass"]
#: Which of a prediction's labels by the cut-off wins (module docstring, "Windows and maturity").
DuplicateLabels = Literal["latest", "earliest"]

#: Metrics where a larger value is better; every other metric is a loss or an error.
HIGHER_IS_BETTER = frozenset(
    {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "specificity",
        "balanced_accuracy",
        "roc_auc",
        "pr_auc",
        "r2",
        "macro_f1",
        "weighted_f1",
        "macro_precision",
        "macro_recall",
    }
)
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "mae", "rmse", "mape"})
#: Metrics judged by magnitude (a bias of -0.3 is as bad as +0.3).
ABSOLUTE = frozenset({"bias"})
#: Reported but not a quality (no direction): cannot carry a baseline.
DESCRIPTIVE = frozenset({"positive_rate", "prevalence", "expected_accuracy", "expected_positive_rate"})
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "specificity",
    "balanced_accuracy",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "ece",
    "positive_rate",
    "prevalence",
)
REGRESSION_METRICS = ("mae", "rmse", "mape", "bias", "r2")
#: Multi-class metrics (per-class ``precision[c]``, ``recall[c]``, ``f1[c]`` are reported too).
MULTICLASS_METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")
#: Rows per chunk of the in-memory join (:mod:`airflow_mlobs.sources.performance_frame`); here so
#: the operator's default needs no pandas at parse time.
DEFAULT_CHUNKSIZE = 50_000


def check_duplicate_labels(value: Any) -> DuplicateLabels:
    """``value`` if it names a duplicate-label rule; ``ValueError`` naming the choices otherwise."""
    if isinstance(value, str) and value == "latest":
        return "latest"
    if isinstance(value, str) and value == "earliest":
        return "earliest"
    raise ValueError(f"duplicate_labels must be 'latest' or 'earliest', got {value!r}")


@dataclass(frozen=True)
class DropLevels:
    """Warn and fail levels of a metric's drop (absolute units, or fractions of ``|baseline|`` when
    ``relative``)."""

    warn: float
    fail: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not (0 <= self.warn <= self.fail) or not math.isfinite(self.fail):
            raise ValueError(
                f"max_drop levels must satisfy 0 <= warn <= fail (finite), got {self.warn}, {self.fail}"
            )

    def absolute(self, baseline: float) -> tuple[float, float]:
        """The levels in the metric's units."""
        scale = abs(baseline) if self.relative else 1.0
        return self.warn * scale, self.fail * scale


@dataclass(frozen=True)
class PerformanceSettings:
    """How to judge: the main ``metric``, ``baseline`` values per metric, drop levels per metric
    (``max_drop``; the main metric's also applies to others without their own), ``sigma``,
    ``min_label_coverage``, segment reporting, and the ``duplicate_labels`` rule the summaries were
    gathered with (named in the result's note on duplicates); ``label_column`` (named in the notes
    on NULL labels)."""

    task: Task = "classification"
    metric: str = "accuracy"
    baseline: Mapping[str, float] = field(default_factory=dict)
    max_drop: Mapping[str, DropLevels] = field(default_factory=dict)
    sigma: float = 2.0
    min_label_coverage: float = 0.5
    min_segment_labels: int = 30
    worst_segments: int = 3
    duplicate_labels: DuplicateLabels = "latest"
    label_column: str = "label"

    def __post_init__(self) -> None:
        known = {
            "classification": CLASSIFICATION_METRICS,
            "regression": REGRESSION_METRICS,
            "multiclass": MULTICLASS_METRICS,
        }[self.task]
        for name in [self.metric, *self.baseline, *self.max_drop]:
            if name not in known or name in DESCRIPTIVE:
                judged = [m for m in known if m not in DESCRIPTIVE]
                raise ValueError(f"unknown {self.task} metric {name!r}; use one of {', '.join(judged)}")
        if not 0 <= self.min_label_coverage <= 1:
            raise ValueError(f"min_label_coverage must be within [0, 1], got {self.min_label_coverage}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma}")
        if not (isinstance(self.min_segment_labels, int) and self.min_segment_labels >= 1):
            raise ValueError(f"min_segment_labels must be an integer >= 1, got {self.min_segment_labels!r}")
        check_duplicate_labels(self.duplicate_labels)

    def levels_for(self, metric: str) -> DropLevels | None:
        """This metric's drop levels; the main metric's when it has none of its own."""
        return self.max_drop.get(metric) or self.max_drop.get(self.metric)


def parse_max_drop(value: Any, *, relative: bool = False, name: str = "max_drop") -> DropLevels:
    """A :class:`DropLevels` from a number (warn = fail), a ``(warn, fail)`` pair, or text such as
    ``"5%"`` (relative)."""
    if isinstance(value, DropLevels):
        return value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            level = float(value.strip()[:-1]) / 100
        except ValueError as exc:
            raise ValueError(f"{name}: expected a number, (warn, fail) or '5%', got {value!r}") from exc
        return _levels(name, level, level, True)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _levels(name, float(value), float(value), relative)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        warn, fail = value
        if isinstance(warn, str) or isinstance(fail, str):
            w, f = parse_max_drop(warn, name=name), parse_max_drop(fail, name=name)
            return DropLevels(w.warn, f.fail, w.relative or f.relative)
        try:
            return _levels(name, float(warn), float(fail), relative)
        except TypeError as exc:
            raise ValueError(f"{name}: expected a number, (warn, fail) or '5%', got {value!r}") from exc
    raise ValueError(f"{name}: expected a number, (warn, fail) or '5%', got {value!r}")


def _levels(name: str, warn: float, fail: float, relative: bool) -> DropLevels:
    """:class:`DropLevels`, its ``ValueError`` naming the argument ``name``."""
    try:
        return DropLevels(warn, fail, relative)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
