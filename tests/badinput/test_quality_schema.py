"""Bad input for the schema, quality and freshness checks (issue 12), on SQLite, PostgreSQL and files.

Each case runs a spec (``specs/*.py``, no Airflow) against real data and asserts the exact status and
that the message names the culprit (file, table, column, argument). Bad input the spec raises as
``MlobsInputError`` is an ``error`` result, exactly as the operators' ``guarded`` makes it; anything
else escaping is a crash and fails the case.

Decisions these cases pin down:

- A suite on a window without rows is ``skipped`` ("no rows in <table> in the window <start> ..
  <end>"), not a vacuous pass; a suite that asks for rows (a row-count minimum above 0) ``fail``s.
- Column names compare case-insensitively when no exact-case match exists (catalogs fold unquoted
  names), so a case difference alone passes.
- In PostgreSQL NaN is a value, not NULL: ``not_be_null`` does not count it, a range check reports
  it (``e.g. NaN``). pandas treats NaN as missing, so in a DataFrame it counts as null.
- SQLite keeps any text in a TIMESTAMP column; a value that is not a timestamp is an ``error``
  naming the column, and a 63-character limit exists only in PostgreSQL (longer names are
  truncated there, so a contract naming the full name reports it missing with a rename hint).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.freshness import FreshnessSpec
from airflow_mlobs.specs.quality import QualitySpec
from airflow_mlobs.specs.schema import SchemaSpec
from tests.conftest import pg_url

START = datetime(2026, 11, 25, tzinfo=UTC)
END = datetime(2026, 11, 26, tzinfo=UTC)
IN_WINDOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
WINDOW_TEXT = "in the window 2026-11-25T00:00:00+00:00 .. 2026-11-26T00:00:00+00:00"
LONG_63 = "c" * 60 + "_63"
LONG_64 = "c" * 60 + "_064"


def outcome(run: Callable[[], CheckResult]) -> tuple[str, str]:
    """(status, message): the result's status and summary with its findings' reasons, or
    ``error`` and the message for bad input (as the operators store it)."""
    try:
        result = run()
    except MlobsInputError as exc:
        return "error", str(exc)
    return result.status.value, " | ".join([result.summary, *(f.reason for f in result.findings)])


# --- Databases ----------------------------------------------------------------------------------


@dataclass
class Db:
    """One database for a case: its URL, a way to run DDL/DML, and how to name a table in it."""

    kind: str
    url: str
    engine: sa.Engine
    schema: str | None

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def quoted(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    def run(self, *statements: str, rows: list[dict[str, Any]] | None = None) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                if rows is not None and statement.lstrip().upper().startswith("INSERT"):
                    conn.execute(sa.text(statement), rows)
                else:
                    conn.execute(sa.text(statement))

    @property
    def tz_type(self) -> str:
        return "TIMESTAMPTZ" if self.kind == "postgresql" else "TIMESTAMP"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        engine = sa.create_engine(url)
        yield Db("sqlite", url, engine, None)
        engine.dispose()
        return
    schema = request.getfixturevalue("pg_schema")
    engine = request.getfixturevalue("pg_engine")
    yield Db("postgresql", pg_url(), engine, schema)


def write_suite(folder: Path, name: str, expectations: list[dict[str, Any]], **extra: Any) -> str:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations, **extra}), encoding="utf-8")
    return str(path)


def column_set(*names: str, exact: bool = True) -> dict[str, Any]:
    return {
        "type": "expect_table_columns_to_match_set",
        "kwargs": {"column_set": list(names), "exact_match": exact},
    }


def of_type(column: str, type_name: str) -> dict[str, Any]:
    return {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": column, "type_": type_name}}


# --- Schema against a database --------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaCase:
    columns: str  # the table's DDL column list; {q} quotes a name as the database does
    contract: list[dict[str, Any]]
    status: str
    names: tuple[str, ...]  # what the message must name
    only: str | None = None  # a case for one database only


SCHEMA_CASES = {
    "renamed-customer_age-to-age": SchemaCase(
        "id INTEGER, age INTEGER, region TEXT",
        [column_set("id", "customer_age", "region"), of_type("customer_age", "INTEGER")],
        "fail",
        ("`customer_age` missing; `age` appeared with the same type: renamed?",),
    ),
    "type-changed": SchemaCase(
        "id INTEGER, customer_age TEXT, region TEXT",
        [column_set("id", "customer_age", "region"), of_type("customer_age", "INTEGER")],
        "fail",
        ("`customer_age` is TEXT (string), contract expects integer",),
    ),
    "extra-column-exact-contract": SchemaCase(
        "id INTEGER, customer_age INTEGER, region TEXT, score REAL",
        [column_set("id", "customer_age", "region")],
        "fail",
        ("`score` is not in the contract",),
    ),
    "extra-column-allowed": SchemaCase(
        "id INTEGER, customer_age INTEGER, region TEXT, score REAL",
        [column_set("id", "customer_age", "region", exact=False)],
        "pass",
        ("matches contract",),
    ),
    "reserved-words-present": SchemaCase(
        'id INTEGER, "select" TEXT, "order" INTEGER',
        [column_set("id", "select", "order"), of_type("order", "INTEGER")],
        "pass",
        ("matches contract", "(3 columns)"),
    ),
    "reserved-word-missing": SchemaCase(
        'id INTEGER, "select" TEXT',
        [column_set("id", "select", "order")],
        "fail",
        ("`order` missing",),
    ),
    "unicode-name-retyped": SchemaCase(
        'id INTEGER, "Größe" TEXT',
        [column_set("id", "Größe"), of_type("Größe", "FLOAT")],
        "fail",
        ("`Größe` is TEXT (string), contract expects float",),
    ),
    "63-character-name": SchemaCase(
        f'id INTEGER, "{LONG_63}" INTEGER',
        [column_set("id", LONG_63), of_type(LONG_63, "INTEGER")],
        "pass",
        ("matches contract",),
    ),
    "64-character-name-truncated-by-postgresql": SchemaCase(
        f'id INTEGER, "{LONG_64}" INTEGER',
        [column_set("id", LONG_64), of_type(LONG_64, "INTEGER")],
        "fail",
        (f"`{LONG_64}` missing; `{LONG_64[:63]}` appeared with the same type: renamed?",),
        only="postgresql",
    ),
    "case-difference-only": SchemaCase(
        'id INTEGER, "CustomerAge" INTEGER',
        [column_set("id", "customerage"), of_type("customerage", "INTEGER")],
        "pass",
        ("matches contract",),
    ),
    "nullable-where-contract-wants-not-null": SchemaCase(
        "id INTEGER, customer_age INTEGER",
        [
            column_set("id", "customer_age"),
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_age"}},
        ],
        "warn",
        ("`customer_age` is declared nullable; the contract expects no NULLs",),
    ),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES.values()), ids=list(SCHEMA_CASES))
def test_schema_against_a_database(db: Db, tmp_path: Path, case: SchemaCase) -> None:
    if case.only and case.only != db.kind:
        pytest.skip(f"{case.only} only")
    db.run(f"CREATE TABLE {db.quoted('customer_features')} ({case.columns})")
    contract = write_suite(tmp_path, "customer_features.schema", case.contract)
    spec = SchemaSpec(contract=contract, conn_id=db.url, table=db.table("customer_features"))
    status, message = outcome(lambda: spec.evaluate(connect=url_connected))
    assert status == case.status, message
    for name in case.names:
        assert name in message, message
    assert db.table("customer_features") in message


def test_schema_missing_table_names_it(db: Db, tmp_path: Path) -> None:
    contract = write_suite(tmp_path, "c", [column_set("id")])
    spec = SchemaSpec(contract=contract, conn_id=db.url, table=db.table("no_such_table"))
    assert outcome(lambda: spec.evaluate(connect=url_connected)) == (
        "error",
        f"table {db.table('no_such_table')} does not exist",
    )


# --- Contract and suite files that cannot be used -------------------------------------------------

GOOD_CONTRACT = {"name": "c", "expectations": [column_set("id", "customer_age")]}
GOOD_TEXT = json.dumps(GOOD_CONTRACT)

BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "does not exist"),
    "invalid-json": (b'{"name": "c",\n "expectations": [', "is not valid JSON: Expecting value at line 2"),
    "utf-16-with-bom": (GOOD_TEXT.encode("utf-16"), "is UTF-16 text, not UTF-8; save it as UTF-8"),
    "utf-16-without-bom": (
        GOOD_TEXT.encode("utf-16-le"),
        "is not UTF-8 text (it holds NUL bytes: UTF-16 text or binary data); save it as UTF-8",
    ),
    "latin-1": (
        json.dumps({"name": "Größe", "expectations": []}, ensure_ascii=False).encode("latin-1"),
        "is not UTF-8 text (byte 0xf6 at line 1",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text (it holds NUL bytes: binary data)"),
    "top-level-array": (b"[]", "is not an expectation suite: its top level is an array, not a JSON object"),
    "empty": (b"", "is empty; it must hold a JSON object"),
}


def _place(tmp_path: Path, content: bytes | None) -> Path:
    path = tmp_path / "expectations" / "customer_features.json"
    path.parent.mkdir(exist_ok=True)
    if content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("content", "says"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_unusable_contract_file_is_an_error_naming_it(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = _place(tmp_path, content)
    csv = tmp_path / "features.csv"
    csv.write_text("id,customer_age\n1,30\n", encoding="utf-8")
    status, message = outcome(lambda: SchemaSpec(contract=str(path), path=str(csv)).evaluate())
    assert status == "error"
    assert str(path) in message
    assert says in message, message


@pytest.mark.parametrize(("content", "says"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_unusable_suite_file_is_an_error_naming_it(tmp_path: Path, content: bytes | None, says: str) -> None:
    path = _place(tmp_path, content)
    frame = pd.DataFrame({"id": [1], "customer_age": [30]})
    spec = QualitySpec(suite=str(path), dataframe=True, dataset="features")
    status, message = outcome(lambda: spec.evaluate(frame=frame))
    assert status == "error"
    assert f"suite file {path}" in message
    assert says in message, message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _place(tmp_path, codecs.BOM_UTF8 + GOOD_TEXT.encode("utf-8"))
    csv = tmp_path / "features.csv"
    csv.write_text("id,customer_age\n1,30\n", encoding="utf-8")
    status, message = outcome(lambda: SchemaSpec(contract=str(path), path=str(csv)).evaluate())
    assert (status, message) == ("pass", f"{csv} matches contract c (2 columns)")


BAD_CONTRACTS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "quality-only-suite-as-contract": (
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "customer_age", "min_value": 18, "max_value": 100},
            }
        ],
        "no schema expectations (it has only expect_column_values_to_be_between), so it would match "
        "any table; a schema contract needs at least one of expect_table_columns_to_match_set",
    ),
    "misspelt-expectation-type": (
        [{"type": "expect_column_to_exsit", "kwargs": {"column": "id"}}],
        "unknown expectation type 'expect_column_to_exsit'; did you mean 'expect_column_to_exist'?",
    ),
    "mostly-above-1": (
        [
            column_set("id"),
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id", "mostly": 1.5}},
        ],
        "kwargs.mostly must be a number between 0 and 1, got 1.5",
    ),
    "exact-match-not-boolean": (
        [
            {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": ["id"], "exact_match": "yes"},
            }
        ],
        "kwargs.exact_match must be true or false, got 'yes'",
    ),
}


@pytest.mark.parametrize(("expectations", "says"), list(BAD_CONTRACTS.values()), ids=list(BAD_CONTRACTS))
def test_contract_that_cannot_judge_is_an_error(tmp_path: Path, expectations: list[Any], says: str) -> None:
    contract = write_suite(tmp_path, "c", expectations)
    csv = tmp_path / "features.csv"
    csv.write_text("id,customer_age\n1,30\n", encoding="utf-8")
    status, message = outcome(lambda: SchemaSpec(contract=contract, path=str(csv)).evaluate())
    assert status == "error"
    assert contract in message
    assert says in message, message


# --- Schema of files --------------------------------------------------------------------------------


def test_parquet_renamed_column(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    pq.write_table(pa.table({"id": pa.array([1], pa.int64()), "age": pa.array([30], pa.int32())}), path)
    contract = write_suite(
        tmp_path, "c", [column_set("id", "customer_age"), of_type("customer_age", "INTEGER")]
    )
    status, message = outcome(lambda: SchemaSpec(contract=contract, path=str(path)).evaluate())
    assert status == "fail"
    assert (
        f"{path} breaks contract c: `customer_age` missing; `age` appeared with the same type: renamed?"
        in message
    )


def test_schema_of_a_missing_file(tmp_path: Path) -> None:
    contract = write_suite(tmp_path, "c", [column_set("id")])
    missing = tmp_path / "nowhere.parquet"
    assert outcome(lambda: SchemaSpec(contract=contract, path=str(missing)).evaluate()) == (
        "error",
        f"file {missing} does not exist",
    )


# --- Quality in the database ---------------------------------------------------------------------

AGE_RANGE = {
    "type": "expect_column_values_to_be_between",
    "kwargs": {"column": "customer_age", "min_value": 18, "max_value": 100},
}
REGIONS = {
    "type": "expect_column_values_to_be_in_set",
    "kwargs": {"column": "region", "value_set": ["north", "south"]},
}


def activity(db: Db, rows: list[dict[str, Any]], *, age_type: str = "INTEGER") -> str:
    """Create ``customer_activity`` with ``rows`` (``event_time`` defaults to inside the window)."""
    table = db.quoted("customer_activity")
    db.run(
        f"CREATE TABLE {table} (id INTEGER, customer_age {age_type}, region TEXT, event_time {db.tz_type})"
    )
    if rows:
        naive = db.kind == "sqlite"
        filled = [
            {"id": i, "customer_age": 30, "region": "north", "event_time": IN_WINDOW, **row}
            for i, row in enumerate(rows)
        ]
        for row in filled:
            if naive and isinstance(row["event_time"], datetime):
                row["event_time"] = row["event_time"].astimezone(UTC).replace(tzinfo=None)
        db.run(
            f"INSERT INTO {table} (id, customer_age, region, event_time) "
            "VALUES (:id, :customer_age, :region, :event_time)",
            rows=filled,
        )
    return db.table("customer_activity")


def run_suite(db: Db, tmp_path: Path, table: str, expectations: list[dict[str, Any]]) -> tuple[str, str]:
    suite = write_suite(tmp_path, "activity.quality", expectations)
    spec = QualitySpec(suite=suite, conn_id=db.url, table=table, timestamp_column="event_time")
    return outcome(lambda: spec.evaluate(window_start=START, window_end=END, connect=url_connected))


def test_age_150_shows_distinct_examples_with_counts(db: Db, tmp_path: Path) -> None:
    rows = [{"customer_age": 150}] * 5 + [{"customer_age": 7}] + [{}] * 14
    status, message = run_suite(db, tmp_path, activity(db, rows), [AGE_RANGE])
    assert status == "fail"
    assert "`customer_age`: 30% of values (6 rows) outside 18..100 (e.g. 150 x5, 7)" in message
    assert "150, 150" not in message


def test_empty_window_is_skipped_with_the_reason(db: Db, tmp_path: Path) -> None:
    table = activity(db, [{"event_time": START - timedelta(days=3), "customer_age": 150}])
    status, message = run_suite(db, tmp_path, table, [AGE_RANGE, REGIONS])
    assert status == "skipped"
    assert f"no rows in table {table} {WINDOW_TEXT}; nothing to validate" in message


def test_empty_window_fails_a_suite_that_asks_for_rows(db: Db, tmp_path: Path) -> None:
    table = activity(db, [])
    row_count = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
    status, message = run_suite(db, tmp_path, table, [AGE_RANGE, row_count])
    assert status == "fail"
    assert f"no rows in table {table} {WINDOW_TEXT}: table: row count 0, expected >= 1" in message


@pytest.mark.parametrize(
    ("region", "shown"),
    [("", "(e.g. '')"), ("   ", "(e.g. '   ')"), ("North", "(e.g. 'North')")],
    ids=["empty-string", "whitespace-only", "case-difference"],
)
def test_odd_categories_are_shown_as_they_are(db: Db, tmp_path: Path, region: str, shown: str) -> None:
    table = activity(db, [{"region": region}, {}, {}, {}])
    status, message = run_suite(db, tmp_path, table, [REGIONS])
    assert status == "fail"
    assert f"`region`: 25% of values (1 row) not in {{'north', 'south'}} {shown}" in message


def test_suite_names_a_column_the_table_lacks(db: Db, tmp_path: Path) -> None:
    table = activity(db, [{}])
    missing = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_age_years"}}
    status, message = run_suite(db, tmp_path, table, [missing])
    assert status == "error"
    assert "`customer_age_years` does not exist in" in message
    assert table in message


def test_suite_on_a_missing_table(db: Db, tmp_path: Path) -> None:
    status, message = run_suite(db, tmp_path, db.table("no_such_table"), [AGE_RANGE])
    assert (status, message) == ("error", f"table {db.table('no_such_table')} does not exist")


def test_window_on_a_text_column_is_an_error(db: Db, tmp_path: Path) -> None:
    table = activity(db, [{}])
    suite = write_suite(tmp_path, "s", [AGE_RANGE])
    spec = QualitySpec(suite=suite, conn_id=db.url, table=table, timestamp_column="region")
    status, message = outcome(
        lambda: spec.evaluate(window_start=START, window_end=END, connect=url_connected)
    )
    assert status == "error"
    assert f"column 'region' of table {table} is TEXT, not a timestamp or date" in message


def test_postgresql_nan_is_a_value_not_null(pg_engine: sa.Engine, pg_schema: str, tmp_path: Path) -> None:
    db = Db("postgresql", pg_url(), pg_engine, pg_schema)
    table = activity(
        db, [{"customer_age": float("nan")}, {"customer_age": None}, {}, {}], age_type="DOUBLE PRECISION"
    )
    not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_age"}}
    status, message = run_suite(db, tmp_path, table, [not_null, AGE_RANGE])
    assert status == "fail"
    assert "`customer_age`: 25% of values (1 row) null" in message
    assert "`customer_age`: 33.3% of values (1 row) outside 18..100 (e.g. NaN)" in message


# --- Quality of DataFrames and files ------------------------------------------------------------


def frame_outcome(tmp_path: Path, frame: Any, expectations: list[dict[str, Any]]) -> tuple[str, str]:
    suite = write_suite(tmp_path, "frame.quality", expectations)
    spec = QualitySpec(suite=suite, dataframe=True, dataset="activity_frame")
    return outcome(lambda: spec.evaluate(frame=frame))


def test_dataframe_nan_counts_as_null(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_age": [float("nan"), None, 30.0, 40.0]})
    not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_age"}}
    status, message = frame_outcome(tmp_path, frame, [not_null])
    assert status == "fail"
    assert "`customer_age`: 50% of values (2 rows) null" in message


def test_dataframe_mixed_types_in_an_object_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_age": pd.Series([30, "31", 150.0, None], dtype=object)})
    status, message = frame_outcome(tmp_path, frame, [AGE_RANGE])
    assert status == "error"
    assert "`customer_age`: expect_column_values_to_be_between could not be evaluated" in message


def test_dataframe_duplicate_column_names(tmp_path: Path) -> None:
    frame = pd.DataFrame([[30, 31]], columns=["customer_age", "customer_age"])
    status, message = frame_outcome(tmp_path, frame, [AGE_RANGE])
    assert (status, message) == (
        "error",
        "the DataFrame source activity_frame has duplicate column names: customer_age; "
        "rename them so each expectation names one column",
    )


def test_empty_dataframe_is_skipped(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_age": pd.Series([], dtype="int64")})
    status, message = frame_outcome(tmp_path, frame, [AGE_RANGE])
    assert status == "skipped"
    assert "no rows in the DataFrame activity_frame; nothing to validate" in message


def test_file_with_an_empty_window_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "activity.parquet"
    stamps = pa.array([START - timedelta(days=2)], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"customer_age": pa.array([150]), "event_time": stamps}), path)
    suite = write_suite(tmp_path, "s", [AGE_RANGE])
    spec = QualitySpec(suite=suite, path=str(path), timestamp_column="event_time")
    status, message = outcome(lambda: spec.evaluate(window_start=START, window_end=END))
    assert status == "skipped"
    assert f"no rows in file {path} {WINDOW_TEXT}" in message


def test_unknown_expectation_type_in_a_suite_names_the_file(tmp_path: Path) -> None:
    typo = {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "customer_age"}}
    suite = write_suite(tmp_path, "typo", [typo])
    spec = QualitySpec(suite=suite, dataframe=True, dataset="f")
    status, message = outcome(lambda: spec.evaluate(frame=pd.DataFrame({"customer_age": [1]})))
    assert status == "error"
    assert f"{suite}: expectation #1 (expect_column_values_to_be_betwen): unknown expectation type" in message


def test_suite_mostly_out_of_range_names_the_file(tmp_path: Path) -> None:
    bad = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "customer_age", "mostly": -0.5},
    }
    suite = write_suite(tmp_path, "mostly", [bad])
    spec = QualitySpec(suite=suite, dataframe=True, dataset="f")
    status, message = outcome(lambda: spec.evaluate(frame=pd.DataFrame({"customer_age": [1]})))
    assert status == "error"
    assert (
        f"{suite}: expectation #1 (expect_column_values_to_not_be_null): kwargs.mostly must be a number between 0 and 1, got -0.5"
        in message
    )


# --- Freshness --------------------------------------------------------------------------------

AS_OF = datetime(2026, 11, 26, 6, tzinfo=UTC)


def events(db: Db, stamps: list[datetime | None], *, column_type: str | None = None) -> str:
    table = db.quoted("events")
    db.run(f"CREATE TABLE {table} (id INTEGER, event_time {column_type or db.tz_type})")
    if stamps:
        rows = [
            {
                "id": i,
                "event_time": (s.astimezone(UTC).replace(tzinfo=None) if db.kind == "sqlite" and s else s),
            }
            for i, s in enumerate(stamps)
        ]
        db.run(f"INSERT INTO {table} (id, event_time) VALUES (:id, :event_time)", rows=rows)
    return db.table("events")


def freshness(db: Db, table: str | None = None, **kwargs: Any) -> tuple[str, str]:
    args: dict[str, Any] = {"max_age": "6h", "conn_id": db.url, "timestamp_column": "event_time", **kwargs}
    if "sql" not in kwargs:
        args["table"] = table
    spec = FreshnessSpec(**args)
    spec.validate("fresh")
    return outcome(lambda: spec.evaluate(as_of=AS_OF, connect=url_connected))


def test_fresh_timestamps_with_zone(db: Db) -> None:
    table = events(db, [AS_OF - timedelta(minutes=30)])
    status, message = freshness(db, table)
    assert status == "pass"
    assert f"{table} is fresh: newest row 30m old (limit 6h)" in message


def test_naive_timestamps_are_read_in_the_given_zone(db: Db) -> None:
    # 06:00 wall-clock in Berlin is 05:00 UTC: one hour before as_of, not "from the future".
    table = db.quoted("naive_events")
    db.run(f"CREATE TABLE {table} (event_time TIMESTAMP)")
    db.run(f"INSERT INTO {table} (event_time) VALUES ('2026-11-26 06:00:00')")
    status, message = freshness(db, db.table("naive_events"), timestamp_timezone="Europe/Berlin")
    assert status == "pass"
    assert "newest row 1h old" in message
    assert ZoneInfo("Europe/Berlin").utcoffset(AS_OF.replace(tzinfo=None)) == timedelta(hours=1)


def test_future_timestamps_do_not_make_old_data_fresh(db: Db) -> None:
    table = events(db, [AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)])
    status, message = freshness(db, table)
    assert status == "fail"
    assert (
        "no rows at or before 2026-11-26T06:00:00+00:00 (2 rows are newer: they arrived after that time)"
        in message
    )
    assert table in message


def test_all_null_timestamps(db: Db) -> None:
    table = events(db, [None, None, None])
    status, message = freshness(db, table)
    assert status == "fail"
    assert f"{table} has no data to judge: only NULL timestamps (3 rows, none with a timestamp)" in message


def test_empty_table(db: Db) -> None:
    table = events(db, [])
    status, message = freshness(db, table)
    assert status == "fail"
    assert f"{table} has no data to judge: no rows" in message


def test_text_timestamp_column(db: Db) -> None:
    table = events(db, [], column_type="TEXT")
    status, message = freshness(db, table)
    assert (status, message) == (
        "error",
        f"column 'event_time' of table {table} is TEXT, not a timestamp or date; freshness needs a "
        "timestamp column",
    )


def test_freshness_missing_table(db: Db) -> None:
    status, message = freshness(db, db.table("no_events"))
    assert (status, message) == ("error", f"table {db.table('no_events')} does not exist")


def test_sqlite_timestamp_column_holding_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = sa.create_engine(url)
    db = Db("sqlite", url, engine, None)
    db.run("CREATE TABLE events (event_time TIMESTAMP)", "INSERT INTO events VALUES ('yesterday-ish')")
    status, message = freshness(db, "events")
    engine.dispose()
    assert status == "error"
    assert "column 'event_time' of table events holds a value that cannot be read as a timestamp" in message
    assert "yesterday-ish" in message


def test_postgresql_query_with_duplicate_column_names(pg_engine: sa.Engine, pg_schema: str) -> None:
    db = Db("postgresql", pg_url(), pg_engine, pg_schema)
    table = events(db, [AS_OF])
    sql = f"SELECT a.event_time, b.event_time FROM {table} a JOIN {table} b ON a.id = b.id"
    status, message = freshness(db, sql=sql)
    assert status == "error"
    assert (
        "freshness query on query (column 'event_time') failed: column reference \"event_time\" is ambiguous"
        in message
    )


def test_missing_partition_path(tmp_path: Path) -> None:
    partition = tmp_path / "events" / "dt=2026-11-25"
    spec = FreshnessSpec(partition=str(partition))
    assert outcome(lambda: spec.evaluate(as_of=AS_OF))[0] == "fail"
    assert outcome(lambda: spec.evaluate(as_of=AS_OF))[1].startswith(
        f"{partition}: partition {partition} is missing"
    )


def test_empty_partition_ignores_markers(tmp_path: Path) -> None:
    partition = tmp_path / "events" / "dt=2026-11-25"
    partition.mkdir(parents=True)
    (partition / "_SUCCESS").write_text("")
    status, message = outcome(lambda: FreshnessSpec(partition=str(partition)).evaluate(as_of=AS_OF))
    assert status == "fail"
    assert f"partition {partition} exists but is empty" in message


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "landing"
    spec = FreshnessSpec(max_age="1h", path=str(missing))
    assert outcome(lambda: spec.evaluate(as_of=AS_OF)) == ("error", f"path {missing} does not exist")


# --- Settings: literal ones at construction, templated ones when rendered ------------------------

LITERAL_SETTINGS: dict[str, tuple[Callable[[], Any], str]] = {
    "freshness-negative-max_age": (
        lambda: FreshnessSpec(max_age=-60, table="t", conn_id="wh", timestamp_column="ts"),
        "task_a: max_age: must not be negative, got -60",
    ),
    "freshness-misspelt-max_age": (
        lambda: FreshnessSpec(max_age="6 hours", table="t", conn_id="wh", timestamp_column="ts"),
        "task_a: max_age: '6 hours' is not a duration",
    ),
    "freshness-warn_after-over-max_age": (
        lambda: FreshnessSpec(max_age="1h", warn_after="2h", table="t", conn_id="wh", timestamp_column="ts"),
        "task_a: warn_after (2h) must not exceed max_age (1h); allowed: 0 <= warn_after <= max_age",
    ),
    "freshness-file_pattern-with-folder": (
        lambda: FreshnessSpec(max_age="1h", path="/data", file_pattern="dt=*/part-*.parquet"),
        "task_a: file_pattern 'dt=*/part-*.parquet' is matched against file names, not paths",
    ),
    "freshness-empty-file_pattern": (
        lambda: FreshnessSpec(max_age="1h", path="/data", file_pattern=""),
        "task_a: file_pattern must be a non-empty glob such as '*.parquet', got ''",
    ),
    "freshness-unknown-zone": (
        lambda: FreshnessSpec(
            max_age="1h", table="t", conn_id="wh", timestamp_column="ts", timestamp_timezone="Mars/Olympus"
        ),
        "task_a: timestamp_timezone: unknown time zone 'Mars/Olympus'",
    ),
    "freshness-blank-timestamp_column": (
        lambda: FreshnessSpec(max_age="1h", table="t", conn_id="wh", timestamp_column="  "),
        "task_a: timestamp_column must be a non-empty string, got '  '",
    ),
    "quality-unknown-zone": (
        lambda: QualitySpec(suite="s.json", table="t", conn_id="wh", timestamp_timezone="Berlin"),
        "task_a: timestamp_timezone: unknown time zone 'Berlin'",
    ),
    "quality-suite_parameters-not-a-mapping": (
        lambda: QualitySpec(suite="s.json", table="t", conn_id="wh", suite_parameters=[("min_rows", 1)]),  # type: ignore[arg-type]
        "task_a: suite_parameters must be a mapping of names to values, got list",
    ),
    "schema-forbidden_columns-a-string": (
        lambda: SchemaSpec(contract="c.json", table="t", conn_id="wh", forbidden_columns="pii_*"),  # type: ignore[arg-type]
        "task_a: forbidden_columns must be a list of glob patterns such as ['pii_*'], got the string 'pii_*'",
    ),
    "schema-forbidden_columns-empty-pattern": (
        lambda: SchemaSpec(contract="c.json", table="t", conn_id="wh", forbidden_columns=("pii_*", "")),
        "task_a: forbidden_columns must hold non-empty glob patterns such as 'pii_*', got ''",
    ),
}


@pytest.mark.parametrize(("build", "says"), list(LITERAL_SETTINGS.values()), ids=list(LITERAL_SETTINGS))
def test_literal_setting_out_of_range_fails_at_construction(build: Callable[[], Any], says: str) -> None:
    with pytest.raises(ValueError) as info:
        build().validate("task_a")
    assert says in str(info.value)


def test_templated_settings_pass_construction_and_are_checked_rendered(db: Db) -> None:
    table = events(db, [AS_OF - timedelta(minutes=5)])
    templated = FreshnessSpec(
        max_age="{{ var.value.max_age }}",
        warn_after="{{ var.value.warn }}",
        table=table,
        conn_id=db.url,
        timestamp_column="event_time",
    )
    templated.validate("task_a")  # nothing to judge before rendering
    for max_age, warn_after, says in (
        ("soon", None, "max_age: 'soon' is not a duration"),
        ("-5m", None, "max_age: '-5m' is not a duration"),
        ("1h", "2h", "warn_after (2h) must not exceed max_age (1h)"),
    ):
        rendered = FreshnessSpec(
            max_age=max_age, warn_after=warn_after, table=table, conn_id=db.url, timestamp_column="event_time"
        )
        status, message = outcome(lambda r=rendered: r.evaluate(as_of=AS_OF, connect=url_connected))  # type: ignore[misc]
        assert status == "error"
        assert message.startswith(f"{db.url.split('://')[0]}") and table in message
        assert says in message, message


def test_url_password_never_reaches_the_dataset_name() -> None:
    spec = FreshnessSpec(max_age="1h", table="t", conn_id="postgresql://u:s3cret@db/x", timestamp_column="ts")
    assert spec.dataset_name() == "postgresql://u:***@db/x:t"
    assert (
        "s3cret" not in QualitySpec(suite="s", table="t", conn_id="postgresql://u:s3cret@db/x").dataset_name()
    )
    assert (
        "s3cret"
        not in SchemaSpec(contract="c", table="t", conn_id="postgresql://u:s3cret@db/x").dataset_name()
    )


# --- Identifiers the database must quote, in every check ----------------------------------------


@pytest.mark.parametrize(
    "table_name",
    ["Größe Tabelle", "CustomerActivity", "order", LONG_63],
    ids=["unicode-and-space", "mixed-case", "reserved-word", "63-characters"],
)
def test_quality_and_freshness_on_names_that_need_quoting(db: Db, tmp_path: Path, table_name: str) -> None:
    # Great Expectations lower-cases an unquoted table name and puts it into SQL bare; each of these
    # names was an error ("no such table: Größe") before the table asset got it quoted.
    quoted = db.quoted(table_name)
    db.run(
        f'CREATE TABLE {quoted} ("select" TEXT, "order" INTEGER, "Größe" REAL, "{LONG_63}" INTEGER, '
        f'"when" {db.tz_type})'
    )
    stamp = IN_WINDOW if db.kind == "postgresql" else IN_WINDOW.replace(tzinfo=None)
    db.run(
        f"INSERT INTO {quoted} VALUES ('a', 5, 1.5, 7, :t)",
        f"INSERT INTO {quoted} VALUES ('z', 500, 99.0, 8, :t)",
        rows=[{"t": stamp}],
    )
    table = f'{db.schema}."{table_name}"' if db.schema else f'"{table_name}"'

    def between(column: str, high: int) -> dict[str, Any]:
        return {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": column, "min_value": 0, "max_value": high},
        }

    suite = write_suite(
        tmp_path,
        "odd.quality",
        [
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "select", "value_set": ["a"]}},
            between("order", 10),
            between("Größe", 10),
            between(LONG_63, 7),
        ],
    )
    spec = QualitySpec(suite=suite, conn_id=db.url, table=table, timestamp_column="when")
    status, message = outcome(
        lambda: spec.evaluate(window_start=START, window_end=END, connect=url_connected)
    )
    assert status == "fail", message
    for reason in (
        "`select`: 50% of values (1 row) not in {'a'} (e.g. 'z')",
        "`order`: 50% of values (1 row) outside 0..10 (e.g. 500)",
        "`Größe`: 50% of values (1 row) outside 0..10 (e.g. 99)",
        f"`{LONG_63}`: 50% of values (1 row) outside 0..7 (e.g. 8)",
    ):
        assert reason in message, message
    status, message = freshness(db, table, timestamp_column="when")
    assert (status, message.split(" | ")[0]) == (
        "fail",
        f"{db.url}:{table} is stale: newest row 18h old (limit 6h)",
    )


def test_csv_with_a_duplicate_header_breaks_the_contract(tmp_path: Path) -> None:
    csv = tmp_path / "features.csv"
    csv.write_text("id,customer_age,customer_age\n1,30,31\n", encoding="utf-8")
    contract = write_suite(tmp_path, "c", [column_set("id", "customer_age")])
    status, message = outcome(lambda: SchemaSpec(contract=contract, path=str(csv)).evaluate())
    assert status == "fail"
    assert (
        f"{csv} breaks contract c: `customer_age` appears 2 times; each column needs its own name" in message
    )


def test_quality_of_a_csv_with_a_duplicate_header(tmp_path: Path) -> None:
    csv = tmp_path / "activity.csv"
    csv.write_text("id,customer_age,customer_age\n1,30,31\n", encoding="utf-8")
    suite = write_suite(tmp_path, "s", [AGE_RANGE])
    status, message = outcome(lambda: QualitySpec(suite=suite, path=str(csv)).evaluate())
    assert status == "error"
    assert f"cannot read {csv}" in message and "multiple columns named customer_age" in message


def test_quality_of_a_csv_with_mixed_types_in_a_column(tmp_path: Path) -> None:
    csv = tmp_path / "activity.csv"
    csv.write_text("id,customer_age\n1,30\n2,thirty\n3,\n", encoding="utf-8")
    suite = write_suite(tmp_path, "s", [AGE_RANGE])
    status, message = outcome(lambda: QualitySpec(suite=suite, path=str(csv)).evaluate())
    assert status == "error"
    assert "`customer_age`: expect_column_values_to_be_between could not be evaluated" in message
    assert str(csv) in message


def test_naive_moments_given_to_the_specs_are_utc(db: Db, tmp_path: Path) -> None:
    # A notebook passing datetime(2026, 11, 26, 6) meant UTC; comparing it with the aware newest
    # timestamp was a TypeError, and a naive window bound was read in the machine's zone.
    table = events(db, [AS_OF - timedelta(minutes=30)])
    spec = FreshnessSpec(max_age="6h", conn_id=db.url, table=table, timestamp_column="event_time")
    status, message = outcome(lambda: spec.evaluate(as_of=AS_OF.replace(tzinfo=None), connect=url_connected))
    assert (status, message.split(" | ")[0]) == (
        "pass",
        f"{db.url}:{table} is fresh: newest row 30m old (limit 6h)",
    )
    quality_table = activity(db, [{"customer_age": 150}])
    suite = write_suite(tmp_path, "s", [AGE_RANGE])
    quality = QualitySpec(suite=suite, conn_id=db.url, table=quality_table, timestamp_column="event_time")
    status, message = outcome(
        lambda: quality.evaluate(
            window_start=START.replace(tzinfo=None),
            window_end=END.replace(tzinfo=None),
            connect=url_connected,
        )
    )
    assert status == "fail"
    assert "`customer_age`: 100% of values (1 row) outside 18..100 (e.g. 150)" in message
    status, message = outcome(lambda: spec.evaluate(as_of="tomorrow", connect=url_connected))  # type: ignore[arg-type]
    assert (status, message) == ("error", "as_of: 'tomorrow' is not an ISO 8601 timestamp")


def test_text_timestamps_through_a_query(db: Db) -> None:
    # A query's column has no catalog type, so ISO 8601 text is read as a timestamp (in
    # timestamp_timezone) on every database, as SQLite keeps timestamps; text that is not one is an
    # error naming the column (MAX of text compares as text: cast mixed formats in the query).
    table = db.quoted("text_events")
    db.run(f"CREATE TABLE {table} (event_time TEXT)", f"INSERT INTO {table} VALUES ('2026-11-26 05:00:00')")
    status, message = freshness(db, sql=f"SELECT event_time FROM {table}")
    assert (status, message.split(" | ")[0]) == (
        "pass",
        f"{db.url}:query is fresh: newest row 1h old (limit 6h)",
    )
    db.run(f"INSERT INTO {table} VALUES ('yesterday')")
    status, message = freshness(db, sql=f"SELECT event_time FROM {table}")
    assert (status, message) == (
        "error",
        "column 'event_time' of query holds 'yesterday', which is not a timestamp; "
        "freshness needs a timestamp or date column",
    )
