"""The covariance profile pushed down: ONE aggregate statement, one row fetched.

``SELECT count(*), count(complete), sum(y_i) ..., sum(y_i * y_j) (i <= j) ...`` with
``y_i = CAST(x_i AS DOUBLE) - c_i`` over the complete rows (every column finite, the dialect's
:meth:`~airflow_mlobs.sources.dialect.SqlDialect.finite` test): ``2 + k + k(k+1)/2`` aggregates.
With ``fold_by`` (an integer column) and ``folds`` the same statement groups by
``fold_by % folds`` and fetches one row per fold (the reference's held-out folds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from airflow_mlobs.core.covariance import CovarianceProfile
from airflow_mlobs.sources.dialect import dialect_for
from airflow_mlobs.sources.sqlkit import DOUBLE, QueryStats


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
) -> sa.Select[Any]:
    dialect = dialect_for(engine)
    t = sa.table(table, *(sa.column(c) for c in [*columns, *([fold_by] if fold_by else [])]), schema=schema)
    complete = sa.and_(*(dialect.finite(t.c[c]) for c in columns))
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


def gather_covariance(
    engine: sa.Engine,
    table: str,
    columns: Sequence[str],
    shift: Sequence[float] | None = None,
    *,
    schema: str | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> tuple[CovarianceProfile, QueryStats]:
    """The window's covariance profile from one statement fetching one row."""
    c = [0.0] * len(columns) if shift is None else [float(v) for v in shift]
    stmt = covariance_statement(engine, table, columns, c, schema=schema, where=where)
    with engine.connect() as conn:
        rows = conn.execute(stmt).fetchall()
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
    with engine.connect() as conn:
        rows = conn.execute(stmt).fetchall()
    return [_profile(r, columns, c) for r in rows], QueryStats(1, len(rows))
