"""A sampled drift check (``sample="50%"``, ``sample_key="id"`` on SQLite) in a real Airflow DAG
run still catches a real drift, and its result says it was sampled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_drift_in_dags import DAYS, DRIFT_DAY, FIRST_DAY, _rows, env_for, write_dag

pytestmark = pytest.mark.e2e


def _warehouse(tmp_path: Path) -> Path:
    rng = np.random.default_rng(20261204)
    rows = []
    for d in range(DAYS):
        day = FIRST_DAY + timedelta(days=d)
        rows += _rows(rng, day, features_drift=day >= DRIFT_DAY, score_drifts=False)
    for i, row in enumerate(rows):
        row["id"] = i
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE events (id INTEGER, ts TIMESTAMP, x1 REAL, x2 REAL, segment TEXT, score REAL)"
            )
        )
        conn.execute(sa.text("INSERT INTO events VALUES (:id, :ts, :x1, :x2, :segment, :score)"), rows)
    engine.dispose()
    return path


def test_sampled_drift_check_catches_a_real_drift(airflow_db: Path, tmp_path: Path) -> None:
    dag_id = "mlobs_sampled_drift"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(_warehouse(tmp_path), baselines)
    write_dag(
        dags,
        "sampled_drift",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", baseline="events", version="v1", **common, **REFERENCE)
            drift = DriftCheckOperator(
                task_id="drift", baseline="events", columns=["x1", "x2", "segment"], on_breach="continue",
                sample="50%", sample_key="id", sample_seed=7, **common,
            )
            baseline >> drift
        """,
    )
    outcome = run_dag(airflow_db, dags, dag_id, "2026-11-06", env)
    assert outcome.returncode == 0, outcome.output[-3000:]
    compact = outcome.xcoms["drift"]
    assert compact["status"] == "fail"
    assert "sampled 50.0000% by key-hash on id (seed 7)" in compact["summary"]
    sample = compact["metrics"]["sample"]
    assert (sample["method"], sample["key"], sample["rate"]) == ("key-hash", "id", 0.5)
    assert 100 < sample["sampled_rows"] < 200  # about half of the day's 300 rows
    assert {d["column"] for d in compact["metrics"]["drifted_columns"]} >= {"x1"}
    errors = sample["psi_standard_error"]
    assert set(errors) == {"id", "x1", "x2", "score"}  # the baseline's numeric columns (id too)
    assert all(0 < e < 1 for e in errors.values())


def test_a_sampled_baseline_in_a_dag_is_recorded_and_named_by_the_check(
    airflow_db: Path, tmp_path: Path
) -> None:
    """``BaselineOperator(sample="50%", sample_key="id")``: the stored baseline records its sample,
    and the (unsampled) drift check's result names it and states each column's sampling error."""
    from airflow_mlobs.core.profile import load_baseline

    dag_id = "mlobs_sampled_baseline"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(_warehouse(tmp_path), baselines)
    write_dag(
        dags,
        "sampled_baseline",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(
                task_id="baseline", baseline="events", version="v1", sample="50%", sample_key="id",
                sample_seed=3, **common, **REFERENCE,
            )
            drift = DriftCheckOperator(
                task_id="drift", baseline="events", columns=["x1", "x2", "segment"], on_breach="continue", **common,
            )
            baseline >> drift
        """,
    )
    outcome = run_dag(airflow_db, dags, dag_id, "2026-11-06", env)
    assert outcome.returncode == 0, outcome.output[-3000:]
    stored = load_baseline(baselines, "events", "v1").reference.sample
    assert stored is not None and (stored.method, stored.key, stored.rate, stored.seed) == (
        "key-hash",
        "id",
        0.5,
        3,
    )
    assert "sampled 50.0000% by key-hash on id (seed 3)" in outcome.xcoms["baseline"]["summary"]
    compact = outcome.xcoms["drift"]
    assert compact["status"] == "fail"  # the drift is far past the threshold, error and all
    assert "(sampled)" in " ".join(f["reason"] for f in compact["top_findings"] if f["subject"] == "x1")
    errors = compact["metrics"]["sampling_error"]["standard_error"]
    assert set(errors) == {"x1", "x2", "segment"} and all(e > 0 for e in errors.values())
    assert "(baseline sampled 50.0000% by key-hash on id (seed 3)" in compact["summary"]
