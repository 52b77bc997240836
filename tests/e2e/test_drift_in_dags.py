"""Drift in real Airflow DAG runs: bad input, the baseline's idempotence, the retraining gate over
several daily intervals, prediction drift, and window bounds without a zone."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e

# The warehouse holds eight days, 2026-11-01 .. 2026-11-08; drift starts on DRIFT_DAY. A run at
# logical date D judges the data interval [D - 1 day, D).
FIRST_DAY = datetime(2026, 11, 1)
DAYS = 8
DRIFT_DAY = datetime(2026, 11, 5)
ROWS_PER_DAY = 300
REFERENCE = ("2026-11-01T00:00:00+00:00", "2026-11-04T00:00:00+00:00")  # three pre-drift days
SEGMENTS = ["a", "b", "c"]


def _rows(
    rng: np.random.Generator, day: datetime, *, features_drift: bool, score_drifts: bool
) -> list[dict[str, Any]]:
    n = ROWS_PER_DAY
    x1 = rng.normal(1.0 if features_drift else 0.0, 1.0, n)
    x2 = rng.exponential(1.6 if features_drift else 1.0, n)
    segment = rng.choice(SEGMENTS, n, p=[0.2, 0.3, 0.5] if features_drift else [0.5, 0.3, 0.2])
    score = rng.beta(5, 2, n) if score_drifts else rng.beta(2, 5, n)
    step = 86400 / n
    return [
        {
            "ts": (day + timedelta(seconds=i * step + 1)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "x1": float(x1[i]),
            "x2": float(x2[i]),
            "segment": str(segment[i]),
            "score": float(score[i]),
        }
        for i in range(n)
    ]


def _create(conn: sa.Connection, table: str, rows: list[dict[str, Any]], x1_type: str = "REAL") -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(
        sa.text(f"CREATE TABLE {table} (ts TIMESTAMP, x1 {x1_type}, x2 REAL, segment TEXT, score REAL)")
    )
    conn.execute(
        sa.text(f"INSERT INTO {table} VALUES (:ts, :x1, :x2, :segment, :score)"),
        rows,
    )


@pytest.fixture
def warehouse_db(tmp_path: Path) -> Path:
    """The warehouse of :func:`build_warehouse` in the test's folder."""
    return build_warehouse(tmp_path)


def build_warehouse(tmp_path: Path) -> Path:
    """A SQLite warehouse with three daily tables over eight days:

    - ``events``: the features x1, x2 and segment drift from DRIFT_DAY on, the score does not;
    - ``scored``: only the score (the model's output) drifts from DRIFT_DAY on;
    - ``typed``: no drift; a test replaces it so that x1 holds text.
    """
    rng = np.random.default_rng(20261105)
    events, scored, typed = [], [], []
    for d in range(DAYS):
        day = FIRST_DAY + timedelta(days=d)
        drifted = day >= DRIFT_DAY
        events += _rows(rng, day, features_drift=drifted, score_drifts=False)
        scored += _rows(rng, day, features_drift=False, score_drifts=drifted)
        typed += _rows(rng, day, features_drift=False, score_drifts=False)
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        _create(conn, "events", events)
        _create(conn, "scored", scored)
        _create(conn, "typed", typed)
    engine.dispose()
    return path


def write_dag(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = f"""
        from datetime import UTC, datetime
        from airflow.sdk import DAG, Asset, CronDataIntervalTimetable
        from airflow_mlobs.operators import BaselineOperator, DriftCheckOperator, RetrainGateOperator
        SCHEDULE = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
        START = datetime(2026, 10, 1, tzinfo=UTC)
        REFERENCE = dict(reference_start={REFERENCE[0]!r}, reference_end={REFERENCE[1]!r})
    """
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return path


def env_for(db: Path, baselines: Path) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(db)}),
        "MLOBS_BASELINE_DIR": str(baselines),
    }


def results_store(airflow_home: Path) -> ResultsStore:
    return ResultsStore(sa.create_engine(f"sqlite:///{airflow_home / 'mlobs_results.db'}"))


def stored(airflow_home: Path, dag_id: str) -> dict[str, CheckResult]:
    """The newest stored result of each task of ``dag_id``."""
    found: dict[str, CheckResult] = {}
    for s in results_store(airflow_home).history(dag_id=dag_id):
        found.setdefault(s.run.task_id or "", s.result)
    return found


