"""The demo: build the warehouse, run the example DAGs in real Airflow (monitoring for a healthy,
a drifted, a retrained and a broken day; the retraining the drift starts; then the model's
accuracy as the late labels arrive), and print every check's stored result.

Run through ``python3 dev.py demo`` (which sets up the virtual environment first). Everything lives
in ``.demo/`` (Airflow home with its SQLite metadata database, the warehouse, the results history).
The demo ends with the URL of the dashboard's overview; with ``--serve`` (``python3 dev.py demo
--serve [--port 8080]``) it then starts ``airflow api-server`` with the ML observability plugin on
127.0.0.1 (every visitor an admin: the simple auth manager's ``all_admins``) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_mlobs.render.text import findings_table  # noqa: E402
from airflow_mlobs.store import ResultsStore  # noqa: E402
from demo import warehouse  # noqa: E402
from demo.slack_sink import SlackSink, message_text  # noqa: E402

DAG_ID = "model_monitoring"
PERFORMANCE_DAG_ID = "model_performance"
SERVICE_DAG_ID = "model_service"
SCORING_DAG_ID = "model_scoring"
RETRAIN_DAG_ID = "model_retraining"
RETRAIN_ASSET = "mlobs://churn/retrain"


def airflow_env(
    demo_dir: Path, warehouse_path: Path, slack_url: str = "http://127.0.0.1:9"
) -> dict[str, str]:
    """Environment for the Airflow CLI: a private AIRFLOW_HOME, our dags/, the warehouse connection,
    the pseudonym key's connection and the Slack webhook connection (pointing at ``slack_url``)."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(demo_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse_path)}),
            "AIRFLOW_CONN_MLOBS_PSEUDONYM_KEY": json.dumps(
                {"conn_type": "generic", "password": warehouse.DEMO_PSEUDONYM_KEY}
            ),
            "AIRFLOW_CONN_MLOBS_SLACK": json.dumps(
                {"conn_type": "slackwebhook", "host": f"{slack_url}/services", "password": "T000/B000/demo"}
            ),
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


def task_states(airflow_home: Path, dag_id: str, logical_date: str) -> dict[str, str]:
    """Task states of the DAG run for ``logical_date``, read from the metadata database."""
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
                "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
                "WHERE ti.dag_id = :dag AND date(dr.logical_date) = :day ORDER BY ti.task_id"
            ),
            {"dag": dag_id, "day": logical_date},
        ).all()
    engine.dispose()
    return {str(task): str(state) for task, state in rows}


def _metadata(airflow_home: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")


def retrain_events(airflow_home: Path) -> int:
    """How many events the retraining asset has received (from the metadata database)."""
    engine = _metadata(airflow_home)
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = :uri"
            ),
            {"uri": RETRAIN_ASSET},
        ).scalar()
    engine.dispose()
    return int(count or 0)


def handled_events(demo_dir: Path) -> int:
    marker = demo_dir / "retrain_events_handled"
    return int(marker.read_text()) if marker.exists() else 0


def mark_handled(demo_dir: Path, events: int) -> None:
    (demo_dir / "retrain_events_handled").write_text(str(events))


def xcom(airflow_home: Path, dag_id: str, logical_date: str, task_id: str) -> str | None:
    """The return value a task pushed in the run for ``logical_date``."""
    engine = _metadata(airflow_home)
    with engine.connect() as conn:
        value = conn.execute(
            sa.text(
                "SELECT x.value FROM xcom x JOIN dag_run r ON r.dag_id = x.dag_id AND r.run_id = x.run_id "
                "WHERE x.dag_id = :dag AND date(r.logical_date) = :day AND x.task_id = :task "
                "AND x.key = 'return_value' ORDER BY r.id DESC LIMIT 1"
            ),
            {"dag": dag_id, "day": logical_date, "task": task_id},
        ).scalar()
    engine.dispose()
    return None if value is None else str(value)


def show_run(demo_dir: Path, store: ResultsStore, dag_id: str, date: str, code: int) -> None:
    """Print the run's task states and the results its checks stored."""
    states = task_states(demo_dir / "airflow", dag_id, date)
    print(
        f"{dag_id} {'succeeded' if code == 0 else 'failed'}; task states: "
        + ", ".join(f"{task}={state}" for task, state in states.items())
    )
    for stored in sorted(store.history(dag_id=dag_id), key=lambda s: s.run.task_id or ""):
        result = stored.result
        if stored.run.run_id is None or result.window_end is None:
            continue
        if result.window_end.date().isoformat() != date and result.check != "baseline":
            continue
        if result.check == "baseline" and stored.run.run_id not in run_ids(
            demo_dir / "airflow", dag_id, date
        ):
            continue
        if result.check == "baseline" and not result.metrics.get("created"):
            continue
        print(f"\n[{result.status.value.upper()}] {stored.run.task_id}: {result.summary}")
        shown = [f for f in result.findings if f.status.value != "pass" or f.metric in ("missing", "added")]
        if shown and result.status.value != "pass":
            print(
                "    "
                + findings_table(replace(result, findings=tuple(shown)), max_rows=8).replace("\n", "\n    ")
            )


