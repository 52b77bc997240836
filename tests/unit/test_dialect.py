"""Each dialect's choices, checked without a database server: which class answers for an engine,
the statement variants it asks for, the SQL of its expressions (compiled for its own database),
its session settings and its Great Expectations datasource. Expressions whose meaning SQLite can
evaluate are also run on an in-memory SQLite database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from airflow_mlobs.sources.dialect import (
    DIALECTS,
    PostgresDialect,
    SqlDialect,
    SqliteDialect,
    dialect_for,
    dialect_named,
)
from airflow_mlobs.sources.sqlkit import MAX_FLOAT

COLUMN: sa.ColumnClause[Any] = sa.column("x")


def sql(expression: sa.ColumnElement[Any], dialect: Any) -> str:
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_dialect_for_an_engine() -> None:
    assert type(dialect_for(sa.create_engine("sqlite://"))) is SqliteDialect
    assert type(dialect_for(sa.create_engine("postgresql+psycopg2://u@h/db"))) is PostgresDialect
    assert type(dialect_named("postgresql")) is PostgresDialect


@pytest.mark.parametrize("name", ["mssql", "oracle", "trino"])
def test_a_database_without_a_class_gets_the_ansi_dialect(name: str) -> None:
    assert type(dialect_named(name)) is SqlDialect


def test_every_listed_dialect_is_found_by_its_name() -> None:
    assert {cls.name for cls in DIALECTS} == {
        "postgresql",
        "sqlite",
        "mysql",
        "mariadb",
        "duckdb",
        "redshift",
        "snowflake",
        "bigquery",
    }
    for cls in DIALECTS:
        assert type(dialect_named(cls.name)) is cls


@pytest.mark.parametrize(
    ("dialect", "packs", "grouping_sets", "nulls_first"),
    [
        (SqlDialect(), False, False, False),
        (PostgresDialect(), True, True, True),
        (SqliteDialect(), False, False, False),
    ],
)
def test_statement_variants(dialect: SqlDialect, packs: bool, grouping_sets: bool, nulls_first: bool) -> None:
    assert dialect.packs_bin_counts is packs
    assert dialect.supports_grouping_sets is grouping_sets
    assert dialect.descending_nulls_first is nulls_first


def test_stored_number_only_where_columns_hold_any_type() -> None:
    assert SqlDialect().stored_number(COLUMN) is None
    assert PostgresDialect().stored_number(COLUMN) is None
    number = SqliteDialect().stored_number(COLUMN)
    assert number is not None
    assert sql(number, sqlite.dialect()) == "typeof(x) IN ('integer', 'real')"


def test_finite_sql() -> None:
    bounds = f"CAST(x AS FLOAT) >= {-MAX_FLOAT} AND CAST(x AS FLOAT) <= {MAX_FLOAT}"
    assert sql(SqlDialect().finite(COLUMN), sqlite.dialect()) == bounds
    assert sql(PostgresDialect().finite(COLUMN), postgresql.dialect()) == bounds
    assert (
        sql(SqliteDialect().finite(COLUMN), sqlite.dialect())
        == "typeof(x) IN ('integer', 'real') AND " + bounds
    )


@pytest.mark.parametrize(
    ("dialect", "compiler", "expected"),
    [
        (
            SqlDialect(),
            sqlite.dialect(),
            "CASE WHEN (CAST(floor(x) AS INTEGER) > 3) THEN 3 ELSE CAST(floor(x) AS INTEGER) END",
        ),
        (PostgresDialect(), postgresql.dialect(), "least(CAST(floor(x) AS INTEGER), 3)"),
        (
            SqliteDialect(),
            sqlite.dialect(),
            "CASE WHEN (CAST(x AS INTEGER) > 3) THEN 3 ELSE CAST(x AS INTEGER) END",
        ),
    ],
)
def test_floor_capped_sql(dialect: SqlDialect, compiler: Any, expected: str) -> None:
    assert sql(dialect.floor_capped(COLUMN, 3), compiler) == expected


def evaluate(expression_for: Any, values: list[Any]) -> list[Any]:
    """``expression_for(column)`` over ``values`` on an in-memory SQLite database."""
    engine = sa.create_engine("sqlite://")
    rows = sa.union_all(*(sa.select(sa.literal(v).label("v")) for v in values)).subquery("rows")
    with engine.connect() as conn:
        return list(conn.execute(sa.select(expression_for(rows.c.v))).scalars())


@pytest.mark.parametrize("dialect", [SqlDialect(), SqliteDialect()])
def test_floor_capped_values_on_sqlite(dialect: SqlDialect) -> None:
    assert evaluate(lambda x: dialect.floor_capped(x, 3), [0.0, 0.5, 2.999, 3.0, 7.5]) == [0, 0, 2, 3, 3]


def test_finite_values_on_sqlite() -> None:
    values = [1.5, 7, float("inf"), float("-inf"), None, "text"]
    # NULL is not a stored number, so SQLite's test is false (not NULL) there; both count as not finite.
    assert evaluate(SqliteDialect().finite, values) == [True, True, False, False, False, False]
    # The ANSI dialect trusts the column's type: SQLite's text casts to 0.0 and passes.
    assert evaluate(SqlDialect().finite, values) == [True, True, False, False, None, True]


@pytest.mark.parametrize("dialect", [SqlDialect(), SqliteDialect()])
def test_no_session_settings(dialect: SqlDialect) -> None:
    for purpose in ("profile", "performance_grouped", "performance_ranked"):
        assert dialect.session_settings(purpose) == ()  # type: ignore[arg-type]


def test_postgres_session_settings() -> None:
    dialect = PostgresDialect()
    assert dialect.session_settings("profile") == ("SET LOCAL jit = off",)
    assert dialect.session_settings("performance_grouped") == ("SET LOCAL enable_sort = off",)
    assert dialect.session_settings("performance_ranked") == (
        "SET LOCAL jit = off",
        "SET LOCAL enable_sort = off",
    )


def test_prepare_session_runs_the_settings_in_order() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.statements: list[str] = []

        def execute(self, statement: Any) -> None:
            self.statements.append(str(statement))

    conn = Recorder()
    PostgresDialect().prepare_session(conn, "performance_ranked")  # type: ignore[arg-type]
    assert conn.statements == ["SET LOCAL jit = off", "SET LOCAL enable_sort = off"]
    SqlDialect().prepare_session(conn, "profile")  # type: ignore[arg-type]
    assert len(conn.statements) == 2


@pytest.mark.parametrize(
    ("dialect", "method"),
    [(SqlDialect(), "add_sql"), (PostgresDialect(), "add_postgres"), (SqliteDialect(), "add_sqlite")],
)
def test_gx_datasource(dialect: SqlDialect, method: str) -> None:
    calls: list[tuple[str, str, str]] = []

    class Sources:
        def __getattr__(self, name: str) -> Any:
            def add(datasource: str, *, connection_string: str) -> str:
                calls.append((name, datasource, connection_string))
                return "datasource"

            return add

    class Context:
        data_sources = Sources()

    assert dialect.gx_datasource(Context(), "mlobs", "db://url") == "datasource"
    assert calls == [(method, "mlobs", "db://url")]


def test_upsert_insert_where_the_database_has_one() -> None:
    """PostgreSQL and SQLite (3.24+) insert-or-replace in one statement; generic SQL has no such
    statement, nor an old SQLite, and the store falls back to update-then-insert."""
    table = sa.Table("t", sa.MetaData(), sa.Column("key", sa.String, primary_key=True))
    engine = sa.create_engine("sqlite://")
    assert SqlDialect().upsert_insert(table, engine.dialect) is None
    pg = PostgresDialect().upsert_insert(table, engine.dialect)
    assert pg is not None and hasattr(pg, "on_conflict_do_update")
    assert SqliteDialect().upsert_insert(table, engine.dialect) is not None

    class OldSqlite:
        server_version_info = (3, 22, 0)

    assert SqliteDialect().upsert_insert(table, OldSqlite()) is None  # type: ignore[arg-type]


def test_sqlite_creation_lock_takes_the_write_lock() -> None:
    """``BEGIN IMMEDIATE`` on a pysqlite connection: a second writer waits (here: is refused at once)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/lock.db"
        first = sa.create_engine(url)
        second = sa.create_engine(url, connect_args={"timeout": 0})
        with first.connect() as conn:
            SqliteDialect().lock_table_creation(conn, 1)
            with second.connect() as other, pytest.raises(sa.exc.OperationalError, match="locked"):
                other.exec_driver_sql("CREATE TABLE x (a INTEGER)")
            conn.rollback()
        first.dispose()
        second.dispose()


def test_no_dialect_name_branches_outside_the_dialect_module() -> None:
    """Every database difference is answered by a dialect object: nothing else in the package asks
    an engine for its dialect's name."""
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "airflow_mlobs"
    branches = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "dialect.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "dialect.name" in line
    ]
    assert branches == []
