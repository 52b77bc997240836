"""The Grafana dashboard (dashboards/grafana/mlobs.json) over a real results table on PostgreSQL.

Each panel's SQL (and each template variable's) runs with Grafana's macros substituted the way
Grafana's PostgreSQL data source expands them, on a results history written by ``ResultsStore``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.store import ResultsStore, RunKey
from tests.conftest import pg_url

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "mlobs.json"
FROM, TO = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def expand(sql: str, datasets: list[str], checks: list[str]) -> str:
    """Grafana's expansion: ``$__timeFilter(x)`` to ``x BETWEEN 'from' AND 'to'``, a multi-value
    variable to its quoted values joined by commas."""
    sql = re.sub(
        r"\$__timeFilter\(((?:[^()]|\([^()]*\))*)\)",
        lambda m: f"{m.group(1)} BETWEEN '{FROM.isoformat()}' AND '{TO.isoformat()}'",
        sql,
    )
    quoted = lambda values: ",".join("'" + v.replace("'", "''") + "'" for v in values)  # noqa: E731
    return sql.replace("$dataset", quoted(datasets)).replace("$check", quoted(checks))


@pytest.fixture
def results_engine(pg_engine: sa.Engine, pg_schema: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url(), connect_args={"options": f"-csearch_path={pg_schema}"})
    store = ResultsStore(engine)
    for day in range(10):
        end = datetime(2026, 11, 10 + day, tzinfo=UTC)
        run = RunKey("monitoring", "", f"scheduled__{end.date()}", -1)
        age = 3600.0 if day < 6 else 3600.0 * 24 * (day - 5)
        store.save(
            CheckResult(
                "freshness",
                "wh:transactions",
                Status.PASS if day < 6 else Status.FAIL,
                "fresh",
                end - timedelta(days=1),
                end,
                metrics={"age_seconds": age, "max_age_seconds": 21600.0},
                findings=(Finding("newest", "age", Status.PASS, value=age),),
            ),
            RunKey(run.dag_id, "freshness", run.run_id),
        )
        share = 0.0 if day < 7 else 0.75
        store.save(
            CheckResult(
                "drift",
                "wh:features",
                Status.PASS if day < 7 else Status.FAIL,
                "drift",
                end - timedelta(days=1),
                end,
                metrics={"drift_share": share, "columns": {"age": {}, "region": {}}},
                findings=(
                    Finding("age", "wasserstein", Status.FAIL if share else Status.PASS, value=0.2 * share),
                    Finding("region", "js", Status.PASS, value=0.01),
                ),
            ),
            RunKey(run.dag_id, "drift", run.run_id),
        )
        store.save(
            CheckResult(
                "performance",
                "churn_model",
                Status.PASS,
                "ok",
                end - timedelta(days=1),
                end,
                metrics={"metric": "accuracy", "value": 0.9 - day / 100, "label_coverage": 0.8},
            ),
            RunKey(run.dag_id, "performance", run.run_id),
        )
    yield engine
    engine.dispose()


def test_dashboard_is_valid_json_with_postgres_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "airflow-mlobs"
    titles = [p["title"] for p in dashboard["panels"]]
    assert {
        "Status over time (dataset / check)",
        "Drift share",
        "Freshness: data age vs limit (hours)",
    } <= set(titles)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "grafana-postgresql-datasource", panel["title"]
        assert all(t["rawSql"].strip() for t in panel["targets"]), panel["title"]


def test_every_panel_query_runs_on_postgres_against_the_results_table(results_engine: sa.Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows: dict[str, list[sa.Row]] = {}
    with results_engine.connect() as conn:
        for variable in dashboard["templating"]["list"]:
            values = [r[0] for r in conn.exec_driver_sql(variable["query"])]
            rows[variable["name"]] = values
        assert rows["dataset"] == ["churn_model", "wh:features", "wh:transactions"]
        assert rows["check"] == ["drift", "freshness", "performance"]
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                sql = expand(target["rawSql"], rows["dataset"], rows["check"])  # type: ignore[arg-type]
                result = conn.exec_driver_sql(sql).all()
                assert result, (panel["title"], target["refId"], sql)
                rows[f"{panel['title']}/{target['refId']}"] = result
    latest = {(r.dataset, r.check): r.status for r in rows["Latest status per dataset x check/A"]}
    assert latest == {
        ("wh:transactions", "freshness"): "fail",
        ("wh:features", "drift"): "fail",
        ("churn_model", "performance"): "pass",
    }
    timeline = rows["Status over time (dataset / check)/A"]
    freshness = [r.value for r in timeline if r.metric == "wh:transactions / freshness"]
    assert freshness == [1] * 6 + [3] * 4
    assert [r.value for r in rows["Drift share/A"]] == [0.0] * 7 + [0.75] * 3
    effects = {r.metric for r in rows["Drift effect size per column/A"]}
    assert effects == {"wh:features age (wasserstein)", "wh:features region (js)"}
    ages = [r.value for r in rows["Freshness: data age vs limit (hours)/A"]]
    assert ages[:6] == [1.0] * 6 and ages[-1] == 96.0
    assert {r.value for r in rows["Freshness: data age vs limit (hours)/B"]} == {6.0}
    assert len(rows["Performance and label coverage/A"]) == 10
    breaches = rows["Breaches per day/A"]
    assert sum(r.value for r in breaches) == 4 + 3
