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
from airflow_mlobs.core.timeutil import format_duration, get_zone, parse_duration, parse_moment
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from airflow_mlobs.specs.base import Connector, connector_or_default, source_label


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
        # Catch a typo in a literal value when the DAG is parsed, not at 3 a.m.
        self.limits(task_id, ValueError, literal_only=True)

    def limits(
        self, where: str, error: type[ValueError], *, literal_only: bool = False
    ) -> tuple[timedelta | None, timedelta | None]:
        """Check every setting and return ``(max_age, warn_after)`` as durations (``None`` when not
        given, or templated under ``literal_only``). Raises ``error`` naming ``where`` (the task, or
        the dataset at run time), the argument and what it allows: durations non-negative with
        ``warn_after`` at most ``max_age``, a known ``timestamp_timezone``, ``file_pattern`` a
        non-empty glob of file names. With ``literal_only`` (DAG parse time) templated values
        (``{{ ... }}``) are left for the run, when they are checked rendered."""

        def given(value: Any) -> bool:
            return value is not None and not (literal_only and isinstance(value, str) and "{{" in value)

        for name in ("conn_id", "table", "sql", "timestamp_column", "path", "partition", "dataset"):
            value = getattr(self, name)
            if given(value) and (not isinstance(value, str) or not value.strip()):
                raise error(f"{where}: {name} must be a non-empty string, got {value!r}")
        durations: dict[str, timedelta | None] = {}
        for name in ("max_age", "warn_after"):
            value = getattr(self, name)
            durations[name] = None
            if given(value) and value != "":
                try:
                    durations[name] = parse_duration(value, name=name)
                except ValueError as exc:
                    raise error(f"{where}: {exc} (a duration of 0 or more, e.g. '6h')") from exc
        max_age, warn_after = durations["max_age"], durations["warn_after"]
        if max_age is not None and warn_after is not None and warn_after > max_age:
            raise error(
                f"{where}: warn_after ({format_duration(warn_after)}) must not exceed max_age "
                f"({format_duration(max_age)}); allowed: 0 <= warn_after <= max_age"
            )
        zone_name = self.timestamp_timezone
        if not (literal_only and isinstance(zone_name, str) and "{{" in zone_name):
            if not isinstance(self.timestamp_timezone, str) or not self.timestamp_timezone.strip():
                raise error(
                    f"{where}: timestamp_timezone must be a time zone name such as 'UTC' or "
                    f"'Europe/Berlin', got {self.timestamp_timezone!r}"
                )
            try:
                get_zone(self.timestamp_timezone)
            except ValueError as exc:
                raise error(f"{where}: timestamp_timezone: {exc}") from exc
        if given(self.file_pattern):
            pattern = self.file_pattern
            if not isinstance(pattern, str) or not pattern.strip():
                raise error(
                    f"{where}: file_pattern must be a non-empty glob such as '*.parquet', got {pattern!r}"
                )
            if "/" in pattern:
                raise error(
                    f"{where}: file_pattern {pattern!r} is matched against file names, not paths, so it "
                    "would match nothing; give a name glob such as '*.parquet' and put folders in "
                    "path or partition"
                )
        return max_age, warn_after

    def dataset_name(self) -> str:
        """``conn_id:table``, ``conn_id:query``, or the path, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        return source_label(self.conn_id, table=self.table, sql=self.sql, path=self.path or self.partition)

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
        max_age, warn_after = self.limits(dataset, MlobsInputError)
        # A moment without a zone is UTC (never the machine's zone), as everywhere in the package.
        moment = parse_moment(as_of, "as_of")
        if moment is None:
            raise MlobsInputError(f"{dataset}: as_of is required (the moment the data is judged at)")
        as_of = moment
        window_start = parse_moment(window_start, "window_start")
        window_end = parse_moment(window_end, "window_end")
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
        if max_age is None:
            raise MlobsInputError(f"{dataset}: max_age is required (a timedelta or text like '6h')")
        zone = get_zone(self.timestamp_timezone)
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
