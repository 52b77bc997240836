"""The results store under concurrent writer processes, on PostgreSQL and on a SQLite file.

Each case starts its writers in separate processes (spawn) held behind one barrier, so they hit the
database together: first saves racing on table creation, many distinct keys, one key written by all.
The same cases run through the portable paths (no advisory lock / ``BEGIN IMMEDIATE``, no
``ON CONFLICT``) that other databases get, on the same real databases.
"""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import CategoricalProfile, Profile
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.store import (
    PROFILES_TABLE,
    RESULTS_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    ResultsStore,
    RunKey,
)

WRITERS = 4
FIRST_SAVERS = 6
WRITES = 50
DAY = datetime(2026, 11, 24, tzinfo=UTC)


class PortableStore(ResultsStore):
    """The store as it runs on databases without a native upsert or creation lock."""

    native_upsert = False
    creation_lock = False


def _engine(url: str, schema: str | None) -> sa.Engine:
    if schema is None:
        return sa.create_engine(url)
    return sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})


def _result(summary: str, day: int, writer: int, write: int) -> CheckResult:
    return CheckResult(
        check="drift",
        dataset="warehouse:events",
        status=Status.WARN if write % 2 else Status.PASS,
        summary=summary,
        window_start=DAY + timedelta(days=day),
        window_end=DAY + timedelta(days=day + 1),
        metrics={"writer": writer, "write": write},
    )


def _write_job(
    url: str, schema: str | None, barrier: Any, writer: int, writes: int, same_key: bool, portable: bool
) -> dict[str, Any]:
    """One writer process: build a store (tables untouched), wait for the others, then save."""
    engine = _engine(url, schema)
    store = (PortableStore if portable else ResultsStore)(engine)
    ids: list[int] = []
    errors: list[str] = []
    try:
        barrier.wait(timeout=120)
        for write in range(writes):
            summary = f"w{writer}-{write}"
            if same_key:
                run = RunKey(dag_id="race", task_id="one_key", run_id=summary)
                result = _result(summary, 0, writer, write)
            else:
                run = RunKey(dag_id="race", task_id=f"writer_{writer}", run_id="r")
                result = _result(summary, write, writer, write)
            try:
                ids.append(store.save(result, run))
            except Exception as exc:  # the test reports every failed save, not only the first
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        engine.dispose()
    return {"ids": ids, "errors": errors}


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Pool, Any]]:
    """Writer processes started once for the module (spawned: nothing shared with this process)."""
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    pool = context.Pool(FIRST_SAVERS)
    try:
        yield pool, manager
    finally:
        pool.terminate()
        pool.join()
        manager.shutdown()


def _run(
    workers: tuple[Pool, Any],
    url: str,
    schema: str | None,
    *,
    processes: int,
    writes: int,
    same_key: bool,
    portable: bool = False,
) -> list[dict[str, Any]]:
    pool, manager = workers
    # Each idle pool process takes one job and blocks at the barrier, so all jobs run at once.
    barrier = manager.Barrier(processes)
    jobs = [(url, schema, barrier, n, writes, same_key, portable) for n in range(processes)]
    return pool.starmap(_write_job, jobs, chunksize=1)


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


@pytest.fixture(scope="module")
def pg_url_text(pg_engine: sa.Engine) -> str:
    return pg_engine.url.render_as_string(hide_password=False)


def _fresh_pg_schema(pg_engine: sa.Engine) -> str:
    name = f"mlobs_conc_{uuid.uuid4().hex[:10]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    return name


