"""Bad input for drift checks and baselines (issue 12), in DataFrames, files, SQLite and PostgreSQL.

Each case builds a baseline and profiles a window through the real gatherers (``build_baseline`` /
``profile_frame``, ``build_baseline_sql`` / ``profile_sql``), judges it with ``compare`` and asserts
the exact status and that the message names the culprit (column, category, file, query,
argument). Bad input a gatherer raises as ``MlobsInputError`` is an ``error`` result, as the
operators' ``guarded`` makes it; anything else escaping is a crash and fails the case. Every
baseline, profile and result must also be strict JSON (no NaN, no infinity).

Decisions these cases pin down:

- Finite values of any size (a ``DBL_MAX`` sentinel, 1e200) are numbers: the moments are summed in
  split form (``core/profile.py``), the profile is saved and the drift is reported. A DECIMAL beyond
  double range is counted as non-finite, not a database overflow.
- A window with fewer than ``min_rows`` (default 30) rows is ``skipped``; an empty one is an
  ``error``; a column with fewer than ``min_rows`` finite values has its distribution skipped while
  its missing-rate / non-finite findings still count.
- A column that became (mostly) non-finite or NULL fails; a constant reference sees a change in
  either direction; unseen categories count the values folded into ``(other)`` too.
- A reference column with no finite value is an error when the baseline is built, naming it.
- In PostgreSQL NaN is a value apart from NULL (counted as non-finite); in pandas it is missing.
- Categories compare as text: ``''``, ``'  '`` and ``' north'`` are categories of their own
  (named quoted), while ``1``, ``1.0`` and ``'1'`` are the same category.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.drift import DriftSettings, Threshold, compare
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import Baseline, Profile, load_baseline
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.sources.drift_sql import profile_sql

N = 2000
DBL_MAX = 1.7976931348623157e308
START = datetime(2026, 11, 25, tzinfo=UTC)
END = datetime(2026, 11, 26, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
LONG_63 = "c" * 60 + "_63"
REGIONS = ["north", "south", "east", "west"]


def people(seed: int, n: int = N) -> pd.DataFrame:
    """Ages 18..80 (a numeric column) and a region (a categorical one)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": np.clip(rng.normal(45, 12, n), 18, 80).round(1),
            "region": rng.choice(REGIONS, n, p=[0.4, 0.3, 0.2, 0.1]).astype(object),
        }
    )


def _walk(value: Any, where: str) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"non-finite number at {where}"
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]")


def judged(baseline: Baseline, profile: Profile, settings: DriftSettings | None = None) -> CheckResult:
    """``compare`` after proving the baseline and the profile are strict JSON (they are stored)."""
    json.loads(baseline.to_json())
    json.loads(profile.to_json())
    return compare(baseline, profile, settings)


def frame_check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    kinds: dict[str, Any] | None = None,
    settings: DriftSettings | None = None,
) -> CheckResult:
    baseline = build_baseline(reference, name="people", version="v1", kinds=kinds)
    return judged(baseline, profile_frame(current, baseline.columns.values()), settings)


@dataclass
class Db:
    """A database for one case: SQLite in a temporary file or a fresh PostgreSQL schema."""

    engine: sa.Engine
    schema: str | None

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def table(self, name: str) -> TableRef:
        return TableRef(name, self.schema)

    def quoted(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    def write(self, name: str, frame: pd.DataFrame, types: dict[str, Any] | None = None) -> None:
        frame.to_sql(name, self.engine, schema=self.schema, index=False, dtype=types or {})

    def run(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))


TYPES = {"age": sa.Double(), "region": sa.Text()}


def sql_check(
    db: Db,
    reference: pd.DataFrame,
    current: pd.DataFrame | None,
    *,
    kinds: dict[str, Any] | None = None,
    types: dict[str, Any] | None = None,
    sql: str | None = None,
    settings: DriftSettings | None = None,
    **window: Any,
) -> CheckResult:
    """Reference table ``ref`` and window table ``cur`` (unless ``current`` is None: written by the
    case), the baseline built and the window profiled in the database."""
    db.write("ref", reference, types or TYPES)
    if current is not None:
        db.write("cur", current, types or TYPES)
    baseline = build_baseline_sql(db.engine, name="people", version="v1", table=db.table("ref"), kinds=kinds)
    if sql is not None:
        profile, _ = profile_sql(
            db.engine, list(baseline.columns.values()), sql=sql.format(cur=db.quoted("cur")), **window
        )
    else:
        profile, _ = profile_sql(db.engine, list(baseline.columns.values()), table=db.table("cur"), **window)
    return judged(baseline, profile, settings)


