"""``RetrainGateOperator``: start retraining when this run's check results call for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.gate import CHECK, GatePolicy
from airflow_mlobs.core.gate_run import Gate, Pulled, Upstream, collect_upstream, decision_window
from airflow_mlobs.core.result import error_result
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
    :param sensitive_columns: the gate decides from its upstream checks' results, which already
        hold no value of their own ``sensitive_columns``; naming columns here also passes the gate's
        own result through the last safety net (:func:`~airflow_mlobs.core.result.scrub_sensitive`)
        before it is logged, stored, pushed or sent. Default: the upstream check tasks'
        ``sensitive_columns`` together.
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
        sensitive_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gate_sensitive_columns = list(sensitive_columns) if sensitive_columns is not None else None
        self.check_task_ids = list(check_task_ids) if check_task_ids is not None else None
        try:
            self.policy = GatePolicy(
                drift_share=drift_share,
                critical_features=(critical_features,)
                if isinstance(critical_features, str)
                else tuple(critical_features),
                performance_drop=performance_drop,
                consecutive_windows=consecutive_windows,
                cooldown=parse_duration(cooldown, name="cooldown") if cooldown is not None else None,
                require=require,
            )
        except (TypeError, ValueError, OverflowError) as exc:
            # A DAG import error naming the task, the argument and the allowed values.
            raise ValueError(f"{self.task_id}: {exc}") from exc
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

    def upstream_sensitive_columns(self) -> list[str]:
        """``sensitive_columns`` if given, else those of the upstream check tasks together."""
        if self.gate_sensitive_columns is not None:
            return list(self.gate_sensitive_columns)
        dag = getattr(self, "dag", None)
        task_ids = self.check_task_ids if self.check_task_ids is not None else sorted(self.upstream_task_ids)
        found: set[str] = set()
        for task_id in task_ids:
            task = dag.get_task(task_id) if dag is not None and dag.has_task(task_id) else None
            found.update(getattr(task, "sensitive_columns", None) or ())
        return sorted(found)

    def upstream_results(self, context: Context) -> tuple[list[Upstream], list[str]]:
        """This run's results of the check tasks, from XCom, and the problems that make the gate an
        ``error`` (a named task that does not exist or pushed no result, an upstream ``error``).

        A mapped upstream task gives one result per map index, each judged on its own. In a mapped
        gate (one per segment), each upstream mapped the same way gives the result of the gate's own
        map index. With the default ``check_task_ids`` (the direct upstream tasks), upstream tasks
        that are not checks (no check result in XCom, not a check operator) are left out.
        """
        explicit = self.check_task_ids is not None
        dag = getattr(self, "dag", None)
        ti = context["ti"]
        map_index = int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1)

        def pull(task_id: str) -> Pulled:
            mapped, is_check = _task_kind(dag, task_id)
            if map_index >= 0 and mapped:
                # A mapped gate judges its own map index of a mapped upstream (one gate per segment).
                return ti.xcom_pull(task_ids=task_id, map_indexes=map_index), mapped, is_check
            return ti.xcom_pull(task_ids=task_id), mapped, is_check

        return collect_upstream(
            list(self.check_task_ids) if self.check_task_ids is not None else sorted(self.upstream_task_ids),
            pull,
            explicit=explicit,
            known=set(getattr(dag, "task_ids", ()) or ()),
            dag_id=self.dag_id,
            gate_task_id=self.task_id,
            gate_map_index=map_index,
        )

    @retry_when_results_unavailable(CHECK)
    def execute(self, context: Context) -> dict[str, Any]:
        """Decide; store the decision; emit the asset event (success) or skip."""
        self.sensitive_columns = self.upstream_sensitive_columns()
        upstream, problems = self.upstream_results(context)
        results = [u.result for u in upstream]
        window_start, window_end = decision_window(results, run_times(context))
        gate = Gate(self.policy, self.dag_id, self.task_id, tuple(self.targets()))
        if problems:
            error = error_result(check=CHECK, dataset=gate.name, message="; ".join(problems))
            return self.finish(context, error.with_window(window_start, window_end))
        engine = results_engine(self.results_conn_id)
        try:
            store = ResultsStore(engine)
            decision = gate.judge(upstream, store, window_start=window_start, window_end=window_end)
        finally:
            engine.dispose()
        if store.skipped_total:
            self.log.warning(
                "Skipped %d stored result(s) that could not be read (corrupt or from another version); "
                "the decision uses the rest",
                store.skipped_total,
            )
        compact = self.publish(context, decision.result)
        if not decision.retrain:
            context["ti"].xcom_push(key="return_value", value=compact)
            raise AirflowSkipException(decision.result.summary)
        extra: dict[str, Any] = {"reasons": list(decision.reasons), "window_end": window_end.isoformat()}
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


def _task_kind(dag: Any, task_id: str) -> tuple[bool, bool]:
    """Whether ``task_id`` is mapped (``.partial().expand()``), and whether it is one of our check
    operators; ``(False, False)`` when it is not in the DAG (the caller reports that)."""
    try:
        task = dag.get_task(task_id)
    except Exception:  # not in this DAG
        return False, False
    cls = getattr(task, "operator_class", None) or type(task)
    # Mapped: not ``operator_class``, which every Airflow 3 operator has (its own class).
    return bool(getattr(task, "is_mapped", False)), isinstance(cls, type) and issubclass(
        cls, CheckResultMixin
    )
