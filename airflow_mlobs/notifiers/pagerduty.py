"""Page on-call through PagerDuty (Events API v2): trigger on a breach, resolve on recovery.

One incident per check task and dataset: every event carries a ``dedup_key`` derived from the DAG,
the task, the check and the dataset (:func:`incident_key`), never from data values or secrets, so
the same breach seen again the next day lands on the same PagerDuty alert, and the recovery (the
recovery path of :class:`~airflow_mlobs.notifiers.base.CheckNotifier`) resolves exactly that alert.
Whether to send at all (severity routing, de-duplication across runs, escalation, recovery) is
decided by :class:`~airflow_mlobs.notifiers.base.CheckNotifier` from the stored alert state; this
module builds and posts the events.

Why the events are posted here and not through ``PagerdutyEventsHook.send_event``: the hook hands
the routing key to the ``pagerduty`` client library with its default address, and that library
refuses any base URL that is not ``https://`` (and has its own unbounded 429 retry loop). The
connection is still the provider's (type ``pagerduty_events``, the routing key read through the
provider's hook from its "Pagerduty Integration key" field) and the event is built by the
provider's ``prepare_event_data``; the endpoint is ``https://events.pagerduty.com`` unless the
connection's extra sets ``base_url`` (a proxy, a regional endpoint, a test server over http).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.notify import Kind, MinSeverity
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.notifiers.base import (
    CheckNotifier,
    DeliveryError,
    config_error,
    connection_secrets,
    run_of,
)
from airflow_mlobs.render.headline import headline, title
from airflow_mlobs.render.message import Links, top_rows

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.store import ResultsStore, RunKey

#: Where PagerDuty's Events API v2 lives (``POST /v2/enqueue``).
DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
ENQUEUE_PATH = "/v2/enqueue"
#: PagerDuty's severities, most severe first.
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
#: Our statuses that can page, and the PagerDuty severity each maps to by default.
DEFAULT_SEVERITY: Mapping[str, str] = {"fail": "critical", "error": "error", "warn": "warning"}
#: PagerDuty cuts ``payload.summary`` at 1024 characters; we cut it ourselves, visibly.
SUMMARY_LIMIT = 1024
#: Findings listed in ``custom_details`` (the result page has them all; events are capped at 512 KB).
MAX_DETAIL_FINDINGS = 10


def incident_key(*, dag_id: str | None, task_id: str | None, check: str, dataset: str) -> str:
    """The ``dedup_key`` of one incident: ``mlobs-`` and a hash of the DAG, task, check and
    dataset names. Stable across runs (the next day's breach and the recovery find the same
    alert), bounded in length (PagerDuty allows 255 characters), and free of data values: the
    breach's findings do not enter it, so a breach that spreads to another column updates the same
    alert instead of opening a second page."""
    names = json.dumps([dag_id or "", task_id or "", check, dataset])
    return "mlobs-" + hashlib.sha256(names.encode()).hexdigest()[:32]


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pagerduty_event(
    result: CheckResult,
    *,
    kind: Kind,
    consecutive: int,
    links: Links,
    dedup_key: str,
    severity: Mapping[str, str] = DEFAULT_SEVERITY,
    dag_id: str | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """The Events API v2 event for ``result`` (without the routing key, added when it is sent).

    A recovery is ``resolve`` with the incident's ``dedup_key``; an alert, a reminder and an
    escalation are ``trigger`` events for the same key (PagerDuty folds a trigger for an open alert
    into it, so a reminder or a worse breach updates the page instead of paging twice). The trigger's
    payload: ``summary`` (the message title and the result's summary, at most 1024 characters),
    ``severity`` mapped from the result's status, ``source`` the dataset, ``component`` the check,
    ``group`` the DAG, ``timestamp`` the end of the judged window, and ``custom_details`` with the
    key numbers and the worst findings as the stored result gives them (a result of a check with
    ``sensitive_columns`` is already scrubbed). ``links``: the result page and the task log."""
    if kind == "recovery":
        return {"event_action": "resolve", "dedup_key": dedup_key}
    from airflow.providers.pagerduty.hooks.pagerduty_events import prepare_event_data

    status = result.status.value
    rows = top_rows(result, limit=MAX_DETAIL_FINDINGS)
    details: dict[str, Any] = {
        "check": result.check,
        "dataset": result.dataset,
        "status": status,
        "summary": result.summary,
        "notification": kind,
        "consecutive_windows": consecutive,
    }
    line = headline(result)
    if line:
        details["key_numbers"] = line
    if result.window_end is not None:
        details["window"] = (
            f"{result.window_start.isoformat() if result.window_start else ''}/{result.window_end.isoformat()}"
        )
    if dag_id:
        details["dag_id"] = dag_id
    if task_id:
        details["task_id"] = task_id
    details["findings_not_passing"] = len(result.breaches())
    if rows:
        details["worst_findings"] = [
            dict(zip(("subject", "metric", "value", "threshold", "status"), row, strict=True)) for row in rows
        ]
    heading = title(result, kind=kind, consecutive=consecutive)
    event = prepare_event_data(
        summary=cut(f"{heading}: {result.summary}", SUMMARY_LIMIT),
        severity=severity.get(status, "error"),
        source=result.dataset or "airflow_mlobs",
        custom_details=details,
        component=result.check,
        group=dag_id,
        class_type=f"ml observability {result.check}",
        action="trigger",
        dedup_key=dedup_key,
        links=[{"href": url, "text": label} for label, url in links.labelled()] or None,
        action_key_name="event_action",
    )
    moment = result.window_end or datetime.now(UTC)
    event["payload"]["timestamp"] = moment.isoformat()
    event["client"] = "airflow-mlobs"
    if links.report_url:
        event["client_url"] = links.report_url
    return event


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _reason(body: str) -> str:
    """What PagerDuty said, from its JSON error body (``message`` and ``errors``), else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return cut(body.strip(), 200)
    if not isinstance(data, dict):
        return cut(body.strip(), 200)
    parts = [str(data.get("message") or data.get("status") or "")]
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(str(e) for e in errors[:5]))
    return cut(": ".join(p for p in parts if p), 200)


