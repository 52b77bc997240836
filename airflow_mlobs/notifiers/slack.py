"""Slack notifiers on the Slack provider's hooks: incoming webhook, and Web API (bot token)."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.notifiers.base import (
    CheckNotifier,
    DeliveryError,
    config_error,
    connection_secrets,
    redact,
)
from airflow_mlobs.render.message import Links
from airflow_mlobs.render.slack import slack_message


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The Slack clients' logger: the webhook client logs the request URL, which holds the webhook
    token, at DEBUG; every message is logged with the connection's secrets replaced."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.getLogger(__name__), {})
        self.secrets = secrets

    @property
    def level(self) -> int:
        """Read by the Slack clients before building debug messages."""
        return int(self.logger.getEffectiveLevel())

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, redact(text, self.secrets), **kwargs)


def _invalid_url(exc: BaseException) -> bool:
    """Whether a send failed on the URL itself (a bad scheme, no host, spaces, a broken IPv6 host):
    a configuration error, unlike a refused connection or a timeout."""
    import http.client
    import urllib.error

    from slack_sdk.errors import SlackRequestError

    if isinstance(exc, SlackRequestError | http.client.InvalidURL | ValueError):
        return True
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, str):
        return any(word in exc.reason for word in ("unknown url type", "no host given"))
    return False


def _check_status(status: int, body: str, headers: Any) -> None:
    if 200 <= status < 300:
        return
    if status == 429:
        raise DeliveryError(f"rate limited (HTTP 429): {body[:200]}", retry_after=_retry_after(headers))
    if status >= 500:
        raise DeliveryError(f"server error (HTTP {status}): {body[:200]}")
    raise DeliveryError(f"rejected (HTTP {status}): {body[:200]}", retryable=False)


class SlackWebhookNotifier(CheckNotifier):
    """Post check results to a Slack incoming webhook (connection type ``slackwebhook``).

    :param slack_webhook_conn_id: the webhook connection (the webhook URL or token is its password).
    :param channel_name: a label for logs and the alert state (default: the connection id); the
        webhook decides the real channel.

    Plus the routing options of :class:`~airflow_mlobs.notifiers.base.CheckNotifier`. The
    connection id is templated.
    """

    template_fields: tuple[str, ...] = (*CheckNotifier.template_fields, "slack_webhook_conn_id")

    def __init__(self, *, slack_webhook_conn_id: str, channel_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(slack_webhook_conn_id, str) or not slack_webhook_conn_id.strip():
            raise ValueError(
                f"SlackWebhookNotifier: slack_webhook_conn_id must be a connection id, got {slack_webhook_conn_id!r}"
            )
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.channel_name = channel_name

    @property
    def channel(self) -> str:
        """``slack-webhook:<label>``."""
        return f"slack-webhook:{self.channel_name or self.slack_webhook_conn_id}"

    @cached_property
    def hook(self) -> Any:
        """The provider's ``SlackWebhookHook`` (built at send time, never at DAG parse time)."""
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        return SlackWebhookHook(
            slack_webhook_conn_id=self.slack_webhook_conn_id,
            timeout=int(self.retry.timeout),
            logger=_RedactingLogger(self.secrets()),
        )

    def secrets(self) -> list[str]:
        """The webhook URL and token from the connection, in every form it can appear (:func:`~airflow_mlobs.notifiers.base.connection_secrets`)."""
        return connection_secrets(self.slack_webhook_conn_id)

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """One POST of the Block Kit message through the hook's webhook client."""
        message = slack_message(result, kind=kind, consecutive=consecutive, links=links)
        try:
            client = self.hook.client
        except Exception as exc:  # not defined, no password, unreadable: retrying cannot fix it
            raise config_error(self.slack_webhook_conn_id, exc) from exc
        try:
            response = client.send_dict(message)
        except Exception as exc:
            if _invalid_url(exc):  # retrying an invalid webhook URL cannot fix it
                raise config_error(self.slack_webhook_conn_id, exc, "invalid webhook URL") from exc
            # timeouts, refused connections: worth retrying
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        _check_status(int(response.status_code), str(response.body), response.headers)


class SlackApiNotifier(CheckNotifier):
    """Post check results with the Slack Web API (``chat.postMessage``; connection type ``slack``
    with the bot token as password).

    :param slack_conn_id: the Slack API connection. Templated.
    :param channel: the channel name or id to post to. Templated.
    """

    template_fields: tuple[str, ...] = (*CheckNotifier.template_fields, "slack_conn_id", "slack_channel")

    def __init__(self, *, slack_conn_id: str, channel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(slack_conn_id, str) or not slack_conn_id.strip():
            raise ValueError(
                f"SlackApiNotifier: slack_conn_id must be a connection id, got {slack_conn_id!r}"
            )
        if not isinstance(channel, str) or not channel.strip():
            raise ValueError(f"SlackApiNotifier: channel must be a Slack channel name or id, got {channel!r}")
        self.slack_conn_id = slack_conn_id
        self.slack_channel = channel

    @property
    def channel(self) -> str:
        """``slack:<channel>``."""
        return f"slack:{self.slack_channel}"

    def check_rendered(self) -> None:
        """The rendered ``channel`` must be a channel name or id."""
        super().check_rendered()
        if not isinstance(self.slack_channel, str) or not self.slack_channel.strip():
            raise ValueError(f"channel must be a Slack channel name or id, got {self.slack_channel!r}")

    @cached_property
    def hook(self) -> Any:
        """The provider's ``SlackHook``."""
        from airflow.providers.slack.hooks.slack import SlackHook

        return SlackHook(
            slack_conn_id=self.slack_conn_id,
            timeout=int(self.retry.timeout),
            logger=_RedactingLogger(self.secrets()),
        )

    def secrets(self) -> list[str]:
        """The bot token, in every form it can appear (:func:`~airflow_mlobs.notifiers.base.connection_secrets`)."""
        return connection_secrets(self.slack_conn_id)

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """One ``chat.postMessage`` call."""
        from slack_sdk.errors import SlackApiError

        message = slack_message(result, kind=kind, consecutive=consecutive, links=links)
        try:
            client = self.hook.client
        except Exception as exc:  # not defined, no token, unreadable: retrying cannot fix it
            raise config_error(self.slack_conn_id, exc) from exc
        try:
            client.chat_postMessage(
                channel=self.slack_channel, text=message["text"], blocks=message["blocks"]
            )
        except SlackApiError as exc:
            response = exc.response
            _check_status(int(response.status_code), str(response.data), response.headers)
            raise DeliveryError(
                f"Slack API error: {response.data.get('error') if hasattr(response.data, 'get') else response.data}",
                retryable=False,
            ) from exc
        except DeliveryError:
            raise
        except Exception as exc:  # timeouts, refused connections; an invalid base_url is not retried
            if _invalid_url(exc):
                raise config_error(self.slack_conn_id, exc, "invalid Slack API URL") from exc
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
