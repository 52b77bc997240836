"""Under a real scheduler: the monitoring DAG's gate emits the retraining asset event, and the
scheduler starts the asset-scheduled retraining DAG by itself.

Starts ``airflow api-server`` (which serves the execution API the task workers talk to),
``airflow scheduler`` (LocalExecutor) and ``airflow dag-processor`` in a private AIRFLOW_HOME,
triggers ``model_monitoring`` for the drift day through the CLI, and waits for the
``asset_triggered`` run of ``model_retraining`` to succeed. Slow (about two minutes); CI runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import load_baseline
from demo import warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "airflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, logs: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    tail = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}" for log in sorted(logs.glob("*.log"))
    )
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def airflow_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    base = tmp_path_factory.mktemp("scheduler")
    wh_path = base / "warehouse.db"
    url = warehouse.build(wh_path)
    # Only the drift day and earlier have activity and predictions: whatever interval the scheduler
    # runs on its own (the latest one by the wall clock) for model_monitoring or model_performance
    # finds no rows and cannot start a retraining.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM customer_activity WHERE event_time >= '2026-11-24 00:00:00'"))
        conn.execute(sa.text("DELETE FROM prediction_log WHERE predicted_at >= '2026-11-24 00:00:00'"))
    engine.dispose()
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(base / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(wh_path)}),
            "MLOBS_BASELINE_DIR": str(base / "baselines"),
            "MLOBS_MODEL_DIR": str(base / "models"),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{CLI.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    migrated = subprocess.run(
        [str(CLI), "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    logs = base / "logs"
    logs.mkdir()
    processes = []
    for command in (["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"]):
        log = (logs / f"{command[0]}.log").open("w")
        processes.append(
            subprocess.Popen(
                [str(CLI), *command], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    try:
        yield {"env": env, "home": base / "home", "logs": logs, "base": base}
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _query(home: Path, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{home / 'airflow.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    except sa.exc.OperationalError:  # the scheduler holds a write lock, or a table is not there yet
        return []
    finally:
        engine.dispose()


def test_gate_asset_event_starts_the_retraining_dag(airflow_services: dict[str, object]) -> None:
    env = airflow_services["env"]
    home = airflow_services["home"]
    logs = airflow_services["logs"]
    assert isinstance(env, dict) and isinstance(home, Path) and isinstance(logs, Path)

    def parsed() -> bool:
        rows = _query(home, "SELECT dag_id FROM dag WHERE dag_id IN ('model_monitoring', 'model_retraining')")
        return len(rows) == 2

    wait_for(parsed, 180, "the DAG processor to parse dags/", logs)
    # Through the REST API, which (unlike the CLI) sets the run's data interval: the drift day.
    port = env["AIRFLOW__API__PORT"]
    body = json.dumps(
        {
            "logical_date": "2026-11-24T00:00:00+00:00",
            "data_interval_start": "2026-11-23T00:00:00+00:00",
            "data_interval_end": "2026-11-24T00:00:00+00:00",
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/dags/model_monitoring/dagRuns",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )

    def api_up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5):
                return True
        except OSError:
            return False

    wait_for(api_up, 120, "the API server", logs)
    # SQLite is shared by the scheduler, the DAG processor and the API server: under load a write
    # can meet a lock, or the DAG may not be serialized yet. Retry a server error a few times.
    created: dict[str, object] = {}
    errors: list[str] = []
    for _ in range(10):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                created = json.loads(response.read())
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            errors.append(f"{exc.code}: {exc.read()[:500]!r}")
            time.sleep(3)
    assert created, f"the API did not create the run: {errors}"
    assert str(created["data_interval_end"]).startswith("2026-11-24T00:00:00")

    def monitoring_done() -> bool:
        rows = _query(
            home,
            "SELECT state FROM dag_run WHERE dag_id = 'model_monitoring' AND date(logical_date) = '2026-11-24'",
        )
        return bool(rows) and rows[0][0] in ("success", "failed")

    wait_for(monitoring_done, 300, "the triggered model_monitoring run", logs)
    states = dict(
        _query(
            home,
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id "
            "AND r.run_id = ti.run_id WHERE ti.dag_id = 'model_monitoring' AND date(r.logical_date) = '2026-11-24'",
        )
    )
    assert states["drift_customer_activity"] == "success"
    assert states["retrain_gate"] == "success", states

    def retraining_done() -> bool:
        rows = _query(
            home,
            "SELECT state FROM dag_run WHERE dag_id = 'model_retraining' AND run_type = 'asset_triggered'",
        )
        return bool(rows) and rows[0][0] in ("success", "failed")

    wait_for(retraining_done, 300, "the asset-triggered model_retraining run", logs)
    runs = _query(home, "SELECT run_type, state FROM dag_run WHERE dag_id = 'model_retraining'")
    assert runs == [("asset_triggered", "success")]
    retraining_states = dict(
        _query(home, "SELECT task_id, state FROM task_instance WHERE dag_id = 'model_retraining'")
    )
    assert set(retraining_states.values()) == {"success"}, retraining_states
    base = airflow_services["base"]
    assert isinstance(base, Path)
    newest = load_baseline(base / "baselines", "churn_features")
    assert newest.version != "v1"  # retraining wrote a new baseline version
