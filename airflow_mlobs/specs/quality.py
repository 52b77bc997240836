"""The data-quality check as a plain spec: a Great Expectations suite run once where the data lives
(a table's window in the database, a file's window in memory, or a DataFrame), judged once.

Used by ``ExpectationSuiteOperator``, and by anything that holds a database URL (the CLI, a
notebook) through :func:`~airflow_mlobs.specs.base.url_connected`. Great Expectations and pandas
are imported only when a check runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.quality import judge_validation, load_suite_file, suite_columns
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone, parse_moment
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.specs.base import Connector, connector_or_default, source_label
from airflow_mlobs.specs.schema import resolve_contract_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualitySpec:
    """A suite run as plain values (templates already rendered).

    One source: ``table`` (with ``conn_id``; the suite runs as SQL in the database), ``path`` (a
    Parquet, Feather/Arrow or CSV file or dataset directory, read in memory), or ``dataframe=True``
    (the rows are the DataFrame given to :meth:`evaluate`). With ``timestamp_column`` only the rows in
    the window given to :meth:`evaluate` are validated; without it, all of them. ``suite`` is the suite
    JSON's path (relative paths resolved as by
    :func:`~airflow_mlobs.specs.schema.resolve_contract_path`, also beside ``dag_file``);
    ``suite_parameters`` fill the suite's ``{"$PARAMETER": "name"}`` arguments.
    ``sensitive_columns``: expectations about them report counts and percentages only (no example
    of an unexpected value, no observed minimum/maximum/median, no error text that could quote a
    value: :func:`~airflow_mlobs.core.quality.withhold_values`); no key is needed.
    """

    suite: str
    conn_id: str | None = None
    table: str | None = None
    path: str | None = None
    dataframe: bool = False
    timestamp_column: str | None = None
    timestamp_timezone: str = "UTC"
    suite_parameters: Mapping[str, Any] = field(default_factory=dict)
    dag_file: str | None = None
    dataset: str | None = None
    sensitive_columns: tuple[str, ...] = ()

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for an impossible combination of arguments."""
        given = [
            name
            for name, present in (
                ("table", self.table is not None),
                ("path", self.path is not None),
                ("dataframe", self.dataframe),
            )
            if present
        ]
        if len(given) != 1:
            raise ValueError(
                f"{task_id}: give exactly one of table (with conn_id), path or dataframe "
                f"(got {given or 'none'})"
            )
        if self.table is not None and not self.conn_id:
            raise ValueError(f"{task_id}: a table source needs conn_id")
        if not self.suite:
            raise ValueError(f"{task_id}: suite is required (a suite JSON under expectations/)")
        self.check_values(task_id, ValueError, literal_only=True)

    def check_values(self, where: str, error: type[ValueError], *, literal_only: bool = False) -> None:
        """Raise ``error`` naming ``where`` (the task, or the dataset at run time) and the argument
        for a value outside what it allows. With ``literal_only`` (at DAG parse time) a templated
        value (``{{ ... }}``) is left for the run, when it is checked rendered."""

        def given(value: Any) -> bool:
            return not (literal_only and isinstance(value, str) and "{{" in value)

        for name in ("suite", "conn_id", "table", "path", "timestamp_column"):
            value = getattr(self, name)
            if value is None or not given(value):
                continue
            if not isinstance(value, str) or not value.strip():
                raise error(f"{where}: {name} must be a non-empty string, got {value!r}")
        if given(self.timestamp_timezone):
            if not isinstance(self.timestamp_timezone, str) or not self.timestamp_timezone.strip():
                raise error(
                    f"{where}: timestamp_timezone must be a time zone name such as 'UTC' or "
                    f"'Europe/Berlin', got {self.timestamp_timezone!r}"
                )
            try:
                get_zone(self.timestamp_timezone)
            except ValueError as exc:
                raise error(f"{where}: timestamp_timezone: {exc}") from exc
        if given(self.suite_parameters) and not isinstance(self.suite_parameters, Mapping):
            raise error(
                f"{where}: suite_parameters must be a mapping of names to values, "
                f"got {type(self.suite_parameters).__name__}"
            )

    def dataset_name(self) -> str:
        """``conn_id:table`` or the path, unless ``dataset`` names it (it must, for a DataFrame)."""
        if self.dataset:
            return self.dataset
        return source_label(self.conn_id, table=self.table, path=self.path)

    def evaluate(
        self,
        *,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        frame: Any = None,
        connect: Connector | None = None,
    ) -> CheckResult:
        """Load the suite, run it on the window's rows where the data lives, and judge the
        validation. The window applies only with ``timestamp_column``. ``frame`` is a DataFrame
        source's rows, or a callable returning them (called once the suite has loaded);
        ``connect`` opens the database (default: Airflow connections).

        Raises ``MlobsInputError`` for bad input (a missing suite, table, column or file)."""
        # Great Expectations reads this on import; no usage analytics from a worker.
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        from airflow_mlobs.sources import quality as quality_source

        dataset = self.dataset_name()
        self.check_values(dataset, MlobsInputError)
        # Bounds without a zone are UTC (never the machine's zone), as everywhere in the package.
        window_start = parse_moment(window_start, "window_start")
        window_end = parse_moment(window_end, "window_end")
        suite_path = resolve_contract_path(self.suite, self.dag_file)
        suite = load_suite_file(suite_path)
        source = str(suite_path)
        zone = get_zone(self.timestamp_timezone)
        windowed = bool(self.timestamp_column)
        start = window_start if windowed else None
        end = window_end if windowed else None
        if self.table:
            assert self.conn_id is not None
            with connector_or_default(connect)(self.conn_id) as engine:
                run = quality_source.validate_table(
                    engine,
                    parse_table_name(self.table),
                    suite,
                    source=source,
                    timestamp_column=self.timestamp_column,
                    window_start=start,
                    window_end=end,
                    naive_zone=zone,
                    suite_parameters=self.suite_parameters,
                )
            log.info(
                "Validated %s in the database: %d SQL statements (aggregates and LIMIT %d samples)",
                dataset,
                len(run.statements),
                quality_source.PARTIAL_UNEXPECTED_COUNT,
            )
            label = f"table {self.table}"
        else:
            rows = self._rows(suite, frame, window_start, window_end)
            run = quality_source.validate_frame(
                rows, suite, source=source, suite_parameters=self.suite_parameters
            )
            label = f"file {self.path}" if self.path else f"the DataFrame {dataset}"
        return judge_validation(
            run.validation,
            dataset=dataset,
            suite_name=str(suite.get("name") or suite_path.stem),
            window_start=start,
            window_end=end,
            row_count=run.row_count,
            data_label=label,
            sensitive_columns=self.sensitive_columns,
        )

    def _rows(
        self, suite: Mapping[str, Any], frame: Any, start: datetime | None, end: datetime | None
    ) -> Any:
        """The rows a file or DataFrame source validates: only the window's, and for a file only the
        columns the suite names (and the timestamp)."""
        if self.path:
            if self.timestamp_column is None:
                return file_source.read_window(self.path)
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
        if callable(frame):
            frame = frame()
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise MlobsInputError(
                f"the DataFrame source {self.dataset_name()} is {type(frame).__name__}, not a pandas "
                "DataFrame; give a DataFrame or a callable returning one"
            )
        if frame.columns.duplicated().any():
            duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise MlobsInputError(
                f"the DataFrame source {self.dataset_name()} has duplicate column names: "
                + ", ".join(duplicated)
                + "; rename them so each expectation names one column"
            )
        if self.timestamp_column is not None and (start is not None or end is not None):
            if self.timestamp_column not in frame.columns:
                raise MlobsInputError(
                    f"timestamp column {self.timestamp_column!r} not found in the DataFrame; it has: "
                    + ", ".join(map(str, frame.columns))
                )
            try:
                stamps = pd.to_datetime(frame[self.timestamp_column], utc=True)
            except (ValueError, TypeError) as exc:
                raise MlobsInputError(
                    f"timestamp column {self.timestamp_column!r} of the DataFrame {self.dataset_name()} "
                    f"holds values that are not timestamps: {' '.join(str(exc).split())[:200]}"
                ) from exc
            mask = pd.Series(True, index=frame.index)
            if start is not None:
                mask &= stamps >= start
            if end is not None:
                mask &= stamps < end
            frame = frame[mask]
        return frame
