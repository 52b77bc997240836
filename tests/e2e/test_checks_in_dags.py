"""Check operators and the sensor in real Airflow DAG runs: bad input, breach policy, callbacks."""

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
DAY = "2026-11-26"  # the runs' data interval is [2026-11-25, 2026-11-26)


@pytest.fixture
def warehouse_db(tmp_path: Path) -> Path:
    """A small SQLite warehouse: a fresh table, a stale table, an empty one, NULL-only timestamps."""
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table in ("fresh_events", "stale_events", "empty_events", "null_events"):
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER, label TEXT, ts TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO fresh_events VALUES (1, 'a', '2026-11-25 23:00:00.000000')"))
        conn.execute(sa.text("INSERT INTO stale_events VALUES (1, 'a', '2026-11-20 08:00:00.000000')"))
        conn.execute(sa.text("INSERT INTO null_events VALUES (1, 'a', NULL), (2, 'b', NULL)"))
    engine.dispose()
    return path


def write_dag(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = """
        from datetime import UTC, datetime
        from pathlib import Path
        from airflow.sdk import DAG, CronDataIntervalTimetable, task
        from airflow_mlobs.operators import FreshnessCheckOperator, SchemaCheckOperator
        from airflow_mlobs.sensors.freshness import FreshnessSensor
        SCHEDULE = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
        START = datetime(2026, 11, 1, tzinfo=UTC)
    """
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return path


def env_for(db: Path) -> dict[str, str]:
    return {"AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(db)})}


def results(airflow_home: Path, dag_id: str) -> dict[str, tuple[str, str]]:
    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_home / 'mlobs_results.db'}"))
    return {
        s.run.task_id or "": (s.result.status.value, s.result.summary) for s in store.history(dag_id=dag_id)
    }


def test_bad_input_gives_error_results_naming_the_problem(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    bad_contract = tmp_path / "broken.schema.json"
    bad_contract.write_text('{"name": "broken", "expectations": [')
    dags = tmp_path / "dags"
    write_dag(
        dags,
        "bad_input",
        f"""
        with DAG("mlobs_bad_input", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            common = dict(max_age="6h", timestamp_column="ts")
            FreshnessCheckOperator(task_id="missing_table", conn_id="wh", table="no_such_table", **common)
            FreshnessCheckOperator(task_id="missing_column", conn_id="wh", table="fresh_events", max_age="6h", timestamp_column="created_at")
            FreshnessCheckOperator(task_id="not_a_timestamp", conn_id="wh", table="fresh_events", max_age="6h", timestamp_column="label")
            FreshnessCheckOperator(task_id="empty_table", conn_id="wh", table="empty_events", **common)
            FreshnessCheckOperator(task_id="null_timestamps", conn_id="wh", table="null_events", **common)
            FreshnessCheckOperator(task_id="unknown_connection", conn_id="no_such_conn", table="fresh_events", **common)
            SchemaCheckOperator(task_id="bad_contract", conn_id="wh", table="fresh_events", contract={str(bad_contract)!r})
            SchemaCheckOperator(task_id="missing_contract", conn_id="wh", table="fresh_events", contract="nowhere.schema.json")
            FreshnessCheckOperator(task_id="unreachable_results", conn_id="wh", table="fresh_events", results_conn_id="bad_results", **common)
        """,
    )
    env = env_for(warehouse_db)
    env["AIRFLOW_CONN_BAD_RESULTS"] = json.dumps(
        {"conn_type": "sqlite", "host": str(tmp_path / "no" / "dir" / "r.db")}
    )
    outcome = run_dag(airflow_db, dags, "mlobs_bad_input", DAY, env)
    assert outcome.returncode != 0
    assert set(outcome.states.values()) == {"failed"}, outcome.states
    stored = results(airflow_db, "mlobs_bad_input")
    expected = {
        "missing_table": ("error", ["no_such_table", "'wh'"]),
        "missing_column": ("error", ["'created_at'", "fresh_events", "ts"]),
        "not_a_timestamp": ("error", ["'label'", "fresh_events", "not a timestamp"]),
        "empty_table": ("fail", ["no rows"]),
        "null_timestamps": ("fail", ["only NULL timestamps"]),
        "unknown_connection": ("error", ["'no_such_conn'", "not defined"]),
        "bad_contract": ("error", [str(bad_contract), "not valid JSON", "line 1"]),
        "missing_contract": ("error", ["nowhere.schema.json", "does not exist"]),
    }
    # A results history that cannot be written fails the task with a message saying so.
    assert "unreachable_results" not in stored
    assert "could not store the pass result in the results history ('bad_results')" in outcome.output
    for task_id, (status, words) in expected.items():
        got_status, summary = stored[task_id]
        assert got_status == status, (task_id, summary)
        for word in words:
            assert word in summary, (task_id, word, summary)
        # The failed task carries the same message (Airflow prints it in the task log).
        assert summary in outcome.output, (task_id, summary)
        assert outcome.xcoms[task_id]["status"] == status


def test_breach_policy_fail_versus_continue_and_callback(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    marker = tmp_path / "callback.txt"
    dags = tmp_path / "dags"
    write_dag(
        dags,
        "policy",
        f"""
        def record_failure(context):
            Path({str(marker)!r}).write_text(str(context.get("exception")))

        with DAG("mlobs_policy", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            strict = FreshnessCheckOperator(
                task_id="strict", conn_id="wh", table="stale_events", timestamp_column="ts", max_age="6h",
                on_failure_callback=record_failure,
            )
            lenient = FreshnessCheckOperator(
                task_id="lenient", conn_id="wh", table="stale_events", timestamp_column="ts", max_age="6h",
                on_breach="continue",
            )
            warned = FreshnessCheckOperator(
                task_id="warned", conn_id="wh", table="fresh_events", timestamp_column="ts", max_age="6h",
                warn_after="30m",
            )

            @task
            def after_strict():
                return "ran"

            @task
            def after_lenient():
                return "ran"

            strict >> after_strict()
            [lenient, warned] >> after_lenient()
        """,
    )
    outcome = run_dag(airflow_db, dags, "mlobs_policy", DAY, env_for(warehouse_db))
    assert outcome.states == {
        "strict": "failed",
        "after_strict": "upstream_failed",
        "lenient": "success",
        "warned": "success",
        "after_lenient": "success",
    }
    stored = results(airflow_db, "mlobs_policy")
    assert stored["strict"][0] == "fail" and stored["lenient"][0] == "fail"
    assert stored["warned"][0] == "warn"
    assert outcome.xcoms["lenient"]["status"] == "fail"
    assert outcome.xcoms["warned"]["status"] == "warn"
    assert marker.exists(), "on_failure_callback did not fire"
    assert "stale" in marker.read_text()


def test_freshness_sensor_waits_then_fails_with_a_stored_result(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    dags = tmp_path / "dags"
    write_dag(
        dags,
        "sensors",
        """
        with DAG("mlobs_sensors", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            FreshnessSensor(
                task_id="fresh_now", conn_id="wh", table="fresh_events", timestamp_column="ts", max_age="6h",
                poke_interval=1, timeout=30,
            )
            FreshnessSensor(
                task_id="never_fresh", conn_id="wh", table="stale_events", timestamp_column="ts", max_age="6h",
                poke_interval=1, timeout=2,
            )
            FreshnessSensor(
                task_id="rescheduled_stale", conn_id="wh", table="stale_events", timestamp_column="ts",
                max_age="6h", poke_interval=1, timeout=2, mode="reschedule",
            )
            FreshnessSensor(
                task_id="deferred_fresh", conn_id="wh", table="fresh_events", timestamp_column="ts",
                max_age="6h", poke_interval=1, timeout=30, deferrable=True,
            )
            FreshnessSensor(
                task_id="deferred_stale", conn_id="wh", table="stale_events", timestamp_column="ts",
                max_age="6h", poke_interval=1, timeout=2, deferrable=True,
            )
        """,
    )
    outcome = run_dag(airflow_db, dags, "mlobs_sensors", DAY, env_for(warehouse_db))
    assert outcome.states == {
        "fresh_now": "success",
        "never_fresh": "failed",
        "rescheduled_stale": "failed",
        "deferred_fresh": "success",
        "deferred_stale": "failed",
    }, outcome.output[-4000:]
    # A deferrable sensor pokes once first: fresh data never goes through the triggerer.
    deferred = [line for line in outcome.output.splitlines() if "Pausing task as DEFERRED" in line]
    assert any("deferred_stale" in line for line in deferred), outcome.output[-4000:]
    assert not any("deferred_fresh" in line for line in deferred), deferred
    stored = results(airflow_db, "mlobs_sensors")
    assert stored["fresh_now"][0] == "pass"
    assert stored["deferred_fresh"][0] == "pass"
    for task_id in ("never_fresh", "rescheduled_stale", "deferred_stale"):
        status, summary = stored[task_id]
        assert status == "fail"
        assert "stale" in summary and "gave up after waiting 2s" in summary


def test_file_sources_and_writing_the_observed_contract(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlobs.core.schema import load_contract

    present = tmp_path / "events" / "dt=2026-11-25"
    present.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2], "score": [0.1, 0.9]}), present / "part-0.parquet")
    observed = tmp_path / "contracts" / "fresh_events.schema.json"
    dags = tmp_path / "dags"
    write_dag(
        dags,
        "files",
        f"""
        with DAG("mlobs_files", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            FreshnessCheckOperator(task_id="partition_present", partition={str(tmp_path)!r} + "/events/dt={{{{ data_interval_start | ds }}}}")
            FreshnessCheckOperator(task_id="partition_missing", partition={str(tmp_path)!r} + "/events/dt={{{{ data_interval_end | ds }}}}", on_breach="continue")
            record = SchemaCheckOperator(task_id="record_schema", conn_id="wh", table="fresh_events", write_observed_contract={str(observed)!r})
            record >> SchemaCheckOperator(task_id="parquet_schema", path={str(present / "part-0.parquet")!r}, contract={str(observed)!r})
        """,
    )
    outcome = run_dag(airflow_db, dags, "mlobs_files", DAY, env_for(warehouse_db))
    stored = results(airflow_db, "mlobs_files")
    assert outcome.states["partition_present"] == "success", outcome.output[-3000:]
    assert stored["partition_present"][0] == "pass"
    assert (
        stored["partition_missing"][0] == "fail"
        and "dt=2026-11-26 is missing" in stored["partition_missing"][1]
    )
    assert stored["record_schema"][0] == "pass"
    contract = load_contract(observed)
    assert set(contract.columns) == {"id", "label", "ts"}
    # The Parquet file has other columns than the recorded table: a contract breach.
    assert outcome.states["parquet_schema"] == "failed"
    assert stored["parquet_schema"][0] == "fail"
    assert "`label` missing" in stored["parquet_schema"][1]
