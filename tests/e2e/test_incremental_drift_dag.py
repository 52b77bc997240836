"""An incremental 7-day drift window in real Airflow DAG runs on two consecutive days: the first
run scans seven days and stores them, the second takes six from the store and scans one, and both
judge the window as a full scan of it does (a second task in the same DAG)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.airflow_runner import run_dag
from tests.e2e.test_drift_in_dags import build_warehouse, env_for, stored, write_dag

pytestmark = pytest.mark.e2e


def test_seven_day_window_run_daily_scans_one_new_day(airflow_db: Path, tmp_path: Path) -> None:
    dag_id = "mlobs_drift_incremental"
    dags, baselines = tmp_path / "dags", tmp_path / "baselines"
    env = env_for(build_warehouse(tmp_path), baselines)
    write_dag(
        dags,
        "drift_incremental",
        f"""
        # A dataset of its own: the results history is shared with the other DAG tests, whose
        # day profiles of wh:events (other baselines) would be "profiled with another baseline".
        common = dict(conn_id="wh", table="events", timestamp_column="ts", baseline="weekly",
                      dataset="wh:events_incremental", on_breach="continue")
        with DAG({dag_id!r}, schedule="@daily", start_date=START, catchup=False):
            baseline = BaselineOperator(task_id="baseline", version="v1", conn_id="wh", table="events",
                                        timestamp_column="ts", baseline="weekly", **REFERENCE)
            incremental = DriftCheckOperator(task_id="incremental", window="7d", incremental="1d", **common)
            full = DriftCheckOperator(task_id="full", window="7d", store_profile=False, **common)
            baseline >> [incremental, full]
        """,
    )

    first = run_dag(airflow_db, dags, dag_id, "2026-11-08", env)
    assert first.returncode == 0, first.output[-3000:]
    info = first.xcoms["incremental"]["metrics"]["incremental"]
    assert info["stored_days"] == []
    assert info["scanned_days"] == [f"2026-11-0{d}" for d in range(1, 8)]
    assert set(info["scan_reasons"].values()) == {"not stored"}

    second = run_dag(airflow_db, dags, dag_id, "2026-11-09", env)
    assert second.returncode == 0, second.output[-3000:]
    info = second.xcoms["incremental"]["metrics"]["incremental"]
    assert info["stored_days"] == [f"2026-11-0{d}" for d in range(2, 8)]
    assert info["scanned_days"] == ["2026-11-08"]
    assert info["increment"] == "1d"
    results = stored(airflow_db, dag_id)
    incremental, full = results["incremental"], results["full"]
    assert incremental.summary.startswith("6 days from the store, 1 scanned: ")
    # The window is the same 7 days, judged the same as the full scan of them.
    assert (incremental.window_start, incremental.window_end) == (full.window_start, full.window_end)
    assert incremental.window_start is not None and incremental.window_start.day == 2
    assert incremental.status == full.status
    assert incremental.summary.endswith(full.summary)
    assert [(f.subject, f.status) for f in incremental.findings] == [
        (f.subject, f.status) for f in full.findings
    ]
    for got, want in zip(incremental.findings, full.findings, strict=True):
        assert got.value == pytest.approx(want.value, rel=1e-6), got.subject