def _drop_pg_schema(pg_engine: sa.Engine, name: str) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A factory of fresh, empty results databases: ``new() -> (url, schema)``; PostgreSQL schemas
    are dropped afterwards."""
    created: list[str] = []
    if request.param == "postgresql":
        pg_engine: sa.Engine = request.getfixturevalue("pg_engine")
        url = request.getfixturevalue("pg_url_text")

        def new() -> tuple[str, str | None]:
            created.append(_fresh_pg_schema(pg_engine))
            return url, created[-1]

        yield request.param, new
        for name in created:
            _drop_pg_schema(pg_engine, name)
    else:

        def new() -> tuple[str, str | None]:
            path = tmp_path / f"results_{len(created)}.db"
            created.append(str(path))
            return f"sqlite:///{path}", None

        yield request.param, new


def _assert_no_errors(outcomes: list[dict[str, Any]]) -> None:
    errors = [e for o in outcomes for e in o["errors"]]
    assert not errors, f"{len(errors)} saves failed, e.g. {errors[:3]}"


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_first_saves_at_once_on_a_fresh_database(
    workers: tuple[Pool, Any], database: tuple[str, Any], portable: bool
) -> None:
    """Every process's first save creates (or finds) the tables; none fails, every row is stored."""
    _, new = database
    for _round in range(2):
        url, schema = new()
        outcomes = _run(
            workers, url, schema, processes=FIRST_SAVERS, writes=1, same_key=False, portable=portable
        )
        _assert_no_errors(outcomes)
        engine = _engine(url, schema)
        try:
            assert _count(engine, RESULTS_TABLE) == FIRST_SAVERS
            with engine.connect() as conn:
                versions = conn.execute(sa.text(f"SELECT version FROM {SCHEMA_VERSION_TABLE}")).all()
            assert [v for (v,) in versions] == [SCHEMA_VERSION]
            assert "partition" in {c["name"] for c in sa.inspect(engine).get_columns(PROFILES_TABLE)}
        finally:
            engine.dispose()


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_distinct_keys_from_four_processes_all_stored(
    workers: tuple[Pool, Any], database: tuple[str, Any], portable: bool
) -> None:
    """4 processes x 50 saves of distinct keys leave exactly 200 rows, three rounds running (one
    round for the portable path)."""
    _, new = database
    for _round in range(1 if portable else 3):
        url, schema = new()
        ResultsStore(engine := _engine(url, schema)).ensure_table()
        try:
            outcomes = _run(
                workers, url, schema, processes=WRITERS, writes=WRITES, same_key=False, portable=portable
            )
            _assert_no_errors(outcomes)
            ids = [i for o in outcomes for i in o["ids"]]
            assert len(ids) == len(set(ids)) == WRITERS * WRITES
            assert _count(engine, RESULTS_TABLE) == WRITERS * WRITES
            stored = ResultsStore(engine).history(check="drift")
            assert {h.result.summary for h in stored} == {
                f"w{w}-{n}" for w in range(WRITERS) for n in range(WRITES)
            }
        finally:
            engine.dispose()


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_one_key_from_four_processes_leaves_one_whole_row(
    workers: tuple[Pool, Any], database: tuple[str, Any], portable: bool
) -> None:
    """4 processes saving the same task and window leave one row, all of its columns from one save."""
    _, new = database
    url, schema = new()
    engine = _engine(url, schema)
    try:
        outcomes = _run(
            workers, url, schema, processes=WRITERS, writes=WRITES // 2, same_key=True, portable=portable
        )
        _assert_no_errors(outcomes)
        assert _count(engine, RESULTS_TABLE) == 1
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(f"SELECT id, run_id, summary, status, result_json FROM {RESULTS_TABLE}")
            ).one()
        document = json.loads(row.result_json)
        writer, write = document["metrics"]["writer"], document["metrics"]["write"]
        assert row.summary == document["summary"] == row.run_id == f"w{writer}-{write}"
        assert row.status == document["status"] == ("warn" if write % 2 else "pass")
        # The row id save() returned last in some process is the stored one.
        assert row.id in {o["ids"][-1] for o in outcomes}
        (stored,) = ResultsStore(engine).history()
        assert stored.id == row.id and stored.run.run_id == row.run_id
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# Upgrading a version 1 deployment in place
# --------------------------------------------------------------------------------------------------

