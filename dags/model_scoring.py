"""Daily batch scoring of the churn model, recorded in the prediction log ("flight recorder").

``score_and_log`` scores the customers active in the run's data interval (``customer_activity``)
with the deployed churn model and writes every prediction through ``PredictionLogger`` into
``mlobs_prediction_log`` in the warehouse: the model's inputs (one column each, so the drift
check reads them), its score and predicted class, the model version, a generated prediction id and
the moment of the activity. Customer ids are stored only as keyed pseudonyms (HMAC-SHA256): the key
is the password of the Airflow connection ``mlobs_pseudonym_key`` (never stored; its fingerprint is
written to ``mlobs_prediction_log_meta``). The labels arrive later and go to ``mlobs_labels``
through ``PredictionLogger.log_labels``; ``PerformanceCheckOperator`` reads both tables.

A re-run of an interval that is already in the log logs nothing (the log is append-only: a second
copy of the day would count every prediction twice). Nothing here touches data at parse time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from airflow.sdk import DAG, CronDataIntervalTimetable, task

# Light at parse time (SQLAlchemy, no numpy or pandas): the logger writes when the task runs.
from airflow_mlobs.connections import engine_for_connection
from airflow_mlobs.recorder import DEFAULT_TABLE, PredictionLogger

WAREHOUSE = "mlobs_warehouse"
PSEUDONYM_KEY_CONN = "mlobs_pseudonym_key"
MODEL_VERSION = "v1"
FEATURES = ["customer_age", "tenure_months", "monthly_spend", "region"]
log = logging.getLogger(__name__)

with DAG(
    dag_id="model_scoring",
    description="Score the day's customers and record the predictions (pseudonymised) in the prediction log",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn"],
    default_args={"retries": 1},
) as dag:

    @task
    def score_and_log(
        data_interval_start: datetime | None = None, data_interval_end: datetime | None = None
    ) -> int:
        """Score the interval's customer activity and log each prediction; returns the rows logged."""
        import numpy as np
        import pandas as pd
        import sqlalchemy as sa

        end = data_interval_end or datetime.now(UTC)
        start = (
            data_interval_start
            if data_interval_start and data_interval_start < end
            else end.replace(hour=0, minute=0, second=0, microsecond=0)
        )
        engine = engine_for_connection(WAREHOUSE)
        try:
            # The demo warehouse stores naive UTC timestamps.
            bounds = {
                "start": start.astimezone(UTC).replace(tzinfo=None),
                "end": end.astimezone(UTC).replace(tzinfo=None),
            }
            if sa.inspect(engine).has_table(DEFAULT_TABLE):
                with engine.connect() as conn:
                    logged = conn.execute(
                        sa.text(
                            f"SELECT count(*) FROM {DEFAULT_TABLE} WHERE model_version = :version "
                            "AND predicted_at >= :start AND predicted_at < :end"
                        ),
                        {"version": MODEL_VERSION, **bounds},
                    ).scalar()
                if logged:
                    log.info(
                        "%d predictions of %s to %s are already in %s: nothing logged",
                        logged,
                        start,
                        end,
                        DEFAULT_TABLE,
                    )
                    return 0
            activity = pd.read_sql(
                sa.text(
                    "SELECT customer_id, event_time, customer_age, tenure_months, monthly_spend, region "
                    "FROM customer_activity WHERE event_time >= :start AND event_time < :end"
                ),
                engine,
                params=bounds,
            )
            # The deployed model (v1): a logistic model fitted on the first customer mix.
            logit = (
                -0.5
                - 0.03 * (activity["customer_age"] - 45)
                - 0.04 * activity["tenure_months"]
                + 0.01 * (activity["monthly_spend"] - 60)
            )
            score = 1.0 / (1.0 + np.exp(-logit))
            with PredictionLogger(
                engine,
                model_version=MODEL_VERSION,
                pseudonymize=["customer_id"],
                key_conn_id=PSEUDONYM_KEY_CONN,
            ) as logger:
                logger.log_batch(
                    activity[["customer_id", *FEATURES]],
                    scores=score.round(6),
                    predicted_classes=(score >= 0.5).astype(int),
                    predicted_at=pd.to_datetime(activity["event_time"]).dt.tz_localize("UTC"),
                )
            return logger.rows_written
        finally:
            engine.dispose()

    score_and_log()
