"""Transient or final: the classification of real database failures (SQLite, and PostgreSQL drivers
meeting a closed port), and what the gatherers raise for each. The PostgreSQL server's own errors
(timeouts, serialization failures, deadlocks, permissions) are in tests/integration/test_dberrors.py.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError, SourceUnavailable
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.operators.base import guarded
from airflow_mlobs.sources.dberrors import (
    db_cause,
    is_out_of_range,
    is_transient,
    is_value_error,
    source_failure,
)
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from airflow_mlobs.sources.sqlkit import read_columns
from tests.servers import TcpProxy, free_port

AS_OF = datetime(2026, 11, 26, tzinfo=UTC)


def raised(engine: sa.Engine, statement: str) -> sa.exc.SQLAlchemyError:
    """The SQLAlchemy error ``statement`` raises on ``engine`` (fails the test if it does not)."""
    with pytest.raises(sa.exc.SQLAlchemyError) as info, engine.connect() as conn:
        conn.execute(sa.text(statement))
    return info.value


@pytest.fixture
def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_connection_refused_is_transient(closed_port: int, driver: str) -> None:
    engine = sa.create_engine(f"postgresql+{driver}://postgres@127.0.0.1:{closed_port}/test")
    error = raised(engine, "SELECT 1")
    assert isinstance(error, sa.exc.OperationalError)
    assert is_transient(error)
    assert is_transient(error.orig)  # the DBAPI error alone classifies the same
    assert "refused" in db_cause(error).lower()


def test_a_connection_cut_by_the_server_is_transient() -> None:
    # A real server going away mid-session: the proxy in front of PostgreSQL cuts the connection. No
    # PostgreSQL is needed behind it for the cut itself, so the target is a listening socket of ours.
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        proxy = TcpProxy("127.0.0.1", server.getsockname()[1]).start()
        engine = sa.create_engine(
            f"postgresql+psycopg2://postgres@127.0.0.1:{proxy.port}/test", connect_args={"connect_timeout": 5}
        )
        # The "server" accepts, then the proxy is stopped while psycopg2 waits for the handshake.
        threading.Timer(0.5, proxy.stop).start()
        error = raised(engine, "SELECT 1")
    assert is_transient(error), db_cause(error)
    assert "closed the connection" in db_cause(error)


def test_credentials_never_reach_the_cause(closed_port: int) -> None:
    engine = sa.create_engine(f"postgresql+psycopg2://reader:hunter2-secret@127.0.0.1:{closed_port}/test")
    error = raised(engine, "SELECT 1")
    assert "hunter2-secret" not in db_cause(error)
    unavailable = source_failure(error, "unused", what="table t")
    assert isinstance(unavailable, SourceUnavailable)
    assert "hunter2-secret" not in str(unavailable.on_connection("wh"))
    # Even where a driver would put a URL or a libpq setting in its message.
    assert (
        db_cause(RuntimeError("cannot reach postgresql://u:pw1@h/db"))
        == "cannot reach postgresql://u:***@h/db"
    )
    assert (
        db_cause(RuntimeError("bad dsn host=h password=pw2 dbname=d"))
        == "bad dsn host=h password=*** dbname=d"
    )


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "wh.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMP)")
        conn.execute("INSERT INTO events VALUES (1, '2026-11-25 23:00:00')")
    return path


def test_sqlite_database_is_locked_is_transient(sqlite_db: Path) -> None:
    holder = sqlite3.connect(sqlite_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # holds the write lock; no other connection may read or write
    try:
        engine = sa.create_engine(f"sqlite:///{sqlite_db}", connect_args={"timeout": 0})
        error = raised(engine, "SELECT MAX(ts) FROM events")
        assert "database is locked" in db_cause(error)
        assert is_transient(error)
        # What the freshness gatherer raises for it: SourceUnavailable naming the table.
        with pytest.raises(SourceUnavailable, match=r"table events is unavailable: database is locked"):
            newest_timestamp(
                engine, column="ts", as_of=AS_OF, naive_zone=UTC, table=parse_table_name("events")
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("SELECT * FROM no_such_table", "no such table"),
        ("SELECT no_such_column FROM events", "no such column"),
        ("SELEC 1", "syntax error"),
    ],
)
def test_sqlite_bad_statements_are_final(sqlite_db: Path, statement: str, words: str) -> None:
    error = raised(sa.create_engine(f"sqlite:///{sqlite_db}"), statement)
    assert words in db_cause(error)
    assert not is_transient(error)
    assert isinstance(source_failure(error, f"query failed: {db_cause(error)}", what="query"), SourceError)


@pytest.mark.parametrize(
    ("statement", "column_error"),
    [
        ("SELECT no_such_column FROM events", True),
        ("SELECT * FROM no_such_table", False),
        ("SELEC 1", False),
    ],
    ids=["undefined-column", "missing-table", "syntax"],
)
def test_sqlite_value_errors_are_told_apart(sqlite_db: Path, statement: str, column_error: bool) -> None:
    """``is_value_error``: a failure a column causes, so the gatherer looks for that column."""
    error = raised(sa.create_engine(f"sqlite:///{sqlite_db}"), statement)
    assert is_value_error(error) is column_error


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "column_error"),
    [
        ("SELECT 1e300::float8 * 1e300::float8", True),  # 22003 value out of range: overflow
        ("SELECT 'n/a'::float8", True),  # 22P02 invalid input syntax
        ("SELECT a FROM (SELECT 1 AS a, 2 AS a) t", True),  # 42702 ambiguous
        ("SELECT * FROM no_such_table_here", False),  # 42P01
        ("SELEC 1", False),  # 42601
    ],
    ids=["overflow", "text-as-number", "ambiguous", "missing-table", "syntax"],
)
def test_postgres_value_errors_are_told_apart(
    pg_engine: sa.Engine, statement: str, column_error: bool
) -> None:
    error = raised(pg_engine, statement)
    assert is_value_error(error) is column_error
    assert is_out_of_range(error) is statement.startswith("SELECT 1e300")
    assert not is_transient(error)


def test_sqlite_file_that_cannot_be_opened_is_final(tmp_path: Path) -> None:
    error = raised(sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'dir' / 'r.db'}"), "SELECT 1")
    assert "unable to open database file" in db_cause(error)
    assert not is_transient(error)


def test_not_a_database_failure_is_not_transient() -> None:
    assert not is_transient(ValueError("connection refused"))  # words alone do not make a DB error
    assert not is_transient(SourceError("table t does not exist"))


def test_a_missing_table_stays_a_source_error(sqlite_db: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_db}")
    with pytest.raises(SourceError, match="table no_such_table does not exist"):
        newest_timestamp(
            engine,
            column="ts",
            as_of=AS_OF,
            naive_zone=UTC,
            table=parse_table_name("no_such_table"),
        )


def test_guarded_outside_a_task_turns_an_outage_into_a_named_error(closed_port: int) -> None:
    # In the triggerer or the CLI nothing can retry: the outage is an error result, as before.
    engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/test")

    def evaluate():  # type: ignore[no-untyped-def]
        newest_timestamp(
            engine,
            column="ts",
            as_of=AS_OF,
            naive_zone=UTC,
            table=parse_table_name("public.events"),
        )

    result = guarded("freshness", "wh:events", (None, None), evaluate)
    assert result.status.value == "error"
    assert "table public.events is unavailable" in result.summary
    assert "Connection refused" in result.summary


def test_connected_names_the_connection(closed_port: int, airflow_connection) -> None:  # type: ignore[no-untyped-def]
    from airflow_mlobs.connections import connected

    airflow_connection(
        "down_wh",
        conn_type="postgres",
        host="127.0.0.1",
        port=closed_port,
        login="postgres",
        password="pw-not-shown",
        schema="test",
    )
    with pytest.raises(SourceUnavailable) as info, connected("down_wh") as engine:
        read_columns(engine, parse_table_name("public.events"))
    message = str(info.value)
    assert message.startswith("connection 'down_wh' (table public.events) is unavailable: ")
    assert "Connection refused" in message
    assert "pw-not-shown" not in message
