"""Retrain the churn model when the monitoring DAG's gate says so, never on broken data.

Scheduled on the ``mlobs://churn/retrain`` asset (the monitoring DAG's retraining gate). It checks
the training data first, with ``on_breach="fail"``: stale, malformed or implausible data (its
freshness, schema contract and quality suite) stops the run before anything is trained. Then it fits a logistic regression (numpy, Newton's method) on the last day of
labelled data, writes the model as a new version, and builds a new drift baseline from the same
window, so monitoring compares the next windows with the data the new model learned from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_mlobs.operators import (
    BaselineOperator,
    ExpectationSuiteOperator,
    FreshnessCheckOperator,
    SchemaCheckOperator,
)

WAREHOUSE = "mlobs_warehouse"
RETRAIN = Asset("mlobs://churn/retrain")
FEATURES = ["customer_age", "tenure_months", "monthly_spend", "region"]
REGIONS = ["north", "south", "east", "west"]

with DAG(
    dag_id="model_retraining",
    description="Retrain the churn model on fresh, valid data; write a new baseline",
    schedule=[RETRAIN],
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn"],
    default_args={"retries": 0},
) as dag:
    training_fresh = FreshnessCheckOperator(
        task_id="freshness_churn_training",
        conn_id=WAREHOUSE,
        table="churn_training",
        timestamp_column="event_time",
        max_age="1d",
        as_of="{{ ti.xcom_pull(task_ids='training_window')['end'] }}",  # fresh up to the day we train on
        on_breach="fail",
    )
    training_schema = SchemaCheckOperator(
        task_id="schema_churn_training",
        conn_id=WAREHOUSE,
        table="churn_training",
        contract="churn_training.schema.json",
        on_breach="fail",
    )

    @task
    def training_window(**context: Any) -> dict[str, str]:
        """The day to train on: the one the gate judged (its asset event carries ``window_end``);
        for a run started otherwise, the day before the run's data interval end or logical date.
        Asset-triggered runs have no data interval in Airflow 3, so it cannot be templated."""
        end: datetime | None = None
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                stamp = (getattr(event, "extra", None) or {}).get("window_end")
                if stamp:
                    end = max(end, datetime.fromisoformat(stamp)) if end else datetime.fromisoformat(stamp)
        end = end or context.get("data_interval_end") or context.get("logical_date") or datetime.now(UTC)
        return {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()}

    window = training_window()
    training_quality = ExpectationSuiteOperator(
        task_id="quality_churn_training",
        conn_id=WAREHOUSE,
        table="churn_training",
        timestamp_column="event_time",
        # The day train_model learns from.
        window_start="{{ ti.xcom_pull(task_ids='training_window')['start'] }}",
        window_end="{{ ti.xcom_pull(task_ids='training_window')['end'] }}",
        suite="churn_training.quality.json",
        on_breach="fail",
    )

    @task
    def train_model(**context: Any) -> dict[str, Any]:
        """Fit the model on the day before the run and store it as a new version."""
        import json
        import os
        from pathlib import Path

        import numpy as np
        import pandas as pd
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook

        window = context["ti"].xcom_pull(task_ids="training_window")
        start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
        hook = BaseHook.get_connection(WAREHOUSE).get_hook()
        assert isinstance(hook, DbApiHook)
        frame = pd.read_sql(
            "SELECT customer_age, tenure_months, monthly_spend, region, churned FROM churn_training "
            "WHERE event_time >= :start AND event_time < :end",
            hook.get_sqlalchemy_engine(),
            params={
                "start": start.astimezone(UTC).replace(tzinfo=None),
                "end": end.astimezone(UTC).replace(tzinfo=None),
            },
        )
        if len(frame) < 100:
            raise ValueError(
                f"only {len(frame)} labelled rows in churn_training for {start}..{end}; not training"
            )
        x = np.column_stack(
            [
                np.ones(len(frame)),
                (frame["customer_age"] - 45) / 15,
                (frame["tenure_months"] - 60) / 35,
                (frame["monthly_spend"] - 60) / 40,
                *[(frame["region"] == r).astype(float) for r in REGIONS[1:]],
            ]
        )
        y = frame["churned"].to_numpy(dtype=float)
        weights = np.zeros(x.shape[1])
        for _ in range(25):  # Newton's method with a small ridge penalty
            p = 1 / (1 + np.exp(-x @ weights))
            gradient = x.T @ (p - y) + 1e-3 * weights
            hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(x.shape[1])
            step = np.linalg.solve(hessian, gradient)
            weights -= step
            if np.abs(step).max() < 1e-8:
                break
        p = 1 / (1 + np.exp(-x @ weights))
        version = "v" + end.strftime("%Y%m%d")
        model_dir = (
            Path(os.environ.get("MLOBS_MODEL_DIR") or Path(os.environ["AIRFLOW_HOME"]) / "models") / "churn"
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        summary = {
            "version": version,
            "trained_on": [start.isoformat(), end.isoformat()],
            "rows": len(frame),
            "positive_rate": round(float(y.mean()), 4),
            "training_accuracy": round(float(((p >= 0.5) == (y == 1)).mean()), 4),
        }
        (model_dir / f"{version}.json").write_text(
            json.dumps({**summary, "weights": weights.tolist()}, indent=1)
        )
        return summary

    trained = train_model()
    new_baseline = BaselineOperator(
        task_id="baseline_from_training_window",
        baseline="churn_features",
        version="{{ ti.xcom_pull(task_ids='train_model')['version'] }}",
        conn_id=WAREHOUSE,
        table="churn_training",
        timestamp_column="event_time",
        reference_start="{{ ti.xcom_pull(task_ids='train_model')['trained_on'][0] }}",
        reference_end="{{ ti.xcom_pull(task_ids='train_model')['trained_on'][1] }}",
        columns=FEATURES,
    )
    window >> [training_fresh, training_quality]
    [training_fresh, training_schema, training_quality] >> trained >> new_baseline
