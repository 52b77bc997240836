"""Slack notifiers on the Slack provider's hooks: incoming webhook, and Web API (bot token).

Threads (Web API only)
    The first message of an incident (an alert, or an escalation when only escalations are sent)
    is posted to the channel (``chat.postMessage``); its channel id and ``ts`` are kept with the
    alert state (:attr:`~airflow_mlobs.notifiers.base.CheckNotifier.incident`), so the thread
    survives across DAG runs. Every later message about the open incident (a worse or different
    breach, an escalation, a reminder, the recovery) is a reply in that thread (``thread_ts``;
    escalations also in the channel with ``broadcast_escalations``), and the parent is edited
    (``chat.update``) to show the incident's current state under its original header
    ("RESOLVED at 2026-11-04 00:00 UTC after 3 runs"). The incident closes with the recovery: the
    next breach opens a new thread. When the parent was deleted (the reply answers
    ``thread_not_found``, the edit ``message_not_found`` or ``cant_update_message``), a new parent
    is posted, said in the log, and the incident continues in its thread. Incoming webhooks cannot
    thread (a webhook posts top-level messages only and returns no ``ts``), so
    :class:`SlackWebhookNotifier` keeps its flat messages.

Retries
    Both clients retry through slack_sdk's retry handlers (:mod:`slack_sdk.http_retry`), built
    from the notifier's :class:`~airflow_mlobs.notifiers.base.RetryPolicy`: at most
    ``attempts - 1`` retries per request, for a 429 (waiting what ``Retry-After`` asks, at most
    ``max_delay``), a 5xx and a timeout or lost connection (waiting ``base_delay * 2**n``, at most
    ``max_delay``). Configuration errors are not retried and name the connection id (never the
    token or the webhook URL): an undefined connection, no token, an invalid URL, a 4xx other than
    429, and the Web API's answers such as ``invalid_auth``, ``channel_not_found`` and
    ``not_in_channel``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.notifiers.base import (
    CheckNotifier,
    DeliveryError,
    RetryPolicy,
    config_error,
    connection_secrets,
    redact,
)
from airflow_mlobs.render.headline import title
from airflow_mlobs.render.message import Links
from airflow_mlobs.render.slack import EMOJI, slack_message, slack_thread_parent

#: Web API answers that retrying cannot fix, with what to fix (the connection or the channel).
CONFIG_ERRORS = {
    "invalid_auth": "the bot token is not valid",
    "not_authed": "no bot token was sent",
    "account_inactive": "the bot token belongs to a deactivated app or user",
    "token_revoked": "the bot token was revoked",
    "token_expired": "the bot token expired",
    "missing_scope": "the bot token lacks the chat:write scope",
    "channel_not_found": "the bot cannot see that channel",
    "not_in_channel": "the bot is not a member of that channel (invite it)",
    "is_archived": "the channel is archived",
    "restricted_action": "the workspace does not let the bot post there",
}
#: Answers meaning the thread's parent is gone (deleted, or no longer editable).
PARENT_GONE = frozenset(
    {"thread_not_found", "message_not_found", "cant_update_message", "edit_window_closed"}
)


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


def _check_status(status: int, body: str, headers: Any, conn_id: str) -> None:
    """Raise for a non-2xx answer (after the client's retries): a 4xx other than 429 is the
    connection's fault and names it."""
    if 200 <= status < 300:
        return
    if status == 429:
        raise DeliveryError(f"rate limited (HTTP 429): {body[:200]}", retry_after=_retry_after(headers))
    if status >= 500:
        raise DeliveryError(f"server error (HTTP {status}): {body[:200]}")
    raise DeliveryError(f"connection {conn_id!r}: rejected (HTTP {status}): {body[:200]}", retryable=False)


class SlackApiFailure(DeliveryError):
    """The Web API answered ``{"ok": false, "error": code}``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, retryable=False)
        self.code = code


class SlackRetries:
    """slack_sdk retry handlers (rate limit, server error, connection error) mapped from a
    :class:`RetryPolicy`, counting the retries they make (:attr:`count`). ``sleep`` is read at
    each wait (a notifier's ``sleep``)."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[], Callable[[float], None]]) -> None:
        self.policy = policy
        self.sleep = sleep
        self.count = 0

    def wait(self, seconds: float) -> None:
        """Count one retry and wait ``seconds`` (at most ``max_delay``)."""
        self.count += 1
        self.sleep()(min(max(seconds, 0.0), self.policy.max_delay))

    def backoff(self, retry: int) -> float:
        """``base_delay * 2**retry`` (``retry`` counts from 0)."""
        return float(self.policy.base_delay * 2**retry)

    def handlers(self) -> list[Any]:
        """The handlers for ``retry_handlers=`` of a ``WebClient`` or ``WebhookClient``."""
        from http.client import RemoteDisconnected
        from urllib.error import URLError

        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )

        retries = self

        def next_attempt(state: Any, seconds: float) -> None:
            retries.wait(seconds)
            state.next_attempt_requested = True
            state.increment_current_attempt()

        class RateLimit(RateLimitErrorRetryHandler):
            """A 429: waits what ``Retry-After`` asks (at most ``max_delay``)."""

            def prepare_for_next_attempt(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> None:
                asked = _retry_after(response.headers if response is not None else None)
                next_attempt(state, asked if asked is not None else retries.backoff(state.current_attempt))

        class ServerError(ServerErrorRetryHandler):
            """Any 5xx (slack_sdk's own retries only 500 and 503)."""

            def _can_retry(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> bool:
                return response is not None and int(response.status_code) >= 500

            def prepare_for_next_attempt(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> None:
                next_attempt(state, retries.backoff(state.current_attempt))

        class Connection(ConnectionErrorRetryHandler):
            """Timeouts and lost connections; never an invalid URL."""

            def _can_retry(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> bool:
                if error is None or _invalid_url(error):
                    return False
                return bool(super()._can_retry(state=state, request=request, response=response, error=error))

            def prepare_for_next_attempt(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> None:
                next_attempt(state, retries.backoff(state.current_attempt))

        count = self.policy.attempts - 1
        return [
            RateLimit(max_retry_count=count),
            ServerError(max_retry_count=count),
            Connection(
                max_retry_count=count,
                error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError],
            ),
        ]


class SlackClientNotifier(CheckNotifier):
    """What both Slack notifiers share: their client retries through :attr:`slack_retries`."""

    retries_in_client = True

    @cached_property
    def slack_retries(self) -> SlackRetries:
        """The client's retry handlers, from :attr:`retry`."""
        return SlackRetries(self.retry, lambda: self.sleep)

    def client_retries(self) -> int:
        """The retries the client made so far."""
        return self.slack_retries.count

    def hook_options(self) -> dict[str, Any]:
        """The hook's arguments besides the connection: the timeout, the logger that scrubs the
        connection's secrets, the retry handlers."""
        return {
            "timeout": int(self.retry.timeout),
            "logger": _RedactingLogger(self.secrets()),
            "retry_handlers": self.slack_retries.handlers(),
        }


class SlackWebhookNotifier(SlackClientNotifier):
    """Post check results to a Slack incoming webhook (connection type ``slackwebhook``).

    Every message is a top-level message: a webhook cannot reply in a thread or edit what it posted
    (it returns no message ``ts``), so alerts, escalations and recoveries stay flat; use
    :class:`SlackApiNotifier` (a bot token) for one thread per incident. Retries go through
    slack_sdk's retry handlers on the webhook client (see :mod:`.slack`).

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
            **self.hook_options(),
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
        _check_status(
            int(response.status_code), str(response.body), response.headers, self.slack_webhook_conn_id
        )


class SlackApiNotifier(SlackClientNotifier):
    """Post check results with the Slack Web API (connection type ``slack`` with the bot token as
    password; ``base_url`` in its extra for another API host), one thread per incident (see
    :mod:`.slack`): the first message of an incident is posted to the channel, the later ones
    (worse, escalation, reminder, recovery) are replies in its thread, and the parent is edited to
    show the current state.

    :param slack_conn_id: the Slack API connection. Templated.
    :param channel: the channel name or id to post to. Templated.
    :param broadcast_escalations: post an escalation in the channel as well as in the thread
        (``reply_broadcast``). Default False.
    """

    template_fields: tuple[str, ...] = (*CheckNotifier.template_fields, "slack_conn_id", "slack_channel")

    def __init__(
        self, *, slack_conn_id: str, channel: str, broadcast_escalations: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(slack_conn_id, str) or not slack_conn_id.strip():
            raise ValueError(
                f"SlackApiNotifier: slack_conn_id must be a connection id, got {slack_conn_id!r}"
            )
        if not isinstance(channel, str) or not channel.strip():
            raise ValueError(f"SlackApiNotifier: channel must be a Slack channel name or id, got {channel!r}")
        if not isinstance(broadcast_escalations, bool):
            raise ValueError(
                f"SlackApiNotifier: broadcast_escalations must be True or False, got {broadcast_escalations!r}"
            )
        self.slack_conn_id = slack_conn_id
        self.slack_channel = channel
        self.broadcast_escalations = broadcast_escalations

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
        """The provider's ``SlackHook``, its ``WebClient`` retrying through :attr:`slack_retries`."""
        from airflow.providers.slack.hooks.slack import SlackHook

        return SlackHook(
            slack_conn_id=self.slack_conn_id,
            **self.hook_options(),
        )

    def secrets(self) -> list[str]:
        """The bot token, in every form it can appear (:func:`~airflow_mlobs.notifiers.base.connection_secrets`)."""
        return connection_secrets(self.slack_conn_id)

    # --- one message ---------------------------------------------------------------------------

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """The first message of an incident: a ``chat.postMessage`` to the channel (its channel id,
        ``ts`` and header kept in :attr:`incident`). A later one: a reply in the incident's thread,
        then a ``chat.update`` of the parent (:meth:`update_parent`); when the thread's parent is
        gone, a new parent instead. Raises :class:`DeliveryError` when the message was not sent
        (a failed edit of the parent after a sent reply is logged, not raised)."""
        message = slack_message(result, kind=kind, consecutive=consecutive, links=links)
        thread = self.incident if self.incident.get("ts") and self.incident.get("channel") else None
        if thread is None:
            self.post_parent(message, result, kind)
            return
        broadcast = kind == "escalation" and self.broadcast_escalations
        try:
            self.call(
                "chat_postMessage",
                channel=str(thread["channel"]),
                thread_ts=str(thread["ts"]),
                text=message["text"],
                blocks=message["blocks"],
                **({"reply_broadcast": True} if broadcast else {}),
            )
        except SlackApiFailure as exc:
            if exc.code not in PARENT_GONE:
                raise
            self.log.warning(
                "%s: the thread of %s on %s is gone (%s): posting %s as a new parent",
                self.channel,
                result.check,
                result.dataset,
                exc.code,
                kind,
            )
            self.post_parent(message, result, kind)
            return
        self.update_parent(result, kind=kind, consecutive=consecutive, links=links)

    def post_parent(self, message: dict[str, Any], result: CheckResult, kind: Kind) -> None:
        """Post ``message`` to the channel; unless it is a recovery (which closes the incident),
        it becomes the incident's thread."""
        posted = self.call(
            "chat_postMessage", channel=self.slack_channel, text=message["text"], blocks=message["blocks"]
        )
        if kind != "recovery" and posted.get("ts") and posted.get("channel"):
            self.incident = {
                "channel": str(posted["channel"]),
                "ts": str(posted["ts"]),
                "heading": str(message["blocks"][0]["text"]["text"]),
                "summary": result.summary[:3000],
            }

    def update_parent(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """Edit the thread's parent to show the incident's state (:meth:`state_line`) under its
        original header. When it cannot be edited (deleted, or too old to edit), post the same
        text as a new parent, which the incident's later replies go to. Never raises: the reply
        was sent."""
        state = self.state_line(result, kind=kind, consecutive=consecutive)
        parent = slack_thread_parent(
            heading=str(self.incident.get("heading") or title(result, kind=kind, consecutive=consecutive)),
            summary=str(self.incident.get("summary") or result.summary),
            state=state,
            links=links,
        )
        try:
            self.call(
                "chat_update",
                channel=str(self.incident["channel"]),
                ts=str(self.incident["ts"]),
                text=parent["text"],
                blocks=parent["blocks"],
            )
            return
        except DeliveryError as exc:
            code = exc.code if isinstance(exc, SlackApiFailure) else None
            if code not in PARENT_GONE:
                self.log.warning(
                    "%s: the %s reply was sent, but the thread's parent was not updated: %s",
                    self.channel,
                    kind,
                    redact(str(exc), self.secrets()),
                )
                return
        self.log.warning(
            "%s: the thread's parent for %s on %s cannot be updated (%s): posting a new parent",
            self.channel,
            result.check,
            result.dataset,
            code,
        )
        try:
            posted = self.call(
                "chat_postMessage", channel=self.slack_channel, text=parent["text"], blocks=parent["blocks"]
            )
        except DeliveryError as exc:
            self.log.warning(
                "%s: the new parent was not posted either: %s", self.channel, redact(str(exc), self.secrets())
            )
            return
        if kind != "recovery" and posted.get("ts") and posted.get("channel"):
            self.incident = {**self.incident, "channel": str(posted["channel"]), "ts": str(posted["ts"])}

    def state_line(self, result: CheckResult, *, kind: Kind, consecutive: int) -> str:
        """What the parent says of the incident now: ``RESOLVED at <window end> UTC after N runs``
        (N: the breached runs in a row before the recovery) or ``ONGOING (N runs): <title of the
        latest message>``."""
        if kind == "recovery":
            at = result.window_end or datetime.now(UTC)
            runs = max(self.alert_before.consecutive, 1)
            return (
                f"{EMOJI[Status.PASS]} RESOLVED at {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
                f"after {runs} run{'s' if runs != 1 else ''}"
            )
        emoji = EMOJI.get(result.status, "")
        runs = max(consecutive, 1)
        latest = title(result, kind=kind, consecutive=consecutive)
        return f"{emoji} ONGOING ({runs} run{'s' if runs != 1 else ''}): {latest}".strip()

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call through the hook's client (retried by its handlers); its answer's
        data. Raises :class:`SlackApiFailure` for ``ok: false`` (with the fix for a configuration
        error, naming the connection), :class:`DeliveryError` otherwise."""
        from slack_sdk.errors import SlackApiError

        try:
            client = self.hook.client
        except Exception as exc:  # not defined, no token, unreadable: retrying cannot fix it
            raise config_error(self.slack_conn_id, exc) from exc
        try:
            response = getattr(client, method)(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            _check_status(int(response.status_code), str(response.data), response.headers, self.slack_conn_id)
            data = response.data
            code = str(data.get("error") if hasattr(data, "get") else data)
            fix = CONFIG_ERRORS.get(code)
            where = (
                f" (channel {kwargs.get('channel')!r})"
                if code in ("channel_not_found", "not_in_channel")
                else ""
            )
            if fix is not None:
                raise SlackApiFailure(
                    f"connection {self.slack_conn_id!r}: Slack API error: {code}{where}: {fix}", code
                ) from exc
            raise SlackApiFailure(f"Slack API error: {code}", code) from exc
        except DeliveryError:
            raise
        except Exception as exc:  # timeouts, refused connections; an invalid base_url is not retried
            if _invalid_url(exc):
                raise config_error(self.slack_conn_id, exc, "invalid Slack API URL") from exc
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        data = response.data
        return dict(data) if isinstance(data, dict) else {}
