"""What every check notifier shares: severity routing, alert state, retries, recorded deliveries.

A notifier is used two ways:

- passed to a check operator (``notify=[SlackWebhookNotifier(...)]``): the operator calls
  :meth:`CheckNotifier.send_result` with the stored :class:`CheckResult`; the notifier decides from
  the stored alert state whether to send (:func:`airflow_mlobs.core.notify.decide_notification`);
- as a plain Airflow notifier (``on_failure_callback=EmailNotifier(...)``) on any task: it sends the
  task's check result when the failure carries one (``CheckBreachError``), else a message about
  the failed task.

Delivery retries timeouts, 5xx and 429 with exponential backoff, honouring ``Retry-After`` (the
Slack notifiers through slack_sdk's retry handlers on their clients, the others here). A
delivery that still fails never changes the check's outcome: it is logged (without secrets) and
recorded on the stored result.

Secrets are scrubbed here, where they are known and where text leaves for a log, the store or a
channel: every delivery error (:func:`redact` with :meth:`CheckNotifier.secrets`) before it is
logged or recorded, the task-failure message before it is sent, and the Slack clients' own log
lines (:mod:`.slack`). Rendering (:mod:`airflow_mlobs.render`) never sees a secret.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_mlobs.core.notify import AlertState, Kind, MinSeverity, decide_notification, in_mute_window
from airflow_mlobs.core.result import CheckResult, Status, error_result
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.render.message import Links

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.store import ResultsStore, RunKey


# Path segments of webhook and API URLs that are no secret (never scrubbed on their own).
NOT_SECRET = frozenset({"services", "api", "hooks", "webhook", "webhooks", "v1", "v2"})
# Values of secret-like extra keys that are flags, not secrets (``"use_auth": "true"``).
_NOT_A_SECRET_VALUE = frozenset({"true", "false", "none", "null", "yes", "no", "basic", "bearer", "oauth"})
SECRET_EXTRA_KEYS = ("token", "password", "passwd", "secret", "key", "webhook", "url", "auth", "credential")


def secret_parts(value: str | None) -> list[str]:
    """Every form of ``value`` that can show up in an error text: the whole value; for a URL, its
    path (with and without the leading ``/``), each path segment after the first (a webhook's
    ``T.../B.../xxx``), its query string and each query value, and the password of its user info;
    for a bare token, each ``/``-separated segment."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    if not value:
        return []
    text = str(value).strip()
    parts = [text, unquote(text)]
    if "://" in text:
        try:
            url = urlsplit(text)
        except ValueError:
            url = None
        if url is not None:
            path = url.path.strip("/")
            if path:
                parts += [url.path, path]
                segments = path.split("/")
                # The first segment of a webhook path is "services" (not a secret); a path of one
                # segment is a token itself.
                parts += segments[1:] if len(segments) > 1 else segments
                parts += ["/".join(segments[i:]) for i in range(1, len(segments))]
            if url.query:
                parts.append(url.query)
                parts += [v for _, v in parse_qsl(url.query, keep_blank_values=False)]
            if url.password:
                parts += [url.password, unquote(url.password)]
    else:
        segments = [s for s in text.strip("/").split("/") if s]
        if len(segments) > 1:
            parts += segments
            parts += ["/".join(segments[i:]) for i in range(1, len(segments))]
    return [p for p in dict.fromkeys(parts) if len(p) >= 4 and p.strip("/").lower() not in NOT_SECRET]