# The tables exactly as version 1 of the store (before mlobs_schema_version) created them.
_v1 = sa.MetaData()
sa.Table(
    "mlobs_check_results",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_key", sa.String(768), nullable=False, unique=True),
    sa.Column("dag_id", sa.String(250), nullable=True),
    sa.Column("task_id", sa.String(250), nullable=True),
    sa.Column("map_index", sa.Integer, nullable=False, default=-1),
    sa.Column("run_id", sa.String(250), nullable=True),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result_json", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_mlobs_results_dataset_check", "dataset", "check_name", "window_end"),
)
sa.Table(
    "mlobs_profiles",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile_key", sa.String(768), nullable=False, unique=True),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("baseline", sa.String(512), nullable=False),
    sa.Column("edges_key", sa.String(64), nullable=False),
    sa.Column("segment", sa.String(256), nullable=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("profile_json", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_mlobs_profiles_dataset", "dataset", "edges_key", "window_end"),
)
sa.Table(
    "mlobs_alert_state",
    _v1,
    sa.Column("state_key", sa.String(768), primary_key=True),
    sa.Column("channel", sa.String(256), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "mlobs_deliveries",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_key", sa.String(768), nullable=False, index=True),
    sa.Column("channel", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

V1_RUN = RunKey(dag_id="monitoring", task_id="drift", run_id="scheduled__old")


def _v1_profile() -> Profile:
    return Profile(
        row_count=40,
        columns={"amount": CategoricalProfile(nulls=1, counts={"a": 30, "b": 9})},
        edges_key="edges-1",
        window_start=DAY,
        window_end=DAY + timedelta(days=1),
    )


def _make_v1_database(engine: sa.Engine) -> CheckResult:
    """Version 1 tables holding one result, one profile and one alert state, written as v1 wrote them."""
    _v1.create_all(engine)
    result = _result("stored by v1", 0, 0, 0)
    profile = _v1_profile()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            _v1.tables["mlobs_check_results"]
            .insert()
            .values(
                result_key=V1_RUN.key_for(result),
                dag_id=V1_RUN.dag_id,
                task_id=V1_RUN.task_id,
                map_index=-1,
                run_id=V1_RUN.run_id,
                check_name=result.check,
                dataset=result.dataset,
                status=result.status.value,
                summary=result.summary,
                window_start=result.window_start,
                window_end=result.window_end,
                result_json=result.to_json(),
                recorded_at=now,
            )
        )
        conn.execute(
            _v1.tables["mlobs_profiles"]
            .insert()
            .values(
                profile_key=f"warehouse:events|churn/v1|edges-1||{DAY.isoformat()}/"
                f"{(DAY + timedelta(days=1)).isoformat()}",
                dataset="warehouse:events",
                baseline="churn/v1",
                edges_key="edges-1",
                segment=None,
                window_start=DAY,
                window_end=DAY + timedelta(days=1),
                row_count=profile.row_count,
                profile_json=profile.to_json(),
                recorded_at=now,
            )
        )
        conn.execute(
            _v1.tables["mlobs_alert_state"]
            .insert()
            .values(
                state_key="slack|drift|warehouse:events",
                channel="slack",
                check_name="drift",
                dataset="warehouse:events",
                state_json=json.dumps({"open": True}),
                updated_at=now,
            )
        )
    return result


def test_v1_tables_upgrade_in_place_under_concurrent_first_saves(
    workers: tuple[Pool, Any], database: tuple[str, Any]
) -> None:
    """Six processes meet a version 1 deployment at once: one upgrades it (ALTER TABLE under the
    lock), every save succeeds, and what v1 stored still reads back and is still replaced by key."""
    _, new = database
    url, schema = new()
    engine = _engine(url, schema)
    try:
        old_result = _make_v1_database(engine)
        assert ResultsStore(engine).schema_version() == 1
        outcomes = _run(workers, url, schema, processes=FIRST_SAVERS, writes=3, same_key=False)
        _assert_no_errors(outcomes)

        store = ResultsStore(engine)
        assert store.schema_version() == SCHEMA_VERSION
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {SCHEMA_VERSION_TABLE}")).scalar_one() == 1
        inspector = sa.inspect(engine)
        partition = {c["name"]: c for c in inspector.get_columns(PROFILES_TABLE)}["partition"]
        assert partition["nullable"]
        assert "ix_mlobs_results_check_window" in {i["name"] for i in inspector.get_indexes(RESULTS_TABLE)}

        # The v1 rows read back; the new ones were added beside them.
        stored = store.history(check="drift")
        assert len(stored) == 1 + FIRST_SAVERS * 3
        (old,) = [s for s in stored if s.run == V1_RUN]
        assert old.result == old_result
        assert store.profiles("warehouse:events", edges_key="edges-1") == [_v1_profile()]
        # v5 moved the state to the one task whose results the history holds (issue 16).
        scope = V1_RUN.alert_scope(old_result)
        assert store.alert_state("slack", "drift", "warehouse:events", task=scope) == {"open": True}

        # v1 keys still identify their rows: re-running v1's task and profile replaces, not adds.
        store.save(_result("rerun after upgrade", 0, 0, 1), V1_RUN)
        assert [s.result.summary for s in store.history(dag_id="monitoring")] == ["rerun after upgrade"]
        bigger = replace(_v1_profile(), row_count=41)
        store.save_profile("warehouse:events", "churn/v1", bigger)
        store.save_profile("warehouse:events", "churn/v1", bigger, partition="eu")
        assert store.profiles("warehouse:events", edges_key="edges-1") == [bigger]
        assert [
            p
            for p, _ in store.window_profiles(
                "warehouse:events", edges_key="edges-1", window_start=DAY, window_end=DAY + timedelta(days=1)
            )
        ] == [None, "eu"]
        assert _count(engine, PROFILES_TABLE) == 2

        # A store meeting the upgraded tables leaves them as they are.
        ResultsStore(engine).ensure_table()
        assert ResultsStore(engine).schema_version() == SCHEMA_VERSION
    finally:
        engine.dispose()