# --- the cases -----------------------------------------------------------------------------------


def with_values(frame: pd.DataFrame, column: str, share: float, value: Any) -> pd.DataFrame:
    out = frame.copy()
    if out[column].dtype != object and not isinstance(value, float | int):
        out[column] = out[column].astype(object)
    out.loc[out.index[: int(len(out) * share)], column] = value
    return out


def dbl_max_sentinel_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0), with_values(people(1), "age", 0.1, DBL_MAX))


def dbl_max_in_reference_frame(_: Db | None) -> CheckResult:
    return frame_check(
        with_values(people(0), "age", 0.01, DBL_MAX), with_values(people(1), "age", 0.01, DBL_MAX)
    )


def huge_finite_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0), with_values(people(1), "age", 1.0, 1e200))


def decimal_beyond_double_frame(_: Db | None) -> CheckResult:
    reference = people(0).assign(price=lambda f: [Decimal(f"{v:.2f}") for v in f["age"] * 3])
    current = people(1).assign(price=lambda f: [Decimal(f"{v:.2f}") for v in f["age"] * 3])
    current.loc[current.index[: N * 6 // 10], "price"] = Decimal("1e400")
    return frame_check(reference, current, kinds={"price": "numeric"})


def constant_reference(fill: Callable[[int], Any]) -> Callable[[Db | None], CheckResult]:
    def case(_: Db | None) -> CheckResult:
        reference = people(0).assign(k=5.0)
        current = people(1).assign(k=fill(N))
        return frame_check(reference, current, kinds={"k": "numeric"})

    return case


def rows_window(rows: int, age: float, **settings: Any) -> Callable[[Db | None], CheckResult]:
    def case(_: Db | None) -> CheckResult:
        current = people(1, rows).assign(age=age)
        return frame_check(people(0), current, settings=DriftSettings(**settings))

    return case


def sparse_column_frame(_: Db | None) -> CheckResult:
    current = people(1)
    current.loc[current.index[10:], "age"] = np.nan
    return frame_check(people(0), current)


def non_finite_frame(value: float, share: float) -> Callable[[Db | None], CheckResult]:
    return lambda _: frame_check(people(0), with_values(people(1), "age", share, value))


def many_new_categories(n_new: int = 5000) -> pd.DataFrame:
    current = people(1, 10_000)
    current.loc[current.index[:n_new], "region"] = [f"new-{i}" for i in range(n_new)]
    return current


def unseen_folded_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0, 10_000), many_new_categories())


def reference_without_values(value: Any, column: str = "age") -> Callable[[Db | None], CheckResult]:
    def case(_: Db | None) -> CheckResult:
        reference = people(0)
        reference[column] = value
        if value is None:
            reference[column] = reference[column].astype(object if column == "region" else float)
        return frame_check(reference, people(1))

    return case


def category_values(value: Any, share: float = 0.5) -> Callable[[Db | None], CheckResult]:
    return lambda _: frame_check(people(0), with_values(people(1), "region", share, value))


def mixed_types_numeric_frame(_: Db | None) -> CheckResult:
    current = people(1)
    age = current["age"].astype(object)
    age.iloc[[5, 50, 500]] = ["n/a", "", "12,5"]
    age.iloc[[6, 60]] = ["33", 41]  # numbers as text and as int: still numbers
    current["age"] = age
    return frame_check(people(0), current)


def mixed_types_category_frame(_: Db | None) -> CheckResult:
    rng = np.random.default_rng(3)
    reference = people(0).assign(code=rng.choice(["1", "2", "3"], N).astype(object))
    mixed: list[Any] = [1, 2.0, "3"]
    current = people(1).assign(code=pd.Series([mixed[i] for i in rng.integers(0, 3, N)], dtype=object))
    return frame_check(reference, current, kinds={"code": "categorical"})


def all_null_category_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0), people(1).assign(region=None))


def empty_window_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0), people(1).iloc[:0])