def connection_secrets(conn_id: str) -> list[str]:
    """Every secret an Airflow connection holds, in every form :func:`secret_parts` finds: its
    password, a URL in its host, extra values under secret-like keys (``token``, ``webhook_token``,
    ``password``, ...), whatever form the connection takes (URI, JSON, fields). ``[]`` when the
    connection cannot be read (the delivery then fails on that, with nothing to leak)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return []
    found: list[str] = []
    found += secret_parts(conn.password)
    if conn.host and ("://" in conn.host or "/" in conn.host):
        # A webhook connection may keep the URL (with its token path) in the host.
        found += secret_parts(conn.host)
    try:
        extra = conn.extra_dejson
    except Exception:
        extra = {}

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or any(word in str(key).lower() for word in SECRET_EXTRA_KEYS))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str) and value.strip().lower() not in _NOT_A_SECRET_VALUE:
            found.extend(secret_parts(value))

    walk(extra, False)
    try:
        uri = conn.get_uri()
    except Exception:
        uri = None
    if uri and conn.password:
        from urllib.parse import quote

        found += [quote(conn.password, safe=""), quote(conn.password)]
    return [s for s in dict.fromkeys(found) if len(s) >= 4]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (webhook tokens, passwords; at least 4 characters) replaced."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def member_reports(result: CheckResult) -> tuple[tuple[str, str], ...]:
    """A grouped result's links to the result pages of its breached checks
    (``metrics["reports"]``, set by :class:`~airflow_mlobs.operators.alerts.AlertGroupOperator`),
    as ``("drift report", url)``; empty for any other result."""
    reports = result.metrics.get("reports")
    if not isinstance(reports, list):
        return ()
    return tuple(
        (f"{r['label']} report", str(r["url"]))
        for r in reports
        if isinstance(r, dict) and r.get("url") and r.get("label")
    )


class DeliveryError(Exception):
    """A delivery attempt failed. ``retry_after`` (seconds) when the server said when to retry;
    ``retryable`` False for errors that retrying cannot fix (a 4xx other than 429)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def config_error(conn_id: str, exc: BaseException, what: str | None = None) -> DeliveryError:
    """A delivery that cannot work until its connection is fixed (not defined, no password or
    token, an invalid URL, a rejected login): not retried, the error names the connection."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, AirflowNotFoundException) and "isn't defined" in detail:
        detail = "is not defined"
        return DeliveryError(f"connection {conn_id!r} {detail}", retryable=False)
    head = f"connection {conn_id!r}: {what}" if what else f"connection {conn_id!r} is not usable"
    return DeliveryError(f"{head}: {type(exc).__name__}: {detail}", retryable=False)


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``attempts`` tries; waits ``base_delay * 2**n`` (at most ``max_delay``) between them,
    or what ``Retry-After`` asks for (also capped at ``max_delay``). The Slack notifiers apply it
    per request through slack_sdk's retry handlers (``attempts - 1`` retries each,
    :class:`~airflow_mlobs.notifiers.slack.SlackRetries`); ``timeout`` bounds each request."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"RetryPolicy: attempts must be an integer of at least 1, got {self.attempts!r}")
        for name in ("base_delay", "max_delay", "timeout"):
            value = getattr(self, name)
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            if not ok or value < 0 or (name == "timeout" and value == 0):
                allowed = (
                    "a positive number of seconds"
                    if name == "timeout"
                    else "a non-negative number of seconds"
                )
                raise ValueError(f"RetryPolicy: {name} must be {allowed}, got {value!r}")


def deliver_with_retries(
    send_once: Callable[[], None], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Call ``send_once`` until it succeeds; returns the attempts used. Re-raises the last error."""
    for attempt in range(1, policy.attempts + 1):
        try:
            send_once()
            return attempt
        except DeliveryError as exc:
            if not exc.retryable or attempt == policy.attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else policy.base_delay * 2 ** (attempt - 1)
            sleep(min(max(wait, 0.0), policy.max_delay))
    raise AssertionError("unreachable")


def _state_from(data: Mapping[str, Any] | None) -> AlertState:
    if not data:
        return AlertState()
    return AlertState(
        open=bool(data["open"]),
        fingerprint=str(data["fingerprint"]),
        status=Status(data["status"]),
        consecutive=int(data["consecutive"]),
        escalated=bool(data.get("escalated", False)),
        first_sent=datetime.fromisoformat(data["first_sent"]) if data.get("first_sent") else None,
        last_sent=datetime.fromisoformat(data["last_sent"]) if data.get("last_sent") else None,
    )


def _state_to(state: AlertState) -> dict[str, Any]:
    data = asdict(state)
    data["status"] = state.status.value
    data["first_sent"] = state.first_sent.isoformat() if state.first_sent else None
    data["last_sent"] = state.last_sent.isoformat() if state.last_sent else None
    return data


