"""Great Expectations suites on a window of a SQL table, run in the database (PostgreSQL and SQLite).

Rows reaching the worker are counted at the DB-API level: every connection the pools open gets a
counting cursor (psycopg2) or row factory (sqlite3), so whatever engine Great Expectations builds
from the URL is measured, not just the one we hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.quality import judge_validation
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.operators.quality import ExpectationSuiteOperator
from airflow_mlobs.sources.dialect import SqlDialect
from airflow_mlobs.sources.quality import validate_table
from tests.conftest import pg_connection_fields

START = datetime(2026, 11, 25, tzinfo=UTC)
END = datetime(2026, 11, 26, tzinfo=UTC)

SUITE: dict[str, Any] = {
    "name": "activity.quality",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "customer_age", "min_value": 18, "max_value": 100},
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_age", "mostly": 0.9}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "region", "value_set": ["north", "south"]},
            "meta": {"severity": "warn"},
        },
        {
            "type": "expect_column_values_to_be_of_type",
            "kwargs": {"column": "customer_age", "type_": "INTEGER"},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": {"$PARAMETER": "min_rows"}}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    ],
}


class RowCounter:
    """Counts rows fetched by any DB-API cursor opened while installed."""

    def __init__(self) -> None:
        self.rows = 0
        counter = self

        class CountingCursor(psycopg2.extensions.cursor):
            def fetchone(self) -> Any:
                row = super().fetchone()
                counter.rows += row is not None
                return row

            def fetchmany(self, size: Any = None) -> Any:
                rows = super().fetchmany(size) if size is not None else super().fetchmany()
                counter.rows += len(rows)
                return rows

            def fetchall(self) -> Any:
                rows = super().fetchall()
                counter.rows += len(rows)
                return rows

        self.cursor_class = CountingCursor

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, psycopg2.extensions.connection):
            dbapi_connection.cursor_factory = self.cursor_class
        elif hasattr(dbapi_connection, "row_factory"):  # sqlite3

            def count(_cursor: Any, row: tuple[Any, ...]) -> tuple[Any, ...]:
                self.rows += 1
                return row

            dbapi_connection.row_factory = count


@pytest.fixture
def row_counter() -> Iterator[RowCounter]:
    counter = RowCounter()
    sa.event.listen(sa.pool.Pool, "connect", counter.on_connect)
    yield counter
    sa.event.remove(sa.pool.Pool, "connect", counter.on_connect)


def create_activity(engine: sa.Engine, schema: str | None, rows: int) -> str:
    """``activity``: ``rows`` rows on 2026-11-25 (naive UTC) plus 100 the day before; ids unique
    except one duplicate; ages 20..79 except two of 150 and one NULL in the window; one region 'mars'."""
    name = f"{schema}.activity" if schema else "activity"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {name} (id INTEGER, event_time TIMESTAMP, customer_age INTEGER, region VARCHAR(16))"
            )
        )
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    f"INSERT INTO {name} SELECT g, TIMESTAMP '2026-11-25' + (g * 86399.0 / :n) * INTERVAL '1 second', "
                    "20 + g % 60, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END FROM generate_series(1, :n) g"
                ),
                {"n": rows},
            )
        else:
            conn.execute(
                sa.text(
                    f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
                    f"INSERT INTO {name} SELECT x, datetime('2026-11-25', '+' || (x * 86399 / :n) || ' seconds'), "
                    "20 + x % 60, CASE WHEN x % 2 = 0 THEN 'north' ELSE 'south' END FROM g"
                ),
                {"n": rows},
            )
        conn.execute(sa.text(f"UPDATE {name} SET customer_age = 150 WHERE id IN (5, 6)"))
        conn.execute(sa.text(f"UPDATE {name} SET customer_age = NULL WHERE id = 7"))
        conn.execute(sa.text(f"UPDATE {name} SET region = 'mars' WHERE id = 8"))
        conn.execute(sa.text(f"UPDATE {name} SET id = 9 WHERE id = 10"))
        # The day before: outside the window, full of bad values that must not be judged.
        conn.execute(
            sa.text(f"INSERT INTO {name} VALUES (:i, :t, 999, 'nowhere')"),
            [{"i": 10_000_000 + i, "t": datetime(2026, 11, 24, 12, 0)} for i in range(100)],
        )
    return name


def judge(
    engine: sa.Engine, table: TableRef, rows_min: int, dialect: SqlDialect | None = None
) -> tuple[Any, Any]:
    run = validate_table(
        engine,
        table,
        SUITE,
        timestamp_column="event_time",
        window_start=START,
        window_end=END,
        naive_zone=UTC,
        suite_parameters={"min_rows": rows_min},
        dialect=dialect,
    )
    return run, judge_validation(run.validation, dataset=str(table), window_start=START, window_end=END)


def assert_mapped(result: Any, rows: int) -> None:
    findings = {(f.subject, f.metric): f for f in result.findings}
    age = findings[("customer_age", "expect_column_values_to_be_between")]
    assert age.status is Status.FAIL
    assert "outside 18..100 (e.g. 150 x2)" in age.reason
    assert "(2 rows)" in age.reason
    region = findings[("region", "expect_column_values_to_be_in_set")]
    assert region.status is Status.WARN and "(e.g. 'mars')" in region.reason
    unique = findings[("id", "expect_column_values_to_be_unique")]
    assert unique.status is Status.FAIL and "duplicated" in unique.reason
    assert findings[("customer_age", "expect_column_values_to_not_be_null")].status is Status.PASS
    assert findings[("customer_age", "expect_column_values_to_be_of_type")].status is Status.PASS
    count = findings[("table", "expect_table_row_count_to_be_between")]
    assert count.status is Status.PASS and count.value == rows  # the day before is not in the window
    assert result.status is Status.FAIL
    assert result.metrics["evaluated_expectations"] == 6
    assert result.metrics["failed_expectations"] == 2 and result.metrics["warned_expectations"] == 1


AGGREGATE_OR_LIMITED = re.compile(r"(count\(|sum\(|avg\(|min\(|max\(|LIMIT|pg_catalog|PRAGMA|sqlite_)", re.I)


def assert_pushed_down(statements: tuple[str, ...]) -> None:
    assert statements
    for statement in statements:
        assert AGGREGATE_OR_LIMITED.search(statement), statement
        if "event_time" in statement:
            assert "event_time >=" in statement and "event_time <" in statement


def test_sqlite_window_suite(tmp_path: Path, row_counter: RowCounter) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    create_activity(engine, None, 2_000)
    row_counter.rows = 0
    run, result = judge(engine, TableRef("activity"), 1_000)
    assert_mapped(result, 2_000)
    assert_pushed_down(run.statements)
    assert row_counter.rows < 200, row_counter.rows


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_ansi_dialect_runs_the_suite_through_the_generic_datasource(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The generic dialect points Great Expectations at its generic SQL datasource (``add_sql``):
    the same findings, still pushed down, as through the database's own datasource."""
    if database == "sqlite":
        engine, schema = sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}"), None
    else:
        engine, schema = request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema")
    create_activity(engine, schema, 2_000)
    run, result = judge(engine, TableRef("activity", schema), 1_000, dialect=SqlDialect())
    assert_mapped(result, 2_000)
    assert_pushed_down(run.statements)


