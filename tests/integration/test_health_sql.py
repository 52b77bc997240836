"""The service-health gatherer against numpy, on SQLite and PostgreSQL, on the same rows.

Percentiles must equal ``numpy.percentile(method="linear")`` (= ``percentile_cont``), counts be
exact, and only aggregate rows cross the wire (counted independently with a cursor event).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.health_frame import gather_health_frame
from airflow_mlobs.sources.health_sql import HealthSource, gather_health, statements_for
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.health import HealthSpec

T0 = datetime(2024, 3, 1, tzinfo=UTC)
START = T0 + timedelta(days=1)
END = T0 + timedelta(days=2)


@dataclass
class Database:
    engine: sa.Engine
    schema: str | None
    url: str

    def ref(self, name: str) -> TableRef:
        return TableRef(name, self.schema)

    def qualified(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'h1_health.db'}"
        engine = sa.create_engine(url)
        yield Database(engine, None, url)
        engine.dispose()
        return
    pg_engine = request.getfixturevalue("pg_engine")
    schema = f"h1_health_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield Database(pg_engine, schema, pg_engine.url.render_as_string(hide_password=False))
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def request_log(n: int, seed: int, *, slow_from: datetime | None = None) -> list[dict[str, Any]]:
    """Requests over three days: lognormal latencies (seconds column too), 5% NULL latencies,
    statuses with ~3% 5xx, two segments, two model versions; after ``slow_from`` segment ``us``
    on ``v2`` is 7x slower with 30% errors."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 3 * 86400, n)
    rows = []
    for i in range(n):
        ts = T0 + timedelta(seconds=int(seconds[i]), microseconds=int(rng.integers(0, 10**6)))
        latency = float(rng.lognormal(4.5, 0.4))
        status = int(rng.choice([200, 404, 500, 503], p=[0.93, 0.04, 0.02, 0.01]))
        segment = "us" if rng.random() < 0.3 else "eu"
        version = "v2" if rng.random() < 0.5 else "v1"
        if slow_from is not None and ts >= slow_from and segment == "us" and version == "v2":
            latency *= 7
            status = 500 if rng.random() < 0.3 else status
        rows.append(
            {
                "ts": ts,
                "latency_ms": None if rng.random() < 0.05 else latency,
                "latency_s": latency / 1000,
                "status": status,
                "failed": status >= 500,
                "segment": segment,
                "version": version,
            }
        )
    # Exactly on the bounds: START is in, END is out.
    rows[0]["ts"], rows[1]["ts"] = START, END
    return rows


