"""SQL gathering, connections and the results store against a real PostgreSQL.

Every test works in its own schema (``pg_schema``), so tests never see each other's tables.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.freshness import FreshnessObservation, judge_freshness
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.schema import compare_schema, contract_from_columns, load_contract
from airflow_mlobs.core.types import ColumnInfo, LogicalType, TableRef, parse_table_name
from airflow_mlobs.operators.schema import SchemaCheckOperator
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from airflow_mlobs.sources.sqlkit import read_columns
from airflow_mlobs.specs.freshness import FreshnessSpec
from airflow_mlobs.store import ResultsStore, RunKey
from tests.conftest import pg_connection_fields

pytestmark = pytest.mark.postgres

BERLIN = ZoneInfo("Europe/Berlin")


def run_sql(engine: sa.Engine, *statements: str, **params: Any) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)


def berlin(*args: int) -> datetime:
    """An aware Berlin wall-clock time (unambiguous times only)."""
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def as_datetime(value: Any) -> datetime:
    """A metric timestamp, whether kept as a datetime or as ISO text."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def insert_naive(engine: sa.Engine, table: str, column: str, values: list[datetime | None]) -> None:
    """Insert naive wall-clock values (psycopg2 binds naive datetimes as ``timestamp``)."""
    with engine.begin() as conn:
        for value in values:
            conn.execute(sa.text(f"INSERT INTO {table} ({column}) VALUES (:v)"), {"v": value})


# --------------------------------------------------------------------------------------------------
# 1. newest_timestamp on timestamptz and naive timestamp columns; the verdict
# --------------------------------------------------------------------------------------------------


def test_newest_timestamptz(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(
        pg_engine,
        f"CREATE TABLE {table} (id serial PRIMARY KEY, ts timestamptz)",
        f"INSERT INTO {table} (ts) VALUES "
        "('2024-06-01 10:00:00+00'), ('2024-06-01 12:30:00+02'), ('2024-06-01 09:00:00-05'), (NULL)",
    )
    as_of = utc(2024, 6, 1, 16, 0)
    obs = newest_timestamp(
        pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=TableRef("events", pg_schema)
    )
    # 09:00-05 is 14:00 UTC, the newest; the zone for naive columns plays no part for timestamptz.
    assert obs.newest == utc(2024, 6, 1, 14, 0)
    assert obs.newest is not None and obs.newest.utcoffset() == timedelta(0)
    assert obs.rows_after_as_of is None
    assert obs.row_count is None  # not gathered for a healthy table

    fresh = judge_freshness(dataset="ev", observation=obs, as_of=as_of, max_age=timedelta(hours=3))
    assert fresh.status is Status.PASS
    assert fresh.metrics["age_seconds"] == 2 * 3600
    stale = judge_freshness(dataset="ev", observation=obs, as_of=as_of, max_age=timedelta(hours=1))
    assert stale.status is Status.FAIL
    assert "over the 1h limit" in stale.findings[0].reason
    warn = judge_freshness(
        dataset="ev",
        observation=obs,
        as_of=as_of,
        max_age=timedelta(hours=3),
        warn_after=timedelta(hours=1),
    )
    assert warn.status is Status.WARN


def test_newest_timestamptz_independent_of_session_timezone(pg_engine: sa.Engine, pg_schema: str) -> None:
    """A session time zone other than UTC changes how values come back, not what they mean."""
    table = f"{pg_schema}.events"
    run_sql(
        pg_engine,
        f"CREATE TABLE {table} (ts timestamptz, wall timestamp)",
        f"INSERT INTO {table} VALUES ('2024-01-10 08:00:00+00', '2024-01-10 09:00:00'),"
        " ('2024-01-10 12:00:00+00', '2024-01-10 13:00:00')",
    )
    engine = sa.create_engine(pg_engine.url, connect_args={"options": "-ctimezone=America/New_York"})
    try:
        ref = TableRef("events", pg_schema)
        obs = newest_timestamp(engine, column="ts", as_of=utc(2024, 1, 11), naive_zone=UTC, table=ref)
        assert obs.newest == utc(2024, 1, 10, 12, 0)
        # Backfill: as_of bound as an aware value compares correctly whatever the session zone.
        obs = newest_timestamp(engine, column="ts", as_of=utc(2024, 1, 10, 10, 0), naive_zone=UTC, table=ref)
        assert obs.newest == utc(2024, 1, 10, 8, 0)
        assert obs.rows_after_as_of == 1
        # Naive column read in Berlin (UTC+1 in January), the session zone plays no part.
        obs = newest_timestamp(
            engine, column="wall", as_of=utc(2024, 1, 10, 10, 0), naive_zone=BERLIN, table=ref
        )
        assert obs.newest == utc(2024, 1, 10, 8, 0)
        assert obs.rows_after_as_of == 1
    finally:
        engine.dispose()


def test_newest_naive_timestamp_read_in_zone(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(pg_engine, f"CREATE TABLE {table} (id serial, ts timestamp)")
    # Berlin wall-clock times: summer (UTC+2) and winter (UTC+1).
    insert_naive(pg_engine, table, "ts", [datetime(2024, 1, 15, 8, 0), datetime(2024, 7, 1, 14, 0)])
    ref = TableRef("events", pg_schema)
    obs = newest_timestamp(pg_engine, column="ts", as_of=utc(2024, 7, 1, 15, 0), naive_zone=BERLIN, table=ref)
    assert obs.newest == utc(2024, 7, 1, 12, 0)
    assert obs.newest is not None and obs.newest.tzinfo is not None
    assert obs.newest.utcoffset() == timedelta(0)
    # The same column read as UTC gives a different instant: the zone is really applied.
    obs_utc = newest_timestamp(
        pg_engine, column="ts", as_of=utc(2024, 7, 1, 15, 0), naive_zone=UTC, table=ref
    )
    assert obs_utc.newest == utc(2024, 7, 1, 14, 0)

    # Age 3h: passes a 4h limit, fails a 2h30m one (a naive reading as UTC would say 1h).
    as_of = utc(2024, 7, 1, 15, 0)
    assert judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(hours=4)).status is (
        Status.PASS
    )
    stale = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(hours=2, minutes=30))
    assert stale.status is Status.FAIL
    assert stale.metrics["age_seconds"] == 3 * 3600


