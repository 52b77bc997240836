"""Segment profiles: the database gatherer (PostgreSQL and SQLite) equals the in-memory one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.profile import CategoricalProfile, NumericProfile
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame_segments
from airflow_mlobs.sources.drift_sql import profile_sql, profile_sql_segments

WINDOW = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 6000
    data = pd.DataFrame(
        {
            "ts": pd.Timestamp("2026-11-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 3 * 86400, n), unit="s"),
            "x": rng.normal(0, 1, n),
            "k": rng.integers(0, 500, n),
            "cat": rng.choice(["a", "b", "c", "d"], n),
            "region": rng.choice(["north", "south", "west"], n),
        }
    )
    data.loc[::50, "region"] = None
    data.loc[::37, "x"] = np.nan
    return data


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_and_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, TableRef]]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'seg.db'}")
        frame().to_sql("segments", engine, index=False)
        yield engine, TableRef("segments")
        engine.dispose()
    else:
        pg_engine = request.getfixturevalue("pg_engine")
        schema = request.getfixturevalue("pg_schema")
        frame().to_sql("segments", pg_engine, schema=schema, index=False)
        yield pg_engine, TableRef("segments", schema=schema)


def test_segment_profiles_equal_in_memory(engine_and_table: tuple[sa.Engine, TableRef]) -> None:
    engine, table = engine_and_table
    data = frame()
    baseline = build_baseline(data[["x", "k", "cat"]], name="seg", version="1")
    specs = list(baseline.columns.values())
    profiles, stats = profile_sql_segments(
        engine,
        specs,
        table=table,
        timestamp_column="ts",
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        segment_column="region",
    )
    rows = data[(data["ts"] >= WINDOW[0]) & (data["ts"] < WINDOW[1])]
    expected = profile_frame_segments(rows, specs, "region")
    assert set(profiles) == set(expected) == {"north", "south", "west", None}
    for key, profile in profiles.items():
        other = expected[key]
        assert profile.segment == key and profile.row_count == other.row_count
        for name, column in profile.columns.items():
            reference = other.columns[name]
            if isinstance(column, NumericProfile):
                assert isinstance(reference, NumericProfile)
                assert column.bins == reference.bins and column.nulls == reference.nulls
                assert column.total == pytest.approx(reference.total, rel=1e-9)
            else:
                assert isinstance(column, CategoricalProfile) and dict(column.counts) == dict(
                    reference.counts
                )
    assert stats.statements == 2
    # The segments add up to the unsegmented profile.
    whole, _ = profile_sql(
        engine, specs, table=table, timestamp_column="ts", window_start=WINDOW[0], window_end=WINDOW[1]
    )
    merged = profiles["north"]
    for key in ("south", "west", None):
        merged = merged.merge(profiles[key])
    assert merged.row_count == whole.row_count
    merged_x, whole_x = merged.columns["x"], whole.columns["x"]
    assert isinstance(merged_x, NumericProfile) and isinstance(whole_x, NumericProfile)
    assert merged_x.bins == whole_x.bins and merged_x.nulls == whole_x.nulls


def test_too_many_segments_is_an_error_naming_the_column(
    engine_and_table: tuple[sa.Engine, TableRef],
) -> None:
    engine, table = engine_and_table
    specs = list(build_baseline(frame()[["x"]], name="seg", version="1").columns.values())
    with pytest.raises(SourceError, match=r"segment column 'k'.*max_segments=100"):
        profile_sql_segments(engine, specs, table=table, segment_column="k", max_segments=100)
    with pytest.raises(SourceError, match="segment column 'nope' not found"):
        profile_sql_segments(engine, specs, table=table, segment_column="nope")
