"""``ExpectationSuiteOperator``: a Great Expectations suite on the run's window, where the data lives."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.quality import CHECK, judge_validation, load_suite_file, suite_columns
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_window_arg,
    with_window_basis,
)
from airflow_mlobs.operators.schema import resolve_contract_path
from airflow_mlobs.sources import files as file_source

if TYPE_CHECKING:
    from airflow.sdk import Context


class ExpectationSuiteOperator(BaseCheckOperator):
    """Validate the run's window of a table, file or DataFrame with a Great Expectations 1.x suite.

    For a table the suite runs in the database: Great Expectations computes each metric as SQL over
    ``SELECT * FROM table WHERE timestamp_column >= :start AND timestamp_column < :end`` (the run's
    data interval, bound as parameters), so only aggregates and at most 20 example unexpected values
    per expectation reach the worker. Column types come from the catalog. A file is read in memory
    (only the window's rows); a DataFrame is validated as given.

    Each expectation becomes a finding (see :mod:`airflow_mlobs.core.quality`): a failed expectation
    ``fail``s or ``warn``s by its ``meta.severity`` (or Great Expectations' ``severity``); one that
    could not run, e.g. naming a column the data lacks, is an ``error`` naming the column.

    :param suite: path of the suite JSON; relative paths are looked up in ``$MLOBS_EXPECTATIONS_DIR``,
        the working directory, and ``expectations/`` beside or above the DAG file. Templated.
    :param conn_id: Airflow connection of the database (with ``table``). Templated.
    :param table: table or view, ``schema.table`` or ``"Quoted"."Name"``. Templated. (A query is not
        accepted: Great Expectations would run it bare to learn its columns, fetching every row; make
        it a view.)
    :param path: a Parquet, Feather/Arrow or CSV file or dataset directory instead. Templated.
    :param dataframe: a pandas DataFrame, or a callable returning one (called at run time, never at
        parse time), instead.
    :param timestamp_column: the column the window applies to; without it the whole table is
        validated. Templated.
    :param timestamp_timezone: zone of timestamp columns without time zone (tables). Templated.
    :param window: with ``timestamp_column``: the length of the window validated, ending at the run's
        data interval end (or logical date, or run-after time, for runs with a zero-length or no
        interval, such as ``schedule="@daily"``), e.g. ``"1d"``. Without it the window is the run's
        data interval, and a run with none is an ``error`` saying so. Templated.
    :param window_start, window_end: explicit bounds, overriding the above. Templated.
    :param suite_parameters: values for the suite's ``{"$PARAMETER": "name"}`` arguments. Templated.

    Plus ``dataset``, ``results_conn_id`` and ``on_breach`` from :class:`BaseCheckOperator`.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "suite",
        "conn_id",
        "table",
        "path",
        "timestamp_column",
        "timestamp_timezone",
        "window",
        "window_start",
        "window_end",
        "suite_parameters",
    )
    ui_color = "#fdf1e3"

    def __init__(
        self,
        *,
        suite: str,
        conn_id: str | None = None,
        table: str | None = None,
        path: str | None = None,
        dataframe: Any = None,
        timestamp_column: str | None = None,
        timestamp_timezone: str = "UTC",
        window: timedelta | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        suite_parameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [n for n, v in (("table", table), ("path", path), ("dataframe", dataframe)) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"{self.task_id}: give exactly one of table (with conn_id), path or dataframe "
                f"(got {given or 'none'})"
            )
        if table is not None and not conn_id:
            raise ValueError(f"{self.task_id}: a table source needs conn_id")
        if not suite:
            raise ValueError(f"{self.task_id}: suite is required (a suite JSON under expectations/)")
        self.suite = suite
        self.conn_id = conn_id
        self.table = table
        self.path = path
        self.dataframe = dataframe
        self.timestamp_column = timestamp_column
        self.timestamp_timezone = timestamp_timezone
        self.window = window
        parse_window_arg(window, self.task_id, timestamp_column)
        self.window_start = window_start
        self.window_end = window_end
        self.suite_parameters = dict(suite_parameters or {})

    def dataset_name(self) -> str:
        """``conn_id:table``, the path, or ``task_id`` for a DataFrame, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        if self.table:
            return f"{self.conn_id}:{self.table}"
        return str(self.path) if self.path else self.task_id

    def evaluate(self, context: Context) -> CheckResult:
        """Load the suite, run it on the window where the data lives, and judge the result."""
        # Great Expectations reads this on import; no usage analytics from a worker.
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        from airflow_mlobs.sources import quality as quality_source

        dataset = self.dataset_name()
        judged = judged_window(
            context,
            self.window,
            start=self.window_start,
            end=self.window_end,
            required=self.timestamp_column is not None,
        )
        start, end = judged.start, judged.end
        if not isinstance(self.suite_parameters, Mapping):
            raise MlobsInputError(
                f"suite_parameters must be a mapping of names to values, got {type(self.suite_parameters).__name__}"
            )
        dag_file = getattr(context.get("dag"), "fileloc", None)
        suite_path = resolve_contract_path(self.suite, dag_file)
        suite = load_suite_file(suite_path)
        source = str(suite_path)
        try:
            zone = get_zone(self.timestamp_timezone)
        except ValueError as exc:
            raise MlobsInputError(f"timestamp_timezone: {exc}") from exc
        if self.table:
            assert self.conn_id is not None
            with connected(self.conn_id) as engine:
                run = quality_source.validate_table(
                    engine,
                    parse_table_name(self.table),
                    suite,
                    source=source,
                    timestamp_column=self.timestamp_column,
                    window_start=start if self.timestamp_column else None,
                    window_end=end if self.timestamp_column else None,
                    naive_zone=zone,
                    suite_parameters=self.suite_parameters,
                )
            self.log.info(
                "Validated %s in the database: %d SQL statements (aggregates and LIMIT %d samples)",
                dataset,
                len(run.statements),
                quality_source.PARTIAL_UNEXPECTED_COUNT,
            )
        else:
            frame = self._frame(suite, start, end)
            run = quality_source.validate_frame(
                frame, suite, source=source, suite_parameters=self.suite_parameters
            )
        windowed = bool(self.timestamp_column)
        result = judge_validation(
            run.validation,
            dataset=dataset,
            suite_name=str(suite.get("name") or suite_path.stem),
            window_start=start if windowed else None,
            window_end=end if windowed else None,
        )
        return with_window_basis(result, judged) if windowed else result

    def _frame(self, suite: Mapping[str, Any], start: datetime | None, end: datetime | None) -> Any:
        if self.path:
            if self.timestamp_column is None:
                return file_source.read_window(self.path)
            # Only the columns the suite names (and the timestamp), only the window's rows.
            wanted = [*suite_columns(suite), self.timestamp_column]
            names_all = any(
                (e.get("type") or "").startswith("expect_table_column") for e in suite.get("expectations", [])
            )
            return file_source.read_window(
                self.path,
                None if names_all else wanted,
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
            )
        frame = self.dataframe() if callable(self.dataframe) else self.dataframe
        if self.timestamp_column is not None and (start is not None or end is not None):
            if self.timestamp_column not in frame.columns:
                raise MlobsInputError(
                    f"timestamp column {self.timestamp_column!r} not found in the DataFrame; it has: "
                    + ", ".join(map(str, frame.columns))
                )
            import pandas as pd

            stamps = pd.to_datetime(frame[self.timestamp_column], utc=True)
            mask = pd.Series(True, index=frame.index)
            if start is not None:
                mask &= stamps >= start
            if end is not None:
                mask &= stamps < end
            frame = frame[mask]
        return frame