@pytest.mark.parametrize(
    ("wall_values", "expected_newest", "as_of", "age_hours"),
    [
        # Spring forward, 2024-03-31: 02:00 CET jumps to 03:00 CEST.
        (
            [datetime(2024, 3, 31, 1, 30), datetime(2024, 3, 30, 23, 0)],
            utc(2024, 3, 31, 0, 30),  # 01:30 CET
            berlin(2024, 3, 31, 3, 30),  # 03:30 CEST = 01:30 UTC: one real hour later, two on the wall
            1,
        ),
        # Fall back, 2024-10-27: 03:00 CEST goes back to 02:00 CET.
        (
            [datetime(2024, 10, 27, 1, 30), datetime(2024, 10, 26, 20, 0)],
            utc(2024, 10, 26, 23, 30),  # 01:30 CEST
            berlin(2024, 10, 27, 3, 30),  # 03:30 CET = 02:30 UTC: three real hours later, two on the wall
            3,
        ),
        # A value after the fall-back change is read with the winter offset.
        (
            [datetime(2024, 10, 27, 3, 30), datetime(2024, 10, 27, 1, 30)],
            utc(2024, 10, 27, 2, 30),  # 03:30 CET
            berlin(2024, 10, 27, 4, 0),
            0.5,
        ),
    ],
)
def test_naive_timestamp_around_dst(
    pg_engine: sa.Engine,
    pg_schema: str,
    wall_values: list[datetime],
    expected_newest: datetime,
    as_of: datetime,
    age_hours: float,
) -> None:
    table = f"{pg_schema}.events"
    run_sql(pg_engine, f"CREATE TABLE {table} (ts timestamp without time zone)")
    insert_naive(pg_engine, table, "ts", wall_values)
    obs = newest_timestamp(
        pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=TableRef("events", pg_schema)
    )
    assert obs.newest == expected_newest
    result = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(hours=age_hours))
    assert result.metrics["age_seconds"] == age_hours * 3600
    assert result.status is Status.PASS
    just_under = timedelta(hours=age_hours) - timedelta(minutes=1)
    assert (
        judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=just_under).status is Status.FAIL
    )


# --------------------------------------------------------------------------------------------------
# 2. Backfills: as_of in the past
# --------------------------------------------------------------------------------------------------


def test_backfill_timestamptz_ignores_newer_rows(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(
        pg_engine,
        f"CREATE TABLE {table} (ts timestamptz)",
        # One row per hour, 2024-05-01 00:00 .. 23:00 UTC.
        f"INSERT INTO {table} SELECT '2024-05-01 00:00+00'::timestamptz + g * interval '1 hour'"
        " FROM generate_series(0, 23) g",
    )
    ref = TableRef("events", pg_schema)

    as_of = utc(2024, 5, 1, 10, 0)  # exactly on a row: that row counts as newest
    obs = newest_timestamp(pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=ref)
    assert obs.newest == as_of
    assert obs.rows_after_as_of == 13  # 11:00 .. 23:00

    just_before = as_of - timedelta(microseconds=1)
    obs = newest_timestamp(pg_engine, column="ts", as_of=just_before, naive_zone=BERLIN, table=ref)
    assert obs.newest == utc(2024, 5, 1, 9, 0)
    assert obs.rows_after_as_of == 14

    # as_of given in another zone is the same instant.
    obs = newest_timestamp(pg_engine, column="ts", as_of=berlin(2024, 5, 1, 12, 0), naive_zone=UTC, table=ref)
    assert obs.newest == as_of
    assert obs.rows_after_as_of == 13

    verdict = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(minutes=30))
    assert verdict.status is Status.PASS
    assert verdict.metrics["rows_after_as_of"] == 13

    # Before every row: nothing to judge, and the reason says rows arrived later.
    obs = newest_timestamp(pg_engine, column="ts", as_of=utc(2024, 4, 30), naive_zone=UTC, table=ref)
    assert obs.newest is None
    assert obs.rows_after_as_of == 24
    assert obs.row_count == 24
    verdict = judge_freshness(dataset="d", observation=obs, as_of=utc(2024, 4, 30), max_age=timedelta(days=1))
    assert verdict.status is Status.FAIL
    assert "24 rows are newer" in verdict.findings[0].reason


