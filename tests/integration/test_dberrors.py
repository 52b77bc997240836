"""Transient or final, on the real PostgreSQL: each failure provoked for real and classified.

Bad credentials are left out: the local server trusts every local connection, so a wrong password
cannot be provoked here (the rule is in ``_FINAL_MESSAGES``: "password authentication failed").
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError, SourceUnavailable
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources.dberrors import db_cause, is_transient, sqlstate
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from tests.conftest import pg_url

pytestmark = pytest.mark.postgres
AS_OF = datetime(2026, 11, 26, tzinfo=UTC)


def url_for(driver: str = "psycopg2", **changes: object) -> sa.URL:
    return sa.engine.make_url(pg_url()).set(drivername=f"postgresql+{driver}", **changes)


def error_of(conn: sa.Connection, statement: str) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as info:
        conn.execute(sa.text(statement))
    return info.value


@pytest.fixture
def table(pg_engine: sa.Engine, pg_schema: str) -> str:
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{pg_schema}".t (id integer PRIMARY KEY, v integer)'))
        conn.execute(sa.text(f'INSERT INTO "{pg_schema}".t VALUES (1, 10), (2, 20)'))
    return f'"{pg_schema}".t'


@pytest.fixture
def role(pg_engine: sa.Engine) -> Iterator[str]:
    """A login role without privileges, dropped afterwards."""
    name = f"mlobs_role_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
        conn.execute(sa.text(f'DROP ROLE "{name}"'))


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_statement_timeout_is_transient(pg_engine: sa.Engine, driver: str) -> None:
    engine = sa.create_engine(url_for(driver))
    with engine.connect() as conn:
        conn.execute(sa.text("SET statement_timeout = 1"))
        error = error_of(conn, "SELECT pg_sleep(1)")
    engine.dispose()
    assert sqlstate(error) == "57014"
    assert "statement timeout" in db_cause(error)
    assert is_transient(error)


def test_serialization_failure_is_transient(pg_engine: sa.Engine, table: str) -> None:
    first, second = pg_engine.connect(), pg_engine.connect()
    try:
        for conn in (first, second):
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
            conn.execute(sa.text(f"SELECT v FROM {table} WHERE id = 1")).scalar()  # both take a snapshot
        first.execute(sa.text(f"UPDATE {table} SET v = v + 1 WHERE id = 1"))
        first.commit()
        error = error_of(second, f"UPDATE {table} SET v = v + 1 WHERE id = 1")
    finally:
        second.rollback()
        first.close()
        second.close()
    assert sqlstate(error) == "40001"
    assert is_transient(error)


def test_deadlock_is_transient(pg_engine: sa.Engine, table: str) -> None:
    first, second = pg_engine.connect(), pg_engine.connect()
    errors: list[BaseException] = []

    def update(conn: sa.Connection, row: int) -> None:
        try:
            conn.execute(sa.text(f"UPDATE {table} SET v = v + 1 WHERE id = {row}"))
        except sa.exc.DBAPIError as exc:
            errors.append(exc)

    try:
        first.execute(sa.text(f"UPDATE {table} SET v = 0 WHERE id = 1"))
        second.execute(sa.text(f"UPDATE {table} SET v = 0 WHERE id = 2"))
        waiting = threading.Thread(target=update, args=(first, 2))  # blocks on second's row lock
        waiting.start()
        update(second, 1)  # closes the cycle: PostgreSQL aborts one of the two after deadlock_timeout
        second.rollback()  # frees the waiter if second was the victim
        waiting.join(timeout=30)
    finally:
        first.rollback()
        first.close()
        second.close()
    assert len(errors) == 1, errors
    assert sqlstate(errors[0]) == "40P01"
    assert is_transient(errors[0])


def test_terminated_connection_is_transient(pg_engine: sa.Engine) -> None:
    engine = sa.create_engine(url_for())
    victim = engine.connect()
    pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    with pg_engine.connect() as admin:
        assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    error = error_of(victim, "SELECT 1")
    victim.close()
    engine.dispose()
    assert "terminating connection" in db_cause(error) or "closed the connection" in db_cause(error)
    assert is_transient(error)


def test_too_many_connections_is_transient(pg_engine: sa.Engine, role: str) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'ALTER ROLE "{role}" CONNECTION LIMIT 0'))
    engine = sa.create_engine(url_for(username=role, password=None))
    with pytest.raises(sa.exc.OperationalError) as info:
        engine.connect()
    engine.dispose()
    assert "too many connections" in db_cause(info.value)
    assert is_transient(info.value)


def test_permission_denied_is_final(pg_engine: sa.Engine, table: str, role: str) -> None:
    engine = sa.create_engine(url_for(username=role, password=None))
    with engine.connect() as conn:
        error = error_of(conn, f"SELECT v FROM {table}")
    engine.dispose()
    assert sqlstate(error) == "42501"
    assert "permission denied" in db_cause(error)
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("SELECT * FROM mlobs_no_such_table", "42P01"),
        ("SELECT no_such_column FROM pg_class", "42703"),
        ("SELEC 1", "42601"),
        ("SELECT 'abc'::integer", "22P02"),
        ("SELECT 1 + 'x'::text", "42883"),
    ],
)
def test_bad_statements_are_final(pg_engine: sa.Engine, statement: str, code: str) -> None:
    with pg_engine.connect() as conn:
        error = error_of(conn, statement)
    assert sqlstate(error) == code
    assert not is_transient(error)


@pytest.mark.parametrize("change", ["database", "username"])
def test_a_database_or_role_that_does_not_exist_is_final(pg_engine: sa.Engine, change: str) -> None:
    engine = sa.create_engine(url_for(**{change: f"mlobs_missing_{uuid.uuid4().hex[:6]}"}))
    with pytest.raises(sa.exc.OperationalError) as info:
        engine.connect()
    engine.dispose()
    assert "does not exist" in db_cause(info.value)
    assert not is_transient(info.value)


def test_gatherer_raises_unavailable_for_a_timeout_and_source_error_for_a_missing_table(
    pg_engine: sa.Engine, pg_schema: str
) -> None:
    slow = sa.create_engine(url_for(), connect_args={"options": "-c statement_timeout=1"})
    with pytest.raises(
        SourceUnavailable, match=r"^query is unavailable: canceling statement due to statement"
    ):
        newest_timestamp(
            slow, column="ts", as_of=AS_OF, naive_zone=UTC, sql="SELECT now() AS ts FROM pg_sleep(1)"
        )
    slow.dispose()
    missing = parse_table_name(f"{pg_schema}.no_such_table")
    with pytest.raises(SourceError, match="does not exist"):
        newest_timestamp(pg_engine, column="ts", as_of=AS_OF, naive_zone=UTC, table=missing)
