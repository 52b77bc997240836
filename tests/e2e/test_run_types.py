"""Windows for every schedule and run type, under a real scheduler (LocalExecutor).

One deployment for the module (``airflow api-server``, ``scheduler``, ``dag-processor`` on a
SQLite metadata DB), one DAG file per case, each with its own table-independent dataset name and
retraining asset. The warehouse (SQLite) holds two tables with the same columns:

- ``events``: 2026-11-01 .. 2026-11-08, 300 rows a day, the features drift from 2026-11-05 on;
- ``recent``: the five days before the fixture started (the wall clock), drifted in the last 24
  hours only: runs without a logical date (manual, asset-triggered) judge the day before their
  run-after time, which is now.

The baseline ``features`` is built by the fixture from ``events`` 2026-11-01 .. 2026-11-04.

The scheduled DAGs have ``catchup=True`` and an ``end_date`` half a day after their
``start_date``: the scheduler creates exactly one scheduled run each (two for ``rt_daily_streak``,
one at a time), for fixed days, and none by the wall clock. The other DAGs have ``schedule=None``
or an asset schedule, so nothing runs that a test did not start. The DAG files are written once the
API server answers: a task started before the execution API listens fails without running.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.gate import CHECK as GATE
from airflow_mlobs.core.gate import HOLD, NO_RETRAIN, RETRAIN
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.sources.drift_frame import build_baseline
from airflow_mlobs.store import ResultsStore, StoredResult
from tests.e2e.scheduler_services import LocalDeployment, local_deployment
from tests.servers import SlackServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST_DAY = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 8
DRIFT_DAY = datetime(2026, 11, 5, tzinfo=UTC)
ROWS_PER_DAY = 300
RECENT_DAYS = 5
ONE_DAY = timedelta(days=1)


def day(n: int) -> datetime:
    return datetime(2026, 11, n, tzinfo=UTC)


def asset(dag_id: str) -> str:
    return f"mlobs-e2e://{dag_id}/retrain"


# --- the warehouse and the baseline ----------------------------------------------------------------


def _rows(rng: np.random.Generator, start: datetime, n: int, *, drifted: bool) -> list[dict[str, Any]]:
    """``n`` rows evenly spread over the day from ``start``; drifted rows have shifted features."""
    x1 = rng.normal(1.0 if drifted else 0.0, 1.0, n)
    x2 = rng.exponential(1.6 if drifted else 1.0, n)
    segment = rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5] if drifted else [0.5, 0.3, 0.2])
    step = 86400 / n
    return [
        {
            "ts": (start + timedelta(seconds=i * step + 1)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "x1": float(x1[i]),
            "x2": float(x2[i]),
            "segment": str(segment[i]),
        }
        for i in range(n)
    ]


def build_warehouse(path: Path, now: datetime) -> None:
    rng = np.random.default_rng(20261202)
    events: list[dict[str, Any]] = []
    for d in range(DAYS):
        start = FIRST_DAY + timedelta(days=d)
        events += _rows(rng, start, ROWS_PER_DAY, drifted=start >= DRIFT_DAY)
    recent: list[dict[str, Any]] = []
    for d in range(RECENT_DAYS, 0, -1):  # the last of these days (d == 1) is the last 24 hours
        recent += _rows(rng, now - timedelta(days=d), ROWS_PER_DAY, drifted=d == 1)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table, rows in (("events", events), ("recent", recent)):
            conn.execute(sa.text(f"CREATE TABLE {table} (ts TIMESTAMP, x1 REAL, x2 REAL, segment TEXT)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:ts, :x1, :x2, :segment)"), rows)
    engine.dispose()


def build_reference_baseline(warehouse: Path, directory: Path) -> None:
    """Baseline ``features`` v1 from the four calm days of ``events``."""
    engine = sa.create_engine(f"sqlite:///{warehouse}")
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            sa.text("SELECT x1, x2, segment FROM events WHERE ts < :end"),
            conn,
            params={"end": DRIFT_DAY.strftime("%Y-%m-%d %H:%M:%S")},
        )
    engine.dispose()
    assert len(frame) == 4 * ROWS_PER_DAY
    build_baseline(frame, name="features", version="v1", source="events 2026-11-01..04").save(directory)


# --- the DAGs ---------------------------------------------------------------------------------------

HEADER = """
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task

