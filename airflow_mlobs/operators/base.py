"""What every check operator shares: the window, storing and pushing the result, the breach policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult, Status, error_result
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.core.window import RunTimes, RunWindow, as_of_moment, resolve_window
from airflow_mlobs.exceptions import CheckBreachError
from airflow_mlobs.store import ResultsStore, RunKey

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.notifiers.base import CheckNotifier

OnBreach = Literal["fail", "continue"]
ON_BREACH_VALUES = ("fail", "continue")


def run_window(context: Context) -> tuple[datetime | None, datetime | None]:
    """The run's data interval (aware, UTC); ``(None, None)`` for runs without one."""
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    return (_as_utc(start), _as_utc(end))


def run_times(context: Context) -> RunTimes:
    """The times that decide a run's window: data interval, logical date and run-after time."""
    start, end = run_window(context)
    dag_run = context.get("dag_run")
    return RunTimes(
        interval_start=start,
        interval_end=end,
        logical_date=_as_utc(context.get("logical_date")),
        run_after=_as_utc(getattr(dag_run, "run_after", None)),
    )


def parse_window_arg(value: timedelta | str | float | None, task_id: str) -> None:
    """Validate a literal ``window`` argument at parse time (a templated one is checked when rendered)."""
    if value in (None, "") or (isinstance(value, str) and "{{" in value):
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


def parse_moment(value: datetime | str | None, name: str) -> datetime | None:
    """An aware UTC moment from a datetime or ISO text; one without a zone (e.g. ``"{{ ds }}"``) is
    UTC, like the run's data interval. Empty means None."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise MlobsInputError(f"{name}: {value!r} is not an ISO 8601 timestamp") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def with_window_basis(result: CheckResult, window: RunWindow) -> CheckResult:
    """``result`` recording the window it judged and how that window was chosen (``window_basis``)."""
    metrics = {**result.metrics, "window_basis": window.basis}
    judged = result if result.window_start or result.window_end else result.with_window(window.start, window.end)
    return replace(judged, metrics=metrics)


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


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
    log: Any
    dag_id: str
    task_id: str
    do_xcom_push: bool

    def publish(self, context: Context, result: CheckResult) -> dict[str, Any]:
        """Log and store ``result`` (replacing this task's row for the same interval).

        Returns the compact form. Storing happens before any notification or policy so nothing is
        lost; a failure to store fails the task with a message naming the results connection.
        """
        self.log.info("%s", result.summary)
        if result.findings:
            self.log.info("Findings:\n%s", result.format_table())
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
            finally:
                engine.dispose()
        except (MlobsInputError, SQLAlchemyError) as exc:
            # The result itself is in the log above; say plainly that it was not stored.
            where = repr(self.results_conn_id) if self.results_conn_id else "the default SQLite file"
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise CheckBreachError(
                error_result(
                    check=result.check,
                    dataset=result.dataset,
                    message=f"could not store the {result.status.value} result in the results history "
                    f"({where}): {detail}",
                )
            ) from exc
        return result.compact()

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


def guarded(
    check: str,
    dataset: str,
    window: tuple[datetime | None, datetime | None],
    evaluate: Callable[[], CheckResult],
) -> CheckResult:
    """Run ``evaluate``; bad input (``MlobsInputError``) becomes an ``error`` result naming the problem."""
    try:
        result = evaluate()
    except MlobsInputError as exc:
        result = error_result(check=check, dataset=dataset, message=str(exc))
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
        run) always does.
    :param notify: notifiers (:mod:`airflow_mlobs.notifiers`) given the stored result; each decides
        from its severity, de-duplication and escalation rules whether to send.
    """

    check_name = "check"
    template_fields: tuple[str, ...] = ("results_conn_id", "dataset")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dataset: str | None = None,
        results_conn_id: str | None = None,
        on_breach: OnBreach = "fail",
        notify: Sequence[CheckNotifier] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.notify = list(notify)
        if on_breach not in ON_BREACH_VALUES:
            raise ValueError(f"{self.task_id}: on_breach must be 'fail' or 'continue', got {on_breach!r}")
        self.dataset = dataset
        self.results_conn_id = results_conn_id
        self.on_breach = on_breach

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
