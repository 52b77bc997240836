"""The example story under the CeleryExecutor: two workers, each with its own AIRFLOW_HOME and host
name, Redis as the broker, PostgreSQL as the metadata database, the Celery result backend and the
results history, and one shared baseline directory.

Started here and torn down afterwards: a fresh PostgreSQL database ``mlobs_celery_<random>``,
Redis database 5 (flushed), ``airflow api-server``, ``scheduler``, ``dag-processor`` and two
``airflow celery worker`` (concurrency 1 each). ``model_monitoring`` is triggered for the drift day
through the REST API; its gate emits the ``mlobs://churn/retrain`` asset event and the scheduler
starts ``model_retraining``. A cluster policy (``airflow_local_settings.py`` of the scheduler's
home) routes ``baseline_v1`` to worker A's queue and the drift check and the retraining's baseline
to worker B's, so the drift check always reads a baseline another worker wrote; every other task
is on the default queue both workers serve. ``task_instance.hostname`` comes from ``[core]
hostname_callable``, not from ``--celery-hostname``, so each worker is also given a callable that
reports its name. The example DAGs have no notifiers, so there is no alert state to check here.
Slow (3.5 to 4.5 minutes on two busy cores); CI runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.gate import CHECK as GATE_CHECK
from airflow_mlobs.core.gate import RETRAIN
from airflow_mlobs.core.profile import load_baseline
from demo import warehouse
from tests.e2e.services import CLI, HOSTNAME_ENV, Processes, api_call, free_port, require_redis, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/5"  # a database of its own, flushed at start and end
DAGS = ("model_monitoring", "model_retraining")
#: The tasks whose queue the cluster policy sets; everything else runs on the default queue.
ROUTES = {
    ("model_monitoring", "baseline_v1"): "mlobs_a",
    ("model_monitoring", "drift_customer_activity"): "mlobs_b",
    ("model_retraining", "baseline_from_training_window"): "mlobs_b",
}
#: task_instance.operator of the tasks that store a check result.
CHECK_OPERATORS = (
    "FreshnessCheckOperator",
    "SchemaCheckOperator",
    "ExpectationSuiteOperator",
    "BaselineOperator",
    "DriftCheckOperator",
    "RetrainGateOperator",
)
POLICY = '''"""Routes chosen tasks to one worker's queue (written by tests/e2e/test_celery.py)."""
ROUTES = {routes!r}


def task_policy(task):
    queue = ROUTES.get((task.dag_id, task.task_id))
    if queue:
        task.queue = queue
