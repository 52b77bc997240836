"""``python -m airflow_mlobs history``, run as users run it, on a results history in a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.store import ResultsStore, RunKey


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlobs", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    engine = sa.create_engine(url)
    store = ResultsStore(engine)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago in (40, 3, 2, 1):
        start = today - timedelta(days=days_ago)
        for check, status in (
            ("drift", Status.FAIL if days_ago == 2 else Status.PASS),
            ("freshness", Status.PASS),
        ):
            store.save(
                CheckResult(
                    check=check,
                    dataset="wh:features",
                    status=status,
                    summary=f"{check} {status.value} {days_ago}d ago",
                    window_start=start,
                    window_end=start + timedelta(days=1),
                    metrics={"drift_share": 0.5},
                    findings=(Finding("amount", "psi", status, 0.3, 0.2, "psi 0.30"),),
                ),
                RunKey(dag_id="monitor", task_id=check, run_id=f"scheduled__{days_ago}"),
            )
    engine.dispose()
    return url


def test_table_newest_first_within_since(url: str) -> None:
    done = run_cli("history", "--dataset", "wh:features", "--url", url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["window", "end", "(UTC)", "check"]
    assert len(lines) == 1 + 6  # the 40-day-old results are outside the default 30d
    assert "drift fail 2d ago" in done.stdout and "40d ago" not in done.stdout
    assert "monitor.drift" in lines[1] or "monitor.freshness" in lines[1]


def test_json_one_check_with_full_results(url: str) -> None:
    done = run_cli(
        "history",
        "--dataset",
        "wh:features",
        "--check",
        "drift",
        "--since",
        "60d",
        "--json",
        "--full",
        "--url",
        url,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["summary"] for r in rows] == [
        "drift pass 1d ago",
        "drift fail 2d ago",
        "drift pass 3d ago",
        "drift pass 40d ago",
    ]
    assert rows[1]["status"] == "fail" and rows[1]["run_id"] == "scheduled__2" and rows[1]["map_index"] == -1
    assert rows[0]["findings"][0]["subject"] == "amount" and rows[0]["metrics"] == {"drift_share": 0.5}
    assert datetime.fromisoformat(rows[0]["window_end"]) > datetime.fromisoformat(rows[1]["window_end"])


def test_nothing_stored_and_bad_input(url: str) -> None:
    empty = run_cli("history", "--dataset", "wh:other", "--url", url)
    assert empty.returncode == 1 and "no results of dataset 'wh:other' in the last 30d" in empty.stderr
    assert run_cli("history", "--dataset", "wh:other", "--url", url, "--json").stdout.strip() == "[]"
    bad = run_cli("history", "--dataset", "wh:features", "--since", "soon", "--url", url)
    assert bad.returncode == 2 and "--since" in bad.stderr