class CheckNotifier(BaseNotifier):
    """Base class: subclasses implement :meth:`deliver` (one attempt) and :meth:`secrets`.

    :param min_severity: ``"warn"`` or ``"fail"``: results below it are not sent (but close an open
        alert with a recovery message).
    :param renotify_after: send the same breach again after this long (default ``"3d"``: a daily check
        that stays breached is reminded of every third day, not every day; ``None``
        never repeats it).
    :param escalate_after: when the same breach persists this many consecutive windows, send one
        escalation message (to this channel: route escalations to on-call with a notifier of its
        own that sets ``only_escalations=True``).
    :param only_escalations: send only escalation messages (and the recovery that closes them).
    :param send_recovery: send a message when a breached check passes again (default True).
    :param report_url: where the messages' "Report" button points; by default the result page of
        the task instance in the Airflow UI (the ML observability plugin's ``/mlobs/result``, the
        check operators' "ML observability result" extra link). Templated.
    :param retry: attempts, backoff and timeout of each delivery.
    :param results_conn_id: the results history a DAG-level ``on_failure_callback`` reads the
        failed tasks' stored results from (default: the check operators' default,
        ``[mlobs] results_conn_id`` or the SQLite file). Templated.
    :param mute: recurring mute windows, ``[(cron, duration), ...]`` (``[("0 2 * * 6", "4h")]``:
        Saturdays 02:00 to 06:00 UTC): nothing is sent inside one, recoveries included; each held
        back message is recorded as ``silenced`` and sent on the first run after the window.
        Silences stored with ``python -m airflow_mlobs silence add`` hold back matching breaches
        the same way (recoveries still go out).
    """

    template_fields: tuple[str, ...] = ("report_url", "results_conn_id")
    channel_kind = "notifier"
    #: Whether :meth:`deliver` retries inside its client (the Slack notifiers: slack_sdk's retry
    #: handlers, mapped from :attr:`retry`); then it is called once per message and
    #: :meth:`client_retries` counts the retries it made.
    retries_in_client = False

    def __init__(
        self,
        *,
        min_severity: MinSeverity = "warn",
        renotify_after: timedelta | str | None = "3d",
        escalate_after: int | None = None,
        only_escalations: bool = False,
        send_recovery: bool = True,
        report_url: str | None = None,
        retry: RetryPolicy | None = None,
        results_conn_id: str | None = None,
        mute: list[tuple[str, timedelta | str]] | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if min_severity not in ("warn", "fail"):
            raise ValueError(f"{who}: min_severity must be 'warn' or 'fail', got {min_severity!r}")
        if escalate_after is not None and (
            isinstance(escalate_after, bool) or not isinstance(escalate_after, int) or escalate_after < 1
        ):
            raise ValueError(
                f"{who}: escalate_after must be an integer of at least 1 (windows), got {escalate_after!r}"
            )
        if only_escalations and escalate_after is None:
            raise ValueError(f"{who}: only_escalations needs escalate_after")
        for flag, value in (("only_escalations", only_escalations), ("send_recovery", send_recovery)):
            if not isinstance(value, bool):
                raise ValueError(f"{who}: {flag} must be True or False, got {value!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"{who}: retry must be a RetryPolicy, got {type(retry).__name__}")
        self.min_severity: MinSeverity = min_severity
        try:
            self.renotify_after = (
                parse_duration(renotify_after, name="renotify_after") if renotify_after is not None else None
            )
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{who}: {exc}") from exc
        if self.renotify_after is not None and self.renotify_after <= timedelta(0):
            raise ValueError(
                f"{who}: renotify_after must be a positive duration (or None never to repeat), "
                f"got {renotify_after!r}"
            )
        self.escalate_after = escalate_after
        self.only_escalations = only_escalations
        self.send_recovery = send_recovery
        self.report_url = report_url
        self.retry = retry or RetryPolicy()
        self.results_conn_id = results_conn_id
        self.mute = _mute_windows(mute, who)
        #: What "now" is for silences and mute windows (the wall clock: they are about when
        #: messages go out, not which data window was judged).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.sleep: Callable[[float], None] = time.sleep
        #: What this channel keeps about the open incident (a JSON dict, e.g. the Slack thread's
        #: channel id and ``ts``): set by :meth:`send_result` from the stored alert state before
        #: each delivery, read and updated by :meth:`deliver`, stored with the alert state while the
        #: incident is open and dropped when it closes (a new incident starts empty).
        self.incident: dict[str, Any] = {}
        #: The alert state before the result being sent (what the channel last heard).
        self.alert_before = AlertState()

    # --- to implement -------------------------------------------------------------------------

    @property
    def channel(self) -> str:
        """A stable name of where messages go (keys the alert state); never a secret."""
        raise NotImplementedError

    def deliver(self, result: CheckResult, *, kind: Kind, consecutive: int, links: Links) -> None:
        """Send one message (one attempt); raise :class:`DeliveryError` on failure."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Secrets to scrub from any error text (tokens, passwords, webhook paths)."""
        return []

    def client_retries(self) -> int:
        """How many retries the client made so far (a running count; see :attr:`retries_in_client`)."""
        return 0

    def check_rendered(self) -> None:
        """Validate templated arguments once rendered; raise ``ValueError`` naming the argument
        (recorded as an undelivered message, not retried)."""
        if self.report_url is not None and not isinstance(self.report_url, str):
            raise ValueError(f"report_url must be text, got {type(self.report_url).__name__}")

    # --- shared -------------------------------------------------------------------------------

    def send_result(
        self, result: CheckResult, context: Context, store: ResultsStore, run: RunKey
    ) -> str | None:
        """Decide from the stored alert state, deliver with retries, record the delivery.

        Returns the kind sent (``None`` when nothing was due). Never raises for a delivery failure.
        """
        # One state per check task: two checks of one dataset must not overwrite each other's.
        scope = run.alert_scope(result)
        stored = store.alert_state(self.channel, result.check, result.dataset, task=scope)
        previous = _state_from(stored)
        incident = (stored or {}).get("incident") if previous.open else None
        self.incident = dict(incident) if isinstance(incident, Mapping) else {}
        self.alert_before = previous

        def save(state: AlertState) -> None:
            data = _state_to(state)
            if state.open and self.incident:
                data["incident"] = self.incident
            store.save_alert_state(self.channel, result.check, result.dataset, data, task=scope)

        decision = decide_notification(
            previous,
            result,
            now=result.window_end or datetime.now(UTC),
            min_severity=self.min_severity,
            renotify_after=self.renotify_after,
            escalate_after=self.escalate_after,
        )
        kind = decision.kind
        if kind == "recovery" and not self.send_recovery:
            kind = None
        if self.only_escalations and kind not in ("escalation", "recovery"):
            kind = None
        if self.only_escalations and kind == "recovery" and not previous.escalated:
            kind = None
        held = self.held_back(result, kind, store) if kind is not None else None
        if held is not None and kind is not None:
            from airflow_mlobs.store import Delivery

            self.log.info(
                "%s: %s for %s on %s not sent: %s", self.channel, kind, result.check, result.dataset, held
            )
            store.record_delivery(
                result, run, Delivery(self.channel, "silenced", False, 0, f"{kind} not sent: {held}")
            )
            # Keep what the channel last heard, as for a failed delivery: the run after the silence
            # or mute window that still finds the breach sends it.
            save(replace(previous, consecutive=decision.state.consecutive))
            return None
        if kind is None:
            save(decision.state)
            self.log.info(
                "%s: nothing to send for %s on %s (%s)",
                self.channel,
                result.check,
                result.dataset,
                decision.reason,
            )
            return None
        links = self.links(context)
        if kind != "recovery":
            links = replace(links, extra=member_reports(result))
        delivered = self._deliver_and_record(result, kind, decision.state.consecutive, links, store, run)
        # A failed delivery said nothing: keep what the channel last heard (counting the window), so
        # the next window sends the alert, escalation or recovery again instead of de-duplicating it.
        save(decision.state if delivered else replace(previous, consecutive=decision.state.consecutive))
        return kind

    def held_back(self, result: CheckResult, kind: Kind, store: ResultsStore) -> str | None:
        """Why a due message is not sent now (a mute window of this notifier, or a stored silence
        covering the breach; recoveries are muted but never silenced), else ``None``."""
        now = self.clock()
        window = in_mute_window(self.mute, now)
        if window is not None:
            from airflow_mlobs.core.timeutil import format_duration

            return f"mute window {window[0]!r} for {format_duration(window[1])}"
        if kind == "recovery":
            return None
        silenced = result.metrics.get("silenced")
        if result.metrics.get("silenced_only") and isinstance(silenced, list):
            # a grouped result whose every breach is silenced (AlertGroupOperator)
            return "; ".join(f"{s['check']}: {s['silence']}" for s in silenced if isinstance(s, dict))
        silence = store.silence_for(result, now)
        return None if silence is None else silence.describe()

    def links(self, context: Context | None, *, result_page: bool = True) -> Links:
        """The task's log in the Airflow UI (from the run's context) and the "Report" link:
        ``report_url`` when given, else (with ``result_page``) the task instance's result page
        (:func:`~airflow_mlobs.operators.links.task_instance_result_url`)."""
        log_url = None
        report_url = self.report_url
        ti = (context or {}).get("ti")
        if ti is not None:
            try:
                log_url = str(ti.log_url)
            except Exception:  # a task instance without a log URL (tests, callbacks outside a run)
                log_url = None
            if report_url is None and result_page:
                from airflow_mlobs.operators.links import task_instance_result_url

                try:
                    report_url = task_instance_result_url(ti)
                except Exception:  # configuration unreadable: a message without the button
                    report_url = None
        return Links(log_url=log_url, report_url=report_url)

    def _deliver_and_record(
        self,
        result: CheckResult,
        kind: Kind,
        consecutive: int,
        links: Links,
        store: ResultsStore | None,
        run: RunKey | None,
    ) -> bool:
        from airflow_mlobs.store import Delivery

        attempts = 0
        retried = self.client_retries()

        def once() -> None:
            nonlocal attempts
            attempts += 1
            self.deliver(result, kind=kind, consecutive=consecutive, links=links)

        error: str | None = None
        # A client that retries itself is called once: its retries are not multiplied by ours.
        policy = replace(self.retry, attempts=1) if self.retries_in_client else self.retry
        try:
            try:
                self.check_rendered()
            except ValueError as exc:  # a templated argument rendered to something unusable
                raise DeliveryError(f"{type(self).__name__}: {exc}", retryable=False) from exc
            deliver_with_retries(once, policy, self.sleep)
        except Exception as exc:  # any failure to deliver is recorded, never raised
            error = redact(f"{type(exc).__name__}: {exc}", self.secrets())
        attempts += self.client_retries() - retried
        if error is None:
            self.log.info(
                "%s: sent %s for %s on %s (%d attempt(s))",
                self.channel,
                kind,
                result.check,
                result.dataset,
                attempts,
            )
        else:
            self.log.warning(
                "%s: could not send %s for %s on %s after %d attempt(s): %s",
                self.channel,
                kind,
                result.check,
                result.dataset,
                attempts,
                error,
            )
        if store is not None and run is not None:
            store.record_delivery(result, run, Delivery(self.channel, kind, error is None, attempts, error))
        return error is None

    def notify(self, context: Context) -> None:
        """As an ``on_failure_callback``: send the failure's check result, or a task-failure message.

        As a DAG's ``on_failure_callback`` (the context has a DAG run but no exception: Airflow 3
        runs DAG callbacks in the DAG processor, with ``dag``, ``run_id`` and ``reason``, plus the
        last task instance's context when it has one): one message listing each failed task of the
        run with its stored check result (:meth:`dag_run_result`)."""
        from airflow_mlobs.exceptions import CheckBreachError

        self.incident, self.alert_before = {}, AlertState()  # no alert state: a message of its own
        exception = context.get("exception")
        dag_run = run_of(context) if exception is None else None
        if isinstance(exception, CheckBreachError):
            result = exception.result
        elif dag_run is not None:
            result = self.dag_run_result(context, *dag_run)
        else:
            ti = context.get("ti")
            task = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
            message = f"task {task} failed: {type(exception).__name__ if exception else 'unknown error'}"
            if exception is not None:
                message += f": {exception}"
            result = error_result(check="task", dataset=task, message=redact(message, self.secrets()))
        if not self.only_escalations:
            # Only a check's failure has a result page; another task's failure links its log alone.
            links = self.links(context, result_page=isinstance(exception, CheckBreachError))
            self._deliver_and_record(result, "alert", 1, links, None, None)

    def failed_tasks(self, context: Context, dag_id: str, run_id: str) -> list[tuple[str, int]] | None:
        """The failed task instances of a DAG run as ``(task_id, map_index)``, asked of Airflow
        (``RuntimeTaskInstance.get_task_states``, which the DAG processor and workers serve);
        ``None`` when Airflow cannot be asked here (then the stored results decide)."""
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        except Exception:  # no supervisor to ask (outside a DAG processor or worker)
            return None
        dag = context.get("dag")
        return failed_in_states(states, run_id, set(getattr(dag, "task_ids", None) or ()))

    def dag_run_result(self, context: Context, dag_id: str, run_id: str) -> CheckResult:
        """One result for a failed DAG run: a finding per failed task, its stored check result's
        status and summary (the newest stored for that task in this run), or "failed (no stored
        check result)". Without Airflow to ask which tasks failed, the run's stored ``fail`` and
        ``error`` results are the list. Never raises: an unreadable results history is said."""
        from airflow_mlobs.core.result import Finding, worst

        stored: dict[tuple[str, int], CheckResult] = {}
        trouble = ""
        try:
            from airflow_mlobs.connections import results_engine
            from airflow_mlobs.store import ResultsStore

            engine = results_engine(self.results_conn_id)
            try:
                for row in ResultsStore(engine).history(dag_id=dag_id, run_id=run_id):
                    stored.setdefault((str(row.run.task_id), row.run.map_index), row.result)  # newest first
            finally:
                engine.dispose()
        except Exception as exc:  # the message still goes out, saying why it lacks the results
            trouble = redact(f" (results history unreadable: {type(exc).__name__}: {exc})", self.secrets())
        failed = self.failed_tasks(context, dag_id, run_id)
        if failed is None:
            failed = sorted(key for key, r in stored.items() if r.status in (Status.FAIL, Status.ERROR))
        findings: list[Finding] = []
        lines: list[str] = []
        for task_id, index in failed:
            name = task_id if index < 0 else f"{task_id}[{index}]"
            found = stored.get((task_id, index))
            if found is None:
                findings.append(
                    Finding(name, "task", Status.ERROR, value="failed", reason="no stored check result")
                )
                lines.append(f"- {name}: failed (no stored check result)")
            else:
                findings.append(
                    Finding(name, found.check, found.status, value=found.status.value, reason=found.summary)
                )
                lines.append(f"- {name}: {found.status.value.upper()} {found.check}: {found.summary}")
        reason = context.get("reason")
        head = f"DAG run {dag_id} / {run_id} failed"
        if reason and str(reason) not in ("task_failure", "None"):
            head += f" ({reason})"
        if failed:
            head += f": {len(failed)} failed task(s)"
        summary = redact("\n".join([head + trouble, *lines]), self.secrets())
        status = worst([f.status for f in findings], default=Status.ERROR)
        return CheckResult(
            check="dag_run",
            dataset=dag_id,
            status=status if status.severity >= Status.FAIL.severity else Status.ERROR,
            summary=summary,
            metrics={"run_id": run_id, "failed_tasks": len(failed)},
            findings=tuple(findings),
        )


def _mute_windows(mute: Any, who: str) -> list[tuple[str, timedelta]]:
    """Validated mute windows: each a cron expression croniter reads and a positive duration."""
    if mute is None:
        return []
    if not isinstance(mute, list | tuple):
        raise ValueError(f"{who}: mute must be a list of (cron, duration) pairs, got {mute!r}")
    from croniter import croniter

    windows: list[tuple[str, timedelta]] = []
    for item in mute:
        if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"{who}: each mute window is a (cron, duration) pair, got {item!r}")
        cron, duration = item
        if not croniter.is_valid(cron):
            raise ValueError(f"{who}: mute window {cron!r} is not a cron expression")
        try:
            length = parse_duration(duration, name="mute duration")
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{who}: {exc}") from exc
        if length <= timedelta(0):
            raise ValueError(f"{who}: mute window {cron!r} needs a positive duration, got {duration!r}")
        windows.append((cron, length))
    return windows


def failed_in_states(states: Any, run_id: str, task_ids: set[str]) -> list[tuple[str, int]]:
    """The ``(task_id, map_index)`` of the failed instances in the answer of Airflow's
    ``get_task_states`` (``{run_id: {task_id: state, "<task_id>_<map_index>": state}}``);
    ``task_ids`` (the DAG's) tell a mapped instance from a task whose id ends in ``_<digits>``."""
    found = states.get(run_id, {}) if isinstance(states, Mapping) else {}
    failed: list[tuple[str, int]] = []
    for key, state in dict(found if isinstance(found, Mapping) else {}).items():
        if str(getattr(state, "value", state)) != "failed":
            continue
        task_id, index = str(key), -1
        head, _, tail = task_id.rpartition("_")
        if tail.isdigit() and head and (head in task_ids or task_id not in task_ids):
            task_id, index = head, int(tail)
        failed.append((task_id, index))
    return sorted(failed)


def run_of(context: Context | Mapping[str, Any]) -> tuple[str, str] | None:
    """``(dag_id, run_id)`` of the DAG run a callback's context is about, if it names one."""
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    ti = context.get("ti")
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None)
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
    if not dag_id or not run_id or (dag is None and dag_run is None):
        return None
    return str(dag_id), str(run_id)
