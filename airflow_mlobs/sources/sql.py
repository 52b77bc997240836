"""Gathering from SQL databases through SQLAlchemy: catalog reads and aggregate queries only.

Nothing here imports Airflow: functions take a SQLAlchemy ``Engine`` (the operators get it from an
Airflow connection). Every function returns a small summary; no table rows cross the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.freshness import FreshnessObservation
from airflow_mlobs.core.schema import ColumnInfo, LogicalType, logical_type_from_name
from airflow_mlobs.core.timeutil import to_aware, to_naive_in


@dataclass(frozen=True)
class TableRef:
    """A table name with its optional schema, as the database spells them (quotes removed)."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


_PART = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^."\s]+))\s*')


def parse_table_name(text: str, schema: str | None = None) -> TableRef:
    """Parse ``table``, ``schema.table`` or quoted parts (``"Analytics"."Features"``).

    Quoted parts keep their case; unquoted parts are passed as written (SQLAlchemy quotes names that
    need it, and PostgreSQL folds unquoted names to lower case, so write them as the catalog has them).
    """
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.end() == pos:
            raise SourceError(
                f'cannot read table name {text!r}; write table, schema.table or "Quoted"."Name"'
            )
        parts.append(match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ".":
                raise SourceError(f"cannot read table name {text!r}")
            pos += 1
    if len(parts) == 1:
        return TableRef(name=parts[0], schema=schema)
    if len(parts) == 2:
        if schema is not None and schema != parts[0]:
            raise SourceError(
                f"table {text!r} names schema {parts[0]!r} but schema={schema!r} was also given"
            )
        return TableRef(name=parts[1], schema=parts[0])
    raise SourceError(f"cannot read table name {text!r}; write table or schema.table")


def logical_type_of(sql_type: sat.TypeEngine[Any]) -> LogicalType:
    """The logical type family of a SQLAlchemy column type (reflected from a catalog)."""
    checks: list[tuple[type[Any], LogicalType]] = [
        (sat.Boolean, LogicalType.BOOLEAN),
        (sat.Integer, LogicalType.INTEGER),
        (sat.Float, LogicalType.FLOAT),
        (sat.Numeric, LogicalType.DECIMAL),
        (sat.DateTime, LogicalType.TIMESTAMP),
        (sat.Date, LogicalType.DATE),
        (sat.String, LogicalType.STRING),
        (sat.Enum, LogicalType.STRING),
        (sat.Uuid, LogicalType.STRING),
        (sat._Binary, LogicalType.BINARY),
    ]
    for cls, logical in checks:
        if isinstance(sql_type, cls):
            return logical
    try:
        name = str(sql_type.compile())
    except Exception:
        name = type(sql_type).__name__
    return logical_type_from_name(name)


def _type_name(sql_type: sat.TypeEngine[Any], engine: Engine) -> str:
    try:
        return str(sql_type.compile(dialect=engine.dialect))
    except Exception:
        return type(sql_type).__name__.upper()


def read_columns(engine: Engine, table: TableRef) -> list[ColumnInfo]:
    """The columns of ``table`` from the database catalog (no data scan).

    Raises ``SourceError`` naming the table when it does not exist.
    """
    return [info for info, _ in _catalog_columns(engine, table)]


def _catalog_columns(engine: Engine, table: TableRef) -> list[tuple[ColumnInfo, sat.TypeEngine[Any]]]:
    """One catalog read: each column's :class:`ColumnInfo` with its SQLAlchemy type."""
    try:
        inspector = sa.inspect(engine)
        columns = inspector.get_columns(table.name, schema=table.schema)
    except NoSuchTableError as exc:
        raise SourceError(f"table {table} does not exist") from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot read the catalog for table {table}: {_db_message(exc)}") from exc
    if not columns:
        # SQLite's inspector returns an empty list for a missing table instead of raising.
        raise SourceError(f"table {table} does not exist")
    return [
        (
            ColumnInfo(
                name=str(col["name"]),
                logical_type=logical_type_of(col["type"]),
                physical_type=_type_name(col["type"], engine),
                nullable=bool(col.get("nullable", True)),
            ),
            col["type"],
        )
        for col in columns
    ]


def _db_message(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


_TIME_TYPES = (LogicalType.TIMESTAMP, LogicalType.DATE)


def _source(
    engine: Engine, *, table: TableRef | None, sql: str | None, column: str
) -> tuple[sa.FromClause, sa.ColumnElement[Any], str, bool | None]:
    """The FROM clause, the timestamp column expression, a description, and whether it is naive."""
    if table is not None:
        catalog = {info.name: (info, sql_type) for info, sql_type in _catalog_columns(engine, table)}
        found = catalog.get(column) or next(
            (entry for name, entry in catalog.items() if name.lower() == column.lower()), None
        )
        if found is None:
            raise SourceError(
                f"column {column!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
            )
        info, sql_type = found
        if info.logical_type not in _TIME_TYPES:
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
        source, col, where, naive = _source(engine, table=table, sql=sql, column=column)
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
        raise SourceError(
            f"freshness query on {where} (column {column!r}) failed: {_db_message(exc)}"
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
