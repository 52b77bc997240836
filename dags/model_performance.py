"""Daily model quality of the churn model, once the churn labels have arrived.

Churn labels arrive 1.5 to 3.5 days after the prediction (``churn_labels.labelled_at``). Each run
looks at two windows of the prediction log, both joined with the labels inside the warehouse (only
aggregate rows come back), with the labels known by the end of the run's data interval, so a re-run
sees the same labels:

- ``performance_matured``: the predictions made 3 days before the run's interval, whose labels
  are mostly in. Accuracy and ROC AUC against the same metrics on the model's first ten days in
  production (the reference window, labelled long ago); a drop larger than 3 points (AUC: 5) and
  than twice the standard error of the difference warns, 8 points (AUC: 10) fails the check (the
  task still succeeds: ``on_breach="continue"``), with the worst regions named. Fewer than 80% of
  the predictions labelled: ``skipped``, "labels not mature".
- ``performance_recent``: yesterday's predictions, which have almost no labels yet: the result is
  ``skipped`` with estimates from the scores (expected accuracy and positive rate, calibrated on
  the reference window), so a collapse shows before the labels confirm it.

- ``prediction_fairness``: the run's own day of predictions, by ``region``, from the predictions
  alone (no label needed, so bias shows the same day): each region's selection rate (share
  predicted to churn) and the disparate impact ratio (lowest / highest). It warns (the task
  succeeds) when the ratio is below the four-fifths rule's 0.8 beyond its sampling error: with 75
  to 100 predictions per region a day, unbiased days reach point estimates of 0.45 to 0.71 by
  chance, but their 95% intervals reach past 0.8; the biased days' do not. The true and false
  positive rate gaps are reported once the day's labels are in (here: skipped, "no labels yet").

The retraining gate opens on an accuracy drop of 5 points or more. It starts the same retraining as
the monitoring DAG's drift gate (the ``mlobs://churn/retrain`` asset) and shares its cooldown: when
drift already retrained the model, the labels confirming the damage do not retrain it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

from airflow_mlobs.operators import FairnessCheckOperator, PerformanceCheckOperator, RetrainGateOperator

WAREHOUSE = "mlobs_warehouse"
RETRAIN = Asset("mlobs://churn/retrain")
#: Columns of the prediction log and the label table (written by PredictionLogger: its layout),
#: shared by both checks.
SOURCE: dict[str, Any] = {
    "conn_id": WAREHOUSE,
    "predictions_table": "prediction_log",
    "labels_table": "churn_labels",
    # The recorder's columns (predicted_at, labelled_at, label) are the defaults; the model's own
    # class is judged, its score gives the AUC.
    "score_column": "score",
    "predicted_column": "predicted_class",
    "segment_column": "region",
    "model_version_column": "model_version",
    "model_version": "v1",
    "dataset": "churn_model_v1",
    # The model's first ten days in production: the baseline, and the calibration of the estimates.
    "reference_window": ("2026-11-10T00:00:00+00:00", "2026-11-20T00:00:00+00:00"),
}

with DAG(
    dag_id="model_performance",
    description="Accuracy of the churn model from late-arriving labels",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn"],
    default_args={"retries": 0},
) as dag:
    matured = PerformanceCheckOperator(
        task_id="performance_matured",
        **SOURCE,
        label_delay="3d",
        min_label_coverage=0.8,
        max_drop={"accuracy": (0.03, 0.08), "roc_auc": (0.05, 0.10)},
        on_breach="continue",
    )
    recent = PerformanceCheckOperator(
        task_id="performance_recent",
        **SOURCE,
        label_delay="1d",
        min_label_coverage=0.8,
        max_drop=(0.03, 0.08),
        on_breach="continue",
    )
    fairness = FairnessCheckOperator(
        task_id="prediction_fairness",
        conn_id=WAREHOUSE,
        predictions_table=SOURCE["predictions_table"],
        labels_table=SOURCE["labels_table"],
        group_columns=["region"],
        predicted_column=SOURCE["predicted_column"],
        model_version_column=SOURCE["model_version_column"],
        model_version=SOURCE["model_version"],
        dataset=SOURCE["dataset"],
        window="1d",
        on_breach="continue",
    )
    gate = RetrainGateOperator(
        task_id="retrain_gate",
        check_task_ids=["performance_matured"],
        drift_share=None,
        performance_drop=0.05,
        cooldown="5d",
        outlets=[RETRAIN],
    )
    [matured, recent] >> gate
