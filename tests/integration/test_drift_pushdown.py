"""The pushed-down drift profiler (``profile_sql``) against the in-memory one (``profile_frame``).

For the same rows the two must produce the same profile: every count exact (bins, nulls, non-finite,
invalid, categories), min and max exact, sums equal within 1e-9 relative. Each test runs on SQLite
(a temporary file) and on PostgreSQL (a fresh schema per test; those cases carry the ``postgres``
mark). The last test proves the pushdown at 1,000,000 rows: two statements, a handful of rows over
the wire, and no growth of the worker's memory with the table size.
"""

from __future__ import annotations

import json
import math
import os
import resource
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.drift import compare
from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.profile import (
    Baseline,
    CategoricalProfile,
    ColumnSpec,
    NumericProfile,
    Profile,
)
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.dialect import SqlDialect
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.sources.drift_sql import profile_sql, profile_sql_segments
from airflow_mlobs.sources.sqlkit import QueryStats

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2024, 1, 3, tzinfo=UTC)
WINDOW_END = datetime(2024, 1, 6, 12, tzinfo=UTC)
NUMERIC = ("f_float", "f_int", "f_dec")
CATEGORICAL = ("cat_text", "flag", "is_ok")
KINDS: dict[str, Any] = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
#: The table's column types (SQLite maps them to its affinities; DateTime has no zone there).
TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "id": sa.Integer(),
    "ts": sa.DateTime(timezone=True),
    "ts_local": sa.DateTime(),
    "f_float": sa.Double(),
    "f_int": sa.BigInteger(),
    "f_dec": sa.Numeric(10, 2),
    "cat_text": sa.Text(),
    "flag": sa.Integer(),
    "is_ok": sa.Boolean(),
    "model_version": sa.Text(),
}
US = timedelta(microseconds=1)


# --- data ------------------------------------------------------------------------------------------


def sample_frame(rows: int, seed: int) -> pd.DataFrame:
    """Rows over eight days: float with NaN and +/-inf, integers, 2-decimal numbers with NULLs,
    text with NULLs, a 0/1 flag and a boolean (both with NULLs), and the row's model version.

    ``ts`` is aware UTC; ``ts_local`` is the same instant as naive Berlin wall-clock time (January:
    no DST transition). The first rows sit exactly on and around the window bounds.
    """
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 8 * 24 * 60, rows)
    ts = pd.Series(pd.Timestamp(T0) + pd.to_timedelta(minutes, unit="min"))
    edges = [WINDOW_START - US, WINDOW_START, WINDOW_START, WINDOW_END - US, WINDOW_END, WINDOW_END + US]
    ts.iloc[: len(edges)] = [pd.Timestamp(e) for e in edges]
    f_float = rng.normal(50.0, 10.0, rows)
    f_float[rng.random(rows) < 0.08] = np.nan
    f_float[rng.random(rows) < 0.01] = np.inf
    f_float[rng.random(rows) < 0.01] = -np.inf
    f_dec = np.round(rng.normal(1000.0, 250.0, rows), 2)
    f_dec[rng.random(rows) < 0.05] = np.nan
    cat_text = rng.choice(np.array(["red", "green", "blue", "black", "white", "grey"], dtype=object), rows)
    cat_text[rng.random(rows) < 0.07] = None
    flag = pd.array(rng.integers(0, 2, rows), dtype="Int64")
    flag[rng.random(rows) < 0.05] = pd.NA
    is_ok = pd.array(rng.random(rows) < 0.7, dtype="boolean")
    is_ok[rng.random(rows) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "ts": ts,
            "ts_local": ts.dt.tz_convert(BERLIN).dt.tz_localize(None),
            "f_float": f_float,
            "f_int": rng.integers(-200, 800, rows),
            "f_dec": f_dec,
            "cat_text": cat_text,
            "flag": flag,
            "is_ok": is_ok,
            "model_version": rng.choice(np.array(["v1", "v2", "v3"], dtype=object), rows),
        }
    )