from airflow_mlobs.operators import DriftCheckOperator, RetrainGateOperator

CHECK = dict(conn_id="wh", timestamp_column="ts", baseline="features", on_breach="continue")


def day(n):
    return datetime(2026, 11, n, tzinfo=UTC)


def one_run(n):
    # One scheduled run, for day n, whatever the wall clock says. The end date leaves room for a
    # manual run later that day (a run with a logical date before start_date gets no tasks, and
    # one after end_date never starts them).
    return dict(start_date=day(n), end_date=day(n) + timedelta(hours=12), catchup=True)
"""

DAG_FILES = {
    # 1 and 7: CronTriggerTimetable, the window given.
    "rt_daily_window": """
with DAG("rt_daily_window", schedule="@daily", **one_run(6)):
    drift = DriftCheckOperator(task_id="drift", table="events", dataset="rt_daily_window", window="1d", **CHECK)
    drift >> RetrainGateOperator(task_id="retrain_gate", outlets=[Asset("mlobs-e2e://rt_daily_window/retrain")])
""",
    # 2: CronTriggerTimetable without a window; the gate runs anyway (all_done) and must not retrain.
    "rt_daily_no_window": """
with DAG("rt_daily_no_window", schedule="@daily", **one_run(6)):
    drift = DriftCheckOperator(task_id="drift", table="events", dataset="rt_daily_no_window", **CHECK)
    drift >> RetrainGateOperator(
        task_id="retrain_gate", trigger_rule="all_done",
        outlets=[Asset("mlobs-e2e://rt_daily_no_window/retrain")],
    )
""",
    # 3: a data interval timetable, no window: the interval itself.
    "rt_data_interval": """
