"""The pushed-down covariance profile equals numpy's and the in-memory one on the same rows, on
PostgreSQL and SQLite: one statement, one row fetched (one per fold when grouped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.covariance import CovarianceProfile
from airflow_mlobs.sources.covariance_frame import covariance_folds_of_array, covariance_profile_of
from airflow_mlobs.sources.covariance_sql import (
    covariance_statement,
    gather_covariance,
    gather_covariance_folds,
)

COLS = ("x1", "x2", "x3")
SHIFT = [1e6, -2.0, 0.0]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.multivariate_normal([1e6, -2.0, 0.5], [[4, 1.5, 0], [1.5, 1, -0.3], [0, -0.3, 2]], size=3000)
    frame = pd.DataFrame(x, columns=list(COLS))
    frame.loc[10, "x2"] = None
    frame.loc[11, "x3"] = None
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def _close(a: CovarianceProfile, b: np.ndarray) -> None:
    cov = a.covariance()
    assert cov is not None
    np.testing.assert_allclose(cov, b, rtol=1e-9, atol=1e-9 * float(np.abs(b).max()))


def _check(engine: sa.Engine, schema: str | None) -> None:
    frame = _frame()
    frame.to_sql("cov_t", engine, schema=schema, index=False)
    prof, stats = gather_covariance(engine, "cov_t", COLS, SHIFT, schema=schema)
    assert stats.statements == 1 and stats.rows_fetched == 1
    keep = frame[list(COLS)].dropna().to_numpy()
    assert prof.n == len(keep) == 2998 and prof.dropped == 2
    _close(prof, np.cov(keep, rowvar=False))
    mem = covariance_profile_of(frame, COLS, SHIFT)
    np.testing.assert_allclose(prof.mean(), mem.mean(), rtol=1e-12)
    folds, fstats = gather_covariance_folds(engine, "cov_t", COLS, "id", 4, SHIFT, schema=schema)
    assert fstats.rows_fetched == 4 and len(folds) == 4
    mem_folds = covariance_folds_of_array(frame[list(COLS)].to_numpy(), COLS, 4, SHIFT)
    for got, want in zip(folds, mem_folds, strict=True):
        assert got.n == want.n
        cov = want.covariance()
        assert cov is not None
        _close(got, cov)
    union = folds[0].merge(folds[1]).merge(folds[2]).merge(folds[3])
    assert union.n == prof.n and union.dropped == prof.dropped
    _close(union, np.cov(keep, rowvar=False))


def test_postgresql(pg_engine: sa.Engine, pg_schema: str) -> None:
    _check(pg_engine, pg_schema)


def test_sqlite(tmp_path: Path) -> None:
    _check(sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}"), None)


def test_sqlite_infinity_is_dropped(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'i.db'}")
    pd.DataFrame({"x1": [1.0, 2.0, float("inf"), 4.0], "x2": [1.0, 3.0, 2.0, None]}).to_sql(
        "t", engine, index=False
    )
    prof, _ = gather_covariance(engine, "t", ("x1", "x2"))
    assert prof.n == 2 and prof.dropped == 2


@pytest.mark.parametrize("n", [0])
def test_empty_table(tmp_path: Path, n: int) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    pd.DataFrame({"x1": pd.Series([], dtype=float), "x2": pd.Series([], dtype=float)}).to_sql(
        "t", engine, index=False
    )
    prof, stats = gather_covariance(engine, "t", ("x1", "x2"))
    assert prof.n == n and prof.covariance() is None and stats.rows_fetched == 1


def test_postgresql_non_finite_and_incomplete_rows(pg_engine: sa.Engine, pg_schema: str) -> None:
    """PostgreSQL's statement tests completeness once per row (an unflattened subquery): NaN,
    +-inf and NULL rows are dropped, and an incomplete row's huge value is never squared (PostgreSQL
    raises on a double overflow); the profile equals numpy's over the complete rows."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2)) * [3.0, 0.5] + [10.0, -1.0]
    frame = pd.DataFrame(x, columns=["x1", "x2"])
    frame.loc[0, "x1"] = float("nan")
    frame.loc[1, "x2"] = float("inf")
    frame.loc[2, "x1"] = float("-inf")
    frame.loc[3, "x2"] = None
    frame.loc[4, ["x1", "x2"]] = [1e300, None]
    frame.to_sql("cov_nf", pg_engine, schema=pg_schema, index=False)
    prof, stats = gather_covariance(pg_engine, "cov_nf", ("x1", "x2"), [10.0, -1.0], schema=pg_schema)
    assert stats.statements == 1 and stats.rows_fetched == 1
    keep = frame.iloc[5:].to_numpy()
    assert prof.n == 195 and prof.dropped == 5
    _close(prof, np.cov(keep, rowvar=False))
    np.testing.assert_allclose(prof.mean(), keep.mean(axis=0), rtol=1e-12)
    sql = str(covariance_statement(pg_engine, "cov_nf", ("x1", "x2"), [10.0, -1.0], schema=pg_schema))
    assert sql.count("<=") == 2, sql  # the two columns' upper bounds, once (not once per aggregate)
