"""The fast paths of issue 17 (parts 4 and 5) give what the slow ones gave.

* :func:`rows_frame` (result rows as tuples) is the frame ``DataFrame.from_records`` made of the
  SQLAlchemy ``Row`` objects, dtypes included, on real SQLite rows;
* :func:`distinct_exceeds` answers ``nunique(dropna=True) > limit`` on every edge case, so
  :func:`infer_kind` gives the kinds the full ``nunique`` gave;
* :func:`sum_of_squares` matches an exactly rounded sum (``math.fsum``) at chunk boundaries;
* :func:`build_baseline` in its column thread pool gives the baseline of the plain loop and raises
  the error of the first bad column in order.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import DEFAULT_CATEGORICAL_MAX_DISTINCT
from airflow_mlobs.sources import drift_frame
from airflow_mlobs.sources.drift_frame import (
    build_baseline,
    distinct_exceeds,
    infer_kind,
    numeric_profile,
    sum_of_squares,
)
from airflow_mlobs.sources.performance_frame import rows_frame

LIMIT = DEFAULT_CATEGORICAL_MAX_DISTINCT
#: Past the first slice (4,096) and the second (8,192): the late values are in the third or later.
LONG = 50_000


def _old_kind(series: pd.Series, limit: int = LIMIT) -> str | None:
    """The rule before issue 17: a full ``nunique`` for numeric columns."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_timedelta64_dtype(series.dtype):
        return None
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "categorical" if series.nunique(dropna=True) <= limit else "numeric"
    return "categorical"


def _late(distinct: int, *, fill: float = 1.0, dtype: str = "float64") -> pd.Series:
    """LONG values, all ``fill`` but for ``distinct - 1`` other values at the very end."""
    values = np.full(LONG, fill)
    values[LONG - (distinct - 1) :] = np.arange(100, 100 + distinct - 1)
    return pd.Series(values).astype(dtype)


