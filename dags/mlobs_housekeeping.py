"""Data deletion schedules of the churn model (GDPR/CCPA): daily retention, and erasure on request.

``mlobs_housekeeping`` runs daily:

- ``prediction_log_retention``: deletes the predictions (``prediction_log.predicted_at``) and their
  labels (``churn_labels.labelled_at``) older than 90 days, measured back from the end of the run's
  data interval, in batches of 5,000 rows. A rerun of the same day deletes nothing more. The
  performance DAG's reference window must stay younger than this (or be rebuilt as a stored
  baseline), or its rows go too.
- ``results_history_retention``: deletes the results history's own rows older than a year (results
  and profiles by their window's end, deliveries by when they were recorded, alert state by its
  last update; an open incident's alert state stays until it closes). The audit records of
  erasures are never deleted.

Each task stores a ``retention`` result listing the rows deleted per table and the cutoff.

``mlobs_erasure`` is triggered by hand for an erasure request, with the ids in the run's
configuration, e.g. ``airflow dags trigger mlobs_erasure --conf '{"subject_ids": [1042, 1043],
"reason": "ticket DPO-17"}'``: it deletes those customers' labels, then their predictions, and
stores an audit record (who, when, why, how many rows per table; never the ids).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_mlobs.operators.retention import ErasureOperator, RetentionOperator

WAREHOUSE = "mlobs_warehouse"

with DAG(
    dag_id="mlobs_housekeeping",
    description="Delete predictions, labels and monitoring history past their retention",
    schedule=CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn", "retention"],
    default_args={"retries": 1},
) as housekeeping:
    RetentionOperator(
        task_id="prediction_log_retention",
        keep="90d",
        conn_id=WAREHOUSE,
        tables=[
            {"table": "prediction_log", "timestamp_column": "predicted_at"},
            {"table": "churn_labels", "timestamp_column": "labelled_at"},
        ],
        results_history=False,
        batch_size=5_000,
        dataset="churn_prediction_log",
    )
    RetentionOperator(
        task_id="results_history_retention",
        keep="365d",
        results_history=True,
        batch_size=5_000,
        dataset="mlobs_results_history",
    )

with DAG(
    dag_id="mlobs_erasure",
    description="Erase customers' predictions and labels on request (audited)",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn", "privacy"],
    default_args={"retries": 0},
) as erasure:
    ErasureOperator(
        task_id="erase_customers",
        subject_ids="{{ (dag_run.conf or {}).get('subject_ids', []) | join(',') }}",
        conn_id=WAREHOUSE,
        table="prediction_log",
        subject_column="customer_id",
        labels_table="churn_labels",
        reason="{{ (dag_run.conf or {}).get('reason', '') }}",
        dataset="churn_prediction_log",
    )
