"""Notifiers for check results: Slack (webhook, Web API), email and PagerDuty. See :mod:`.base`."""

from __future__ import annotations

from airflow_mlobs.notifiers.base import CheckNotifier, RetryPolicy
from airflow_mlobs.notifiers.email import EmailNotifier
from airflow_mlobs.notifiers.pagerduty import PagerDutyNotifier
from airflow_mlobs.notifiers.slack import SlackApiNotifier, SlackWebhookNotifier

__all__ = [
    "CheckNotifier",
    "EmailNotifier",
    "PagerDutyNotifier",
    "RetryPolicy",
    "SlackApiNotifier",
    "SlackWebhookNotifier",
]