def booleans_frame(_: Db | None) -> CheckResult:
    rng = np.random.default_rng(4)
    return frame_check(people(0).assign(flag=rng.random(N) < 0.5), people(1).assign(flag=True))


def missing_column_frame(_: Db | None) -> CheckResult:
    return frame_check(people(0), people(1).drop(columns=["region"]))


def other_columns_frame(_: Db | None) -> CheckResult:
    baseline = build_baseline(people(0), name="people", version="v1")
    other = pd.DataFrame({"height": np.arange(100.0), "city": ["x"] * 100})
    return judged(baseline, profile_frame(other, baseline.columns.values()))


def utf16_baseline_file(_: Db | None, tmp_path: Path) -> CheckResult:
    baseline = build_baseline(people(0), name="people", version="v1")
    path = tmp_path / "people" / "v1.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(codecs.BOM_UTF16_LE + baseline.to_json().encode("utf-16-le"))
    loaded = load_baseline(tmp_path, "people", "v1")
    return judged(loaded, profile_frame(people(1), loaded.columns.values()))


# SQL cases (SQLite and PostgreSQL)


def dbl_max_sql(db: Db) -> CheckResult:
    return sql_check(db, people(0), with_values(people(1), "age", 0.1, DBL_MAX))


def unseen_folded_sql(db: Db) -> CheckResult:
    return sql_check(db, people(0, 10_000), many_new_categories())


def reference_all_infinite_sql(db: Db) -> CheckResult:
    return sql_check(db, people(0).assign(age=math.inf), people(1))


def reference_all_null_sql(db: Db) -> CheckResult:
    return sql_check(db, people(0).assign(age=None), people(1))


def constant_sql(db: Db) -> CheckResult:
    types = {**TYPES, "k": sa.Double()}
    return sql_check(
        db, people(0).assign(k=5.0), people(1).assign(k=6.0), kinds={"k": "numeric"}, types=types
    )


def text_in_numeric_query(db: Db) -> CheckResult:
    db.write(
        "cur",
        people(1)
        .assign(age=people(1)["age"].astype(str))
        .assign(age=lambda f: f["age"].where(f.index > 3, "n/a")),
        {"age": sa.Text(), "region": sa.Text()},
    )
    return sql_check(db, people(0), None, sql="SELECT age, region FROM {cur}")


def booleans_sql(db: Db) -> CheckResult:
    rng = np.random.default_rng(4)
    types = {**TYPES, "flag": sa.Boolean()}
    return sql_check(db, people(0).assign(flag=rng.random(N) < 0.5), people(1).assign(flag=True), types=types)


def renamed(name: str) -> Callable[[Db], CheckResult]:
    def case(db: Db) -> CheckResult:
        types = {name: sa.Double(), "region": sa.Text()}
        reference = people(0).rename(columns={"age": name})
        current = people(1).rename(columns={"age": name}).assign(**{name: 150.0})
        return sql_check(db, reference, current, types=types)

    return case


def duplicate_names_query(db: Db) -> CheckResult:
    return sql_check(db, people(0), people(1), sql="SELECT age, region, age FROM {cur}")


def missing_column_sql(db: Db) -> CheckResult:
    return sql_check(db, people(0), people(1).drop(columns=["region"]))


def windowed(aware: bool) -> Callable[[Db], CheckResult]:
    """Rows every minute from 2026-11-24 12:00 for two days; the window is one day of them. A naive
    column holds Berlin wall-clock time (read in ``naive_zone``)."""

    def case(db: Db) -> CheckResult:
        current = people(1, 2 * 24 * 60)
        stamps = pd.date_range("2026-11-24 12:00", periods=len(current), freq="min", tz="UTC")
        current["ts"] = stamps if aware else stamps.tz_convert(BERLIN).tz_localize(None)
        types = {**TYPES, "ts": sa.DateTime(timezone=aware)}
        window = {"timestamp_column": "ts", "window_start": START, "window_end": END, "naive_zone": BERLIN}
        return sql_check(db, people(0), current, types=types, **window)

    return case


def nan_not_null_pg(db: Db) -> CheckResult:
    db.write("cur", people(1), TYPES)
    db.run(f"UPDATE {db.quoted('cur')} SET age = 'NaN' WHERE random() < 2 AND age < 50")
    return sql_check(db, people(0), None)


