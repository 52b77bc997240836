"""The example DAGs in real Airflow, through the demo's story: drift starts, the gate emits the
retraining asset event, retraining trains and writes a new baseline, the next window passes against
it, then a stale feed and a renamed column stop the scoring; and the late labels: the model's
accuracy from the prediction log joined with the labels in the (SQLite) warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.store import ResultsStore
from demo import warehouse
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def asset_events(airflow_home: Path, uri: str) -> int:
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = :uri"
            ),
            {"uri": uri},
        ).scalar()
    engine.dispose()
    return int(count or 0)


def test_example_dags_through_the_demo_story(airflow_db: Path, tmp_path: Path) -> None:
    url = warehouse.build(tmp_path / "warehouse.db")
    baselines, models = tmp_path / "baselines", tmp_path / "models"
    env = {
        "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps(
            {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
        ),
        "MLOBS_BASELINE_DIR": str(baselines),
        "MLOBS_MODEL_DIR": str(models),
    }
    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_db / 'mlobs_results.db'}"))
    events_before = asset_events(airflow_db, "mlobs://churn/retrain")

    drift_day = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-24", env)
    assert drift_day.returncode == 0, drift_day.output[-3000:]
    assert set(drift_day.states.values()) == {"success"}, drift_day.states
    drift = drift_day.xcoms["drift_customer_activity"]
    assert drift["status"] == "fail"
    assert {d["column"] for d in drift["metrics"]["drifted_columns"]} == set(warehouse.FEATURES)
    assert drift_day.xcoms["retrain_gate"]["metrics"]["decision"] == "retrain"
    assert asset_events(airflow_db, "mlobs://churn/retrain") == events_before + 1
    assert load_baseline(baselines, "churn_features").version == "v1"

    retraining = run_dag(airflow_db, ROOT / "dags", "model_retraining", "2026-11-24", env)
    assert retraining.returncode == 0, retraining.output[-3000:]
    assert set(retraining.states.values()) == {"success"}, retraining.states
    model = retraining.xcoms["train_model"]
    assert model["version"] == "v20261124" and model["rows"] == warehouse.ROWS_PER_DAY
    assert 0.3 < model["positive_rate"] < 0.55  # the new regime's churn rate
    assert (models / "churn" / "v20261124.json").exists()
    assert load_baseline(baselines, "churn_features").version == "v20261124"

    retrained = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-25", env)
    assert retrained.returncode == 0, retrained.output[-3000:]
    assert retrained.xcoms["drift_customer_activity"]["status"] == "pass"
    assert retrained.xcoms["drift_customer_activity"]["metrics"]["baseline"] == "churn_features/v20261124"
    assert retrained.states["retrain_gate"] == "skipped"
    assert retrained.xcoms["freshness_transactions"]["metrics"]["age_seconds"] == 90 * 60
    assert asset_events(airflow_db, "mlobs://churn/retrain") == events_before + 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(*) FROM churn_predictions")).scalar()
    assert scored == 2 * warehouse.N_CUSTOMERS

    warehouse.rename_customer_age(url)
    broken = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-26", env)
    assert broken.returncode != 0
    assert broken.states["freshness_customer_features"] == "success"
    assert broken.states["freshness_transactions"] == "failed"
    assert broken.states["schema_customer_features"] == "failed"
    assert broken.states["quality_customer_activity"] == "failed"  # the ages of 150
    assert broken.states["score_customers"] == "upstream_failed"
    # Drift is not judged, and nothing retrains, on data that failed its quality suite.
    assert broken.states["drift_customer_activity"] == "upstream_failed"
    assert broken.states["retrain_gate"] == "upstream_failed"
    quality = broken.xcoms["quality_customer_activity"]
    assert quality["status"] == "fail"
    assert any("150" in f["reason"] and f["subject"] == "customer_age" for f in quality["top_findings"])
    # The breach's compact result is pushed before the task fails.
    assert broken.xcoms["freshness_transactions"]["status"] == "fail"
    assert "stale" in broken.xcoms["freshness_transactions"]["summary"]
    schema_xcom = broken.xcoms["schema_customer_features"]
    assert schema_xcom["status"] == "fail"
    assert (
        schema_xcom["top_findings"][0]["reason"]
        == "`customer_age` missing; `age` appeared with the same type: renamed?"
    )
    assert "renamed?" in broken.output
    with engine.connect() as conn:  # scoring never ran on the broken features
        assert conn.execute(sa.text("SELECT count(*) FROM churn_predictions")).scalar() == scored

    by_day = {
        (s.run.task_id, s.result.window_end.date().isoformat()): s.result.status.value  # type: ignore[union-attr]
        for s in store.history(dag_id="model_monitoring")
        if s.result.window_end is not None
    }
    assert by_day[("drift_customer_activity", "2026-11-24")] == "fail"
    assert by_day[("drift_customer_activity", "2026-11-25")] == "pass"
    assert by_day[("freshness_transactions", "2026-11-26")] == "fail"
    assert by_day[("schema_customer_features", "2026-11-26")] == "fail"
    assert by_day[("quality_customer_activity", "2026-11-25")] == "pass"
    assert by_day[("quality_customer_activity", "2026-11-26")] == "fail"
    # The drift check stored each window's profile for later roll-ups.
    stored_profiles = store.profiles(
        "mlobs_warehouse:customer_activity", edges_key=load_baseline(baselines, "churn_features", "v1").key
    )
    assert [p.row_count for p in stored_profiles] == [warehouse.ROWS_PER_DAY]

    # Re-running the same interval replaces each task's row instead of adding one.
    before = len(store.history(dag_id="model_monitoring"))
    again = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-26", env)
    assert again.returncode != 0
    assert len(store.history(dag_id="model_monitoring")) == before

    # Late labels: 11-22's predictions are judged on 11-26 (before the shift), 11-23's on 11-27.
    before_shift = run_dag(airflow_db, ROOT / "dags", "model_performance", "2026-11-26", env)
    assert before_shift.returncode == 0, before_shift.output[-3000:]
    matured = before_shift.xcoms["performance_matured"]
    assert matured["status"] == "pass", matured["summary"]
    metrics = matured["metrics"]
    assert metrics["prediction_window"] == ["2026-11-22T00:00:00+00:00", "2026-11-23T00:00:00+00:00"]
    assert metrics["baseline_source"] == "reference" and 0.85 < metrics["baseline_value"] < 0.95
    assert metrics["reference"]["labelled"] > 5000 and metrics["label_coverage"] > 0.8
    assert 0.8 < metrics["value"] < 0.95
    recent = before_shift.xcoms["performance_recent"]
    assert recent["status"] == "skipped" and "labels not mature" in recent["summary"]
    assert "calibrated on the reference window" in recent["summary"]
    assert recent["metrics"]["label_coverage"] < 0.2
    assert before_shift.states["retrain_gate"] == "skipped"

    shifted = run_dag(airflow_db, ROOT / "dags", "model_performance", "2026-11-27", env)
    assert shifted.returncode == 0, shifted.output[-3000:]
    matured = shifted.xcoms["performance_matured"]
    assert matured["status"] == "fail", matured["summary"]
    assert matured["metrics"]["drop"] > 0.15 and matured["metrics"]["worst_segments"][0] == "west"
    # The drift gate retrained the model on 11-24; the labels confirm the damage within the shared
    # cooldown, so this gate holds instead of retraining again.
    held = shifted.xcoms["retrain_gate"]
    assert held["metrics"]["decision"] == "hold", held["summary"]
    assert "last retrain by model_monitoring.retrain_gate 3d ago" in held["summary"]
    assert asset_events(airflow_db, "mlobs://churn/retrain") == events_before + 1

    # Bias creep: from 11-26 the model scores south lower. prediction_fairness judges the run's own
    # day of predictions from the predictions alone: it warns the same day, naming the region, while
    # none of that day's labels has arrived (the label gaps are skipped with the reason).
    assert before_shift.xcoms["prediction_fairness"]["status"] == "pass"  # 11-25: not yet biased
    fairness = shifted.xcoms["prediction_fairness"]
    assert shifted.states["prediction_fairness"] == "success"
    assert fairness["status"] == "warn", fairness["summary"]
    assert "region=south selected at" in fairness["summary"]
    region = fairness["metrics"]["region"]
    ratio = region["gaps"]["disparate_impact_ratio"]
    # judged beyond sampling error: the upper end of its 95% interval is below the four-fifths level
    assert ratio["worst"] == "south" and ratio["high"] < 0.8
    assert (
        before_shift.xcoms["prediction_fairness"]["metrics"]["region"]["gaps"]["disparate_impact_ratio"][
            "high"
        ]
        >= 0.8
    )
    assert region["gaps"]["equal_opportunity_difference"]["value"] is None  # no labels yet
    assert (
        "no group has enough labelled predictions yet"
        in region["gaps"]["equal_opportunity_difference"]["reason"]
    )
    assert {g["labelled"] for g in region["groups"].values()} == {0}