EDGE_CASES: dict[str, pd.Series] = {
    "exactly the limit": pd.Series(np.arange(LONG) % LIMIT, dtype="float64"),
    "one past the limit": pd.Series(np.arange(LONG) % (LIMIT + 1), dtype="float64"),
    "limit reached only in the last rows": _late(LIMIT),
    "one past the limit in the last row": _late(LIMIT + 1),
    "one past the limit in the last row, int64": _late(LIMIT + 1, dtype="int64"),
    "all NULL": pd.Series(np.full(LONG, np.nan)),
    "all NULL, nullable Int64": pd.Series([pd.NA] * LONG, dtype="Int64"),
    "empty": pd.Series([], dtype="float64"),
    "NaN does not count as a value": pd.Series(
        np.where(np.arange(LONG) % 2 == 0, np.nan, np.arange(LONG) % LIMIT), dtype="float64"
    ),
    "nullable Int64 with NA, at the limit": pd.Series(
        [pd.NA if i % 3 == 0 else i % LIMIT for i in range(LONG)], dtype="Int64"
    ),
    "nullable Float64 with NA, past the limit at the end": pd.concat(
        [pd.Series([pd.NA] * LONG, dtype="Float64"), pd.Series(np.arange(LIMIT + 1.0), dtype="Float64")],
        ignore_index=True,
    ),
    "-0.0 and 0.0 are one value": pd.Series(
        np.concatenate([np.arange(LIMIT - 1.0), np.full(LONG, -0.0), [0.0]]), dtype="float64"
    ),
    "uint8 past the limit": pd.Series(np.arange(LONG) % 200, dtype="uint8"),
    "continuous": pd.Series(np.random.default_rng(0).normal(size=LONG)),
    "one row": pd.Series([3.5]),
    "bool": pd.Series(np.arange(LONG) % 2 == 0),
    "mixed types (object)": pd.Series([1, "a", 2.5, None, 3] * 1000, dtype=object),
    "text": pd.Series([f"v{i}" for i in range(LONG)]),
    "datetimes": pd.Series(pd.date_range("2024-01-01", periods=LONG, freq="min")),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_infer_kind_is_the_full_nunique_rule(case: str) -> None:
    series = EDGE_CASES[case]
    assert infer_kind(series) == _old_kind(series), case


#: The cases infer_kind counts distinct values for (numeric, not bool).
COUNTED = sorted(
    case
    for case, series in EDGE_CASES.items()
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
)


@pytest.mark.parametrize("case", COUNTED)
@pytest.mark.parametrize("limit", [0, 1, LIMIT - 1, LIMIT, LIMIT + 1])
def test_distinct_exceeds_is_nunique_above_the_limit(case: str, limit: int) -> None:
    series = EDGE_CASES[case]
    assert distinct_exceeds(series, limit) == (series.nunique(dropna=True) > limit), (case, limit)


def test_distinct_exceeds_reads_only_the_first_slice_of_a_continuous_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the change: a column with many distinct values is decided on its first rows."""
    read: list[int] = []
    original = pd.Series.drop_duplicates

    def counting(self: pd.Series, *args: object, **kwargs: object) -> pd.Series:
        read.append(len(self))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pd.Series, "drop_duplicates", counting)
    assert distinct_exceeds(pd.Series(np.random.default_rng(1).normal(size=1_000_000)), LIMIT)
    assert read == [4_096]


def test_rows_frame_is_the_frame_of_the_row_objects() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE t (id INTEGER, at TIMESTAMP, label INTEGER, score REAL, segment TEXT, flag BOOLEAN)"
            )
        )
        rows = [
            {
                "id": i,
                "at": datetime(2024, 1, 1, i % 24, i % 60) if i % 11 else None,
                "label": None if i % 13 == 0 else i % 2,
                "score": None if i % 17 == 0 else i / 7,
                "segment": None if i % 5 == 0 else f"s{i % 4}",
                "flag": None if i % 19 == 0 else bool(i % 2),
            }
            for i in range(3_000)
        ]
        table = sa.table(
            "t",
            sa.column("id", sa.Integer),
            sa.column("at", sa.DateTime),
            sa.column("label", sa.Integer),
            sa.column("score", sa.Float),
            sa.column("segment", sa.String),
            sa.column("flag", sa.Boolean),
        )
        conn.execute(table.insert(), rows)
    names = ["id", "at", "label", "score", "segment", "flag"]
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1_000).execute(
            sa.select(*(table.c[n] for n in names))
        )
        parts = list(result.partitions())
    assert len(parts) == 3 and all(isinstance(p[0], sa.Row) for p in parts)
    for part in parts:
        expected = pd.DataFrame.from_records(part, columns=names)
        got = rows_frame(part, names)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # The SQLite adapter gives datetimes (not text) for the TIMESTAMP column, and NULLs stay missing.
    assert isinstance(rows_frame(parts[0], names)["at"].iloc[1], datetime)
    pd.testing.assert_frame_equal(rows_frame([], names), pd.DataFrame.from_records([], columns=names))


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 3 * 65_536 + 5, 400_000])
def test_sum_of_squares_matches_an_exactly_rounded_sum(size: int) -> None:
    values = np.random.default_rng(size).normal(loc=3.0, scale=2.0, size=size)
    exact = math.fsum(float(v) * float(v) for v in values)  # each square rounded as numpy does
    got = sum_of_squares(values)
    assert isinstance(got, float)
    assert got == pytest.approx(exact, rel=4e-16, abs=0.0)


def test_sum_of_squares_does_not_call_blas(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy.dot is where OpenBLAS starts its threads; the profile must not reach it."""

    def no_dot(*args: object, **kwargs: object) -> None:
        raise AssertionError("np.dot called")

    monkeypatch.setattr(drift_frame.np, "dot", no_dot)
    values = np.random.default_rng(2).normal(size=200_000)
    values[:10] = 2.0**500  # the split-moments branch too
    plain = numeric_profile(pd.Series(values[10:]), (-1.0, 0.0, 1.0))
    split = numeric_profile(pd.Series(values), (-1.0, 0.0, 1.0))
    assert plain.total_sq == pytest.approx(math.fsum(float(v) ** 2 for v in values[10:]), rel=1e-15)
    assert split.scale_exp > 0 and split.count == 200_000


def _reference(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "k": rng.integers(0, 5, size=rows).astype("float64"),  # numeric dtype, categorical kind
            "n": rng.integers(0, 1_000, size=rows),
            "c": rng.choice(np.array(["a", "b", "c"], dtype=object), size=rows),
            "t": pd.date_range("2024-01-01", periods=rows, freq="s"),
        }
    )


def test_parallel_baseline_equals_the_plain_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _reference(60_000)  # above the 50,000 rows where the pool starts
    parallel = build_baseline(frame, name="speed", version="1")
    monkeypatch.setattr(drift_frame.os, "cpu_count", lambda: 1)  # one worker: the plain loop
    serial = build_baseline(frame, name="speed", version="1")
    assert list(parallel.columns) == list(serial.columns) == ["x", "k", "n", "c"]
    assert parallel.columns == serial.columns
    assert {c: s.kind for c, s in parallel.columns.items()} == {
        "x": "numeric",
        "k": "categorical",
        "n": "numeric",
        "c": "categorical",
    }
    assert parallel.reference.to_dict() == serial.reference.to_dict()


def test_parallel_baseline_raises_for_the_first_bad_column() -> None:
    frame = _reference(60_000)
    frame["empty_b"] = np.nan
    frame["empty_a"] = np.nan
    with pytest.raises(MlobsInputError, match="column 'empty_b' has no finite values"):
        build_baseline(frame, name="speed", version="1", columns=["x", "empty_b", "c", "empty_a"])
    with pytest.raises(MlobsInputError, match="column 'empty_a' has no finite values"):
        build_baseline(frame, name="speed", version="1", columns=["empty_a", "x", "empty_b"])
