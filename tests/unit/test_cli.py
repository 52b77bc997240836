"""The baseline command line, run as users run it (``python -m airflow_mlobs``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.sources.drift_frame import build_baseline
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.drift import BaselineSpec


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlobs", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


def reference_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 10.0, 5000),
            "region": rng.choice(["n", "s", "e"], 5000),
            "flag": rng.integers(0, 2, 5000),
        }
    )


def test_baseline_from_a_table_equals_the_in_memory_baseline(tmp_path: Path) -> None:
    frame = reference_frame()
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("reference", engine, index=False)
    engine.dispose()
    done = run_cli(
        "baseline",
        "--name",
        "ref",
        "--version",
        "v1",
        "--dir",
        str(tmp_path / "b"),
        "--url",
        url,
        "--table",
        "reference",
    )
    assert done.returncode == 0, done.stderr
    assert "built baseline ref v1 from " in done.stdout and "(5000 rows)" in done.stdout
    stored = load_baseline(tmp_path / "b", "ref", "v1")
    expected = build_baseline(frame, name="ref", version="v1")
    assert {c.name: (c.kind, c.edges, c.categories) for c in stored.columns.values()} == {
        c.name: (c.kind, c.edges, c.categories) for c in expected.columns.values()
    }
    again = run_cli(
        "baseline",
        "--name",
        "ref",
        "--version",
        "v1",
        "--dir",
        str(tmp_path / "b"),
        "--url",
        url,
        "--table",
        "reference",
    )
    assert again.returncode == 0 and "already exists" in again.stdout


def test_baseline_from_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "ref.parquet"
    reference_frame().to_parquet(path)
    done = run_cli(
        "baseline",
        "--name",
        "ref",
        "--version",
        "v2",
        "--dir",
        str(tmp_path / "b"),
        "--path",
        str(path),
        "--columns",
        "amount,region",
    )
    assert done.returncode == 0, done.stderr
    assert set(load_baseline(tmp_path / "b", "ref", "v2").columns) == {"amount", "region"}


def test_bad_input_is_a_clear_error_and_exit_code_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    missing_table = run_cli(
        "baseline", "--name", "x", "--version", "v1", "--dir", str(tmp_path), "--url", url, "--table", "nope"
    )
    assert missing_table.returncode == 2
    assert "table nope does not exist" in missing_table.stderr
    no_url = run_cli("baseline", "--name", "x", "--version", "v1", "--dir", str(tmp_path), "--table", "nope")
    assert no_url.returncode == 2 and "--url" in no_url.stderr
    missing_file = run_cli(
        "baseline",
        "--name",
        "x",
        "--version",
        "v1",
        "--dir",
        str(tmp_path),
        "--path",
        str(tmp_path / "no.parquet"),
    )
    assert missing_file.returncode == 2 and "does not exist" in missing_file.stderr


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_reference_bounds_without_a_zone_are_utc_whatever_the_machines_zone(
    tmp_path: Path, zone: str
) -> None:
    """``--start``/``--end`` without a zone are UTC, as the operator reads them (they were read in
    the machine's zone by ``datetime.fromisoformat``: 24 rows under TZ=UTC, 19 under New York)."""
    times = pd.date_range("2026-01-01", periods=48, freq="h")  # naive, stored as UTC wall time
    frame = pd.DataFrame({"ts": times, "amount": np.arange(48.0)})
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("reference", engine, index=False)
    engine.dispose()
    bounds = ("2026-01-01T12:00:00", "2026-01-02T12:00:00")
    done = run_cli(
        "baseline", "--name", "ref", "--version", "v1", "--dir", str(tmp_path / "b"),
        "--url", url, "--table", "reference", "--columns", "amount",
        "--timestamp-column", "ts", "--start", bounds[0], "--end", bounds[1],
        env={**os.environ, "TZ": zone},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = load_baseline(tmp_path / "b", "ref", "v1")
    operator_spec = BaselineSpec(
        conn_id=url, table="reference", columns=("amount",), timestamp_column="ts",
        reference_start=bounds[0], reference_end=bounds[1], baseline="ref", version="v2",
    )  # fmt: skip
    built = operator_spec.build(connect=url_connected)
    assert stored.reference.row_count == built.reference.row_count == 24
    assert "(24 rows)" in done.stdout


def test_baseline_with_a_sensitive_column_stores_no_value(tmp_path: Path) -> None:
    """--sensitive-column: a categorical column's categories are stored as keyed pseudonyms, a
    numeric column without its min and max; without MLOBS_PSEUDONYM_KEY a sensitive categorical
    column is an error saying how to set it."""
    import json

    data = tmp_path / "people.csv"
    pd.DataFrame(
        {"city": [f"PLANTED-{i % 7}" for i in range(500)], "salary": [1000.0 + i for i in range(500)]}
    ).to_csv(data, index=False)
    without_key = {k: v for k, v in os.environ.items() if k != "MLOBS_PSEUDONYM_KEY"}
    args = [
        "baseline",
        "--name",
        "people",
        "--version",
        "v1",
        "--dir",
        str(tmp_path / "b"),
        "--path",
        str(data),
    ]
    sensitive = ["--sensitive-column", "city", "--sensitive-column", "salary"]
    refused = run_cli(*args, *sensitive, env=without_key)
    assert refused.returncode == 2 and "MLOBS_PSEUDONYM_KEY" in refused.stderr, refused.stderr
    done = run_cli(*args, *sensitive, env={**without_key, "MLOBS_PSEUDONYM_KEY": "k" * 32})
    assert done.returncode == 0, done.stderr
    stored = (tmp_path / "b" / "people" / "v1.json").read_text()
    assert "PLANTED" not in stored and "ps_" in stored

    def numbers(value: object) -> list[float]:
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []

    stored_numbers = numbers(json.loads(stored))
    assert 1000.0 not in stored_numbers and 1499.0 not in stored_numbers  # the min and the max