def test_backfill_naive_binds_wall_clock_in_zone(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(pg_engine, f"CREATE TABLE {table} (ts timestamp)")
    # Berlin wall-clock, summer (UTC+2): 08:00, 10:00, 12:00, 14:00 on 2024-05-01.
    insert_naive(pg_engine, table, "ts", [datetime(2024, 5, 1, h) for h in (8, 10, 12, 14)])
    ref = TableRef("events", pg_schema)

    # 08:00 UTC is 10:00 Berlin: the 10:00 row is exactly at as_of and counts.
    as_of = utc(2024, 5, 1, 8, 0)
    obs = newest_timestamp(pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=ref)
    assert obs.newest == as_of
    assert obs.rows_after_as_of == 2

    obs = newest_timestamp(
        pg_engine, column="ts", as_of=as_of - timedelta(microseconds=1), naive_zone=BERLIN, table=ref
    )
    assert obs.newest == utc(2024, 5, 1, 6, 0)  # 08:00 Berlin
    assert obs.rows_after_as_of == 3

    # Were as_of bound as UTC wall-clock (08:00), the 08:00 row would be "exactly at as_of".
    obs = newest_timestamp(pg_engine, column="ts", as_of=utc(2024, 5, 1, 11, 0), naive_zone=BERLIN, table=ref)
    assert obs.newest == utc(2024, 5, 1, 10, 0)  # 12:00 Berlin
    assert obs.rows_after_as_of == 1


def test_backfill_naive_across_dst(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(pg_engine, f"CREATE TABLE {table} (ts timestamp)")
    # Around the spring-forward change on 2024-03-31 (Berlin wall-clock).
    walls = [datetime(2024, 3, 31, 0, 30), datetime(2024, 3, 31, 1, 30), datetime(2024, 3, 31, 3, 30)]
    walls.append(datetime(2024, 3, 31, 4, 30))
    insert_naive(pg_engine, table, "ts", walls)
    ref = TableRef("events", pg_schema)
    as_of = utc(2024, 3, 31, 1, 30)  # = 03:30 CEST, exactly the third row
    obs = newest_timestamp(pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=ref)
    assert obs.newest == as_of
    assert obs.rows_after_as_of == 1
    as_of = utc(2024, 3, 31, 1, 0)  # = 03:00 CEST, between 01:30 CET and 03:30 CEST
    obs = newest_timestamp(pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=ref)
    assert obs.newest == utc(2024, 3, 31, 0, 30)  # 01:30 CET
    assert obs.rows_after_as_of == 2
    verdict = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(minutes=30))
    assert verdict.status is Status.PASS  # 30 real minutes, not 90 on the wall


def test_backfill_sql_query_naive_and_aware(pg_engine: sa.Engine, pg_schema: str) -> None:
    table = f"{pg_schema}.events"
    run_sql(
        pg_engine,
        f"CREATE TABLE {table} (kind text, wall timestamp, ts timestamptz)",
        f"INSERT INTO {table} SELECT CASE WHEN g % 2 = 0 THEN 'a%b' ELSE 'other' END,"
        " '2024-05-01 00:00'::timestamp + g * interval '1 hour',"
        " '2024-05-01 00:00+00'::timestamptz + g * interval '1 hour' FROM generate_series(0, 9) g",
    )
    as_of = utc(2024, 5, 1, 4, 0)  # 06:00 Berlin
    # A query with a cast and a literal percent sign; the naive column is read in Berlin.
    query = f"SELECT wall::timestamp AS wall FROM {table} WHERE kind LIKE 'a%%b' OR kind = 'other'"
    obs = newest_timestamp(pg_engine, column="wall", as_of=as_of, naive_zone=BERLIN, sql=query)
    assert obs.newest == as_of  # the 06:00 wall-clock row, exactly at as_of
    assert obs.rows_after_as_of == 3  # 07:00, 08:00, 09:00

    query = f"SELECT ts FROM {table} WHERE kind LIKE 'a%b';"
    obs = newest_timestamp(pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, sql=query)
    assert obs.newest == as_of  # 04:00 UTC, g = 4 is even
    assert obs.rows_after_as_of == 2  # g = 6, 8


# --------------------------------------------------------------------------------------------------
# 3. Empty tables, NULL-only timestamps, date columns
# --------------------------------------------------------------------------------------------------


def test_empty_table(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(pg_engine, f"CREATE TABLE {pg_schema}.events (ts timestamptz)")
    as_of = utc(2024, 1, 1)
    obs = newest_timestamp(
        pg_engine, column="ts", as_of=as_of, naive_zone=UTC, table=TableRef("events", pg_schema)
    )
    assert obs == FreshnessObservation(newest=None, row_count=0, non_null_count=0)
    verdict = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(hours=1))
    assert verdict.status is Status.FAIL
    assert verdict.findings[0].reason == "no rows"


def test_only_null_timestamps(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (id int, ts timestamp)",
        f"INSERT INTO {pg_schema}.events SELECT g, NULL FROM generate_series(1, 5) g",
    )
    as_of = utc(2024, 1, 1)
    obs = newest_timestamp(
        pg_engine, column="ts", as_of=as_of, naive_zone=BERLIN, table=TableRef("events", pg_schema)
    )
    assert obs == FreshnessObservation(newest=None, row_count=5, non_null_count=0)
    verdict = judge_freshness(dataset="d", observation=obs, as_of=as_of, max_age=timedelta(hours=1))
    assert verdict.status is Status.FAIL
    assert "only NULL timestamps" in verdict.findings[0].reason
    assert "5 rows" in verdict.findings[0].reason


def test_date_column(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.daily (d date)",
        f"INSERT INTO {pg_schema}.daily SELECT DATE '2024-01-01' + g FROM generate_series(0, 9) g",
    )
    ref = TableRef("daily", pg_schema)
    # A date is the start of that day in the zone: 2024-01-10 00:00 Berlin = 2024-01-09 23:00 UTC.
    obs = newest_timestamp(pg_engine, column="d", as_of=utc(2024, 1, 10, 12), naive_zone=BERLIN, table=ref)
    assert obs.newest == utc(2024, 1, 9, 23, 0)
    assert obs.rows_after_as_of is None
    verdict = judge_freshness(
        dataset="d", observation=obs, as_of=utc(2024, 1, 10, 12), max_age=timedelta(days=1)
    )
    assert verdict.status is Status.PASS
    verdict = judge_freshness(
        dataset="d", observation=obs, as_of=utc(2024, 1, 10, 12), max_age=timedelta(hours=12)
    )
    assert verdict.status is Status.FAIL

    # Backfill on a date column; as_of exactly at the start of 2024-01-05 in Berlin counts that day.
    as_of = berlin(2024, 1, 5, 0, 0)
    obs = newest_timestamp(pg_engine, column="d", as_of=as_of, naive_zone=BERLIN, table=ref)
    assert obs.newest == as_of
    assert obs.rows_after_as_of == 5  # 01-06 .. 01-10
    obs = newest_timestamp(
        pg_engine, column="d", as_of=as_of - timedelta(seconds=1), naive_zone=BERLIN, table=ref
    )
    assert obs.newest == berlin(2024, 1, 4, 0, 0)
    assert obs.rows_after_as_of == 6


# --------------------------------------------------------------------------------------------------
# 4. Errors name the table and column
# --------------------------------------------------------------------------------------------------


def test_missing_table(pg_engine: sa.Engine, pg_schema: str) -> None:
    with pytest.raises(SourceError, match=rf"{pg_schema}\.nope does not exist"):
        newest_timestamp(
            pg_engine, column="ts", as_of=utc(2024, 1, 1), naive_zone=UTC, table=TableRef("nope", pg_schema)
        )
    with pytest.raises(SourceError, match=r"no_such_schema\.events does not exist"):
        read_columns(pg_engine, parse_table_name("no_such_schema.events"))


def test_missing_timestamp_column_lists_columns(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(pg_engine, f"CREATE TABLE {pg_schema}.events (id int, created_at timestamptz, payload text)")
    with pytest.raises(SourceError) as err:
        newest_timestamp(
            pg_engine, column="ts", as_of=utc(2024, 1, 1), naive_zone=UTC, table=TableRef("events", pg_schema)
        )
    message = str(err.value)
    assert "'ts'" in message
    assert f"{pg_schema}.events" in message
    assert "created_at, id, payload" in message


@pytest.mark.parametrize("sql_type", ["text", "integer", "boolean", "numeric(10,2)"])
def test_column_not_a_timestamp(pg_engine: sa.Engine, pg_schema: str, sql_type: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (ts {sql_type})",
        f"INSERT INTO {pg_schema}.events VALUES (NULL)",
    )
    with pytest.raises(SourceError) as err:
        newest_timestamp(
            pg_engine, column="ts", as_of=utc(2024, 1, 1), naive_zone=UTC, table=TableRef("events", pg_schema)
        )
    message = str(err.value)
    assert "'ts'" in message
    assert f"{pg_schema}.events" in message
    assert "not a timestamp" in message


def test_sql_query_not_a_timestamp(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (label text, n int)",
        f"INSERT INTO {pg_schema}.events VALUES ('hello', 1)",
    )
    with pytest.raises(SourceError, match=r"'label'.*not a timestamp"):
        newest_timestamp(
            pg_engine,
            column="label",
            as_of=utc(2024, 1, 1),
            naive_zone=UTC,
            sql=f"SELECT label FROM {pg_schema}.events",
        )
    with pytest.raises(SourceError, match=r"'n'.*not a timestamp"):
        newest_timestamp(
            pg_engine,
            column="n",
            as_of=utc(2024, 1, 1),
            naive_zone=UTC,
            sql=f"SELECT n FROM {pg_schema}.events",
        )


def test_sql_query_with_missing_column(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(pg_engine, f"CREATE TABLE {pg_schema}.events (id int, ts timestamptz)")
    with pytest.raises(SourceError) as err:
        newest_timestamp(
            pg_engine,
            column="ts",
            as_of=utc(2024, 1, 1),
            naive_zone=UTC,
            sql=f"SELECT loaded_at AS ts FROM {pg_schema}.events",
        )
    assert "loaded_at" in str(err.value)
    assert "'ts'" in str(err.value)
    # The query lacks the timestamp column the check asks for.
    with pytest.raises(SourceError) as err:
        newest_timestamp(
            pg_engine,
            column="ts",
            as_of=utc(2024, 1, 1),
            naive_zone=UTC,
            sql=f"SELECT id FROM {pg_schema}.events",
        )
    assert "ts" in str(err.value)
    assert "does not exist" in str(err.value)


def test_schema_qualified_table_name(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (ts timestamptz)",
        f"INSERT INTO {pg_schema}.events VALUES ('2024-02-01 00:00+00')",
        # A same-named table in the default schema must not be picked up.
        f"CREATE TABLE public.{pg_schema}_decoy (ts timestamptz)",
    )
    try:
        ref = parse_table_name(f"{pg_schema}.events")
        assert ref == TableRef("events", pg_schema)
        obs = newest_timestamp(pg_engine, column="ts", as_of=utc(2024, 3, 1), naive_zone=UTC, table=ref)
        assert obs.newest == utc(2024, 2, 1)
        # Without the schema, the table is looked up on the search path and not found.
        with pytest.raises(SourceError, match="table events does not exist"):
            newest_timestamp(
                pg_engine,
                column="ts",
                as_of=utc(2024, 3, 1),
                naive_zone=UTC,
                table=parse_table_name("events"),
            )
    finally:
        run_sql(pg_engine, f"DROP TABLE public.{pg_schema}_decoy")


def test_mixed_case_quoted_identifiers(pg_engine: sa.Engine, pg_schema: str) -> None:
    schema = f"Analytics_{pg_schema}"  # mixed case, unique per test
    run_sql(
        pg_engine,
        f'CREATE SCHEMA "{schema}"',
        f'CREATE TABLE "{schema}"."Features" ("EventTime" timestamptz, "Value" double precision)',
        f"""INSERT INTO "{schema}"."Features" VALUES ('2024-02-01 10:00+00', 1.0), ('2024-02-01 11:00+00', 2.0)""",
        # Lower-case look-alikes must not be confused with the quoted names.
        f'CREATE TABLE "{schema}".features (eventtime timestamptz)',
    )
    try:
        ref = parse_table_name(f'"{schema}"."Features"')
        assert ref == TableRef("Features", schema)
        obs = newest_timestamp(
            pg_engine, column="EventTime", as_of=utc(2024, 2, 2), naive_zone=UTC, table=ref
        )
        assert obs.newest == utc(2024, 2, 1, 11, 0)
        obs = newest_timestamp(
            pg_engine, column="EventTime", as_of=utc(2024, 2, 1, 10, 30), naive_zone=UTC, table=ref
        )
        assert obs.newest == utc(2024, 2, 1, 10, 0)
        assert obs.rows_after_as_of == 1
        names = [c.name for c in read_columns(pg_engine, ref)]
        assert names == ["EventTime", "Value"]
        # The lower-case table is a different, empty table.
        lower = newest_timestamp(
            pg_engine,
            column="eventtime",
            as_of=utc(2024, 2, 2),
            naive_zone=UTC,
            table=parse_table_name(f'"{schema}".features'),
        )
        assert lower.newest is None and lower.row_count == 0
        # The same names through a query.
        obs = newest_timestamp(
            pg_engine,
            column="EventTime",
            as_of=utc(2024, 2, 2),
            naive_zone=UTC,
            sql=f'SELECT "EventTime" FROM "{schema}"."Features"',
        )
        assert obs.newest == utc(2024, 2, 1, 11, 0)
        with pytest.raises(SourceError, match=r"Analytics_.*\.FEATURES does not exist"):
            read_columns(pg_engine, parse_table_name(f'"{schema}"."FEATURES"'))
    finally:
        run_sql(pg_engine, f'DROP SCHEMA "{schema}" CASCADE')


# --------------------------------------------------------------------------------------------------
# 5. read_columns from the catalog
# --------------------------------------------------------------------------------------------------


def test_read_columns_logical_types_and_nullability(pg_engine: sa.Engine, pg_schema: str) -> None:
    run_sql(
        pg_engine,
        f"""CREATE TABLE {pg_schema}.wide (
            c_int integer NOT NULL,
            c_bigint bigint,
            c_smallint smallint NOT NULL,
            c_real real,
            c_double double precision,
            c_numeric numeric(10,2) NOT NULL,
            c_text text,
            c_varchar varchar(20) NOT NULL,
            c_bool boolean,
            c_ts timestamp,
            c_tstz timestamptz NOT NULL,
            c_date date,
            c_bytea bytea,
            c_uuid uuid NOT NULL
        )""",
    )
    columns = read_columns(pg_engine, TableRef("wide", pg_schema))
    by_name = {c.name: c for c in columns}
    assert [c.name for c in columns] == list(by_name)  # catalog order kept
    assert list(by_name) == [
        "c_int", "c_bigint", "c_smallint", "c_real", "c_double", "c_numeric", "c_text",
        "c_varchar", "c_bool", "c_ts", "c_tstz", "c_date", "c_bytea", "c_uuid",
    ]  # fmt: skip
    expected = {
        "c_int": LogicalType.INTEGER,
        "c_bigint": LogicalType.INTEGER,
        "c_smallint": LogicalType.INTEGER,
        "c_real": LogicalType.FLOAT,
        "c_double": LogicalType.FLOAT,
        "c_numeric": LogicalType.DECIMAL,
        "c_text": LogicalType.STRING,
        "c_varchar": LogicalType.STRING,
        "c_bool": LogicalType.BOOLEAN,
        "c_ts": LogicalType.TIMESTAMP,
        "c_tstz": LogicalType.TIMESTAMP,
        "c_date": LogicalType.DATE,
        "c_bytea": LogicalType.BINARY,
        "c_uuid": LogicalType.STRING,
    }
    assert {name: c.logical_type for name, c in by_name.items()} == expected
    not_null = {"c_int", "c_smallint", "c_numeric", "c_varchar", "c_tstz", "c_uuid"}
    assert {name for name, c in by_name.items() if c.nullable is False} == not_null
    assert all(c.nullable is True for name, c in by_name.items() if name not in not_null)
    # Physical types as PostgreSQL spells them, parameters kept.
    assert by_name["c_numeric"].physical_type.replace(" ", "") == "NUMERIC(10,2)"
    assert by_name["c_varchar"].physical_type == "VARCHAR(20)"
    assert "WITH TIME ZONE" in by_name["c_tstz"].physical_type
    assert "WITH TIME ZONE" not in by_name["c_ts"].physical_type


# --------------------------------------------------------------------------------------------------
# 6. Pushdown: only aggregates cross the wire
# --------------------------------------------------------------------------------------------------


@dataclass
class StatementLog:
    """Statements an engine issued, with the rows each returned (``cursor.rowcount`` after execute)."""

    entries: list[tuple[str, int]] = field(default_factory=list)

    def clear(self) -> None:
        self.entries.clear()

    def catalog(self) -> list[tuple[str, int]]:
        return [(s, n) for s, n in self.entries if "pg_catalog" in s or "information_schema" in s]

    def data(self) -> list[tuple[str, int]]:
        return [(s, n) for s, n in self.entries if "pg_catalog" not in s and "information_schema" not in s]


@pytest.fixture
def counted_engine(pg_engine: sa.Engine) -> Iterator[tuple[sa.Engine, StatementLog]]:
    """A private engine whose statements and returned row counts are recorded."""
    engine = sa.create_engine(pg_engine.url)
    log = StatementLog()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        rows = cursor.rowcount if cursor.description is not None else 0
        log.entries.append((statement, max(rows, 0)))

    with engine.connect() as conn:  # dialect initialisation happens here, before counting
        conn.execute(sa.text("SELECT 1"))
    log.clear()
    yield engine, log
    engine.dispose()


BIG_ROWS = 200_000


@pytest.fixture
def big_table(pg_engine: sa.Engine, pg_schema: str) -> str:
    table = f"{pg_schema}.big"
    run_sql(
        pg_engine,
        f"CREATE TABLE {table} (id bigint, ts timestamptz, wall timestamp, payload text)",
        # One row per minute from 2024-01-01 00:00 UTC; wall is the same instant in Berlin wall-clock.
        f"INSERT INTO {table} SELECT g, '2024-01-01 00:00+00'::timestamptz + g * interval '1 minute',"
        " ('2024-01-01 00:00+00'::timestamptz + g * interval '1 minute') AT TIME ZONE 'Europe/Berlin',"
        " md5(g::text) FROM generate_series(0, :n - 1) g",
        f"ANALYZE {table}",
        n=BIG_ROWS,
    )
    return table


def _assert_pushed_down(log: StatementLog, table: str, max_data_statements: int) -> None:
    data = log.data()
    assert data, "no data statement was recorded"
    assert len(data) <= max_data_statements, data
    for statement, _ in data:
        lowered = statement.lower()
        assert "max(" in lowered or "count(" in lowered, f"not an aggregate: {statement}"
        assert table in statement, f"statement not on {table}: {statement}"
    rows = sum(n for _, n in data)
    assert rows <= 3, f"{rows} rows crossed the wire: {data}"
    # Catalog reads never touch the data table and stay far below its size.
    for statement, _ in log.catalog():
        assert table not in statement
    assert sum(n for _, n in log.catalog()) < 1_000


def test_pushdown_latest(
    counted_engine: tuple[sa.Engine, StatementLog], big_table: str, pg_schema: str
) -> None:
    engine, log = counted_engine
    last = utc(2024, 1, 1) + timedelta(minutes=BIG_ROWS - 1)
    obs = newest_timestamp(
        engine, column="ts", as_of=last + timedelta(hours=1), naive_zone=UTC, table=TableRef("big", pg_schema)
    )
    assert obs.newest == last
    _assert_pushed_down(log, big_table, max_data_statements=1)


def test_pushdown_backfill(
    counted_engine: tuple[sa.Engine, StatementLog], big_table: str, pg_schema: str
) -> None:
    engine, log = counted_engine
    ref = TableRef("big", pg_schema)
    as_of = utc(2024, 1, 1) + timedelta(minutes=1000)
    for column, zone in (("ts", UTC), ("wall", BERLIN)):
        log.clear()
        obs = newest_timestamp(engine, column=column, as_of=as_of, naive_zone=zone, table=ref)
        assert obs.newest == as_of, column
        assert obs.rows_after_as_of == BIG_ROWS - 1001, column
        _assert_pushed_down(log, big_table, max_data_statements=2)

    # Before every row: MAX, the backfill query and the counts; still three rows in all.
    log.clear()
    obs = newest_timestamp(engine, column="wall", as_of=utc(2023, 1, 1), naive_zone=BERLIN, table=ref)
    assert obs.newest is None
    assert obs.row_count == BIG_ROWS
    assert obs.rows_after_as_of == BIG_ROWS
    _assert_pushed_down(log, big_table, max_data_statements=3)


def test_pushdown_sql_query(counted_engine: tuple[sa.Engine, StatementLog], big_table: str) -> None:
    engine, log = counted_engine
    as_of = utc(2024, 1, 1) + timedelta(minutes=500)
    obs = newest_timestamp(
        engine,
        column="ts",
        as_of=as_of,
        naive_zone=UTC,
        sql=f"SELECT ts, payload FROM {big_table} WHERE id % 2 = 0",
    )
    assert obs.newest == as_of
    assert obs.rows_after_as_of == sum(1 for g in range(501, BIG_ROWS) if g % 2 == 0)
    _assert_pushed_down(log, big_table, max_data_statements=2)
    assert not log.catalog()  # a query needs no catalog read


# --------------------------------------------------------------------------------------------------
# 7. Through Airflow connections
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_wh(airflow_connection: Any) -> str:
    return str(airflow_connection("pg_wh", **pg_connection_fields()))


def test_freshness_spec_through_connection(pg_engine: sa.Engine, pg_schema: str, pg_wh: str) -> None:
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (id int, ts timestamptz)",
        f"INSERT INTO {pg_schema}.events SELECT g, '2024-03-01 00:00+00'::timestamptz + g * interval '1 hour'"
        " FROM generate_series(0, 47) g",
    )
    start, end = utc(2024, 3, 1), utc(2024, 3, 2)
    spec = FreshnessSpec(conn_id=pg_wh, table=f"{pg_schema}.events", timestamp_column="ts", max_age="6h")

    result = spec.evaluate(as_of=end, window_start=start, window_end=end)
    assert isinstance(result, CheckResult)
    assert result.status is Status.PASS
    assert result.check == "freshness"
    assert result.dataset == f"pg_wh:{pg_schema}.events"
    assert (result.window_start, result.window_end) == (start, end)
    assert as_datetime(result.metrics["newest"]) == end  # the row at exactly 2024-03-02 00:00 counts
    assert result.metrics["age_seconds"] == 0
    assert result.metrics["rows_after_as_of"] == 23

    late = utc(2024, 3, 3, 8, 0)  # newest row 2024-03-02 23:00 is 9h old
    result = spec.evaluate(as_of=late, window_start=start, window_end=late)
    assert result.status is Status.FAIL
    assert "stale" in result.summary
    assert result.metrics["age_seconds"] == 9 * 3600

    # Naive column and zone through the connection (psycopg 3 under the Postgres hook).
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.wall_events (ts timestamp)",
        f"INSERT INTO {pg_schema}.wall_events VALUES ('2024-07-01 10:00'), ('2024-07-01 12:00')",
    )
    spec = FreshnessSpec(
        conn_id=pg_wh,
        table=f"{pg_schema}.wall_events",
        timestamp_column="ts",
        timestamp_timezone="Europe/Berlin",
        max_age="1h",
    )
    result = spec.evaluate(as_of=utc(2024, 7, 1, 8, 30))  # 10:30 Berlin
    assert result.status is Status.PASS
    assert as_datetime(result.metrics["newest"]) == utc(2024, 7, 1, 8, 0)
    assert result.metrics["rows_after_as_of"] == 1


def test_undefined_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_WAREHOUSE", raising=False)
    spec = FreshnessSpec(conn_id="no_such_warehouse", table="events", timestamp_column="ts", max_age="6h")
    with pytest.raises(MlobsInputError, match="no_such_warehouse"):
        spec.evaluate(as_of=utc(2024, 1, 1))
    op = SchemaCheckOperator(task_id="s", conn_id="no_such_warehouse", table="events", contract="c.json")
    with pytest.raises(MlobsInputError, match="no_such_warehouse"):
        op.spec().observed_columns()


def test_missing_table_through_connection(pg_schema: str, pg_wh: str) -> None:
    spec = FreshnessSpec(conn_id=pg_wh, table=f"{pg_schema}.missing", timestamp_column="ts", max_age="6h")
    with pytest.raises(MlobsInputError) as err:
        spec.evaluate(as_of=utc(2024, 1, 1))
    assert "pg_wh" in str(err.value)
    assert f"{pg_schema}.missing" in str(err.value)

    op = SchemaCheckOperator(task_id="s", conn_id=pg_wh, table=f"{pg_schema}.missing", contract="c.json")
    with pytest.raises(MlobsInputError) as err:
        op.spec().observed_columns()
    assert "pg_wh" in str(err.value)
    assert f"{pg_schema}.missing" in str(err.value)


def test_schema_operator_through_connection(
    pg_engine: sa.Engine, pg_schema: str, pg_wh: str, tmp_path: Path
) -> None:
    run_sql(
        pg_engine,
        f"""CREATE TABLE {pg_schema}.features (
            customer_id bigint NOT NULL,
            customer_age integer,
            score double precision,
            segment varchar(20),
            updated_at timestamptz NOT NULL
        )""",
    )
    table = f"{pg_schema}.features"
    contract_path = tmp_path / "features.json"
    catalog = read_columns(pg_engine, parse_table_name(table))
    contract_path.write_text(
        json.dumps(contract_from_columns("features", catalog, exact=True)), encoding="utf-8"
    )

    op = SchemaCheckOperator(task_id="s", conn_id=pg_wh, table=table, contract=str(contract_path))
    observed = op.spec().observed_columns()
    assert [c.name for c in observed] == ["customer_id", "customer_age", "score", "segment", "updated_at"]
    assert [(c.name, c.logical_type, c.nullable) for c in observed] == [
        (c.name, c.logical_type, c.nullable) for c in catalog
    ]
    assert {c.name: c.logical_type for c in observed}["updated_at"] is LogicalType.TIMESTAMP

    result = compare_schema(
        dataset=op.dataset_name(), observed=observed, contract=load_contract(contract_path)
    )
    assert result.status is Status.PASS, result.summary
    assert result.dataset == f"pg_wh:{table}"

    # A rename in the database breaks the contract, with the rename hint.
    run_sql(pg_engine, f"ALTER TABLE {table} RENAME COLUMN customer_age TO age")
    result = compare_schema(
        dataset=op.dataset_name(),
        observed=op.spec().observed_columns(),
        contract=load_contract(contract_path),
    )
    assert result.status is Status.FAIL
    assert any("renamed?" in f.reason for f in result.findings)


def test_observed_columns_only_from_catalog(pg_engine: sa.Engine, pg_schema: str, pg_wh: str) -> None:
    """Columns of a quoted mixed-case table through the connection."""
    run_sql(
        pg_engine, f'CREATE TABLE {pg_schema}."Features" ("EventTime" timestamptz NOT NULL, "Value" real)'
    )
    op = SchemaCheckOperator(task_id="s", conn_id=pg_wh, table=f'{pg_schema}."Features"', contract="c.json")
    assert op.spec().observed_columns() == [
        ColumnInfo("EventTime", LogicalType.TIMESTAMP, "TIMESTAMP WITH TIME ZONE", False),
        ColumnInfo("Value", LogicalType.FLOAT, "REAL", True),
    ]


# --------------------------------------------------------------------------------------------------
# 8. The results store on PostgreSQL
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def store_engine(pg_engine: sa.Engine, pg_schema: str) -> Iterator[sa.Engine]:
    """An engine whose search path is the per-test schema, so the fixed table name stays private."""
    engine = sa.create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={pg_schema}"})
    yield engine
    engine.dispose()


def _result(summary: str, status: Status, start: datetime | None, end: datetime | None) -> CheckResult:
    return CheckResult(
        check="freshness",
        dataset="pg_wh:events",
        status=status,
        summary=summary,
        window_start=start,
        window_end=end,
        metrics={"age_seconds": 60.0, "newest": end},
        findings=(Finding(subject="newest", metric="age", status=status, value="1m", reason=summary),),
    )


def test_results_store_save_replace_history(
    pg_engine: sa.Engine, pg_schema: str, store_engine: sa.Engine
) -> None:
    store = ResultsStore(store_engine)
    run = RunKey(dag_id="dag", task_id="fresh", run_id="r1")
    day1 = (utc(2024, 1, 1), utc(2024, 1, 2))
    day2 = (berlin(2024, 1, 2, 1, 0), berlin(2024, 1, 3, 1, 0))  # same instants as 00:00 UTC

    first = store.save(_result("first", Status.FAIL, *day1), run)
    second = store.save(
        _result("day 2", Status.PASS, *day2), RunKey(dag_id="dag", task_id="fresh", run_id="r2")
    )
    # A re-run of the first interval (another run id, same window) replaces its row.
    replaced = store.save(
        _result("rerun", Status.PASS, *day1), RunKey(dag_id="dag", task_id="fresh", run_id="r3")
    )
    assert len({first, second, replaced}) == 3

    # The table lives in the per-test schema, not in public.
    with pg_engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {pg_schema}.mlobs_check_results")).scalar()
        assert count == 2
        column_type = conn.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                "AND table_name = 'mlobs_check_results' AND column_name = 'window_end'"
            ),
            {"s": pg_schema},
        ).scalar()
        assert column_type == "timestamp with time zone"

    history = store.history(dataset="pg_wh:events", check="freshness")
    assert [h.result.summary for h in history] == ["day 2", "rerun"]  # newest window first
    assert [h.run.run_id for h in history] == ["r2", "r3"]
    newest, older = history
    assert newest.result.window_start == utc(2024, 1, 2)
    assert newest.result.window_end == utc(2024, 1, 3)
    assert older.result.window_end == utc(2024, 1, 2)
    for stored in history:
        assert stored.recorded_at.tzinfo is not None
        assert stored.recorded_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - stored.recorded_at) < timedelta(minutes=5)
        assert stored.result.window_start is not None and stored.result.window_start.tzinfo is not None
        assert stored.result.window_end is not None and stored.result.window_end.tzinfo is not None
    assert older.result.status is Status.PASS
    assert older.result.findings[0].reason == "rerun"

    # Columns come back aware from PostgreSQL too.
    with store_engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT window_start, window_end, recorded_at FROM mlobs_check_results")
        ).first()
    assert row is not None and all(v.tzinfo is not None for v in row)

    # Filters and limit; a fresh store on the same database sees the same history.
    again = ResultsStore(store_engine)
    assert len(again.history(limit=1)) == 1
    assert again.history(task_id="other") == []
    assert [h.id for h in again.history(dag_id="dag")] == [h.id for h in history]


