"""The service-health check as a plain spec: a request log's latency, throughput and errors in a
window, gathered as aggregate statements (:mod:`airflow_mlobs.sources.health_sql`) and judged by
:func:`airflow_mlobs.core.health.judge_health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.health import (
    BASELINE_KEYS,
    UNIT_MS,
    GroupHealth,
    HealthObservation,
    HealthRules,
    judge_health,
)
from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, pseudonym
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources.health_sql import NULL_GROUP, HealthSource, error_statuses_tuple, gather_health
from airflow_mlobs.specs.base import (
    Connector,
    checked_input,
    connector_or_default,
    source_label,
    window_bounds,
)

ERROR_KINDS = ("auto", "boolean", "status")


@dataclass(frozen=True)
class HealthSpec:
    """What to measure and the rules, as plain serializable values (templates already rendered).

    The source: ``conn_id`` with ``table`` or ``sql``; the columns; the rules of
    :class:`~airflow_mlobs.core.health.HealthRules` under the same names; the baseline as given
    values (``baseline``, keys ``p95_ms``, ``error_rate``, ``throughput_per_min``) and/or a
    ``reference_window=(start, end)`` of the same log (given values win).
    """

    conn_id: str
    timestamp_column: str
    latency_column: str
    table: str | None = None
    sql: str | None = None
    latency_unit: str = "ms"
    error_column: str | None = None
    error_kind: str = "auto"
    error_statuses: tuple[int, ...] | None = None
    error_status_min: int = 500
    model_version_column: str | None = None
    model_version: str | None = None
    segment_column: str | None = None
    timezone: str = "UTC"
    baseline: Mapping[str, float] = field(default_factory=dict)
    reference_window: tuple[datetime | str, ...] | None = None
    max_error_rate: float = 0.05
    min_requests: int = 100
    p95_warn_ratio: float = 1.5
    p95_fail_ratio: float = 2.0
    min_throughput_ratio: float = 0.5
    slo_availability: float | None = None
    slo_latency_ms: float | None = None
    slo_latency_target: float = 0.99
    dataset: str | None = None
    #: Columns whose values never reach the result: groups of a sensitive ``segment_column`` or
    #: ``model_version_column`` are named by keyed pseudonyms (``pseudonym_key``), or without a
    #: key by ``[redacted] #n`` (numbers only).
    sensitive_columns: tuple[str, ...] = ()
    pseudonym_key: PseudonymKey | None = field(default=None, repr=False, compare=False)

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for impossible arguments (literal values only)."""
        if bool(self.table) == bool(self.sql):
            raise ValueError(f"{task_id}: give exactly one of table or sql")
        for name in ("conn_id", "timestamp_column", "latency_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{task_id}: {name} must be a non-empty string, got {value!r}")
        self.check_settings(task_id)

    def check_settings(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` and the argument for a setting out of range."""
        if self.latency_unit not in UNIT_MS:
            raise ValueError(f"{where}: latency_unit must be 'ms' or 's', got {self.latency_unit!r}")
        if self.error_kind not in ERROR_KINDS:
            raise ValueError(f"{where}: error_kind must be one of {ERROR_KINDS}, got {self.error_kind!r}")
        if self.error_statuses is not None and (
            isinstance(self.error_statuses, str)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.error_statuses)
        ):
            raise ValueError(
                f"{where}: error_statuses must be a list of integers, got {self.error_statuses!r}"
            )
        unknown = set(self.baseline) - BASELINE_KEYS
        if unknown:
            raise ValueError(
                f"{where}: baseline has unknown keys {sorted(unknown)}; allowed: {sorted(BASELINE_KEYS)}"
            )
        for key, value in self.baseline.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{where}: baseline[{key!r}] must be a number >= 0, got {value!r}")
        if self.reference_window is not None and len(self.reference_window) != 2:
            raise ValueError(f"{where}: reference_window must be (start, end), got {self.reference_window!r}")
        if self.model_version is not None and not self.model_version_column:
            raise ValueError(f"{where}: model_version needs model_version_column")
        try:
            get_zone(self.timezone)
        except ValueError as exc:
            raise ValueError(f"{where}: timezone: {exc}") from exc
        self.rules().check(where)

    def rules(self) -> HealthRules:
        """The thresholds as :class:`HealthRules`."""
        return HealthRules(
            max_error_rate=self.max_error_rate,
            min_requests=self.min_requests,
            p95_warn_ratio=self.p95_warn_ratio,
            p95_fail_ratio=self.p95_fail_ratio,
            min_throughput_ratio=self.min_throughput_ratio,
            slo_availability=self.slo_availability,
            slo_latency_ms=self.slo_latency_ms,
            slo_latency_target=self.slo_latency_target,
        )

    def dataset_name(self) -> str:
        """``conn_id:table`` or ``conn_id:query``, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        return source_label(self.conn_id, table=self.table, sql=self.sql)

    def source(self) -> HealthSource:
        """The gatherer's view of the request log."""
        return HealthSource(
            timestamp_column=self.timestamp_column,
            latency_column=self.latency_column,
            table=parse_table_name(self.table) if self.table else None,
            sql=self.sql,
            latency_unit=self.latency_unit,
            error_column=self.error_column,
            error_kind=self.error_kind,  # type: ignore[arg-type]  # checked in check_settings
            error_statuses=error_statuses_tuple(self.error_statuses),
            error_status_min=self.error_status_min,
            model_version_column=self.model_version_column,
            model_version=self.model_version,
            segment_column=self.segment_column,
            naive_zone=get_zone(self.timezone),
        )

    def to_kwargs(self) -> dict[str, Any]:
        """Plain dict (without the pseudonym key); ``HealthSpec(**kwargs)`` rebuilds it."""
        values = asdict(self)
        values.pop("pseudonym_key")
        return values

    def renamed_groups(self, observation: HealthObservation) -> HealthObservation:
        """``observation`` with the groups of sensitive columns renamed before anything judges or
        shows them (see ``sensitive_columns``); a NULL group keeps its name."""

        def rename(groups: tuple[GroupHealth, ...]) -> tuple[GroupHealth, ...]:
            renamed = []
            for i, group in enumerate(groups, start=1):
                if group.value == NULL_GROUP:
                    name = group.value
                elif self.pseudonym_key is not None:
                    name = pseudonym(group.value, self.pseudonym_key)
                else:
                    name = f"{REDACTED} #{i}"
                renamed.append(replace(group, value=name))
            return tuple(renamed)

        sensitive = set(self.sensitive_columns)
        return replace(
            observation,
            segments=rename(observation.segments)
            if self.segment_column in sensitive
            else observation.segments,
            versions=(
                rename(observation.versions)
                if self.model_version_column in sensitive
                else observation.versions
            ),
        )

    def reference_bounds(self) -> tuple[datetime, datetime] | None:
        """The rendered ``reference_window`` as aware moments (start < end)."""
        if self.reference_window is None:
            return None
        if len(self.reference_window) != 2:
            raise MlobsInputError(
                f"{self.dataset_name()}: reference_window must be (start, end), got {self.reference_window!r}"
            )
        return window_bounds(self.dataset_name(), *self.reference_window, what="reference_window")

    def evaluate(
        self, *, window_start: datetime, window_end: datetime, connect: Connector | None = None
    ) -> CheckResult:
        """Gather the window ``[window_start, window_end)`` (and the reference window) and judge it.

        Raises ``MlobsInputError`` for bad input; the operator turns that into an ``error`` result.
        """
        dataset = self.dataset_name()
        checked_input(dataset, self.check_settings)
        start, end = window_bounds(dataset, window_start, window_end)
        rules = self.rules()
        with connector_or_default(connect)(self.conn_id) as engine:
            observation, _ = gather_health(
                engine,
                self.source(),
                start=start,
                end=end,
                reference=self.reference_bounds(),
                burn=rules.uses_burn_rates,
                slo_latency_ms=rules.slo_latency_ms,
            )
        if self.sensitive_columns:
            observation = self.renamed_groups(observation)
        return judge_health(
            dataset=dataset,
            observation=observation,
            rules=rules,
            baseline=dict(self.baseline),
            window_start=start,
            window_end=end,
        )
