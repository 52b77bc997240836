"""Delayed-label performance in a real Airflow DAG run: the model's accuracy dropped a week ago, the
labels have arrived, the check fails (on_breach="continue") and the retraining gate opens on
``performance_drop``. A second run, whose labels are not mature yet, is skipped with the coverage."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Predictions on 2026-11-01 (accuracy about 70%, baseline 85%) and 2026-11-07 (labels not yet in).
# The run at logical date 2026-11-09 judges the interval [11-08, 11-09): predictions of [11-01, 11-02).
DROP_DAY = datetime(2026, 11, 1, tzinfo=UTC)
FRESH_DAY = datetime(2026, 11, 7, tzinfo=UTC)


def _load(engine: sa.Engine, schema: str) -> None:
    rng = np.random.default_rng(20261109)
    preds, labels = [], []
    pid = 0
    for day, accuracy, labelled_share in ((DROP_DAY, 0.70, 0.95), (FRESH_DAY, 0.85, 0.3)):
        for i in range(2000):
            pid += 1
            y = int(rng.random() < 0.4)
            correct = rng.random() < accuracy
            predicted = y if correct else 1 - y
            score = float(np.clip(rng.normal(0.75 if predicted else 0.25, 0.12), 0, 1))
            at = day + timedelta(seconds=i * 40)
            preds.append({"i": pid, "t": at, "c": predicted, "s": score, "g": "web" if i % 2 else "app"})
            if rng.random() < labelled_share:
                labels.append({"i": pid, "y": y, "t": at + timedelta(days=float(rng.uniform(0.5, 3)))})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".predictions (prediction_id BIGINT PRIMARY KEY, predicted_at TIMESTAMPTZ, '
                "predicted_class INT, score FLOAT, channel TEXT)"
            )
        )
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".labels (prediction_id BIGINT, label INT, labelled_at TIMESTAMPTZ)'
            )
        )
        conn.execute(sa.text(f'INSERT INTO "{schema}".predictions VALUES (:i, :t, :c, :s, :g)'), preds)
        conn.execute(sa.text(f'INSERT INTO "{schema}".labels VALUES (:i, :y, :t)'), labels)


def test_accuracy_drop_fails_the_check_and_opens_the_gate(
    airflow_db: Path, tmp_path: Path, pg_engine: sa.Engine, pg_schema: str
) -> None:
    _load(pg_engine, pg_schema)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "performance_dag.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import UTC, datetime
            from airflow.sdk import DAG, Asset, CronDataIntervalTimetable
            from airflow_mlobs.operators import PerformanceCheckOperator, RetrainGateOperator

            with DAG(
                "mlobs_performance",
                schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
                start_date=datetime(2026, 10, 1, tzinfo=UTC),
                catchup=False,
            ):
                check = PerformanceCheckOperator(
                    task_id="churn_performance",
                    conn_id="wh",
                    predictions_table="{pg_schema}.predictions",
                    labels_table="{pg_schema}.labels",
                    prediction_time_column="predicted_at",
                    label_time_column="labelled_at",
                    predicted_column="predicted_class",
                    score_column="score",
                    segment_column="channel",
                    label_delay="7d",
                    baseline={{"accuracy": 0.85}},
                    max_drop=(0.02, 0.05),
                    min_label_coverage=0.8,
                    on_breach="continue",
                )
                gate = RetrainGateOperator(
                    task_id="retrain_gate",
                    drift_share=None,
                    performance_drop=0.05,
                    outlets=[Asset("mlobs://churn/retrain")],
                )
                check >> gate
            """
        )
    )
    env = {"AIRFLOW_CONN_WH": json.dumps(pg_connection_fields())}
    outcome = run_dag(airflow_db, dags, "mlobs_performance", "2026-11-09", env)
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert outcome.states == {"churn_performance": "success", "retrain_gate": "success"}, outcome.states

    check = outcome.xcoms["churn_performance"]
    assert check["check"] == "performance" and check["status"] == "fail", check["summary"]
    metrics = check["metrics"]
    assert metrics["metric"] == "accuracy" and metrics["baseline_value"] == 0.85
    assert 0.66 < metrics["value"] < 0.74 and metrics["drop"] == pytest.approx(0.85 - metrics["value"])
    assert metrics["label_coverage"] > 0.9
    assert metrics["prediction_window"] == ["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"]
    assert metrics["label_cutoff"] == "2026-11-09T00:00:00+00:00"
    assert "accuracy" in check["summary"] and "vs baseline 85.0%" in check["summary"]
    assert {s["segment"] for s in metrics["segments"]} == {"web", "app"}

    gate = outcome.xcoms["retrain_gate"]
    assert gate["metrics"]["decision"] == "retrain"
    assert any("accuracy dropped by" in r for r in gate["metrics"]["reasons"]), gate["metrics"]["reasons"]

    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_db / 'mlobs_results.db'}"))
    stored = [s.result for s in store.history(dag_id="mlobs_performance", task_id="churn_performance")]
    assert stored and stored[0].status.value == "fail"
    assert stored[0].window_end == datetime(2026, 11, 9, tzinfo=UTC)

    # A week later the predictions of 11-07 have only 30% of their labels: skipped, and the gate
    # (nothing to act on) skips too.
    later = run_dag(airflow_db, dags, "mlobs_performance", "2026-11-15", env)
    assert later.returncode == 0, later.output[-4000:]
    immature = later.xcoms["churn_performance"]
    assert immature["status"] == "skipped"
    assert "labels not mature" in immature["summary"] and "coverage" in immature["summary"]
    assert later.states["retrain_gate"] == "skipped"

    # Another gate retraining the same asset (it judges the same dropped day, 8 days late) on 11-10,
    # a day after the first gate retrained: held by the shared 3-day cooldown, naming that gate.
    (dags / "other_gate.py").write_text(
        (dags / "performance_dag.py")
        .read_text()
        .replace('"mlobs_performance"', '"mlobs_performance_other"')
        .replace('label_delay="7d"', 'label_delay="8d"')
        .replace("performance_drop=0.05,", 'performance_drop=0.05, cooldown="3d",')
    )
    other = run_dag(airflow_db, dags, "mlobs_performance_other", "2026-11-10", env)
    assert other.returncode == 0, other.output[-4000:]
    assert other.xcoms["churn_performance"]["status"] == "fail"
    held = other.xcoms["retrain_gate"]
    assert held["metrics"]["decision"] == "hold", held["summary"]
    assert "held by cooldown (last retrain by mlobs_performance.retrain_gate 1d ago" in held["summary"]
    assert held["metrics"]["targets"] == ["mlobs://churn/retrain"]
    assert other.states["retrain_gate"] == "skipped"
