"""AttributionDriftCheckOperator in a real Airflow DAG run (dag.test) against PostgreSQL: the
retrained model that moved its weight from x1 to x2 (accuracy unchanged) fails naming both; the
same window judged against its own version's global importances passes; a version with no rows in
the window is skipped with the reason."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_checks_in_dags import results
from tests.unit.test_attribution import linear_model_log

pytestmark = pytest.mark.e2e


def test_swapped_attributions_fail_in_a_dag(
    airflow_db: Path, tmp_path: Path, pg_engine: sa.Engine, pg_schema: str
) -> None:
    frame, _ = linear_model_log(n=1000)
    frame.to_sql(
        "mlobs_prediction_log",
        pg_engine,
        schema=pg_schema,
        index=False,
        dtype={"predicted_at": sa.DateTime(timezone=True)},
    )
    pd.DataFrame(
        {"model_version": ["v2"] * 3, "feature": ["x1", "x2", "x3"], "importance": [0.32, 1.28, 0.24]}
    ).to_sql("importances", pg_engine, schema=pg_schema, index=False)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "attribution.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import UTC, datetime
            from airflow.sdk import DAG
            from airflow_mlobs.operators import AttributionDriftCheckOperator

            with DAG("mlobs_attribution", schedule="@daily", start_date=datetime(2026, 10, 1, tzinfo=UTC),
                     catchup=False):
                common = dict(conn_id="wh", table="{pg_schema}.mlobs_prediction_log", window="1d",
                              on_breach="continue")
                AttributionDriftCheckOperator(task_id="swapped", model_version_column=None,
                                              reference_window=("2026-11-01", "2026-11-02"), **common)
                AttributionDriftCheckOperator(task_id="own_importances", model_version="v2",
                                              importances_table="{pg_schema}.importances",
                                              reference_model_version="v2", **common)
                AttributionDriftCheckOperator(task_id="no_rows", model_version="v1",
                                              baseline_importances={{"x1": 1.0, "x2": 0.5}}, **common)
            """
        )
    )
    env = {"AIRFLOW_CONN_WH": json.dumps(pg_connection_fields())}
    outcome = run_dag(airflow_db, dags, "mlobs_attribution", "2026-11-03", env)
    stored = results(airflow_db, "mlobs_attribution")
    status, summary = stored["swapped"]
    assert status == "fail", summary
    assert "gained weight: x2" in summary and "lost weight: x1" in summary, summary
    assert outcome.states["swapped"] == "success"  # on_breach="continue"
    metrics = outcome.xcoms["swapped"]["metrics"]
    assert metrics["ndcg"] < 0.9 and metrics["rows"] == 1000
    assert stored["own_importances"][0] == "pass", stored["own_importances"][1]
    assert stored["no_rows"][0] == "skipped" and "no rows" in stored["no_rows"][1]
