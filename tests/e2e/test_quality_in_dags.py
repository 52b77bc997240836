"""ExpectationSuiteOperator in real Airflow DAG runs: passing and failing suites, bad input, breach policy."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-11-26"  # the run's data interval is [2026-11-25, 2026-11-26)


@pytest.fixture
def warehouse_db(tmp_path: Path) -> Path:
    """``customer_activity`` with a healthy window (2026-11-25) except in ``bad_activity``, which has
    an age of 150 and a negative spend."""
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    regions = ["north", "south", "east", "west"]
    with engine.begin() as conn:
        for table in ("customer_activity", "bad_activity"):
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (customer_id INTEGER NOT NULL, event_time TIMESTAMP NOT NULL, "
                    "customer_age INTEGER, tenure_months INTEGER, monthly_spend FLOAT, region VARCHAR(16))"
                )
            )
            rows = [
                {
                    "c": i % 300 + 1,
                    "t": f"2026-11-25 {i * 86399 // 400 // 3600:02d}:{i * 86399 // 400 % 3600 // 60:02d}:00.000000",
                    "a": 18 + i % 60,
                    "m": i % 100,
                    "s": float(i % 90),
                    "r": regions[i % 4],
                }
                for i in range(400)
            ]
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:c, :t, :a, :m, :s, :r)"), rows)
        conn.execute(sa.text("UPDATE bad_activity SET customer_age = 150 WHERE customer_id IN (3, 4)"))
        conn.execute(sa.text("UPDATE bad_activity SET monthly_spend = -5 WHERE customer_id = 9"))
    engine.dispose()
    return path


def write_dag(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = """
        from datetime import UTC, datetime
        from airflow.sdk import DAG, CronDataIntervalTimetable, task
        from airflow_mlobs.operators import ExpectationSuiteOperator
        SCHEDULE = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
        START = datetime(2026, 11, 1, tzinfo=UTC)
    """
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return path


def results(airflow_home: Path, dag_id: str) -> dict[str, tuple[str, str, dict[str, object]]]:
    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_home / 'mlobs_results.db'}"))
    return {
        s.run.task_id or "": (s.result.status.value, s.result.summary, dict(s.result.metrics))
        for s in store.history(dag_id=dag_id)
    }


def test_suites_in_a_dag(airflow_db: Path, tmp_path: Path, warehouse_db: Path) -> None:
    dags = tmp_path / "dags"
    suites = dags / "expectations"
    suites.mkdir(parents=True)
    # The repository's example suite, found in expectations/ beside the DAG file.
    (suites / "customer_activity.quality.json").write_text(
        (ROOT / "expectations" / "customer_activity.quality.json").read_text()
    )
    (suites / "broken.quality.json").write_text('{"name": "broken",\n  "expectations": [}')
    (suites / "purple.quality.json").write_text(
        json.dumps(
            {
                "name": "purple",
                "expectations": [
                    {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "region"}}
                ],
            }
        )
    )
    (suites / "missing_column.quality.json").write_text(
        json.dumps(
            {
                "name": "mc",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"}}
                ],
            }
        )
    )
    (suites / "param.quality.json").write_text(
        json.dumps(
            {
                "name": "param",
                "expectations": [
                    {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {"min_value": {"$PARAMETER": "min_rows"}},
                    }
                ],
            }
        )
    )
    write_dag(
        dags,
        "quality",
        """
        with DAG("mlobs_quality", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            common = dict(conn_id="wh", timestamp_column="event_time")
            ExpectationSuiteOperator(task_id="healthy", table="customer_activity", suite="customer_activity.quality.json", **common)
            ExpectationSuiteOperator(task_id="templated", table="customer_activity", suite="param.quality.json",
                                     suite_parameters={"min_rows": "{{ 300 + 100 }}"}, render_template_as_native_obj=True, **common)
            bad = ExpectationSuiteOperator(task_id="bad_data", table="bad_activity", suite="customer_activity.quality.json", **common)
            lenient = ExpectationSuiteOperator(task_id="bad_data_continue", table="bad_activity",
                                               suite="customer_activity.quality.json", on_breach="continue", **common)
            ExpectationSuiteOperator(task_id="missing_suite", table="customer_activity", suite="nowhere.quality.json", **common)
            ExpectationSuiteOperator(task_id="broken_json", table="customer_activity", suite="broken.quality.json", **common)
            ExpectationSuiteOperator(task_id="unknown_type", table="customer_activity", suite="purple.quality.json", **common)
            ExpectationSuiteOperator(task_id="missing_column", table="customer_activity", suite="missing_column.quality.json", **common)
            ExpectationSuiteOperator(task_id="unknown_connection", conn_id="no_such_conn", table="customer_activity",
                                     suite="customer_activity.quality.json", timestamp_column="event_time")

            @task
            def train():
                return "trained"

            @task
            def after_lenient():
                return "ran"

            bad >> train()
            lenient >> after_lenient()
        """,
    )
    env = {"AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse_db)})}
    outcome = run_dag(airflow_db, dags, "mlobs_quality", DAY, env)
    assert outcome.states == {
        "healthy": "success",
        "templated": "success",
        "bad_data": "failed",
        "train": "upstream_failed",
        "bad_data_continue": "success",
        "after_lenient": "success",
        "missing_suite": "failed",
        "broken_json": "failed",
        "unknown_type": "failed",
        "missing_column": "failed",
        "unknown_connection": "failed",
    }, outcome.output[-5000:]
    stored = results(airflow_db, "mlobs_quality")
    assert stored["healthy"][0] == "pass"
    assert stored["healthy"][2]["evaluated_expectations"] == 14
    assert stored["templated"][0] == "pass"
    status, summary, metrics = stored["bad_data"]
    assert status == "fail"
    assert "`customer_age`: 1% of values (4 rows) outside 18..100 (e.g. 150 x4)" in summary
    assert "`monthly_spend`: 0.5% of values (2 rows) below 0 (e.g. -5 x2)" in summary
    assert metrics["failed_expectations"] == 2
    assert stored["bad_data_continue"][0] == "fail"
    assert outcome.xcoms["bad_data_continue"]["status"] == "fail"
    assert outcome.xcoms["bad_data"]["top_findings"][0]["subject"] in ("customer_age", "monthly_spend")
    expected_errors = {
        "missing_suite": ["nowhere.quality.json", "does not exist"],
        "broken_json": ["broken.quality.json", "not valid JSON", "line 2, column"],
        "unknown_type": [
            "purple.quality.json",
            "unknown expectation type 'expect_column_values_to_be_purple'",
        ],
        "missing_column": ["`age` does not exist in wh:customer_activity"],
        "unknown_connection": ["'no_such_conn'", "not defined"],
    }
    for task_id, words in expected_errors.items():
        got_status, got_summary, _ = stored[task_id]
        assert got_status == "error", (task_id, got_summary)
        for word in words:
            assert word in got_summary, (task_id, word, got_summary)
        assert outcome.xcoms[task_id]["status"] == "error"
    # The warehouse path is in the connection, never a password; nothing secret in the output.
    assert "sqlite:////" not in stored["healthy"][1]
