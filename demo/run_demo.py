"""The demo: build the warehouse, run the example DAG in real Airflow for a healthy day and a broken
day, and print every check's stored result.

Run through ``python3 dev.py demo`` (which sets up the virtual environment first). Everything lives
in ``.demo/`` (Airflow home with its SQLite metadata database, the warehouse, the results history).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_mlobs.store import ResultsStore  # noqa: E402
from demo import warehouse  # noqa: E402

DAG_ID = "model_monitoring"


def airflow_env(demo_dir: Path, warehouse_path: Path) -> dict[str, str]:
    """Environment for the Airflow CLI: a private AIRFLOW_HOME, our dags/, the warehouse connection."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(demo_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse_path)}),
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def airflow(env: dict[str, str], *args: str, log: Path) -> int:
    """Run the Airflow CLI of this virtual environment, output to ``log``."""
    cli = Path(sys.executable).parent / "airflow"
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.run(
            [str(cli), *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode


def task_states(airflow_home: Path, logical_date: str) -> dict[str, str]:
    """Task states of the DAG run for ``logical_date``, read from the metadata database."""
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
                "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
                "WHERE ti.dag_id = :dag AND date(dr.logical_date) = :day ORDER BY ti.task_id"
            ),
            {"dag": DAG_ID, "day": logical_date},
        ).all()
    engine.dispose()
    return {str(task): str(state) for task, state in rows}


def main() -> int:
    demo_dir = ROOT / ".demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir()
    log = demo_dir / "airflow.log"
    warehouse_path = demo_dir / "warehouse.db"
    url = warehouse.build(warehouse_path)
    env = airflow_env(demo_dir, warehouse_path)
    print(f"Built the demo warehouse at {warehouse_path}")
    print("Migrating a fresh Airflow metadata database (SQLite) in .demo/airflow ...", flush=True)
    if airflow(env, "db", "migrate", log=log) != 0:
        print(f"airflow db migrate failed; see {log}")
        return 1

    days = [
        (warehouse.HEALTHY_DAY, "a healthy day"),
        (
            warehouse.BROKEN_DAY,
            "after the transactions feed stopped and customer_age was renamed to age upstream",
        ),
    ]
    store = ResultsStore(sa.create_engine(f"sqlite:///{demo_dir / 'airflow' / 'mlobs_results.db'}"))
    for day, story in days:
        if day == warehouse.BROKEN_DAY:
            warehouse.rename_customer_age(url)
        date = day.date().isoformat()
        print(f"\n=== {DAG_ID} for {date}: {story}", flush=True)
        code = airflow(env, "dags", "test", DAG_ID, date, log=log)
        states = task_states(demo_dir / "airflow", date)
        print(
            f"DAG run {'succeeded' if code == 0 else 'failed'}; task states: "
            + ", ".join(f"{task}={state}" for task, state in states.items())
        )
        for stored in sorted(store.history(dag_id=DAG_ID), key=lambda s: s.run.task_id or ""):
            result = stored.result
            if result.window_end is None or result.window_end.date() != day.date():
                continue
            print(f"\n[{result.status.value.upper()}] {stored.run.task_id}: {result.summary}")
            if result.findings:
                print("    " + result.format_table().replace("\n", "\n    "))
    print(
        f"\nAirflow's own output is in {log}; the results history is {demo_dir / 'airflow' / 'mlobs_results.db'}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
