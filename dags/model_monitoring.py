"""Daily checks on the churn model's inputs, before it scores customers and to decide on retraining.

- Freshness of the feature table and the transactions feed, the feature table's schema against
  its contract, and the day's customer activity against its Great Expectations suite (ages 18 to
  100, known regions, row count...), all from ``expectations/``: each fails its task on a breach
  (``on_breach="fail"``), so ``score_customers`` never scores on stale or broken data, and the
  drift check and retraining gate never act on it.
- Drift of the day's customer activity against the newest ``churn_features`` baseline (built once,
  as v1, from the reference period of the training data). A breach does not fail the task
  (``on_breach="continue"``): the retraining gate decides. When half the features drift, the gate
  emits an event on the ``mlobs://churn/retrain`` asset, which schedules ``model_retraining``
  (at most once every two days).

The warehouse is the Airflow connection ``mlobs_warehouse`` (the demo points it at an embedded
SQLite file). Nothing here touches data at parse time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task

from airflow_mlobs.operators import (
    BaselineOperator,
    DriftCheckOperator,
    ExpectationSuiteOperator,
    FreshnessCheckOperator,
    RetrainGateOperator,
    SchemaCheckOperator,
)

WAREHOUSE = "mlobs_warehouse"
RETRAIN = Asset("mlobs://churn/retrain")
FEATURES = ["customer_age", "tenure_months", "monthly_spend", "region"]

with DAG(
    dag_id="model_monitoring",
    description="Freshness and schema checks on the churn model's inputs",
    # Each run covers the day before it. With schedule="@daily" (CronTriggerTimetable in Airflow 3:
    # zero-length intervals) the window="1d" below gives the windowed checks the same day; so it
    # does for manual runs without a logical date.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn"],
    default_args={"retries": 0},
) as dag:
    features_fresh = FreshnessCheckOperator(
        task_id="freshness_customer_features",
        conn_id=WAREHOUSE,
        table="customer_features",
        timestamp_column="updated_at",
        max_age="1d",
        warn_after="12h",
    )
    transactions_fresh = FreshnessCheckOperator(
        task_id="freshness_transactions",
        conn_id=WAREHOUSE,
        table="transactions",
        timestamp_column="event_time",
        max_age="6h",
        warn_after="2h",
    )
    features_schema = SchemaCheckOperator(
        task_id="schema_customer_features",
        conn_id=WAREHOUSE,
        table="customer_features",
        contract="customer_features.schema.json",
    )

    @task
    def score_customers(data_interval_end: datetime | None = None) -> int:
        """Score every customer with the churn model and write the scores to the warehouse."""
        import numpy as np
        import pandas as pd
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(WAREHOUSE).get_hook()
        assert isinstance(hook, DbApiHook)
        engine = hook.get_sqlalchemy_engine()
        features = pd.read_sql(
            "SELECT customer_id, customer_age, tenure_months, monthly_spend FROM customer_features", engine
        )
        # A fixed logistic model stands in for the trained one (the retraining DAG replaces it).
        logit = (
            -1.0
            - 0.02 * (features["customer_age"] - 45)
            - 0.03 * features["tenure_months"]
            + 0.004 * features["monthly_spend"]
        )
        scores = pd.DataFrame(
            {
                "customer_id": features["customer_id"],
                "churn_score": 1.0 / (1.0 + np.exp(-logit)),
                "scored_for": (data_interval_end or datetime.now(UTC)).isoformat(),
            }
        )
        scores.to_sql("churn_predictions", engine, if_exists="append", index=False)
        return len(scores)

    activity_quality = ExpectationSuiteOperator(
        task_id="quality_customer_activity",
        conn_id=WAREHOUSE,
        table="customer_activity",
        timestamp_column="event_time",  # the day before the run, validated in the database
        window="1d",
        suite="customer_activity.quality.json",
    )

    [features_fresh, transactions_fresh, features_schema, activity_quality] >> score_customers()

    reference_baseline = BaselineOperator(
        task_id="baseline_v1",
        baseline="churn_features",
        version="v1",  # idempotent: built on the first run, kept afterwards
        conn_id=WAREHOUSE,
        table="churn_training",
        timestamp_column="event_time",
        reference_start="2026-11-10T00:00:00+00:00",
        reference_end="2026-11-20T00:00:00+00:00",
        columns=FEATURES,
    )
    feature_drift = DriftCheckOperator(
        task_id="drift_customer_activity",
        conn_id=WAREHOUSE,
        table="customer_activity",
        timestamp_column="event_time",
        window="1d",
        baseline="churn_features",  # the newest version: v1, then what retraining writes
        columns=FEATURES,
        on_breach="continue",
    )
    gate = RetrainGateOperator(
        task_id="retrain_gate",
        drift_share=0.5,
        critical_features=["tenure_months"],
        cooldown="2d",
        outlets=[RETRAIN],
    )
    [reference_baseline, activity_quality] >> feature_drift >> gate
