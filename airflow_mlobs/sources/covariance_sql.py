"""The covariance profile pushed down: ONE aggregate statement, one row fetched.

``SELECT count(*), count(complete), sum(y_i) ..., sum(y_i * y_j) (i <= j) ...`` with
``y_i = CAST(x_i AS DOUBLE) - c_i`` over the complete rows (every column finite, the dialect's
:meth:`~airflow_mlobs.sources.dialect.SqlDialect.finite` test): ``2 + k + k(k+1)/2`` aggregates.
With ``fold_by`` (an integer column) and ``folds`` the same statement groups by
``fold_by % folds`` and fetches one row per fold (the reference's held-out folds)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

import numpy as np
import sqlalchemy as sa

from airflow_mlobs.core.covariance import CovarianceProfile
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.dialect import SqlDialect, dialect_for
from airflow_mlobs.sources.sqlkit import DOUBLE, QueryStats, catalog_columns, window_conditions


def covariance_statement(
    engine: sa.Engine,
    table: str,
    columns: Sequence[str],
    shift: Sequence[float],
    *,
    schema: str | None = None,
    where: sa.ColumnElement[bool] | None = None,
    fold_by: str | None = None,
    folds: int | None = None,
    source: sa.FromClause | None = None,
    dialect: SqlDialect | None = None,
) -> sa.Select[Any]:
    """The statement over ``table`` (or the ``source`` clause, for a query or a subquery), in
    ``dialect`` (default: the engine's)."""
    dialect = dialect or dialect_for(engine)
    t = (
        source
        if source is not None
        else sa.table(
            table, *(sa.column(c) for c in [*columns, *([fold_by] if fold_by else [])]), schema=schema
        )
    )
    complete = sa.and_(*(dialect.finite(t.c[c]) for c in columns))
    if dialect.packs_bin_counts:
        return _unflattened_statement(t, columns, shift, complete, where, fold_by, folds)
    y = [sa.cast(t.c[c], DOUBLE) - sa.literal(float(s), DOUBLE) for c, s in zip(columns, shift, strict=True)]
    aggs: list[Any] = [
        sa.func.count().label("n_all"),
        dialect.filtered(sa.func.count, None, complete).label("n"),
    ]
    aggs += [dialect.filtered(sa.func.sum, y[i], complete).label(f"s{i}") for i in range(len(y))]
    aggs += [
        dialect.filtered(sa.func.sum, y[i] * y[j], complete).label(f"p{i}_{j}")
        for i in range(len(y))
        for j in range(i, len(y))
    ]
    if fold_by is not None and folds:
        fold = (t.c[fold_by] % folds).label("fold")
        stmt = sa.select(fold, *aggs).select_from(t).group_by(fold).order_by(fold)
    else:
        stmt = sa.select(*aggs).select_from(t)
    return stmt.where(where) if where is not None else stmt


def _unflattened_statement(
    t: sa.FromClause,
    columns: Sequence[str],
    shift: Sequence[float],
    complete: sa.ColumnElement[bool],
    where: sa.ColumnElement[bool] | None,
    fold_by: str | None,
    folds: int | None,
) -> sa.Select[Any]:
    """The same aggregates (same names, same values) where the dialect packs bin counts
    (PostgreSQL, whose profile statement in :mod:`~airflow_mlobs.sources.drift_sql` keeps its
    subquery the same way): the ``complete`` test once per row instead of once per aggregate.

    ``mlobs_rows`` gives ``ok`` (the rows' ``complete``) and each ``x_i = CAST(x_i AS DOUBLE)``;
    ``mlobs_shifted`` gives ``y_i = CASE WHEN ok THEN x_i - c_i END`` (NULL for an incomplete row,
    so no product of an incomplete row is computed, as under the FILTER); the aggregates are
    ``count(*)``, ``count(*) FILTER (WHERE ok)``, ``sum(y_i)`` and ``sum(y_i * y_j)``, which skip
    the NULLs. ``clock_timestamp()`` (volatile, parallel safe) in both select lists keeps the
    planner from flattening them, which would put ``complete`` back into every aggregate; the plan
    stays a parallel aggregate. 10 columns, 1M rows: 11.1 s -> 1.6 s (``benchmarks/README.md``,
    "JIT and the covariance statement")."""
    no_flatten = sa.func.clock_timestamp().label("mlobs_no_flatten")
    grouped = fold_by is not None and bool(folds)
    rows = sa.select(
        complete.label("ok"),
        *(sa.cast(t.c[c], DOUBLE).label(f"x{i}") for i, c in enumerate(columns)),
        *([t.c[fold_by].label("mlobs_fold_key")] if grouped and fold_by is not None else []),
        no_flatten,
    ).select_from(t)
    if where is not None:
        rows = rows.where(where)
    inner = rows.subquery("mlobs_rows")
    ok = inner.c.ok
    shifted = sa.select(
        ok,
        *(
            sa.case((ok, inner.c[f"x{i}"] - sa.literal(float(c), DOUBLE))).label(f"y{i}")
            for i, c in enumerate(shift)
        ),
        *([inner.c.mlobs_fold_key] if grouped else []),
        sa.func.clock_timestamp().label("mlobs_no_flatten"),
    ).subquery("mlobs_shifted")
    y = [shifted.c[f"y{i}"] for i in range(len(columns))]
    aggs: list[Any] = [sa.func.count().label("n_all"), sa.func.count().filter(shifted.c.ok).label("n")]
    aggs += [sa.func.sum(y[i]).label(f"s{i}") for i in range(len(y))]
    aggs += [sa.func.sum(y[i] * y[j]).label(f"p{i}_{j}") for i in range(len(y)) for j in range(i, len(y))]
    if grouped:
        fold = (shifted.c.mlobs_fold_key % folds).label("fold")
        return sa.select(fold, *aggs).select_from(shifted).group_by(fold).order_by(fold)
    return sa.select(*aggs).select_from(shifted)


def _profile(row: Any, columns: Sequence[str], shift: Sequence[float]) -> CovarianceProfile:
    k = len(columns)
    m = row._mapping
    n = int(m["n"] or 0)
    s = np.array([float(m[f"s{i}"] or 0.0) for i in range(k)])
    ss = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            ss[i, j] = ss[j, i] = float(m[f"p{i}_{j}"] or 0.0)
    return CovarianceProfile.from_arrays(columns, shift, n, int(m["n_all"]) - n, s, ss)


def _fetch(engine: sa.Engine, stmt: sa.Select[Any], dialect: SqlDialect | None = None) -> list[Any]:
    """The rows of ``stmt``, run in a transaction prepared as the drift profile's
    (:meth:`~airflow_mlobs.sources.dialect.SqlDialect.prepare_session` with ``"profile"``: on
    PostgreSQL ``SET LOCAL jit = off``). The statement has ``2 + k + k(k+1)/2`` aggregates, each
    with the whole ``complete`` FILTER; from about 500k rows its estimated cost passes
    ``jit_optimize_above_cost`` and PostgreSQL spent seconds compiling it with inlining and
    optimisation in every process (10 numeric columns: JIT 17 s of CPU over three processes for
    1M rows, the statement 15.5 s instead of 4.3 s; ``benchmarks/README.md``, "JIT and the
    covariance statement")."""
    with engine.begin() as conn:
        (dialect or dialect_for(engine)).prepare_session(conn, "profile")
        return list(conn.execute(stmt).fetchall())


def gather_covariance(
    engine: sa.Engine,
    table: str,
    columns: Sequence[str],
    shift: Sequence[float] | None = None,
    *,
    schema: str | None = None,
    where: sa.ColumnElement[bool] | None = None,
    source: sa.FromClause | None = None,
) -> tuple[CovarianceProfile, QueryStats]:
    """The window's covariance profile from one statement fetching one row (over ``source``
    instead of ``table`` when given: the drift check's table or query clause)."""
    c = [0.0] * len(columns) if shift is None else [float(v) for v in shift]
    stmt = covariance_statement(engine, table, columns, c, schema=schema, where=where, source=source)
    rows = _fetch(engine, stmt)
    return _profile(rows[0], columns, c), QueryStats(1, len(rows))


def gather_covariance_folds(
    engine: sa.Engine,
    table: str,
    columns: Sequence[str],
    fold_by: str,
    folds: int,
    shift: Sequence[float] | None = None,
    *,
    schema: str | None = None,
) -> tuple[list[CovarianceProfile], QueryStats]:
    """One profile per fold ``fold_by % folds`` from one grouped statement (``folds`` rows)."""
    c = [0.0] * len(columns) if shift is None else [float(v) for v in shift]
    stmt = covariance_statement(engine, table, columns, c, schema=schema, fold_by=fold_by, folds=folds)
    rows = _fetch(engine, stmt)
    return [_profile(r, columns, c) for r in rows], QueryStats(1, len(rows))


FOLD_LABEL = "mlobs_fold"


def row_number_folds(
    source: sa.FromClause, columns: Sequence[str], conditions: Sequence[sa.ColumnElement[bool]]
) -> sa.Subquery:
    """``source``'s rows (under ``conditions``) with a ``mlobs_fold`` column ``ROW_NUMBER() OVER ()``
    (portable, every supported database): the reference's folds when no integer key is named. The
    order is the database's scan order, so folds interleave the rows as the in-memory builder's
    ``row_index % K`` does (the folds differ from it, not their purpose)."""
    return (
        sa.select(*(source.c[c] for c in columns), sa.func.row_number().over().label(FOLD_LABEL))
        .select_from(source)
        .where(*conditions)
        .subquery("mlobs_folds")
    )


def gather_covariance_row_folds(
    engine: sa.Engine,
    source: sa.FromClause,
    columns: Sequence[str],
    folds: int,
    shift: Sequence[float],
    conditions: Sequence[sa.ColumnElement[bool]] = (),
    dialect: SqlDialect | None = None,
) -> tuple[list[CovarianceProfile], QueryStats]:
    """One profile per fold ``ROW_NUMBER() % folds`` of ``source`` from one statement (``folds`` rows)."""
    c = [float(v) for v in shift]
    sub = row_number_folds(source, columns, conditions)
    stmt = covariance_statement(
        engine, "", columns, c, fold_by=FOLD_LABEL, folds=folds, source=sub, dialect=dialect
    )
    rows = _fetch(engine, stmt, dialect)
    return [_profile(r, columns, c) for r in rows], QueryStats(1, len(rows))


def gather_window_covariance(
    engine: sa.Engine,
    columns: Sequence[str],
    shift: Sequence[float],
    *,
    table: TableRef | None,
    sql: str | None,
    timestamp_column: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
    naive_zone: tzinfo,
    where: str | None,
) -> tuple[CovarianceProfile | str, QueryStats]:
    """The drift check's window covariance profile from ONE statement over the same rows as
    :func:`~airflow_mlobs.sources.drift_sql.profile_sql` (the window conditions of
    :func:`~airflow_mlobs.sources.sqlkit.window_conditions` and the ``where``); the reason instead
    when a column is gone, or for a windowed ``sql`` query (not gathered yet)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if table is not None:
        catalog = {info.name: sql_type for info, sql_type in catalog_columns(engine, table)}
        missing = [c for c in columns if c not in catalog]
        if missing:
            return f"columns missing from table {table}: {', '.join(missing)}", QueryStats(0, 0)
        wanted = [*columns, *([timestamp_column] if timestamp_column and timestamp_column in catalog else [])]
        source: sa.FromClause = sa.table(
            table.name, *(sa.column(n, catalog[n]) for n in dict.fromkeys(wanted)), schema=table.schema
        )
        if timestamp_column and (window_start is not None or window_end is not None):
            ts = source.c[timestamp_column]
            naive = not bool(getattr(ts.type, "timezone", False))
            conditions += window_conditions(ts, naive, naive_zone, window_start, window_end)
    else:
        assert sql is not None
        if timestamp_column and (window_start is not None or window_end is not None):
            return "a windowed sql query is not gathered for joint drift yet (use table=)", QueryStats(0, 0)
        query = sql.strip().rstrip(";").rstrip() + "\n"
        source = sa.text(query).columns(*(sa.column(n) for n in columns)).subquery("mlobs_src")
    if where:
        conditions.append(sa.text(f"({where})"))  # type: ignore[arg-type]
    profile, stats = gather_covariance(
        engine, "", columns, shift, where=sa.and_(*conditions) if conditions else None, source=source
    )
    return profile, stats