def asset_events(airflow_home: Path, uri: str) -> int:
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = :uri"
            ),
            {"uri": uri},
        ).scalar()
    engine.dispose()
    return int(count or 0)


# --- a. bad input ----------------------------------------------------------------------------------


def test_bad_input_gives_error_results_naming_the_problem(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    write_dag(
        dags,
        "drift_bad_input",
        """
        common = dict(conn_id="wh", timestamp_column="ts")
        with DAG("mlobs_drift_bad_prep", schedule=SCHEDULE, start_date=START, catchup=False):
            BaselineOperator(task_id="events_baseline", baseline="events", version="v1", table="events", **common, **REFERENCE)
            BaselineOperator(task_id="typed_baseline", baseline="typed", version="v1", table="typed", **common, **REFERENCE)

        with DAG("mlobs_drift_bad_input", schedule=SCHEDULE, start_date=START, catchup=False):
            DriftCheckOperator(task_id="unknown_baseline", baseline="no_such_baseline", table="events", **common)
            DriftCheckOperator(task_id="other_columns", baseline="events", table="events", columns=["not_there"], **common)
            DriftCheckOperator(task_id="type_changed", baseline="typed", table="typed", **common)

        with DAG("mlobs_drift_bad_empty", schedule=SCHEDULE, start_date=START, catchup=False):
            DriftCheckOperator(task_id="empty_window", baseline="events", table="events", **common)
        """,
    )
    prep = run_dag(airflow_db, dags, "mlobs_drift_bad_prep", "2026-11-06", env)
    assert prep.returncode == 0, prep.output[-3000:]
    assert load_baseline(baselines, "typed", "v1").columns["x1"].kind == "numeric"

    # x1 now holds text: the column's type changed since the baseline was built.
    engine = sa.create_engine(f"sqlite:///{warehouse_db}")
    with engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM typed"))]
        for row in rows:
            row["x1"] = f"value {row['x1']:.3f}"
        _create(conn, "typed", rows, x1_type="TEXT")
    engine.dispose()

    outcome = run_dag(airflow_db, dags, "mlobs_drift_bad_input", "2026-11-06", env)
    empty = run_dag(airflow_db, dags, "mlobs_drift_bad_empty", "2026-10-20", env)  # before the data
    assert outcome.returncode != 0 and empty.returncode != 0
    assert set(outcome.states.values()) == {"failed"}, outcome.states
    assert empty.states == {"empty_window": "failed"}

    results = {**stored(airflow_db, "mlobs_drift_bad_input"), **stored(airflow_db, "mlobs_drift_bad_empty")}
    expected = {
        "unknown_baseline": (outcome, ["no baseline named 'no_such_baseline'", str(baselines)]),
        "other_columns": (outcome, ["built for other columns", "'not_there'"]),
        "type_changed": (outcome, ["`x1`", "type changed", "numeric"]),
        "empty_window": (empty, ["no rows in the window", "events v1"]),
    }
    for task_id, (run, words) in expected.items():
        result = results[task_id]
        assert result.check == "drift"
        assert result.status.value == "error", (task_id, result.summary)
        for word in words:
            assert word in result.summary, (task_id, word, result.summary)
        # The failed task carries the same message (Airflow prints it in the task log).
        assert result.summary in run.output, (task_id, result.summary)
        assert run.xcoms[task_id]["status"] == "error"
    # The error results cover the run's data interval.
    assert results["type_changed"].window_end == datetime(2026, 11, 6, tzinfo=UTC)
    assert results["empty_window"].window_start == datetime(2026, 10, 19, tzinfo=UTC)


# --- b. the baseline operator ----------------------------------------------------------------------


def test_baseline_is_built_once_kept_then_rebuilt_with_overwrite(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    write_dag(
        dags,
        "drift_baseline",
        """
        common = dict(conn_id="wh", table="events", timestamp_column="ts", baseline="bl", version="v1")
        with DAG("mlobs_drift_baseline", schedule=SCHEDULE, start_date=START, catchup=False):
            BaselineOperator(task_id="baseline", **common, **REFERENCE)

        with DAG("mlobs_drift_baseline_overwrite", schedule=SCHEDULE, start_date=START, catchup=False):
            BaselineOperator(
                task_id="baseline", overwrite=True, reference_start=REFERENCE["reference_start"],
                reference_end="2026-11-03T00:00:00+00:00", **common,
            )
        """,
    )
    target = baselines / "bl" / "v1.json"

    first = run_dag(airflow_db, dags, "mlobs_drift_baseline", "2026-11-06", env)
    assert first.returncode == 0, first.output[-3000:]
    metrics = first.xcoms["baseline"]["metrics"]
    assert metrics["created"] is True
    assert metrics["reference_rows"] == 3 * ROWS_PER_DAY
    assert metrics["numeric_columns"] == ["score", "x1", "x2"]
    assert metrics["categorical_columns"] == ["segment"]
    assert metrics["path"] == str(target) and target.is_file()
    built = target.read_text()
    baseline = load_baseline(baselines, "bl")
    assert (baseline.name, baseline.version) == ("bl", "v1")
    assert set(baseline.columns) == {"x1", "x2", "segment", "score"}
    assert baseline.reference.row_count == 3 * ROWS_PER_DAY

    second = run_dag(airflow_db, dags, "mlobs_drift_baseline", "2026-11-07", env)
    assert second.returncode == 0, second.output[-3000:]
    kept = second.xcoms["baseline"]
    assert kept["metrics"]["created"] is False
    assert kept["metrics"]["reference_rows"] == 3 * ROWS_PER_DAY
    assert "already exists" in kept["summary"] and "kept (overwrite=False)" in kept["summary"]
    assert target.read_text() == built

    rebuilt = run_dag(airflow_db, dags, "mlobs_drift_baseline_overwrite", "2026-11-07", env)
    assert rebuilt.returncode == 0, rebuilt.output[-3000:]
    assert rebuilt.xcoms["baseline"]["metrics"]["created"] is True
    assert rebuilt.xcoms["baseline"]["metrics"]["reference_rows"] == 2 * ROWS_PER_DAY
    assert load_baseline(baselines, "bl", "v1").reference.row_count == 2 * ROWS_PER_DAY

    results = stored(airflow_db, "mlobs_drift_baseline")
    assert results["baseline"].check == "baseline" and results["baseline"].status.value == "pass"


# --- c. the retraining gate over several intervals -------------------------------------------------


def test_gate_policy_over_consecutive_days(airflow_db: Path, tmp_path: Path, warehouse_db: Path) -> None:
    dag_id = "mlobs_drift_gate"
    uri = "mlobs://test/retrain"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    write_dag(
        dags,
        "drift_gate",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", baseline="gate_events", version="v1", **common, **REFERENCE)
            drift = DriftCheckOperator(
                task_id="drift", baseline="gate_events", dataset={dag_id + ":events"!r}, on_breach="continue",
                **common,
            )
            gate = RetrainGateOperator(
                task_id="retrain_gate", drift_share=0.5, consecutive_windows=2, cooldown="2d",
                outlets=[Asset({uri!r})],
            )
            baseline >> drift >> gate
        """,
    )
    events_before = asset_events(airflow_db, uri)
    gate_name = f"{dag_id}.retrain_gate"

    def day(logical_date: str):  # type: ignore[no-untyped-def]
        outcome = run_dag(airflow_db, dags, dag_id, logical_date, env)
        assert outcome.states["baseline"] == "success", outcome.output[-3000:]
        assert outcome.states["drift"] == "success", outcome.output[-3000:]
        return outcome

    # 2026-11-04: no drift.
    calm = day("2026-11-05")
    assert calm.returncode == 0, calm.output[-3000:]
    assert calm.xcoms["drift"]["metrics"]["drift_share"] < 0.5
    assert calm.states["retrain_gate"] == "skipped"
    assert calm.xcoms["retrain_gate"]["metrics"]["decision"] == "no_retrain"
    assert calm.xcoms["retrain_gate"]["summary"] == f"{gate_name}: no retraining needed"

    # 2026-11-05, the first drifted day: one window is not enough.
    first = day("2026-11-06")
    assert first.returncode == 0, first.output[-3000:]
    assert first.xcoms["drift"]["status"] == "fail"
    assert first.xcoms["drift"]["metrics"]["drift_share"] >= 0.5
    assert {d["column"] for d in first.xcoms["drift"]["metrics"]["drifted_columns"]} == {
        "x1",
        "x2",
        "segment",
    }
    assert first.states["retrain_gate"] == "skipped"
    assert first.xcoms["retrain_gate"]["metrics"]["decision"] == "no_retrain"
    assert "only 1 of 2 consecutive windows" in first.output
    assert asset_events(airflow_db, uri) == events_before

    # 2026-11-06, the second drifted day: retrain, one asset event.
    second = day("2026-11-07")
    assert second.returncode == 0, second.output[-3000:]
    assert second.states["retrain_gate"] == "success", second.output[-3000:]
    gate = second.xcoms["retrain_gate"]
    assert gate["metrics"]["decision"] == "retrain"
    assert gate["status"] == "warn"
    assert gate["summary"].startswith(f"{gate_name}: retraining triggered: {dag_id}:events: drift share")
    assert asset_events(airflow_db, uri) == events_before + 1

    # 2026-11-07, the third drifted day: held by the 2-day cooldown, no new event.
    third = day("2026-11-08")
    assert third.returncode == 0, third.output[-3000:]
    assert third.states["retrain_gate"] == "skipped"
    held = third.xcoms["retrain_gate"]
    assert held["metrics"]["decision"] == "hold"
    assert "held by cooldown" in held["summary"] and "1d left" in held["summary"]
    assert held["metrics"]["last_retrain"] == "2026-11-07T00:00:00+00:00"
    assert asset_events(airflow_db, uri) == events_before + 1

    # The results history holds each interval's decision.
    history = results_store(airflow_db).history(dag_id=dag_id, task_id="retrain_gate", check="retrain_gate")
    by_day = {
        s.result.window_end.date().isoformat(): s.result  # type: ignore[union-attr]
        for s in history
    }
    assert {d: (r.metrics["decision"], r.status.value) for d, r in by_day.items()} == {
        "2026-11-05": ("no_retrain", "pass"),
        "2026-11-06": ("no_retrain", "pass"),
        "2026-11-07": ("retrain", "warn"),
        "2026-11-08": ("hold", "warn"),
    }
    streak = [f for f in by_day["2026-11-06"].findings if f.metric == "drift_share"]
    assert len(streak) == 1 and streak[0].value == 1
    assert "only 1 of 2 consecutive windows" in streak[0].reason
    assert [f.value for f in by_day["2026-11-07"].findings if f.metric == "drift_share"] == [2]
    assert any(f.metric == "cooldown" for f in by_day["2026-11-08"].findings)
    assert all(r.dataset == gate_name for r in by_day.values())
    assert by_day["2026-11-07"].metrics["inputs"] == [f"drift:{dag_id}:events:fail"]


# --- d. prediction drift ---------------------------------------------------------------------------


def test_prediction_drift_is_reported_apart_from_feature_drift(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    dag_id = "mlobs_drift_predictions"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(warehouse_db, baselines)
    write_dag(
        dags,
        "drift_predictions",
        f"""
        common = dict(conn_id="wh", table="scored", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", baseline="scored", version="v1", **common, **REFERENCE)
            drift = DriftCheckOperator(
                task_id="drift", baseline="scored", prediction_columns=["score"], on_breach="continue",
                dataset={dag_id + ":scored"!r}, **common,
            )
            baseline >> drift
        """,
    )
    outcome = run_dag(airflow_db, dags, dag_id, "2026-11-06", env)
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert outcome.states == {"baseline": "success", "drift": "success"}
    compact = outcome.xcoms["drift"]
    assert compact["status"] == "fail"
    assert "prediction drift: score (wasserstein" in compact["summary"]
    # The features did not drift; only the score did.
    assert compact["metrics"]["drifted_columns"] == []
    assert compact["metrics"]["drift_share"] == 0
    assert [d["column"] for d in compact["metrics"]["prediction"]["drifted_columns"]] == ["score"]
    assert compact["top_findings"]
    assert all(f["subject"].startswith("prediction:") for f in compact["top_findings"])

    result = stored(airflow_db, dag_id)["drift"]
    assert result.summary == compact["summary"]
    subjects = {f.subject for f in result.findings}
    assert "prediction:score" in subjects
    assert "score" not in subjects  # the score is judged as a prediction, not as a feature
    breaches = result.breaches()
    assert breaches and all(f.subject.startswith("prediction:") for f in breaches)


# --- naive window bounds ---------------------------------------------------------------------------


def test_naive_window_bounds_are_utc_whatever_the_machine_zone(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    """Bounds without a zone (e.g. ``"{{ ds }}"``) mean UTC, like the run's data interval; the
    machine's local zone (here Tokyo, UTC+9) must not shift them."""
    dag_id = "mlobs_drift_naive_bounds"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = {**env_for(warehouse_db, baselines), "TZ": "Asia/Tokyo"}
    write_dag(
        dags,
        "drift_naive_bounds",
        f"""
        common = dict(conn_id="wh", table="events", timestamp_column="ts")
        with DAG({dag_id!r}, schedule=SCHEDULE, start_date=START, catchup=False):
            baseline = BaselineOperator(
                task_id="baseline", baseline="naive", version="v1", reference_start="2026-11-01",
                reference_end="2026-11-04", **common,
            )
            drift = DriftCheckOperator(
                task_id="drift", baseline="naive", window_start="2026-11-04", window_end="2026-11-05 00:00:00",
                dataset={dag_id + ":events"!r}, on_breach="continue", **common,
            )
            baseline >> drift
        """,
    )
    outcome = run_dag(airflow_db, dags, dag_id, "2026-11-08", env)
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert outcome.xcoms["baseline"]["metrics"]["reference_rows"] == 3 * ROWS_PER_DAY
    drift = outcome.xcoms["drift"]
    assert drift["metrics"]["rows"] == ROWS_PER_DAY
    assert drift["window"] == {"start": "2026-11-04T00:00:00+00:00", "end": "2026-11-05T00:00:00+00:00"}
    # 2026-11-04 is the last day before the drift: nothing drifted.
    assert drift["metrics"]["drift_share"] < 0.5


def test_gate_triggers_a_named_dag_with_the_reasons_in_its_conf(
    airflow_db: Path, tmp_path: Path, warehouse_db: Path
) -> None:
    dags = tmp_path / "dags"
    baselines = tmp_path / "baselines"
    write_dag(
        dags,
        "trigger_target",
        """
        with DAG("mlobs_trigger_target", schedule=None, start_date=START, catchup=False) as dag:
            from airflow.sdk import task

            @task
            def retrain():
                return "trained"

            retrain()
        """,
    )
    write_dag(
        dags,
        "trigger_gate",
        """
        with DAG("mlobs_trigger_gate", schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            baseline = BaselineOperator(
                task_id="baseline", baseline="trig", version="v1", conn_id="wh", table="events",
                timestamp_column="ts", columns=["x1", "x2", "segment"], **REFERENCE,
            )
            drift = DriftCheckOperator(
                task_id="drift", conn_id="wh", table="events", timestamp_column="ts", baseline="trig",
                on_breach="continue", dataset="trigger-test:events",
            )
            gate = RetrainGateOperator(task_id="gate", drift_share=0.5, trigger_dag_id="mlobs_trigger_target")
            baseline >> drift >> gate
        """,
    )
    outcome = run_dag(airflow_db, dags, "mlobs_trigger_gate", "2026-11-06", env_for(warehouse_db, baselines))
    assert outcome.states["gate"] == "success", outcome.output[-3000:]
    assert outcome.xcoms["gate"]["metrics"]["decision"] == "retrain"
    engine = sa.create_engine(f"sqlite:///{airflow_db / 'airflow.db'}")
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT run_type, conf FROM dag_run WHERE dag_id = 'mlobs_trigger_target'")
        ).all()
    engine.dispose()
    assert len(runs) == 1 and runs[0][0] == "operator_triggered"
    conf = runs[0][1]
    conf = json.loads(conf) if isinstance(conf, str | bytes) else conf
    assert any("drift share" in reason for reason in conf["reasons"])
    assert conf["results"][0]["check"] == "drift"
