"""Running Great Expectations suites where the data lives: a SQL table's window in the database, or
a DataFrame in memory. Returns the validation result as a plain dict for
:func:`airflow_mlobs.core.quality.judge_validation`.

Great Expectations is imported inside the functions (never at DAG parse time), with analytics off
and an ephemeral context (no project files).

SQL: how the window reaches the database
-----------------------------------------
The suite runs on a Great Expectations table asset of the real table, so column names and types
come from the database catalog (type expectations work) and every metric is computed by
Great Expectations' ``SqlAlchemyExecutionEngine`` as SQL over ``SELECT * FROM table WHERE ts >=
:start AND ts < :end`` (bounds bound as parameters, naive columns in ``naive_zone`` wall-clock time).
Only aggregates and the short ``partial_unexpected_list`` samples (``LIMIT 20``) cross the wire.

Two things Great Expectations 1.x does that this module avoids on purpose: a query asset with the
window in its SQL makes Great Expectations execute the bare query once to learn its column names
(on PostgreSQL, psycopg2 then transfers every row of the window to the worker), and a query asset
has no column types, so ``expect_column_values_to_be_of_type`` cannot run. Hence the windowed
selectable is loaded as the batch data of a whole-table batch (``SqlAlchemyBatchData`` with
``source_table_name``), which keeps catalog introspection and pushes the window into every query.
The engine's :class:`~airflow_mlobs.sources.dialect.SqlDialect` picks GE's datasource for the database.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.quality import SuiteError, check_suite_dict
from airflow_mlobs.core.types import LogicalType, TableRef
from airflow_mlobs.sources.dberrors import source_failure
from airflow_mlobs.sources.dialect import SqlDialect, dialect_for
from airflow_mlobs.sources.sqlkit import catalog_columns, window_conditions

GX_ANALYTICS_ENV = "GX_ANALYTICS_ENABLED"
#: Unexpected values listed per failed expectation (Great Expectations' SUMMARY format).
PARTIAL_UNEXPECTED_COUNT = 20
_DATASOURCE = "mlobs"


@dataclass(frozen=True)
class SuiteRun:
    """A suite's validation result (dict form) and, for SQL sources, the statements issued."""

    validation: dict[str, Any]
    statements: tuple[str, ...] = field(default=())
    row_count: int | None = None


_GX_LOGGERS = (
    "great_expectations",
    "great_expectations.expectations.metrics.util",
    # Sets its own level to INFO when imported ("Created temporary directory ... for ephemeral docs").
    "great_expectations.data_context.types.base",
)


def quiet_gx_logging() -> None:
    """Lower Great Expectations' loggers to ERROR. Runs *before* the first import, since importing
    it logs some 200 INFO lines (``great_expectations._docs_decorators``, the expectation registry)
    that would otherwise open the first quality task's log, and again after it, for the module that
    sets its own level when imported."""
    for name in _GX_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def import_gx() -> Any:
    """Import Great Expectations with its usage analytics off (it reads the variable on import) and
    its import-time INFO logging silenced (see :func:`quiet_gx_logging`)."""
    os.environ[GX_ANALYTICS_ENV] = "false"
    quiet_gx_logging()
    import great_expectations as gx

    quiet_gx_logging()
    return gx


