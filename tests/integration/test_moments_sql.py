"""Shifted moments and open-ended bin totals gathered in SQL equal those gathered in memory.

Each test runs on SQLite (a temporary file) and on PostgreSQL (a fresh schema; ``postgres`` mark),
from a table and from a query (no catalog: PostgreSQL then tests finiteness on the exact value,
the ``exact`` path of the statements). Counts, min, max, ``scale_exp`` and ``shift`` must be
equal; sums (``total``, ``total_sq``, ``low_total``, ``high_total``) equal within 1e-9 relative.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import ColumnSpec, NumericProfile, Profile, moment_shift, tail_edges
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.drift_frame import (
    build_baseline,
    profile_frame,
    profile_frame_segments,
    quantile_edges,
)
from airflow_mlobs.sources.drift_sql import profile_sql, profile_sql_segments

DBL_MAX = 1.7976931348623157e308


@dataclass
class Database:
    engine: sa.Engine
    schema: str | None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ref(self, name: str) -> TableRef:
        return TableRef(name, schema=self.schema)

    def qualified(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    def load(self, name: str, frame: pd.DataFrame) -> None:
        """Table ``name``: ``id`` integer, ``seg`` text, every other column a double."""
        metadata = sa.MetaData()
        columns = [
            sa.Column(c, sa.Integer() if c == "id" else sa.Text() if c == "seg" else sa.Double())
            for c in frame.columns
        ]
        table = sa.Table(name, metadata, *columns, schema=self.schema)
        metadata.create_all(self.engine)
        rows = [
            {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
            for record in frame.astype(object).to_dict("records")
        ]
        with self.engine.begin() as conn:
            conn.execute(table.insert(), rows)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'moments.db'}")
        yield Database(engine, None)
        engine.dispose()
    else:
        yield Database(request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema"))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def assert_same_numeric(got: Any, want: Any, name: str = "") -> None:
    assert isinstance(got, NumericProfile) and isinstance(want, NumericProfile), name
    exact = ("count", "nulls", "non_finite", "invalid", "bins", "min", "max", "scale_exp", "shift")
    for field in exact:
        assert getattr(got, field) == getattr(want, field), (
            name,
            field,
            getattr(got, field),
            getattr(want, field),
        )
    for field in ("total", "total_sq", "low_total", "high_total"):
        assert close(getattr(got, field), getattr(want, field)), (
            name,
            field,
            getattr(got, field),
            getattr(want, field),
        )


def assert_same_profile(got: Profile, want: Profile) -> None:
    assert got.row_count == want.row_count and set(got.columns) == set(want.columns)
    for name, column in want.columns.items():
        assert_same_numeric(got.columns[name], column, name)


def offset_frame(rows: int = 20_000, seed: int = 5) -> pd.DataFrame:
    """``big``: 1.7e9 + N(0, 30); ``t3``: Student t(3) x 10 (heavy tails) with NaN and +-inf;
    ``seg``: three segments."""
    rng = np.random.default_rng(seed)
    t3 = rng.standard_t(3, rows) * 10.0
    t3[rng.random(rows) < 0.02] = np.nan
    t3[rng.random(rows) < 0.005] = np.inf
    t3[rng.random(rows) < 0.005] = -np.inf
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "seg": rng.choice(np.array(["a", "b", "c"], dtype=object), rows),
            "big": 1.7e9 + rng.normal(0.0, 30.0, rows),
            "t3": t3,
        }
    )


def numeric_specs(reference: pd.DataFrame, columns: Sequence[str] = ("big", "t3")) -> list[ColumnSpec]:
    return [
        ColumnSpec(c, "numeric", edges=quantile_edges(reference[c].to_numpy(dtype=float))) for c in columns
    ]


@pytest.mark.parametrize("source", ["table", "query"])
def test_large_offset_std_matches_numpy_in_the_database(db: Database, source: str) -> None:
    """1.7e9 + N(0, 30): std within 1e-6 of numpy's, in SQL as in memory, and both profiles equal
    (shift, sums and the open-ended bins' totals included)."""
    frame = offset_frame()
    db.load("offset", frame)
    specs = numeric_specs(offset_frame(5000, seed=6))
    where = (
        {"table": db.ref("offset")}
        if source == "table"
        else {"sql": f"SELECT * FROM {db.qualified('offset')}"}
    )
    profile, stats = profile_sql(db.engine, specs, **where)  # type: ignore[arg-type]
    expected = profile_frame(frame, specs)
    assert_same_profile(profile, expected)
    assert stats.statements == (1 if source == "table" else 2)  # one aggregate statement (+ the probe)
    big = profile.columns["big"]
    assert isinstance(big, NumericProfile)
    assert big.shift == moment_shift(specs[0].edges) and big.shift > 1.69e9
    assert big.std == pytest.approx(float(np.std(frame["big"])), rel=1e-6)
    assert big.mean == pytest.approx(float(np.mean(frame["big"])), rel=1e-15)
    t3 = profile.columns["t3"]
    assert isinstance(t3, NumericProfile)
    values = frame["t3"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low_edge, high_edge = tail_edges(specs[1].edges) or (0.0, 0.0)
    assert t3.low_mean == pytest.approx(float(finite[finite < low_edge].mean()), rel=1e-9)
    assert t3.high_mean == pytest.approx(float(finite[finite >= high_edge].mean()), rel=1e-9)


def test_merged_windows_equal_the_whole_in_the_database(db: Database) -> None:
    frame = offset_frame()
    db.load("offset", frame)
    specs = numeric_specs(offset_frame(5000, seed=6))
    whole, _ = profile_sql(db.engine, specs, table=db.ref("offset"))
    first, _ = profile_sql(db.engine, specs, table=db.ref("offset"), where="id < 7001")
    second, _ = profile_sql(db.engine, specs, table=db.ref("offset"), where="id >= 7001")
    assert_same_profile(first.merge(second), whole)
    assert_same_profile(first, profile_frame(frame[frame["id"] < 7001], specs))


def test_segments_keep_their_bin_totals(db: Database) -> None:
    frame = offset_frame(9000)
    db.load("offset", frame)
    specs = numeric_specs(offset_frame(5000, seed=6))
    profiles, _ = profile_sql_segments(db.engine, specs, table=db.ref("offset"), segment_column="seg")
    expected = profile_frame_segments(frame, specs, "seg")
    assert set(profiles) == set(expected) == {"a", "b", "c"}
    for key, profile in profiles.items():
        assert_same_profile(profile, expected[key])


HUGE = [DBL_MAX, -DBL_MAX, 1e200, -3e160, 2.0**480, 1e-300, 0.0, -7.5, 42.0]


@pytest.mark.parametrize("source", ["table", "query"])
def test_huge_values_split_after_the_shift_in_the_database(db: Database, source: str) -> None:
    """Values whose squares overflow, with a non-zero shift: the split moments of the shifted
    values and the split open-ended totals are equal in SQL and in memory (PostgreSQL raises on
    the overflow first and runs the split statement)."""
    rng = np.random.default_rng(17)
    frame = pd.DataFrame({"x": np.concatenate([rng.normal(50.0, 10.0, 400), np.array(HUGE * 2)])})
    frame.insert(0, "id", np.arange(len(frame)))
    db.load("huge", frame)
    specs = [ColumnSpec("x", "numeric", edges=(0.0, 40.0, 50.0, 60.0, 1e100))]
    where = (
        {"table": db.ref("huge")} if source == "table" else {"sql": f"SELECT * FROM {db.qualified('huge')}"}
    )
    profile, stats = profile_sql(db.engine, specs, **where)  # type: ignore[arg-type]
    expected = profile_frame(frame, specs)
    assert_same_profile(profile, expected)
    column = profile.columns["x"]
    assert isinstance(column, NumericProfile) and column.shift == 50.0 and column.scale_exp == 600
    values = frame["x"].to_numpy()
    low, high = values[values < 40.0], values[values >= 60.0]  # the tail regions; halves: no overflow
    assert column.low_mean == pytest.approx(float(np.mean(low / 2)) * 2, rel=1e-9)
    assert column.high_mean == pytest.approx(float(np.mean(high / 2)) * 2, rel=1e-9)
    assert stats.statements == (2 if db.dialect == "postgresql" else 1) + (source == "query")


def test_baseline_built_in_sql_carries_the_shift_and_bin_totals(db: Database) -> None:
    frame = offset_frame(6000)
    db.load("offset", frame)
    in_sql = build_baseline_sql(
        db.engine, name="m", version="1", table=db.ref("offset"), columns=["big", "t3"]
    )
    in_memory = build_baseline(frame, name="m", version="1", columns=["big", "t3"])
    assert in_sql.columns["big"].edges == in_memory.columns["big"].edges
    assert_same_profile(in_sql.reference, in_memory.reference)
    reference = in_sql.reference.columns["big"]
    assert isinstance(reference, NumericProfile) and reference.shift == moment_shift(
        in_sql.columns["big"].edges
    )
    assert reference.std == pytest.approx(float(np.std(frame["big"])), rel=1e-6)