def test_results_store_no_window_keyed_by_run(store_engine: sa.Engine) -> None:
    store = ResultsStore(store_engine)
    store.save(_result("a", Status.PASS, None, None), RunKey(dag_id="d", task_id="t", run_id="manual_1"))
    store.save(_result("b", Status.WARN, None, None), RunKey(dag_id="d", task_id="t", run_id="manual_1"))
    store.save(_result("c", Status.FAIL, None, None), RunKey(dag_id="d", task_id="t", run_id="manual_2"))
    history = store.history()
    assert sorted(h.result.summary for h in history) == ["b", "c"]
    assert all(h.result.window_end is None for h in history)


def test_results_store_two_writers_racing_on_one_key(store_engine: sa.Engine) -> None:
    """Two writers saving the same key at the same moment leave exactly one row and raise nothing."""
    store = ResultsStore(store_engine)
    store.ensure_table()
    window = (utc(2024, 1, 1), utc(2024, 1, 2))
    run = RunKey(dag_id="d", task_id="t", run_id="r")
    errors: list[BaseException] = []
    rounds = 10
    barrier = threading.Barrier(2)

    def write(name: str) -> None:
        try:
            for i in range(rounds):
                barrier.wait(timeout=30)  # both writers start each round together
                ResultsStore(store_engine).save(_result(f"{name}-{i}", Status.PASS, *window), run)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    history = store.history()
    assert len(history) == 1
    assert history[0].result.summary in {f"a-{rounds - 1}", f"b-{rounds - 1}"}


