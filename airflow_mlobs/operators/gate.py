"""``RetrainGateOperator``: start retraining when this run's check results call for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.gate import CHECK, GatePolicy, GateReading, RetrainEvent, decide, retrain_event
from airflow_mlobs.core.result import CheckResult, Status, error_result
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.operators.base import CheckResultMixin, retry_when_results_unavailable, run_times
from airflow_mlobs.store import ResultsStore

if TYPE_CHECKING:
    from airflow.sdk import Context


class RetrainGateOperator(CheckResultMixin, BaseOperator):
    """Read this run's check results (XCom of ``check_task_ids``) and decide whether to retrain.

    When the policy (:class:`airflow_mlobs.core.gate.GatePolicy`) says retrain, the task succeeds:
    its ``outlets`` (e.g. ``[Asset("model://churn/retrain")]``) get an asset event carrying the
    reasons, so a retraining DAG scheduled on that asset starts; with ``trigger_dag_id`` it also
    triggers that DAG with a conf holding the reasons and results. Otherwise (no need, or held by
    the cooldown) it stores its decision and skips itself and its downstream tasks. The decision is
    stored as a ``retrain_gate`` result either way.

    :param check_task_ids: upstream check tasks to read (default: all direct upstream tasks).
    :param drift_share, critical_features, performance_drop, consecutive_windows, cooldown, require:
        the policy; ``cooldown`` is a timedelta or text like ``"3d"``, counted from the last
        retraining of the same target (an outlet asset or ``trigger_dag_id``) by any gate.
    :param trigger_dag_id: optionally trigger this DAG when retraining.
    """

    template_fields: tuple[str, ...] = ("results_conn_id", "trigger_dag_id")
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        check_task_ids: Sequence[str] | None = None,
        drift_share: float | None = 0.3,
        critical_features: Sequence[str] = (),
        performance_drop: float | None = None,
        consecutive_windows: int = 1,
        cooldown: timedelta | str | None = None,
        require: Literal["any", "all"] = "any",
        trigger_dag_id: str | None = None,
        results_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids) if check_task_ids is not None else None
        self.policy = GatePolicy(
            drift_share=drift_share,
            critical_features=tuple(critical_features),
            performance_drop=performance_drop,
            consecutive_windows=consecutive_windows,
            cooldown=parse_duration(cooldown, name=f"{self.task_id}: cooldown")
            if cooldown is not None
            else None,
            require=require,
        )
        self.trigger_dag_id = trigger_dag_id
        self.results_conn_id = results_conn_id
        self.on_breach = "continue"

    def targets(self) -> list[str]:
        """What this gate starts: its outlets' asset URIs and ``dag:<trigger_dag_id>``; gates with a
        target in common share the cooldown."""
        found = [str(uri) for uri in (getattr(o, "uri", None) for o in self.outlets) if uri]
        if self.trigger_dag_id:
            found.append(f"dag:{self.trigger_dag_id}")
        return sorted(set(found))

    def upstream_results(self, context: Context) -> tuple[list[CheckResult], list[str]]:
        """This run's results of the check tasks, from XCom, and the problems that make the gate an
        ``error`` (a named task that does not exist or pushed no result, an upstream ``error``).

        A mapped upstream task gives one result per map index, each judged on its own. In a mapped
        gate (one per segment), each upstream mapped the same way gives the result of the gate's own
        map index. With the default ``check_task_ids`` (the direct upstream tasks), upstream tasks
        that are not checks (no check result in XCom, not a check operator) are left out.
        """
        explicit = self.check_task_ids is not None
        task_ids = (
            list(self.check_task_ids) if self.check_task_ids is not None else sorted(self.upstream_task_ids)
        )
        dag = getattr(self, "dag", None)
        known = set(getattr(dag, "task_ids", ()) or ())
        ti = context["ti"]
        map_index = int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1)
        results: list[CheckResult] = []
        problems: list[str] = []
        self._origins: dict[int, tuple[str, int]] = {}
        for task_id in task_ids:
            if explicit and known and task_id not in known:
                problems.append(
                    f"check_task_ids names {task_id!r}, which is not a task of DAG {self.dag_id!r}"
                )
                continue
            if map_index >= 0 and _is_mapped(dag, task_id):
                # A mapped gate judges its own map index of a mapped upstream (one gate per segment).
                value: Any = ti.xcom_pull(task_ids=task_id, map_indexes=map_index)
            else:
                value = ti.xcom_pull(task_ids=task_id)
            values = value if isinstance(value, list | tuple) else [] if value is None else [value]
            found = [v for v in values if isinstance(v, dict) and "check" in v and "status" in v]
            is_check = explicit or _is_check_task(dag, task_id)
            if not found:
                if is_check:
                    problems.append(
                        f"upstream task {task_id!r} pushed no check result (did it run? is it a check?)"
                    )
                continue
            if len(found) < len(values) and is_check:
                problems.append(
                    f"upstream task {task_id!r} pushed {len(values) - len(found)} value(s) that are not check results"
                )
            mapped = len(values) > 1 or _is_mapped(dag, task_id)
            for position, item in enumerate(found):
                result = CheckResult.from_dict(item)
                # Which map index it came from: the gate's own in a mapped gate, else its position.
                # Whose result: the map index it carries, else the gate's own in a mapped gate, else
                # its position (results pushed before map indexes were recorded).
                carried = item.get("map_index")
                fallback = map_index if map_index >= 0 else position
                index = (carried if isinstance(carried, int) else fallback) if mapped else -1
                self._origins[len(results)] = (task_id, index)
                if result.status is Status.ERROR:
                    problems.append(f"upstream task {task_id!r} could not run its check: {result.summary}")
                results.append(result)
        if not results and not problems:
            problems.append(f"no check results to judge: no upstream task of {self.task_id!r} is a check")
        return results, problems

    def decision_window(
        self, context: Context, results: Sequence[CheckResult]
    ) -> tuple[datetime | None, datetime]:
        """The window the decision is about, and its time: the latest judged window among the
        results, else the run's data interval, else its logical date or run-after time."""
        judged = [r for r in results if r.window_end is not None]
        if judged:
            latest = max(judged, key=lambda r: r.window_end or datetime.min.replace(tzinfo=UTC))
            assert latest.window_end is not None
            return latest.window_start, latest.window_end
        times = run_times(context)
        anchor, _ = times.anchor()
        if anchor is None:
            anchor = datetime.now(UTC)
        return (times.interval_start if times.interval_end is not None else anchor), anchor

    @retry_when_results_unavailable(CHECK)
    def execute(self, context: Context) -> dict[str, Any]:
        """Decide; store the decision; emit the asset event (success) or skip."""
        results, problems = self.upstream_results(context)
        window_start, window_end = self.decision_window(context, results)
        now = window_end
        gate_name = f"{self.dag_id}.{self.task_id}"
        if problems:
            error = error_result(check=CHECK, dataset=gate_name, message="; ".join(problems))
            return self.finish(context, error.with_window(window_start, window_end))
        targets = self.targets()
        engine = results_engine(self.results_conn_id)
        skipped = 0
        try:
            store = ResultsStore(engine)
            series = self._series(results)
            previous = self._previous_windows(store, results, series, now)
            skipped += store.skipped_rows
            last_retrain, last_retrain_by, already = self._retrains(store, targets, now)
            skipped += store.skipped_rows
        finally:
            engine.dispose()
        if skipped:
            self.log.warning(
                "Skipped %d stored result(s) that could not be read (corrupt or from another version); "
                "the decision uses the rest",
                skipped,
            )
        decision = decide(
            self.policy,
            results,
            gate=gate_name,
            now=now,
            previous=previous,
            last_retrain=last_retrain,
            last_retrain_by=last_retrain_by,
            targets=targets,
            window_start=window_start,
            window_end=window_end,
            already_retrained=already,
            series=series,
        )
        compact = self.publish(context, decision.result)
        if not decision.retrain:
            context["ti"].xcom_push(key="return_value", value=compact)
            raise AirflowSkipException(decision.result.summary)
        extra: dict[str, Any] = {
            "reasons": list(decision.reasons),
            "window_end": window_end.isoformat(),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        if self.trigger_dag_id:
            from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

            context["ti"].xcom_push(key="return_value", value=compact)
            TriggerDagRunOperator(
                task_id=f"{self.task_id}__trigger",
                trigger_dag_id=self.trigger_dag_id,
                conf={"reasons": list(decision.reasons), "results": [r.compact() for r in results]},
            ).execute(context)
        return compact

    def _series(self, results: Sequence[CheckResult]) -> list[str]:
        """Each result's series of windows: its dataset, and for a mapped check also its task and map
        index, so segments mapped over one dataset keep their own streaks."""
        keys = []
        for position, result in enumerate(results):
            task_id, index = self._origins.get(position, ("", -1))
            keys.append(result.dataset if index < 0 else f"{result.dataset}|{task_id}[{index}]")
        return keys

    def _previous_windows(
        self, store: ResultsStore, results: Sequence[CheckResult], series: Sequence[str], now: datetime
    ) -> dict[str, list[CheckResult]]:
        """Earlier results of the same check and series, newest first, for ``consecutive_windows``;
        read bounded by time (the streak's windows and one more) from the store."""
        previous: dict[str, list[CheckResult]] = {}
        needed = self.policy.consecutive_windows - 1
        if needed < 1:
            return previous
        for position, result in enumerate(results):
            task_id, index = self._origins.get(position, ("", -1))
            end = result.window_start or result.window_end or now
            length = (
                result.window_end - result.window_start
                if result.window_start is not None and result.window_end is not None
                else None
            )
            after = end - length * (needed + 1) if length else None
            # The same task (and map index) only: other tasks checking the same dataset (a merge
            # step, another DAG) store their own verdicts for the same windows.
            earlier: list[CheckResult] = []
            seen: set[datetime] = set()
            for stored in store.history(
                dataset=result.dataset,
                check=result.check,
                dag_id=self.dag_id if task_id else None,
                task_id=task_id or None,
                window_end_before=end + timedelta(microseconds=1),
                window_end_after=after,
                limit=None if after is not None else needed * 10,
            ):
                window_end = stored.result.window_end
                if window_end is None or window_end >= now or window_end in seen:
                    continue
                if task_id and stored.run.map_index != index:
                    continue
                seen.add(window_end)  # newest first: a window's latest verdict counts once
                earlier.append(stored.result)
            previous.setdefault(series[position], []).extend(earlier[:needed])
        return previous

    def _retrains(
        self, store: ResultsStore, targets: Sequence[str], now: datetime
    ) -> tuple[datetime | None, str | None, RetrainEvent | None]:
        """The nearest stored retraining of this gate or of a gate with a shared target within the
        cooldown (either side of ``now``), and one stored for this very window (a re-run)."""
        reach = self.policy.cooldown or timedelta(0)
        margin = timedelta(seconds=1)
        nearest: RetrainEvent | None = None
        already: RetrainEvent | None = None
        for stored in store.history(
            check=CHECK, window_end_after=now - reach - margin, window_end_before=now + reach + margin
        ):
            same_gate = stored.run.dag_id == self.dag_id and stored.run.task_id == self.task_id
            reading = GateReading.of(stored.result)
            shared = set(targets) & set(reading.targets if reading else ())
            if not (same_gate or shared):
                continue
            event = retrain_event(stored.result)
            if event is None:
                continue
            if stored.result.window_end == now or event.at == now:
                already = already or event
                continue
            if nearest is None or abs(event.at - now) < abs(nearest.at - now):
                nearest = event
        if nearest is None:
            return None, None, already
        return nearest.at, nearest.by, already


def _is_mapped(dag: Any, task_id: str) -> bool:
    """Whether ``task_id`` is a mapped task (``.partial().expand()``)."""
    try:
        task = dag.get_task(task_id)
    except Exception:  # not in this DAG: the caller reports it
        return False
    # Not ``operator_class``: every Airflow 3 operator has one (its own class).
    return bool(getattr(task, "is_mapped", False))


def _is_check_task(dag: Any, task_id: str) -> bool:
    """Whether ``task_id`` is one of our check operators (mapped or not)."""
    try:
        task = dag.get_task(task_id)
    except Exception:  # not in this DAG: the caller reports it
        return False
    cls = getattr(task, "operator_class", None) or type(task)
    return isinstance(cls, type) and issubclass(cls, CheckResultMixin)