LABELS_INTRO = """
=== Late labels. Whether a customer churned is known 1.5 to 3.5 days after the prediction. Each day
model_performance judges the predictions made 3 days earlier (performance_matured: most labels are
in) and estimates yesterday's from the model's scores (performance_recent: labels still arriving).
The join with the labels runs inside the warehouse; labels count up to the end of the run's day.
prediction_fairness compares the regions on the run's own day, from the predictions alone (no label
needed): the share predicted to churn per region, and the lowest as a fraction of the highest."""


def performance_days() -> list[tuple[datetime, str]]:
    """The model_performance runs the demo makes, with what they show."""
    start = warehouse.LABELS_STORY_STARTS
    return [
        (start, "judges the predictions of 11-22 (before the shift); estimates 11-24's"),
        (
            start + timedelta(days=1),
            "judges 11-23's predictions: the first day of the new customer mix; "
            "and 11-26's, on which the model began to score the south region lower",
        ),
        (start + timedelta(days=2), "judges 11-24's predictions, whose estimate it showed two days ago"),
    ]


SERVICE_INTRO = """
=== The model service (dags/model_service.py). Every request is in request_log (latency, HTTP
status, region). Each day service_health pushes one aggregate query per window down to the
warehouse (p50/p95/p99 latency, throughput, 5xx rate with its Wilson interval) and judges it
against the service's first ten days; a failure is posted to Slack (here a local stand-in)."""


def service_days() -> list[tuple[datetime, str]]:
    """The model_service runs the demo makes, with what they show."""
    slow = warehouse.SLOW_SERVICE_END
    return [
        (slow - timedelta(days=1), "a healthy day: p95 about 120 ms, 0.5% errors"),
        (slow, "the service slowed down (p95 about 900 ms) and 7% of requests failed"),
    ]


def print_slack(sink: SlackSink) -> None:
    """What reached the Slack channel during the last run."""
    messages = sink.take()
    if not messages:
        print("    Slack: nothing sent")
    for message in messages:
        print("    Slack received:\n        " + message_text(message).replace("\n", "\n        "))


def print_prediction_log(url: str) -> None:
    """The prediction log as the logger wrote it: customer ids only as keyed pseudonyms."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT count(*) FROM mlobs_prediction_log")).scalar()
        row = conn.execute(
            sa.text("SELECT prediction_id, customer_id, score FROM mlobs_prediction_log LIMIT 1")
        ).first()
        key_id = conn.execute(sa.text("SELECT key_id FROM mlobs_prediction_log_meta LIMIT 1")).scalar()
    engine.dispose()
    if row is not None:
        print(
            f"    {logged} predictions in mlobs_prediction_log, e.g. prediction {row[0][:8]}...: "
            f"customer_id {row[1]} (HMAC-SHA256 pseudonym, key {key_id}), score {row[2]:.3f}"
        )


def print_coverage(store: ResultsStore) -> None:
    """Each prediction day as the demo's runs saw it: label coverage rising, estimate then measure."""
    rows: dict[str, list[str]] = {}
    for stored in store.history(dag_id=PERFORMANCE_DAG_ID, check="performance"):
        metrics = stored.result.metrics
        window = metrics.get("prediction_window")
        if not window or stored.result.window_end is None:
            continue
        judged = stored.result.window_end.date().isoformat()
        coverage = metrics.get("label_coverage") or 0.0
        if stored.result.status.value == "skipped":
            expected = (metrics.get("metrics") or {}).get("expected_accuracy", {}).get("value")
            what = f"estimated accuracy {expected:.0%}" if expected is not None else "no estimate"
        else:
            what = f"accuracy {metrics['value']:.0%} ({stored.result.status.value})"
        rows.setdefault(window[0][:10], []).append(f"on {judged}: {coverage:4.0%} labelled, {what}")
    print("\n=== Label coverage of each prediction day, as the runs saw it (from the results history):")
    for day in sorted(rows):
        print(f"    predictions of {day}: " + "; ".join(sorted(rows[day])))