def reference_baseline(columns: Sequence[str] = NUMERIC + CATEGORICAL) -> Baseline:
    reference = sample_frame(20_000, seed=1)
    return build_baseline(
        reference, name="pushdown", version="v1", columns=columns, kinds={c: KINDS[c] for c in columns}
    )


def _python(value: Any) -> Any:
    """A value as the DBAPI expects it: None for every kind of missing, plain Python scalars."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


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

    def load(self, name: str, frame: pd.DataFrame, types: dict[str, Any] | None = None) -> None:
        """Create table ``name`` with the given column types and insert ``frame``'s rows."""
        types = {**TYPES, **(types or {})}
        metadata = sa.MetaData()
        table = sa.Table(name, metadata, *(sa.Column(c, types[c]) for c in frame.columns), schema=self.schema)
        metadata.create_all(self.engine)
        rows = [{k: _python(v) for k, v in record.items()} for record in frame.to_dict("records")]
        if self.dialect == "sqlite":
            # SQLite stores wall-clock text; an aware value keeps its UTC wall clock.
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, datetime) and value.tzinfo is not None:
                        row[key] = value.astimezone(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            conn.execute(table.insert(), rows)


def assert_stats(
    db: Database, stats: QueryStats, specs: list[ColumnSpec], *, portable: QueryStats, extra: int = 0
) -> None:
    """Both dialects: one aggregate row and the ranked categories (plus ``extra`` statements)."""
    del db, specs, extra
    assert stats == portable


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'drift.db'}")
        yield Database(engine, None)
        engine.dispose()
    else:
        engine = request.getfixturevalue("pg_engine")
        yield Database(engine, request.getfixturevalue("pg_schema"))


