"""The results history on a SQLite file: create on first use, replace per interval, filters, order;
then on SQLite and PostgreSQL: time-bounded history, undecodable rows skipped, partitioned profiles."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import CategoricalProfile, Profile
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.store import RESULTS_TABLE, SCHEMA_VERSION, ResultsStore, RunKey

DAY = datetime(2026, 11, 24, tzinfo=UTC)
RUN = RunKey(dag_id="model_monitoring", task_id="check_schema", run_id="scheduled__2026-11-24")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> ResultsStore:
    return ResultsStore(engine)


def _result(
    *,
    check: str = "schema",
    dataset: str = "warehouse:customer_features",
    status: Status = Status.PASS,
    start: datetime | None = DAY,
    end: datetime | None = DAY + timedelta(days=1),
    summary: str = "ok",
) -> CheckResult:
    return CheckResult(
        check=check,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=start,
        window_end=end,
        metrics={"columns_observed": 6, "missing": ["customer_age"], "ratio": 0.5},
        findings=(
            Finding(subject="customer_age", metric="missing", status=status, threshold="present", reason="r"),
        ),
    )


def test_table_created_on_first_use(engine: sa.Engine, store: ResultsStore) -> None:
    assert RESULTS_TABLE not in sa.inspect(engine).get_table_names()
    assert store.history() == []
    assert RESULTS_TABLE in sa.inspect(engine).get_table_names()


def test_table_created_by_save(engine: sa.Engine, store: ResultsStore) -> None:
    row_id = store.save(_result(), RUN)
    assert isinstance(row_id, int)
    assert RESULTS_TABLE in sa.inspect(engine).get_table_names()


def test_save_then_history_returns_equal_result(store: ResultsStore) -> None:
    result = _result(status=Status.FAIL, summary="broken")
    row_id = store.save(result, RUN)
    history = store.history()
    assert len(history) == 1
    stored = history[0]
    assert stored.id == row_id
    assert stored.result == result
    assert stored.run == RUN
    assert stored.recorded_at.tzinfo is not None


def test_save_again_for_same_run_and_window_replaces(engine: sa.Engine, store: ResultsStore) -> None:
    store.save(_result(status=Status.FAIL, summary="first"), RUN)
    retry = RunKey(dag_id=RUN.dag_id, task_id=RUN.task_id, run_id="manual__retry")
    store.save(_result(status=Status.PASS, summary="second"), retry)
    history = store.history()
    assert len(history) == 1
    assert history[0].result.status is Status.PASS
    assert history[0].result.summary == "second"
    assert history[0].run.run_id == "manual__retry"
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {RESULTS_TABLE}")).scalar_one()
    assert count == 1


def test_same_window_in_another_zone_is_the_same_key(store: ResultsStore) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    store.save(_result(status=Status.FAIL), RUN)
    same = _result(
        status=Status.WARN, start=DAY.astimezone(berlin), end=(DAY + timedelta(days=1)).astimezone(berlin)
    )
    store.save(same, RUN)
    history = store.history()
    assert len(history) == 1
    assert history[0].result.status is Status.WARN


def test_different_window_adds_a_row(store: ResultsStore) -> None:
    store.save(_result(), RUN)
    store.save(_result(start=DAY + timedelta(days=1), end=DAY + timedelta(days=2)), RUN)
    assert len(store.history()) == 2


def test_different_task_or_map_index_adds_a_row(store: ResultsStore) -> None:
    store.save(_result(), RUN)
    store.save(_result(), RunKey(dag_id=RUN.dag_id, task_id="other_task", run_id=RUN.run_id))
    store.save(_result(), RunKey(dag_id=RUN.dag_id, task_id=RUN.task_id, run_id=RUN.run_id, map_index=3))
    history = store.history()
    assert len(history) == 3
    assert sorted(h.run.map_index for h in history) == [-1, -1, 3]


def test_windowless_result_keys_on_run_id(store: ResultsStore) -> None:
    store.save(_result(start=None, end=None, summary="a"), RunKey("d", "t", "run_1"))
    store.save(_result(start=None, end=None, summary="b"), RunKey("d", "t", "run_2"))
    assert len(store.history()) == 2
    store.save(_result(start=None, end=None, status=Status.FAIL, summary="c"), RunKey("d", "t", "run_1"))
    history = store.history()
    assert len(history) == 2
    by_run = {h.run.run_id: h.result for h in history}
    assert by_run["run_1"].summary == "c"
    assert by_run["run_1"].status is Status.FAIL
    assert by_run["run_2"].summary == "b"
    assert by_run["run_1"].window_start is None and by_run["run_1"].window_end is None


def test_default_run_key(store: ResultsStore) -> None:
    store.save(_result())
    store.save(_result(status=Status.FAIL))
    history = store.history()
    assert len(history) == 1
    assert history[0].run == RunKey()
    assert history[0].result.status is Status.FAIL


def test_filters(store: ResultsStore) -> None:
    store.save(_result(check="schema", dataset="a"), RunKey("dag1", "t1", "r"))
    store.save(_result(check="freshness", dataset="a"), RunKey("dag1", "t2", "r"))
    store.save(_result(check="schema", dataset="b"), RunKey("dag2", "t1", "r"))
    assert len(store.history()) == 3
    assert {h.result.check for h in store.history(dataset="a")} == {"schema", "freshness"}
    assert [h.result.dataset for h in store.history(dataset="b")] == ["b"]
    assert {h.result.dataset for h in store.history(check="schema")} == {"a", "b"}
    assert [(h.result.check, h.result.dataset) for h in store.history(check="freshness")] == [
        ("freshness", "a")
    ]
    assert {h.run.task_id for h in store.history(dag_id="dag1")} == {"t1", "t2"}
    assert {h.run.dag_id for h in store.history(task_id="t1")} == {"dag1", "dag2"}
    assert [h.run.task_id for h in store.history(dataset="a", check="schema")] == ["t1"]
    assert store.history(dataset="a", dag_id="dag2") == []
    assert store.history(dataset="missing") == []


def test_newest_window_first(store: ResultsStore) -> None:
    days = [DAY + timedelta(days=n) for n in (1, 0, 3, 2)]  # saved out of order
    for start in days:
        store.save(_result(start=start, end=start + timedelta(days=1), summary=start.date().isoformat()), RUN)
    history = store.history()
    ends = [h.result.window_end for h in history]
    assert ends == sorted(ends, reverse=True)  # type: ignore[type-var]
    assert [h.result.summary for h in history] == ["2026-11-27", "2026-11-26", "2026-11-25", "2026-11-24"]
    assert [h.result.summary for h in store.history(limit=2)] == ["2026-11-27", "2026-11-26"]


def test_window_ordering_compares_instants_across_zones(store: ResultsStore) -> None:
    # 23:30 in New York on the 24th is later than 02:00 UTC on the 25th.
    new_york = ZoneInfo("America/New_York")
    late = datetime(2026, 11, 24, 23, 30, tzinfo=new_york)
    early = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    store.save(_result(start=late - timedelta(days=1), end=late, summary="late"), RUN)
    store.save(_result(start=early - timedelta(days=1), end=early, summary="early"), RUN)
    assert [h.result.summary for h in store.history()] == ["late", "early"]


def test_aware_datetimes_come_back_aware_in_utc(store: ResultsStore) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 7, 1, 0, 0, tzinfo=berlin)
    end = datetime(2026, 7, 2, 0, 0, tzinfo=berlin)
    before = datetime.now(UTC)
    store.save(_result(start=start, end=end), RUN)
    after = datetime.now(UTC)
    stored = store.history()[0]
    for value, expected in ((stored.result.window_start, start), (stored.result.window_end, end)):
        assert value is not None
        assert value == expected
        assert value.utcoffset() == timedelta(0)
    assert stored.result.window_start == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert stored.recorded_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stored.recorded_at <= after + timedelta(seconds=1)


def test_window_columns_are_stored_in_utc(engine: sa.Engine, store: ResultsStore) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    store.save(
        _result(start=datetime(2026, 7, 1, tzinfo=berlin), end=datetime(2026, 7, 2, tzinfo=berlin)), RUN
    )
    with engine.connect() as conn:
        start, end = conn.execute(sa.text(f"SELECT window_start, window_end FROM {RESULTS_TABLE}")).one()
    assert str(start).startswith("2026-06-30 22:00:00")
    assert str(end).startswith("2026-07-01 22:00:00")


def test_second_store_on_same_database_reads_history(engine: sa.Engine, store: ResultsStore) -> None:
    result = _result(status=Status.WARN)
    store.save(result, RUN)
    other = ResultsStore(engine)
    assert [h.result for h in other.history()] == [result]


def test_freshness_result_reads_back_equal(store: ResultsStore) -> None:
    from airflow_mlobs.core.freshness import FreshnessObservation, judge_freshness

    end = DAY + timedelta(days=1)
    result = judge_freshness(
        dataset="warehouse:transactions",
        observation=FreshnessObservation(newest=end - timedelta(hours=2), rows_after_as_of=4),
        as_of=end,
        max_age=timedelta(hours=1),
        window_start=DAY,
        window_end=end,
    )
    store.save(result, RUN)
    assert store.history()[0].result == result


# --------------------------------------------------------------------------------------------------
# On SQLite and PostgreSQL: time-bounded history, undecodable rows, partitioned profiles
# --------------------------------------------------------------------------------------------------


class PortableStore(ResultsStore):
    """The store as it runs on databases without a native upsert or creation lock."""

    native_upsert = False
    creation_lock = False


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A results database: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    else:
        pg_engine: sa.Engine = request.getfixturevalue("pg_engine")
        schema = request.getfixturevalue("pg_schema")
        engine = sa.create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()


def _day(n: int) -> datetime:
    return DAY + timedelta(days=n)


def test_history_time_bounds_are_applied_in_sql(any_engine: sa.Engine) -> None:
    store = ResultsStore(any_engine)
    for n in range(6):
        store.save(_result(check="drift", start=_day(n), end=_day(n + 1), summary=f"day {n}"), RUN)
    store.save(_result(check="drift", start=None, end=None, summary="no window"), RUN)
    schema_run = RunKey(dag_id=RUN.dag_id, task_id="schema_task", run_id=RUN.run_id)
    store.save(_result(check="schema", start=_day(2), end=_day(3), summary="other check"), schema_run)

    def summaries(**bounds: Any) -> list[str]:
        return [h.result.summary for h in store.history(check="drift", **bounds)]

    assert summaries() == [f"day {n}" for n in range(5, -1, -1)] + ["no window"]
    # Inclusive bounds on the window's end (day n's window ends on day n + 1); rows without a
    # window drop out.
    assert summaries(end=_day(2)) == ["day 1", "day 0"]
    assert summaries(start=_day(5)) == ["day 5", "day 4"]
    assert summaries(start=_day(3), end=_day(4)) == ["day 3", "day 2"]
    assert summaries(end=_day(2), limit=1) == ["day 1"]
    assert summaries(start=_day(9)) == [] and summaries(end=_day(0)) == []
    # A naive bound is UTC; an aware one in another zone is the same instant.
    naive = _day(2).replace(tzinfo=None)
    assert summaries(end=naive) == ["day 1", "day 0"]
    tokyo = _day(2).astimezone(ZoneInfo("Asia/Tokyo"))
    assert summaries(end=tokyo) == ["day 1", "day 0"]
    # The other filters still combine with the bounds, the way the gate calls history(); check and
    # dataset may be given by position.
    assert [h.result.summary for h in store.history("schema", _result().dataset, end=_day(4))] == [
        "other check"
    ]
    assert [h.result.summary for h in store.history("drift", map_index=-1, start=_day(6))] == ["day 5"]
    assert store.history("drift", map_index=3) == []

    # recorded_since: only what was stored since.
    cut = datetime.now(UTC)
    time.sleep(0.01)
    store.save(_result(check="drift", start=_day(0), end=_day(1), summary="day 0 again"), RUN)
    assert summaries(recorded_since=cut) == ["day 0 again"]
    assert summaries(recorded_since=datetime.now(UTC) + timedelta(seconds=5)) == []


def test_undecodable_rows_are_skipped_counted_and_logged(
    any_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store = ResultsStore(any_engine)
    good = [store.save(_result(start=_day(n), end=_day(n + 1), summary=f"good {n}"), RUN) for n in range(4)]
    valid = json.loads(_result().to_json())
    broken = {
        good[0]: _result().to_json()[:40],  # truncated JSON
        good[1]: json.dumps({k: v for k, v in valid.items() if k != "check"}),  # a missing key
        good[2]: json.dumps({**valid, "status": "exploded"}),  # a value the reader rejects
    }
    with any_engine.begin() as conn:
        for row_id, text in broken.items():
            conn.execute(
                sa.text(f"UPDATE {RESULTS_TABLE} SET result_json = :t WHERE id = :i"),
                {"t": text, "i": row_id},
            )
    with caplog.at_level(logging.WARNING, logger="airflow_mlobs.store"):
        history = store.history()
    assert [h.result.summary for h in history] == ["good 3"]
    assert store.skipped_rows == 3
    warnings = [r for r in caplog.records if r.name == "airflow_mlobs.store" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "Skipped 3 row(s) of mlobs_check_results" in message
    assert all(str(row_id) in message for row_id in broken)
    # The count is the last call's: a read that meets no bad row resets it.
    assert [h.result.summary for h in store.history(limit=1)] == ["good 3"]
    assert store.skipped_rows == 0
    assert store.skipped_total == 3  # over all calls (the gate reports it once for its reads)

    # Profiles: the same for profiles() and window_profiles().
    store.save_profile("wh:t", "b/v1", _profile("p1", rows=5), partition="a")
    store.save_profile("wh:t", "b/v1", _profile("p1", rows=6), partition="b")
    with any_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE mlobs_profiles SET profile_json = '{\"row_count\": 3}' WHERE partition = 'a'")
        )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airflow_mlobs.store"):
        found = store.window_profiles("wh:t", edges_key="p1", window_start=_day(0), window_end=_day(1))
    assert [(p, prof.row_count) for p, prof in found] == [("b", 6)]
    assert store.skipped_rows == 1
    assert "mlobs_profiles" in caplog.records[-1].getMessage()
    assert store.profiles("wh:t", edges_key="p1", partition="a") == []
    assert store.skipped_rows == 1


def _profile(edges: str, *, rows: int, start: datetime = DAY, segment: str | None = None) -> Profile:
    return Profile(
        row_count=rows,
        columns={"plan": CategoricalProfile(nulls=0, counts={"basic": rows - 1, "pro": 1})},
        edges_key=edges,
        window_start=start,
        window_end=start + timedelta(days=1),
        segment=segment,
    )


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_partitions_of_one_window_are_kept_apart(any_engine: sa.Engine, portable: bool) -> None:
    store = (PortableStore if portable else ResultsStore)(any_engine)
    for partition, rows in (("eu", 10), ("us", 20), ("apac", 30)):
        store.save_profile("wh:events", "churn/v1", _profile("e1", rows=rows), partition=partition)
    store.save_profile("wh:events", "churn/v1", _profile("e1", rows=60))  # the whole dataset
    store.save_profile("wh:events", "churn/v1", _profile("e1", rows=7, start=_day(1)), partition="eu")
    store.save_profile("wh:events", "churn/v1", _profile("e1", rows=8, segment="mobile"), partition="eu")
    store.save_profile("wh:events", "churn/v1", _profile("e2", rows=9), partition="eu")
    with any_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM mlobs_profiles")).scalar_one() == 7

    window = {"edges_key": "e1", "window_start": DAY, "window_end": _day(1)}
    found = store.window_profiles("wh:events", **window)
    assert [(p, prof.row_count) for p, prof in found] == [(None, 60), ("apac", 30), ("eu", 10), ("us", 20)]
    assert [p for p, _ in store.window_profiles("wh:events", **window, segment="mobile")] == ["eu"]
    assert store.window_profiles("wh:other", **window) == []
    assert store.window_profiles("wh:events", edges_key="e1", window_start=DAY, window_end=_day(2)) == []

    # profiles(): partition None is the unpartitioned profile, as before partitions existed.
    assert [p.row_count for p in store.profiles("wh:events", edges_key="e1")] == [60]
    assert [p.row_count for p in store.profiles("wh:events", edges_key="e1", partition="eu")] == [10, 7]
    assert [
        p.row_count for p in store.profiles("wh:events", edges_key="e1", partition="eu", end=_day(1))
    ] == [10]

    # A re-run of one partition replaces only that partition's row.
    store.save_profile("wh:events", "churn/v1", _profile("e1", rows=11), partition="eu")
    found = dict(store.window_profiles("wh:events", **window))
    assert {p: prof.row_count for p, prof in found.items()} == {None: 60, "apac": 30, "eu": 11, "us": 20}
    merged = found["apac"].merge(found["eu"]).merge(found["us"])
    assert merged.row_count == 61
    assert merged.columns["plan"].counts == {"basic": 58, "pro": 3}  # type: ignore[union-attr]


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_upserts_replace_by_key(any_engine: sa.Engine, portable: bool) -> None:
    store = (PortableStore if portable else ResultsStore)(any_engine)
    first = store.save(_result(summary="first"), RUN)
    second = store.save(_result(summary="second"), RUN)
    (stored,) = store.history()
    assert stored.id == second and stored.result.summary == "second"
    if not portable:
        assert second != first  # a replaced row is a new row, as with delete + insert before
    store.save_alert_state("slack", "drift", "wh:t", {"open": True, "n": 1})
    store.save_alert_state("slack", "drift", "wh:t", {"open": False, "n": 2})
    store.save_alert_state("email", "drift", "wh:t", {"open": True})
    assert store.alert_state("slack", "drift", "wh:t") == {"open": False, "n": 2}
    assert store.alert_state("email", "drift", "wh:t") == {"open": True}
    with any_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM mlobs_alert_state")).scalar_one() == 2
    assert store.schema_version() == SCHEMA_VERSION


def test_sqlite_engine_that_begins_its_own_transactions(tmp_path: Path) -> None:
    """SQLAlchemy's recipe for SQLite transactions (the driver's autocommit, BEGIN on each begin):
    the store's BEGIN IMMEDIATE is refused there, creation and saves still work."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'own.db'}")

    @sa.event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    try:
        store = ResultsStore(engine)
        store.save(_result(summary="one"), RUN)
        store.save(_result(summary="two"), RUN)
        assert [h.result.summary for h in store.history()] == ["two"]
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        engine.dispose()
