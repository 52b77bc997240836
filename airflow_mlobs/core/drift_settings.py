"""How a drift check judges: its name, methods, thresholds and :class:`DriftSettings`.

Light on purpose (the standard library only): operators build their settings in the constructor,
at DAG parse time, and must not pay for numpy and scipy there.
The judgement that uses them is :mod:`airflow_mlobs.core.drift`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from airflow_mlobs.core.profile import Baseline, ColumnSpec
    from airflow_mlobs.core.stats import Correction

CHECK = "drift"

#: Fewer rows than this in a window and the check is ``skipped`` (a verdict on a handful of rows is
#: noise: one row of age 150 against an 18..80 reference is not evidence of drift, and at 30 rows a
#: two-sample KS test can detect only a shift of about a third of the distribution's mass). Also the
#: fewest finite (or non-NULL) values a column needs in the window for its distribution to be judged.
DEFAULT_MIN_ROWS = 30
CORRECTION_NAMES: tuple[str, ...] = ("none", "bonferroni", "bh", "by")

Method = Literal["wasserstein", "psi", "js", "hellinger", "ks"]
METHODS: tuple[str, ...] = ("wasserstein", "psi", "js", "hellinger", "ks")


@dataclass(frozen=True)
class Threshold:
    """Warn and fail levels of one method's effect size."""

    warn: float
    fail: float

    def __post_init__(self) -> None:
        for label, value in (("warn", self.warn), ("fail", self.fail)):
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"threshold {label} must be a number >= 0, got {value!r}")
        if not (0 <= self.warn <= self.fail):
            raise ValueError(
                f"threshold levels must satisfy 0 <= warn <= fail, got warn={self.warn}, fail={self.fail}"
            )


#: Default levels per method. Wasserstein is in reference standard deviations; the others are the
#: statistics' own units. PSI's are the industry's 0.1 / 0.25 rule of thumb.
DEFAULT_THRESHOLDS: Mapping[str, Threshold] = {
    "wasserstein": Threshold(warn=0.05, fail=0.05),
    "psi": Threshold(warn=0.1, fail=0.25),
    "js": Threshold(warn=0.03, fail=0.03),
    "hellinger": Threshold(warn=0.03, fail=0.03),
    "ks": Threshold(warn=0.05, fail=0.1),
}
MISSING_RATE_THRESHOLD = Threshold(warn=0.02, fail=0.05)
#: A missing (or non-finite) rate that at least doubles and rises by at least this much fails
#: (1% -> 5% fails, as does 0% -> 1%; 10% -> 11% does not), when its test is significant.
RATE_MIN_RISE = 0.01
#: Values in categories the reference never saw, beyond the share its own rare categories predict
#: (the Good-Turing excess, :func:`airflow_mlobs.core.stats.unseen_test`), fail at 0.5% of the
#: window when the test agrees. One level: a warn below it would sit inside the noise of a
#: 500-level Zipf column at 10k rows (the excess's standard deviation there is about 0.13%).
UNSEEN_SHARE_THRESHOLD = Threshold(warn=0.005, fail=0.005)


@dataclass(frozen=True)
class DriftSettings:
    """How to judge. Defaults are chosen so that, with no drift, a dataset of production-shaped
    columns (heavy tails, Zipf categoricals over 500 and 5,000 levels, ids, NULLs) raises an alarm
    in at most 1% of runs at 10k, 100k and 1M rows, while a 0.1-sigma mean shift, a 10% scale
    change (normal, exponential), the top 2% of values tripled, a category mix change of JS 0.05,
    a new category with 1% share and a missing rate of 1% -> 5% are caught in at least 99% of
    10k-row windows (tests/statistical/test_shapes.py; the README lists the weaker shapes)."""

    numeric_method: Method = "wasserstein"
    categorical_method: Method = "js"
    methods: Mapping[str, Method] = field(default_factory=dict)
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    #: The adjusted p-value every finding needs. 0.01, not 0.05: under Benjamini-Hochberg a family
    #: with no drift at all rejects something in about ``alpha`` of runs, and at 10k-row windows
    #: the effect sizes of many-level and heavy-tailed columns reach their levels by chance often
    #: enough that 0.05 alarmed in 1% of no-drift dataset runs (measured, tests/statistical/test_shapes.py).
    alpha: float = 0.01
    correction: Correction = "bh"
    drift_share: float = 0.5
    warn_share: float | None = None
    importances: Mapping[str, float] = field(default_factory=dict)
    missing_rate: Threshold = MISSING_RATE_THRESHOLD
    unseen_share: Threshold = UNSEEN_SHARE_THRESHOLD
    use_calibrated_thresholds: bool = True
    min_rows: int = DEFAULT_MIN_ROWS

    def __post_init__(self) -> None:
        """Check every argument here, so operators (at DAG parse time) and the CLI get the same
        errors: a ``ValueError`` naming the argument and the allowed values."""
        for label, method in (
            ("numeric_method", self.numeric_method),
            ("categorical_method", self.categorical_method),
        ):
            if method not in METHODS:
                raise ValueError(f"{label} must be one of {', '.join(METHODS)}, got {method!r}")
        for column, method in self.methods.items():
            if method not in METHODS:
                raise ValueError(f"methods[{column!r}] must be one of {', '.join(METHODS)}, got {method!r}")
        for column, threshold in self.thresholds.items():
            if not isinstance(threshold, Threshold):
                raise ValueError(f"thresholds[{column!r}] must be a Threshold(warn, fail), got {threshold!r}")
        for label, threshold in (("missing_rate", self.missing_rate), ("unseen_share", self.unseen_share)):
            if not isinstance(threshold, Threshold):
                raise ValueError(f"{label} must be a Threshold(warn, fail), got {threshold!r}")
        if self.correction not in CORRECTION_NAMES:
            raise ValueError(
                f"correction must be one of {', '.join(CORRECTION_NAMES)}, got {self.correction!r}"
            )
        if not _is_number(self.alpha) or not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be a number in (0, 1), got {self.alpha!r}")
        if not _is_number(self.drift_share) or not 0 < self.drift_share <= 1:
            raise ValueError(
                f"drift_share must be a number in (0, 1] (the share of judged columns that fails the "
                f"dataset), got {self.drift_share!r}"
            )
        if self.warn_share is not None and (
            not _is_number(self.warn_share) or not 0 < self.warn_share <= self.drift_share
        ):
            raise ValueError(
                f"warn_share must be None or a number in (0, drift_share={self.drift_share}], got {self.warn_share!r}"
            )
        for column, weight in self.importances.items():
            if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"importances[{column!r}] must be a finite number >= 0, got {weight!r}")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise ValueError(f"min_rows must be an integer >= 1, got {self.min_rows!r}")

    def method_for(self, spec: ColumnSpec) -> str:
        """The method judging ``spec``: a per-column override or the kind's default."""
        return self.methods.get(spec.name) or (
            self.numeric_method if spec.kind == "numeric" else self.categorical_method
        )

    def threshold_for(self, column: str, method: str, baseline: Baseline) -> Threshold:
        """Per-column override, else a calibrated threshold from the baseline, else the default."""
        if column in self.thresholds:
            return self.thresholds[column]
        if (
            self.use_calibrated_thresholds
            and column in baseline.thresholds
            and (baseline.calibration.get("methods") or {}).get(column) == method
        ):
            level = float(baseline.thresholds[column])
            return Threshold(warn=level, fail=level)
        return DEFAULT_THRESHOLDS[method]


def _is_number(value: object) -> bool:
    """A real number that is not a bool and not NaN ("half", True and NaN are not)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and not math.isnan(value)
