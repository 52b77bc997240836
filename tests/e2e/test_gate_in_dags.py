"""The retraining gate in real Airflow runs: mapped upstream checks, inputs it cannot trust, corrupt
history rows, and re-runs of a drifted window (exactly one retraining per window)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import Status
from airflow_mlobs.store import results_table
from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_drift_in_dags import asset_events, build_warehouse, env_for, results_store, write_dag

pytestmark = pytest.mark.e2e


@pytest.fixture
def warehouse_db(tmp_path: Path) -> Path:
    """The drift tests' warehouse: features drift from 2026-11-05 on."""
    return build_warehouse(tmp_path)


DRIFTED_DAY = "2026-11-07"  # judges [11-06, 11-07): drifted


def test_mapped_drift_results_are_each_judged_by_the_gate(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    """A drift check mapped over three segments: every map index's `fail` reaches the gate (before,
    the gate kept only dict XComs and stored "no retraining needed" with no inputs)."""
    dag_id = "mlobs_gate_mapped"
    uri = "mlobs://test/gate-mapped"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    write_dag(
        dags,
        "gate_mapped",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(
                task_id="baseline", baseline="mapped", version="v1", columns=["x1", "x2"], **common, **REFERENCE
            )
            drift = DriftCheckOperator.partial(
                task_id="drift", baseline="mapped", on_breach="continue", **common
            ).expand(where=["segment = 'a'", "segment = 'b'", "segment = 'c'"])
            gate = RetrainGateOperator(task_id="gate", drift_share=0.5, outlets=[Asset({uri!r})])
            baseline >> drift >> gate
        """,
    )
    before = asset_events(airflow_db, uri)
    outcome = run_dag(airflow_db, dags, dag_id, DRIFTED_DAY, env_for(warehouse_db, baselines))
    assert outcome.states["gate"] == "success", outcome.output[-4000:]
    decision = outcome.xcoms["gate"]
    assert decision["metrics"]["decision"] == "retrain"
    inputs = decision["metrics"]["inputs"]
    assert len(inputs) == 3 and all(i.startswith("drift:") and i.endswith(":fail") for i in inputs), inputs
    assert asset_events(airflow_db, uri) == before + 1
    # Each map index stored its own drift result, and its XCom says whose it is (the gate keys each
    # mapped result's streak by it, not by its position in the pulled list).
    rows = results_store(airflow_db).history(dag_id=dag_id, task_id="drift")
    assert sorted(r.run.map_index for r in rows) == [0, 1, 2]
    engine = sa.create_engine(f"sqlite:///{airflow_db / 'airflow.db'}")
    with engine.connect() as conn:
        pushed = conn.execute(
            sa.text(
                "SELECT x.map_index, x.value FROM xcom x JOIN dag_run r ON r.dag_id = x.dag_id AND r.run_id = x.run_id "
                "WHERE x.dag_id = :dag AND x.task_id = 'drift' AND x.key = 'return_value' "
                "AND date(r.logical_date) = :day"
            ),
            {"dag": dag_id, "day": DRIFTED_DAY},
        ).all()
    engine.dispose()
    carried = {int(index): json.loads(value)["map_index"] for index, value in pushed}
    assert carried == {0: 0, 1: 1, 2: 2}


def test_rerunning_a_drifted_window_never_retrains_twice(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    """The same window run three times, and by a second gate with the same target: one retraining.
    Before, a stored decision whose window ended at `now` was ignored, so each re-run retrained."""
    uri = "mlobs://test/gate-rerun"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    body = ""
    for dag_id in ("mlobs_gate_rerun", "mlobs_gate_rerun_other"):
        body += f"""
with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
    baseline = BaselineOperator(
        task_id="baseline", baseline="rerun", version="v1", conn_id="wh", table="events",
        timestamp_column="ts", **REFERENCE,
    )
    drift = DriftCheckOperator(
        task_id="drift", baseline="rerun", conn_id="wh", table="events", timestamp_column="ts",
        on_breach="continue",
    )
    gate = RetrainGateOperator(task_id="gate", drift_share=0.5, outlets=[Asset({uri!r})])
    baseline >> drift >> gate
"""
    write_dag(dags, "gate_rerun", body)
    before = asset_events(airflow_db, uri)
    first = run_dag(airflow_db, dags, "mlobs_gate_rerun", DRIFTED_DAY, env)
    assert first.states["gate"] == "success", first.output[-4000:]
    retrained_at = first.xcoms["gate"]["metrics"]["retrained_at"]
    assert retrained_at == "2026-11-07T00:00:00+00:00"
    assert asset_events(airflow_db, uri) == before + 1
    for _ in range(2):
        again = run_dag(airflow_db, dags, "mlobs_gate_rerun", DRIFTED_DAY, env)
        assert again.states["drift"] == "success", again.output[-4000:]
        assert again.states["gate"] == "skipped", again.output[-4000:]
        held = again.xcoms["gate"]
        assert held["metrics"]["decision"] == "hold"
        assert "already started a retraining" in held["summary"]
        assert held["metrics"]["retrained_at"] == retrained_at  # kept, so the next re-run holds too
    other = run_dag(airflow_db, dags, "mlobs_gate_rerun_other", DRIFTED_DAY, env)
    assert other.states["gate"] == "skipped", other.output[-4000:]
    assert "already started a retraining by mlobs_gate_rerun.gate" in other.xcoms["gate"]["summary"]
    assert asset_events(airflow_db, uri) == before + 1


def test_gate_inputs_it_cannot_trust_are_an_error_naming_the_task(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    """A misspelt check_task_ids, an upstream that pushed nothing, an upstream `error`: each was
    "pass: no retraining needed"; now each is an `error` result that names the task."""
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    write_dag(
        dags,
        "gate_inputs",
        """
        from airflow.providers.standard.operators.empty import EmptyOperator
        common = dict(conn_id="wh", table="events", timestamp_column="ts", on_breach="continue")
        with DAG("mlobs_gate_typo", schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", baseline="inputs", version="v1",
                conn_id="wh", table="events", timestamp_column="ts", **REFERENCE)
            drift = DriftCheckOperator(task_id="drift", baseline="inputs", **common)
            baseline >> drift >> RetrainGateOperator(task_id="gate", check_task_ids=["drfit"])
        with DAG("mlobs_gate_nothing", schedule=SCHEDULE, start_date=START, catchup=False):
            EmptyOperator(task_id="prepare") >> RetrainGateOperator(task_id="gate", check_task_ids=["prepare"])
        with DAG("mlobs_gate_upstream_error", schedule=SCHEDULE, start_date=START, catchup=False):
            drift = DriftCheckOperator(task_id="drift", baseline="no_such_baseline", **common)
            drift >> RetrainGateOperator(task_id="gate", trigger_rule="all_done")
        """,
    )
    expected = {
        "mlobs_gate_typo": "check_task_ids names 'drfit', which is not a task of DAG 'mlobs_gate_typo'",
        "mlobs_gate_nothing": "upstream task 'prepare' pushed no check result",
        "mlobs_gate_upstream_error": "upstream task 'drift' could not run its check: ",
    }
    for dag_id, message in expected.items():
        outcome = run_dag(airflow_db, dags, dag_id, DRIFTED_DAY, env)
        assert outcome.states["gate"] == "failed", (dag_id, outcome.output[-4000:])
        stored = results_store(airflow_db).history(dag_id=dag_id, task_id="gate")
        assert len(stored) == 1, dag_id
        result = stored[0].result
        assert result.status is Status.ERROR and result.check == "retrain_gate"
        assert message in result.summary, (dag_id, result.summary)
    missing = results_store(airflow_db).history(dag_id="mlobs_gate_upstream_error", task_id="gate")[0]
    assert "no baseline named 'no_such_baseline'" in missing.result.summary


def test_a_corrupt_history_row_is_skipped_and_counted(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    """One truncated stored decision used to crash every later gate run."""
    dag_id = "mlobs_gate_corrupt"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    write_dag(
        dags,
        "gate_corrupt",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", baseline="corrupt", version="v1", **common, **REFERENCE)
            drift = DriftCheckOperator(task_id="drift", baseline="corrupt", on_breach="continue", **common)
            gate = RetrainGateOperator(
                task_id="gate", drift_share=0.5, cooldown="3d", outlets=[Asset("mlobs://test/gate-corrupt")]
            )
            baseline >> drift >> gate
        """,
    )
    store = results_store(airflow_db)
    store.ensure_table()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(results_table).values(
                result_key=f"{dag_id}|gate|-1|corrupt|2026-11-06",
                dag_id=dag_id,
                task_id="gate",
                map_index=-1,
                run_id="manual__corrupt",
                check_name="retrain_gate",
                dataset=f"{dag_id}.gate",
                status="warn",
                summary="truncated",
                window_start=datetime(2026, 11, 5, tzinfo=UTC),
                window_end=datetime(2026, 11, 6, tzinfo=UTC),
                result_json='{"check": "retrain_gate", "metrics": {"decision": "retr',
                recorded_at=datetime.now(UTC),
            )
        )
    outcome = run_dag(airflow_db, dags, dag_id, DRIFTED_DAY, env_for(warehouse_db, baselines))
    assert outcome.states["gate"] == "success", outcome.output[-4000:]
    assert outcome.xcoms["gate"]["metrics"]["decision"] == "retrain"
    assert "Skipped 1 stored result(s) that could not be read" in outcome.output
