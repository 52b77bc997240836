"""Provider metadata read by Airflow's providers manager (``airflow providers list``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """The ``apache_airflow_provider`` entry point."""
    from airflow_mlobs import __version__

    return {
        "package-name": "airflow-mlobs",
        "name": "ML observability (airflow-mlobs)",
        "description": "Freshness, schema, data-quality, drift and delayed-label performance checks "
        "for ML pipelines, run where the data lives.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "airflow-mlobs",
                "external-doc-url": "https://github.com/airflow-mlobs/airflow-mlobs",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "airflow-mlobs",
                "python-modules": [
                    "airflow_mlobs.operators.freshness",
                    "airflow_mlobs.operators.schema",
                    "airflow_mlobs.operators.drift",
                    "airflow_mlobs.operators.gate",
                    "airflow_mlobs.operators.quality",
                    "airflow_mlobs.operators.performance",
                    "airflow_mlobs.operators.label_table",
                    "airflow_mlobs.operators.retention",
                    "airflow_mlobs.operators.health",
                    "airflow_mlobs.operators.fairness",
                    "airflow_mlobs.operators.attribution",
                ],
            }
        ],
        "extra-links": ["airflow_mlobs.operators.links.MlobsResultLink"],
        "sensors": [
            {"integration-name": "airflow-mlobs", "python-modules": ["airflow_mlobs.sensors.freshness"]}
        ],
        "triggers": [
            {"integration-name": "airflow-mlobs", "python-modules": ["airflow_mlobs.triggers.freshness"]}
        ],
        # `airflow providers notifications` lists these (usable as any task's or DAG's callback).
        "notifications": [
            "airflow_mlobs.notifiers.slack.SlackWebhookNotifier",
            "airflow_mlobs.notifiers.slack.SlackApiNotifier",
            "airflow_mlobs.notifiers.email.EmailNotifier",
            "airflow_mlobs.notifiers.pagerduty.PagerDutyNotifier",
        ],
    }
