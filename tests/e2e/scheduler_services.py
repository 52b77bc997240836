"""A real single-machine Airflow deployment for end-to-end tests: ``airflow api-server``,
``airflow scheduler`` (LocalExecutor) and ``airflow dag-processor`` on a SQLite metadata database
in a private AIRFLOW_HOME, with helpers to trigger runs and clear tasks through the REST API and to
read runs, task instances and asset events from the metadata database.

The generic process handling (process groups, log tails, polling) is :mod:`tests.e2e.services`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.e2e.services import CLI, Processes, api_call, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
FINISHED_RUN = ("success", "failed")
FINISHED_TASK = ("success", "failed", "skipped", "upstream_failed", "removed")


def as_utc(value: Any) -> datetime | None:
    """A metadata-DB or API timestamp (SQLite stores naive UTC text) as an aware UTC datetime."""
    if value is None:
        return None
    moment = (
        value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunRow:
    """A row of ``dag_run``, times as aware UTC datetimes."""

    run_id: str
    run_type: str
    state: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_after: datetime | None


@dataclass
class LocalDeployment:
    """The running processes and what a test needs to drive them."""

    env: dict[str, str]
    home: Path
    port: int
    processes: Processes

    # --- the metadata database --------------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read on the metadata DB; a lock held by a writer is waited for and retried."""
        engine = sa.create_engine(f"sqlite:///{self.home / 'airflow.db'}", connect_args={"timeout": 30})
        try:
            for attempt in range(5):
                try:
                    with engine.connect() as conn:
                        return [tuple(row) for row in conn.execute(sa.text(sql), params)]
                except sa.exc.OperationalError:
                    if attempt == 4:
                        raise
                    time.sleep(1)
        finally:
            engine.dispose()
        return []

    def runs(self, dag_id: str) -> list[RunRow]:
        """Every run of ``dag_id``, oldest first."""
        rows = self.query(
            "SELECT run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after "
            "FROM dag_run WHERE dag_id = :dag ORDER BY id",
            dag=dag_id,
        )
        return [
            RunRow(str(r[0]), str(r[1]), str(r[2]), as_utc(r[3]), as_utc(r[4]), as_utc(r[5]), as_utc(r[6]))
            for r in rows
        ]

    def run(self, dag_id: str, run_id: str) -> RunRow:
        """One run of ``dag_id``."""
        found = [r for r in self.runs(dag_id) if r.run_id == run_id]
        assert found, f"no run {run_id!r} of {dag_id!r}: {self.runs(dag_id)}"
        return found[0]

    def task_tries(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """State and try number of each task instance of a run."""
        rows = self.query(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = :dag AND run_id = :run",
            dag=dag_id,
            run=run_id,
        )
        return {str(r[0]): (None if r[1] is None else str(r[1]), int(r[2] or 0)) for r in rows}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """The state of each task instance of a run."""
        return {task: state for task, (state, _) in self.task_tries(dag_id, run_id).items()}

    def asset_events(self, uri: str) -> list[tuple[datetime | None, str | None, str | None]]:
        """The events of the asset ``uri``: timestamp, the emitting DAG run and the event's extra."""
        rows = self.query(
            "SELECT e.timestamp, e.source_run_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = :uri ORDER BY e.id",
            uri=uri,
        )
        return [
            (as_utc(r[0]), None if r[1] is None else str(r[1]), None if r[2] is None else str(r[2]))
            for r in rows
        ]

    # --- waiting ----------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``predicate`` every second; fails with every process log's tail on a timeout."""
        return wait_for(predicate, timeout, what, self.processes, interval=1.0)

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 240) -> float:
        """Until every DAG is parsed (serialized) and none of its files has an import error."""

        def parsed() -> bool:
            errors = self.query("SELECT filename, stacktrace FROM import_error")
            assert not errors, f"DAG files that do not import: {errors}"
            rows = self.query("SELECT dag_id FROM serialized_dag")
            return set(dag_ids) <= {str(r[0]) for r in rows}

        return self.wait(parsed, timeout, f"the DAG processor to parse {sorted(dag_ids)}")

    def wait_for_run(
        self, dag_id: str, run_id: str | None = None, timeout: float = 240, **match: Any
    ) -> RunRow:
        """Until a run of ``dag_id`` (``run_id``, or the first whose fields equal ``match``) has ended."""
        found: list[RunRow] = []

        def done() -> bool:
            found[:] = [
                r
                for r in self.runs(dag_id)
                if (run_id is None or r.run_id == run_id)
                and all(getattr(r, k) == v for k, v in match.items())
                and r.state in FINISHED_RUN
            ]
            return bool(found)

        self.wait(done, timeout, f"a finished run of {dag_id} ({run_id or match})")
        return found[0]

    # --- the REST API -----------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A JSON call to the API server (server errors retried: SQLite under three processes)."""
        return api_call(self.port, method, path, body)

    def trigger(self, dag_id: str, **body: Any) -> dict[str, Any]:
        """``POST /api/v2/dags/{dag_id}/dagRuns``; ``logical_date`` must be given (``None`` for a run
        without one)."""
        created = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        assert isinstance(created, dict) and created.get("dag_run_id"), created
        return created

    def clear(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> list[str]:
        """Clear the task instances of a run (whatever their state) so the scheduler runs them again;
        returns the cleared task ids."""
        cleared = self.api(
            "POST",
            f"/api/v2/dags/{dag_id}/clearTaskInstances",
            {
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": list(task_ids),
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
        return sorted(str(ti["task_id"]) for ti in cleared["task_instances"])


def deployment_env(home: Path, dags_folder: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process: a private AIRFLOW_HOME and DAGs folder, LocalExecutor,
    short heartbeats and refresh intervals, every DAG unpaused, no authentication."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PATH": f"{CLI.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


@contextmanager
def local_deployment(base: Path, dags_folder: Path, extra_env: dict[str, str]) -> Iterator[LocalDeployment]:
    """Migrate a fresh SQLite metadata DB under ``base/home``, start the three processes, wait for
    the API server; always stops them (with their children) afterwards."""
    home = base / "home"
    port = free_port()
    env = deployment_env(home, dags_folder, port, extra_env)
    migrated = subprocess.run(
        [str(CLI), "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    processes = Processes(base / "logs")
    try:
        processes.start("api-server", ["api-server", "--port", str(port)], env)
        processes.start("scheduler", ["scheduler"], env)
        processes.start("dag-processor", ["dag-processor"], env)
        deployment = LocalDeployment(env=env, home=home, port=port, processes=processes)

        def api_up() -> bool:
            try:
                api_call(port, "GET", "/api/v2/monitor/health", tries=1)
            except AssertionError:
                return False
            return True

        deployment.wait(api_up, 120, "the API server")
        yield deployment
    finally:
        processes.stop()
