"""``ServiceHealthCheckOperator``: latency, throughput and errors of a model's service, per window.

The check itself (gather the request log's aggregates, judge them) is
:class:`~airflow_mlobs.specs.health.HealthSpec`; this module turns the operator's arguments into
that spec and gives it the run's window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from airflow_mlobs.core.health import CHECK
from airflow_mlobs.operators.base import WindowSpecOperator, parse_window_arg
from airflow_mlobs.specs.health import HealthSpec

#: The operator's arguments that are the spec's (all but ``window`` and the base's).
SPEC_ARGUMENTS = frozenset(f.name for f in fields(HealthSpec)) - {
    "dataset",
    "sensitive_columns",
    "pseudonym_key",
}


class ServiceHealthCheckOperator(WindowSpecOperator):
    """Judge a model service's request log: latency percentiles, throughput and error rate.

    One aggregate statement per window is pushed down (plus one per grouping and the reference
    window; at most 6), and only aggregate rows are fetched. Definitions and rules:
    :mod:`airflow_mlobs.core.health`. Defaults follow "if your model takes 10 seconds instead of
    100 milliseconds, users will notice": fail when the error rate's Wilson lower bound exceeds 5%
    (from ``min_requests`` requests; fewer is ``skipped`` with the reason), when p95 reaches 2x the
    baseline's (1.5x warns), or when throughput falls below 0.5x the baseline's.

    :param conn_id: Airflow SQL connection of the request log. Templated.
    :param table: the request log (``schema.table``). Templated.
    :param sql: a query whose rows are the requests, instead of ``table``; ``.sql`` files are read. Templated.
    :param timestamp_column: when each request was served.
    :param latency_column: each request's latency, in ``latency_unit`` (``"ms"`` or ``"s"``);
        metrics are reported in ms.
    :param error_column: a boolean (true = error) or an HTTP status column; without it no request
        is an error.
    :param error_kind: ``"auto"`` (the table's catalog decides; a query's column is a status),
        ``"boolean"`` or ``"status"``.
    :param error_statuses: the statuses that are errors (e.g. ``[429, 500, 502, 503, 504]``);
        default: every status >= ``error_status_min`` (500).
    :param model_version_column, model_version: judge one model version only (templated); with
        the column and no version, the version that moved most is named.
    :param segment_column: name the segment that moved most (findings warn at most). When it (or
        ``model_version_column``) is one of ``sensitive_columns``, groups are named by keyed
        pseudonyms, or without a key ``[redacted] #n``.
    :param window: the window's length ending at the run's data interval end (or logical date, or
        run-after time, for runs with a zero-length interval such as ``schedule="@daily"``), e.g.
        ``"1h"``. Without it the run's data interval. Templated.
    :param window_start, window_end: an explicit window instead. Templated.
    :param timezone: zone of timestamp columns without time zone.
    :param baseline: given baseline values ``{"p95_ms": 120, "error_rate": 0.01,
        "throughput_per_min": 50}``.
    :param reference_window: ``(start, end)`` of a reference period of the same log; its p95,
        error rate and throughput are the baseline where ``baseline`` gives none. Templated.
    :param max_error_rate, min_requests, p95_warn_ratio, p95_fail_ratio, min_throughput_ratio: the
        rules' levels (:class:`~airflow_mlobs.core.health.HealthRules`).
    :param slo_availability: e.g. ``0.999``: multiwindow burn-rate alerts on errors.
    :param slo_latency_ms, slo_latency_target: e.g. 300 and 0.99: burn-rate alerts on slow requests.

    Takes ``dataset``, ``results_conn_id``, ``on_breach``, ``notify`` and the rest from
    :class:`BaseCheckOperator`. Settings out of range are a ``ValueError`` naming the task and the
    argument when the DAG is imported.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *WindowSpecOperator.template_fields,
        "conn_id",
        "table",
        "sql",
        "window",
        "window_start",
        "window_end",
        "model_version",
        "reference_window",
    )
    template_ext = (".sql",)
    template_fields_renderers = {"sql": "sql"}

    def __init__(
        self,
        *,
        conn_id: str,
        timestamp_column: str,
        latency_column: str,
        table: str | None = None,
        sql: str | None = None,
        latency_unit: str = "ms",
        error_column: str | None = None,
        error_kind: str = "auto",
        error_statuses: Sequence[int] | None = None,
        error_status_min: int = 500,
        model_version_column: str | None = None,
        model_version: str | None = None,
        segment_column: str | None = None,
        timezone: str = "UTC",
        baseline: Mapping[str, float] | None = None,
        reference_window: Sequence[datetime | str] | None = None,
        max_error_rate: float = 0.05,
        min_requests: int = 100,
        p95_warn_ratio: float = 1.5,
        p95_fail_ratio: float = 2.0,
        min_throughput_ratio: float = 0.5,
        slo_availability: float | None = None,
        slo_latency_ms: float | None = None,
        slo_latency_target: float = 0.99,
        window: timedelta | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        # Every argument the spec takes is stored under its own name (Airflow renders the templated
        # ones in place); taken first, so locals() holds only the arguments.
        arguments = {name: value for name, value in locals().items() if name in SPEC_ARGUMENTS}
        super().__init__(**kwargs)
        for name, value in arguments.items():
            setattr(self, name, value)
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.spec().validate(self.task_id)
        parse_window_arg(window, self.task_id, timestamp_column)

    def spec(self) -> HealthSpec:
        """The rendered arguments as a :class:`HealthSpec`."""
        values = {name: getattr(self, name) for name in SPEC_ARGUMENTS}
        values["baseline"] = dict(values["baseline"] or {})
        if values["error_statuses"] is not None:
            values["error_statuses"] = tuple(values["error_statuses"])
        if isinstance(values["reference_window"], list):  # rendered templates may give a list
            values["reference_window"] = tuple(values["reference_window"])
        return HealthSpec(**values, dataset=self.dataset, sensitive_columns=tuple(self.sensitive_columns))

    def run_spec(self) -> HealthSpec:
        """The spec, given the pseudonym key when a grouping column is sensitive."""
        spec = self.spec()
        if {spec.segment_column, spec.model_version_column} & set(spec.sensitive_columns):
            spec = replace(spec, pseudonym_key=self.resolved_pseudonym_key())
        return spec
