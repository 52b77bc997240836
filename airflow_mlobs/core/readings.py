"""Typed readings of stored results: the metrics later readers act on, each defined once.

A :class:`~airflow_mlobs.core.result.CheckResult` carries its dataset-level numbers as a JSON
mapping, so it survives storage, XCom and versions. Readers (the retraining gate, the
notifications, reports) never index that mapping by string: they ask for a reading here, which
says which check it belongs to, names every field it reads with a type, and returns ``None`` for a
result of another check (or one stored without the numbers). Where practical the judge writes its
metrics through the same class (:meth:`DriftReading.to_metrics`), so renaming a field is a mypy
error for the writer and every reader at once; for the others a test holds the judge's output
readable (``tests/unit/test_result.py``).

Standard library only: the gate and the notifiers import this at DAG parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlobs.core.drift_settings import CHECK as DRIFT
from airflow_mlobs.core.freshness import CHECK as FRESHNESS
from airflow_mlobs.core.health import CHECK as SERVICE_HEALTH
from airflow_mlobs.core.performance_settings import CHECK as PERFORMANCE
from airflow_mlobs.core.result import CheckResult


def number(value: Any) -> float | None:
    """``value`` when it is a stored number (an int or a float, not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


@dataclass(frozen=True)
class DriftedColumn:
    """One drifted column of a drift result: its name, the method that judged it, its effect."""

    column: str
    method: str
    value: float

    def to_metric(self) -> dict[str, Any]:
        """The stored form (``{"column", "method", "value"}``)."""
        return {"column": self.column, "method": self.method, "value": self.value}


@dataclass(frozen=True)
class DriftReading:
    """What a drift result reports about the whole dataset (written by
    :func:`airflow_mlobs.core.drift.compare`).

    ``drift_share`` is the share of judged columns that drifted; ``drifted_columns`` the drifted
    ones, most drifted first; ``baseline`` is ``name/version``.
    """

    rows: int
    reference_rows: int
    baseline: str | None
    columns_judged: int
    columns_drifted: int
    drift_share: float
    drifted_columns: tuple[DriftedColumn, ...] = ()

    def to_metrics(self) -> dict[str, Any]:
        """The metrics this reading is read from (the judge adds its own further keys)."""
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "baseline": self.baseline,
            "columns_judged": self.columns_judged,
            "columns_drifted": self.columns_drifted,
            "drift_share": self.drift_share,
            "drifted_columns": [d.to_metric() for d in self.drifted_columns],
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> DriftReading | None:
        """Read ``metrics`` (``None`` without a numeric ``drift_share``); missing counts read 0."""
        share = number(metrics.get("drift_share"))
        if share is None:
            return None
        drifted = tuple(
            DriftedColumn(str(d.get("column")), str(d.get("method")), number(d.get("value")) or 0.0)
            for d in metrics.get("drifted_columns") or ()
            if isinstance(d, Mapping)
        )
        baseline = metrics.get("baseline")
        return cls(
            rows=int(number(metrics.get("rows")) or 0),
            reference_rows=int(number(metrics.get("reference_rows")) or 0),
            baseline=None if baseline is None else str(baseline),
            columns_judged=int(number(metrics.get("columns_judged")) or 0),
            columns_drifted=int(number(metrics.get("columns_drifted")) or 0),
            drift_share=share,
            drifted_columns=drifted,
        )

    @classmethod
    def of(cls, result: CheckResult) -> DriftReading | None:
        """The reading of a drift result; ``None`` for any other check."""
        return cls.from_metrics(result.metrics) if result.check == DRIFT else None

    def drifted(self) -> list[str]:
        """The drifted columns' names, most drifted first."""
        return [d.column for d in self.drifted_columns]


@dataclass(frozen=True)
class PerformanceReading:
    """What a performance result reports about its main metric (written by
    :func:`airflow_mlobs.core.performance.judge.judge_performance`).

    ``drop`` is the main metric's fall from its baseline in the metric's units (``None`` when not
    judged); ``label_coverage`` the share of predictions with a label by the cut-off.
    """

    metric: str
    value: float | None
    baseline_value: float | None
    drop: float | None
    label_coverage: float | None

    @classmethod
    def of(cls, result: CheckResult) -> PerformanceReading | None:
        """The reading of a performance result (fields it lacks read ``None``); ``None`` for any
        other check."""
        metrics = result.metrics
        if result.check != PERFORMANCE:
            return None
        return cls(
            metric=str(metrics.get("metric", "metric")),
            value=number(metrics.get("value")),
            baseline_value=number(metrics.get("baseline_value")),
            drop=number(metrics.get("drop")),
            label_coverage=number(metrics.get("label_coverage")),
        )


@dataclass(frozen=True)
class FreshnessReading:
    """What a freshness result reports: the newest data's age at ``as_of`` (written by
    :func:`airflow_mlobs.core.freshness.judge_freshness`; ``None`` when there was nothing to date)."""

    age_seconds: float | None

    @classmethod
    def of(cls, result: CheckResult) -> FreshnessReading | None:
        """The reading of a freshness result; ``None`` for any other check."""
        if result.check != FRESHNESS:
            return None
        return cls(age_seconds=number(result.metrics.get("age_seconds")))


@dataclass(frozen=True)
class HealthReading:
    """What a service-health result reports (written by
    :func:`airflow_mlobs.core.health.judge_health`): latencies in ms, the error rate with its
    Wilson 95% interval, and the baseline p95 the ratio is taken against (``None`` when unknown)."""

    requests: int
    p95_ms: float | None
    baseline_p95_ms: float | None
    p95_ratio: float | None
    error_rate: float | None
    error_rate_low: float | None
    error_rate_high: float | None
    throughput_per_min: float | None

    @classmethod
    def of(cls, result: CheckResult) -> HealthReading | None:
        """The reading of a service-health result; ``None`` for any other check."""
        if result.check != SERVICE_HEALTH:
            return None
        metrics = result.metrics
        return cls(
            requests=int(number(metrics.get("requests")) or 0),
            p95_ms=number(metrics.get("latency_p95_ms")),
            baseline_p95_ms=number(metrics.get("baseline_p95_ms")),
            p95_ratio=number(metrics.get("p95_ratio")),
            error_rate=number(metrics.get("error_rate")),
            error_rate_low=number(metrics.get("error_rate_low")),
            error_rate_high=number(metrics.get("error_rate_high")),
            throughput_per_min=number(metrics.get("throughput_per_min")),
        )
