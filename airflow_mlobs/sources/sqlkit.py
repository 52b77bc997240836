"""SQL toolkit shared by every SQL gatherer: catalog reads, type mapping, bound windows, messages.

Nothing here imports Airflow: functions take a SQLAlchemy ``Engine`` (the operators get it from an
Airflow connection). The check-specific gatherers (``freshness_sql``, ``drift_sql``,
``baseline_sql``, ``performance_sql``, ``quality``) build on these. Everything here is the same for
every database (SQLAlchemy's own dialects spell it); where the SQL itself differs between databases,
the gatherers ask :mod:`airflow_mlobs.sources.dialect` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.timeutil import to_naive_in
from airflow_mlobs.core.types import ColumnInfo, LogicalType, TableRef, logical_type_from_name
from airflow_mlobs.sources.dberrors import source_failure

MAX_FLOAT = 1.7976931348623157e308
"""The largest finite double: values beyond it (and NaN) are not finite numbers."""

DOUBLE: sat.TypeEngine[float] = sa.Float().with_variant(sa.Double(), "duckdb", "mysql", "mariadb")
"""The type every gatherer casts a number to: an 8-byte double in every database. ``FLOAT`` is one
in PostgreSQL and SQLite (their statements keep it), but a 4-byte float in DuckDB and MySQL's
``CAST(x AS FLOAT)`` (measured: DuckDB's ``CAST(0.1 AS FLOAT)`` is 0.10000000149011612); there
``DOUBLE`` is cast to instead."""


def logical_type_of(sql_type: sat.TypeEngine[Any]) -> LogicalType:
    """The logical type family of a SQLAlchemy column type (reflected from a catalog).

    MySQL and MariaDB have no boolean type: ``BOOLEAN`` is stored as ``TINYINT(1)`` and reflected
    so, and is read back as a boolean here (what MySQL's connectors and ORMs do), so its categories
    are ``true``/``false`` as on every other database."""
    if type(sql_type).__name__ == "TINYINT" and getattr(sql_type, "display_width", None) == 1:
        return LogicalType.BOOLEAN
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


def type_name(sql_type: sat.TypeEngine[Any], engine: Engine) -> str:
    """The type as the database spells it (``DOUBLE PRECISION``), else the SQLAlchemy class name."""
    try:
        return str(sql_type.compile(dialect=engine.dialect))
    except Exception:
        return type(sql_type).__name__.upper()


def read_columns(engine: Engine, table: TableRef) -> list[ColumnInfo]:
    """The columns of ``table`` from the database catalog (no data scan).

    Raises ``SourceError`` naming the table when it does not exist.
    """
    return [info for info, _ in catalog_columns(engine, table)]


def catalog_columns(engine: Engine, table: TableRef) -> list[tuple[ColumnInfo, sat.TypeEngine[Any]]]:
    """One catalog read: each column's :class:`ColumnInfo` with its SQLAlchemy type."""
    # Imported here: the dialect module builds on this one (MAX_FLOAT, DOUBLE).
    from airflow_mlobs.sources.dialect import dialect_for

    try:
        columns = dialect_for(engine).get_columns(engine, table.name, table.schema)
    except NoSuchTableError as exc:
        raise SourceError(f"table {table} does not exist") from exc
    except SQLAlchemyError as exc:
        raise source_failure(
            exc, f"cannot read the catalog for table {table}: {db_message(exc)}", what=f"table {table}"
        ) from exc
    if not columns:
        # SQLite's inspector returns an empty list for a missing table instead of raising.
        raise SourceError(f"table {table} does not exist")
    return [
        (
            ColumnInfo(
                name=str(col["name"]),
                logical_type=logical_type_of(col["type"]),
                physical_type=type_name(col["type"], engine),
                nullable=bool(col.get("nullable", True)),
            ),
            col["type"],
        )
        for col in columns
    ]


def db_message(exc: SQLAlchemyError) -> str:
    """The first line of the database's own message, for errors that name the table or column."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


@dataclass(frozen=True)
class QueryStats:
    """What crossed the wire for one profile: statements issued and rows fetched."""

    statements: int
    rows_fetched: int


def window_conditions(
    ts: sa.ColumnElement[Any],
    naive: bool | None,
    zone: tzinfo,
    start: datetime | None,
    end: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    """``start <= ts < end`` with the bounds bound in the column's own convention."""
    conditions: list[sa.ColumnElement[bool]] = []
    for bound, op in ((start, "ge"), (end, "lt")):
        if bound is None:
            continue
        value = to_naive_in(bound, zone) if naive else bound
        param = sa.bindparam(f"window_{op}", value, type_=ts.type if naive is not None else None)
        conditions.append(ts >= param if op == "ge" else ts < param)
    return conditions