# --------------------------------------------------------------------------------------------------
# More relation kinds and awkward names
# --------------------------------------------------------------------------------------------------


def test_views_and_partitioned_tables(pg_engine: sa.Engine, pg_schema: str) -> None:
    s = pg_schema
    run_sql(
        pg_engine,
        f"CREATE TABLE {s}.events (ts timestamptz, kind text) PARTITION BY RANGE (ts)",
        f"CREATE TABLE {s}.events_2024_01 PARTITION OF {s}.events"
        " FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-02-01 00:00+00')",
        f"CREATE TABLE {s}.events_2024_02 PARTITION OF {s}.events"
        " FOR VALUES FROM ('2024-02-01 00:00+00') TO ('2024-03-01 00:00+00')",
        f"INSERT INTO {s}.events VALUES ('2024-01-20 00:00+00', 'a'), ('2024-02-10 00:00+00', 'b')",
        f"CREATE VIEW {s}.events_a AS SELECT ts AS seen_at FROM {s}.events WHERE kind = 'a'",
        f"CREATE MATERIALIZED VIEW {s}.events_daily AS SELECT ts::date AS day, count(*) AS n"
        f" FROM {s}.events GROUP BY 1",
    )
    as_of = utc(2024, 3, 1)
    cases = [("events", "ts", utc(2024, 2, 10)), ("events_a", "seen_at", utc(2024, 1, 20))]
    cases.append(("events_daily", "day", utc(2024, 2, 10)))
    for name, column, newest in cases:
        ref = parse_table_name(f"{s}.{name}")
        obs = newest_timestamp(pg_engine, column=column, as_of=as_of, naive_zone=UTC, table=ref)
        assert obs.newest == newest, name
    # Backfill on the partitioned parent.
    obs = newest_timestamp(
        pg_engine, column="ts", as_of=utc(2024, 2, 1), naive_zone=UTC, table=parse_table_name(f"{s}.events")
    )
    assert obs.newest == utc(2024, 1, 20)
    assert obs.rows_after_as_of == 1
    daily = {c.name: c.logical_type for c in read_columns(pg_engine, parse_table_name(f"{s}.events_daily"))}
    assert daily == {"day": LogicalType.DATE, "n": LogicalType.INTEGER}


