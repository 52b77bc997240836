"""ServiceHealthCheckOperator in a real Airflow DAG run: the demo's slow day under ``@daily``."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_checks_in_dags import env_for, results

pytestmark = pytest.mark.e2e
DAY = "2026-11-26"  # @daily: a zero-length interval at 2026-11-26; window="1d" judges the 25th


@pytest.fixture
def request_log_db(tmp_path: Path) -> Path:
    """A week of normal requests (p95 ~120 ms, 1% errors), then the slow day (p95 ~900 ms, 7%)."""
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    rng = np.random.default_rng(5)
    table = sa.Table(
        "requests",
        sa.MetaData(),
        sa.Column("ts", sa.DateTime()),
        sa.Column("latency_ms", sa.Float),
        sa.Column("status", sa.Integer),
        sa.Column("segment", sa.Text),
    )
    table.create(engine)
    rows = []
    start = datetime(2026, 11, 18)
    for minute in range(8 * 1440):
        ts = start + timedelta(minutes=minute, seconds=int(rng.integers(0, 60)))
        slow = ts >= datetime(2026, 11, 25)
        segment = "eu" if rng.random() < 0.6 else "us"
        if slow:
            latency = float(rng.uniform(300, 947)) if segment == "us" else float(rng.uniform(250, 940))
            status = 500 if minute % 14 == 0 else 200  # 103 of 1,440: 7.2%
        else:
            latency, status = float(rng.uniform(50, 126)), (500 if minute % 100 == 0 else 200)
        rows.append({"ts": ts, "latency_ms": latency, "status": status, "segment": segment})
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()
    return path


def test_slow_day_fails_and_names_the_numbers(airflow_db: Path, tmp_path: Path, request_log_db: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "health.py").write_text(
        textwrap.dedent(
            """
            from datetime import UTC, datetime
            from airflow.sdk import DAG
            from airflow_mlobs.operators.health import ServiceHealthCheckOperator

            with DAG("mlobs_health", schedule="@daily", start_date=datetime(2026, 11, 1, tzinfo=UTC), catchup=False):
                common = dict(conn_id="wh", table="requests", timestamp_column="ts", latency_column="latency_ms",
                              error_column="status", window="1d", on_breach="continue")
                ServiceHealthCheckOperator(task_id="slow_day", segment_column="segment",
                                           reference_window=("2026-11-18", "2026-11-25"), **common)
                ServiceHealthCheckOperator(task_id="given_baseline", baseline={"p95_ms": 120}, **common)
                ServiceHealthCheckOperator(task_id="bad_column", **{**common, "latency_column": "nope"})
            """
        )
    )
    outcome = run_dag(airflow_db, dags, "mlobs_health", DAY, env_for(request_log_db))
    stored = results(airflow_db, "mlobs_health")
    status, summary = stored["slow_day"]
    assert status == "fail", summary
    assert "p95 9" in summary and "x baseline 12" in summary, summary
    assert "errors 7.2% [" in summary and "of 1,440 requests" in summary, summary
    # Both segments slowed alike and fail alike: the summary names neither, the metrics keep the
    # slowest (us) with stands_out False.
    assert "slowest" not in summary and "most errors" not in summary, summary
    assert outcome.states["slow_day"] == "success"  # on_breach="continue"
    metrics = outcome.xcoms["slow_day"]["metrics"]
    assert metrics["requests"] == 1440 and metrics["window_basis"]
    assert metrics["p95_ratio"] > 7
    assert metrics["worst_segment_p95"]["value"] == "us" and not metrics["worst_segment_p95"]["stands_out"]
    assert stored["given_baseline"][0] == "fail"
    assert stored["bad_column"][0] == "error"
    assert "latency_column 'nope' not found in table requests" in stored["bad_column"][1]
    assert outcome.states["bad_column"] == "failed"
    assert datetime.fromisoformat(outcome.xcoms["slow_day"]["window"]["start"]) == datetime(
        2026, 11, 25, tzinfo=UTC
    )
