"""Freshness: ``FreshnessCheckOperator``, and the arguments it shares with ``FreshnessSensor``.

The check itself (gather the newest timestamp, judge its age) is
:class:`~airflow_mlobs.specs.freshness.FreshnessSpec`; this module turns arguments into that spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlobs.core.freshness import CHECK
from airflow_mlobs.core.privacy import REDACTED
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.operators.base import BaseCheckOperator, resolve_as_of, run_window
from airflow_mlobs.specs.freshness import FreshnessSpec, seconds_or_text

if TYPE_CHECKING:
    from airflow.sdk import Context


class FreshnessArgsMixin(BaseOperator):
    """The source and limit arguments shared by the freshness operator and sensor.

    An operator class (not a plain mixin) so that Airflow reads these arguments from its
    ``__init__`` when a task is mapped (``.partial(...).expand(table=[...])``).

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
    :param file_pattern: glob for file names (not paths) under ``path`` / ``partition`` (default
        ``*``); one with a ``/`` would match nothing and is refused.
    :param as_of: the moment to judge at (datetime or ISO text); default ``data_interval_end``. Templated.
    """

    dataset: str | None = None

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
        self.conn_id = conn_id
        self.table = table
        self.sql = sql
        self.timestamp_column = timestamp_column
        self.max_age = seconds_or_text(max_age)
        self.warn_after = seconds_or_text(warn_after)
        self.timestamp_timezone = timestamp_timezone
        self.path = path
        self.partition = partition
        self.file_pattern = file_pattern
        self.as_of = as_of
        self.spec().validate(self.task_id)

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

    def dataset_name(self) -> str:
        """See :meth:`FreshnessSpec.dataset_name`."""
        return self.spec().dataset_name()


class FreshnessCheckOperator(FreshnessArgsMixin, BaseCheckOperator):
    """Fail (or warn) when the newest data is older than it should be.

    For a SQL table or query the newest timestamp is pushed down as one ``MAX()`` query; for files,
    the newest modification time under ``path``, or whether the ``partition`` the run expects exists.
    The data is judged as of the run's ``data_interval_end`` (override with ``as_of``), so backfills
    judge each interval as of its own time.

    Takes the source and limit arguments of :class:`FreshnessArgsMixin`, and ``dataset`` (name used
    in results; default ``conn_id:table`` or the path; templated), ``results_conn_id``, ``on_breach``
    and ``notify`` from :class:`BaseCheckOperator`. With ``timestamp_column`` among
    ``sensitive_columns`` the newest row's timestamp (one row's value) is not recorded, only its age
    (:func:`without_newest`).
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *FreshnessArgsMixin.freshness_template_fields,
    )
    template_ext = (".sql",)
    template_fields_renderers = {"sql": "sql"}

    def evaluate(self, context: Context) -> CheckResult:
        """Gather and judge as of the run's ``data_interval_end`` (or ``as_of``)."""
        start, end = run_window(context)
        result = self.spec().evaluate(
            as_of=resolve_as_of(context, self.as_of), window_start=start, window_end=end
        )
        return without_newest(result, self.timestamp_column, self.sensitive_columns)


def without_newest(
    result: CheckResult, timestamp_column: str | None, sensitive_columns: Sequence[str]
) -> CheckResult:
    """A freshness result for a sensitive ``timestamp_column``: the newest row's timestamp (one
    row's value) is not recorded, only its age, which is what the check judges (the age and
    ``as_of`` still tell when the newest row is from: a freshness check discloses recency by
    design)."""
    if not timestamp_column or timestamp_column not in sensitive_columns or "newest" not in result.metrics:
        return result
    return replace(result, metrics={**result.metrics, "newest": REDACTED})
