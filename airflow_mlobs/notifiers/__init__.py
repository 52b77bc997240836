"""Notifiers for check results: Slack (webhook, Web API) and email. See :mod:`.base`."""

from __future__ import annotations

from airflow_mlobs.notifiers.base import CheckNotifier, RetryPolicy
from airflow_mlobs.notifiers.email import EmailNotifier
from airflow_mlobs.notifiers.slack import SlackApiNotifier, SlackWebhookNotifier

__all__ = ["CheckNotifier", "EmailNotifier", "RetryPolicy", "SlackApiNotifier", "SlackWebhookNotifier"]
