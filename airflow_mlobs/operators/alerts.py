"""``AlertGroupOperator``: one message per incident for the checks of a DAG run.

Why a task at the end of the DAG rather than the last check's callback: with parallel check tasks
(and the Celery or Kubernetes executors) no check knows it is the last one, and two callbacks can
both think so. A task downstream of every check, with ``trigger_rule="all_done"``, runs exactly once
after they all finished (passed, failed or upstream-failed), and reads what they stored: every
check stores its result before any notification or breach policy, so the results store holds the
run's results even when a check failed its task or its own notifications failed.

What is grouped, inhibited and decided is :mod:`airflow_mlobs.core.grouping` (pure); each group is
sent through the given notifiers' :meth:`~airflow_mlobs.notifiers.base.CheckNotifier.send_result`,
so severity routing, mute windows, retries, de-duplication, escalation and recovery work as for
one check, on one alert state per group (check ``"group"``, the group's dataset, and this task as
scope). Silences apply to the checks in the group: a silenced check is left out of the message
(and listed as silenced), and a group whose every breach is silenced is held back as silenced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlobs.core.grouping import (
    DEFAULT_INHIBIT_RULES,
    GROUP_CHECK,
    GroupBy,
    InhibitRule,
    group_results,
    grouped_result,
)
from airflow_mlobs.core.result import CheckResult, Status

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.notifiers.base import CheckNotifier
    from airflow_mlobs.store import RunKey


def with_reports(grouped: CheckResult, members: list[tuple[CheckResult, RunKey]]) -> CheckResult:
    """``grouped`` with ``metrics["reports"]``: for each breached check that was not inhibited, its
    label (the check, and the task when they differ; ``[i]`` for a mapped task) and its task
    instance's result page, which the notifiers show as links ("drift report")."""
    from airflow_mlobs.operators.links import task_instance_result_url

    breached = set(grouped.metrics.get("breached", []))
    inhibited = {(i["check"], i["dataset"]) for i in grouped.metrics.get("inhibited", [])}
    reports = []
    for result, run in members:
        if result.check not in breached or (result.check, result.dataset) in inhibited or not run.task_id:
            continue
        if result.status.severity < Status.WARN.severity:
            continue
        task = run.task_id + (f"[{run.map_index}]" if run.map_index >= 0 else "")
        label = task if run.task_id == result.check else f"{result.check} ({task})"
        try:
            url = task_instance_result_url(run)
        except Exception:  # configuration unreadable: a message without the link
            url = None
        if url:
            reports.append({"label": label, "task_id": run.task_id, "map_index": run.map_index, "url": url})
    return replace(grouped, metrics={**grouped.metrics, "reports": reports})


class AlertGroupOperator(BaseOperator):
    """Send one message per group of this DAG run's stored check results.

    Put it downstream of the checks (``checks >> AlertGroupOperator(...)``) and give the notifiers
    here instead of to each check's ``notify``.

    :param notify: the notifiers (:mod:`airflow_mlobs.notifiers`) that receive each group.
    :param group_by: ``("run", "dataset")`` (default: one message per DAG run and dataset) or
        ``("run",)`` (one message per DAG run).
    :param inhibit_rules: :class:`~airflow_mlobs.core.grouping.InhibitRule` list; default: a
        ``fail`` of freshness or schema holds back drift, quality and performance alerts of the same
        dataset (listed in the message as "also failing, explained by ..."). ``[]`` inhibits nothing.
        A rule with ``equal=("dataset", "column")`` holds back only the findings about the columns
        its source breached on (a renamed column's drift, not the drift of the other columns).
    :param results_conn_id: the results history the checks stored into (default: as for checks).
    :param max_findings: the worst findings listed per breached check.
    :param trigger_rule: ``"all_done"`` by default, so it runs when checks failed their tasks.
    """

    ui_color = "#f5e6ff"

    def __init__(
        self,
        *,
        notify: Sequence[CheckNotifier],
        group_by: Sequence[GroupBy] = ("run", "dataset"),
        inhibit_rules: Sequence[InhibitRule] = DEFAULT_INHIBIT_RULES,
        results_conn_id: str | None = None,
        max_findings: int = 3,
        trigger_rule: str = "all_done",
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        if not notify:
            raise ValueError(f"{self.task_id}: notify needs at least one notifier")
        bad = set(group_by) - {"run", "dataset"}
        if not group_by or bad:
            raise ValueError(
                f"{self.task_id}: group_by must be a non-empty tuple of 'run' and 'dataset', got {tuple(group_by)!r}"
            )
        if isinstance(max_findings, bool) or not isinstance(max_findings, int) or max_findings < 1:
            raise ValueError(f"{self.task_id}: max_findings must be a positive integer, got {max_findings!r}")
        self.notify = list(notify)
        self.group_by = tuple(group_by)
        self.inhibit_rules = tuple(inhibit_rules)
        self.results_conn_id = results_conn_id
        self.max_findings = max_findings

    def run_results(self, store: Any, dag_id: str, run_id: str) -> list[CheckResult]:
        """The latest stored result of each check task (task, map index, dataset) of this run,
        leaving out grouped results."""
        return [result for result, _ in self.run_members(store, dag_id, run_id)]

    def run_members(self, store: Any, dag_id: str, run_id: str) -> list[tuple[CheckResult, RunKey]]:
        """:meth:`run_results` with the task run each result belongs to."""
        seen: set[tuple[str | None, int, str]] = set()
        members: list[tuple[CheckResult, RunKey]] = []
        for row in store.history(dag_id=dag_id, run_id=run_id):  # newest first
            if row.result.check == GROUP_CHECK or row.run.task_id == self.task_id:
                continue
            key = (row.run.task_id, row.run.map_index, row.result.dataset)
            if key not in seen:
                seen.add(key)
                members.append((row.result, row.run))
        return list(reversed(members))

    def execute(self, context: Context) -> dict[str, str | None]:
        from airflow_mlobs.connections import results_engine
        from airflow_mlobs.store import ResultsStore, RunKey

        ti = context["ti"]
        engine = results_engine(self.results_conn_id)
        sent: dict[str, str | None] = {}
        try:
            store = ResultsStore(engine)
            found = self.run_members(store, ti.dag_id, ti.run_id)
            runs = {id(result): run for result, run in found}
            results = [result for result, _ in found]
            self.log.info("%d check results stored for run %s", len(results), ti.run_id)
            now = datetime.now(UTC)
            silenced = {
                id(r): silence.describe()
                for r in results
                if r.status.severity >= Status.WARN.severity
                and (silence := store.silence_for(r, now)) is not None
            }
            for key, members in group_results(results, ti.run_id, self.group_by).items():
                grouped = grouped_result(
                    members, self.inhibit_rules, max_findings=self.max_findings, silenced=silenced
                )
                grouped = with_reports(grouped, [(m, runs[id(m)]) for m in members])
                self.log.info("%s: %s", key, grouped.summary)
                run = RunKey(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id)
                store.save(grouped, run)
                kinds = []
                for notifier in self.notify:
                    try:
                        notifier.render_template_fields(context)
                        kinds.append(notifier.send_result(grouped, context, store, run))
                    except Exception as exc:  # one notifier's bug must not silence the others
                        self.log.warning(
                            "Notifier %s failed: %s", type(notifier).__name__, type(exc).__name__
                        )
                sent[key] = next((k for k in kinds if k is not None), None)
        finally:
            engine.dispose()
        return sent
