"""``FreshnessSensor``: wait until data is fresh; at the timeout, a failed freshness result."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.operators.base import (
    CheckResultMixin,
    OnBreach,
    resolve_as_of,
    run_times,
    run_window,
)
from airflow_mlobs.operators.freshness import FreshnessArgsMixin, FreshnessCheckOperator
from airflow_mlobs.specs.freshness import timed_out
from airflow_mlobs.triggers.freshness import FreshnessTrigger, evaluate_freshness

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.notifiers.base import CheckNotifier


class FreshnessSensor(FreshnessArgsMixin, CheckResultMixin, BaseSensorOperator):
    """Wait until the newest data is fresh, then store a passing freshness result.

    Takes the source and limit arguments of
    :class:`~airflow_mlobs.operators.freshness.FreshnessArgsMixin`, as the operator does (templated
    the same way), and evaluates the same :class:`~airflow_mlobs.specs.freshness.FreshnessSpec`.
    Works in ``poke`` and ``reschedule`` mode, and with ``deferrable=True`` waits in the triggerer
    through :class:`~airflow_mlobs.triggers.freshness.FreshnessTrigger`. At ``timeout`` it stores a
    ``fail`` result whose findings say how long it waited, then applies ``on_breach`` (default
    ``"fail"``). Bad input (missing table or connection) ends the wait at once with an ``error``.
    """

    template_fields: tuple[str, ...] = FreshnessCheckOperator.template_fields
    template_ext = FreshnessCheckOperator.template_ext
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dataset: str | None = None,
        results_conn_id: str | None = None,
        on_breach: OnBreach = "fail",
        deferrable: bool = False,
        notify: Sequence[CheckNotifier] = (),
        report_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_result_args(
            dataset=dataset, results_conn_id=results_conn_id, on_breach=on_breach, notify=notify
        )
        # Templated like the operator's (its template_fields are the sensor's): without it every
        # sensor task failed rendering its templates.
        self.report_dir = report_dir
        self.deferrable = deferrable
        self._last: CheckResult | None = None

    def _as_of(self, context: Context) -> datetime | None:
        """The moment to judge at: ``as_of``, else the run's interval end or logical date; None for a
        run with neither (a manual run without a logical date, an asset-triggered run), which is
        judged as of the moment of each poke, so data that lands while the sensor waits counts."""
        times = run_times(context)
        if self.as_of not in (None, "") or times.interval_end is not None or times.logical_date is not None:
            return resolve_as_of(context, self.as_of)
        return None

    def _evaluate(self, context: Context) -> CheckResult:
        return evaluate_freshness(self.spec(), as_of=self._as_of(context), window=run_window(context))

    def poke(self, context: Context) -> bool:
        """Fresh (pass or warn) ends the wait; an ``error`` result fails at once."""
        result = self._evaluate(context)
        self._last = result
        if result.status is Status.ERROR:
            self.finish(context, result)
        self.log.info("%s", result.summary)
        return result.status in (Status.PASS, Status.WARN)

    def execute(self, context: Context) -> Any:
        """Poke (or defer) until fresh; store the final result either way.

        A deferrable sensor pokes once first: data that is already fresh costs no trip through the
        triggerer, and bad input fails at once."""
        if self.deferrable:
            if self.poke(context):
                assert self._last is not None
                return self.finish(context, self._last)
            window = run_window(context)
            as_of = self._as_of(context)
            deadline = datetime.now(UTC) + timedelta(seconds=float(self.timeout))
            self.defer(
                trigger=FreshnessTrigger(
                    spec=self.spec().to_kwargs(),
                    as_of=as_of.isoformat() if as_of is not None else None,
                    poke_interval=float(self.poke_interval),
                    deadline=deadline.isoformat(),
                    window_start=window[0].isoformat() if window[0] else None,
                    window_end=window[1].isoformat() if window[1] else None,
                ),
                method_name="execute_complete",
            )
        try:
            super().execute(context)
        except AirflowSensorTimeout:
            # Fails with CheckBreachError under on_breach="fail"; stored either way.
            last = self._last or self._evaluate(context)
            return self.finish(context, timed_out(last, timedelta(seconds=float(self.timeout))))
        assert self._last is not None
        return self.finish(context, self._last)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: store its last result; a timed-out wait is a ``fail``."""
        result = CheckResult.from_dict(event["result"])
        if event.get("timed_out"):
            result = timed_out(result, timedelta(seconds=float(self.timeout)))
        return self.finish(context, result)
