"""``RetrainGateOperator``: start retraining when this run's check results call for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.gate import CHECK, RETRAIN, GatePolicy, decide
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.operators.base import CheckResultMixin, run_window
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

    def upstream_results(self, context: Context) -> list[CheckResult]:
        """This run's results of the check tasks, from XCom (tasks that pushed nothing are left out)."""
        task_ids = self.check_task_ids if self.check_task_ids is not None else sorted(self.upstream_task_ids)
        results = []
        for task_id in task_ids:
            value = context["ti"].xcom_pull(task_ids=task_id)
            if isinstance(value, dict) and "check" in value and "status" in value:
                results.append(CheckResult.from_dict(value))
        return results

    def execute(self, context: Context) -> dict[str, Any]:
        """Decide; store the decision; emit the asset event (success) or skip."""
        results = self.upstream_results(context)
        window_start, window_end = run_window(context)
        now = window_end or datetime.now(UTC)
        engine = results_engine(self.results_conn_id)
        try:
            store = ResultsStore(engine)
            previous: dict[str, list[CheckResult]] = {}
            if self.policy.consecutive_windows > 1:
                for result in results:
                    earlier = [
                        s.result
                        for s in store.history(dataset=result.dataset, check=result.check)
                        if s.result.window_end is not None and s.result.window_end < now
                    ]
                    previous.setdefault(result.dataset, []).extend(
                        earlier[: self.policy.consecutive_windows - 1]
                    )
            targets = self.targets()
            last_retrain, last_retrain_by = None, None
            for stored in store.history(check=CHECK):
                end = stored.result.window_end
                if stored.result.metrics.get("decision") != RETRAIN or end is None or end >= now:
                    continue
                same_gate = stored.run.dag_id == self.dag_id and stored.run.task_id == self.task_id
                if same_gate or set(targets) & set(stored.result.metrics.get("targets") or ()):
                    last_retrain, last_retrain_by = end, stored.result.dataset
                    break
        finally:
            engine.dispose()
        decision = decide(
            self.policy,
            results,
            gate=f"{self.dag_id}.{self.task_id}",
            now=now,
            previous=previous,
            last_retrain=last_retrain,
            last_retrain_by=last_retrain_by,
            targets=targets,
            window_start=window_start,
            window_end=window_end,
        )
        compact = self.publish(context, decision.result)
        if not decision.retrain:
            context["ti"].xcom_push(key="return_value", value=compact)
            raise AirflowSkipException(decision.result.summary)
        extra: dict[str, Any] = {
            "reasons": list(decision.reasons),
            "window_end": window_end.isoformat() if window_end else None,
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