@pytest.mark.postgres
def test_postgres_200k_rows_never_reach_the_worker(
    pg_engine: sa.Engine, pg_schema: str, row_counter: RowCounter
) -> None:
    create_activity(pg_engine, pg_schema, 200_000)
    row_counter.rows = 0
    run, result = judge(pg_engine, TableRef("activity", pg_schema), 100_000)
    assert_mapped(result, 200_000)
    assert_pushed_down(run.statements)
    # A few aggregate rows, catalog reads and at most 20 example values per failed expectation.
    assert row_counter.rows < 300, row_counter.rows
    # Bounds are bound parameters, not text in the SQL.
    assert not any("2026-11-25" in s for s in run.statements)


@pytest.mark.postgres
def test_operator_through_an_airflow_connection(
    pg_engine: sa.Engine, pg_schema: str, airflow_connection: Any, tmp_path: Path
) -> None:
    create_activity(pg_engine, pg_schema, 2_000)
    conn_id = airflow_connection("pg_quality", **pg_connection_fields())
    suite_file = tmp_path / "activity.quality.json"
    import json

    suite_file.write_text(json.dumps(SUITE))
    context: dict[str, Any] = {"data_interval_start": START, "data_interval_end": END}
    op = ExpectationSuiteOperator(
        task_id="quality",
        conn_id=conn_id,
        table=f"{pg_schema}.activity",
        suite=str(suite_file),
        timestamp_column="event_time",
        suite_parameters={"min_rows": 1000},
    )
    result = op.evaluate(context)  # type: ignore[arg-type]
    assert result.dataset == f"pg_quality:{pg_schema}.activity"
    assert (result.window_start, result.window_end) == (START, END)
    assert_mapped(result, 2_000)

    missing = ExpectationSuiteOperator(
        task_id="missing_ts",
        conn_id=conn_id,
        table=f"{pg_schema}.activity",
        suite=str(suite_file),
        timestamp_column="created_at",
        suite_parameters={"min_rows": 1},
    )
    with pytest.raises(Exception, match="'created_at' not found in table"):
        missing.evaluate(context)  # type: ignore[arg-type]
