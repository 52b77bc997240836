"""The dashboard's history queries (airflow_mlobs.history) on SQLite and PostgreSQL: latest per
dataset x check with filters, strips, last breaches, a dataset's results over a range, one result by
id and by run key, a window's profiles, deliveries; the v3 indexes created on upgrade and used."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.profile import CategoricalProfile, NumericProfile, Profile
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.history import History
from airflow_mlobs.notifiers.base import CheckNotifier, DeliveryError
from airflow_mlobs.render.message import Links
from airflow_mlobs.store import (
    RESULTS_TABLE,
    SCHEMA_VERSION,
    V3_RESULT_INDEXES,
    Delivery,
    ResultsStore,
    RunKey,
)

DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    else:
        pg_engine: sa.Engine = request.getfixturevalue("pg_engine")
        schema = request.getfixturevalue("pg_schema")
        engine = sa.create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()


def _result(check: str, dataset: str, status: Status, day: int, *, windowed: bool = True) -> CheckResult:
    return CheckResult(
        check=check,
        dataset=dataset,
        status=status,
        summary=f"{check} {status.value} day {day}",
        window_start=DAY + timedelta(days=day) if windowed else None,
        window_end=DAY + timedelta(days=day + 1) if windowed else None,
        metrics={"age_seconds": 60.0 * day},
        findings=(Finding(subject="amount", metric="psi", status=status, value=0.01 * day, threshold=0.2),),
    )


def _run(dag: str, task: str, day: int) -> RunKey:
    return RunKey(dag_id=dag, task_id=task, run_id=f"scheduled__day{day}")


@pytest.fixture
def filled(engine: sa.Engine) -> ResultsStore:
    store = ResultsStore(engine)
    for day in range(10):
        drift = Status.FAIL if day in (3, 7) else Status.PASS
        store.save(_result("drift", "wh:features", drift, day), _run("monitor", "drift", day))
        fresh = Status.WARN if day == 9 else Status.PASS
        store.save(_result("freshness", "wh:features", fresh, day), _run("monitor", "fresh", day))
        store.save(
            _result("freshness", "wh:labels", Status.ERROR if day == 5 else Status.PASS, day),
            _run("labels", "fresh", day),
        )
    return store


def test_latest_per_dataset_and_check_with_filters(filled: ResultsStore) -> None:
    history = History(filled.engine)
    since = DAY
    latest = history.latest(since=since)
    assert [(r.dataset, r.check, r.status) for r in latest] == [
        ("wh:features", "drift", Status.PASS),
        ("wh:features", "freshness", Status.WARN),
        ("wh:labels", "freshness", Status.PASS),
    ]
    assert latest[0].window_end == DAY + timedelta(days=10)
    assert latest[0].run == _run("monitor", "drift", 9)
    assert [r.dataset for r in history.latest(since=since, dag_id="labels")] == ["wh:labels"]
    assert [r.check for r in history.latest(since=since, status="warn")] == ["freshness"]
    assert [r.check for r in history.latest(since=since, dataset="wh:features", check="drift")] == ["drift"]
    # Bounded in time: up to day 7's window only, the drift breach is the latest.
    until = history.latest(since=since, until=DAY + timedelta(days=8), check="drift")
    assert [(r.status, r.window_end) for r in until] == [(Status.FAIL, DAY + timedelta(days=8))]
    # Nothing in a range before the history.
    assert history.latest(since=DAY - timedelta(days=30), until=DAY - timedelta(days=1)) == []
    # A run's results (the DAG-run view).
    assert {r.check for r in history.latest(since=since, dag_id="monitor", run_id="scheduled__day4")} == {
        "drift",
        "freshness",
    }


def test_two_tasks_with_the_same_check_on_one_dataset_are_two_monitors(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    store.save(_result("performance", "wh:p", Status.FAIL, 1), _run("perf", "matured", 1))
    store.save(_result("performance", "wh:p", Status.SKIPPED, 4), _run("perf", "recent", 4))
    latest = History(engine).latest(since=DAY)
    assert [(r.run.task_id, r.status) for r in latest] == [
        ("matured", Status.FAIL),
        ("recent", Status.SKIPPED),
    ]


def test_strips_and_last_breaches(filled: ResultsStore) -> None:
    history = History(filled.engine)
    strips = history.status_strips(since=DAY + timedelta(days=5))
    drift = strips[("wh:features", "drift", "monitor", "drift")]
    # Window ends of days 4..9 are within [day 5, now].
    assert [p.status for p in drift] == [
        Status.PASS,
        Status.PASS,
        Status.PASS,
        Status.FAIL,
        Status.PASS,
        Status.PASS,
    ]
    assert drift == sorted(drift, key=lambda p: p.moment)
    breaches = history.last_breaches(since=DAY)
    assert breaches == {
        ("wh:features", "drift", "monitor", "drift"): DAY + timedelta(days=8),
        ("wh:labels", "freshness", "labels", "fresh"): DAY + timedelta(days=6),
    }
    assert history.last_breaches(since=DAY + timedelta(days=9)) == {}
    assert history.dag_ids(since=DAY) == ["labels", "monitor"]


def test_dataset_results_one_result_and_run_key(filled: ResultsStore) -> None:
    history = History(filled.engine)
    results = history.results("wh:features", since=DAY + timedelta(days=3), check="drift")
    assert [s.result.window_end for s in results] == [DAY + timedelta(days=d) for d in range(3, 11)]
    assert results[0].result.findings[0].subject == "amount"
    newest_two = history.results("wh:features", since=DAY, limit=2)
    assert {s.result.check for s in newest_two} == {"drift", "freshness"}
    found = history.result_for_run(dag_id="monitor", run_id="scheduled__day7", task_id="drift")
    assert found is not None and found.result.status is Status.FAIL
    assert history.result(found.id) == found
    assert history.result(10_000) is None
    assert (
        history.result_for_run(dag_id="monitor", run_id="scheduled__day7", task_id="drift", map_index=3)
        is None
    )


def test_unwindowed_results_are_placed_by_when_they_were_stored(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    store.save(_result("schema", "wh:x", Status.FAIL, 0, windowed=False), _run("d", "schema", 0))
    history = History(engine)
    now = datetime.now(UTC)
    (latest,) = history.latest(since=now - timedelta(minutes=5))
    assert latest.window_end is None and latest.status is Status.FAIL
    assert abs((latest.moment - now).total_seconds()) < 300
    assert list(history.last_breaches(since=now - timedelta(minutes=5))) == [
        ("wh:x", "schema", "d", "schema")
    ]
    assert history.latest(since=now + timedelta(minutes=5)) == []


def test_window_profiles_and_deliveries(filled: ResultsStore) -> None:
    history = History(filled.engine)
    start, end = DAY + timedelta(days=3), DAY + timedelta(days=4)
    profile = Profile(
        row_count=10,
        columns={
            "amount": NumericProfile(count=10, min=0.0, max=9.0, total=45.0, total_sq=285.0, bins=(5, 5)),
            "country": CategoricalProfile(counts={"DE": 7, "FR": 3}),
        },
        edges_key="k1",
        window_start=start,
        window_end=end,
    )
    filled.save_profile("wh:features", "features/v1", profile)
    filled.save_profile("wh:features", "features/v1", profile, partition="p1")
    (whole, part) = history.window_profiles("wh:features", window_start=start, window_end=end)
    assert (whole.baseline, whole.partition, part.partition) == ("features/v1", None, "p1")
    assert whole.profile.columns["country"].to_dict() == profile.columns["country"].to_dict()
    assert history.window_profiles("wh:features", window_start=end, window_end=end) == []

    stored = history.result_for_run(dag_id="monitor", run_id="scheduled__day3", task_id="drift")
    assert stored is not None
    filled.record_delivery(stored.result, stored.run, Delivery("slack", "alert", True, 1))
    filled.record_delivery(stored.result, stored.run, Delivery("email", "alert", False, 3, "refused"))
    key = history.result_key(stored.id)
    assert key is not None
    records = history.deliveries([key])
    assert [(d.channel, d.delivered, d.attempts, d.error) for d in records] == [
        ("slack", True, 1, None),
        ("email", False, 3, "refused"),
    ]
    keys = history.result_keys("wh:features", since=DAY)
    assert key in keys and len(keys) == 20
    assert len(history.deliveries(keys)) == 2
    assert history.deliveries([]) == []


def test_v2_tables_get_the_dashboard_indexes(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    store.ensure_table()
    with engine.begin() as conn:
        for name in V3_RESULT_INDEXES:
            conn.execute(sa.text(f"DROP INDEX {name}"))
        conn.execute(sa.text("UPDATE mlobs_schema_version SET version = 2"))
    assert ResultsStore(engine).schema_version() == 2
    upgraded = ResultsStore(engine)
    upgraded.ensure_table()
    assert upgraded.schema_version() == SCHEMA_VERSION >= 3
    names = {i["name"] for i in sa.inspect(engine).get_indexes(RESULTS_TABLE)}
    assert set(V3_RESULT_INDEXES) <= names


def test_dataset_query_uses_an_index_on_postgresql(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("query plan read on PostgreSQL")
    store = ResultsStore(engine)
    for day in range(40):
        for n in range(20):
            store.save(_result("drift", f"wh:t{n}", Status.PASS, day), _run("m", f"drift{n}", day))
    with engine.begin() as conn:
        conn.execute(sa.text(f"ANALYZE {RESULTS_TABLE}"))
        conn.execute(sa.text("SET enable_seqscan = off"))  # a small table: show the index is usable
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(
                    f"EXPLAIN SELECT id FROM {RESULTS_TABLE} WHERE dataset = 'wh:t3' "
                    "AND window_end >= '2026-11-20' AND window_end IS NOT NULL"
                )
            )
        )
    assert "ix_mlobs_results_dataset_window" in plan


def test_gate_decisions_on_a_dataset(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    for day, (inputs, decision) in enumerate(
        [
            (["drift:wh:features:fail", "performance:model:pass"], "retrain"),
            (["drift:wh:features_v2:pass"], "no_retrain"),  # another dataset whose name extends it
            (["drift:wh:features:pass"], "no_retrain"),
        ]
    ):
        gate = CheckResult(
            check="retrain_gate",
            dataset="monitor.retrain_gate",
            status=Status.WARN if decision == "retrain" else Status.PASS,
            summary=decision,
            window_start=DAY + timedelta(days=day),
            window_end=DAY + timedelta(days=day + 1),
            metrics={"decision": decision, "inputs": inputs},
        )
        store.save(gate, _run("monitor", "retrain_gate", day))
    found = History(engine).gate_decisions("wh:features", since=DAY)
    assert [s.result.metrics["decision"] for s in found] == ["retrain", "no_retrain"]
    assert [s.result.window_end for s in found] == [DAY + timedelta(days=1), DAY + timedelta(days=3)]
    assert History(engine).gate_decisions("wh:%", since=DAY) == []  # LIKE wildcards are escaped
    assert len(History(engine).gate_decisions("wh:features", since=DAY, readable={"monitor"})) == 2
    assert History(engine).gate_decisions("wh:features", since=DAY, readable={"other"}) == []


def test_readable_dags_restrict_every_page_query(filled: ResultsStore) -> None:
    """A user who may read DAG ``labels`` only sees its results (and results without a DAG)."""
    filled.save(_result("schema", "wh:features", Status.FAIL, 4), RunKey())
    history = History(filled.engine)
    only = frozenset({"labels"})
    assert [(r.dataset, r.check, r.run.dag_id) for r in history.latest(since=DAY, readable=only)] == [
        ("wh:features", "schema", None),
        ("wh:labels", "freshness", "labels"),
    ]
    assert set(history.status_strips(since=DAY, readable=only)) == {
        ("wh:features", "schema", None, None),
        ("wh:labels", "freshness", "labels", "fresh"),
    }
    assert set(history.last_breaches(since=DAY, readable=only)) == {
        ("wh:features", "schema", None, None),
        ("wh:labels", "freshness", "labels", "fresh"),
    }
    assert history.dag_ids(since=DAY, readable=only) == ["labels"]
    assert [s.result.check for s in history.results("wh:features", since=DAY, readable=only)] == ["schema"]
    assert len(history.results("wh:labels", since=DAY, readable=only)) == 10
    assert len(history.result_keys("wh:features", since=DAY, readable=only)) == 1
    # No readable DAG: only the results without a DAG; no restriction: everything.
    assert [r.check for r in history.latest(since=DAY, readable=frozenset())] == ["schema"]
    assert len(history.latest(since=DAY)) == 4
    assert len(history.results("wh:features", since=DAY)) == 21


class _ListChannel(CheckNotifier):
    """A notifier whose channel is a list in this test (delivery either appends or is refused)."""

    def __init__(self, name: str, *, refuse: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.name, self.refuse = name, refuse
        self.sent: list[str] = []

    @property
    def channel(self) -> str:
        return self.name

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        if self.refuse:
            raise DeliveryError("refused", retryable=False)
        self.sent.append(kind)


def test_open_alerts_from_the_notifiers_stored_state(engine: sa.Engine) -> None:
    """Alerts opened and closed by real notifier state writes: open only while un-recovered and
    delivered, since the window end of the result that opened them."""
    store = ResultsStore(engine)
    slack = _ListChannel("slack:#ml", escalate_after=2)
    email = _ListChannel("email:ops", min_severity="fail")
    refused = _ListChannel("email:refused", refuse=True)
    for day in range(10):
        drift = Status.FAIL if day in (3, 7, 8, 9) else Status.PASS
        for dataset, status in (
            ("wh:features", drift),
            ("wh:labels", Status.ERROR if day == 5 else Status.PASS),
        ):
            result = _result("drift", dataset, status, day)
            run = _run("monitor", "drift", day)
            store.save(result, run)
            for notifier in (slack, email, refused):
                notifier.send_result(result, {}, store, run)
    assert slack.sent == ["alert", "recovery", "alert", "recovery", "alert", "escalation"]
    assert refused.sent == []
    history = History(engine)
    found = history.open_alerts(["wh:features", "wh:labels", "wh:none"])
    assert list(found) == [("wh:features", "drift")]
    email_alert, slack_alert = found[("wh:features", "drift")]
    assert (slack_alert.channel, slack_alert.status, slack_alert.consecutive, slack_alert.escalated) == (
        "slack:#ml",
        Status.FAIL,
        3,
        True,
    )
    assert slack_alert.since == DAY + timedelta(days=8)  # the window end of day 7, which opened it
    assert slack_alert.last_sent == DAY + timedelta(days=9)
    assert (email_alert.channel, email_alert.since) == ("email:ops", DAY + timedelta(days=8))
    assert history.open_alerts([]) == {}
    assert history.open_alerts(["wh:labels"]) == {}  # recovered on day 6
