"""Freshness: ``FreshnessCheckOperator`` and the :class:`FreshnessSpec` it shares with the sensor and trigger."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.freshness import CHECK, judge_freshness, judge_partition
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone, parse_duration
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.operators.base import BaseCheckOperator, resolve_as_of, run_window
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.freshness_sql import newest_timestamp

if TYPE_CHECKING:
    from airflow.sdk import Context


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
        """Raise ``ValueError`` naming the task for an impossible combination of arguments."""
        sources = [name for name in ("table", "sql", "path", "partition") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                f"{task_id}: give exactly one of table, sql, path or partition (got {sources or 'none'})"
            )
        if (self.table or self.sql) and not (self.conn_id and self.timestamp_column):
            raise ValueError(f"{task_id}: a table or sql source needs conn_id and timestamp_column")
        if not self.partition and self.max_age is None:
            raise ValueError(f"{task_id}: max_age is required (a timedelta or text like '6h')")

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
        """Plain dict, for a trigger's ``serialize()``."""
        return asdict(self)

    def evaluate(
        self, as_of: datetime, window: tuple[datetime | None, datetime | None] = (None, None)
    ) -> CheckResult:
        """Gather the newest timestamp (or partition) and judge it as of ``as_of``.

        Raises ``MlobsInputError`` for bad input; the operator turns that into an ``error`` result.
        """
        dataset = self.dataset_name()
        start, end = window
        if self.partition:
            exists, count = file_source.partition_files(self.partition, self.file_pattern)
            return judge_partition(
                dataset=dataset,
                partition=self.partition,
                exists=exists,
                file_count=count,
                window_start=start,
                window_end=end,
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
            with connected(self.conn_id) as engine:
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
            window_start=start,
            window_end=end,
        )


class FreshnessArgsMixin:
    """The source and limit arguments shared by the freshness operator and sensor."""

    task_id: str
    dataset: str | None

    freshness_template_fields: tuple[str, ...] = (
        "conn_id",
        "table",
        "sql",
        "timestamp_column",
        "max_age",
        "warn_after",
        "timestamp_timezone",
        "path",
        "partition",
        "as_of",
    )

    def set_freshness_args(
        self,
        *,
        conn_id: str | None,
        table: str | None,
        sql: str | None,
        timestamp_column: str | None,
        max_age: timedelta | str | float | None,
        warn_after: timedelta | str | float | None,
        timestamp_timezone: str,
        path: str | None,
        partition: str | None,
        file_pattern: str,
        as_of: datetime | str | None,
    ) -> None:
        """Store the arguments (configuration only, no I/O) and validate what can be at parse time."""
        self.conn_id = conn_id
        self.table = table
        self.sql = sql
        self.timestamp_column = timestamp_column
        self.max_age = _seconds_or_text(max_age)
        self.warn_after = _seconds_or_text(warn_after)
        self.timestamp_timezone = timestamp_timezone
        self.path = path
        self.partition = partition
        self.file_pattern = file_pattern
        self.as_of = as_of
        self.spec().validate(self.task_id)
        # Catch a typo in a literal duration when the DAG is parsed, not at 3 a.m.
        for name, value in (("max_age", self.max_age), ("warn_after", self.warn_after)):
            if isinstance(value, str) and "{{" not in value:
                parse_duration(value, name=f"{self.task_id}: {name}")

    def spec(self) -> FreshnessSpec:
        """The rendered arguments as a :class:`FreshnessSpec`."""
        return FreshnessSpec(
            max_age=self.max_age,
            warn_after=self.warn_after,
            conn_id=self.conn_id,
            table=self.table,
            sql=self.sql,
            timestamp_column=self.timestamp_column,
            timestamp_timezone=self.timestamp_timezone,
            path=self.path,
            partition=self.partition,
            file_pattern=self.file_pattern,
            dataset=self.dataset,
        )


class FreshnessCheckOperator(FreshnessArgsMixin, BaseCheckOperator):
    """Fail (or warn) when the newest data is older than it should be.

    For a SQL table or query the newest timestamp is pushed down as one ``MAX()`` query; for files,
    the newest modification time under ``path``, or whether the ``partition`` the run expects exists.
    The data is judged as of the run's ``data_interval_end`` (override with ``as_of``), so backfills
    judge each interval as of its own time.

    :param conn_id: Airflow connection of the database (SQL sources).
    :param table: table name, ``schema.table`` or ``"Quoted"."Name"``. Templated.
    :param sql: a query whose rows are judged, instead of ``table``; ``.sql`` files are read. Templated.
    :param timestamp_column: the timestamp (or date) column whose newest value is the data's age.
    :param max_age: the age past which the check fails: a ``timedelta`` or text like ``"6h"``,
        ``"1d12h"``. Templated.
    :param warn_after: optional age past which the check warns (at most ``max_age``). Templated.
    :param timestamp_timezone: zone in which timestamp columns without time zone are read
        (default ``"UTC"``); they are never compared naively.
    :param path: a file or directory whose newest file modification time is judged. Templated.
    :param partition: the partition path the run expects (e.g. ``/data/events/dt={{ ds }}``); the check
        fails when it is missing or empty. Templated.
    :param file_pattern: glob for file names under ``path`` / ``partition`` (default ``*``).
    :param as_of: the moment to judge at (datetime or ISO text); default ``data_interval_end``. Templated.
    :param dataset: name used in results (default ``conn_id:table`` or the path). Templated.

    Plus ``results_conn_id`` and ``on_breach`` from :class:`BaseCheckOperator`.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *FreshnessArgsMixin.freshness_template_fields,
    )
    template_ext = (".sql",)
    template_fields_renderers = {"sql": "sql"}

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        table: str | None = None,
        sql: str | None = None,
        timestamp_column: str | None = None,
        max_age: timedelta | str | float | None = None,
        warn_after: timedelta | str | float | None = None,
        timestamp_timezone: str = "UTC",
        path: str | None = None,
        partition: str | None = None,
        file_pattern: str = "*",
        as_of: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_freshness_args(
            conn_id=conn_id,
            table=table,
            sql=sql,
            timestamp_column=timestamp_column,
            max_age=max_age,
            warn_after=warn_after,
            timestamp_timezone=timestamp_timezone,
            path=path,
            partition=partition,
            file_pattern=file_pattern,
            as_of=as_of,
        )

    def dataset_name(self) -> str:
        """See :meth:`FreshnessSpec.dataset_name`."""
        return self.spec().dataset_name()

    def evaluate(self, context: Context) -> CheckResult:
        """Gather and judge as of the run's ``data_interval_end`` (or ``as_of``)."""
        return self.spec().evaluate(resolve_as_of(context, self.as_of), run_window(context))


def _seconds_or_text(value: timedelta | str | float | None) -> str | float | None:
    """Durations are kept as seconds or text so they serialize with the DAG and template cleanly."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value
