"""Run DAGs in real Airflow 3 (``airflow dags test``) against the session's migrated metadata DB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa


@dataclass
class DagRunOutcome:
    """What a ``dags test`` run left behind."""

    returncode: int
    output: str
    states: dict[str, str]
    xcoms: dict[str, Any]


def run_dag(
    airflow_home: Path, dags_folder: Path, dag_id: str, logical_date: str, env: dict[str, str] | None = None
) -> DagRunOutcome:
    """``airflow dags test dag_id logical_date`` in a subprocess; returns states and return_value XComs."""
    cli = Path(sys.executable).parent / "airflow"
    full_env = dict(os.environ)
    full_env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
            ),
        }
    )
    full_env.update(env or {})
    done = subprocess.run(
        [str(cli), "dags", "test", dag_id, logical_date],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        run_id = conn.execute(
            sa.text(
                "SELECT run_id FROM dag_run WHERE dag_id = :dag AND date(logical_date) = :day "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"dag": dag_id, "day": logical_date[:10]},
        ).scalar()
        states = {
            str(task): str(state)
            for task, state in conn.execute(
                sa.text("SELECT task_id, state FROM task_instance WHERE dag_id = :dag AND run_id = :run"),
                {"dag": dag_id, "run": run_id},
            )
        }
        xcoms: dict[str, Any] = {}
        for task, value in conn.execute(
            sa.text(
                "SELECT task_id, value FROM xcom WHERE dag_id = :dag AND run_id = :run AND key = 'return_value'"
            ),
            {"dag": dag_id, "run": run_id},
        ):
            xcoms[str(task)] = json.loads(value) if isinstance(value, str | bytes) else value
    engine.dispose()
    return DagRunOutcome(done.returncode, done.stdout + done.stderr, states, xcoms)


def start_dag(
    airflow_home: Path,
    dags_folder: Path,
    dag_id: str,
    logical_date: str,
    output: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``airflow dags test dag_id logical_date`` started in the background, its stdout and stderr
    going to ``output``, so a test can act while the run goes on (e.g. end an outage after the first
    failed try); finish with :func:`finish_dag`."""
    cli = Path(sys.executable).parent / "airflow"
    full_env = dict(os.environ)
    full_env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
            ),
        }
    )
    full_env.update(env or {})
    with output.open("wb") as sink:
        return subprocess.Popen(
            [str(cli), "dags", "test", dag_id, logical_date], env=full_env, stdout=sink, stderr=sink
        )


@dataclass(frozen=True)
class TaskTry:
    """A task instance of the latest run of a DAG for a day: its state and try number."""

    state: str | None
    try_number: int


def task_tries(airflow_home: Path, dag_id: str, logical_date: str) -> dict[str, TaskTry]:
    """State and try number of each task instance of the latest run of ``dag_id`` on that day,
    read from the metadata database while (or after) the run goes on."""
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}", connect_args={"timeout": 30})
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = :dag AND run_id = "
                    "(SELECT run_id FROM dag_run WHERE dag_id = :dag AND date(logical_date) = :day "
                    "ORDER BY id DESC LIMIT 1)"
                ),
                {"dag": dag_id, "day": logical_date[:10]},
            ).all()
    finally:
        engine.dispose()
    return {str(r[0]): TaskTry(None if r[1] is None else str(r[1]), int(r[2] or 0)) for r in rows}


def finish_dag(
    process: subprocess.Popen[bytes], airflow_home: Path, dag_id: str, logical_date: str, output: Path
) -> DagRunOutcome:
    """Wait for a :func:`start_dag` run to end; its states, XComs and output."""
    returncode = process.wait(timeout=600)
    tries = task_tries(airflow_home, dag_id, logical_date)
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    xcoms: dict[str, Any] = {}
    with engine.connect() as conn:
        for task, value in conn.execute(
            sa.text(
                "SELECT task_id, value FROM xcom WHERE dag_id = :dag AND key = 'return_value' AND run_id = "
                "(SELECT run_id FROM dag_run WHERE dag_id = :dag AND date(logical_date) = :day "
                "ORDER BY id DESC LIMIT 1)"
            ),
            {"dag": dag_id, "day": logical_date[:10]},
        ):
            xcoms[str(task)] = json.loads(value) if isinstance(value, str | bytes) else value
    engine.dispose()
    states = {task: str(t.state) for task, t in tries.items()}
    return DagRunOutcome(returncode, output.read_text(errors="replace"), states, xcoms)