def null_pg(db: Db) -> CheckResult:
    db.write("cur", people(1), TYPES)
    db.run(f"UPDATE {db.quoted('cur')} SET age = NULL WHERE age < 50")
    return sql_check(db, people(0), None)


def numeric_beyond_double_pg(db: Db) -> CheckResult:
    types = {"age": sa.Numeric(), "region": sa.Text()}
    db.write("cur", people(1), types)
    db.run(f"UPDATE {db.quoted('cur')} SET age = 1e400 WHERE age < 50")
    return sql_check(db, people(0), None, types=types)


def overflow_in_query_pg(db: Db) -> CheckResult:
    sql = "SELECT CASE WHEN age > 70 THEN age * 1e300::float8 * 1e300::float8 ELSE age END AS age, region FROM {cur}"
    return sql_check(db, people(0), people(1), sql=sql)


def baseline_text_in_numeric_query_pg(db: Db) -> CheckResult:
    current = people(1).assign(age=lambda f: f["age"].astype(str).where(f.index > 3, "n/a"))
    db.write("ref", current, {"age": sa.Text(), "region": sa.Text()})
    sql = f"SELECT age::float8 AS age, region FROM {db.quoted('ref')}"
    baseline = build_baseline_sql(
        db.engine,
        name="people",
        version="v1",
        sql=sql,
        columns=["age", "region"],
        kinds={"age": "numeric", "region": "categorical"},
    )
    return judged(baseline, profile_sql(db.engine, list(baseline.columns.values()), sql=sql)[0])


def baseline_numeric_beyond_double_pg(db: Db) -> CheckResult:
    """A NUMERIC reference with values beyond double range: those are non-finite, the rest binned;
    a window where 60% are beyond it fails."""
    types = {"age": sa.Numeric(), "region": sa.Text()}
    db.write("ref", people(0), types)
    db.run(f"UPDATE {db.quoted('ref')} SET age = 1e400 WHERE age > 75")
    db.write("cur", people(1), types)
    db.run(f"UPDATE {db.quoted('cur')} SET age = -1e400 WHERE age < 50")
    baseline = build_baseline_sql(db.engine, name="people", version="v1", table=db.table("ref"))
    reference = baseline.reference.columns["age"]
    assert reference.non_finite > 0 and reference.count + reference.non_finite == N  # type: ignore[union-attr]
    profile, _ = profile_sql(db.engine, list(baseline.columns.values()), table=db.table("cur"))
    return judged(baseline, profile)


def baseline_query_dbl_max(db: Db) -> CheckResult:
    """A query source (no catalog: exact bounds) holding a DBL_MAX sentinel in the reference."""
    db.write("ref", with_values(people(0), "age", 0.01, DBL_MAX), TYPES)
    db.write("cur", with_values(people(1), "age", 0.01, DBL_MAX), TYPES)
    kinds = {"age": "numeric", "region": "categorical"}
    baseline = build_baseline_sql(
        db.engine,
        name="people",
        version="v1",
        sql=f"SELECT * FROM {db.quoted('ref')}",
        columns=list(kinds),
        kinds=kinds,  # type: ignore[arg-type]
    )
    profile, _ = profile_sql(
        db.engine, list(baseline.columns.values()), sql=f"SELECT * FROM {db.quoted('cur')}"
    )
    return judged(baseline, profile)


@dataclass(frozen=True)
class Case:
    id: str
    where: str  # "frame", "file", "sqlite", "postgres" or "both" (SQLite and PostgreSQL)
    run: Callable[..., CheckResult]
    status: str
    names: tuple[str, ...]