def in_window(frame: pd.DataFrame, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame["ts"] >= pd.Timestamp(start)
    if end is not None:
        mask &= frame["ts"] < pd.Timestamp(end)
    return frame[mask]


# --- comparing profiles ----------------------------------------------------------------------------


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b


def assert_same_profile(actual: Profile, expected: Profile) -> None:
    """Counts exact, min/max exact, sums within 1e-9 relative; window, keys, missing and errors equal."""
    assert actual.row_count == expected.row_count
    assert actual.edges_key == expected.edges_key
    assert actual.window_start == expected.window_start
    assert actual.window_end == expected.window_end
    assert actual.missing_columns == expected.missing_columns
    assert set(actual.errors) == set(expected.errors)
    assert set(actual.columns) == set(expected.columns)
    for name, want in expected.columns.items():
        got = actual.columns[name]
        assert type(got) is type(want), name
        if isinstance(want, NumericProfile):
            assert isinstance(got, NumericProfile)
            assert (got.count, got.nulls, got.non_finite, got.invalid) == (
                want.count,
                want.nulls,
                want.non_finite,
                want.invalid,
            ), name
            assert got.bins == want.bins, name
            assert got.min == want.min, name
            assert got.max == want.max, name
            assert got.scale_exp == want.scale_exp, name
            assert got.shift == want.shift, name
            assert close(got.total, want.total), (name, got.total, want.total)
            assert close(got.total_sq, want.total_sq), (name, got.total_sq, want.total_sq)
            for side in ("low_total", "high_total"):
                a, b = getattr(got, side), getattr(want, side)
                assert (a is None and b is None) or (a is not None and b is not None and close(a, b)), (
                    name,
                    side,
                    a,
                    b,
                )
        else:
            assert isinstance(got, CategoricalProfile) and isinstance(want, CategoricalProfile)
            assert dict(got.counts) == dict(want.counts), name
            assert (got.nulls, got.other, got.overflow) == (want.nulls, want.other, want.overflow), name
            assert got.unseen == want.unseen, name


# --- equality on the same rows ---------------------------------------------------------------------

TIMESTAMP_VARIANTS = [
    # (timestamp column, naive_zone): ``ts`` is timestamptz on PostgreSQL and naive UTC text on
    # SQLite; ``ts_local`` is a naive column holding Berlin wall-clock time.
    pytest.param("ts", UTC, id="ts-utc"),
    pytest.param("ts_local", BERLIN, id="naive-berlin"),
]


@pytest.mark.parametrize(("ts_column", "zone"), TIMESTAMP_VARIANTS)
def test_window_profile_equals_in_memory(db: Database, ts_column: str, zone: tzinfo) -> None:
    frame = sample_frame(4_000, seed=7)
    db.load("features", frame)
    baseline = reference_baseline()
    specs = list(baseline.columns.values())

    profile, stats = profile_sql(
        db.engine,
        specs,
        table=db.ref("features"),
        timestamp_column=ts_column,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=zone,
    )
    rows = in_window(frame, WINDOW_START, WINDOW_END)
    expected = profile_frame(rows, specs, window_start=WINDOW_START, window_end=WINDOW_END)
    assert 1000 < expected.row_count < len(frame)
    assert_same_profile(profile, expected)
    assert_stats(db, stats, specs, portable=QueryStats(statements=2, rows_fetched=1 + 6 + 2 + 2))
    # The data really has what the test is about.
    f_float = profile.columns["f_float"]
    assert isinstance(f_float, NumericProfile) and f_float.nulls > 0 and f_float.non_finite > 0
    assert profile.columns["is_ok"].nulls > 0  # type: ignore[union-attr]


def test_window_bounds_are_start_inclusive_end_exclusive(db: Database) -> None:
    frame = sample_frame(50, seed=3)
    db.load("features", frame)
    specs = [ColumnSpec("f_int", "numeric", edges=(0.0,))]
    profile, _ = profile_sql(
        db.engine,
        specs,
        table=db.ref("features"),
        timestamp_column="ts_local",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=BERLIN,
    )
    assert profile.row_count == len(in_window(frame, WINDOW_START, WINDOW_END))
    # Exactly one row at end - 1us, two at start, none at end or start - 1us counted.
    edge_rows = in_window(frame.iloc[:6], WINDOW_START, WINDOW_END)
    assert len(edge_rows) == 3


@pytest.mark.parametrize(("ts_column", "zone"), TIMESTAMP_VARIANTS)
def test_where_filter_equals_in_memory(db: Database, ts_column: str, zone: tzinfo) -> None:
    frame = sample_frame(4_000, seed=11)
    db.load("features", frame)
    specs = list(reference_baseline().columns.values())
    profile, _ = profile_sql(
        db.engine,
        specs,
        table=db.ref("features"),
        timestamp_column=ts_column,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=zone,
        where="model_version = 'v3'",
    )
    rows = in_window(frame, WINDOW_START, WINDOW_END)
    rows = rows[rows["model_version"] == "v3"]
    expected = profile_frame(rows, specs, window_start=WINDOW_START, window_end=WINDOW_END)
    assert 200 < expected.row_count < 2000
    assert_same_profile(profile, expected)


@pytest.mark.parametrize(("ts_column", "zone"), TIMESTAMP_VARIANTS)
def test_query_source_equals_in_memory(db: Database, ts_column: str, zone: tzinfo) -> None:
    frame = sample_frame(4_000, seed=13)
    db.load("features", frame)
    specs = list(reference_baseline().columns.values())
    query = f"SELECT * FROM {db.qualified('features')} WHERE model_version <> 'v1'  -- a comment"
    profile, stats = profile_sql(
        db.engine,
        specs,
        sql=query,
        timestamp_column=ts_column,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=zone,
    )
    rows = in_window(frame, WINDOW_START, WINDOW_END)
    rows = rows[rows["model_version"] != "v1"]
    expected = profile_frame(rows, specs, window_start=WINDOW_START, window_end=WINDOW_END)
    assert_same_profile(profile, expected)
    # The two profile statements, and one reading the query's first row (its column names and a
    # timestamp): a query has no catalog.
    assert_stats(db, stats, specs, portable=QueryStats(statements=3, rows_fetched=1 + 1 + 6 + 2 + 2), extra=1)


def test_query_source_without_window(db: Database) -> None:
    frame = sample_frame(1_000, seed=17)
    db.load("features", frame)
    specs = list(reference_baseline().columns.values())
    profile, stats = profile_sql(db.engine, specs, sql=f"SELECT * FROM {db.qualified('features')};")
    assert_same_profile(profile, profile_frame(frame, specs))
    # One row of the query first (its column names: a query has no catalog), then the two profile
    # statements.
    assert stats.statements == 3


def overflow_frame() -> pd.DataFrame:
    """30 levels: ten frequent ones with distinct counts (100, 95, ..., 55), twenty tied at 10."""
    levels = [f"lvl{i:02d}" for i in range(30)]
    counts = [100 - 5 * i for i in range(10)] + [10] * 20
    values: list[Any] = [lvl for lvl, n in zip(levels, counts, strict=True) for _ in range(n)] + [None] * 7
    rng = np.random.default_rng(5)
    order = rng.permutation(len(values))
    frame = sample_frame(len(values), seed=19).drop(columns=["cat_text"])
    frame["cat_many"] = np.array(values, dtype=object)[order]
    frame["code"] = pd.array([None if pd.isna(v) else int(v[3:]) for v in frame["cat_many"]], dtype="Int64")
    return frame


def test_categories_beyond_max_categories_fold_into_other(db: Database) -> None:
    frame = overflow_frame()
    db.load("features", frame, types={"cat_many": sa.Text(), "code": sa.Integer()})
    specs = [ColumnSpec("cat_many", "categorical"), ColumnSpec("code", "categorical")]
    specs += [s for s in reference_baseline().columns.values() if s.name != "cat_text"]
    profile, stats = profile_sql(db.engine, specs, table=db.ref("features"), max_categories=10)
    expected = profile_frame(frame, specs, max_categories=10)
    assert_same_profile(profile, expected)
    cat = profile.columns["cat_many"]
    assert isinstance(cat, CategoricalProfile)
    assert cat.overflow and cat.other == 20 * 10 and cat.nulls == 7
    assert list(cat.counts) == [f"lvl{i:02d}" for i in range(10)]
    code = profile.columns["code"]
    assert isinstance(code, CategoricalProfile)
    assert dict(code.counts) == {str(i): 100 - 5 * i for i in range(10)} and code.other == 200
    # At most max_categories + 1 rows per categorical column crossed the wire.
    assert stats.rows_fetched <= 1 + 4 * (10 + 1)


def test_unseen_values_folded_into_other_are_counted_in_the_database(db: Database) -> None:
    """Values not in the baseline's category set are counted before folding, pushed down (a third
    statement, only when a column folded) and equal to the in-memory count."""
    frame = overflow_frame()
    db.load("features", frame, types={"cat_many": sa.Text(), "code": sa.Integer()})
    known = tuple(f"lvl{i:02d}" for i in range(0, 30, 2))  # every other level is unseen
    specs = [
        ColumnSpec("cat_many", "categorical", categories=known),
        ColumnSpec(
            "code", "categorical", categories=tuple(str(i) for i in range(0, 30, 2)), source_type="INTEGER"
        ),
    ]
    profile, stats = profile_sql(db.engine, specs, table=db.ref("features"), max_categories=10)
    expected = profile_frame(frame, specs, max_categories=10)
    assert_same_profile(profile, expected)
    unseen = sum(100 - 5 * i for i in range(1, 10, 2)) + 10 * 10  # odd levels: 5 frequent, 10 tied
    assert profile.columns["cat_many"].unseen == unseen  # type: ignore[union-attr]
    assert profile.columns["code"].unseen == unseen  # type: ignore[union-attr]
    assert stats.statements == 3
    unfolded, unfolded_stats = profile_sql(db.engine, specs, table=db.ref("features"), max_categories=100)
    assert unfolded.columns["cat_many"].unseen == unseen  # type: ignore[union-attr]
    assert unfolded_stats.statements == 2  # nothing folded: counted from the ranked categories


HUGE = [1.7976931348623157e308, -1.7976931348623157e308, 1e200, -3e160, 2.0**480, 1e-300, 0.0, -7.5, 42.0]


def test_huge_finite_values_profile_equals_in_memory(db: Database) -> None:
    """Finite values whose squares overflow a double (a DBL_MAX sentinel, 1e200) are summed as split
    moments in both gatherers: equal profiles, strict JSON, and the exact mean and std."""
    from fractions import Fraction

    rng = np.random.default_rng(41)
    values = np.concatenate([rng.normal(50.0, 10.0, 500), np.array(HUGE * 3)])
    frame = sample_frame(len(values), seed=43)
    frame["f_float"] = values
    db.load("features", frame)
    specs = [ColumnSpec("f_float", "numeric", edges=(0.0, 40.0, 50.0, 60.0, 1e100))]
    profile, stats = profile_sql(db.engine, specs, table=db.ref("features"))
    expected = profile_frame(frame, specs)
    assert_same_profile(profile, expected)
    json.loads(profile.to_json())
    # PostgreSQL raises on the overflowing square: the statement runs again with split moments
    # (ordinary data runs once, see the other tests' statement counts).
    assert stats.statements == (2 if db.dialect == "postgresql" else 1)
    column = profile.columns["f_float"]
    assert isinstance(column, NumericProfile) and column.scale_exp > 0
    exact = [Fraction(float(v)) for v in values]
    mean = sum(exact) / len(exact)
    variance = sum((v - mean) ** 2 for v in exact) / len(exact)
    std = math.ldexp(math.sqrt(float(variance / 2**1200)), 600)  # the variance is beyond a double
    # The +-DBL_MAX pairs cancel: a double sum is exact only to about 1e-16 of the largest value.
    resolution = 1e-15 * max(abs(v) for v in values)
    assert column.mean == pytest.approx(float(mean), abs=resolution)
    assert column.std == pytest.approx(std, rel=1e-9)
    merged = column.merge(column)
    assert merged.mean == pytest.approx(float(mean), abs=resolution)
    assert merged.std == pytest.approx(std, rel=1e-9)


@pytest.mark.postgres
def test_numeric_beyond_double_is_non_finite_on_postgres(pg_engine: sa.Engine, pg_schema: str) -> None:
    """A NUMERIC value beyond double range is counted as non-finite (PostgreSQL would otherwise
    fail the whole statement with "value out of range: overflow"), like float(Decimal) in memory."""
    from decimal import Decimal

    db = Database(pg_engine, pg_schema)
    frame = sample_frame(400, seed=47)
    decimals = [Decimal(f"{v:.2f}") for v in np.abs(frame["f_int"]) + 1]
    for index in range(0, 400, 10):
        decimals[index] = Decimal("1e400") if index % 20 else Decimal("-1e400")
    frame["f_dec"] = decimals
    db.load("features", frame, types={"f_dec": sa.Numeric()})
    specs = [ColumnSpec("f_dec", "numeric", edges=(10.0, 100.0, 500.0))]
    for source in ({"table": db.ref("features")}, {"sql": f"SELECT f_dec FROM {db.qualified('features')}"}):
        profile, _ = profile_sql(pg_engine, specs, **source)  # type: ignore[arg-type]
        expected = profile_frame(frame.assign(f_dec=frame["f_dec"].astype(object)), specs)
        assert_same_profile(profile, expected)
        assert profile.columns["f_dec"].non_finite == 40  # type: ignore[union-attr]


# --- schema changes and errors ---------------------------------------------------------------------


def test_missing_column_is_recorded(db: Database) -> None:
    frame = sample_frame(500, seed=23).drop(columns=["f_dec", "is_ok"])
    db.load("features", frame)
    specs = list(reference_baseline().columns.values())
    profile, _ = profile_sql(
        db.engine,
        specs,
        table=db.ref("features"),
        timestamp_column="ts_local",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=BERLIN,
    )
    assert set(profile.missing_columns) == {"f_dec", "is_ok"}
    expected = profile_frame(
        in_window(frame, WINDOW_START, WINDOW_END), specs, window_start=WINDOW_START, window_end=WINDOW_END
    )
    assert_same_profile(profile, expected)
    baseline = reference_baseline()
    result = compare(baseline, profile)
    assert result.status is Status.ERROR
    assert "f_dec" in result.summary


def test_numeric_column_now_text_is_a_type_change(db: Database) -> None:
    frame = sample_frame(300, seed=29)
    frame["f_float"] = frame["f_float"].map(lambda v: None if pd.isna(v) else f"{v:.3f}")
    db.load("features", frame, types={"f_float": sa.Text()})
    specs = list(reference_baseline().columns.values())
    profile, _ = profile_sql(db.engine, specs, table=db.ref("features"))
    assert "f_float" not in profile.columns
    assert "type changed" in profile.errors["f_float"]
    assert "numeric" in profile.errors["f_float"]
    assert set(profile.columns) == set(NUMERIC + CATEGORICAL) - {"f_float"}
    result = compare(reference_baseline(), profile)
    assert result.status is Status.ERROR
    assert "type changed" in result.summary


def test_missing_timestamp_column_names_it(db: Database) -> None:
    db.load("features", sample_frame(100, seed=31))
    specs = list(reference_baseline().columns.values())
    with pytest.raises(SourceError, match="event_time"):
        profile_sql(
            db.engine,
            specs,
            table=db.ref("features"),
            timestamp_column="event_time",
            window_start=WINDOW_START,
            window_end=WINDOW_END,
        )


def test_sqlite_text_in_numeric_column_is_invalid(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'loose.db'}")
    values: list[Any] = [1.5, "abc", None, 2.5, "n/a", math.inf, 7, "", -math.inf, 3.25]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loose (f_float REAL, n NUMERIC)"))
        conn.execute(sa.text("INSERT INTO loose VALUES (:v, :v)"), [{"v": v} for v in values])
    spec = [
        ColumnSpec("f_float", "numeric", edges=(2.0, 3.0)),
        ColumnSpec("n", "numeric", edges=(2.0, 3.0)),
    ]
    profile, _ = profile_sql(engine, spec, table=TableRef("loose"))
    frame = pd.DataFrame({"f_float": pd.Series(values, dtype=object), "n": pd.Series(values, dtype=object)})
    expected = profile_frame(frame, spec)
    for name in ("f_float", "n"):
        got = profile.columns[name]
        assert isinstance(got, NumericProfile)
        assert got.invalid == 3, name  # "abc", "n/a" and "" stay text in a numeric column
        assert (got.count, got.nulls, got.non_finite) == (4, 1, 2), name
    assert_same_profile(profile, expected)
    engine.dispose()


# --- the generic ANSI dialect against each database's own ----------------------------------------


@pytest.mark.parametrize("segment_column", [None, "model_version"])
@pytest.mark.parametrize("source", ["table", "query"])
def test_ansi_dialect_profile_equals_native(db: Database, source: str, segment_column: str | None) -> None:
    """The generic dialect (portable statement, UNION ALL categories, no session settings) gives
    the database's own dialect's profiles on typed columns: on PostgreSQL it checks the packed
    statement and GROUPING SETS against the portable ones; on SQLite, that the ANSI statements run
    there (text in numeric columns, which only SQLite's dialect handles, is not in these rows)."""
    frame = sample_frame(3_000, seed=5)
    db.load("features", frame)
    specs = list(reference_baseline().columns.values())
    where: dict[str, Any] = (
        {"table": db.ref("features")}
        if source == "table"
        else {"sql": f"SELECT * FROM {db.qualified('features')}"}
    )
    window: dict[str, Any] = {
        "timestamp_column": "ts",
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
        "segment_column": segment_column,
    }
    native, native_stats = profile_sql_segments(db.engine, specs, **where, **window)
    ansi, ansi_stats = profile_sql_segments(db.engine, specs, **where, **window, dialect=SqlDialect())
    assert set(ansi) == set(native) == ({None} if segment_column is None else {"v1", "v2", "v3"})
    for key, profile in native.items():
        assert profile.row_count > 0
        assert_same_profile(ansi[key], profile)
    assert ansi_stats == native_stats


def test_ansi_dialect_baseline_equals_native(db: Database) -> None:
    frame = sample_frame(3_000, seed=9)
    db.load("features", frame)
    columns = list(NUMERIC + CATEGORICAL)
    built = {
        label: build_baseline_sql(
            db.engine, name="b", version="v1", table=db.ref("features"), columns=columns, dialect=dialect
        )
        for label, dialect in (("native", None), ("ansi", SqlDialect()))
    }
    assert built["ansi"].columns == built["native"].columns
    assert_same_profile(built["ansi"].reference, built["native"].reference)


# --- pushdown proof at 1,000,000 rows on PostgreSQL --------------------------------------------------


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak:
    """Samples this process's RSS in a thread; ``growth_mb`` is the peak over the start value."""

    def __init__(self) -> None:
        self.start = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            self._stop.wait(0.002)

    def __enter__(self) -> RssPeak:
        self.start = self.peak = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.start


BIG_NUMERIC = [f"n{i:02d}" for i in range(1, 21)]
BIG_CATEGORICAL = [f"c{i}" for i in range(1, 6)]


def _big_table_sql(schema: str, rows: int) -> list[str]:
    numeric = []
    for index, name in enumerate(BIG_NUMERIC):
        if index % 3 == 0:
            expr = "floor(random() * 500)"
        else:
            expr = f"{index} + {index + 1} * (random() + random() + random() - 1.5)"
        if index % 4 == 1:
            expr = f"CASE WHEN random() < 0.05 THEN NULL ELSE {expr} END"
        numeric.append(f"{expr} AS {name}")
    categorical = [
        f"'{name}_' || floor(random() * {4 + 6 * index})::int AS {name}"
        for index, name in enumerate(BIG_CATEGORICAL)
    ]
    return [
        f'CREATE TABLE "{schema}".big AS SELECT g AS id, '
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS ts, "
        + ", ".join(numeric + categorical)
        + f" FROM generate_series(1, {rows}) AS g",
        f'ANALYZE "{schema}".big',
    ]


@pytest.mark.postgres
def test_pushdown_at_one_million_rows(pg_engine: sa.Engine, pg_schema: str) -> None:
    rows = 1_000_000
    with pg_engine.begin() as conn:
        for statement in _big_table_sql(pg_schema, rows):
            conn.execute(sa.text(statement))
        sample = pd.read_sql(
            sa.text(
                f'SELECT {", ".join(BIG_NUMERIC + BIG_CATEGORICAL)} FROM "{pg_schema}".big WHERE id <= 100000'
            ),
            conn,
        )
    kinds: dict[str, Any] = {
        **dict.fromkeys(BIG_NUMERIC, "numeric"),
        **dict.fromkeys(BIG_CATEGORICAL, "categorical"),
    }
    baseline = build_baseline(sample, name="big", version="v1", kinds=kinds)
    assert len(sample) == 100_000
    del sample
    specs = list(baseline.columns.values())
    assert sum(len(s.edges) for s in specs) >= 20 * 15
    max_categories = 1000

    fetched: list[tuple[str, int]] = []

    def count_rows(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        fetched.append((statement, cursor.rowcount))

    window = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC))
    sa.event.listen(pg_engine, "after_cursor_execute", count_rows)
    ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with RssPeak() as rss:
            profile, stats = profile_sql(
                pg_engine,
                specs,
                table=TableRef("big", schema=pg_schema),
                timestamp_column="ts",
                window_start=window[0],
                window_end=window[1],
                max_categories=max_categories,
            )
    finally:
        sa.event.remove(pg_engine, "after_cursor_execute", count_rows)
    ru_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - ru_before

    assert profile.row_count == rows
    assert stats.statements == 2
    assert stats.rows_fetched <= 5 * (max_categories + 1) + 1
    profile_statements = [(s, n) for s, n in fetched if "big" in s and "pg_catalog" not in s]
    assert len(profile_statements) == 2
    assert profile_statements[0][1] == 1  # the aggregate row
    assert sum(n for _, n in profile_statements) == stats.rows_fetched
    total = sum(max(n, 0) for _, n in fetched)  # catalog reads included
    assert total < 2_000, fetched
    assert total * 100 < rows
    assert rss.growth_mb < 50, f"RSS grew by {rss.growth_mb:.1f} MB"
    assert ru_growth < 50, f"peak RSS grew by {ru_growth:.1f} MB"

    for name in BIG_NUMERIC:
        column = profile.columns[name]
        assert isinstance(column, NumericProfile)
        assert column.rows == rows and sum(column.bins) == column.count
    result = compare(baseline, profile)
    assert result.status is not Status.ERROR, result.summary
    assert result.metrics["columns_judged"] == 25


