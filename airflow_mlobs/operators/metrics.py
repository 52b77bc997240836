"""Metrics for Grafana and Prometheus: each published result through Airflow's ``Stats``.

:func:`result_metrics` (pure) maps a :class:`CheckResult` to :class:`Metric` values;
:func:`emit_result_metrics` sends them through the task SDK's ``Stats``
(``airflow.sdk.observability.stats``: StatsD, Datadog or OpenTelemetry as ``[metrics]`` says) and
never raises.

Names follow Airflow's own convention (``[metrics] legacy_names_on``): every metric is sent under
its name with the variables as tags, e.g. ``mlobs.check.status`` with ``dag_id``, ``task_id``,
``dataset``, ``check`` (and ``column``, ``metric``, ``status`` where they apply); with
``legacy_names_on`` (Airflow's default) also under the *legacy* name with the variables in it, e.g.
``mlobs.check.status.<dag_id>.<task_id>``, for StatsD without tags. As in Airflow, a ``.`` in a
variable becomes ``__`` and any character StatsD names may not hold becomes ``_``; the StatsD
prefix (``[metrics] statsd_prefix``), ``stat_name_handler`` and ``metrics_allow_list`` /
``metrics_block_list`` apply as to Airflow's own metrics (allow ``mlobs`` to keep them).

The metrics (tags beyond the four above in brackets):

- ``mlobs.check.finish`` [status] counter, +1 per result; legacy
  ``mlobs.check.finish.<dag_id>.<task_id>.<status>``;
- ``mlobs.check.status`` gauge: the status's severity (0 skipped, 1 pass, 2 warn, 3 fail, 4 error);
- ``mlobs.check.breach`` gauge: 1 for ``fail`` or ``error``, else 0;
- ``mlobs.freshness.age_seconds`` gauge: the newest data's age at the judged moment;
- ``mlobs.drift.share`` gauge: the share of judged columns that drifted;
- ``mlobs.drift.effect`` [column, metric] gauge: each column's effect size (Wasserstein distance in
  reference standard deviations, Jensen-Shannon distance...); legacy
  ``mlobs.drift.effect.<dag_id>.<task_id>.<column>``;
- ``mlobs.performance.value`` [metric], ``mlobs.performance.drop`` [metric]: the performance metric
  and its drop from the baseline; ``mlobs.performance.label_coverage``: the labelled share.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_mlobs.core.readings import DriftReading, FreshnessReading, PerformanceReading
from airflow_mlobs.core.result import CheckResult, Status

MetricKind = Literal["counter", "gauge"]

#: Drift findings that are not a column's distribution effect size.
_NOT_EFFECTS = frozenset({"missing_rate", "unseen_share", "non_finite", "column", "rows", "error"})
_INVALID = re.compile(r"[^A-Za-z0-9_.\-/]")


@dataclass(frozen=True)
class Metric:
    """One value to send: ``name`` (tags as tags), ``legacy`` (the variables in the name, already
    made a valid StatsD name), ``value``, ``kind`` and ``tags``."""

    name: str
    value: float
    kind: MetricKind = "gauge"
    tags: dict[str, str] = field(default_factory=dict)
    legacy: str | None = None


def name_part(value: str) -> str:
    """A variable as a part of a StatsD name, as Airflow writes legacy names: ``.`` to ``__``,
    any other character StatsD names may not hold to ``_``."""
    return _INVALID.sub("_", str(value).replace(".", "__"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def result_metrics(result: CheckResult, *, dag_id: str, task_id: str) -> list[Metric]:
    """The metrics of ``result`` (the list in the module docstring), tagged with where it ran."""
    base = {"dag_id": dag_id, "task_id": task_id, "dataset": result.dataset, "check": result.check}
    where = f"{name_part(dag_id)}.{name_part(task_id)}"
    status = result.status.value
    found = [
        Metric(
            "mlobs.check.finish",
            1,
            "counter",
            {**base, "status": status},
            f"mlobs.check.finish.{where}.{status}",
        ),
        Metric("mlobs.check.status", result.status.severity, "gauge", base, f"mlobs.check.status.{where}"),
        Metric("mlobs.check.breach", int(result.is_breach), "gauge", base, f"mlobs.check.breach.{where}"),
    ]
    freshness = FreshnessReading.of(result)
    if freshness is not None and freshness.age_seconds is not None:
        found.append(
            Metric(
                "mlobs.freshness.age_seconds",
                freshness.age_seconds,
                "gauge",
                base,
                f"mlobs.freshness.age_seconds.{where}",
            )
        )
    drift = DriftReading.of(result)
    if drift is not None:
        if drift.drift_share is not None:
            found.append(
                Metric("mlobs.drift.share", drift.drift_share, "gauge", base, f"mlobs.drift.share.{where}")
            )
        columns = result.metrics.get("columns")
        judged = set(columns) if isinstance(columns, dict) else set()
        for finding in result.findings:
            value = _number(finding.value)
            if (
                value is None
                or finding.status is Status.SKIPPED
                or finding.metric in _NOT_EFFECTS
                or finding.subject not in judged
            ):
                continue
            found.append(
                Metric(
                    "mlobs.drift.effect",
                    value,
                    "gauge",
                    {**base, "column": finding.subject, "metric": finding.metric},
                    f"mlobs.drift.effect.{where}.{name_part(finding.subject)}",
                )
            )
    performance = PerformanceReading.of(result)
    if performance is not None:
        tags = {**base, "metric": performance.metric}
        for name, value in (("value", performance.value), ("drop", performance.drop)):
            if value is not None:
                found.append(
                    Metric(
                        f"mlobs.performance.{name}",
                        value,
                        "gauge",
                        tags,
                        f"mlobs.performance.{name}.{where}.{name_part(performance.metric)}",
                    )
                )
        if performance.label_coverage is not None:
            found.append(
                Metric(
                    "mlobs.performance.label_coverage",
                    performance.label_coverage,
                    "gauge",
                    base,
                    f"mlobs.performance.label_coverage.{where}",
                )
            )
    return found


def _stats() -> Any:
    """The task SDK's ``Stats``, set up from ``[metrics]`` when this process has not done it yet
    (``airflow dags test`` runs tasks in its own process, where the task runner's set-up never ran)."""
    from airflow.sdk._shared.observability.metrics import stats as shared
    from airflow.sdk.observability.stats import Stats

    if getattr(shared, "_factory", None) is None:
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.metrics import stats_utils

        Stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
    return Stats


def _legacy_names_on() -> bool:
    from airflow.sdk.configuration import conf

    return bool(conf.getboolean("metrics", "legacy_names_on", fallback=True))


def emit_result_metrics(result: CheckResult, *, dag_id: str, task_id: str, log: Any = None) -> int:
    """Send :func:`result_metrics` through ``Stats``; returns how many values were sent. Never
    raises: a metrics backend that fails is logged (at debug) and the check goes on."""
    try:
        metrics = result_metrics(result, dag_id=dag_id, task_id=task_id)
        stats = _stats()
        legacy = _legacy_names_on()
        sent = 0
        for metric in metrics:
            names = [metric.name] + ([metric.legacy] if legacy and metric.legacy else [])
            for position, name in enumerate(names):
                tags = metric.tags if position == 0 else None
                if metric.kind == "counter":
                    stats.incr(name, count=int(metric.value), tags=tags)
                else:
                    stats.gauge(name, metric.value, tags=tags)
                sent += 1
        return sent
    except Exception as exc:  # metrics never change a check's outcome
        if log is not None:
            log.debug("Could not send metrics: %s: %s", type(exc).__name__, exc)
        return 0
