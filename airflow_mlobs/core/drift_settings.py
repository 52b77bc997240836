"""How a drift check judges: its name, methods, thresholds and :class:`DriftSettings`.

Light on purpose (the standard library only): operators build their settings in the constructor,
at DAG parse time, and must not pay for numpy and scipy there.
The judgement that uses them is :mod:`airflow_mlobs.core.drift`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from airflow_mlobs.core.profile import Baseline, ColumnSpec
    from airflow_mlobs.core.stats import Correction

CHECK = "drift"

Method = Literal["wasserstein", "psi", "js", "hellinger", "ks"]
METHODS: tuple[str, ...] = ("wasserstein", "psi", "js", "hellinger", "ks")


@dataclass(frozen=True)
class Threshold:
    """Warn and fail levels of one method's effect size."""

    warn: float
    fail: float

    def __post_init__(self) -> None:
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
#: A new category holding 0.5% of the window fails on its own (measured: at a fail level of 1%, a
#: new category with a true 1% share failed this check in only 46% of 10k-row windows).
UNSEEN_SHARE_THRESHOLD = Threshold(warn=0.002, fail=0.005)


@dataclass(frozen=True)
class DriftSettings:
    """How to judge. Defaults are chosen so that, with no drift, 25 columns at 100k rows raise a
    dataset alarm far less than 1% of the time, while a 0.1-sigma mean shift, a 10% scale change, a
    category mix change of JS 0.05 or a new category with 1% share are caught at 10k rows."""

    numeric_method: Method = "wasserstein"
    categorical_method: Method = "js"
    methods: Mapping[str, Method] = field(default_factory=dict)
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    alpha: float = 0.05
    correction: Correction = "bh"
    drift_share: float = 0.5
    warn_share: float | None = None
    importances: Mapping[str, float] = field(default_factory=dict)
    missing_rate: Threshold = MISSING_RATE_THRESHOLD
    unseen_share: Threshold = UNSEEN_SHARE_THRESHOLD
    use_calibrated_thresholds: bool = True

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
