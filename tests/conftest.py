"""Shared test setup.

Airflow reads its configuration when first imported, so a private AIRFLOW_HOME is set here, before
any test module imports Airflow. PostgreSQL tests use ``MLOBS_TEST_DATABASE_URL`` (default: the local
server); where none answers they skip with the reason, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_HOME = Path(tempfile.mkdtemp(prefix="mlobs-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import sqlalchemy as sa  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    """The PostgreSQL URL for integration tests."""
    return os.environ.get("MLOBS_TEST_DATABASE_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[sa.Engine]:
    """An engine on the test PostgreSQL; skips (fails under CI=true) when none answers."""
    engine = sa.create_engine(pg_url(), pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        message = f"no PostgreSQL at {engine.url.render_as_string(hide_password=True)}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(pg_engine: sa.Engine) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    name = f"mlobs_test_{uuid.uuid4().hex[:10]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
def airflow_connection(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Define an Airflow connection for this test through its environment variable.

    Usage: ``airflow_connection("warehouse", conn_type="postgres", host=..., ...)``.
    """
    import json

    def define(conn_id: str, **fields: object) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
        return conn_id

    return define


def pg_connection_fields(url: str | None = None) -> dict[str, object]:
    """The Airflow connection fields (conn_type postgres) for the test PostgreSQL URL."""
    parsed = sa.engine.make_url(url or pg_url())
    return {
        "conn_type": "postgres",
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "login": parsed.username or "postgres",
        "password": parsed.password or "",
        "schema": parsed.database or "test",
    }


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the private Airflow metadata database (SQLite) once per session; returns AIRFLOW_HOME."""
    import subprocess

    cli = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(cli), "db", "migrate"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return _HOME


DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(scope="session")
def mysql_engine() -> Iterator[sa.Engine]:
    """An engine on the test MySQL/MariaDB (``MLOBS_TEST_MYSQL_URL``, default the local server);
    skips with the reason (fails under CI=true, like PostgreSQL) when PyMySQL or the server is missing."""
    url = os.environ.get("MLOBS_TEST_MYSQL_URL", DEFAULT_MYSQL_URL)
    ci = os.environ.get("CI", "").lower() == "true"
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # no driver or no server: "no MySQL here"
        message = f"no MySQL/MariaDB at {sa.engine.make_url(url).render_as_string(hide_password=True)}: {exc}"
        if ci:
            pytest.fail(message + " (CI=true: MySQL/MariaDB tests must run)")
        pytest.skip(message)
    yield engine
    engine.dispose()