def test_reserved_word_names(pg_engine: sa.Engine, pg_schema: str) -> None:
    s = pg_schema
    run_sql(
        pg_engine,
        f'CREATE TABLE {s}."order" ("timestamp" timestamp, "date" date, "user" text, "Event Time" timestamptz)',
        f"""INSERT INTO {s}."order" VALUES ('2024-05-01 10:00', '2024-05-01', 'x', '2024-05-01 07:00+00')""",
    )
    ref = parse_table_name(f'{s}."order"')
    assert ref == TableRef("order", s)
    as_of = utc(2024, 5, 2)
    assert newest_timestamp(
        pg_engine, column="timestamp", as_of=as_of, naive_zone=BERLIN, table=ref
    ).newest == (utc(2024, 5, 1, 8, 0))
    assert newest_timestamp(pg_engine, column="date", as_of=as_of, naive_zone=UTC, table=ref).newest == (
        utc(2024, 5, 1)
    )
    obs = newest_timestamp(
        pg_engine, column="Event Time", as_of=utc(2024, 5, 1, 6), naive_zone=UTC, table=ref
    )
    assert obs.newest is None and obs.rows_after_as_of == 1
    obs = newest_timestamp(
        pg_engine,
        column="timestamp",
        as_of=utc(2024, 5, 1, 7, 0),
        naive_zone=BERLIN,
        sql=f'SELECT "timestamp" FROM {s}."order"',
    )
    assert obs.newest is None and obs.rows_after_as_of == 1 and obs.row_count == 1