def _context(gx: Any) -> Any:
    """An ephemeral context without progress bars (they would flood task logs)."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def build_suite(suite: Mapping[str, Any], *, source: str = "<suite>") -> Any:
    """A ``gx.ExpectationSuite`` from a suite dict, one expectation at a time.

    Great Expectations' own ``ExpectationSuite(**suite)`` logs and silently drops an expectation of
    an unknown type; here it is a :class:`SuiteError` naming the file, the expectation's position and
    its type, as is an expectation with invalid arguments.
    """
    gx = import_gx()
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.metadata_types import FailureSeverity

    check_suite_dict(suite, source=source)
    expectations = []
    for index, item in enumerate(suite["expectations"]):
        kind = item.get("type") or item.get("expectation_type")
        where = f"{source}: expectation #{index + 1} ({kind})"
        try:
            severity = FailureSeverity(str(item.get("severity") or "critical").lower())
        except ValueError as exc:
            raise SuiteError(
                f"{where}: severity must be critical, warning or info, got {item.get('severity')!r}"
            ) from exc
        try:
            config = ExpectationConfiguration(
                type=kind,
                kwargs=dict(item.get("kwargs") or {}),
                meta=dict(item.get("meta") or {}),
                notes=item.get("notes"),
                severity=severity,
            )
            expectations.append(config.to_domain_obj())
        except ExpectationNotFoundError as exc:
            raise SuiteError(
                f"{where}: unknown expectation type {kind!r}; Great Expectations "
                f"{gx.__version__} has no such expectation (check the spelling)"
            ) from exc
        except Exception as exc:  # pydantic validation and configuration errors, in GE's words
            detail = " ".join(str(exc).split())
            raise SuiteError(f"{where}: invalid arguments: {detail[:300]}") from exc
    return gx.ExpectationSuite(
        name=str(suite.get("name") or "suite"), expectations=expectations, meta=dict(suite.get("meta") or {})
    )


def _result_format() -> dict[str, Any]:
    return {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}


def _validate_with(validator: Any, suite: Any, suite_parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run ``suite`` on the validator's active batch; the dict form of a suite validation result."""
    from great_expectations.exceptions.exceptions import SuiteParameterError
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    try:
        configs = validator.process_expectations_for_validation(
            suite.expectation_configurations, dict(suite_parameters or {}) or None
        )
    except SuiteParameterError as exc:
        raise MlobsInputError(
            f"suite {suite.name}: {exc}; pass it in suite_parameters={{'name': value}}"
        ) from exc
    results = validator.graph_validate(
        configurations=configs, runtime_configuration={"result_format": _result_format()}
    )
    stats = calc_validation_statistics(results)
    return {
        "success": bool(stats.success),
        "suite_name": suite.name,
        "statistics": {
            "evaluated_expectations": stats.evaluated_expectations,
            "successful_expectations": stats.successful_expectations,
            "unsuccessful_expectations": stats.unsuccessful_expectations,
            "success_percent": stats.success_percent,
        },
        "results": [result.to_json_dict() for result in results],
    }


def _scrub(message: str, engine: Engine) -> str:
    """An error message without the connection's password."""
    password = engine.url.password
    text = " ".join(str(message).split())
    if password:
        text = text.replace(str(password), "***")
    return text[:500]


def _add_datasource(context: Any, engine: Engine, dialect: SqlDialect) -> Any:
    # Great Expectations' fluent datasources take a connection string, not an engine, so the
    # password goes into it; the string is never logged or stored (errors are scrubbed).
    url = engine.url.render_as_string(hide_password=False)
    return dialect.gx_datasource(context, _DATASOURCE, url)


def gx_identifier(engine: Engine, name: str) -> str:
    """``name`` as Great Expectations' table asset needs it: a name the database must quote (spaces,
    ``Größe``, upper case, reserved words) wrapped in double quotes, which GE then keeps quoted;
    unquoted, GE would lower-case it and put it into SQL bare (``SELECT 1 FROM Größe Tabelle``)."""
    if engine.dialect.identifier_preparer.quote(name) == name:
        return name
    return '"' + name.replace('"', '""') + '"'


