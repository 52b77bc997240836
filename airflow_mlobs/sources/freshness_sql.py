"""Freshness gathered in SQL: the newest timestamp at or before a moment, pushed down as ``MAX()``.

The statements are plain aggregates every database runs the same way, so this gatherer needs
nothing from :mod:`airflow_mlobs.sources.dialect`; the timestamp column's catalog type decides how
the moment is bound (naive columns in wall-clock time of the given zone).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.freshness import FreshnessObservation
from airflow_mlobs.core.timeutil import to_aware, to_naive_in
from airflow_mlobs.core.types import TIME_TYPES, LogicalType, TableRef
from airflow_mlobs.sources.dberrors import source_failure
from airflow_mlobs.sources.sqlkit import catalog_columns, db_message


def _timestamp_source(
    engine: Engine, *, table: TableRef | None, sql: str | None, column: str
) -> tuple[sa.FromClause, sa.ColumnElement[Any], str, bool | None]:
    """The FROM clause, the timestamp column expression, a description, and whether it is naive."""
    if table is not None:
        catalog = {info.name: (info, sql_type) for info, sql_type in catalog_columns(engine, table)}
        found = catalog.get(column) or next(
            (entry for name, entry in catalog.items() if name.lower() == column.lower()), None
        )
        if found is None:
            raise SourceError(
                f"column {column!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
            )
        info, sql_type = found
        if info.logical_type not in TIME_TYPES:
            raise SourceError(
                f"column {info.name!r} of table {table} is {info.physical_type}, not a timestamp or date; "
                "freshness needs a timestamp column"
            )
        # Only the timestamp column is needed; its catalog type drives binding and result parsing.
        source = sa.table(table.name, sa.column(info.name, sql_type), schema=table.schema)
        naive: bool | None = None
        if info.logical_type is LogicalType.TIMESTAMP:
            naive = not bool(getattr(sql_type, "timezone", False))
        return source, source.c[info.name], f"table {table}", naive
    if sql is None:
        raise SourceError("give either a table or a sql query")
    # End with a newline, so a final ``-- comment`` cannot swallow the subquery's closing parenthesis.
    query = sql.strip().rstrip(";").rstrip() + "\n"
    subquery = sa.text(query).columns(sa.column(column)).subquery("mlobs_src")
    return subquery, subquery.c[column], "query", None


def newest_timestamp(
    engine: Engine,
    *,
    column: str,
    as_of: datetime,
    naive_zone: tzinfo,
    table: TableRef | None = None,
    sql: str | None = None,
) -> FreshnessObservation:
    """The newest ``column`` value at or before ``as_of``, pushed down as ``MAX()``.

    One ``SELECT MAX(col)`` in the common case. When the newest row is after ``as_of`` (a backfill of
    an old interval), one more ``MAX(col) WHERE col <= :as_of`` query, with ``as_of`` bound in the
    column's own convention (naive wall-clock in ``naive_zone`` for columns without time zone). Only
    when there is no such row does a ``COUNT(*), COUNT(col)`` query run, to tell "no rows" from "only
    NULL timestamps".
    """
    where = f"table {table}" if table is not None else "query"
    try:
        source, col, where, naive = _timestamp_source(engine, table=table, sql=sql, column=column)
        with engine.connect() as conn:
            raw = conn.execute(sa.select(sa.func.max(col)).select_from(source)).scalar()
            newest = _as_timestamp(raw, naive_zone, column, where)
            rows_after: int | None = None
            if newest is not None and newest > as_of:
                if naive is None:
                    naive = (
                        raw is not None and not isinstance(raw, str) and getattr(raw, "tzinfo", None) is None
                    )
                bound = to_naive_in(as_of, naive_zone) if naive else as_of
                param = sa.bindparam("as_of", bound, type_=col.type if table is not None else None)
                row = conn.execute(
                    sa.select(
                        sa.func.max(sa.case((col <= param, col))),
                        sa.func.count(sa.case((col > param, 1))),
                    ).select_from(source)
                ).one()
                newest = _as_timestamp(row[0], naive_zone, column, where)
                rows_after = int(row[1])
            if newest is not None:
                return FreshnessObservation(newest=newest, rows_after_as_of=rows_after)
            counts = conn.execute(sa.select(sa.func.count(), sa.func.count(col)).select_from(source)).one()
            return FreshnessObservation(
                newest=None,
                row_count=int(counts[0]),
                non_null_count=int(counts[1]),
                rows_after_as_of=rows_after,
            )
    except SQLAlchemyError as exc:
        raise source_failure(
            exc, f"freshness query on {where} (column {column!r}) failed: {db_message(exc)}", what=where
        ) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # The driver or SQLAlchemy could not read a stored value as the declared type (SQLite keeps
        # any text in a TIMESTAMP column: "Invalid isoformat string: 'garbage'").
        if isinstance(exc, SourceError):
            raise
        raise SourceError(
            f"column {column!r} of {where} holds a value that cannot be read as a timestamp "
            f"({' '.join(str(exc).split())[:200]}); fix the stored values or cast the column in sql="
        ) from exc


def _as_timestamp(raw: Any, naive_zone: tzinfo, column: str, where: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return to_aware(raw, naive_zone)
    except ValueError as exc:
        raise SourceError(
            f"column {column!r} of {where} holds {raw!r}, which is not a timestamp; "
            "freshness needs a timestamp or date column"
        ) from exc