class PagerDutyNotifier(CheckNotifier):
    """Page through PagerDuty's Events API v2 (connection type ``pagerduty_events`` of Airflow's
    PagerDuty provider: the routing key, i.e. integration key, in its "Pagerduty Integration key"
    (password) field; optionally ``{"base_url": "https://..."}`` in its extra).

    A breach triggers an alert with a ``dedup_key`` per incident (:func:`incident_key`); the same
    breach in later windows is not sent again (de-duplicated by the stored alert state, and by
    PagerDuty if it were); the recovery resolves the alert with the same key.

    :param pagerduty_events_conn_id: the connection. Templated.
    :param severity: our status (``fail``, ``error``, ``warn``) to PagerDuty's severity
        (``critical``, ``error``, ``warning``, ``info``), merged over the default
        ``{"fail": "critical", "error": "error", "warn": "warning"}``.
    :param channel_name: a label for logs and the alert state (default: the connection id).
    :param min_severity: default ``"fail"``: a page is for breaches; warnings go to Slack or email
        (``"warn"`` pages them too, with severity ``warning``).
    :param renotify_after: default ``None``: PagerDuty's escalation policy re-notifies an open
        incident; a reminder would be folded into the open alert anyway.

    Plus the other routing options of :class:`~airflow_mlobs.notifiers.base.CheckNotifier`. As an
    ``on_failure_callback`` it triggers (never resolves: a failure callback has no recovery) with
    the same key as the check's own notifications when the failure is a check breach; as a DAG's
    ``on_failure_callback``, one incident per DAG (check ``dag_run``, listing the failed tasks).
    """

    template_fields: tuple[str, ...] = (*CheckNotifier.template_fields, "pagerduty_events_conn_id")
    channel_kind = "pagerduty"

    def __init__(
        self,
        *,
        pagerduty_events_conn_id: str = "pagerduty_events_default",
        severity: Mapping[str, str] | None = None,
        channel_name: str | None = None,
        min_severity: MinSeverity = "fail",
        renotify_after: timedelta | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(min_severity=min_severity, renotify_after=renotify_after, **kwargs)
        if not isinstance(pagerduty_events_conn_id, str) or not pagerduty_events_conn_id.strip():
            raise ValueError(
                "PagerDutyNotifier: pagerduty_events_conn_id must be a connection id, "
                f"got {pagerduty_events_conn_id!r}"
            )
        if severity is not None and not isinstance(severity, Mapping):
            raise ValueError(f"PagerDutyNotifier: severity must be a mapping, got {type(severity).__name__}")
        mapping = {**DEFAULT_SEVERITY, **(severity or {})}
        for ours, theirs in mapping.items():
            if ours not in DEFAULT_SEVERITY:
                raise ValueError(
                    f"PagerDutyNotifier: severity maps our statuses {sorted(DEFAULT_SEVERITY)}, got {ours!r}"
                )
            if theirs not in PAGERDUTY_SEVERITIES:
                raise ValueError(
                    f"PagerDutyNotifier: severity[{ours!r}] must be one of {list(PAGERDUTY_SEVERITIES)}, "
                    f"got {theirs!r}"
                )
        self.pagerduty_events_conn_id = pagerduty_events_conn_id
        self.severity: dict[str, str] = mapping
        self.channel_name = channel_name
        # The task whose result is being sent (set by send_result/notify, read by deliver): the
        # incident key names it, and deliver's signature carries only the result.
        self.dag_id: str | None = None
        self.task_id: str | None = None

    @property
    def channel(self) -> str:
        """``pagerduty:<label>``."""
        return f"pagerduty:{self.channel_name or self.pagerduty_events_conn_id}"

    def check_rendered(self) -> None:
        """The rendered connection id must be text."""
        super().check_rendered()
        conn_id = self.pagerduty_events_conn_id
        if not isinstance(conn_id, str) or not conn_id.strip():
            raise ValueError(f"pagerduty_events_conn_id must be a connection id, got {conn_id!r}")

    def secrets(self) -> list[str]:
        """The routing key (and anything secret-like in the extra), in every form it can appear."""
        return connection_secrets(self.pagerduty_events_conn_id)

    def incident_key(self, result: CheckResult) -> str:
        """The ``dedup_key`` of ``result``'s incident (:func:`incident_key` for the current task)."""
        return incident_key(
            dag_id=self.dag_id, task_id=self.task_id, check=result.check, dataset=result.dataset
        )

    def send_result(
        self, result: CheckResult, context: Context, store: ResultsStore, run: RunKey
    ) -> str | None:
        """:meth:`CheckNotifier.send_result`, with the task of ``run`` naming the incident."""
        self.dag_id, self.task_id = run.dag_id, run.task_id
        return super().send_result(result, context, store, run)

    def notify(self, context: Context) -> None:
        """As an ``on_failure_callback``: trigger for the failed task, or (as a DAG's callback) for
        the failed DAG run, one incident per DAG (see the class docstring)."""
        dag_run = run_of(context) if context.get("exception") is None else None
        if dag_run is not None:
            # A DAG callback's context may carry the last task's ``ti``: the incident is the DAG's.
            self.dag_id, self.task_id = dag_run[0], None
        else:
            ti = context.get("ti")
            self.dag_id, self.task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
        super().notify(context)

    def endpoint(self) -> tuple[str, str]:
        """``(routing key, enqueue URL)`` from the connection; a :class:`DeliveryError` that is
        not retried (and names the connection, never the key) when it is unusable."""
        from urllib.parse import urlsplit

        conn_id = self.pagerduty_events_conn_id
        try:
            from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook

            hook = PagerdutyEventsHook(pagerduty_events_conn_id=conn_id)
            conn = hook.get_connection(conn_id)
            extra = conn.extra_dejson
        except Exception as exc:  # not defined, no routing key: retrying cannot fix it
            raise config_error(conn_id, exc) from exc
        routing_key = str(hook.integration_key).strip()
        base = extra.get("base_url") if isinstance(extra, Mapping) else None
        base_url = str(base).strip() if base else DEFAULT_EVENTS_URL
        try:
            parts = urlsplit(base_url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise DeliveryError(
                f"connection {conn_id!r}: extra base_url must be an http(s) URL such as {DEFAULT_EVENTS_URL}",
                retryable=False,
            )
        url = base_url.rstrip("/")
        return routing_key, url if url.endswith(ENQUEUE_PATH) else url + ENQUEUE_PATH

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """One ``POST /v2/enqueue``: trigger, or resolve for a recovery."""
        import urllib.error
        import urllib.request

        routing_key, url = self.endpoint()
        key = self.incident_key(result)
        event = pagerduty_event(
            result,
            kind=kind,
            consecutive=consecutive,
            links=links,
            dedup_key=key,
            severity=self.severity,
            dag_id=self.dag_id,
            task_id=self.task_id,
        )
        request = urllib.request.Request(
            url,
            data=json.dumps({"routing_key": routing_key, **event}).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "airflow-mlobs",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.retry.timeout) as response:
                status, body, headers = int(response.status), response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, body, headers = int(exc.code), exc.read(), exc.headers
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out: worth retrying
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(f"PagerDuty not reachable: {type(exc).__name__}: {reason}") from exc
        text = body.decode(errors="replace")
        if 200 <= status < 300:
            self.log.info(
                "%s: PagerDuty accepted %s for %s on %s (dedup_key %s)",
                self.channel,
                event["event_action"],
                result.check,
                result.dataset,
                key,
            )
            return
        if status == 429:
            raise DeliveryError(
                f"PagerDuty rate limited the event (HTTP 429): {_reason(text)}",
                retry_after=_retry_after(headers),
            )
        if status >= 500:
            raise DeliveryError(f"PagerDuty server error (HTTP {status}): {_reason(text)}")
        # 400 (an invalid event or routing key), 401/403/404/413: retrying sends the same thing again.
        hint = " (check the routing key of the connection and the event)" if status == 400 else ""
        raise DeliveryError(
            f"PagerDuty rejected the event (HTTP {status}){hint}: {_reason(text)}", retryable=False
        )


__all__ = ["DEFAULT_SEVERITY", "PagerDutyNotifier", "incident_key", "pagerduty_event"]
