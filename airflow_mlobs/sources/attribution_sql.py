"""Attribution sums gathered in SQL: one aggregate statement per window, one row fetched.

For each feature's attribution column the statement computes ``COUNT`` of its finite values,
``SUM(ABS(a))`` and ``SUM(a * a)`` over those values, with the window's row count, as one row (the
window's bounds bound as in the other checks, :func:`~airflow_mlobs.sources.sqlkit.window_conditions`).
A reference window is one more statement of the same shape. A table of global importances
(``model_version, feature, importance``) is read with one more statement, one row per feature.
Every database difference is asked of :mod:`airflow_mlobs.sources.dialect`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.attribution import AttributionSummary, FeatureSums
from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.types import NUMERIC_TYPES, TIME_TYPES, LogicalType, TableRef
from airflow_mlobs.sources.attribution_frame import attribution_columns_of
from airflow_mlobs.sources.dberrors import source_failure
from airflow_mlobs.sources.dialect import dialect_for
from airflow_mlobs.sources.sqlkit import DOUBLE, QueryStats, catalog_columns, db_message, window_conditions


@dataclass(frozen=True)
class AttributionSource:
    """The prediction log: its timestamp column and the attribution columns ``{feature: column}``
    (empty: every column named ``attr__<feature>``)."""

    table: TableRef
    timestamp_column: str
    attribution_columns: Mapping[str, str] | None = None
    model_version_column: str | None = None
    model_version: str | None = None
    naive_zone: tzinfo = UTC


def _resolve(engine: Engine, src: AttributionSource) -> tuple[sa.TableClause, dict[str, str], bool | None]:
    catalog = {info.name: (info, t) for info, t in catalog_columns(engine, src.table)}
    lower = {n.lower(): n for n in catalog}

    def find(column: str, role: str) -> str:
        name = column if column in catalog else lower.get(column.lower())
        if name is None:
            raise SourceError(
                f"{role} {column!r} not found in table {src.table}; it has: {', '.join(sorted(catalog))}"
            )
        return name

    ts = find(src.timestamp_column, "timestamp_column")
    ts_info = catalog[ts][0]
    if ts_info.logical_type not in TIME_TYPES:
        raise SourceError(
            f"timestamp_column {ts!r} of table {src.table} is {ts_info.physical_type}, not a timestamp"
        )
    columns = {
        f: find(c, "attribution column")
        for f, c in attribution_columns_of(list(catalog), src.attribution_columns).items()
    }
    for feature, column in columns.items():
        info = catalog[column][0]
        if info.logical_type not in NUMERIC_TYPES or info.logical_type is LogicalType.BOOLEAN:
            raise SourceError(
                f"attribution column {column!r} (feature {feature!r}) of table {src.table} is "
                f"{info.physical_type}, not a number"
            )
    if src.model_version is not None and src.model_version_column:
        find(src.model_version_column, "model_version_column")
    table = sa.table(src.table.name, *(sa.column(n, catalog[n][1]) for n in catalog), schema=src.table.schema)
    naive = not bool(getattr(catalog[ts][1], "timezone", False))
    return table, {"__ts__": ts, **columns}, naive


def gather_attributions(
    engine: Engine,
    src: AttributionSource,
    *,
    start: datetime,
    end: datetime,
    reference: tuple[datetime, datetime] | None = None,
) -> tuple[AttributionSummary, AttributionSummary | None, QueryStats]:
    """The window's (and the reference window's) per-feature sums; one statement each."""
    table, columns, naive = _resolve(engine, src)
    ts_name = columns.pop("__ts__")
    dialect = dialect_for(engine)
    ts = table.c[ts_name]
    statements = rows = 0
    out: list[AttributionSummary] = []
    for bounds in [(start, end), *([reference] if reference else [])]:
        selects: list[Any] = [sa.func.count().label("n_rows")]
        for i, column in enumerate(columns.values()):
            a = sa.cast(table.c[column], DOUBLE)
            ok = dialect.finite(table.c[column])
            selects += [
                dialect.filtered(sa.func.count, a, ok).label(f"n{i}"),
                dialect.filtered(sa.func.sum, sa.func.abs(a), ok).label(f"s{i}"),
                dialect.filtered(sa.func.sum, a * a, ok).label(f"q{i}"),
            ]
        where = window_conditions(ts, naive, src.naive_zone, bounds[0], bounds[1])
        if src.model_version is not None and src.model_version_column:
            where.append(table.c[src.model_version_column] == sa.bindparam("attr_version", src.model_version))
        statement = sa.select(*selects).select_from(table).where(*where)
        try:
            with engine.connect() as conn:
                row = conn.execute(statement).one()
        except SQLAlchemyError as exc:
            raise source_failure(
                exc,
                f"attribution sums of table {src.table} failed: {db_message(exc)}",
                what=f"table {src.table}",
            ) from exc
        statements += 1
        rows += 1
        m = row._mapping
        out.append(
            AttributionSummary(
                rows=int(m["n_rows"] or 0),
                features={
                    f: FeatureSums(int(m[f"n{i}"] or 0), float(m[f"s{i}"] or 0.0), float(m[f"q{i}"] or 0.0))
                    for i, f in enumerate(columns)
                },
            )
        )
    return out[0], (out[1] if reference else None), QueryStats(statements, rows)


def read_importances(
    engine: Engine, table: TableRef, model_version: str
) -> tuple[dict[str, float], QueryStats]:
    """``{feature: importance}`` of ``model_version`` from a table ``(model_version, feature, importance)``."""
    catalog = {info.name.lower(): info.name for info, _ in catalog_columns(engine, table)}
    missing = [c for c in ("model_version", "feature", "importance") if c not in catalog]
    if missing:
        raise SourceError(
            f"importances table {table} lacks columns {missing}; it needs model_version, feature, importance"
        )
    t = sa.table(
        table.name,
        *(sa.column(catalog[c]) for c in ("model_version", "feature", "importance")),
        schema=table.schema,
    )
    statement = sa.select(t.c[catalog["feature"]], sa.cast(t.c[catalog["importance"]], DOUBLE)).where(
        t.c[catalog["model_version"]] == sa.bindparam("imp_version", model_version)
    )
    try:
        with engine.connect() as conn:
            fetched = conn.execute(statement).all()
    except SQLAlchemyError as exc:
        raise source_failure(
            exc, f"reading importances from {table} failed: {db_message(exc)}", what=f"table {table}"
        ) from exc
    values = {str(r[0]): float(r[1]) for r in fetched if r[1] is not None}
    return values, QueryStats(1, len(fetched))