def test_date_and_query_sources_through_connection(pg_engine: sa.Engine, pg_schema: str, pg_wh: str) -> None:
    """The Airflow Postgres hook builds a psycopg 3 engine: the backfill binds must work there too."""
    s = pg_schema
    run_sql(
        pg_engine,
        f"CREATE TABLE {s}.daily (d date, wall timestamp, kind text)",
        f"INSERT INTO {s}.daily SELECT DATE '2024-01-01' + g, TIMESTAMP '2024-01-01 12:00' + g * interval '1 day',"
        " CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END FROM generate_series(0, 9) g",
    )
    as_of = berlin(2024, 1, 5, 0, 0)
    spec = FreshnessSpec(
        conn_id=pg_wh,
        table=f"{s}.daily",
        timestamp_column="d",
        timestamp_timezone="Europe/Berlin",
        max_age="1d",
    )
    result = spec.evaluate(as_of=as_of)
    assert result.status is Status.PASS
    assert as_datetime(result.metrics["newest"]) == as_of
    assert result.metrics["rows_after_as_of"] == 5

    spec = FreshnessSpec(
        conn_id=pg_wh,
        sql=f"SELECT wall FROM {s}.daily WHERE kind LIKE 'ev%' AND wall::date > DATE '2023-12-31'",
        timestamp_column="wall",
        timestamp_timezone="Europe/Berlin",
        max_age="12h",
    )
    result = spec.evaluate(as_of=berlin(2024, 1, 5, 12, 0))  # the 01-05 12:00 row is exactly at as_of
    assert result.dataset == "pg_wh:query"
    assert result.status is Status.PASS
    assert as_datetime(result.metrics["newest"]) == berlin(2024, 1, 5, 12, 0)
    assert result.metrics["rows_after_as_of"] == 2  # 01-07 and 01-09
    result = spec.evaluate(as_of=berlin(2024, 1, 6, 12, 0))
    assert result.status is Status.FAIL  # the 01-06 row is odd; newest even row is 24h old


@pytest.mark.parametrize(
    "tail",
    ["", ";", ";\n\n", "\n-- newest events only\n", " -- trailing comment", "\n/* block */"],
)
def test_sql_query_with_trailing_semicolon_or_comment(
    pg_engine: sa.Engine, pg_schema: str, tail: str
) -> None:
    """Queries read from ``.sql`` files often end with ``;`` or a comment line."""
    run_sql(
        pg_engine,
        f"CREATE TABLE {pg_schema}.events (ts timestamptz)",
        f"INSERT INTO {pg_schema}.events VALUES ('2024-01-01 00:00+00'), ('2024-01-02 00:00+00')",
    )
    query = f"-- events\nSELECT ts\nFROM {pg_schema}.events{tail}"
    obs = newest_timestamp(pg_engine, column="ts", as_of=utc(2024, 1, 1, 12), naive_zone=UTC, sql=query)
    assert obs.newest == utc(2024, 1, 1)
    assert obs.rows_after_as_of == 1