def test_tied_categories_at_the_cap_equal_in_memory(db: Database) -> None:
    """Every value of ``tied`` has the same count: which ten are kept is decided by the value
    (the top-N ``ORDER BY n DESC, value LIMIT k + 1``), the same as in memory."""
    values = [f"t{i:02d}" for i in range(30)] * 4
    order = np.random.default_rng(7).permutation(len(values))
    frame = pd.DataFrame({"tied": [values[i] for i in order]})
    db.load("features", frame, types={"tied": sa.Text()})
    specs = [ColumnSpec("tied", "categorical")]
    profile, stats = profile_sql(db.engine, specs, table=db.ref("features"), max_categories=10)
    expected = profile_frame(frame, specs, max_categories=10)
    assert_same_profile(profile, expected)
    tied = profile.columns["tied"]
    assert isinstance(tied, CategoricalProfile)
    assert tied.overflow and tied.other == 20 * 4 and sum(tied.counts.values()) == 40
    assert stats.rows_fetched <= 1 + (10 + 1)


def test_narrow_columns_share_one_scan_wide_ones_get_a_top_n(db: Database) -> None:
    """Two columns with few baseline categories are counted in one GROUPING SETS scan (where the
    database has it), a column folded in the baseline gets its own top-N; the profile equals the
    in-memory one either way, ties and unseen values included."""
    rng = np.random.default_rng(3)
    n = 3_000
    frame = pd.DataFrame(
        {
            "plan": rng.choice(["free", "pro", "team"], n),
            "region": rng.choice(["north", "south", "east", "west", None], n),  # type: ignore[list-item]
            "city": [f"c{i:04d}" for i in rng.integers(0, 900, n)],
        }
    )
    frame.loc[:5, "plan"] = "enterprise"  # a value the baseline does not know
    specs = [
        ColumnSpec("plan", "categorical", categories=("free", "pro", "team")),
        ColumnSpec("region", "categorical", categories=("east", "north", "south", "west")),
        ColumnSpec("city", "categorical", categories=tuple(f"c{i:04d}" for i in range(10))),
    ]
    db.load("mixed", frame, types={c: sa.Text() for c in frame.columns})
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        profile, _ = profile_sql(db.engine, specs, table=db.ref("mixed"), max_categories=10)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert_same_profile(profile, profile_frame(frame, specs, max_categories=10))
    (ranked,) = [
        s
        for s in statements
        if "count(*)" in s.lower() and ("limit" in s.lower() or "row_number" in s.lower())
    ]
    if db.engine.dialect.name == "postgresql":
        assert ranked.upper().count("GROUPING SETS") == 1 and ranked.upper().count("LIMIT") == 1, ranked
