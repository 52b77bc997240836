"""The freshness check as a plain spec: how old the newest data is, gathered once and judged once.

Used by ``FreshnessCheckOperator``, ``FreshnessSensor`` and ``FreshnessTrigger`` (rebuilt from
:meth:`FreshnessSpec.to_kwargs`), and by anything else that holds a database URL (the CLI, a
notebook) through :func:`~airflow_mlobs.specs.base.url_connected`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.freshness import judge_freshness, judge_partition
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.timeutil import format_duration, get_zone, parse_duration
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from airflow_mlobs.specs.base import Connector, connector_or_default


def seconds_or_text(value: timedelta | str | float | None) -> str | float | None:
    """A duration argument as seconds or text, so it serializes with the DAG and templates cleanly."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


@dataclass(frozen=True)
class FreshnessSpec:
    """What to measure and the limits, as plain serializable values (templates already rendered).

    Exactly one source: ``table`` or ``sql`` (with ``conn_id`` and ``timestamp_column``), ``path``
    (newest file modification time) or ``partition`` (the partition path a run expects).
    """

    max_age: str | float | None = None
    warn_after: str | float | None = None
    conn_id: str | None = None
    table: str | None = None
    sql: str | None = None
    timestamp_column: str | None = None
    timestamp_timezone: str = "UTC"
    path: str | None = None
    partition: str | None = None
    file_pattern: str = "*"
    dataset: str | None = None

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for an impossible combination of arguments, or a
        literal duration that is not one (a templated one is read when the check runs)."""
        sources = [name for name in ("table", "sql", "path", "partition") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                f"{task_id}: give exactly one of table, sql, path or partition (got {sources or 'none'})"
            )
        if (self.table or self.sql) and not (self.conn_id and self.timestamp_column):
            raise ValueError(f"{task_id}: a table or sql source needs conn_id and timestamp_column")
        if not self.partition and self.max_age is None:
            raise ValueError(f"{task_id}: max_age is required (a timedelta or text like '6h')")
        # Catch a typo in a literal duration when the DAG is parsed, not at 3 a.m.
        for name, value in (("max_age", self.max_age), ("warn_after", self.warn_after)):
            if isinstance(value, str) and "{{" not in value:
                parse_duration(value, name=f"{task_id}: {name}")

    def dataset_name(self) -> str:
        """``conn_id:table``, ``conn_id:query``, or the path, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        if self.table:
            return f"{self.conn_id}:{self.table}"
        if self.sql:
            return f"{self.conn_id}:query"
        return str(self.path or self.partition)

    def to_kwargs(self) -> dict[str, Any]:
        """Plain dict, for a trigger's ``serialize()``; ``FreshnessSpec(**kwargs)`` rebuilds it."""
        return asdict(self)

    def evaluate(
        self,
        *,
        as_of: datetime,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        connect: Connector | None = None,
    ) -> CheckResult:
        """Gather the newest timestamp (or partition) and judge it as of ``as_of``; the window is
        recorded on the result. ``connect`` opens the database (default: Airflow connections).

        Raises ``MlobsInputError`` for bad input; the operator turns that into an ``error`` result.
        """
        dataset = self.dataset_name()
        if self.partition:
            exists, count = file_source.partition_files(self.partition, self.file_pattern)
            return judge_partition(
                dataset=dataset,
                partition=self.partition,
                exists=exists,
                file_count=count,
                window_start=window_start,
                window_end=window_end,
            )
        try:
            max_age = parse_duration(self.max_age if self.max_age is not None else "", name="max_age")
            warn_after = (
                parse_duration(self.warn_after, name="warn_after")
                if self.warn_after not in (None, "")
                else None
            )
            zone = get_zone(self.timestamp_timezone)
        except ValueError as exc:
            raise MlobsInputError(f"{dataset}: {exc}") from exc
        if self.path:
            observation = file_source.newest_modification(self.path, as_of=as_of, pattern=self.file_pattern)
        else:
            assert self.conn_id is not None and self.timestamp_column is not None
            table = parse_table_name(self.table) if self.table else None
            with connector_or_default(connect)(self.conn_id) as engine:
                observation = newest_timestamp(
                    engine,
                    column=self.timestamp_column,
                    as_of=as_of,
                    naive_zone=zone,
                    table=table,
                    sql=self.sql,
                )
        if warn_after is not None and warn_after > max_age:
            raise MlobsInputError(f"{dataset}: warn_after must not exceed max_age")
        return judge_freshness(
            dataset=dataset,
            observation=observation,
            as_of=as_of,
            max_age=max_age,
            warn_after=warn_after,
            window_start=window_start,
            window_end=window_end,
        )


def timed_out(result: CheckResult, waited: timedelta) -> CheckResult:
    """The last result of a wait for fresh data (the sensor's, the trigger's), marked as a final
    failure after waiting ``waited``."""
    note = Finding(
        subject="sensor",
        metric="timeout",
        status=Status.FAIL,
        value=format_duration(waited),
        reason=f"data not fresh after waiting {format_duration(waited)}",
    )
    return replace(
        result,
        status=Status.FAIL,
        summary=f"{result.summary} (gave up after waiting {format_duration(waited)})",
        findings=(*result.findings, note),
    )