CASES = [
    # finite values beyond ~1.3e154 and decimals beyond double range: kept, saved, judged
    Case("dbl-max-sentinel", "frame", dbl_max_sentinel_frame, "fail", ("age (wasserstein",)),
    Case("dbl-max-in-reference", "frame", dbl_max_in_reference_frame, "pass", ("no drift in 2 columns",)),
    Case("all-1e200", "frame", huge_finite_frame, "fail", ("age (wasserstein",)),
    Case("decimal-beyond-double", "frame", decimal_beyond_double_frame, "warn", ("`price`: 1200 infinite",)),
    # a constant reference sees a change either way
    Case(
        "constant-all-6",
        "frame",
        constant_reference(lambda n: 6.0),
        "warn",
        ("`k`: reference is constant at 5; 100.0%",),
    ),
    Case(
        "constant-uniform-5-100",
        "frame",
        constant_reference(lambda n: np.linspace(5.0, 100.0, n)),
        "warn",
        ("`k`: reference is constant at 5;", "above"),
    ),
    Case(
        "constant-all-4",
        "frame",
        constant_reference(lambda n: 4.0),
        "warn",
        ("`k`: reference is constant at 5; 100.0% of window values differ (100.0% below",),
    ),
    Case(
        "constant-unchanged", "frame", constant_reference(lambda n: 5.0), "pass", ("no drift in 3 columns",)
    ),
    # too few rows
    Case(
        "one-row-age-150",
        "frame",
        rows_window(1, 150.0),
        "skipped",
        ("window has 1 row, fewer than min_rows=30",),
    ),
    Case(
        "29-rows", "frame", rows_window(29, 150.0), "skipped", ("window has 29 rows, fewer than min_rows=30",)
    ),
    Case("10-rows-min-rows-5", "frame", rows_window(10, 150.0, min_rows=5), "fail", ("age (wasserstein",)),
    Case(
        "sparse-column",
        "frame",
        sparse_column_frame,
        "fail",
        (
            "`age`: missing rate 0.0% -> 99.5%",
            "`age`: 10 finite values in the window, fewer than min_rows=30",
        ),
    ),
    # non-finite values count and drift
    Case(
        "all-plus-inf",
        "frame",
        non_finite_frame(math.inf, 1.0),
        "fail",
        ("`age`: 2000 infinite", "non-finite rate 0.0% -> 100.0%"),
    ),
    Case("mostly-minus-inf", "frame", non_finite_frame(-math.inf, 0.6), "fail", ("`age`: 1200 infinite",)),
    Case("few-inf-named", "frame", non_finite_frame(math.inf, 0.005), "warn", ("`age`: 10 infinite",)),
    Case(
        "all-nan-frame-is-null",
        "frame",
        non_finite_frame(math.nan, 1.0),
        "fail",
        ("`age`: missing rate 0.0% -> 100.0%",),
    ),
    # unseen categories, folded ones included
    Case(
        "unseen-5000-new-categories",
        "frame",
        unseen_folded_frame,
        "fail",
        ("`region`: 50.0% of values in categories the reference never saw",),
    ),
    Case(
        "unseen-1pct",
        "frame",
        category_values("mars", 0.01),
        "fail",
        ("`region`: 1.0% of values in categories the reference never saw (mars)",),
    ),
    Case("empty-string-category", "frame", category_values(""), "fail", ("never saw ('')",)),
    Case("whitespace-only-category", "frame", category_values("   "), "fail", ("never saw ('   ')",)),
    Case("whitespace-padded-category", "frame", category_values(" north"), "fail", ("never saw (' north')",)),
    Case("mixed-types-category", "frame", mixed_types_category_frame, "pass", ("no drift in 3 columns",)),
    Case(
        "mixed-types-numeric",
        "frame",
        mixed_types_numeric_frame,
        "error",
        ("`age`: 3 values are not numbers",),
    ),
    Case(
        "all-null-category",
        "frame",
        all_null_category_frame,
        "fail",
        ("`region`: missing rate 0.0% -> 100.0%",),
    ),
    Case("empty-window", "frame", empty_window_frame, "error", ("no rows in the window",)),
    Case("booleans", "frame", booleans_frame, "warn", ("flag (js",)),
    # reference without values: an error when the baseline is built
    Case(
        "reference-all-inf",
        "frame",
        reference_without_values(math.inf),
        "error",
        ("column 'age' has no finite values in the reference (2000 rows: 0 NULL, 2000 infinite",),
    ),
    Case(
        "reference-all-null",
        "frame",
        reference_without_values(None),
        "error",
        ("column 'age' has no finite values in the reference (2000 rows: 2000 NULL)",),
    ),
    Case(
        "reference-all-null-category",
        "frame",
        reference_without_values(None, "region"),
        "error",
        ("column 'region' has no finite values in the reference",),
    ),
    # wrong columns, wrong files
    Case(
        "missing-column",
        "frame",
        missing_column_frame,
        "error",
        ("`region` is missing from the current data",),
    ),
    Case(
        "baseline-for-other-columns",
        "frame",
        other_columns_frame,
        "error",
        ("`age` is missing", "`region` is missing"),
    ),
    Case(
        "utf16-baseline-file",
        "file",
        utf16_baseline_file,
        "error",
        ("v1.json is not UTF-8 text", "rebuild it"),
    ),
    # in the database
    Case("dbl-max-sentinel", "both", dbl_max_sql, "fail", ("age (wasserstein",)),
    Case(
        "unseen-5000-new-categories",
        "both",
        unseen_folded_sql,
        "fail",
        ("`region`: 50.0% of values in categories the reference never saw",),
    ),
    Case(
        "reference-all-inf",
        "both",
        reference_all_infinite_sql,
        "error",
        ("column 'age' of table", "has no finite values in the reference"),
    ),
    Case(
        "reference-all-null", "both", reference_all_null_sql, "error", ("column 'age' of table", "2000 NULL")
    ),
    Case("constant-all-6", "both", constant_sql, "warn", ("`k`: reference is constant at 5; 100.0%",)),
    Case("booleans", "both", booleans_sql, "warn", ("flag (js",)),
    Case("reserved-word-select", "both", renamed("select"), "fail", ("select (wasserstein",)),
    Case("unicode-groesse", "both", renamed("Größe"), "fail", ("Größe (wasserstein",)),
    Case("identifier-63-chars", "both", renamed(LONG_63), "fail", (f"{LONG_63} (wasserstein",)),
    Case(
        "missing-column", "both", missing_column_sql, "error", ("`region` is missing from the current data",)
    ),
    Case("window-timestamptz", "both", windowed(aware=True), "pass", ("no drift in 2 columns", "rows=1440")),
    Case(
        "window-naive-berlin", "both", windowed(aware=False), "pass", ("no drift in 2 columns", "rows=1440")
    ),
    Case(
        "text-in-numeric-query",
        "sqlite",
        text_in_numeric_query,
        "error",
        ("`age`: 2000 values are not numbers",),
    ),
    Case(
        "text-in-numeric-query",
        "postgres",
        text_in_numeric_query,
        "error",
        ("for column 'age'", "text >= numeric", "query 'SELECT age, region FROM"),
    ),
    Case(
        "duplicate-names-query",
        "both",
        duplicate_names_query,
        "error",
        ("returns column 'age' more than once", "SELECT age, region, age FROM"),
    ),
    Case(
        "nan-not-null",
        "postgres",
        nan_not_null_pg,
        "fail",
        ("`age`: ", "infinite, NaN or out-of-range values"),
    ),
    Case(
        "baseline-text-in-numeric-query",
        "postgres",
        baseline_text_in_numeric_query_pg,
        "error",
        (
            "baseline 'people': query on query 'SELECT age::float8 AS age",
            "for column 'age'",
            "invalid input syntax",
        ),
    ),
    Case(
        "baseline-numeric-beyond-double",
        "postgres",
        baseline_numeric_beyond_double_pg,
        "fail",
        ("`age`: ", "non-finite rate"),
    ),
    Case("baseline-query-dbl-max", "both", baseline_query_dbl_max, "pass", ("no drift in 2 columns",)),
    Case("null", "postgres", null_pg, "fail", ("`age`: missing rate 0.0% ->",)),
    Case(
        "numeric-beyond-double",
        "postgres",
        numeric_beyond_double_pg,
        "fail",
        ("`age`: ", "infinite, NaN or out-of-range"),
    ),
    Case(
        "overflow-in-query",
        "postgres",
        overflow_in_query_pg,
        "error",
        ("for column 'age'", "out of range", "SELECT CASE WHEN age > 70"),
    ),
]


