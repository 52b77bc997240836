"""Database dialects: one object per database answers every difference the SQL gatherers meet.

The gatherers (``drift_sql``, ``baseline_sql``, ``performance_sql``, ``quality``) and the results
store never branch on a database's name; they ask the engine's dialect object (:func:`dialect_for`) how to test a finite
number, which statement variant applies, which session settings a query wants, and how Great
Expectations reaches the database. The model is Airflow common.sql's ``Dialect``.

:class:`SqlDialect` is the generic ANSI behaviour (typed columns, ``FILTER``, window functions,
``FLOOR``, ``CASE``) and answers for any database without a class of its own; a database is added
by one subclass overriding what differs, listed in :data:`DIALECTS`. Nothing here opens a
connection except :meth:`SqlDialect.prepare_session`, so each dialect's choices can be checked
without a database.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import FunctionFilter

from airflow_mlobs.sources.sqlkit import DOUBLE, MAX_FLOAT

QueryPurpose = Literal["profile", "performance_grouped", "performance_ranked", "performance_reduced"]
"""What a statement is for, so a dialect can tune the session before it runs: the drift profile
aggregates, the grouped or ranked formulation of the performance join, or its plain join over the
reduced label table."""


class SqlDialect:
    """The generic ANSI SQL dialect, and the base every database's dialect starts from.

    It assumes a column holds values of its declared type, ``count(*) FILTER (WHERE ...)``,
    ``ROW_NUMBER() OVER``, ``FLOOR`` and ``CASE``, no ``GROUPING SETS`` and no session tuning. A
    subclass overrides only what its database does differently (or better).
    """

    #: The SQLAlchemy dialect name this class answers for (``engine.dialect.name``).
    name: ClassVar[str] = "ansi"
    #: Whether the profile statement packs each numeric column's bin counts into one exact numeric
    #: sum over ``width_bucket(x, edges)``: one aggregate per column instead of one per edge. Needs
    #: PostgreSQL's array-valued ``width_bucket``, ``numeric[]`` literals (19 decimal digits per bin)
    #: and ``clock_timestamp()``; see ``drift_sql._packed_profile_statement``.
    packs_bin_counts: ClassVar[bool] = False
    #: Whether the top-categories statement ranks all categorical columns in one scan with
    #: ``GROUP BY GROUPING SETS`` and ``GROUPING()``; otherwise one ``GROUP BY`` per column joined
    #: by ``UNION ALL``.
    supports_grouping_sets: ClassVar[bool] = False
    #: Whether ``ORDER BY x DESC`` puts NULLs first (NULL sorts above every value, as in PostgreSQL,
    #: Oracle, Snowflake); False where NULL sorts below every value (SQLite, MySQL, SQL Server) or
    #: last in both directions (DuckDB). The grouped performance statement mirrors this order so
    #: it picks the same winning label as the ranked one.
    descending_nulls_first: ClassVar[bool] = False

    #: Whether aggregates take ``FILTER (WHERE ...)`` (SQL:2003; PostgreSQL, SQLite 3.30+, DuckDB).
    #: Without it :meth:`filtered` moves the condition into the argument, ``agg(CASE WHEN ...)``.
    supports_aggregate_filter: ClassVar[bool] = False

    def filtered(
        self,
        aggregate: Callable[..., sa.FunctionElement[Any]],
        value: sa.ColumnElement[Any] | None,
        condition: sa.ColumnElement[bool],
    ) -> FunctionFilter[Any] | sa.FunctionElement[Any]:
        """``aggregate(value)`` over the rows where ``condition`` holds (``value=None``: ``count(*)``).

        ``agg(x) FILTER (WHERE c)`` where the database has it, else the portable
        ``agg(CASE WHEN c THEN x END)`` (``count(*)`` counts ``CASE WHEN c THEN 1 END``): the same
        result for ``count``, ``sum``, ``min`` and ``max``, which skip NULLs (no row: NULL, or 0 for
        ``count``). The result takes ``.over(...)`` and ``.label(...)`` as an aggregate does."""
        if self.supports_aggregate_filter:
            call = aggregate() if value is None else aggregate(value)
            return call.filter(condition)
        inner: sa.ColumnElement[Any] = sa.literal_column("1") if value is None else value
        return aggregate(sa.case((condition, inner)))

    def nulls_last(self, order: sa.UnaryExpression[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """The ``ORDER BY`` keys for ``order`` (``x.asc()`` or ``x.desc()``) with NULLs last:
        ``x ASC NULLS LAST`` (SQL:2003), a tuple so a database without it can test NULL first."""
        return (sa.nulls_last(order),)

    def get_columns(self, engine: Engine, table: str, schema: str | None) -> list[dict[str, Any]]:
        """The catalog's columns of ``table`` as SQLAlchemy's inspector gives them (``name``,
        ``type``, ``nullable``); an empty list or ``NoSuchTableError`` for a missing table."""
        return list(sa.inspect(engine).get_columns(table, schema=schema))  # type: ignore[arg-type]

    def stored_number(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool] | None:
        """A condition true when the value stored in ``column`` is a number, for databases whose
        columns can hold values of any type; ``None`` where the column's declared type
        guarantees it (then no value of a numeric column is ``invalid``)."""
        del column
        return None

    def finite(self, column: sa.ColumnElement[Any], *, exact: bool = False) -> sa.ColumnElement[bool]:
        """A condition true when ``column`` holds a finite double: false for NULL, NaN, +-infinity
        (NaN compares above every number where the database has it) and stored non-numbers.

        ``exact`` (a DECIMAL/NUMERIC column, or a query's column of unknown type) compares the value
        itself with exact ``NUMERIC`` bounds before any cast, so a decimal beyond double range is
        not finite instead of failing the cast (PostgreSQL: "value out of range: overflow"). A
        double column compared so still casts only the bound, once."""
        number = self.stored_number(column)
        if exact:
            bound = sa.literal(Decimal(repr(MAX_FLOAT)), sa.Numeric)
            in_range = [column >= -bound, column <= bound]
        else:
            x = sa.cast(column, DOUBLE)
            in_range = [x >= -MAX_FLOAT, x <= MAX_FLOAT]
        return sa.and_(*in_range) if number is None else sa.and_(number, *in_range)

    def query_column_names(self, keys: list[str]) -> list[str]:
        """The column names a query gave, from the keys of ``SELECT * FROM (<query>)``: the keys
        themselves here (a name given twice appears twice)."""
        return list(keys)

    def floor_capped(self, value: sa.ColumnElement[Any], cap: int) -> sa.ColumnElement[Any]:
        """``floor(value)`` as an integer, at most ``cap``, for ``value >= 0`` (a score's bin index).

        ANSI leaves rounding vs truncation of ``CAST(float AS INTEGER)`` to the database, so the
        generic form floors first; the cap is a ``CASE`` (``LEAST`` is not standard)."""
        floored: sa.ColumnElement[Any] = sa.cast(sa.func.floor(value), sa.Integer)
        return sa.case((floored > cap, cap), else_=floored)

    def session_settings(self, purpose: QueryPurpose) -> tuple[str, ...]:
        """Statements run in the transaction before a statement for ``purpose`` (none here)."""
        del purpose
        return ()

    def prepare_session(self, conn: Connection, purpose: QueryPurpose) -> None:
        """Run :meth:`session_settings` for ``purpose`` on ``conn``; call it inside the transaction
        (``engine.begin()``) that then runs the statement, since the settings are transaction-local."""
        for setting in self.session_settings(purpose):
            conn.execute(sa.text(setting))

    def gx_datasource(self, context: Any, name: str, connection_string: str) -> Any:
        """Add a Great Expectations datasource ``name`` for this database to ``context``: the
        generic SQL datasource here; subclasses use GE's database-specific one where it exists."""
        return context.data_sources.add_sql(name, connection_string=connection_string)

    def lock_table_creation(self, conn: Connection, key: int) -> None:
        """Serialise processes creating or upgrading the results tables for the rest of ``conn``'s
        transaction (``key`` names the lock). Generic SQL has no such lock: nothing is done and the
        results store catches the lost race and looks again."""
        del conn, key

    #: Whether ``percentile_cont(q) WITHIN GROUP (ORDER BY x)`` is available (exact, interpolated
    #: percentiles); without it the service-health statement ranks the values with ``ROW_NUMBER()``
    #: and fetches only the two values around each percentile's rank.
    has_percentile_cont: ClassVar[bool] = False
    #: Whether a query's timestamps are compared as naive values in the check's zone (SQLite keeps
    #: timestamps as text without zone, as SQLAlchemy writes them), instead of bound as given.
    naive_query_timestamps: ClassVar[bool] = False

    def rank_floor(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``floor(value)`` as an integer for ``value >= 0`` (a percentile's rank below)."""
        return sa.cast(sa.func.floor(value), sa.Integer)

    def minute_keys(self, ts: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """Expressions whose values together name the calendar minute of ``ts`` (the peak-minute
        count groups by them): the date, hour and minute in ANSI SQL."""
        return (
            sa.cast(ts, sa.Date),
            sa.extract("hour", ts),
            sa.extract("minute", ts),
        )

    #: Whether :meth:`block_sample` takes a seed, so the same seed keeps the same blocks (on an
    #: unchanged table); False where it does not (BigQuery; DuckDB's parallel scans): the result then
    #: says it is not repeatable.
    block_sample_repeatable: ClassVar[bool] = True

    def block_sample(self, source: sa.TableClause, rate: float, seed: int) -> sa.FromClause | None:
        """The table block-sampled at ``rate`` with a repeatable ``seed``, or ``None`` where the
        database has no block sampling (then a key hash is needed; see core/sampling.py)."""
        return None

    @staticmethod
    def _percent_sample(source: sa.TableClause, rate: float, seed: int | None) -> sa.FromClause:
        """``<table> AS mlobs_sample TABLESAMPLE system(<100 * rate> PERCENT) [REPEATABLE (<seed>)]``
        with both numbers written into the statement (DuckDB takes no bound parameter there, and a
        plain number means rows, not percent, in DuckDB's ``system(n)``)."""
        percent: sa.ColumnElement[Any] = sa.literal_column(f"{100.0 * rate!r} PERCENT")
        return sa.tablesample(
            source,
            sa.func.system(percent),
            name="mlobs_sample",
            seed=None if seed is None else sa.literal_column(str(int(seed))),
        )

    def row_estimate(self, conn: Connection, source: sa.TableClause) -> int:
        """The table's row count estimate a ``sample_rows`` request resolves against: an exact
        ``count(*)`` unless the database keeps a cheaper estimate."""
        return int(conn.execute(sa.select(sa.func.count()).select_from(source)).scalar() or 0)

    def key_hash_keep(self, key: sa.ColumnElement[Any], threshold: int, seed: int) -> sa.ColumnElement[bool]:
        """``(abs(key) % 1000003 * A + C) % 1000003 < threshold`` for an integer key column, with
        the seed's multiplier ``A`` and offset ``C`` (:func:`~airflow_mlobs.core.sampling.hash_parameters`);
        every intermediate fits 64 bits (see core/sampling.py)."""
        from airflow_mlobs.core.sampling import HASH_MODULUS, hash_parameters

        multiplier, offset = hash_parameters(seed)
        # 64-bit arithmetic: an INTEGER key's residue times the multiplier passes 2**31.
        residue = sa.cast(sa.func.abs(key) % HASH_MODULUS, sa.BigInteger)
        return ((residue * multiplier + offset) % HASH_MODULUS) < threshold

    def upsert_insert(self, table: sa.Table, engine_dialect: sa.engine.Dialect) -> Any | None:
        """An ``INSERT`` into ``table`` offering ``on_conflict_do_update`` and ``excluded`` (one
        statement that inserts or replaces a row), or ``None`` where the database has none; then the
        results store updates first and inserts when nothing was updated."""
        del table, engine_dialect
        return None


class PostgresDialect(SqlDialect):
    """PostgreSQL: packed bin counts, GROUPING SETS, NULLs sort high, planner settings per query."""

    name = "postgresql"
    supports_aggregate_filter = True
    packs_bin_counts = True
    supports_grouping_sets = True
    descending_nulls_first = True

    def block_sample(self, source: sa.TableClause, rate: float, seed: int) -> sa.FromClause | None:
        """``TABLESAMPLE SYSTEM (100 * rate) REPEATABLE (seed)``: pages, not rows, are sampled."""
        return sa.tablesample(
            source, sa.func.system(100.0 * rate), name="mlobs_sample", seed=sa.literal(seed)
        )

    def row_estimate(self, conn: Connection, source: sa.TableClause) -> int:
        """``pg_class.reltuples`` (kept by ANALYZE/autovacuum; -1 before the first ANALYZE, then an
        exact count is taken instead)."""
        name = source.name if source.schema is None else f"{source.schema}.{source.name}"
        estimate = conn.execute(
            sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)"),
            {"name": '"' + name.replace('"', '""').replace(".", '"."') + '"'},
        ).scalar()
        if estimate is None or int(estimate) < 0:
            return super().row_estimate(conn, source)
        return int(estimate)

    def floor_capped(self, value: sa.ColumnElement[Any], cap: int) -> sa.ColumnElement[Any]:
        """``LEAST(CAST(floor(value) AS INTEGER), cap)``: PostgreSQL's CAST rounds, so floor first."""
        return sa.func.least(sa.cast(sa.func.floor(value), sa.Integer), cap)

    def session_settings(self, purpose: QueryPurpose) -> tuple[str, ...]:
        """``SET LOCAL`` planner settings, each measured (``benchmarks/README.md``).

        * ``jit = off`` for the drift profile (and the joint-drift covariance statement, which runs
          under the same purpose): slower with JIT at 1M and 10M rows, with and without inlining and
          optimisation; the aggregates are simple function calls and every parallel worker compiles
          them again (the covariance statement's 67 aggregates compiled for 18-38 s of CPU). Also for the ranked performance statement, whose window
          functions and CASE expressions ran slower compiled; the grouped one runs serially after
          the join and is faster with JIT (12.5 s instead of 19 s at 10M predictions).
        * ``enable_sort = off`` for both performance statements: the planner overestimates the
          groups of the final ``GROUP BY`` (10-100x) and the rows left after ``ROW_NUMBER() = 1``
          (200x), and would sort (spilling with the default ``work_mem``) instead of hashing.
        * Only ``enable_sort = off`` for the plain join over the reduced label table (the same
          overestimate of its final groups). Measured against it at 1M and 10M predictions
          (``benchmarks/performance_benchmark.py --reduced``, interleaved, 2026-12-04): ``jit = off``
          with ``parallel_tuple_cost = 0.001`` (a parallel hash join, then a serial aggregate of the
          gathered rows) was 10-25% slower at 10M; serially with JIT the aggregate's expressions
          are compiled once.
        """
        if purpose == "profile":
            return ("SET LOCAL jit = off",)
        if purpose == "performance_ranked":
            return ("SET LOCAL jit = off", "SET LOCAL enable_sort = off")
        return ("SET LOCAL enable_sort = off",)

    has_percentile_cont = True

    def minute_keys(self, ts: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """``date_trunc('minute', ts)``."""
        return (sa.func.date_trunc("minute", ts),)

    def gx_datasource(self, context: Any, name: str, connection_string: str) -> Any:
        """Great Expectations' PostgreSQL datasource."""
        return context.data_sources.add_postgres(name, connection_string=connection_string)

    def lock_table_creation(self, conn: Connection, key: int) -> None:
        """A transaction-level advisory lock, one per schema (``search_path``)."""
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(coalesce(current_schema(), '')))"),
            {"cls": key},
        )

    def upsert_insert(self, table: sa.Table, engine_dialect: sa.engine.Dialect) -> Any | None:
        """PostgreSQL's ``INSERT ... ON CONFLICT DO UPDATE``."""
        del engine_dialect
        return postgresql_dialect.insert(table)


class SqliteDialect(SqlDialect):
    """SQLite: any column can hold any value (text cast to a number is 0.0), CAST truncates."""

    name = "sqlite"
    supports_aggregate_filter = True

    def stored_number(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool] | None:
        """``typeof(column) IN ('integer', 'real')``: only stored numbers are numbers, since
        SQLite casts text to 0.0."""
        return sa.func.typeof(column).in_(["integer", "real"])

    def query_column_names(self, keys: list[str]) -> list[str]:
        """SQLite renames a repeated name in a subquery ``a:1``, ``a:2``: read back as ``a``, so a
        name given twice is seen twice (and not silently answered by the first)."""
        seen = set(keys)
        names = []
        for key in keys:
            base, _, suffix = key.rpartition(":")
            names.append(base if base and suffix.isdigit() and base in seen else key)
        return names

    def finite(self, column: sa.ColumnElement[Any], *, exact: bool = False) -> sa.ColumnElement[bool]:
        """SQLite stores every number as an integer or a double (a DECIMAL beyond double range is
        the double infinity), so the double test is exact: ``exact`` changes nothing."""
        del exact
        return super().finite(column)

    def floor_capped(self, value: sa.ColumnElement[Any], cap: int) -> sa.ColumnElement[Any]:
        """``CAST(value AS INTEGER)`` (truncates, the floor for ``value >= 0``; ``floor()`` needs
        SQLite's optional math functions), capped with ``CASE``."""
        raw: sa.ColumnElement[Any] = sa.cast(value, sa.Integer)
        return sa.case((raw > cap, cap), else_=raw)

    naive_query_timestamps = True

    def rank_floor(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``CAST(value AS INTEGER)``: truncation, the floor for ``value >= 0`` (``floor()`` needs
        SQLite's optional math functions)."""
        return sa.cast(value, sa.Integer)

    def minute_keys(self, ts: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """``strftime('%Y-%m-%d %H:%M', ts)`` over the stored text."""
        return (sa.func.strftime("%Y-%m-%d %H:%M", ts),)

    def gx_datasource(self, context: Any, name: str, connection_string: str) -> Any:
        """Great Expectations' SQLite datasource."""
        return context.data_sources.add_sqlite(name, connection_string=connection_string)

    def lock_table_creation(self, conn: Connection, key: int) -> None:
        """The write lock up front (``BEGIN IMMEDIATE``, pysqlite only, which opens no transaction of
        its own before DDL): creators queue on the busy timeout instead of racing. A connection that
        already began a transaction refuses; the store's lost-race handling covers it then."""
        del key
        if conn.dialect.driver != "pysqlite":
            return
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as exc:
            if "within a transaction" not in str(exc.orig):
                raise

    def upsert_insert(self, table: sa.Table, engine_dialect: sa.engine.Dialect) -> Any | None:
        """SQLite's ``INSERT ... ON CONFLICT DO UPDATE``, since SQLite 3.24 (the version is known
        once connected; before that it is assumed)."""
        version = getattr(engine_dialect, "server_version_info", None)
        if version is not None and tuple(version) < (3, 24):
            return None
        return sqlite_dialect.insert(table)


class MysqlDialect(SqlDialect):
    """MySQL 8 and MariaDB 10.4+ (SQLAlchemy names both ``mysql``; a ``mariadb://`` URL names it
    ``mariadb``): no aggregate ``FILTER`` and no ``NULLS LAST`` (NULL sorts below every value: first
    in ``ASC``, last in ``DESC``), no ``percentile_cont`` aggregate (MariaDB has it as a window
    function only), no ``GROUPING SETS`` (``WITH ROLLUP`` only). A ``DOUBLE`` holds no NaN or
    infinity, and a ``DECIMAL`` has at most 65 digits, so every stored number is finite and within
    double range. Backtick quoting is SQLAlchemy's."""

    name = "mysql"

    def nulls_last(self, order: sa.UnaryExpression[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """``CASE WHEN x IS NULL THEN 1 ELSE 0 END, x <direction>``: MySQL has no ``NULLS LAST``."""
        element: Any = order.element
        return (sa.case((element.is_(None), 1), else_=0), order)

    def finite(self, column: sa.ColumnElement[Any], *, exact: bool = False) -> sa.ColumnElement[bool]:
        """The double test; ``exact`` changes nothing, since a DECIMAL (65 digits at most) always
        fits a double and an exact 309-digit bound is beyond MySQL's DECIMAL."""
        del exact
        return super().finite(column)


class MariadbDialect(MysqlDialect):
    """MariaDB reached through a ``mariadb://`` or ``mariadb+pymysql://`` URL: MySQL's answers."""

    name = "mariadb"


class DuckdbDialect(SqlDialect):
    """DuckDB (``duckdb_engine``): aggregate ``FILTER``, ``percentile_cont ... WITHIN GROUP`` and
    ``GROUPING SETS``; NULLs last in both directions by default (so not first in ``DESC``); NaN
    sorts above +infinity as in PostgreSQL. Its ``FLOAT`` is 4 bytes: the gatherers cast to
    :data:`~airflow_mlobs.sources.sqlkit.DOUBLE`."""

    name = "duckdb"
    supports_aggregate_filter = True
    supports_grouping_sets = True
    has_percentile_cont = True
    block_sample_repeatable = False

    def block_sample(self, source: sa.TableClause, rate: float, seed: int) -> sa.FromClause | None:
        """``TABLESAMPLE system(p PERCENT) REPEATABLE (seed)`` (DuckDB's ``USING SAMPLE p PERCENT
        (system, seed)``): DuckDB keeps whole vectors of 2,048 rows, so a 1% sample of a million
        rows is about five vectors: far more clustered than a page sample (see core/sampling.py).
        The seed fixes the sample only on one thread (``threads = 1``): a parallel scan keeps other
        vectors from run to run (measured with DuckDB 2.0.1), so the result says not repeatable."""
        return self._percent_sample(source, rate, seed)

    def minute_keys(self, ts: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """``date_trunc('minute', ts)``."""
        return (sa.func.date_trunc("minute", ts),)

    #: DuckDB's type names (``information_schema.columns.data_type``) as SQLAlchemy types.
    _TYPES: ClassVar[dict[str, Any]] = {
        "BOOLEAN": sa.Boolean,
        "TINYINT": sa.SmallInteger,
        "SMALLINT": sa.SmallInteger,
        "INTEGER": sa.Integer,
        "BIGINT": sa.BigInteger,
        "HUGEINT": sa.BigInteger,
        "UTINYINT": sa.SmallInteger,
        "USMALLINT": sa.Integer,
        "UINTEGER": sa.BigInteger,
        "UBIGINT": sa.Numeric,
        "FLOAT": sa.Float,
        "REAL": sa.Float,
        "DOUBLE": sa.Double,
        "VARCHAR": sa.Text,
        "DATE": sa.Date,
        "TIME": sa.Time,
        "TIMESTAMP": sa.DateTime,
        "TIMESTAMP WITH TIME ZONE": lambda: sa.DateTime(timezone=True),
        "BLOB": sa.LargeBinary,
        "UUID": sa.Uuid,
    }

    def get_columns(self, engine: Engine, table: str, schema: str | None) -> list[dict[str, Any]]:
        """``information_schema.columns``: duckdb_engine's inspector runs PostgreSQL's catalog query,
        which DuckDB cannot answer under SQLAlchemy 2.1 (no ``pg_catalog.pg_collation``). A type
        without a mapping is ``NullType`` (its name still decides its logical type)."""
        columns = sa.table(
            "columns",
            sa.column("table_schema"),
            sa.column("table_name"),
            sa.column("column_name"),
            sa.column("data_type"),
            sa.column("is_nullable"),
            sa.column("ordinal_position"),
            schema="information_schema",
        )
        where = [columns.c.table_name == table]
        if schema is not None:
            where.append(columns.c.table_schema == schema)
        else:
            where.append(columns.c.table_schema == sa.func.current_schema())
        statement = (
            sa.select(columns.c.column_name, columns.c.data_type, columns.c.is_nullable)
            .where(*where)
            .order_by(columns.c.ordinal_position)
        )
        with engine.connect() as conn:
            rows = conn.execute(statement).all()
        result = []
        for name, data_type, nullable in rows:
            text = str(data_type).upper()
            if text.startswith(("DECIMAL", "NUMERIC")):
                digits = [int(d) for d in text[text.find("(") + 1 : -1].split(",")] if "(" in text else []
                sql_type: Any = sa.Numeric(digits[0], digits[1]) if len(digits) == 2 else sa.Numeric()
            else:
                factory = self._TYPES.get(text)
                sql_type = factory() if factory is not None else sa.types.NullType()
            result.append({"name": name, "type": sql_type, "nullable": nullable == "YES"})
        return result


class RedshiftDialect(SqlDialect):
    """Amazon Redshift (``sqlalchemy-redshift``; compiled and checked here, no server). The generic
    statements apply (no aggregate ``FILTER``: the ``CASE`` form; no arrays, so no packed bins; no
    ``SAVEPOINT``) with two differences, from the Redshift Database Developer Guide:

    * NULL sorts above every value, last in ``ASC`` and first in ``DESC`` (r_ORDER_BY_clause.html),
      so the grouped performance statement mirrors ``DESC`` with NULLs first;
    * "NULLS clause in Window functions" is among the unsupported PostgreSQL features
      (c_unsupported-postgresql-features.html): NULLs are put last with a ``CASE`` key instead, as
      the ranked statement's ``ROW_NUMBER() OVER (ORDER BY ...)`` needs.

    ``PERCENTILE_CONT ... WITHIN GROUP`` exists (r_PERCENTILE_CONT.html) but is not used: the
    generic ranked percentiles are exact and need no leader-node-only function."""

    name = "redshift"
    descending_nulls_first = True

    def nulls_last(self, order: sa.UnaryExpression[Any]) -> tuple[sa.ColumnElement[Any], ...]:
        """``CASE WHEN x IS NULL THEN 1 ELSE 0 END, x <direction>`` (no NULLS clause in windows)."""
        element: Any = order.element
        return (sa.case((element.is_(None), 1), else_=0), order)


class SnowflakeDialect(SqlDialect):
    """Snowflake (``snowflake-sqlalchemy``, not installable here: its statements are compiled with
    the generic compiler and checked as text). Only block sampling differs from the generic answers
    so far: ``TABLESAMPLE SYSTEM (p) REPEATABLE (seed)``, Snowflake's ``SAMPLE SYSTEM (p) SEED (s)``
    (``TABLESAMPLE``/``SAMPLE`` and ``REPEATABLE``/``SEED`` are synonyms; docs.snowflake.com
    sql-reference/constructs/sample)."""

    name = "snowflake"

    def block_sample(self, source: sa.TableClause, rate: float, seed: int) -> sa.FromClause | None:
        """``TABLESAMPLE system(p) REPEATABLE (seed)``: blocks (micro-partitions' blocks) kept with
        probability ``p / 100`` (Snowflake's probability is a percentage without ``PERCENT``)."""
        return sa.tablesample(
            source,
            sa.func.system(sa.literal_column(repr(100.0 * rate))),
            name="mlobs_sample",
            seed=sa.literal_column(str(int(seed))),
        )


class BigqueryDialect(SqlDialect):
    """BigQuery (``sqlalchemy-bigquery``, not installable here: compiled with the generic compiler
    and checked as text). Block sampling is ``TABLESAMPLE SYSTEM (p PERCENT)``, which takes no seed:
    each run samples other blocks (cloud.google.com/bigquery/docs/table-sampling), so a sampled
    result says it is not repeatable."""

    name = "bigquery"
    block_sample_repeatable = False

    def block_sample(self, source: sa.TableClause, rate: float, seed: int) -> sa.FromClause | None:
        """``TABLESAMPLE system(p PERCENT)`` (no seed)."""
        del seed
        return self._percent_sample(source, rate, None)


#: The dialects with a class of their own; any other database gets :class:`SqlDialect`.
DIALECTS: tuple[type[SqlDialect], ...] = (
    PostgresDialect,
    SqliteDialect,
    MysqlDialect,
    MariadbDialect,
    DuckdbDialect,
    RedshiftDialect,
    SnowflakeDialect,
    BigqueryDialect,
)
_BY_NAME: dict[str, SqlDialect] = {cls.name: cls() for cls in DIALECTS}
_ANSI = SqlDialect()


def dialect_named(name: str) -> SqlDialect:
    """The dialect object for a SQLAlchemy dialect name (``"postgresql"``); the generic ANSI one
    for a name without a class."""
    return _BY_NAME.get(name, _ANSI)


def database_name(engine: Engine | Connection) -> str:
    """The SQLAlchemy dialect name of ``engine`` (``"mysql"``), for messages only: behaviour is
    asked of :func:`dialect_for`'s object."""
    return str(engine.dialect.name)


def dialect_for(engine: Engine | Connection) -> SqlDialect:
    """The dialect object for ``engine``'s database (see :func:`dialect_named`)."""
    return dialect_named(engine.dialect.name)