def load(db: Database, rows: list[dict[str, Any]], name: str = "h1_requests") -> sa.Table:
    table = sa.Table(
        name,
        sa.MetaData(schema=db.schema),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("latency_s", sa.Float),
        sa.Column("status", sa.Integer),
        sa.Column("failed", sa.Boolean),
        sa.Column("segment", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("note", sa.Text),
    )
    table.create(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return table


def expected(rows: list[dict[str, Any]], start: datetime, end: datetime, **match: Any) -> dict[str, Any]:
    chosen = [r for r in rows if start <= r["ts"] < end and all(r[k] == v for k, v in match.items())]
    lat = np.array([r["latency_ms"] for r in chosen if r["latency_ms"] is not None])
    return {
        "requests": len(chosen),
        "errors": sum(r["status"] >= 500 for r in chosen),
        "latency": lat,
    }


class RowCounter:
    """Counts the statements the gatherer ran and the rows they return, independently of it: each
    statement is captured with its parameters as sent to the driver, and run again on a raw DBAPI
    cursor, whose rows are counted."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.captured: list[tuple[str, Any]] = []
        sa.event.listen(engine, "after_cursor_execute", self.executed)

    def executed(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "mlobs_health" in statement:
            self.captured.append((statement, parameters))

    def close(self) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self.executed)

    @property
    def statements(self) -> int:
        return len(self.captured)

    @property
    def rows(self) -> int:
        raw = self.engine.raw_connection()
        try:
            total = 0
            for statement, parameters in self.captured:
                cursor = raw.cursor()
                cursor.execute(statement, parameters)
                total += len(cursor.fetchall())
                cursor.close()
            return total
        finally:
            raw.close()


def source(db: Database, **kwargs: Any) -> HealthSource:
    values: dict[str, Any] = {
        "timestamp_column": "ts",
        "latency_column": "latency_ms",
        "table": db.ref("h1_requests"),
        "error_column": "status",
    }
    values.update(kwargs)
    return HealthSource(**values)


def assert_matches(summary: Any, exp: dict[str, Any]) -> None:
    lat = exp["latency"]
    assert summary.requests == exp["requests"]
    assert summary.errors == exp["errors"]
    assert summary.latency_count == len(lat)
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        assert getattr(summary, name) == pytest.approx(
            float(np.percentile(lat, q, method="linear")), rel=1e-12
        )
    assert summary.latency_mean_ms == pytest.approx(float(lat.mean()), rel=1e-12)
    assert summary.max_ms == float(lat.max())


def test_window_equals_numpy_and_only_aggregates_cross(db: Database) -> None:
    rows = request_log(3000, seed=7)
    load(db, rows)
    counter = RowCounter(db.engine)
    try:
        observation, stats = gather_health(db.engine, source(db), start=START, end=END)
    finally:
        counter.close()
    assert_matches(observation.current, expected(rows, START, END))
    assert stats.statements == counter.statements == 1
    assert stats.rows_fetched == counter.rows == 1  # ~1,000 requests in the window, one row fetched
    minutes: dict[datetime, int] = {}
    for r in rows:
        if START <= r["ts"] < END:
            key = r["ts"].replace(second=0, microsecond=0)
            minutes[key] = minutes.get(key, 0) + 1
    assert observation.current.peak_per_minute == max(minutes.values())
    assert observation.current.throughput_per_min == pytest.approx(
        expected(rows, START, END)["requests"] / 1440
    )


@pytest.mark.parametrize("n", [1, 2, 3, 20, 21])
def test_small_windows_are_exact(db: Database, n: int) -> None:
    rows = request_log(400, seed=n)
    inside = [r for r in rows if START <= r["ts"] < END and r["latency_ms"] is not None][:n]
    keep = {id(r) for r in inside}
    rows = [r for r in rows if id(r) in keep]
    load(db, rows)
    observation, _ = gather_health(db.engine, source(db), start=START, end=END)
    assert_matches(observation.current, expected(rows, START, END))


def test_seconds_boolean_errors_groups_reference_and_burn(db: Database) -> None:
    slow_from = START + timedelta(hours=12)
    rows = request_log(4000, seed=11, slow_from=slow_from)
    load(db, rows)
    src = source(
        db,
        latency_column="latency_s",
        latency_unit="s",
        error_column="failed",
        segment_column="segment",
        model_version_column="version",
    )
    counter = RowCounter(db.engine)
    try:
        observation, stats = gather_health(
            db.engine, src, start=slow_from, end=END, reference=(T0, START), burn=True, slo_latency_ms=300
        )
    finally:
        counter.close()
    assert stats.statements == counter.statements == statements_for(src, reference=True) == 6
    assert stats.rows_fetched == counter.rows == 2 + 2 * 2 + 2 * 2
    current = observation.current
    exp = expected(rows, slow_from, END)
    assert current.requests == exp["requests"] and current.errors == exp["errors"]
    all_lat = np.array([r["latency_s"] * 1000 for r in rows if slow_from <= r["ts"] < END])
    assert current.p95_ms == pytest.approx(float(np.percentile(all_lat, 95)), rel=1e-12)
    us = next(g for g in observation.segments if g.value == "us")
    us_lat = np.array(
        [r["latency_s"] * 1000 for r in rows if slow_from <= r["ts"] < END and r["segment"] == "us"]
    )
    assert us.current.p95_ms == pytest.approx(float(np.percentile(us_lat, 95)), rel=1e-12)
    assert (
        us.reference is not None
        and us.reference.requests == expected(rows, T0, START, segment="us")["requests"]
    )
    one_hour = [r for r in rows if END - timedelta(hours=1) <= r["ts"] < END]
    burn_1h = next(b for b in observation.burn if b.minutes == 60)
    assert burn_1h.requests == len(one_hour)
    assert burn_1h.errors == sum(r["status"] >= 500 for r in one_hour)
    assert burn_1h.slow == sum(r["latency_s"] * 1000 > 300 for r in one_hour)
    six = next(b for b in observation.burn if b.minutes == 360)
    assert six.requests == sum(END - timedelta(hours=6) <= r["ts"] < END for r in rows)

    spec = HealthSpec(
        conn_id=db.url,
        table=str(db.ref("h1_requests")),
        timestamp_column="ts",
        latency_column="latency_s",
        latency_unit="s",
        error_column="failed",
        segment_column="segment",
        model_version_column="version",
        reference_window=(T0.isoformat(), START.isoformat()),
        min_requests=50,
    )
    result = spec.evaluate(window_start=slow_from, window_end=END, connect=url_connected)
    assert result.status is Status.FAIL
    assert result.metrics["worst_segment_p95"]["value"] == "us"
    assert result.metrics["worst_model_version_errors"]["value"] == "v2"
    assert result.metrics["latency_unit"] == "s"
    assert result.metrics["error_rule"] == "failed is true"
    result.to_json()


def test_degenerate_windows(db: Database) -> None:
    rows = request_log(200, seed=3)
    for r in rows:
        r["latency_ms"] = None
    load(db, rows)
    empty, _ = gather_health(
        db.engine, source(db), start=END + timedelta(days=5), end=END + timedelta(days=6)
    )
    assert empty.current.requests == 0 and empty.current.p95_ms is None and empty.current.peak_per_minute == 0
    nulls, _ = gather_health(db.engine, source(db), start=T0, end=END)
    assert nulls.current.requests > 0 and nulls.current.latency_count == 0 and nulls.current.p95_ms is None
    spec = HealthSpec(
        conn_id=db.url,
        table=str(db.ref("h1_requests")),
        timestamp_column="ts",
        latency_column="latency_ms",
        error_column="status",
        baseline={"p95_ms": 120},
    )
    result = spec.evaluate(window_start=T0, window_end=END, connect=url_connected)
    latency = next(f for f in result.findings if f.metric == "p95_ratio")
    assert latency.status is Status.SKIPPED and "has a latency" in latency.reason
    assert result.status is Status.PASS  # the error rate is still judged (3% of 5xx)
    result.to_json()
    empty_result = spec.evaluate(
        window_start=END + timedelta(days=5), window_end=END + timedelta(days=6), connect=url_connected
    )
    assert empty_result.status is Status.SKIPPED and empty_result.summary.endswith(
        "no requests in the window"
    )


def test_error_statuses_and_version_filter(db: Database) -> None:
    rows = request_log(1500, seed=5)
    load(db, rows)
    src = source(db, error_statuses=(404, 503), model_version_column="version", model_version="v1")
    observation, stats = gather_health(db.engine, src, start=START, end=END)
    chosen = [r for r in rows if START <= r["ts"] < END and r["version"] == "v1"]
    assert observation.current.requests == len(chosen)
    assert observation.current.errors == sum(r["status"] in (404, 503) for r in chosen)
    assert stats.statements == 1 and observation.versions == ()


def test_query_source(db: Database) -> None:
    rows = request_log(800, seed=9)
    load(db, rows)
    src = HealthSource(
        timestamp_column="ts",
        latency_column="latency_ms",
        sql=f"SELECT ts, latency_ms, status FROM {db.qualified('h1_requests')} WHERE status <> 404",
        error_column="status",
    )
    observation, _ = gather_health(db.engine, src, start=START, end=END)
    kept = [r for r in rows if r["status"] != 404]
    assert_matches(observation.current, expected(kept, START, END))


def test_bad_input_names_table_and_column(db: Database) -> None:
    load(db, request_log(50, seed=1))
    with pytest.raises(SourceError, match=r"latency_column 'nope' not found in table .*h1_requests"):
        gather_health(db.engine, source(db, latency_column="nope"), start=START, end=END)
    with pytest.raises(
        SourceError, match=r"latency_column 'note' of table .*h1_requests is TEXT, not a number"
    ):
        gather_health(db.engine, source(db, latency_column="note"), start=START, end=END)
    with pytest.raises(SourceError, match=r"missing_log"):
        gather_health(db.engine, source(db, table=db.ref("missing_log")), start=START, end=END)
    query = HealthSource(
        timestamp_column="ts",
        latency_column="zzz",
        sql=f"SELECT ts, latency_ms, status FROM {db.qualified('h1_requests')}",
        error_column="status",
    )
    with pytest.raises(SourceError, match=r"query \(columns 'ts', 'zzz', 'status'\)"):
        gather_health(db.engine, query, start=START, end=END)


def assert_same(sql: Any, frame: Any) -> None:
    """Two summaries equal: counts exactly, latencies within 1e-12 relative (sums differ in order)."""
    if sql is None or frame is None:
        assert sql is None and frame is None
        return
    for name in ("requests", "errors", "latency_count", "peak_per_minute", "window_minutes"):
        assert getattr(sql, name) == getattr(frame, name), name
    for name in ("latency_mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        a, b = getattr(sql, name), getattr(frame, name)
        assert (a is None and b is None) or a == pytest.approx(b, rel=1e-12), name


@pytest.mark.parametrize("naive", [False, True])
def test_frame_gatherer_equals_sql(db: Database, naive: bool) -> None:
    slow_from = START + timedelta(hours=12)
    rows = request_log(3000, seed=21, slow_from=slow_from)
    for r in [r for r in rows if slow_from <= r["ts"] < END][:3]:
        r["segment"] = None
    load(db, rows)
    frame = pd.DataFrame(rows)
    if naive:  # naive wall-clock UTC in the frame: read in naive_zone (UTC)
        frame["ts"] = frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    kwargs: dict[str, Any] = {
        "latency_column": "latency_ms",
        "error_column": "status",
        "error_statuses": (500, 503),
        "segment_column": "segment",
        "model_version_column": "version",
    }
    window: dict[str, Any] = {
        "start": slow_from,
        "end": END,
        "reference": (T0, START),
        "burn": True,
        "slo_latency_ms": 250.0,
    }
    sql_obs, _ = gather_health(db.engine, source(db, **kwargs), **window)
    frame_obs = gather_health_frame(frame, source(db, **kwargs), **window)
    assert_same(sql_obs.current, frame_obs.current)
    assert_same(sql_obs.reference, frame_obs.reference)
    assert sql_obs.burn == frame_obs.burn
    assert sql_obs.error_rule == frame_obs.error_rule
    for sql_groups, frame_groups in (
        (sql_obs.segments, frame_obs.segments),
        (sql_obs.versions, frame_obs.versions),
    ):
        assert [g.value for g in sql_groups] == [g.value for g in frame_groups]
        for a, b in zip(sql_groups, frame_groups, strict=True):
            assert_same(a.current, b.current)
            assert_same(a.reference, b.reference)
    assert "(null)" in [g.value for g in sql_obs.segments]


def test_frame_bad_input() -> None:
    frame = pd.DataFrame({"ts": [START], "latency_ms": ["slow"], "status": [200]})
    src = HealthSource(timestamp_column="ts", latency_column="latency_ms", error_column="status")
    with pytest.raises(
        SourceError, match=r"latency_column 'latency_ms' of the frame is (object|str), not a number"
    ):
        gather_health_frame(frame, src, start=START, end=END)
    with pytest.raises(SourceError, match=r"error_column 'nope' not found in the frame"):
        gather_health_frame(
            frame, HealthSource("ts", "latency_ms", error_column="nope"), start=START, end=END
        )


@pytest.mark.postgres
def test_generic_ranked_percentiles_equal_percentile_cont(pg_engine: sa.Engine, pg_schema: str) -> None:
    """The generic ANSI dialect (ROW_NUMBER ranks, FLOOR, EXTRACT minute keys) run on PostgreSQL
    gives what PostgreSQL's own percentile_cont and date_trunc give, and what numpy gives."""
    from airflow_mlobs.sources.dialect import SqlDialect

    db = Database(pg_engine, pg_schema, "")
    rows = request_log(2500, seed=17)
    load(db, rows)
    src = source(db, segment_column="segment")
    native, _ = gather_health(pg_engine, src, start=START, end=END, burn=True)
    generic, stats = gather_health(pg_engine, src, start=START, end=END, burn=True, dialect=SqlDialect())
    assert stats.statements == 2
    assert_same(native.current, generic.current)
    assert_matches(generic.current, expected(rows, START, END))
    assert native.burn == generic.burn
    for a, b in zip(native.segments, generic.segments, strict=True):
        assert a.value == b.value
        assert_same(a.current, b.current)


def test_text_latency_in_a_query(db: Database) -> None:
    """A query's text column as the latency: PostgreSQL refuses it, naming the query and the
    columns; SQLite stores text anywhere, so its values are not numbers and count as missing."""
    rows = request_log(300, seed=2)
    for r in rows:
        r["note"] = "slow"
    load(db, rows)
    query = HealthSource(
        timestamp_column="ts",
        latency_column="note",
        sql=f"SELECT ts, note, status FROM {db.qualified('h1_requests')}",
        error_column="status",
    )
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(
            SourceError, match=r"service-health query on query \(columns 'ts', 'note', 'status'\) failed"
        ):
            gather_health(db.engine, query, start=START, end=END)
        return
    observation, _ = gather_health(db.engine, query, start=START, end=END)
    assert observation.current.requests > 0 and observation.current.latency_count == 0


def test_naive_timestamps_are_read_in_the_zone(db: Database) -> None:
    """A log whose timestamps are naive Berlin wall-clock time judges the same requests as the
    aware one when ``naive_zone`` says so."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    rows = request_log(1200, seed=4)
    load(db, rows)
    local = [{**r, "ts": r["ts"].astimezone(berlin).replace(tzinfo=None)} for r in rows]
    table = sa.Table(
        "h1_requests_local",
        sa.MetaData(schema=db.schema),
        sa.Column("ts", sa.DateTime()),
        sa.Column("latency_ms", sa.Float),
        sa.Column("status", sa.Integer),
    )
    table.create(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [{k: r[k] for k in ("ts", "latency_ms", "status")} for r in local])
    aware, _ = gather_health(db.engine, source(db), start=START, end=END)
    naive, _ = gather_health(
        db.engine, source(db, table=db.ref("h1_requests_local"), naive_zone=berlin), start=START, end=END
    )
    assert_same(aware.current, naive.current)
    assert naive.current.requests == expected(rows, START, END)["requests"]
