"""The retraining gate's policy (pure, no Airflow): conditions, streaks, cooldown, the stored result;
and one gate run reading its history from a SQLite results store (bounded reads)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.gate import (
    CHECK,
    HOLD,
    NO_RETRAIN,
    RETRAIN,
    GateDecision,
    GatePolicy,
    conditions_met,
    decide,
)
from airflow_mlobs.core.gate_run import Gate, Upstream, collect_upstream, decision_window, read_pushed
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.window import RunTimes
from airflow_mlobs.store import ResultsStore, RunKey, results_table

NOW = datetime(2026, 11, 10, tzinfo=UTC)
DATASET = "wh:events"
GATE = "monitoring.retrain_gate"


def drift(
    share: float,
    drifted: Sequence[str] = (),
    *,
    dataset: str = DATASET,
    days_ago: int = 0,
) -> CheckResult:
    """A drift result as DriftCheckOperator stores it (only the metrics the gate reads)."""
    end = NOW - timedelta(days=days_ago)
    return CheckResult(
        check="drift",
        dataset=dataset,
        status=Status.FAIL if share >= 0.5 else (Status.WARN if drifted else Status.PASS),
        summary=f"{dataset}: {len(drifted)} columns drifted",
        window_start=end - timedelta(days=1),
        window_end=end,
        metrics={
            "drift_share": share,
            "drifted_columns": [{"column": c, "method": "wasserstein", "value": 0.4} for c in drifted],
        },
    )


def performance(drop: float, *, metric: str = "auc", dataset: str = "model:churn") -> CheckResult:
    return CheckResult(
        check="performance",
        dataset=dataset,
        status=Status.WARN,
        summary=f"{dataset}: {metric} fell by {drop}",
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        metrics={"drop": drop, "metric": metric},
    )


def run(policy: GatePolicy, results: Sequence[CheckResult], **kwargs: object):  # type: ignore[no-untyped-def]
    return decide(policy, results, gate=GATE, now=NOW, **kwargs)  # type: ignore[arg-type]


# --- single conditions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.5, RETRAIN), (0.75, RETRAIN), (1.0, RETRAIN), (0.4999, NO_RETRAIN), (0.0, NO_RETRAIN)],
)
def test_drift_share_at_above_and_below_the_level(share: float, expected: str) -> None:
    decision = run(GatePolicy(drift_share=0.5), [drift(share, ["a"])])
    assert decision.decision == expected
    assert decision.retrain is (expected == RETRAIN)
    assert decision.result.metrics["decision"] == expected
    if expected == RETRAIN:
        assert decision.reasons == (f"{DATASET}: drift share {share:.0%} >= 50%",)
        assert "retraining triggered" in decision.result.summary
        assert decision.reasons[0] in decision.result.summary
    else:
        assert decision.reasons == ()
        assert decision.result.summary == f"{GATE}: no retraining needed"


def test_conditions_met_names_each_condition() -> None:
    policy = GatePolicy(drift_share=0.5, critical_features=("income", "age"), performance_drop=0.05)
    met = conditions_met(policy, drift(0.6, ["age", "zip"]))
    assert set(met) == {"drift_share", "critical_features"}
    assert met["critical_features"] == f"{DATASET}: critical feature(s) drifted: age"
    assert conditions_met(policy, drift(0.1, ["zip"])) == {}
    perf = conditions_met(policy, performance(0.08))
    assert perf == {"performance_drop": "model:churn: auc dropped by 0.08 (>= 0.05)"}
    # A check of another kind never meets a condition, whatever its metrics.
    other = CheckResult("freshness", DATASET, Status.FAIL, "stale", metrics={"drift_share": 1.0, "drop": 9})
    assert conditions_met(policy, other) == {}


def test_critical_feature_drifted_opens_the_gate_below_the_share() -> None:
    policy = GatePolicy(drift_share=0.5, critical_features=("income",))
    decision = run(policy, [drift(0.2, ["income"])])
    assert decision.decision == RETRAIN
    assert decision.reasons == (f"{DATASET}: critical feature(s) drifted: income",)
    assert run(policy, [drift(0.2, ["zip"])]).decision == NO_RETRAIN


def test_critical_features_alone_without_drift_share() -> None:
    policy = GatePolicy(drift_share=None, critical_features=("income",))
    assert run(policy, [drift(1.0, ["zip", "age"])]).decision == NO_RETRAIN
    assert run(policy, [drift(0.1, ["income"])]).decision == RETRAIN


@pytest.mark.parametrize(("drop", "expected"), [(0.05, RETRAIN), (0.2, RETRAIN), (0.049, NO_RETRAIN)])
def test_performance_drop(drop: float, expected: str) -> None:
    policy = GatePolicy(drift_share=None, performance_drop=0.05)
    decision = run(policy, [performance(drop)])
    assert decision.decision == expected
    if expected == RETRAIN:
        assert decision.reasons == (f"model:churn: auc dropped by {drop:.3g} (>= 0.05)",)


def test_performance_drop_ignored_when_not_configured() -> None:
    decision = run(GatePolicy(drift_share=0.5), [performance(0.9)])
    assert decision.decision == NO_RETRAIN
    assert decision.result.findings == ()


# --- require="all" ---------------------------------------------------------------------------------


def test_require_all_needs_every_configured_condition() -> None:
    policy = GatePolicy(drift_share=0.5, critical_features=("income",), performance_drop=0.05, require="all")
    # Two of three conditions: not enough.
    partial = run(policy, [drift(0.8, ["income"])])
    assert partial.decision == NO_RETRAIN
    assert partial.result.summary == f"{GATE}: conditions met but not all required (all)"
    assert partial.result.status is Status.PASS
    # Only the performance drop: not enough either.
    assert run(policy, [performance(0.1)]).decision == NO_RETRAIN
    # All three, from two results.
    full = run(policy, [drift(0.8, ["income"]), performance(0.1)])
    assert full.decision == RETRAIN
    assert len(full.reasons) == 3
    assert {f.metric for f in full.result.findings} == {
        "drift_share",
        "critical_features",
        "performance_drop",
    }


def test_require_any_opens_on_one_condition() -> None:
    policy = GatePolicy(drift_share=0.5, performance_drop=0.05, require="any")
    assert run(policy, [performance(0.1)]).decision == RETRAIN
    assert run(policy, [drift(0.9, ["a"])]).decision == RETRAIN


# --- consecutive windows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "streak"),
    [
        ([], 1),  # no history at all
        ([0.1, 0.9, 0.9], 1),  # broken right before this window
        ([0.9, 0.1, 0.9], 2),  # broken one window further back
        ([0.9], 2),  # history too short
        ([0.9, 0.9], 3),  # a full streak
        ([0.9, 0.9, 0.1], 3),  # older windows beyond the streak do not matter
    ],
)
def test_consecutive_windows_streak(history: list[float], streak: int) -> None:
    policy = GatePolicy(drift_share=0.5, consecutive_windows=3)
    previous = {DATASET: [drift(s, ["a"], days_ago=i + 1) for i, s in enumerate(history)]}
    decision = run(policy, [drift(0.9, ["a"])], previous=previous)
    (finding,) = decision.result.findings
    assert finding.metric == "drift_share" and finding.value == streak
    if streak >= 3:
        assert decision.decision == RETRAIN
        assert finding.status is Status.WARN
    else:
        assert decision.decision == NO_RETRAIN
        assert finding.status is Status.PASS
        assert finding.threshold == 3
        assert f"only {streak} of 3 consecutive windows" in finding.reason
        assert decision.result.summary == f"{GATE}: no retraining needed"


def test_a_missing_window_ends_the_streak() -> None:
    policy = GatePolicy(drift_share=0.5, consecutive_windows=3)
    # The windows ending 1 and 3 days ago drifted, but the one ending 2 days ago has no result.
    gap = {DATASET: [drift(0.9, ["a"], days_ago=1), drift(0.9, ["a"], days_ago=3)]}
    decision = run(policy, [drift(0.9, ["a"])], previous=gap)
    assert decision.decision == NO_RETRAIN
    assert "only 2 of 3 consecutive windows" in decision.result.findings[0].reason
    adjacent = {DATASET: [drift(0.9, ["a"], days_ago=1), drift(0.9, ["a"], days_ago=2)]}
    assert run(policy, [drift(0.9, ["a"])], previous=adjacent).decision == RETRAIN


def test_streaks_count_only_results_of_the_same_check_on_a_dataset() -> None:
    policy = GatePolicy(drift_share=0.5, consecutive_windows=2)
    quality = CheckResult(
        check="quality",
        dataset=DATASET,
        status=Status.FAIL,
        summary="suite failed",
        window_start=NOW - timedelta(days=2),
        window_end=NOW - timedelta(days=1),
    )
    # The gate reads a drift and a quality result on the same table: the newest earlier result of
    # the table is the quality one, but the drift streak looks at the earlier drift window only.
    previous = {DATASET: [quality, drift(0.9, ["a"], days_ago=1)]}
    decision = run(
        policy,
        [drift(0.9, ["a"]), replace(quality, window_start=NOW - timedelta(days=1), window_end=NOW)],
        previous=previous,
    )
    assert decision.decision == RETRAIN, decision.result.summary
    alone = {DATASET: [quality]}
    assert run(policy, [drift(0.9, ["a"])], previous=alone).decision == NO_RETRAIN


def test_consecutive_windows_are_per_dataset_and_per_condition() -> None:
    policy = GatePolicy(drift_share=0.5, critical_features=("income",), consecutive_windows=2)
    # The other dataset's history does not count for this one.
    other = {"wh:other": [drift(0.9, ["income"], dataset="wh:other", days_ago=1)]}
    assert run(policy, [drift(0.9, ["income"])], previous=other).decision == NO_RETRAIN
    # The previous window met drift_share only; critical_features has a streak of 1.
    previous = {DATASET: [drift(0.9, ["zip"], days_ago=1)]}
    decision = run(policy, [drift(0.9, ["income"])], previous=previous)
    assert decision.decision == RETRAIN
    assert decision.reasons == (f"{DATASET}: drift share 90% >= 50%",)
    by_metric = {f.metric: f for f in decision.result.findings}
    assert by_metric["drift_share"].status is Status.WARN
    assert by_metric["critical_features"].status is Status.PASS
    assert "only 1 of 2 consecutive windows" in by_metric["critical_features"].reason


# --- cooldown --------------------------------------------------------------------------------------


def test_cooldown_holds_a_retraining_inside_it() -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=3))
    decision = run(policy, [drift(0.9, ["a"])], last_retrain=NOW - timedelta(days=1))
    assert decision.decision == HOLD
    assert not decision.retrain
    summary = decision.result.summary
    assert summary.startswith(f"{GATE}: retraining held by cooldown")
    assert "last retrain 1d ago" in summary and "cooldown 3d" in summary and "2d left" in summary
    assert f"{DATASET}: drift share 90% >= 50%" in summary
    cooldown = [f for f in decision.result.findings if f.metric == "cooldown"]
    assert cooldown and cooldown[0].status is Status.WARN
    assert decision.result.metrics["last_retrain"] == (NOW - timedelta(days=1)).isoformat()


def test_cooldown_names_the_other_gate_that_retrained_and_stores_the_targets() -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=3))
    decision = decide(
        policy,
        [drift(0.9, ["a"])],
        gate=GATE,
        now=NOW,
        last_retrain=NOW - timedelta(days=2),
        last_retrain_by="model_monitoring.retrain_gate",
        targets=["mlobs://churn/retrain", "dag:retrain"],
    )
    assert decision.decision == HOLD
    assert "last retrain by model_monitoring.retrain_gate 2d ago" in decision.result.summary
    assert decision.result.metrics["last_retrain_by"] == "model_monitoring.retrain_gate"
    assert decision.result.metrics["targets"] == ["dag:retrain", "mlobs://churn/retrain"]
    cooldown = [f for f in decision.result.findings if f.metric == "cooldown"]
    assert cooldown[0].reason == "retrained too recently by model_monitoring.retrain_gate"


def test_cooldown_time_left_in_hours() -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=2))
    decision = run(policy, [drift(0.9, ["a"])], last_retrain=NOW - timedelta(hours=30))
    assert decision.decision == HOLD
    assert "18h left" in decision.result.summary


def test_cooldown_over_lets_the_retraining_through() -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=3))
    for ago in (timedelta(days=3), timedelta(days=10)):
        decision = run(policy, [drift(0.9, ["a"])], last_retrain=NOW - ago)
        assert decision.decision == RETRAIN, ago
        assert "retraining triggered" in decision.result.summary
        assert not [f for f in decision.result.findings if f.metric == "cooldown"]


def test_cooldown_does_not_matter_when_nothing_calls_for_retraining() -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=3))
    decision = run(policy, [drift(0.1)], last_retrain=NOW - timedelta(hours=1))
    assert decision.decision == NO_RETRAIN
    assert decision.result.summary == f"{GATE}: no retraining needed"


def test_no_cooldown_configured_ignores_last_retrain() -> None:
    decision = run(GatePolicy(drift_share=0.5), [drift(0.9, ["a"])], last_retrain=NOW - timedelta(seconds=1))
    assert decision.decision == RETRAIN


# --- no results ------------------------------------------------------------------------------------


def test_no_results_means_no_retraining() -> None:
    decision = run(GatePolicy(drift_share=0.5, performance_drop=0.1), [])
    assert decision.decision == NO_RETRAIN
    assert decision.reasons == ()
    assert decision.result.status is Status.PASS
    assert decision.result.metrics["inputs"] == []
    assert decision.result.findings == ()


# --- policy validation -----------------------------------------------------------------------------


def test_policy_needs_a_condition() -> None:
    with pytest.raises(ValueError, match="at least one condition"):
        GatePolicy(drift_share=None)
    with pytest.raises(ValueError, match="at least one condition"):
        GatePolicy(drift_share=None, critical_features=(), performance_drop=None)


@pytest.mark.parametrize("windows", [0, -1])
def test_policy_rejects_fewer_than_one_window(windows: int) -> None:
    with pytest.raises(
        ValueError, match=f"consecutive_windows must be an integer of at least 1, got {windows}"
    ):
        GatePolicy(consecutive_windows=windows)


def test_policy_rejects_a_bad_require() -> None:
    with pytest.raises(ValueError, match="require must be 'any' or 'all', got 'most'"):
        GatePolicy(require="most")  # type: ignore[arg-type]


def test_policy_defaults_are_valid() -> None:
    policy = GatePolicy()
    assert policy.drift_share == 0.3 and policy.consecutive_windows == 1 and policy.require == "any"


# --- the stored result -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "last_retrain", "decision", "status"),
    [
        (0.9, None, RETRAIN, Status.WARN),
        (0.9, NOW - timedelta(hours=5), HOLD, Status.WARN),
        (0.1, None, NO_RETRAIN, Status.PASS),
    ],
)
def test_stored_result_status_and_json_round_trip(
    share: float, last_retrain: datetime | None, decision: str, status: Status
) -> None:
    start, end = NOW - timedelta(days=1), NOW
    inputs = [drift(share, ["a"]), performance(0.01)]
    outcome = run(
        GatePolicy(drift_share=0.5, cooldown=timedelta(days=1)),
        inputs,
        last_retrain=last_retrain,
        window_start=start,
        window_end=end,
    )
    result = outcome.result
    assert outcome.decision == decision
    assert result.check == CHECK == "retrain_gate"
    assert result.dataset == GATE
    assert result.status is status
    assert (result.window_start, result.window_end) == (start, end)
    assert result.metrics["decision"] == decision
    assert result.metrics["inputs"] == [
        f"drift:{DATASET}:{inputs[0].status.value}",
        f"performance:model:churn:{inputs[1].status.value}",
    ]
    text = result.to_json()
    back = CheckResult.from_json(text)
    assert back == result
    assert back.to_json() == text
    assert CheckResult.from_dict(result.compact()).metrics == result.metrics


# --- re-runs, both sides of the cooldown, mapped series --------------------------------------------


def test_a_window_that_already_retrained_holds_and_keeps_its_retraining_time() -> None:
    from airflow_mlobs.core.gate import RetrainEvent, retrain_event

    first = run(GatePolicy(drift_share=0.5), [drift(0.9, ["a"])])
    assert first.decision == RETRAIN
    assert first.result.metrics["retrained_at"] == NOW.isoformat()
    event = retrain_event(first.result)
    assert event == RetrainEvent(NOW, GATE)
    again = run(GatePolicy(drift_share=0.5), [drift(0.9, ["a"])], already_retrained=event)
    assert again.decision == HOLD
    assert "already started a retraining" in again.result.summary
    # The re-run's stored decision still records the retraining, so a third run holds as well.
    assert retrain_event(again.result) == event


def test_cooldown_holds_for_a_retraining_of_a_later_window_too() -> None:
    """A backfill of an earlier window after a later one retrained: held, not a second retraining."""
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=2))
    decision = run(policy, [drift(0.9, ["a"])], last_retrain=NOW + timedelta(days=1))
    assert decision.decision == HOLD
    assert "for a window 1d later" in decision.result.summary
    assert decision.result.metrics["retrained_at"] is None
    free = run(policy, [drift(0.9, ["a"])], last_retrain=NOW + timedelta(days=3))
    assert free.decision == RETRAIN


def test_legacy_stored_retrain_decisions_count_at_their_window_end() -> None:
    from airflow_mlobs.core.gate import retrain_event

    legacy = run(GatePolicy(drift_share=0.5), [drift(0.9, ["a"])]).result
    metrics = {k: v for k, v in legacy.metrics.items() if k not in ("retrained_at", "retrained_by")}
    old = replace(legacy, metrics=metrics, window_end=NOW - timedelta(days=1))
    event = retrain_event(old)
    assert event is not None and event.at == NOW - timedelta(days=1)
    assert retrain_event(run(GatePolicy(drift_share=0.5), [drift(0.1)]).result) is None


def test_mapped_results_of_one_dataset_keep_their_own_streaks() -> None:
    """Three segments mapped over one dataset: segment b's earlier calm window must not be hidden by
    segment a's drifted one (keyed by dataset alone, the streaks mixed)."""
    policy = GatePolicy(drift_share=0.5, consecutive_windows=2)
    today = [drift(0.9, ["a"]), drift(0.9, ["a"])]
    series = ["wh:events|drift[0]", "wh:events|drift[1]"]
    previous = {
        series[0]: [drift(0.9, ["a"], days_ago=1)],  # segment 0 drifted yesterday too
        series[1]: [drift(0.1, days_ago=1)],  # segment 1 was calm
    }
    decision = run(policy, today, previous=previous, series=series)
    streaks = [f.value for f in decision.result.findings if f.metric == "drift_share"]
    assert streaks == [2, 1]
    assert decision.decision == RETRAIN  # segment 0 holds two windows in a row
    with pytest.raises(ValueError, match="series"):
        run(policy, today, series=series[:1])