def _params() -> Iterator[Any]:
    for case in CASES:
        if case.where == "both":
            yield pytest.param(case, "sqlite", id=f"sqlite-{case.id}")
            yield pytest.param(case, "postgres", id=f"postgres-{case.id}", marks=pytest.mark.postgres)
        elif case.where == "postgres":
            yield pytest.param(case, "postgres", id=f"postgres-{case.id}", marks=pytest.mark.postgres)
        elif case.where == "sqlite":
            yield pytest.param(case, "sqlite", id=f"sqlite-{case.id}")
        else:
            yield pytest.param(case, case.where, id=f"{case.where}-{case.id}")


def outcome(run: Callable[[], CheckResult]) -> tuple[str, str]:
    """(status, message): the result's status and summary with its findings' reasons and rows, or
    ``error`` and the message for bad input (as the operators store it)."""
    try:
        result = run()
    except MlobsInputError as exc:
        return "error", str(exc)
    data = json.loads(result.to_json())  # strict JSON: raises on NaN or infinity
    _walk(data, "result")
    reasons = " | ".join(f.reason for f in result.findings)
    return result.status.value, f"{result.summary} | {reasons} | rows={result.metrics.get('rows')}"


@pytest.mark.parametrize(("case", "where"), list(_params()))
def test_bad_drift_input(case: Case, where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if where == "sqlite":
        db: Db | None = Db(sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}"), None)
    elif where == "postgres":
        db = Db(request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema"))
    else:
        db = None
    status, message = outcome(lambda: case.run(db, tmp_path) if where == "file" else case.run(db))
    assert status == case.status, message
    for name in case.names:
        assert name in message, message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            {"drift_share": "half"}, "drift_share must be a number in (0, 1]", id="drift-share-text"
        ),
        pytest.param(
            {"drift_share": 1.5}, "drift_share must be a number in (0, 1]", id="drift-share-above-1"
        ),
        pytest.param({"drift_share": 0}, "drift_share must be a number in (0, 1]", id="drift-share-zero"),
        pytest.param(
            {"drift_share": math.nan}, "drift_share must be a number in (0, 1]", id="drift-share-nan"
        ),
        pytest.param(
            {"warn_share": 0.8},
            "warn_share must be None or a number in (0, drift_share=0.5]",
            id="warn-above-drift",
        ),
        pytest.param(
            {"warn_share": 0.0}, "warn_share must be None or a number in (0, drift_share=0.5]", id="warn-zero"
        ),
        pytest.param({"alpha": 1.0}, "alpha must be a number in (0, 1)", id="alpha-one"),
        pytest.param(
            {"correction": "holm"},
            "correction must be one of none, bonferroni, bh, by, got 'holm'",
            id="correction",
        ),
        pytest.param(
            {"numeric_method": "energy"}, "numeric_method must be one of wasserstein", id="numeric-method"
        ),
        pytest.param(
            {"methods": {"age": "t-test"}}, "methods['age'] must be one of wasserstein", id="column-method"
        ),
        pytest.param(
            {"importances": {"age": math.inf}},
            "importances['age'] must be a finite number >= 0",
            id="importance-inf",
        ),
        pytest.param(
            {"importances": {"age": -1.0}},
            "importances['age'] must be a finite number >= 0",
            id="importance-negative",
        ),
        pytest.param(
            {"thresholds": {"age": 0.1}},
            "thresholds['age'] must be a Threshold(warn, fail)",
            id="threshold-not-threshold",
        ),
        pytest.param({"min_rows": 0}, "min_rows must be an integer >= 1, got 0", id="min-rows-zero"),
        pytest.param({"min_rows": 2.5}, "min_rows must be an integer >= 1, got 2.5", id="min-rows-float"),
    ],
)
def test_drift_settings_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        DriftSettings(**arguments)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("warn", "fail", "message"),
    [
        pytest.param(0.2, 0.1, "0 <= warn <= fail, got warn=0.2, fail=0.1", id="warn-above-fail"),
        pytest.param(-0.1, 0.1, "0 <= warn <= fail, got warn=-0.1", id="negative"),
        pytest.param(math.nan, 0.1, "threshold warn must be a number >= 0, got nan", id="nan"),
        pytest.param("0.1", 0.2, "threshold warn must be a number >= 0, got '0.1'", id="text"),
    ],
)
def test_threshold_refused(warn: Any, fail: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Threshold(warn=warn, fail=fail)
    assert message in str(raised.value)


def test_min_rows_skip_is_configurable_and_default_documented() -> None:
    """The default is 30 and the reason names it; a lower min_rows judges the same window."""
    assert DriftSettings().min_rows == 30
    reference, current = people(0), people(1, 40).assign(age=150.0)
    assert frame_check(reference, current).status.value == "fail"
    skipped = frame_check(reference, current, settings=DriftSettings(min_rows=50))
    assert skipped.status.value == "skipped"
    assert "window has 40 rows, fewer than min_rows=50" in skipped.summary
