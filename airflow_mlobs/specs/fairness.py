"""The fairness check as a plain spec: per-group selection rates (from predictions alone) and, once
labels mature, true/false positive rates and accuracy, gathered through the performance check's
prediction-label join (:mod:`airflow_mlobs.sources.fairness_sql`) and judged by
:func:`airflow_mlobs.core.fairness.judge_fairness`.

The table and column defaults are the prediction recorder's
(:data:`airflow_mlobs.recorder.layout.PERFORMANCE_DEFAULTS`), so on the recorder's tables only the
group columns (and the score ``threshold``, or ``predicted_column``) need giving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.fairness import (
    CHECK,
    RATIO_RULES,
    FairnessSummary,
    FairnessThresholds,
    judge_fairness,
)
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.specs.base import Connector, checked_input, connector_or_default, window_bounds

if TYPE_CHECKING:
    from airflow_mlobs.sources.performance_sql import PerformanceQuery

#: The prediction recorder's layout (:data:`airflow_mlobs.recorder.layout.PERFORMANCE_DEFAULTS`,
#: which specs/ may not import; tests/unit/test_fairness.py holds them equal).
_D = {
    "predictions_table": "mlobs_prediction_log",
    "labels_table": "mlobs_labels",
    "id_column": "prediction_id",
    "prediction_time_column": "predicted_at",
    "label_column": "label",
    "label_time_column": "labelled_at",
    "score_column": "score",
}


@dataclass(frozen=True)
class FairnessSpec:
    """What to gather and the levels, as plain values. ``group_columns``: the attributes whose
    groups are compared (not ``sensitive_columns``, which means "never reveal these values").
    ``reference_window``: ``(start, end)`` of a period whose gaps are the baseline of bias creep."""

    conn_id: str
    group_columns: tuple[str, ...]
    predictions_table: str = _D["predictions_table"]
    labels_table: str = _D["labels_table"]
    id_column: str = _D["id_column"]
    prediction_time_column: str = _D["prediction_time_column"]
    label_column: str = _D["label_column"]
    label_time_column: str = _D["label_time_column"]
    score_column: str | None = _D["score_column"]
    predicted_column: str | None = None
    threshold: float = 0.5
    positive_label: Any = 1
    model_version_column: str | None = None
    model_version: str | None = None
    reference_window: tuple[datetime | str, ...] | None = None
    warn_ratio: float | None = 0.8
    fail_ratio: float | None = None
    ratio_rule: str = "interval"
    warn_growth: float | None = 0.05
    fail_growth: float | None = 0.10
    min_group_size: int = 30
    dataset: str | None = None

    def validate(self, task_id: str = "") -> None:
        """``ValueError`` naming the task for settings out of range."""
        where = f"{task_id}: " if task_id else ""
        if not self.group_columns:
            raise ValueError(f"{where}give group_columns (the attributes whose groups are compared)")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"{where}threshold must lie in [0, 1], got {self.threshold}")
        for name in ("warn_ratio", "fail_ratio"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise ValueError(f"{where}{name} must lie in (0, 1], got {v}")
        if self.ratio_rule not in RATIO_RULES:
            raise ValueError(
                f"{where}ratio_rule must be one of {', '.join(RATIO_RULES)}, got {self.ratio_rule!r}"
            )
        for name in ("warn_growth", "fail_growth"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}{name} must lie in [0, 1], got {v}")
        if self.min_group_size < 1:
            raise ValueError(f"{where}min_group_size must be at least 1, got {self.min_group_size}")
        if self.reference_window is not None and len(self.reference_window) != 2:
            raise ValueError(f"{where}reference_window must be (start, end)")

    def dataset_name(self) -> str:
        return self.dataset or f"{self.predictions_table}"

    def thresholds(self) -> FairnessThresholds:
        return FairnessThresholds(
            warn_ratio=self.warn_ratio,
            fail_ratio=self.fail_ratio,
            ratio_rule=self.ratio_rule,
            warn_growth=self.warn_growth,
            fail_growth=self.fail_growth,
            min_group_size=self.min_group_size,
        )

    def query(self, start: datetime, end: datetime) -> PerformanceQuery:
        """The performance join's query of the window, with labels by its end."""
        # numpy and SQLAlchemy load when the check runs, never when a DAG imports the spec.
        from airflow_mlobs.core.performance.window import PerformanceWindow
        from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource

        source = PerformanceSource(
            predictions=parse_table_name(self.predictions_table),
            labels=parse_table_name(self.labels_table),
            id_column=self.id_column,
            prediction_time_column=self.prediction_time_column,
            label_column=self.label_column,
            label_time_column=self.label_time_column,
            score_column=self.score_column,
            predicted_column=self.predicted_column,
            model_version_column=self.model_version_column,
        )
        window = PerformanceWindow(
            prediction_start=start, prediction_end=end, label_cutoff=end, arrivals_start=start
        )
        return PerformanceQuery(
            source=source,
            window=window,
            positive_label=self.positive_label,
            threshold=self.threshold,
            model_version=self.model_version,
            count_orphans=False,
        )

    def evaluate(
        self, *, window_start: datetime, window_end: datetime, connect: Connector | None = None
    ) -> CheckResult:
        """Gather the window (labels by its end) and the reference window, and judge them."""
        dataset = self.dataset_name()
        checked_input(dataset, self.validate)
        start, end = window_bounds(dataset, window_start, window_end)
        from airflow_mlobs.sources.fairness_sql import fairness_summary_sql

        reference: FairnessSummary | None = None
        with connector_or_default(connect)(self.conn_id) as engine:
            summary, _ = fairness_summary_sql(engine, self.query(start, end), self.group_columns)
            if self.reference_window is not None:
                rs, re_ = window_bounds(
                    dataset, self.reference_window[0], self.reference_window[-1], what="reference_window"
                )
                reference, _ = fairness_summary_sql(engine, self.query(rs, re_), self.group_columns)
        status, text, findings, metrics = judge_fairness(summary, self.thresholds(), reference)
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=status,
            summary=text,
            window_start=start,
            window_end=end,
            metrics=metrics,
            findings=tuple(findings),
        )
