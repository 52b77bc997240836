"""What every check operator shares: the window, storing and pushing the result, the breach policy."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from airflow.sdk import BaseOperator, BaseOperatorLink
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.connections import pseudonym_key, results_engine
from airflow_mlobs.core.errors import MlobsInputError, SourceError, SourceUnavailable
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.result import CheckResult, Status, error_result, scrub_sensitive
from airflow_mlobs.core.timeutil import parse_duration, parse_moment
from airflow_mlobs.core.window import RunTimes, RunWindow, as_of_moment, resolve_window
from airflow_mlobs.exceptions import CheckBreachError, CheckRetryableError
from airflow_mlobs.operators.links import MlobsResultLink
from airflow_mlobs.render.text import findings_table
from airflow_mlobs.store import ResultsStore, RunKey

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.notifiers.base import CheckNotifier

OnBreach = Literal["fail", "continue"]
_R = TypeVar("_R")
ON_BREACH_VALUES = ("fail", "continue")


def run_window(context: Context) -> tuple[datetime | None, datetime | None]:
    """The run's data interval (aware, UTC); ``(None, None)`` for runs without one."""
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    return (parse_moment(start, "data_interval_start"), parse_moment(end, "data_interval_end"))


def run_times(context: Context) -> RunTimes:
    """The times that decide a run's window: data interval, logical date and run-after time."""
    start, end = run_window(context)
    dag_run = context.get("dag_run")
    return RunTimes(
        interval_start=start,
        interval_end=end,
        logical_date=parse_moment(context.get("logical_date"), "logical_date"),
        run_after=parse_moment(getattr(dag_run, "run_after", None), "run_after"),
    )


def parse_window_arg(
    value: timedelta | str | float | None, task_id: str, timestamp_column: str | None = "?"
) -> None:
    """Validate a literal ``window`` argument at parse time (a templated one is checked when rendered).

    A window selects rows by their time, so a check given ``window`` without a ``timestamp_column``
    would judge the whole source under a window's name: a DAG import error instead."""
    if value in (None, ""):
        return
    if timestamp_column in (None, ""):
        raise ValueError(
            f"{task_id}: window={value!r} needs timestamp_column: without it the whole source would be "
            "judged; give the column that dates each row"
        )
    if isinstance(value, str) and "{{" in value:
        return
    parse_duration(value, name=f"{task_id}: window")  # type: ignore[arg-type]


def judged_window(
    context: Context,
    window: timedelta | str | float | None,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    required: bool = True,
) -> RunWindow:
    """The window a check judges in this run (see :mod:`airflow_mlobs.core.window`): ``window_start``/
    ``window_end`` if given, else ``window`` back from the run's interval end (or logical date, or
    run-after time), else the run's data interval. Raises ``WindowError`` (an ``error`` result)
    for a zero-length or absent interval without ``window`` when ``required``."""
    length = None
    if window not in (None, ""):
        try:
            length = parse_duration(window, name="window")  # type: ignore[arg-type]
        except ValueError as exc:
            raise MlobsInputError(str(exc)) from exc
    return resolve_window(
        run_times(context),
        window=length,
        start=parse_moment(start, "window_start"),
        end=parse_moment(end, "window_end"),
        required=required,
    )


def results_where(results_conn_id: str | None) -> str:
    """How messages name the results history: the operator's connection, else the configured
    ``[mlobs] results_conn_id``, else the default SQLite file."""
    from airflow_mlobs import settings

    try:
        conn_id = results_conn_id or settings.option("results_conn_id")
    except Exception:  # configuration unreadable: say what is known
        conn_id = results_conn_id
    return repr(conn_id) if conn_id else "the default SQLite file"


def with_window_basis(result: CheckResult, window: RunWindow) -> CheckResult:
    """``result`` recording the window it judged and how that window was chosen (``window_basis``)."""
    metrics = {**result.metrics, "window_basis": window.basis}
    judged = (
        result if result.window_start or result.window_end else result.with_window(window.start, window.end)
    )
    return replace(judged, metrics=metrics)


def resolve_as_of(context: Context, override: datetime | str | None) -> datetime:
    """The moment data is judged at: ``override`` (a datetime or ISO text) if given, else the run's
    ``data_interval_end``, else its ``logical_date``, else its ``run_after`` time, else the wall
    clock."""
    given = parse_moment(override, "as_of")
    if given is not None:
        return given
    return as_of_moment(run_times(context), datetime.now(UTC))[0]