def test_a_rerun_below_the_policy_still_records_the_retraining_of_its_window() -> None:
    """Window N retrained; after a data fix its re-run finds no drift. The stored decision for N
    must keep the retraining (it happened), or N could retrain again and N+1's cooldown is lost."""
    from airflow_mlobs.core.gate import RetrainEvent, retrain_event

    event = RetrainEvent(NOW, GATE)
    calm = run(GatePolicy(drift_share=0.5), [drift(0.1)], already_retrained=event)
    assert calm.decision == NO_RETRAIN
    assert retrain_event(calm.result) == event


# --- one gate run against a results history (core.gate_run, a SQLite store) -----------------------


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ResultsStore]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    yield ResultsStore(engine)
    engine.dispose()


def _stored(store: ResultsStore, result: CheckResult, *, task_id: str = "drift", map_index: int = -1) -> None:
    store.save(result, RunKey(dag_id="monitoring", task_id=task_id, run_id="r", map_index=map_index))


def _judge(
    store: ResultsStore, policy: GatePolicy, upstream: Sequence[Upstream], **kwargs: Any
) -> GateDecision:
    results = [u.result for u in upstream]
    window = decision_window(results, RunTimes())
    gate = Gate(policy, "monitoring", "retrain_gate", tuple(kwargs.pop("targets", ())))
    return gate.judge(upstream, store, window_start=window[0], window_end=window[1])


