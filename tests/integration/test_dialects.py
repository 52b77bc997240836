"""Every SQL gatherer on every tested database, through the dialect object (issue 17, part 6).

Parametrized over PostgreSQL, SQLite, MariaDB/MySQL and DuckDB on the same rows: the pushed-down
drift profile equals the in-memory one (NULLs, NaN and +-inf where the database stores them,
decimals, categories), the baseline built in the database equals the one built in memory from the
same rows, the performance label-join summary equals the in-memory reference and the in-worker join,
the service-health metrics equal numpy, freshness and schema reads work, and the results store works
on MariaDB. MariaDB skips with the reason when its server or PyMySQL is missing (fails under
``CI=true``, like PostgreSQL); DuckDB skips when ``duckdb_engine`` is missing. Redshift has no server
here: its statements are compiled with ``sqlalchemy-redshift`` and checked for constructs it lacks.
MariaDB tables live in a database of their own per test (``w3_<hex>``); others use a fresh schema or
file.
"""

from __future__ import annotations

import importlib.util
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.performance_settings import DuplicateLabels
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.types import LogicalType, TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.dialect import DuckdbDialect, MysqlDialect, dialect_for
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.sources.drift_sql import profile_sql, profile_sql_segments
from airflow_mlobs.sources.freshness_sql import newest_timestamp
from airflow_mlobs.sources.health_sql import HealthSource, gather_health
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource, performance_summary_sql
from airflow_mlobs.sources.sqlkit import catalog_columns
from tests.integration import test_health_sql as health
from tests.integration.test_drift_pushdown import (
    BERLIN,
    CATEGORICAL,
    KINDS,
    NUMERIC,
    TYPES,
    WINDOW_END,
    WINDOW_START,
    Database,
    assert_same_profile,
    in_window,
    reference_baseline,
    sample_frame,
)
from tests.integration.test_performance_join import _assert_same
from tests.integration.test_performance_sql import RULES, WINDOW, _data, _reference

#: A timestamp column type with microseconds everywhere: MySQL's DATETIME keeps whole seconds
#: unless given a fractional precision (and MySQL rounds, so a value 0.3 s before a bound moves).
TIMESTAMP = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
NAIVE_TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
DB_TYPES = {**TYPES, "ts": TIMESTAMP, "ts_local": NAIVE_TIMESTAMP}

DATABASES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    "mariadb",
    "duckdb",
]


