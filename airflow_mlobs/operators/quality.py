"""``ExpectationSuiteOperator``: a Great Expectations suite on the run's window, where the data lives.

The check itself is :class:`~airflow_mlobs.specs.quality.QualitySpec`; this module turns the
operator's arguments and the run's window into that spec's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.quality import CHECK
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_window_arg,
    with_window_basis,
)
from airflow_mlobs.operators.schema import TABLE_OR_FILE_FIELDS
from airflow_mlobs.specs.quality import QualitySpec

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
    could not run, e.g. naming a column the data lacks, is an ``error`` naming the column. A window
    without rows is ``skipped`` ("no rows in table t in the window <start> .. <end>"), unless an
    expectation about the table's shape fails, such as a row-count minimum: then it ``fail``s.

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
    :param sensitive_columns: expectations about these columns report counts and percentages only:
        Great Expectations' ``partial_unexpected_list``/``unexpected_list`` and our examples are
        dropped as the validation is read, observed values that are one row's value (min, max,
        median, distinct values) withheld; means, sums and counts stay. No key is needed.

    Plus ``dataset``, ``results_conn_id`` and ``on_breach`` from :class:`BaseCheckOperator`.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "suite",
        *TABLE_OR_FILE_FIELDS,
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
        self.suite = suite
        self.conn_id = conn_id
        self.table = table
        self.path = path
        self.dataframe = dataframe
        self.timestamp_column = timestamp_column
        self.timestamp_timezone = timestamp_timezone
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.suite_parameters = dict(suite_parameters or {})
        self.spec().validate(self.task_id)
        parse_window_arg(window, self.task_id, timestamp_column)

    def spec(self, dag_file: str | None = None) -> QualitySpec:
        """The rendered arguments as a :class:`QualitySpec` (a DataFrame source is named by
        ``task_id`` unless ``dataset`` names it); ``dag_file`` is where relative suite paths are
        also looked up."""
        in_memory = self.dataframe is not None
        return QualitySpec(
            suite=self.suite,
            conn_id=self.conn_id,
            table=self.table,
            path=self.path,
            dataframe=in_memory,
            timestamp_column=self.timestamp_column,
            timestamp_timezone=self.timestamp_timezone,
            suite_parameters=self.suite_parameters,
            dag_file=dag_file,
            dataset=self.dataset or (self.task_id if in_memory else None),
            sensitive_columns=tuple(self.sensitive_columns),
        )

    def dataset_name(self) -> str:
        """See :meth:`QualitySpec.dataset_name`."""
        return self.spec().dataset_name()

    def evaluate(self, context: Context) -> CheckResult:
        """Resolve the run's window, then run the suite on it where the data lives and judge it."""
        judged = judged_window(
            context,
            self.window,
            start=self.window_start,
            end=self.window_end,
            required=self.timestamp_column is not None,
        )
        spec = self.spec(getattr(context.get("dag"), "fileloc", None))
        result = spec.evaluate(window_start=judged.start, window_end=judged.end, frame=self.dataframe)
        return with_window_basis(result, judged) if self.timestamp_column else result
