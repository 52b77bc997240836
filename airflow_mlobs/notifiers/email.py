"""Email notifier on the SMTP provider's hook: HTML with a plain-text alternative."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, cast

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.notifiers.base import CheckNotifier, DeliveryError, config_error, connection_secrets
from airflow_mlobs.render.email import email_message
from airflow_mlobs.render.message import Links


def _check_recipients(to: Any, who: str = "EmailNotifier: ") -> None:
    """``to`` must be a non-empty list of addresses (text with an ``@``)."""
    if not isinstance(to, list) or not to:
        raise ValueError(f"{who}to must name at least one recipient, got {to!r}")
    bad = [address for address in to if not isinstance(address, str) or "@" not in address.strip(" @")]
    if bad:
        raise ValueError(f"{who}to must hold email addresses, got {bad[0]!r}")


class EmailNotifier(CheckNotifier):
    """Email check results through an SMTP connection (the SMTP provider's ``SmtpHook``: host,
    port, TLS and login come from the connection).

    :param to: recipients. Templated.
    :param from_email: sender (default: the connection's ``from_email`` extra or its login).
    :param smtp_conn_id: the SMTP connection (default ``smtp_default``). Templated.
    """

    template_fields: tuple[str, ...] = (*CheckNotifier.template_fields, "to", "from_email", "smtp_conn_id")

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        from_email: str | None = None,
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(smtp_conn_id, str) or not smtp_conn_id.strip():
            raise ValueError(f"EmailNotifier: smtp_conn_id must be a connection id, got {smtp_conn_id!r}")
        self.to = [to] if isinstance(to, str) else list(to)
        if not any("{{" in str(address) for address in self.to):
            _check_recipients(self.to)
        self.from_email = from_email
        self.smtp_conn_id = smtp_conn_id

    def check_rendered(self) -> None:
        """The rendered recipients must be email addresses."""
        super().check_rendered()
        if isinstance(self.to, str):  # a template rendered to one address or a comma-separated list
            self.to = [part.strip() for part in self.to.split(",") if part.strip()]
        _check_recipients(self.to, who="")

    @property
    def channel(self) -> str:
        """``email:<recipients>``."""
        return "email:" + ",".join(sorted(self.to))

    def secrets(self) -> list[str]:
        """The SMTP password, in every form it can appear (:func:`~airflow_mlobs.notifiers.base.connection_secrets`)."""
        return connection_secrets(self.smtp_conn_id)

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """One SMTP session: connect through the hook and send a multipart/alternative message."""
        from airflow.providers.smtp.hooks.smtp import SmtpHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        subject, text, html = email_message(result, kind=kind, consecutive=consecutive, links=links)
        policy_timeout = self.retry.timeout

        class _Hook(SmtpHook):  # type: ignore[misc]
            @property
            def timeout(self) -> Any:
                """The retry policy's timeout per attempt (the hook reads only the connection's)."""
                return policy_timeout

        from airflow.sdk import BaseHook

        try:
            BaseHook.get_connection(self.smtp_conn_id)
        except Exception as exc:  # not defined or unreadable: the hook would say only "not found"
            raise config_error(self.smtp_conn_id, exc) from exc
        try:
            with _Hook(smtp_conn_id=self.smtp_conn_id) as hook:
                sender = self.from_email or hook.from_email or hook.smtp_user or "airflow-mlobs@localhost"
                message = EmailMessage()
                message["Subject"] = subject
                message["From"] = sender
                message["To"] = ", ".join(self.to)
                message.set_content(text)
                message.add_alternative(html, subtype="html")
                # The hook's own send_email_smtp sends HTML only; a plain-text part needs our own
                # message, sent on the client the hook connected and authenticated.
                client = cast("smtplib.SMTP | None", hook._smtp_client)
                if client is None:
                    raise DeliveryError("the SMTP hook did not connect")
                client.send_message(message, from_addr=sender, to_addrs=self.to)
        except DeliveryError:
            raise
        except AirflowNotFoundException as exc:  # no such connection: retrying cannot fix it
            raise config_error(self.smtp_conn_id, exc) from exc
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
        ) as exc:
            raise config_error(self.smtp_conn_id, exc, "rejected by the SMTP server") from exc
        except Exception as exc:  # refused, timed out: retried, then recorded
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
