"""The example DAG in real Airflow: a healthy day, then a stale feed and a renamed column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from demo import warehouse
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_model_monitoring_healthy_then_broken(airflow_db: Path, tmp_path: Path) -> None:
    url = warehouse.build(tmp_path / "warehouse.db")
    env = {
        "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps(
            {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
        )
    }
    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_db / 'mlobs_results.db'}"))

    healthy = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-25", env)
    assert healthy.returncode == 0, healthy.output[-3000:]
    assert set(healthy.states.values()) == {"success"}, healthy.states
    assert healthy.xcoms["freshness_transactions"]["status"] == "pass"
    assert healthy.xcoms["freshness_transactions"]["metrics"]["age_seconds"] == 90 * 60
    assert healthy.xcoms["schema_customer_features"]["status"] == "pass"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM churn_predictions")).scalar() == warehouse.N_CUSTOMERS
        )

    warehouse.rename_customer_age(url)
    broken = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-26", env)
    assert broken.returncode != 0
    assert broken.states == {
        "freshness_customer_features": "success",
        "freshness_transactions": "failed",
        "schema_customer_features": "failed",
        "score_customers": "upstream_failed",
    }
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
        assert (
            conn.execute(sa.text("SELECT count(*) FROM churn_predictions")).scalar() == warehouse.N_CUSTOMERS
        )

    by_day = {
        (s.run.task_id, s.result.window_end.date().isoformat()): s.result.status.value  # type: ignore[union-attr]
        for s in store.history(dag_id="model_monitoring")
    }
    assert by_day[("freshness_transactions", "2026-11-25")] == "pass"
    assert by_day[("freshness_transactions", "2026-11-26")] == "fail"
    assert by_day[("schema_customer_features", "2026-11-26")] == "fail"

    # Re-running the same interval replaces each task's row instead of adding one.
    before = len(store.history(dag_id="model_monitoring"))
    again = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-26", env)
    assert again.returncode != 0
    assert len(store.history(dag_id="model_monitoring")) == before