'''


def _pg_url(database: str, base: sa.URL) -> sa.URL:
    return base.set(drivername="postgresql+psycopg2", database=database)


@pytest.fixture(scope="module")
def celery_deployment(
    pg_engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The whole deployment, started once for the module and always torn down."""
    redis = require_redis(REDIS_URL)
    redis.flushdb()
    base = tmp_path_factory.mktemp("celery")
    token = uuid.uuid4().hex[:10]
    database = f"mlobs_celery_{token}"
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    db_url = _pg_url(database, pg_engine.url)
    db_text = db_url.render_as_string(hide_password=False)
    engine = sa.create_engine(db_url, pool_pre_ping=True)

    wh_path = base / "warehouse.db"  # one path both workers reach: shared storage on one machine
    port = free_port()
    shared = {"baselines": base / "shared" / "baselines", "models": base / "shared" / "models"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOBS_"))}
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # unpaused through the API below
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # One deployment, so one set of secrets (each AIRFLOW_HOME would otherwise make its own).
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_text,
            "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_text}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__MLOBS__RESULTS_CONN_ID": "mlobs_results",
            "AIRFLOW__MLOBS__BASELINE_DIR": str(shared["baselines"]),
            "AIRFLOW_CONN_MLOBS_RESULTS": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": db_url.host or "127.0.0.1",
                    "port": db_url.port or 5432,
                    "login": db_url.username or "postgres",
                    "password": db_url.password or "",
                    "schema": database,
                }
            ),
            "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(wh_path)}),
            "MLOBS_MODEL_DIR": str(shared["models"]),
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
    )
    home = base / "scheduler_home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "airflow_local_settings.py").write_text(POLICY.format(routes=ROUTES))
    workers = {}
    for letter in ("a", "b"):
        hostname = f"mlobs-{letter}-{token}"
        workers[letter] = {
            "hostname": hostname,
            "home": base / f"worker_{letter}_home",
            "queue": f"mlobs_{letter}",
        }
    processes = Processes(base / "logs")
    timings: dict[str, float] = {}  # seconds per phase, printed by the test
    started = time.monotonic()
    try:
        # The workers need no metadata database: they start while it is migrated.
        for letter, worker in workers.items():
            processes.start(
                f"worker_{letter}",
                [
                    "celery",
                    "worker",
                    "--celery-hostname",
                    worker["hostname"],
                    "--concurrency",
                    "1",
                    "--queues",
                    f"default,{worker['queue']}",
                    "--skip-serve-logs",  # two workers on one machine would share its port
                    "--without-mingle",
                    "--without-gossip",
                ],
                {
                    **env,
                    "AIRFLOW_HOME": str(worker["home"]),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.services.worker_hostname",
                    HOSTNAME_ENV: worker["hostname"],
                },
            )
        env["AIRFLOW_HOME"] = str(home)
        migrate = subprocess.Popen(
            [str(CLI), "db", "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        # Built while the metadata database is migrated.
        wh_engine = sa.create_engine(warehouse.build(wh_path))
        # Nothing after the drift day: the run the scheduler starts by the wall clock for
        # model_monitoring finds no activity, so it cannot start a second retraining.
        with wh_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM customer_activity WHERE event_time >= '2026-11-24 00:00:00'"))
            conn.execute(sa.text("DELETE FROM prediction_log WHERE predicted_at >= '2026-11-24 00:00:00'"))
        wh_engine.dispose()
        output = migrate.communicate(timeout=300)[0].decode(errors="replace")
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{output[-4000:]}"
        timings["warehouse and db migrate"] = time.monotonic() - started
        processes.start("api-server", ["api-server", "--port", str(port)], env)
        processes.start("scheduler", ["scheduler"], env)
        processes.start("dag-processor", ["dag-processor"], env)
        yield {
            "engine": engine,
            "port": port,
            "processes": processes,
            "workers": workers,
            "shared": shared,
            "base": base,
            "timings": timings,
        }
    finally:
        stopping = time.monotonic()
        processes.stop()
        print(f"teardown (s): {time.monotonic() - stopping:.1f}")
        engine.dispose()
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        redis.flushdb()
        redis.close()


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[tuple[Any, ...]]:
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    except sa.exc.ProgrammingError:  # a table is not there yet
        return []


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=90):
            return True
    except OSError:
        return False


def _celery_nodes() -> set[str]:
    """The Celery workers answering a ping on the test's broker."""
    from celery import Celery

    app = Celery(broker=REDIS_URL)
    try:
        return {name for reply in app.control.ping(timeout=1.0) for name in reply}
    finally:
        app.close()


def test_drift_day_retrains_once_across_two_celery_workers(celery_deployment: dict[str, Any]) -> None:
    engine: sa.Engine = celery_deployment["engine"]
    port: int = celery_deployment["port"]
    processes: Processes = celery_deployment["processes"]
    workers: dict[str, dict[str, Any]] = celery_deployment["workers"]
    shared: dict[str, Path] = celery_deployment["shared"]
    host_a, host_b = workers["a"]["hostname"], workers["b"]["hostname"]

    def runs() -> str:
        return "dag runs: " + repr(_rows(engine, "SELECT dag_id, run_type, state FROM dag_run ORDER BY id"))

    nodes = {f"celery@{host_a}", f"celery@{host_b}"}
    timings: dict[str, float] = celery_deployment["timings"]
    timings["workers answer"] = wait_for(
        lambda: nodes <= _celery_nodes(), 180, "both Celery workers to answer a ping", processes
    )
    # The execution API builds its versioned app on the first request (half a minute on a busy
    # machine): warm it up now, while the DAGs are parsed, not in the first task's first call.
    timings["execution API answers"] = wait_for(
        lambda: _answers(f"http://127.0.0.1:{port}/execution/health"), 240, "the execution API", processes
    )
    parsed = "SELECT count(*) FROM dag WHERE dag_id IN ('model_monitoring', 'model_retraining')"
    timings["dags parsed"] = wait_for(
        lambda: _rows(engine, parsed) == [(len(DAGS),)], 180, "the DAG processor to parse dags/", processes
    )
    for dag_id in DAGS:
        api_call(port, "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    # Through the REST API, which (unlike the CLI) sets the run's data interval: the drift day.
    created = api_call(
        port,
        "POST",
        "/api/v2/dags/model_monitoring/dagRuns",
        {
            "logical_date": "2026-11-24T00:00:00+00:00",
            "data_interval_start": "2026-11-23T00:00:00+00:00",
            "data_interval_end": "2026-11-24T00:00:00+00:00",
        },
    )
    assert str(created["data_interval_end"]).startswith("2026-11-24T00:00:00")
    drift_run = created["dag_run_id"]

    def run_state(dag_id: str, run_id: str) -> str | None:
        rows = _rows(
            engine, "SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return str(rows[0][0]) if rows else None

    timings["drift day run"] = wait_for(
        lambda: run_state("model_monitoring", drift_run) in ("success", "failed"),
        300,
        "the drift day's model_monitoring run",
        processes,
        extra=runs,
    )
    retraining = "SELECT run_id, state FROM dag_run WHERE dag_id = 'model_retraining'"
    timings["retraining run"] = wait_for(
        lambda: any(state in ("success", "failed") for _, state in _rows(engine, retraining)),
        300,
        "the asset-triggered model_retraining run",
        processes,
        extra=runs,
    )
    # The scheduler's own wall-clock run of model_monitoring too, so every result is in.
    timings["other runs"] = wait_for(
        lambda: not _rows(engine, "SELECT id FROM dag_run WHERE state IN ('queued', 'running')"),
        300,
        "every DAG run to finish",
        processes,
        extra=runs,
    )

    tis = _rows(
        engine,
        "SELECT dag_id, run_id, task_id, state, hostname, operator FROM task_instance ORDER BY dag_id, task_id",
    )
    drift_day = {task: (state, host) for dag, run, task, state, host, _ in tis if run == drift_run}
    assert drift_day["drift_customer_activity"][0] == "success", drift_day
    assert drift_day["retrain_gate"][0] == "success", drift_day

    # Exactly one retraining: one asset-triggered run, every task of it succeeded, one "retrain".
    assert [
        t[1:]
        for t in _rows(
            engine, "SELECT dag_id, run_type, state FROM dag_run WHERE dag_id = 'model_retraining'"
        )
    ] == [("asset_triggered", "success")]
    (retrain_run,) = [run for run, _ in _rows(engine, retraining)]
    retrained = {task: (state, host) for dag, run, task, state, host, _ in tis if run == retrain_run}
    assert {state for state, _ in retrained.values()} == {"success"}, retrained
    decisions = [
        json.loads(text)["metrics"].get("decision")
        for (text,) in _rows(
            engine, "SELECT result_json FROM mlobs_check_results WHERE check_name = :c", c=GATE_CHECK
        )
    ]
    assert decisions.count(RETRAIN) == 1, decisions

    # Every result stored once: one row in PostgreSQL per check task that ran, in every run.
    stored = {
        (dag, run, task): count
        for dag, run, task, count in _rows(
            engine,
            "SELECT dag_id, run_id, task_id, count(*) FROM mlobs_check_results GROUP BY dag_id, run_id, task_id",
        )
    }
    ran = {
        (dag, run, task): 1
        for dag, run, task, state, _, operator in tis
        if operator in CHECK_OPERATORS and state in ("success", "failed", "skipped")
    }
    assert stored == ran, {"stored": stored, "ran": ran}
    assert len({run for _, run, _ in ran}) >= 2  # the drift day's run and the retraining at least

    # Both workers ran tasks, and task_instance.hostname names them (not this machine).
    hosts = {host for *_, host, _ in tis if host}
    assert hosts == {host_a, host_b}, hosts
    # The drift check on B read the v1 baseline that A wrote into the shared directory.
    assert drift_day["baseline_v1"][1] == host_a
    assert drift_day["drift_customer_activity"][1] == host_b
    (drift_json,) = _rows(
        engine,
        "SELECT result_json FROM mlobs_check_results WHERE run_id = :r AND task_id = 'drift_customer_activity'",
        r=drift_run,
    )[0]
    drift = json.loads(drift_json)
    assert drift["status"] == "fail", drift["summary"]
    assert drift["metrics"]["baseline"] == "churn_features/v1", drift["metrics"]
    drifted = drift["metrics"]["drifted_columns"]
    assert len(drifted) > len(warehouse.FEATURES) / 2, drifted
    # The retraining's baseline, written by B, is the newest version in the shared directory.
    assert retrained["baseline_from_training_window"][1] == host_b
    (new_json,) = _rows(
        engine,
        "SELECT result_json FROM mlobs_check_results WHERE run_id = :r AND task_id = 'baseline_from_training_window'",
        r=retrain_run,
    )[0]
    new_baseline = json.loads(new_json)["metrics"]
    assert new_baseline["created"] is True, new_baseline
    newest = load_baseline(shared["baselines"], "churn_features")
    assert newest.version == new_baseline["version"] != "v1"
    assert Path(new_baseline["path"]).parent == shared["baselines"] / "churn_features"
    assert {p.name for p in (shared["baselines"] / "churn_features").iterdir()} == {
        "v1.json",
        f"{newest.version}.json",
    }
    # Nothing fell back to a per-worker default location.
    for worker in workers.values():
        assert not (worker["home"] / "mlobs_results.db").exists()
        assert not (worker["home"] / "mlobs_baselines").exists()
    print("phases (s):", {name: round(seconds, 1) for name, seconds in timings.items()})
    print("tasks per host:", {h: sum(1 for *_, host, _ in tis if host == h) for h in sorted(hosts)})