def test_read_pushed_names_each_result_and_the_problems() -> None:
    good = drift(0.6, ["a"]).compact()
    found, problems = read_pushed("drift", good, is_check=True, mapped=False, gate_map_index=-1)
    assert [(u.task_id, u.map_index, u.series) for u in found] == [("drift", -1, DATASET)]
    assert problems == []
    mapped, _ = read_pushed(
        "drift", [{**good, "map_index": 4}, good], is_check=True, mapped=True, gate_map_index=-1
    )
    assert [u.map_index for u in mapped] == [4, 1]  # carried, else its position
    assert mapped[0].series == f"{DATASET}|drift[4]"
    own, _ = read_pushed("drift", [good], is_check=True, mapped=True, gate_map_index=2)
    assert own[0].map_index == 2  # a mapped gate's own map index
    none, problems = read_pushed("load", None, is_check=False, mapped=False, gate_map_index=-1)
    assert none == [] and problems == []
    _, problems = read_pushed("drift", [good, "junk"], is_check=True, mapped=False, gate_map_index=-1)
    assert problems == ["upstream task 'drift' pushed 1 value(s) that are not check results"]


def test_streak_reads_its_own_task_and_map_index(history: ResultsStore) -> None:
    policy = GatePolicy(drift_share=0.5, consecutive_windows=3)
    for days_ago in (1, 2):
        _stored(history, drift(0.8, ["a"], days_ago=days_ago), map_index=0)
        _stored(history, drift(0.1, [], days_ago=days_ago), map_index=1)  # another segment: calm
        _stored(history, drift(0.1, [], days_ago=days_ago), task_id="merge")  # another task
    today = drift(0.8, ["a"])
    assert _judge(history, policy, [Upstream(today, "drift", 0)]).decision == RETRAIN
    held = _judge(history, policy, [Upstream(today, "drift", 1)])
    assert held.decision == NO_RETRAIN and held.result.findings[0].value == 1
    assert _judge(history, policy, [Upstream(today, "merge")]).decision == NO_RETRAIN


