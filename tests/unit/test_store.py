"""The results history on a SQLite file: create on first use, replace per interval, filters, order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.store import RESULTS_TABLE, ResultsStore, RunKey

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