@dataclass
class Db(Database):
    """A test database: an engine, its schema (None: the engine's default) and what it stores."""

    #: Whether a DOUBLE column stores NaN and +-infinity (MySQL's does not: it refuses them).
    stores_non_finite: bool = True
    kind: str = ""

    def clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` as this database can store it: +-inf become NULL where it has none (NaN is
        loaded as NULL everywhere, as in the existing pushdown tests)."""
        if self.stores_non_finite:
            return frame
        frame = frame.copy()
        frame["f_float"] = frame["f_float"].replace([np.inf, -np.inf], np.nan)
        return frame

    def load(self, name: str, frame: pd.DataFrame, types: dict[str, Any] | None = None) -> None:
        super().load(name, frame, {**DB_TYPES, **(types or {})})


@pytest.fixture
def mariadb(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """An engine on a fresh MariaDB/MySQL database ``w3_<hex>``, dropped afterwards."""
    server = request.getfixturevalue("mysql_engine")
    name = f"w3_{uuid.uuid4().hex[:10]}"
    with server.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    engine = sa.create_engine(server.url.set(database=name))
    yield engine
    engine.dispose()
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE `{name}`"))


def _duckdb_engine(path: Path) -> sa.Engine:
    if importlib.util.find_spec("duckdb_engine") is None:
        pytest.skip("duckdb_engine is not installed (pip install airflow-mlobs[duckdb])")
    return sa.create_engine(f"duckdb:///{path}")


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    kind = request.param
    if kind == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'w3.db'}")
        yield Db(engine, None, kind=kind)
        engine.dispose()
    elif kind == "postgresql":
        yield Db(request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema"), kind=kind)
    elif kind == "mariadb":
        yield Db(request.getfixturevalue("mariadb"), None, stores_non_finite=False, kind=kind)
    else:
        engine = _duckdb_engine(tmp_path / "w3.duckdb")
        yield Db(engine, None, kind=kind)
        engine.dispose()


# --- drift -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_column", "zone"),
    [pytest.param("ts", UTC, id="ts-utc"), pytest.param("ts_local", BERLIN, id="naive")],
)
def test_drift_profile_equals_in_memory(db: Db, ts_column: str, zone: tzinfo) -> None:
    frame = db.clean(sample_frame(4_000, seed=7))
    db.load("w3_features", frame)
    specs = list(reference_baseline().columns.values())
    profile, _ = profile_sql(
        db.engine,
        specs,
        table=db.ref("w3_features"),
        timestamp_column=ts_column,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        naive_zone=zone,
    )
    rows = in_window(frame, WINDOW_START, WINDOW_END)
    expected = profile_frame(rows, specs, window_start=WINDOW_START, window_end=WINDOW_END)
    assert 1000 < expected.row_count < len(frame)
    assert_same_profile(profile, expected)
    f_float = profile.columns["f_float"]
    assert f_float.nulls > 0  # type: ignore[union-attr]
    assert (f_float.non_finite > 0) is db.stores_non_finite  # type: ignore[union-attr]
    assert profile.columns["f_dec"].count > 0  # type: ignore[union-attr]
    assert profile.columns["cat_text"].nulls > 0  # type: ignore[union-attr]


def test_baseline_built_in_the_database_equals_in_memory(db: Db) -> None:
    frame = db.clean(sample_frame(3_000, seed=9))
    db.load("w3_features", frame)
    columns = list(NUMERIC + CATEGORICAL)
    built = build_baseline_sql(
        db.engine, name="b", version="v1", table=db.ref("w3_features"), columns=columns
    )
    memory = build_baseline(
        frame, name="b", version="v1", columns=columns, kinds={c: KINDS[c] for c in columns}
    )
    for name in columns:
        got, want = built.columns[name], memory.columns[name]
        assert got.kind == want.kind, name
        assert got.edges == pytest.approx(want.edges, rel=1e-12), name
        assert got.categories == want.categories, name
    # The in-memory reference counts unseen categories (none: the categories are its own); the
    # database's leaves them unknown, as the comparison only needs them for a current profile.
    reference = replace(
        memory.reference,
        columns={
            n: replace(c, unseen=built.reference.columns[n].unseen) if c.kind == "categorical" else c
            for n, c in memory.reference.columns.items()
        },
    )
    assert_same_profile(built.reference, reference)


# --- performance -------------------------------------------------------------------------------------


def _load_performance(engine: sa.Engine, schema: str | None, data: dict[str, Any]) -> None:
    meta = sa.MetaData(schema=schema)
    preds = sa.Table(
        "w3_predictions",
        meta,
        sa.Column("prediction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("predicted_at", TIMESTAMP),
        sa.Column("predicted_class", sa.Integer),
        sa.Column("score", sa.Double),
        sa.Column("model_version", sa.Text),
        sa.Column("segment", sa.Text),
    )
    labels = sa.Table(
        "w3_labels",
        meta,
        sa.Column("prediction_id", sa.BigInteger),
        sa.Column("label", sa.Integer),
        sa.Column("labelled_at", TIMESTAMP),
    )
    meta.create_all(engine)
    naive = engine.dialect.name in ("sqlite", "mysql", "mariadb")

    def moment(t: datetime) -> datetime:
        return t.astimezone(UTC).replace(tzinfo=None) if naive else t

    with engine.begin() as conn:
        conn.execute(
            preds.insert(),
            [
                {
                    "prediction_id": int(i),
                    "predicted_at": moment(t),
                    "predicted_class": c.item() if isinstance(c, np.generic) else c,
                    "score": None if math.isnan(s) else float(s),
                    "model_version": "v1",
                    "segment": str(g),
                }
                for i, t, c, s, g in zip(
                    data["ids"], data["times"], data["predicted"], data["score"], data["segment"], strict=True
                )
            ],
        )
        conn.execute(
            labels.insert(),
            [
                {"prediction_id": int(i), "label": y if y is None else int(y), "labelled_at": moment(t)}
                for i, y, t in zip(data["label_ids"], data["label_values"], data["label_times"], strict=True)
            ],
        )


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_performance_summary_equals_in_memory(db: Db, duplicate_labels: DuplicateLabels) -> None:
    data = _data(np.random.default_rng(11), n=2000)
    _load_performance(db.engine, db.schema, data)
    source = PerformanceSource(
        predictions=TableRef("w3_predictions", db.schema),
        labels=TableRef("w3_labels", db.schema),
        id_column="prediction_id",
        prediction_time_column="predicted_at",
        label_column="label",
        label_time_column="labelled_at",
        score_column="score",
        predicted_column="predicted_class",
    )
    query = PerformanceQuery(source, WINDOW, duplicate_labels=duplicate_labels)
    want = _reference(data, duplicate_labels=duplicate_labels)
    pushed, _, _ = performance_summary_sql(db.engine, query)
    _assert_same(pushed, want)
    joined, _, _ = performance_summary_join(db.engine, db.engine, query, chunksize=500)
    _assert_same(joined, want)
    assert pushed.coverage.duplicate > 0 and pushed.coverage.late > 0  # type: ignore[attr-defined]


# --- service health ----------------------------------------------------------------------------------


def _load_requests(db: Db, rows: list[dict[str, Any]]) -> None:
    table = sa.Table(
        "w3_requests",
        sa.MetaData(schema=db.schema),
        sa.Column("ts", TIMESTAMP),
        sa.Column("latency_ms", sa.Double),
        sa.Column("latency_s", sa.Double),
        sa.Column("status", sa.Integer),
        sa.Column("failed", sa.Boolean),
        sa.Column("segment", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("note", sa.Text),
    )
    table.create(db.engine)
    naive = db.engine.dialect.name in ("sqlite", "mysql", "mariadb")
    stored = [{**r, "ts": r["ts"].astimezone(UTC).replace(tzinfo=None) if naive else r["ts"]} for r in rows]
    with db.engine.begin() as conn:
        conn.execute(table.insert(), stored)


def test_service_health_equals_numpy(db: Db) -> None:
    rows = health.request_log(3000, seed=7)
    _load_requests(db, rows)
    source = HealthSource(
        timestamp_column="ts",
        latency_column="latency_ms",
        table=db.ref("w3_requests"),
        error_column="status",
    )
    observation, _ = gather_health(db.engine, source, start=health.START, end=health.END)
    health.assert_matches(observation.current, health.expected(rows, health.START, health.END))


# --- freshness, schema, results store ----------------------------------------------------------------


def test_freshness_and_schema(db: Db) -> None:
    frame = db.clean(sample_frame(500, seed=3))
    db.load("w3_features", frame)
    newest = newest_timestamp(
        db.engine,
        column="ts",
        as_of=datetime(2030, 1, 1, tzinfo=UTC),
        naive_zone=UTC,
        table=db.ref("w3_features"),
    )
    want = frame["ts"].max().to_pydatetime()
    got = newest.newest
    assert got is not None and got.astimezone(UTC) == want, newest
    assert newest.rows_after_as_of in (None, 0)
    logical = {info.name: info.logical_type for info, _ in catalog_columns(db.engine, db.ref("w3_features"))}
    assert logical["f_float"] is LogicalType.FLOAT
    assert logical["f_dec"] is LogicalType.DECIMAL
    assert logical["f_int"] is LogicalType.INTEGER
    assert logical["cat_text"] is LogicalType.STRING
    assert logical["ts"] is LogicalType.TIMESTAMP


def test_results_store_on_mariadb(mariadb: sa.Engine) -> None:
    from airflow_mlobs.store import ResultsStore, RunKey

    store = ResultsStore(mariadb)
    store.ensure_table()
    day = datetime(2024, 5, 1, tzinfo=UTC)
    result = CheckResult(
        check="schema",
        dataset="w3:features",
        status=Status.WARN,
        summary="one column missing",
        window_start=day,
        window_end=day + timedelta(days=1),
        metrics={"missing": ["age"], "ratio": 0.5},
    )
    run = RunKey(dag_id="d", task_id="t", run_id="r1")
    first = store.save(result, run)
    again = store.save(replace(result, status=Status.FAIL), run)  # the same run: replaced, not added
    assert first == again
    with mariadb.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, check_name FROM mlobs_check_results")).all()
    assert [tuple(r) for r in rows] == [("fail", "schema")]


def test_results_store_history_on_mariadb(mariadb: sa.Engine) -> None:
    from airflow_mlobs.store import ResultsStore, RunKey

    store = ResultsStore(mariadb)
    store.ensure_table()
    day = datetime(2024, 5, 1, tzinfo=UTC)
    result = CheckResult(
        check="schema",
        dataset="w3:features",
        status=Status.PASS,
        summary="ok",
        window_start=day,
        window_end=day,
    )
    store.save(result, RunKey(dag_id="d", task_id="t", run_id="r1"))
    assert len(store.history("schema", "w3:features")) == 1


# --- an unsupported construct is a clear error naming the dialect --------------------------------------


class _FilterMysql(MysqlDialect):
    """MySQL wrongly assumed to take ``FILTER (WHERE ...)``: what every dialect without a class met."""

    supports_aggregate_filter: ClassVar[bool] = True


def test_a_syntax_error_names_the_dialect(mariadb: sa.Engine) -> None:
    db = Db(mariadb, None, stores_non_finite=False)
    db.load("w3_features", db.clean(sample_frame(200, seed=1)))
    with pytest.raises(SourceError) as raised:
        build_baseline_sql(
            mariadb,
            name="b",
            version="v1",
            table=db.ref("w3_features"),
            columns=["f_float"],
            dialect=_FilterMysql(),
        )
    message = str(raised.value)
    assert "'mysql'" in message and "syntax" in message and "w3_features" in message, message


def test_dialect_objects() -> None:
    engine = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/test")
    assert isinstance(dialect_for(engine), MysqlDialect)
    assert isinstance(
        dialect_for(sa.create_engine("mariadb+pymysql://root@127.0.0.1:3306/test")), MysqlDialect
    )
    if importlib.util.find_spec("duckdb_engine") is not None:
        assert isinstance(dialect_for(sa.create_engine("duckdb:///:memory:")), DuckdbDialect)
    x = sa.column("x")
    compiled = str(MysqlDialect().filtered(sa.func.count, None, x > 1).compile(dialect=engine.dialect))
    assert "FILTER" not in compiled and "CASE WHEN" in compiled and compiled.startswith("count(")
    from sqlalchemy.dialects import postgresql

    from airflow_mlobs.sources.dialect import PostgresDialect

    native = str(PostgresDialect().filtered(sa.func.sum, x, x > 1).compile(dialect=postgresql.dialect()))
    assert native.startswith("sum(x) FILTER (WHERE x > ")  # PostgreSQL's statements are unchanged


# --- Redshift: compiled statements only ------------------------------------------------------------

#: Constructs Redshift lacks, each with its source (AWS Redshift Database Developer Guide):
#: aggregate ``FILTER (WHERE ...)`` is not in Redshift's aggregate syntax ("Aggregate functions",
#: r_Aggregate_Functions.html: ``aggregate(expression)`` only; the portable ``CASE`` form is used);
#: arrays (``ARRAY[...]``, ``numeric[]``: "Unsupported PostgreSQL features", c_unsupported-postgresql-features.html
#: lists arrays) and so the array form of ``width_bucket`` (Redshift's WIDTH_BUCKET takes scalar
#: bounds only); ``SAVEPOINT`` (same list); ``clock_timestamp()`` (not among Redshift's date
#: functions). Supported and allowed: ``ORDER BY ... NULLS LAST`` (ORDER BY clause), ``ROW_NUMBER()
#: OVER``, ``COUNT(...) OVER (PARTITION BY ...)``, ``CASE``, ``LN``, ``CAST(... AS FLOAT)``
#: (FLOAT is FLOAT8 there); ``PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)`` exists
#: (r_PERCENTILE_CONT.html) but the generic ranked percentiles are used. "NULLS clause in Window
#: functions" is unsupported (c_unsupported-postgresql-features.html), and NULL sorts first in
#: DESC (r_ORDER_BY_clause.html): what RedshiftDialect changes; the NULLS clause is banned here.
REDSHIFT_LACKS = (
    "FILTER (WHERE",
    "ARRAY[",
    "[]",
    "SAVEPOINT",
    "clock_timestamp",
    "GROUPING SETS",
    "NULLS LAST",
    "NULLS FIRST",
)


@pytest.mark.postgres
def test_redshift_statements_compile_without_constructs_it_lacks(
    pg_engine: sa.Engine, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check's statements, as the engine of a ``redshift`` URL would build them (the generic
    dialect object), run on PostgreSQL (Redshift's ancestor: the same catalog types) and compiled
    with sqlalchemy-redshift's dialect: none holds a construct Redshift lacks."""
    redshift_module = pytest.importorskip("sqlalchemy_redshift.dialect")
    from airflow_mlobs.sources import performance_sql
    from airflow_mlobs.sources.dialect import dialect_named

    redshift = redshift_module.RedshiftDialect_psycopg2()
    generic = dialect_named("redshift")
    assert type(generic).__name__ == "RedshiftDialect"
    db = Db(pg_engine, pg_schema, kind="postgresql")
    frame = sample_frame(1_000, seed=5)
    db.load("w3_features", frame)
    _load_performance(pg_engine, pg_schema, _data(np.random.default_rng(3), n=300))
    _load_requests(db, health.request_log(300, seed=3))

    statements: list[sa.ClauseElement] = []

    def record(conn: Any, clause: Any, *args: Any) -> None:
        if isinstance(clause, sa.sql.Select | sa.sql.CompoundSelect):
            statements.append(clause)

    sa.event.listen(pg_engine, "before_execute", record)
    try:
        specs = list(reference_baseline().columns.values())
        profile_sql(
            pg_engine,
            specs,
            table=db.ref("w3_features"),
            timestamp_column="ts",
            window_start=WINDOW_START,
            window_end=WINDOW_END,
            naive_zone=UTC,
            dialect=generic,
        )
        build_baseline_sql(
            pg_engine,
            name="b",
            version="v1",
            table=db.ref("w3_features"),
            columns=list(NUMERIC + CATEGORICAL),
            dialect=generic,
        )
        source = HealthSource(
            timestamp_column="ts",
            latency_column="latency_ms",
            table=db.ref("w3_requests"),
            error_column="status",
        )
        gather_health(pg_engine, source, start=health.START, end=health.END, dialect=generic)
        monkeypatch.setattr(performance_sql, "dialect_for", lambda engine: generic)
        perf = PerformanceSource(
            predictions=TableRef("w3_predictions", pg_schema),
            labels=TableRef("w3_labels", pg_schema),
            id_column="prediction_id",
            prediction_time_column="predicted_at",
            label_column="label",
            label_time_column="labelled_at",
            score_column="score",
            predicted_column="predicted_class",
        )
        for rule in RULES:
            performance_summary_sql(pg_engine, PerformanceQuery(perf, WINDOW, duplicate_labels=rule))
    finally:
        sa.event.remove(pg_engine, "before_execute", record)
    assert len(statements) >= 6
    # The catalog reads are SQLAlchemy's inspector's (sqlalchemy-redshift reflects in its own way).
    compiled = [
        text
        for text in (str(statement.compile(dialect=redshift)) for statement in statements)
        if "pg_catalog" not in text
    ]
    joined = "\n".join(compiled)
    assert "CASE WHEN" in joined and "row_number() OVER" in joined
    for text in compiled:
        for construct in REDSHIFT_LACKS:
            assert construct not in text, (construct, text[:400])


@pytest.mark.parametrize("source", ["table", "query"])
def test_drift_segments_and_query_source_equal_in_memory(db: Db, source: str) -> None:
    """One profile per segment (``model_version``), from a table or a ``sql=`` query, equal to the
    in-memory profile of that segment's rows."""
    frame = db.clean(sample_frame(3_000, seed=5))
    db.load("w3_features", frame)
    specs = list(reference_baseline().columns.values())
    name = f"{db.schema}.w3_features" if db.schema else "w3_features"
    where: dict[str, Any] = (
        {"table": db.ref("w3_features")} if source == "table" else {"sql": f"SELECT * FROM {name}"}
    )
    profiles, _ = profile_sql_segments(
        db.engine,
        specs,
        **where,
        timestamp_column="ts",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        segment_column="model_version",
    )
    assert set(profiles) == {"v1", "v2", "v3"}
    rows = in_window(frame, WINDOW_START, WINDOW_END)
    for key, profile in profiles.items():
        part = rows[rows["model_version"] == key]
        assert_same_profile(
            profile, profile_frame(part, specs, window_start=WINDOW_START, window_end=WINDOW_END)
        )


class _PercentileMysql(MysqlDialect):
    """MySQL wrongly assumed to have the ``percentile_cont ... WITHIN GROUP`` aggregate."""

    has_percentile_cont: ClassVar[bool] = True


def test_a_syntax_error_in_the_health_statement_names_the_dialect(mariadb: sa.Engine) -> None:
    db = Db(mariadb, None, stores_non_finite=False)
    _load_requests(db, health.request_log(50, seed=2))
    source = HealthSource(
        timestamp_column="ts", latency_column="latency_ms", table=db.ref("w3_requests"), error_column="status"
    )
    with pytest.raises(SourceError, match=r"dialect 'mysql'.*syntax") as raised:
        gather_health(mariadb, source, start=health.START, end=health.END, dialect=_PercentileMysql())
    assert "w3_requests" in str(raised.value)


def test_empty_window_profile_equals_in_memory(db: Db) -> None:
    """Degenerate input: a window without rows profiles to zero counts, as in memory, not an error."""
    frame = db.clean(sample_frame(300, seed=4))
    db.load("w3_features", frame)
    specs = list(reference_baseline().columns.values())
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
    profile, _ = profile_sql(
        db.engine,
        specs,
        table=db.ref("w3_features"),
        timestamp_column="ts",
        window_start=start,
        window_end=end,
    )
    assert profile.row_count == 0
    assert_same_profile(profile, profile_frame(frame.iloc[:0], specs, window_start=start, window_end=end))


# --- fairness, attribution and joint drift: the statements of issue 15 on every database ----------


def test_fairness_summary_equals_in_memory_and_fairlearn(db: Db) -> None:
    from tests.integration.test_fairness_sql import _check, _data, _load

    data = _data()
    _load(db.engine, db.schema, data)
    _check(db.engine, db.schema, data)


def test_attribution_sums_equal_in_memory(db: Db) -> None:
    from airflow_mlobs.recorder.layout import attribution_column
    from tests.integration.test_attribution_sql import assert_equal_to_memory, write
    from tests.unit.test_attribution import linear_model_log

    frame, _ = linear_model_log(n=400)
    frame.loc[5, attribution_column("x2")] = None
    write(db.engine, frame, db.schema)
    table = f"{db.schema}.mlobs_prediction_log" if db.schema else "mlobs_prediction_log"
    assert_equal_to_memory(db.engine, frame, table)


def test_covariance_profile_equals_numpy(db: Db) -> None:
    from tests.integration.test_covariance_sql import _check

    _check(db.engine, db.schema)