def run_ids(airflow_home: Path, dag_id: str, logical_date: str) -> set[str]:
    engine = _metadata(airflow_home)
    with engine.connect() as conn:
        ids = (
            conn.execute(
                sa.text("SELECT run_id FROM dag_run WHERE dag_id = :dag AND date(logical_date) = :day"),
                {"dag": dag_id, "day": logical_date},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    return set(ids)


def overview_url(port: int, end: datetime) -> str:
    """The dashboard's overview of the demo's days, through the login that sets the UI's cookie
    (with ``all_admins`` it needs no password): the results' windows are fixed dates in 2026-11."""
    overview = "/mlobs/?" + urlencode({"days": 90, "end": end.isoformat()})
    return f"http://127.0.0.1:{port}/auth/token/login?next={quote(overview, safe='')}"


def serve(env: dict[str, str], port: int, demo_dir: Path, end: datetime) -> int:
    """``airflow api-server`` with the plugin, in the foreground until Ctrl-C."""
    server_env = dict(env)
    server_env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    cli = Path(sys.executable).parent / "airflow"
    print(
        f"\nStarting the Airflow api-server on http://127.0.0.1:{port} (log: {demo_dir / 'api-server.log'}); "
        "Ctrl-C stops it.",
        flush=True,
    )
    print(
        f"Open the Airflow UI at http://127.0.0.1:{port}/ and click 'ML observability', or go straight to\n    {overview_url(port, end)}"
    )
    with (demo_dir / "api-server.log").open("ab") as out:
        process = subprocess.Popen(
            [str(cli), "api-server", "--host", "127.0.0.1", "--port", str(port), "-w", "1"],
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait(timeout=30)
            return 0


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python3 dev.py demo", description=__doc__.splitlines()[0])
    options.add_argument("--serve", action="store_true", help="then start the api-server with the dashboard")
    options.add_argument("--port", type=int, default=8080, help="the api-server's port (default 8080)")
    args = options.parse_args(argv)
    demo_dir = ROOT / ".demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir()
    log = demo_dir / "airflow.log"
    warehouse_path = demo_dir / "warehouse.db"
    url = warehouse.build(warehouse_path)
    slack = SlackSink()
    env = airflow_env(demo_dir, warehouse_path, slack.url)
    print(f"Built the demo warehouse at {warehouse_path}")
    print("Migrating a fresh Airflow metadata database (SQLite) in .demo/airflow ...", flush=True)
    if airflow(env, "db", "migrate", log=log) != 0:
        print(f"airflow db migrate failed; see {log}")
        return 1

    results_db = demo_dir / "airflow" / "mlobs_results.db"
    store = ResultsStore(sa.create_engine(f"sqlite:///{results_db}"))
    days = [
        (warehouse.HEALTHY_DAY, "a healthy day"),
        (warehouse.DRIFT_DAY, "the customer mix shifted (younger, shorter tenure, churn rate 10% -> 40%)"),
        (warehouse.RETRAINED_DAY, "the day after retraining: judged against the new baseline"),
        (
            warehouse.BROKEN_DAY,
            "the transactions feed stopped, an upstream bug wrote ages of 150, and customer_age was renamed to age",
        ),
    ]
    runs = (
        [(DAG_ID, day, story) for day, story in days]
        + [(SCORING_DAG_ID, warehouse.HEALTHY_DAY, "batch scoring, recorded through PredictionLogger")]
        + [(PERFORMANCE_DAG_ID, day, story) for day, story in performance_days()]
        + [(SERVICE_DAG_ID, day, story) for day, story in service_days()]
    )
    for dag_id, day, story in runs:
        if day == warehouse.BROKEN_DAY and dag_id == DAG_ID:
            warehouse.rename_customer_age(url)
        date = day.date().isoformat()
        if dag_id == PERFORMANCE_DAG_ID and day == warehouse.LABELS_STORY_STARTS:
            print(LABELS_INTRO)
        if dag_id == SERVICE_DAG_ID and (day, story) == service_days()[0]:
            print(SERVICE_INTRO)
        print(f"\n=== {dag_id} for the day ending {date}: {story}", flush=True)
        code = airflow(env, "dags", "test", dag_id, date, log=log)
        show_run(demo_dir, store, dag_id, date, code)
        if dag_id == SCORING_DAG_ID:
            print_prediction_log(url)
        if dag_id == SERVICE_DAG_ID:
            print_slack(slack)
        events = retrain_events(demo_dir / "airflow")
        if events > handled_events(demo_dir):
            mark_handled(demo_dir, events)
            print(
                f"\n--- The gate emitted an event on {RETRAIN_ASSET}. With a scheduler running, that starts "
                f"{RETRAIN_DAG_ID} by itself (the end-to-end test proves it); the demo runs it now:",
                flush=True,
            )
            code = airflow(env, "dags", "test", RETRAIN_DAG_ID, date, log=log)
            show_run(demo_dir, store, RETRAIN_DAG_ID, date, code)
            model = json.loads(xcom(demo_dir / "airflow", RETRAIN_DAG_ID, date, "train_model") or "{}")
            if model:
                print(
                    f"    trained churn model {model['version']} on {model['rows']} labelled rows "
                    f"(churn rate {model['positive_rate']:.0%}, training accuracy {model['training_accuracy']:.0%})"
                )
    print_coverage(store)
    slack.stop()
    last_day = max(day for _, day, _ in runs) + timedelta(days=1)
    print(
        f"\nAirflow's own output is in {log}; the results history is {demo_dir / 'airflow' / 'mlobs_results.db'}."
    )
    print(
        f"The dashboard (overview of every dataset and check): {overview_url(args.port, last_day)}\n"
        f"    served by the Airflow api-server with this package installed"
        + ("." if args.serve else ": run `python3 dev.py demo --serve` to start one.")
    )
    if args.serve:
        return serve(env, args.port, demo_dir, last_day)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