with DAG("rt_data_interval", schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"), **one_run(5)):
    drift = DriftCheckOperator(task_id="drift", table="events", dataset="rt_data_interval", **CHECK)
    drift >> RetrainGateOperator(task_id="retrain_gate", outlets=[Asset("mlobs-e2e://rt_data_interval/retrain")])
""",
    # 4: a timedelta schedule, window given.
    "rt_timedelta": """
with DAG("rt_timedelta", schedule=timedelta(days=1), **one_run(5)):
    drift = DriftCheckOperator(task_id="drift", table="events", dataset="rt_timedelta", window="1d", **CHECK)
    drift >> RetrainGateOperator(task_id="retrain_gate", outlets=[Asset("mlobs-e2e://rt_timedelta/retrain")])
""",
    # The gate's streak over windows chosen by window=: two drifted days in a row, one at a time.
    "rt_daily_streak": """
with DAG(
    "rt_daily_streak", schedule="@daily", start_date=day(6), end_date=day(7) + timedelta(hours=12),
    catchup=True, max_active_runs=1,
):
    drift = DriftCheckOperator(task_id="drift", table="events", dataset="rt_daily_streak", window="1d", **CHECK)
    drift >> RetrainGateOperator(
        task_id="retrain_gate", consecutive_windows=2, outlets=[Asset("mlobs-e2e://rt_daily_streak/retrain")]
    )
""",
    # 5: manual runs only, with and without a logical date.
    "rt_manual": """
with DAG("rt_manual", schedule=None, start_date=day(1)):
    drift = DriftCheckOperator(task_id="drift", table="recent", dataset="rt_manual", window="1d", **CHECK)
    drift >> RetrainGateOperator(task_id="retrain_gate", outlets=[Asset("mlobs-e2e://rt_manual/retrain")])
""",
    # 6: an asset-triggered run; the window is templated from the DAG's params.
    "rt_asset": """
LOADED = Asset("mlobs-e2e://rt_asset/recent_loaded")

with DAG("rt_asset_producer", schedule=None, start_date=day(1)):

    @task(outlets=[LOADED])
    def load():
        return "loaded"

    load()

with DAG("rt_asset_consumer", schedule=[LOADED], start_date=day(1), params={"window": "1d"}):
    drift = DriftCheckOperator(
        task_id="drift", table="recent", dataset="rt_asset_consumer", window="{{ params.window }}", **CHECK
    )
    drift >> RetrainGateOperator(task_id="retrain_gate", outlets=[Asset("mlobs-e2e://rt_asset_consumer/retrain")])
""",
    # 8: one message per incident with mapped and parallel checks, cleared and re-run.
    "rt_alert_group": """
from airflow_mlobs.notifiers import RetryPolicy, SlackWebhookNotifier
from airflow_mlobs.operators import AlertGroupOperator, FreshnessCheckOperator

with DAG("rt_alert_group", schedule="@daily", **one_run(6)):
    drift = DriftCheckOperator.partial(
        task_id="drift", table="events", dataset="rt_alert_group", window="1d", **CHECK
    ).expand(where=["segment = 'a'", "segment = 'b'"])
    fresh = FreshnessCheckOperator(
        task_id="fresh", conn_id="wh", table="events", dataset="rt_alert_group", timestamp_column="ts",
        max_age="1m", on_breach="continue",
    )
    [drift, fresh] >> AlertGroupOperator(
        task_id="alerts", inhibit_rules=[],
        notify=[SlackWebhookNotifier(slack_webhook_conn_id="mlobs_hook", renotify_after=None,
                                     retry=RetryPolicy(attempts=2, base_delay=0.1, timeout=5))],
    )
""",
}
DAG_IDS = [
    "rt_alert_group",
    "rt_daily_window",
    "rt_daily_streak",
    "rt_daily_no_window",
    "rt_data_interval",
    "rt_timedelta",
    "rt_manual",
    "rt_asset_producer",
    "rt_asset_consumer",
]


@pytest.fixture(scope="module")
def slack_hook() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, slack_hook: SlackServer) -> Iterator[LocalDeployment]:
    """The deployment, its warehouse, baseline and DAGs; every DAG parsed before the first test."""
    base = tmp_path_factory.mktemp("run_types")
    warehouse = base / "warehouse.db"
    build_warehouse(warehouse, datetime.now(UTC))
    baselines = base / "baselines"
    build_reference_baseline(warehouse, baselines)
    dags = base / "dags"
    dags.mkdir()
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "MLOBS_BASELINE_DIR": str(baselines),
        "AIRFLOW_CONN_MLOBS_HOOK": json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"{slack_hook.url}/services",
                "password": "T0RT/B0RT/runTypesHook",
            }
        ),
        # Two cores: four drift tasks at once took 60-70 s each, one at a time 6 s.
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    with local_deployment(base, dags, env) as deployment:
        # Only now, with the API server up: the scheduled runs start as soon as their DAG is parsed,
        # and their tasks fail before running (connection refused) if the execution API is not
        # listening yet, which on a busy machine can take the API server 40 s.
        for name, body in DAG_FILES.items():
            (dags / f"{name}.py").write_text(textwrap.dedent(HEADER) + textwrap.dedent(body))
        deployment.wait_for_dags(DAG_IDS)
        yield deployment


def results(airflow: LocalDeployment, dag_id: str, task_id: str) -> list[StoredResult]:
    """The stored results of a task, newest window first."""
    engine = sa.create_engine(f"sqlite:///{airflow.home / 'mlobs_results.db'}")
    try:
        return ResultsStore(engine).history(dag_id=dag_id, task_id=task_id)
    finally:
        engine.dispose()


def result_of(airflow: LocalDeployment, dag_id: str, task_id: str, run_id: str) -> CheckResult:
    """The stored result of a task in one run."""
    found = [s.result for s in results(airflow, dag_id, task_id) if s.run.run_id == run_id]
    assert len(found) == 1, (
        dag_id,
        task_id,
        run_id,
        [(s.run.run_id, s.result.summary) for s in results(airflow, dag_id, task_id)],
    )
    return found[0]


def scheduled_run(airflow: LocalDeployment, dag_id: str) -> Any:
    """The one scheduled run of ``dag_id``, once it has ended; no other run exists."""
    run = airflow.wait_for_run(dag_id, run_type="scheduled")
    assert [(r.run_type, r.run_id) for r in airflow.runs(dag_id)] == [("scheduled", run.run_id)]
    return run


def judged(result: CheckResult) -> tuple[datetime | None, datetime | None]:
    """The window a result judged, a bound without a zone read as UTC. Whether the stored bounds
    carry their zone is asserted on its own (test_stored_windows_carry_their_zone)."""

    def utc(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    return utc(result.window_start), utc(result.window_end)


def basis(length: str, what: str, anchor: datetime) -> str:
    return f"window={length}: the {length} before {what} ({anchor.isoformat()})"


# --- 1. @daily with window="1d" ---------------------------------------------------------------------


def test_daily_trigger_timetable_with_window_judges_the_day_before(airflow: LocalDeployment) -> None:
    dag_id = "rt_daily_window"
    run = scheduled_run(airflow, dag_id)
    # CronTriggerTimetable: the run's interval is zero-length, at its logical date.
    assert run.logical_date == day(6)
    assert run.data_interval_start == run.data_interval_end == day(6)
    assert airflow.task_states(dag_id, run.run_id) == {"drift": "success", "retrain_gate": "success"}

    drift = result_of(airflow, dag_id, "drift", run.run_id)
    assert drift.status.value == "fail", drift.summary
    assert judged(drift) == (day(5), day(6))
    assert drift.metrics["window_basis"] == basis("1d", "the data interval end", day(6))

    gate = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert gate.metrics["decision"] == RETRAIN, gate.summary
    assert judged(gate) == (day(5), day(6))
    assert gate.metrics["retrained_at"] == day(6).isoformat()
    events = airflow.asset_events(asset(dag_id))
    assert len(events) == 1, events
    assert events[0][1] == run.run_id
    assert json.loads(events[0][2] or "{}")["window_end"] == day(6).isoformat()


# --- 2. @daily without a window ---------------------------------------------------------------------


def test_daily_trigger_timetable_without_window_is_an_error_and_never_retrains(
    airflow: LocalDeployment,
) -> None:
    dag_id = "rt_daily_no_window"
    run = scheduled_run(airflow, dag_id)
    assert run.data_interval_start == run.data_interval_end == day(6)
    assert run.state == "failed"
    assert airflow.task_states(dag_id, run.run_id) == {"drift": "failed", "retrain_gate": "failed"}

    drift = result_of(airflow, dag_id, "drift", run.run_id)
    assert drift.status.value == "error"
    for words in ("zero-length data interval", "window=", "CronTriggerTimetable"):
        assert words in drift.summary, (words, drift.summary)
    gate = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert gate.check == GATE and gate.status.value == "error", gate.summary
    assert "'drift' could not run its check" in gate.summary and "zero-length" in gate.summary
    assert airflow.asset_events(asset(dag_id)) == []


# --- 3. a data interval timetable without a window --------------------------------------------------


def test_data_interval_timetable_judges_its_interval(airflow: LocalDeployment) -> None:
    dag_id = "rt_data_interval"
    run = scheduled_run(airflow, dag_id)
    assert (run.logical_date, run.data_interval_start, run.data_interval_end) == (day(5), day(5), day(6))
    assert airflow.task_states(dag_id, run.run_id) == {"drift": "success", "retrain_gate": "success"}

    drift = result_of(airflow, dag_id, "drift", run.run_id)
    assert drift.status.value == "fail", drift.summary
    assert judged(drift) == (day(5), day(6))
    assert drift.metrics["window_basis"] == "data interval"
    gate = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert gate.metrics["decision"] == RETRAIN and gate.metrics["retrained_at"] == day(6).isoformat()
    assert len(airflow.asset_events(asset(dag_id))) == 1


# --- 4. a timedelta schedule ------------------------------------------------------------------------


def test_timedelta_schedule_is_a_trigger_timetable_and_window_judges_the_day_before(
    airflow: LocalDeployment,
) -> None:
    dag_id = "rt_timedelta"
    # Airflow 3.3 ([scheduler] create_cron_data_intervals = False, the default) turns a timedelta
    # into DeltaTriggerTimetable: runs at the logical date with a zero-length interval.
    data = airflow.query("SELECT data FROM serialized_dag WHERE dag_id = :dag", dag=dag_id)
    serialized = json.loads(str(data[0][0]))["dag"]["timetable"]
    assert serialized["__type"] == "airflow.timetables.trigger.DeltaTriggerTimetable", serialized
    run = scheduled_run(airflow, dag_id)
    assert run.logical_date == run.data_interval_start == run.data_interval_end == day(5)
    # With a data interval [11-05, 11-06) it would have judged a drifted day; it judges the calm
    # day before its run instead.
    drift = result_of(airflow, dag_id, "drift", run.run_id)
    assert judged(drift) == (day(4), day(5))
    assert drift.metrics["window_basis"] == basis("1d", "the data interval end", day(5))
    assert drift.status.value == "pass", drift.summary
    assert airflow.task_states(dag_id, run.run_id) == {"drift": "success", "retrain_gate": "skipped"}
    gate = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert gate.metrics["decision"] == NO_RETRAIN, gate.summary
    assert airflow.asset_events(asset(dag_id)) == []


# --- 5. manual runs with and without a logical date -------------------------------------------------


def test_manual_runs_with_and_without_a_logical_date(airflow: LocalDeployment) -> None:
    dag_id = "rt_manual"
    # A logical date two days back: the calm day before it. Without one: the last 24 hours, drifted.
    logical = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    dated = airflow.trigger(dag_id, logical_date=logical.isoformat())
    undated = airflow.trigger(dag_id, logical_date=None)
    assert undated["logical_date"] is None and undated["data_interval_end"] is None, undated

    first = airflow.wait_for_run(dag_id, dated["dag_run_id"])
    second = airflow.wait_for_run(dag_id, undated["dag_run_id"])
    assert first.logical_date == logical and first.data_interval_end == logical  # zero-length
    assert (
        second.logical_date is None
        and second.data_interval_start is None
        and second.data_interval_end is None
    )
    assert second.run_after is not None

    calm = result_of(airflow, dag_id, "drift", first.run_id)
    assert judged(calm) == (logical - ONE_DAY, logical)
    assert calm.status.value == "pass", calm.summary
    assert calm.metrics["window_basis"] == basis("1d", "the data interval end", logical)
    assert airflow.task_states(dag_id, first.run_id) == {"drift": "success", "retrain_gate": "skipped"}
    assert result_of(airflow, dag_id, "retrain_gate", first.run_id).metrics["decision"] == NO_RETRAIN

    drifted = result_of(airflow, dag_id, "drift", second.run_id)
    assert judged(drifted) == (second.run_after - ONE_DAY, second.run_after)
    assert drifted.metrics["window_basis"] == basis("1d", "the run-after time", second.run_after)
    assert drifted.status.value == "fail", drifted.summary
    assert airflow.task_states(dag_id, second.run_id) == {"drift": "success", "retrain_gate": "success"}
    gate = result_of(airflow, dag_id, "retrain_gate", second.run_id)
    assert gate.metrics["decision"] == RETRAIN and gate.window_end == second.run_after
    events = airflow.asset_events(asset(dag_id))
    assert [e[1] for e in events] == [second.run_id], events


# --- 6. an asset-triggered run ----------------------------------------------------------------------


def test_asset_triggered_run_judges_the_day_before_its_run_after_time(airflow: LocalDeployment) -> None:
    produced = airflow.trigger("rt_asset_producer", logical_date=None)
    producer = airflow.wait_for_run("rt_asset_producer", produced["dag_run_id"])
    assert producer.state == "success"
    loaded = airflow.asset_events("mlobs-e2e://rt_asset/recent_loaded")
    assert len(loaded) == 1 and loaded[0][0] is not None, loaded

    dag_id = "rt_asset_consumer"
    run = airflow.wait_for_run(dag_id, run_type="asset_triggered")
    assert [r.run_type for r in airflow.runs(dag_id)] == ["asset_triggered"]
    assert run.logical_date is None and run.data_interval_end is None
    assert run.run_after is not None and run.run_after >= loaded[0][0]

    drift = result_of(airflow, dag_id, "drift", run.run_id)
    assert judged(drift) == (run.run_after - ONE_DAY, run.run_after)
    assert drift.metrics["window_basis"] == basis("1d", "the run-after time", run.run_after)
    assert drift.status.value == "fail", drift.summary
    assert airflow.task_states(dag_id, run.run_id) == {"drift": "success", "retrain_gate": "success"}
    gate = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert gate.metrics["decision"] == RETRAIN and gate.metrics["retrained_at"] == run.run_after.isoformat()
    assert len(airflow.asset_events(asset(dag_id))) == 1


# --- the stored windows carry their zone ------------------------------------------------------------


def test_stored_windows_carry_their_zone(airflow: LocalDeployment) -> None:
    """Every stored bound is aware UTC, as the run's data interval is: a bound without a zone
    cannot be compared with an aware one (the gate's consecutive-window streak compares an earlier
    window's end with this window's start), and the result key renders it in the machine's zone."""
    for dag_id in ("rt_daily_window", "rt_data_interval", "rt_timedelta"):
        run = scheduled_run(airflow, dag_id)
        result_of(airflow, dag_id, "drift", run.run_id)  # there is something to look at
    naive = [
        (dag_id, s.run.task_id, s.result.window_start, s.result.window_end)
        for dag_id in DAG_IDS
        for task_id in ("drift", "retrain_gate")
        for s in results(airflow, dag_id, task_id)
        if any(b is not None and b.tzinfo is None for b in (s.result.window_start, s.result.window_end))
    ]
    assert naive == [], f"stored window bounds without a zone: {naive}"


def test_gate_streak_over_windows_chosen_by_window(airflow: LocalDeployment) -> None:
    """consecutive_windows=2 after a window="1d" check on @daily: the run of 11-06 (the window of
    11-05 drifted, the one before it is not stored) holds off, the run of 11-07 (11-05 and 11-06
    drifted, adjacent) retrains."""
    dag_id = "rt_daily_streak"

    def both_done() -> bool:
        runs = airflow.runs(dag_id)
        return len(runs) == 2 and all(r.state in ("success", "failed") for r in runs)

    airflow.wait(both_done, 300, f"the two scheduled runs of {dag_id}")
    first, second = airflow.runs(dag_id)
    assert (first.logical_date, second.logical_date) == (day(6), day(7))
    assert airflow.task_states(dag_id, first.run_id) == {"drift": "success", "retrain_gate": "skipped"}
    assert airflow.task_states(dag_id, second.run_id) == {"drift": "success", "retrain_gate": "success"}
    held = result_of(airflow, dag_id, "retrain_gate", first.run_id)
    assert held.metrics["decision"] == NO_RETRAIN, held.summary
    assert any("only 1 of 2 consecutive windows" in f.reason for f in held.findings), held.findings
    opened = result_of(airflow, dag_id, "retrain_gate", second.run_id)
    assert opened.metrics["decision"] == RETRAIN, opened.summary
    assert judged(opened) == (day(6), day(7))
    assert [e[1] for e in airflow.asset_events(asset(dag_id))] == [second.run_id]


# --- 7. clearing and re-running a window that retrained ---------------------------------------------


def _gate_rows_for_window(airflow: LocalDeployment, dag_id: str, end: datetime) -> list[StoredResult]:
    return [s for s in results(airflow, dag_id, "retrain_gate") if s.result.window_end == end]


def test_a_cleared_and_rerun_window_never_retrains_twice(airflow: LocalDeployment) -> None:
    dag_id = "rt_daily_window"
    run = scheduled_run(airflow, dag_id)
    first = result_of(airflow, dag_id, "retrain_gate", run.run_id)
    assert first.metrics["decision"] == RETRAIN
    assert len(airflow.asset_events(asset(dag_id))) == 1

    for attempt in (1, 2):
        before = airflow.task_tries(dag_id, run.run_id)
        assert airflow.clear(dag_id, run.run_id, ["drift", "retrain_gate"]) == ["drift", "retrain_gate"]

        def rerun_done(before: dict[str, tuple[str | None, int]] = before) -> bool:
            tries = airflow.task_tries(dag_id, run.run_id)
            return all(
                tries[t][1] > before[t][1]
                and tries[t][0] in ("success", "failed", "skipped", "upstream_failed")
                for t in ("drift", "retrain_gate")
            )

        airflow.wait(rerun_done, 240, f"re-run {attempt} of the cleared tasks of {run.run_id}")
        airflow.wait_for_run(dag_id, run.run_id)
        assert airflow.task_states(dag_id, run.run_id) == {"drift": "success", "retrain_gate": "skipped"}
        assert len(airflow.asset_events(asset(dag_id))) == 1, f"re-run {attempt} emitted another event"
        rows = _gate_rows_for_window(airflow, dag_id, day(6))
        assert len(rows) == 1, [(s.run.run_id, s.result.summary) for s in rows]
        held = rows[0].result
        assert held.metrics["decision"] == HOLD, held.summary
        assert "already started a retraining" in held.summary
        assert held.metrics["retrained_at"] == day(6).isoformat()

    # A second run over the same window: another logical date, the data interval [11-05, 11-06).
    again = airflow.trigger(
        dag_id,
        logical_date=(day(6) + timedelta(hours=6)).isoformat(),
        data_interval_start=day(5).isoformat(),
        data_interval_end=day(6).isoformat(),
    )
    other = airflow.wait_for_run(dag_id, again["dag_run_id"])
    assert other.run_id != run.run_id and other.run_type == "manual"
    assert (other.data_interval_start, other.data_interval_end) == (day(5), day(6))
    assert airflow.task_states(dag_id, other.run_id) == {"drift": "success", "retrain_gate": "skipped"}
    drift = result_of(airflow, dag_id, "drift", other.run_id)
    assert judged(drift) == (day(5), day(6)) and drift.status.value == "fail"
    gate = result_of(airflow, dag_id, "retrain_gate", other.run_id)
    assert gate.metrics["decision"] == HOLD and "already started a retraining" in gate.summary
    assert gate.metrics["retrained_at"] == day(6).isoformat()
    assert len(airflow.asset_events(asset(dag_id))) == 1


# --- 8. one message per incident: mapped and parallel checks, cleared and re-run -------------------


def test_mapped_parallel_checks_give_one_message_and_a_rerun_sends_nothing_more(
    airflow: LocalDeployment, slack_hook: SlackServer
) -> None:
    dag_id = "rt_alert_group"
    run = scheduled_run(airflow, dag_id)
    states = airflow.task_states(dag_id, run.run_id)
    assert states == {"drift": "success", "fresh": "success", "alerts": "success"}, states
    group = result_of(airflow, dag_id, "alerts", run.run_id)
    # both mapped drift results and the freshness result, in one group
    assert sorted(group.metrics["checks"]) == ["drift", "drift", "freshness"], group.metrics
    assert set(group.metrics["breached"]) == {"drift", "freshness"}, group.summary
    (message,) = [json.dumps(r.json) for r in slack_hook.received()]
    assert "group on rt_alert_group" in message, message

    # Clear the mapped checks and the alerts task: the re-run finds the same breaches and sends
    # nothing; clearing the alerts task alone does not send again either.
    for cleared in (["alerts", "drift", "fresh"], ["alerts"]):
        before = airflow.task_tries(dag_id, run.run_id)
        assert sorted(set(airflow.clear(dag_id, run.run_id, cleared))) == sorted(cleared)

        def rerun_done(
            before: dict[str, tuple[str | None, int]] = before, cleared: list[str] = cleared
        ) -> bool:
            tries = airflow.task_tries(dag_id, run.run_id)
            return all(tries[t][1] > before[t][1] and tries[t][0] == "success" for t in cleared)

        airflow.wait(rerun_done, 240, f"re-run of {cleared} in {run.run_id}")
        airflow.wait_for_run(dag_id, run.run_id)
        assert len(slack_hook.received()) == 1, [r.json for r in slack_hook.received()]
