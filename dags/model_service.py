"""Daily health of the churn model's service (the third pillar: infrastructure), from its request log.

``service_health`` reads the day's rows of ``request_log`` (one per request: when, latency in
milliseconds, HTTP status, model version, region) and pushes one aggregate query per window down to
the warehouse: request count and throughput, error rate (5xx) with its Wilson 95% interval, latency
mean, p50, p95, p99 and max. Judged, with the article's defaults, against the service's first ten
days (the reference window): the task fails when the error rate's lower bound exceeds 5% (from 100
requests), when p95 reaches twice the reference p95 (1.5x warns), or when throughput falls below
half the reference's; the region that moved most is named. A breach is posted to Slack through the
webhook connection ``mlobs_slack`` (with a reminder after 3 failing days in a row and a recovery
message when it passes again).

A 99.5% availability SLO adds the SRE workbook's multiwindow burn-rate rules (14.4x over 1 h and
5 min pages, 6x over 6 h and 30 min warns), measured back from the end of the day.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_mlobs.notifiers import SlackWebhookNotifier
from airflow_mlobs.operators import ServiceHealthCheckOperator

WAREHOUSE = "mlobs_warehouse"

with DAG(
    dag_id="model_service",
    description="Latency, throughput and errors of the churn model's service",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlobs", "churn"],
    default_args={"retries": 0},
) as dag:
    ServiceHealthCheckOperator(
        task_id="service_health",
        conn_id=WAREHOUSE,
        table="request_log",
        timestamp_column="requested_at",
        latency_column="latency_ms",
        latency_unit="ms",
        error_column="status_code",  # an HTTP status: 5xx counts as an error, 4xx does not
        model_version_column="model_version",
        segment_column="region",
        dataset="churn_service",
        reference_window=("2026-11-10T00:00:00+00:00", "2026-11-20T00:00:00+00:00"),
        slo_availability=0.995,
        window="1d",
        notify=[SlackWebhookNotifier(slack_webhook_conn_id="mlobs_slack", min_severity="fail")],
    )