def validate_table(
    engine: Engine,
    table: TableRef,
    suite: Mapping[str, Any],
    *,
    source: str = "<suite>",
    timestamp_column: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    naive_zone: tzinfo,
    suite_parameters: Mapping[str, Any] | None = None,
    dialect: SqlDialect | None = None,
) -> SuiteRun:
    """Validate ``suite`` on the rows of ``table`` in ``[window_start, window_end)`` of
    ``timestamp_column``, in the database (see the module docstring). ``dialect`` (default:
    :func:`~airflow_mlobs.sources.dialect.dialect_for` the engine) picks GE's datasource. Raises
    ``SourceError`` naming the table or column when they do not exist, ``SuiteError`` for a suite
    GE cannot load."""
    catalog = {info.name: (info, sql_type) for info, sql_type in catalog_columns(engine, table)}
    conditions: list[sa.ColumnElement[bool]] = []
    if timestamp_column and (window_start is not None or window_end is not None):
        if timestamp_column not in catalog:
            raise SourceError(
                f"timestamp column {timestamp_column!r} not found in table {table}; it has: "
                + ", ".join(sorted(catalog))
            )
        info, ts_type = catalog[timestamp_column]
        if info.logical_type not in (LogicalType.TIMESTAMP, LogicalType.DATE):
            raise SourceError(
                f"column {timestamp_column!r} of table {table} is {info.physical_type}, not a timestamp "
                "or date; the window needs a timestamp column"
            )
        naive = info.logical_type is LogicalType.DATE or not bool(getattr(ts_type, "timezone", False))
        source_table = sa.table(table.name, sa.column(timestamp_column, ts_type), schema=table.schema)
        conditions = window_conditions(
            source_table.c[timestamp_column], naive, naive_zone, window_start, window_end
        )
    else:
        source_table = sa.table(table.name, schema=table.schema)
    windowed = sa.select(sa.text("*")).select_from(source_table).where(*conditions)

    gx_suite = build_suite(suite, source=source)
    row_count = _count_rows(engine, source_table, conditions, table)
    gx = import_gx()
    from great_expectations.execution_engine.sqlalchemy_batch_data import SqlAlchemyBatchData
    from great_expectations.validator.validator import Validator

    context = _context(gx)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    execution_engine: Any = None
    try:
        try:
            datasource = _add_datasource(context, engine, dialect or dialect_for(engine))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # schema_name is deprecated in favour of the URL's
                asset = datasource.add_table_asset(
                    name="window",
                    table_name=gx_identifier(engine, table.name),
                    schema_name=gx_identifier(engine, table.schema) if table.schema else None,
                )
            batch = asset.add_batch_definition_whole_table("whole_table").get_batch()
            execution_engine = datasource.get_execution_engine()
        except MlobsInputError:
            raise
        except Exception as exc:
            raise source_failure(
                exc,
                f"Great Expectations cannot open table {table}: {_scrub(str(exc), engine)}",
                what=f"table {table}",
            ) from exc
        sa.event.listen(execution_engine.engine, "after_cursor_execute", record)
        validator = Validator(execution_engine=execution_engine, batches=[batch], data_context=context)
        # The whole-table batch keeps catalog introspection (source_table_name); its rows are
        # replaced by the window, so every metric query reads only the window.
        execution_engine.load_batch_data(
            batch.id,
            SqlAlchemyBatchData(
                execution_engine=execution_engine,
                selectable=windowed,
                source_table_name=table.name,
                source_schema_name=table.schema,
                create_temp_table=False,
            ),
        )
        validation = _validate_with(validator, gx_suite, suite_parameters)
    finally:
        if execution_engine is not None:
            if sa.event.contains(execution_engine.engine, "after_cursor_execute", record):
                sa.event.remove(execution_engine.engine, "after_cursor_execute", record)
            connection = getattr(execution_engine, "_connection", None)
            if connection is not None:
                connection.close()
            execution_engine.engine.dispose()
    return SuiteRun(validation=validation, statements=tuple(statements), row_count=row_count)


def _count_rows(
    engine: Engine, source_table: sa.TableClause, conditions: list[sa.ColumnElement[bool]], table: TableRef
) -> int:
    """How many rows the window holds (one ``COUNT(*)``): zero rows is a skipped check, not a pass."""
    try:
        with engine.connect() as conn:
            counted = conn.execute(
                sa.select(sa.func.count()).select_from(source_table).where(*conditions)
            ).scalar()
    except SQLAlchemyError as exc:
        raise source_failure(
            exc,
            f"counting the rows of table {table} failed: {_scrub(str(exc), engine)}",
            what=f"table {table}",
        ) from exc
    return int(counted or 0)


def validate_frame(
    frame: Any,
    suite: Mapping[str, Any],
    *,
    source: str = "<suite>",
    suite_parameters: Mapping[str, Any] | None = None,
) -> SuiteRun:
    """Validate ``suite`` on a pandas DataFrame (in memory)."""
    gx_suite = build_suite(suite, source=source)
    gx = import_gx()
    from great_expectations.validator.validator import Validator

    context = _context(gx)
    batch = (
        context.data_sources.add_pandas(_DATASOURCE)
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole_frame")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    validator = Validator(execution_engine=batch.data.execution_engine, batches=[batch], data_context=context)
    return SuiteRun(validation=_validate_with(validator, gx_suite, suite_parameters), row_count=len(frame))
