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