def test_a_rerun_and_a_shared_target_hold_the_gate(history: ResultsStore) -> None:
    policy = GatePolicy(drift_share=0.5, cooldown=timedelta(days=3))
    today = Upstream(drift(0.8, ["a"]), "drift")
    first = _judge(history, policy, [today], targets=("model://churn",))
    assert first.decision == RETRAIN
    _stored(history, first.result, task_id="retrain_gate")
    assert _judge(history, policy, [today]).decision == HOLD  # the same window, again
    # Another gate with the same target, two days later: the cooldown holds it.
    later = Upstream(drift(0.8, ["a"], days_ago=-2), "drift")
    other = Gate(policy, "other_dag", "gate", ("model://churn",)).judge(
        [later], history, window_start=later.result.window_start, window_end=later.result.window_end or NOW
    )
    assert other.decision == HOLD and "cooldown" in other.result.summary


def test_the_gate_reads_only_the_windows_it_needs(history: ResultsStore) -> None:
    # Three years of daily results and decisions: the gate's reads must not grow with them.
    years = 3 * 365
    rows = []
    for days_ago in range(years, 0, -1):
        result = drift(0.8, ["a"], days_ago=days_ago)
        rows.append(
            {
                "result_key": RunKey("monitoring", "drift", "r").key_for(result),
                "dag_id": "monitoring",
                "task_id": "drift",
                "map_index": -1,
                "run_id": f"r{days_ago}",
                "check_name": "drift",
                "dataset": DATASET,
                "status": result.status.value,
                "summary": result.summary,
                "window_start": result.window_start,
                "window_end": result.window_end,
                "result_json": result.to_json(),
                "recorded_at": NOW,
            }
        )
    history.ensure_table()
    with history.engine.begin() as conn:
        conn.execute(sa.insert(results_table), rows)
        decisions = [
            {**row, "result_key": f"gate{row['run_id']}", "task_id": "retrain_gate", "check_name": CHECK}
            for row in rows
        ]
        conn.execute(sa.insert(results_table), decisions)

    fetched: list[int] = []

    def count_rows(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "mlobs_check_results" in statement:
            # Run the same query again on the side and count what it returns.
            fetched.append(len(conn.connection.driver_connection.execute(statement, parameters).fetchall()))

    policy = GatePolicy(drift_share=0.5, consecutive_windows=3, cooldown=timedelta(days=2))
    sa.event.listen(history.engine, "after_cursor_execute", count_rows)
    try:
        decision = _judge(history, policy, [Upstream(drift(0.8, ["a"]), "drift")])
    finally:
        sa.event.remove(history.engine, "after_cursor_execute", count_rows)
    assert decision.result.findings[0].value == 3  # the streak was read
    # Streak: two windows needed, one more of slack, and the current window's end; cooldown: the
    # decisions within two days either side (of a history of 2 x 1095 rows).
    assert len(fetched) == 2
    assert fetched[0] <= 4 and fetched[1] <= 3, fetched


def test_decision_window_without_a_judged_window_is_the_runs() -> None:
    judged = drift(0.1, [])
    assert decision_window([judged], RunTimes()) == (judged.window_start, judged.window_end)
    start, end = NOW - timedelta(days=1), NOW
    assert decision_window([], RunTimes(interval_start=start, interval_end=end)) == (start, end)
    assert decision_window([], RunTimes(logical_date=NOW)) == (NOW, NOW)


def test_collect_upstream_names_missing_tasks_and_leaves_out_non_checks() -> None:
    pushed = {"drift": (drift(0.6, ["a"]).compact(), False, True), "load": ("rows: 10", False, False)}

    def pull(task_id: str) -> tuple[object, bool, bool]:
        return pushed.get(task_id, (None, False, False))

    common: dict[str, Any] = {"dag_id": "monitoring", "gate_task_id": "gate", "gate_map_index": -1}
    found, problems = collect_upstream(
        ["drift", "load"], pull, explicit=False, known={"drift", "load"}, **common
    )
    assert [u.task_id for u in found] == ["drift"] and problems == []
    _, problems = collect_upstream(["drfit"], pull, explicit=True, known={"drift", "load"}, **common)
    assert problems == ["check_task_ids names 'drfit', which is not a task of DAG 'monitoring'"]
    _, problems = collect_upstream(["load"], pull, explicit=False, known={"load"}, **common)
    assert problems == ["no check results to judge: no upstream task of 'gate' is a check"]
