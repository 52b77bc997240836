"""Bias across groups in a real DAG run on PostgreSQL: on the day of the predictions (no label yet)
region "south" is selected at about half the rate of the others; the fairness check warns, naming
it, with the label metrics skipped for want of labels."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DAY = datetime(2026, 11, 8, tzinfo=UTC)


def _load(engine: sa.Engine, schema: str) -> None:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(1500):
        region = ["north", "south", "east"][i % 3]
        score = float(rng.random() * (0.6 if region == "south" else 1.0))
        rows.append({"i": i, "t": DAY + timedelta(seconds=50 * i), "s": score, "r": region})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".mlobs_prediction_log (prediction_id BIGINT, predicted_at TIMESTAMPTZ, '
                "score FLOAT, region TEXT)"
            )
        )
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".mlobs_labels (prediction_id BIGINT, label INT, labelled_at TIMESTAMPTZ)'
            )
        )
        conn.execute(sa.text(f'INSERT INTO "{schema}".mlobs_prediction_log VALUES (:i, :t, :s, :r)'), rows)


def test_fairness_check_warns_the_same_day(
    airflow_db: Path, tmp_path: Path, pg_engine: sa.Engine, pg_schema: str
) -> None:
    _load(pg_engine, pg_schema)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "fairness_dag.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import UTC, datetime
            from airflow.sdk import DAG, CronDataIntervalTimetable
            from airflow_mlobs.operators import FairnessCheckOperator

            with DAG(
                "mlobs_fairness",
                schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
                start_date=datetime(2026, 10, 1, tzinfo=UTC),
                catchup=False,
            ):
                FairnessCheckOperator(
                    task_id="churn_fairness",
                    conn_id="wh",
                    predictions_table="{pg_schema}.mlobs_prediction_log",
                    labels_table="{pg_schema}.mlobs_labels",
                    group_columns=["region"],
                )
            """
        )
    )
    env = {"AIRFLOW_CONN_WH": json.dumps(pg_connection_fields())}
    outcome = run_dag(airflow_db, dags, "mlobs_fairness", "2026-11-09", env)
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert outcome.states == {"churn_fairness": "success"}, outcome.states
    check = outcome.xcoms["churn_fairness"]
    assert check["check"] == "fairness" and check["status"] == "warn", check["summary"]
    assert "region=south" in check["summary"]
    gaps = check["metrics"]["region"]["gaps"]
    assert 0.2 < gaps["disparate_impact_ratio"]["value"] < 0.5  # expected (1/6) / (1/2)
    assert gaps["equalized_odds_difference"]["value"] is None
    assert "labelled" in gaps["equalized_odds_difference"]["reason"]
