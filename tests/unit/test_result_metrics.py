"""The metrics each result sends through Airflow's Stats (airflow_mlobs.operators.metrics)."""

from __future__ import annotations

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.operators.metrics import Metric, name_part, result_metrics


def test_status_metrics_and_legacy_names_follow_airflow() -> None:
    result = CheckResult("schema", "wh:a.b", Status.FAIL, "broken")
    metrics = result_metrics(result, dag_id="dag.x", task_id="group.task")
    base = {"dag_id": "dag.x", "task_id": "group.task", "dataset": "wh:a.b", "check": "schema"}
    assert metrics == [
        Metric(
            "mlobs.check.finish",
            1,
            "counter",
            {**base, "status": "fail"},
            "mlobs.check.finish.dag__x.group__task.fail",
        ),
        Metric("mlobs.check.status", 3, "gauge", base, "mlobs.check.status.dag__x.group__task"),
        Metric("mlobs.check.breach", 1, "gauge", base, "mlobs.check.breach.dag__x.group__task"),
    ]
    assert name_part("a b:c") == "a_b_c"


def test_performance_value_drop_and_label_coverage() -> None:
    result = CheckResult(
        "performance",
        "model",
        Status.WARN,
        "s",
        metrics={"metric": "roc_auc", "value": 0.8, "drop": 0.05, "label_coverage": 0.7},
    )
    got = {
        (m.name, m.tags.get("metric")): (m.value, m.legacy)
        for m in result_metrics(result, dag_id="d", task_id="t")
    }
    assert got[("mlobs.performance.value", "roc_auc")] == (0.8, "mlobs.performance.value.d.t.roc_auc")
    assert got[("mlobs.performance.drop", "roc_auc")] == (0.05, "mlobs.performance.drop.d.t.roc_auc")
    assert got[("mlobs.performance.label_coverage", None)] == (0.7, "mlobs.performance.label_coverage.d.t")
    assert got[("mlobs.check.breach", None)][0] == 0


def test_drift_effects_only_for_judged_columns_and_finite_values() -> None:
    result = CheckResult(
        "drift",
        "wh:f",
        Status.FAIL,
        "s",
        metrics={"drift_share": 0.5, "columns": {"age": {}, "region": {}}, "rows": 10, "columns_judged": 2},
        findings=(
            Finding("age", "wasserstein", Status.FAIL, value=0.3),
            Finding("age", "missing_rate", Status.WARN, value=0.1),
            Finding("region", "js", Status.PASS, value=None),
            Finding("window", "rows", Status.PASS, value=10),
        ),
    )
    effects = [
        (m.tags["column"], m.tags["metric"], m.value)
        for m in result_metrics(result, dag_id="d", task_id="t")
        if m.name == "mlobs.drift.effect"
    ]
    assert effects == [("age", "wasserstein", 0.3)]
    assert [
        m.value for m in result_metrics(result, dag_id="d", task_id="t") if m.name == "mlobs.drift.share"
    ] == [0.5]