class CheckResultMixin:
    """Store the result, push its compact form to XCom, log it, and apply the breach policy.

    Shared by check operators and sensors. Expects ``results_conn_id`` and ``on_breach`` attributes.
    """

    results_conn_id: str | None
    on_breach: OnBreach
    notify: Sequence[CheckNotifier] = ()
    #: The result this task last published (read by the OpenLineage facets and the metrics).
    last_result: CheckResult | None = None
    #: "ML observability result": the result page in the Airflow UI (:mod:`.links`).
    operator_extra_links: Collection[BaseOperatorLink] = (MlobsResultLink(),)
    dataset: str | None
    log: Any
    dag_id: str
    task_id: str
    do_xcom_push: bool
    #: Columns whose values never reach a result, message, log, XCom or baseline (see
    #: :class:`BaseCheckOperator`); the safety net of :meth:`publish` reads it too.
    sensitive_columns: Sequence[str] = ()
    key_conn_id: str | None = None

    def set_result_args(
        self,
        *,
        dataset: str | None,
        results_conn_id: str | None,
        on_breach: OnBreach,
        notify: Sequence[CheckNotifier],
    ) -> None:
        """Store the arguments every check task takes (operator or sensor); a bad ``on_breach`` is a
        DAG import error."""
        if on_breach not in ON_BREACH_VALUES:
            raise ValueError(f"{self.task_id}: on_breach must be 'fail' or 'continue', got {on_breach!r}")
        self.notify = list(notify)
        self.dataset = dataset
        self.results_conn_id = results_conn_id
        self.on_breach = on_breach

    def publish(self, context: Context, result: CheckResult) -> dict[str, Any]:
        """Log and store ``result`` (replacing this task's row for the same interval).

        Returns the compact form. Storing happens before any notification or policy so nothing is
        lost; a failure to store fails the task with a message naming the results connection.
        With ``sensitive_columns``, the result passes the last safety net
        (:func:`~airflow_mlobs.core.result.scrub_sensitive`) before it is logged, stored, sent or
        pushed: the checks keep such values out of their results in the first place.
        """
        if self.sensitive_columns:
            result = scrub_sensitive(result, self.sensitive_columns)
        self.log.info("%s", result.summary)
        if result.findings:
            self.log.info("Findings:\n%s", findings_table(result))
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        run = RunKey(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=-1 if map_index is None else int(map_index),
        )
        try:
            engine = results_engine(self.results_conn_id)
            try:
                store = ResultsStore(engine)
                store.save(result, run)
                self.send_notifications(context, result, store, run)
                from airflow_mlobs.operators.report import write_result_report

                write_result_report(self, result, store, run)  # with report_dir set; never raises
            finally:
                engine.dispose()
        except (MlobsInputError, SQLAlchemyError, SourceUnavailable) as exc:
            # A results history that is down for now: retry the whole task (it evaluates again and
            # stores once); the last try, and any other failure, fails with the message below.
            retry = retry_while_tries_left(context, results_unavailable(self.results_conn_id, exc), self.log)
            if retry is not None:
                raise retry from exc
            # The result itself is in the log above; say plainly that it was not stored.
            where = results_where(self.results_conn_id)
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if isinstance(exc, SourceUnavailable):
                detail = exc.cause
            # Bad input (an undefined or unusable results connection) says all in its message: no
            # chained traceback of it in the task log; a database failure keeps its cause.
            raise CheckBreachError(
                error_result(
                    check=result.check,
                    dataset=result.dataset,
                    message=f"could not store the {result.status.value} result in the results history "
                    f"({where}): {detail}",
                )
            ) from (None if isinstance(exc, MlobsInputError) else exc)
        self.last_result = result
        from airflow_mlobs.operators.metrics import emit_result_metrics

        emit_result_metrics(result, dag_id=self.dag_id, task_id=self.task_id, log=self.log)  # never raises
        compact = result.compact()
        if run.map_index >= 0:
            compact["map_index"] = run.map_index  # a gate reading a mapped task's list knows whose
        return compact

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (called by the OpenLineage provider after the task ran, also on failure): the
        input datasets with the published result as data-quality facets
        (:mod:`airflow_mlobs.operators.lineage`); ``None`` without the provider."""
        from airflow_mlobs.operators.lineage import task_lineage

        return task_lineage(self)

    def send_notifications(
        self, context: Context, result: CheckResult, store: ResultsStore, run: RunKey
    ) -> None:
        """Let each notifier decide and send; a notifier's failure never changes the check's outcome
        (it is logged and recorded on the stored result by the notifier)."""
        for notifier in self.notify:
            try:
                notifier.render_template_fields(context)
                notifier.send_result(result, context, store, run)
            except Exception as exc:  # a bug in one notifier must not lose the result or fail the check
                self.log.warning("Notifier %s failed: %s", type(notifier).__name__, type(exc).__name__)

    def resolved_pseudonym_key(self, *, required: bool = False) -> PseudonymKey | None:
        """The key for keyed pseudonyms of sensitive values (:func:`airflow_mlobs.connections.pseudonym_key`:
        the password of ``key_conn_id``, else ``$MLOBS_PSEUDONYM_KEY``), read when the check runs.

        Without sensitive columns no key is read. With them but no key configured, ``None``:
        the check falls back to counts only, unless it needs pseudonyms (``required``, or a
        baseline with pseudonymized columns, which then says how to set the key); a ``key_conn_id``
        that is given but unusable is always an error naming it."""
        if not self.sensitive_columns and not required:
            return None
        try:
            return pseudonym_key(conn_id=self.key_conn_id)
        except SourceError:
            if required or self.key_conn_id:
                raise
            return None

    def finish(self, context: Context, result: CheckResult) -> dict[str, Any]:
        """Publish ``result`` and apply the breach policy; returns the compact form for XCom.

        On a breach the compact form is pushed before the task fails, so downstream readers (a gate
        with ``trigger_rule="all_done"``, a failure callback) still see it.
        """
        compact = self.publish(context, result)
        try:
            self.apply_breach_policy(result)
        except CheckBreachError:
            if self.do_xcom_push:
                context["ti"].xcom_push(key="return_value", value=compact)
            raise
        return compact

    def apply_breach_policy(self, result: CheckResult) -> None:
        """``error`` always fails the task (the check could not run); ``fail`` fails it when
        ``on_breach="fail"``; ``warn`` and ``pass`` never do."""
        if result.status is Status.ERROR:
            raise CheckBreachError(result)
        if result.status is Status.FAIL:
            if self.on_breach == "fail":
                raise CheckBreachError(result)
            self.log.warning(
                "Breach recorded; on_breach='continue' lets the task succeed: %s", result.summary
            )


def results_unavailable(results_conn_id: str | None, exc: BaseException) -> SourceUnavailable | None:
    """``exc`` as the results history being unavailable, or ``None`` when it is a lasting failure
    (a missing connection, permission denied, a broken schema) or not a database failure at all."""
    from airflow_mlobs.sources.dberrors import db_cause, is_transient

    if isinstance(exc, SourceUnavailable):
        cause = exc.cause
    elif not isinstance(exc, MlobsInputError) and is_transient(exc):
        cause = db_cause(exc)
    else:
        return None
    conn_id = results_conn_id
    if not conn_id:
        from airflow_mlobs import settings

        try:  # the configured default ([mlobs] results_conn_id) is what results_engine used
            conn_id = settings.option("results_conn_id")
        except Exception:
            conn_id = None
    if conn_id:
        return SourceUnavailable("the results history", cause, connection=conn_id)
    return SourceUnavailable("the results history (the default SQLite file)", cause)


def retry_while_tries_left(
    context: Context | None, unavailable: SourceUnavailable | None, log: Any = None
) -> CheckRetryableError | None:
    """The retryable error for ``unavailable`` when the running task has tries left, logged as
    "<what> is unavailable: <cause>; the task will be retried (try N of M)"; ``None`` when
    ``unavailable`` is ``None``, on the last try (logged too), or outside a running task (the
    triggerer, the CLI), where the caller fails for good as for bad input.

    ``context`` defaults to the running task's (``get_current_context``); N is the task instance's
    ``try_number``, M is one more than its ``max_tries`` (the task's ``retries`` unless cleared).
    """
    if unavailable is None:
        return None
    if context is None:
        from airflow.sdk import get_current_context

        try:
            context = get_current_context()
        except Exception:  # no running task here: nothing can retry
            return None
    ti = context.get("ti")
    if ti is None:
        return None
    task = getattr(ti, "task", None)
    if log is None:
        log = getattr(task, "log", None) or logging.getLogger(__name__)
    try_number = int(getattr(ti, "try_number", None) or 1)
    max_tries = getattr(ti, "max_tries", None)
    if max_tries is None:
        max_tries = int(getattr(task, "retries", None) or 0)
    tries = int(max_tries) + 1
    # Airflow's own rule (execution API, _is_eligible_to_retry): another try while try_number <= max_tries.
    if int(max_tries) > 0 and try_number <= int(max_tries):
        log.warning("%s; the task will be retried (try %d of %d)", unavailable, try_number, tries)
        return CheckRetryableError(f"{unavailable}; retrying (try {try_number} of {tries})")
    log.error("%s; no retries left (try %d of %d)", unavailable, try_number, tries)
    return None


def retry_when_results_unavailable(
    check: str,
) -> Callable[[Callable[[Any, Context], _R]], Callable[[Any, Context], _R]]:
    """Decorate an ``execute`` that reads the results history outside :meth:`CheckResultMixin.publish`
    (the retraining gate): a transient failure of that database retries the task while it has
    tries left; on the last try, and for a lasting database failure, the task fails with a
    ``check`` ``error`` naming the results connection instead of the driver's traceback alone.
    """

    def decorate(execute: Callable[[Any, Context], _R]) -> Callable[[Any, Context], _R]:
        @functools.wraps(execute)
        def wrapper(self: Any, context: Context) -> _R:
            from airflow.sdk.exceptions import AirflowException

            try:
                return execute(self, context)
            except AirflowException:
                raise  # already decided: a breach, a skip, a retry, a triggered run
            except MlobsInputError as exc:
                # A configuration error (an undefined or unusable results connection, a setting):
                # retrying cannot fix it, so the task fails at once (AirflowFailException) with an
                # error naming it, instead of a plain exception Airflow would retry.
                raise CheckBreachError(
                    error_result(check=check, dataset=f"{self.dag_id}.{self.task_id}", message=str(exc))
                ) from None
            except Exception as exc:
                from airflow_mlobs.sources.dberrors import db_cause, find_db_error

                if not isinstance(exc, SourceUnavailable) and find_db_error(exc) is not exc:
                    raise
                conn_id = getattr(self, "results_conn_id", None)
                retry = retry_while_tries_left(context, results_unavailable(conn_id, exc), self.log)
                if retry is not None:
                    raise retry from exc
                where = results_where(conn_id)
                cause = exc.cause if isinstance(exc, SourceUnavailable) else db_cause(exc)
                raise CheckBreachError(
                    error_result(
                        check=check,
                        dataset=f"{self.dag_id}.{self.task_id}",
                        message=f"could not read the results history ({where}): {cause}",
                    )
                ) from exc

        return wrapper

    return decorate


def guarded(
    check: str,
    dataset: str,
    window: tuple[datetime | None, datetime | None],
    evaluate: Callable[[], CheckResult],
) -> CheckResult:
    """Run ``evaluate``; bad input (``MlobsInputError``) becomes an ``error`` result naming the problem.

    A database that is unavailable for now (``SourceUnavailable``, or a transient database error
    escaping ``evaluate``) raises :class:`CheckRetryableError` while the running task has retries
    left, so Airflow retries it; on the last try (or outside a task) it is an ``error`` result too.
    """
    try:
        result = evaluate()
    except MlobsInputError as exc:
        result = error_result(check=check, dataset=dataset, message=str(exc))
    except Exception as exc:
        from airflow_mlobs.sources.dberrors import db_cause, find_db_error, is_transient

        if isinstance(exc, SourceUnavailable):
            unavailable = exc
        elif find_db_error(exc) is exc and is_transient(exc):
            # Only a database error itself: one wrapped by another exception (an Airflow one, say)
            # was already decided on by whoever wrapped it.
            unavailable = SourceUnavailable(f"a database the {check} check uses", db_cause(exc))
        else:
            raise
        retry = retry_while_tries_left(None, unavailable)
        if retry is not None:
            raise retry from exc
        result = error_result(check=check, dataset=dataset, message=str(unavailable))
    if result.window_start is None and result.window_end is None:
        result = result.with_window(*window)
    return result


class BaseCheckOperator(CheckResultMixin, BaseOperator):
    """Base class of the check operators. Subclasses implement :meth:`evaluate`.

    :param results_conn_id: Airflow connection of the results history (any SQLAlchemy database);
        default: a SQLite file ``mlobs_results.db`` under ``AIRFLOW_HOME``. Templated.
    :param on_breach: ``"fail"`` (default) fails the task on a ``fail`` result with
        :class:`~airflow_mlobs.exceptions.CheckBreachError`, so downstream tasks do not run and
        ``on_failure_callback`` fires; ``"continue"`` lets the task succeed with the breach stored and
        pushed, for a downstream gate to decide. ``warn`` never fails; ``error`` (the check could not
        run) always does. A continued breach is not a silent green box: when the run ends, the
        task instance gets the note ``ML observability: fail (on_breach='continue'): <summary>``
        (marked in the grid; :mod:`airflow_mlobs.breach_notes`, a listener of the ML observability
        plugin), since Airflow 3.3 lets a task set only its state, and ``skipped`` or ``failed`` would
        change what runs downstream.
    :param report_dir: where to write the self-contained HTML report of each stored result,
        ``<report_dir>/<dag_id>/<run_id>/<task_id>[.<map_index>].html`` (a path, an object-storage
        URL or an ``ObjectStoragePath``; :mod:`airflow_mlobs.operators.report`); a failure to write
        is a warning, never a lost result. Templated.
    :param notify: notifiers (:mod:`airflow_mlobs.notifiers`) given the stored result; each decides
        from its severity, de-duplication and escalation rules whether to send.
    :param sensitive_columns: columns whose VALUES never leave the database into findings,
        summaries, notifications, XCom, the task log, the results history or baselines: only
        counts, shares and keyed pseudonyms do (each check says how it honours them; the result
        also passes a last safety net, :func:`~airflow_mlobs.core.result.scrub_sensitive`).
        Column names are not values and are still shown.
    :param key_conn_id: an Airflow connection whose password is the pseudonym key (default: the
        ``MLOBS_PSEUDONYM_KEY`` environment variable). Needed only where pseudonyms are made:
        without a key, checks fall back to counts only, except drift on a sensitive categorical
        column, which compares pseudonyms and fails with an error saying how to set the key.
    """

    check_name = "check"
    template_fields: tuple[str, ...] = ("results_conn_id", "dataset", "report_dir")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dataset: str | None = None,
        results_conn_id: str | None = None,
        on_breach: OnBreach = "fail",
        notify: Sequence[CheckNotifier] = (),
        report_dir: str | os.PathLike[str] | None = None,
        sensitive_columns: Sequence[str] = (),
        key_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_result_args(
            dataset=dataset, results_conn_id=results_conn_id, on_breach=on_breach, notify=notify
        )
        self.report_dir = report_dir
        if isinstance(sensitive_columns, str):
            raise ValueError(
                f"{self.task_id}: sensitive_columns must be a list of column names, got the text "
                f"{sensitive_columns!r}"
            )
        self.sensitive_columns = [str(c) for c in sensitive_columns]
        self.key_conn_id = key_conn_id

    def dataset_name(self) -> str:
        """How results name the checked data; subclasses derive a default from their source."""
        return self.dataset or self.task_id

    def evaluate(self, context: Context) -> CheckResult:
        """Gather and judge. Raise ``MlobsInputError`` for bad input; it becomes an ``error`` result."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        """Evaluate, publish, then apply the breach policy; returns the compact result (XCom)."""
        result = guarded(
            self.check_name, self.dataset_name(), run_window(context), lambda: self.evaluate(context)
        )
        return self.finish(context, result)


class WindowSpecOperator(BaseCheckOperator):
    """A check whose rendered arguments make a spec (:meth:`spec`) judging one window: the spec has
    ``dataset_name()`` and ``evaluate(window_start=, window_end=)``, and the run's window comes from
    ``window``, ``window_start`` and ``window_end`` (:func:`judged_window`). The service-health,
    fairness and attribution-drift checks are such operators; :meth:`run_spec` lets one prepare the
    spec at run time (a pseudonym key)."""

    window: timedelta | str | None
    window_start: datetime | str | None
    window_end: datetime | str | None

    def spec(self) -> Any:
        """The rendered arguments as the check's spec."""
        raise NotImplementedError

    def run_spec(self) -> Any:
        """The spec a run evaluates (default: :meth:`spec`)."""
        return self.spec()

    def dataset_name(self) -> str:
        """The spec's ``dataset_name()``."""
        return str(self.spec().dataset_name())

    def evaluate(self, context: Context) -> CheckResult:
        """Judge the run's window."""
        judged = judged_window(context, self.window, start=self.window_start, end=self.window_end)
        assert judged.start is not None and judged.end is not None  # a required window has both
        result = self.run_spec().evaluate(window_start=judged.start, window_end=judged.end)
        assert isinstance(result, CheckResult)
        return with_window_basis(result, judged)
