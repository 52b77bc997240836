"""Sampled drift profiles (core/sampling.py, sources/drift_sql.py ``sampling=``): on real
PostgreSQL (block sampling) and SQLite (key hash), within their stated sampling error, with the
result's metadata and clear errors; the PSI standard error checked by simulation."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.profile import ColumnSpec, NumericProfile
from airflow_mlobs.core.sampling import (
    decision_note,
    keep_key,
    parse_sample,
    proportion_standard_error,
    psi_standard_error,
)
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.drift_sql import profile_sql

N = 100_000
EDGES = (-1.0, 0.0, 1.0)
SPECS = [ColumnSpec("x", "numeric", edges=EDGES)]


def _values() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(17)
    x = rng.normal(size=N)
    order = rng.permutation(N)  # random insertion order: block sampling is close to row sampling
    return np.arange(N)[order], x[order]


def _load(engine: sa.Engine, schema: str | None) -> TableRef:
    ids, x = _values()
    md = sa.MetaData(schema=schema)
    table = sa.Table("mlobs_sampled", md, sa.Column("id", sa.BigInteger), sa.Column("x", sa.Float))
    md.drop_all(engine)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": int(i), "x": float(v)} for i, v in zip(ids, x, strict=True)])
    return TableRef(name="mlobs_sampled", schema=schema)


def _full_shares() -> np.ndarray:
    _, x = _values()
    counts = np.histogram(x, bins=[-np.inf, *EDGES, np.inf])[0]
    return counts / counts.sum()


def _check_within_error(profile: NumericProfile, rate: float, design_effect: float) -> None:
    n = profile.count
    assert abs(n - rate * N) <= 5 * math.sqrt(design_effect * N * rate * (1 - rate))
    shares = np.asarray(profile.bins) / n
    for share, full in zip(shares, _full_shares(), strict=True):
        assert abs(share - full) <= 5 * math.sqrt(design_effect) * proportion_standard_error(full, n)


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sampled.db'}")
    yield engine
    engine.dispose()


def test_sqlite_key_hash_sample_within_error_and_repeatable(sqlite_engine: sa.Engine) -> None:
    table = _load(sqlite_engine, None)
    request = parse_sample("10%", None, seed=3, key="id")
    profile, _ = profile_sql(sqlite_engine, SPECS, table=table, sampling=request)
    column = profile.columns["x"]
    assert isinstance(column, NumericProfile)
    _check_within_error(column, 0.10, 1.0)
    assert profile.sample is not None
    assert (profile.sample.method, profile.sample.key, profile.sample.rate) == ("key-hash", "id", 0.10)
    assert profile.sample.sampled_rows == profile.row_count
    # the SQL predicate is the Python one: the same rows, again, for the same seed
    assert profile.row_count == sum(keep_key(i, 0.10, 3) for i in range(N))
    again, _ = profile_sql(sqlite_engine, SPECS, table=table, sampling=request)
    assert again.columns["x"] == column


def test_sqlite_without_key_is_a_clear_error(sqlite_engine: sa.Engine) -> None:
    table = _load(sqlite_engine, None)
    with pytest.raises(SourceError, match=r"table mlobs_sampled on sqlite needs sample_key="):
        profile_sql(sqlite_engine, SPECS, table=table, sampling=parse_sample("1%", None))
    with pytest.raises(SourceError, match="sample_key column 'nope' not found in table mlobs_sampled"):
        profile_sql(sqlite_engine, SPECS, table=table, sampling=parse_sample("1%", None, key="nope"))


def test_postgres_block_sample_within_error(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = _load(pg_engine, pg_schema)
    profile, _ = profile_sql(pg_engine, SPECS, table=table, sampling=parse_sample("20%", None, seed=5))
    column = profile.columns["x"]
    assert isinstance(column, NumericProfile)
    # pages hold ~180 rows here: the row count varies like a page count (design effect ~ rows per page)
    with pg_engine.connect() as conn:
        pages = conn.execute(
            sa.text("SELECT relpages FROM pg_class WHERE oid = to_regclass(:n)"),
            {"n": f"{pg_schema}.mlobs_sampled"},
        ).scalar()
    per_page = N / max(int(pages or 1), 1)
    assert abs(column.count - 0.2 * N) <= 5 * math.sqrt(per_page * N * 0.2 * 0.8)
    # random insertion order: the shares vary like a row sample's
    shares = np.asarray(column.bins) / column.count
    for share, full in zip(shares, _full_shares(), strict=True):
        assert abs(share - full) <= 5 * math.sqrt(2.0) * proportion_standard_error(full, column.count)
    assert profile.sample is not None and profile.sample.method == "system"
    again, _ = profile_sql(pg_engine, SPECS, table=table, sampling=parse_sample("20%", None, seed=5))
    assert again.columns["x"] == column  # REPEATABLE (seed)


def test_postgres_sample_rows_resolves_from_reltuples(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = _load(pg_engine, pg_schema)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".mlobs_sampled'))
    profile, stats = profile_sql(pg_engine, SPECS, table=table, sampling=parse_sample(None, 25_000))
    assert profile.sample is not None
    assert profile.sample.estimate is not None and abs(profile.sample.estimate - N) <= 0.05 * N
    assert profile.sample.rate == pytest.approx(25_000 / profile.sample.estimate)
    assert stats.rows_fetched <= 3  # aggregates, not rows


def test_postgres_sql_query_needs_key(pg_engine: sa.Engine, pg_schema: str) -> None:
    _load(pg_engine, pg_schema)
    query = f"SELECT id, x FROM {pg_schema}.mlobs_sampled"
    with pytest.raises(SourceError, match="block sampling needs a table, not sql="):
        profile_sql(pg_engine, SPECS, sql=query, sampling=parse_sample("1%", None))
    profile, _ = profile_sql(pg_engine, SPECS, sql=query, sampling=parse_sample("10%", None, key="id"))
    assert profile.row_count == sum(keep_key(i, 0.10, 0) for i in range(N))


def test_parse_sample_errors() -> None:
    assert parse_sample(None, None) is None
    assert parse_sample("1%", None).rate == pytest.approx(0.01)  # type: ignore[union-attr]
    for bad in ("0%", "150%", "abc", -0.1):
        with pytest.raises(MlobsInputError):
            parse_sample(bad, None)
    with pytest.raises(MlobsInputError, match="not both"):
        parse_sample("1%", 10)


def _psi(e: np.ndarray, a: np.ndarray) -> float:
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_standard_error_by_simulation() -> None:
    rng = np.random.default_rng(2026)
    expected = np.array([0.1, 0.2, 0.3, 0.4])
    truth = np.array([0.15, 0.25, 0.3, 0.3])
    n = 5_000
    draws = rng.multinomial(n, truth, size=4_000) / n
    psis = np.array([_psi(expected, d) for d in draws])
    stated = psi_standard_error(list(expected), list(truth), n)
    assert np.std(psis) == pytest.approx(stated, rel=0.08)
    assert decision_note(float(np.mean(psis)), stated, float(np.mean(psis)) + stated) is not None
    assert decision_note(1.0, stated, 0.1) is None


def test_in_memory_sample_matches_the_sql_key_hash_and_is_repeatable(sqlite_engine: sa.Engine) -> None:
    import pandas as pd

    from airflow_mlobs.sources.drift_frame import profile_frame
    from airflow_mlobs.specs.drift import frame_sample

    ids, x = _values()
    frame = pd.DataFrame({"id": ids, "x": x})
    request = parse_sample("10%", None, seed=3, key="id")
    kept, info = frame_sample(frame, request, "frame")
    table = _load(sqlite_engine, None)
    in_sql, _ = profile_sql(sqlite_engine, SPECS, table=table, sampling=request)
    assert info is not None and info.method == "key-hash" and info.sampled_rows == in_sql.row_count
    assert profile_frame(kept, SPECS).columns["x"].bins == in_sql.columns["x"].bins  # type: ignore[union-attr]
    rows_request = parse_sample("10%", None, seed=9)
    first, rows_info = frame_sample(frame, rows_request, "frame")
    second, _ = frame_sample(frame, rows_request, "frame")
    assert rows_info is not None and rows_info.method == "rows"
    assert first.index.equals(second.index)
    column = profile_frame(first, SPECS).columns["x"]
    assert isinstance(column, NumericProfile)
    _check_within_error(column, 0.10, 1.0)


def test_spec_names_the_task_for_a_bad_sample() -> None:
    from airflow_mlobs.specs.drift import DriftSpec

    with pytest.raises(ValueError, match=r"task 'drift'.*sample rate must be in"):
        DriftSpec(conn_id="wh", table="events", baseline="b", sample="200%").validate("drift")
