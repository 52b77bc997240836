"""The freshness, schema, quality, baseline and drift specs without Airflow: built from plain values and evaluated
through :func:`~airflow_mlobs.specs.base.url_connected` (a SQLAlchemy URL, no Airflow connection),
on SQLite and PostgreSQL, as the CLI, a notebook or a trigger would. A fresh interpreter runs the
SQLite case and holds that no Airflow module was loaded on the way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.drift_settings import DriftSettings
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.schema import contract_from_columns
from airflow_mlobs.core.types import ColumnInfo, LogicalType, parse_table_name
from airflow_mlobs.sources.sqlkit import read_columns
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.drift import BaselineSpec, DriftSpec
from airflow_mlobs.specs.freshness import FreshnessSpec
from airflow_mlobs.specs.quality import QualitySpec
from airflow_mlobs.specs.schema import SchemaSpec

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 25, tzinfo=UTC)
SUITE = {
    "name": "events.quality",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "customer_age", "min_value": 18, "max_value": 100},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 24, "max_value": 24}},
    ],
}


def create_events(engine: sa.Engine, table: str) -> None:
    """48 hourly rows from 2026-11-25 00:00 (naive UTC); one bad age, on the second day."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (id INTEGER NOT NULL, ts TIMESTAMP, customer_age INTEGER, region VARCHAR(16))"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:id, :ts, :age, 'north')"),
            [
                {
                    "id": i,
                    "ts": (DAY + timedelta(hours=i)).replace(tzinfo=None),
                    "age": 150 if i == 30 else 40,
                }
                for i in range(48)
            ],
        )


def evaluate_all(url: str, table: str, folder: Path) -> dict[str, str]:
    """Each spec's verdicts on ``table`` at ``url``, built from plain values only."""
    verdicts: dict[str, str] = {}
    fresh = FreshnessSpec(conn_id=url, table=table, timestamp_column="ts", max_age="6h", dataset="events")
    fresh.validate("fresh")
    noon = DAY + timedelta(days=1, hours=12)
    result = fresh.evaluate(
        as_of=noon, window_start=noon - timedelta(days=1), window_end=noon, connect=url_connected
    )
    assert result.metrics["rows_after_as_of"] == 11 and result.window_end == noon, result.metrics
    verdicts["fresh"] = result.status.value
    later = fresh.evaluate(as_of=DAY + timedelta(days=3), connect=url_connected)
    verdicts["stale"] = later.status.value

    with url_connected(url) as engine:
        observed = read_columns(engine, parse_table_name(table))
    exact = folder / "events.contract.json"
    exact.write_text(json.dumps(contract_from_columns("events", observed, exact=True)))
    wanting = folder / "wanting.contract.json"
    segment = ColumnInfo("segment", LogicalType.STRING, "VARCHAR(16)", True)
    wanting.write_text(json.dumps(contract_from_columns("wanting", [*observed, segment])))
    schema = SchemaSpec(contract=str(exact), conn_id=url, table=table)
    schema.validate("schema")
    verdicts["schema"] = schema.evaluate(connect=url_connected).status.value
    missing = SchemaSpec(contract=str(wanting), conn_id=url, table=table).evaluate(connect=url_connected)
    assert any(f.subject == "segment" for f in missing.findings), missing.findings
    verdicts["schema_missing"] = missing.status.value

    suite = folder / "events.quality.json"
    suite.write_text(json.dumps(SUITE))
    windowed = QualitySpec(suite=str(suite), conn_id=url, table=table, timestamp_column="ts")
    windowed.validate("quality")
    result = windowed.evaluate(window_start=DAY, window_end=DAY + timedelta(days=1), connect=url_connected)
    assert (result.window_start, result.window_end) == (DAY, DAY + timedelta(days=1))
    verdicts["quality_window"] = result.status.value
    whole = QualitySpec(suite=str(suite), conn_id=url, table=table).evaluate(connect=url_connected)
    verdicts["quality_whole"] = whole.status.value  # the bad age, and 48 rows, not 24

    baselines = folder / "baselines"
    reference = BaselineSpec(
        conn_id=url,
        table=table,
        timestamp_column="ts",
        columns=("customer_age", "region"),
        reference_start=DAY,
        reference_end=DAY + timedelta(days=1),
        baseline="events",
        version="v1",
    )
    reference.validate("baseline")
    built = reference.ensure(baselines, connect=url_connected)
    assert built.metrics["created"] and built.metrics["reference_rows"] == 24, built.metrics
    again = reference.ensure(baselines, connect=url_connected)
    assert not again.metrics["created"] and "kept" in again.summary
    verdicts["baseline"] = built.status.value
    drift = DriftSpec(
        conn_id=url,
        table=table,
        timestamp_column="ts",
        baseline="events",
        settings=DriftSettings(min_rows=10),
    )
    drift.validate("drift")
    kept: list[int] = []
    same = drift.evaluate(
        baselines,
        window_start=DAY,
        window_end=DAY + timedelta(days=1),
        connect=url_connected,
        keep_profile=lambda _baseline, profile: kept.append(profile.row_count),
    )
    assert kept == [24], kept  # the window profiled once, and that profile handed over to be stored
    verdicts["drift_same"] = same.status.value
    short = drift.evaluate(
        baselines, window_start=DAY, window_end=DAY + timedelta(hours=2), connect=url_connected
    )
    assert "min_rows=10" in short.summary, short.summary
    verdicts["drift_short"] = short.status.value
    return verdicts


EXPECTED = {
    "fresh": Status.PASS.value,
    "stale": Status.FAIL.value,
    "schema": Status.PASS.value,
    "schema_missing": Status.FAIL.value,
    "quality_window": Status.PASS.value,
    "quality_whole": Status.FAIL.value,
    "baseline": Status.PASS.value,
    "drift_same": Status.PASS.value,
    "drift_short": Status.SKIPPED.value,
}


def test_specs_on_sqlite_by_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = sa.create_engine(url)
    create_events(engine, "events")
    engine.dispose()
    assert evaluate_all(url, "events", tmp_path) == EXPECTED


@pytest.mark.postgres
def test_specs_on_postgres_by_url(pg_engine: sa.Engine, pg_schema: str, tmp_path: Path) -> None:
    table = f"{pg_schema}.events"
    create_events(pg_engine, table)
    url = pg_engine.url.render_as_string(hide_password=False)
    assert evaluate_all(url, table, tmp_path) == EXPECTED


def test_specs_load_no_airflow(tmp_path: Path) -> None:
    """The same SQLite run in a fresh interpreter: no ``airflow`` module gets imported."""
    script = f"""
import json, sys
import sqlalchemy as sa
from pathlib import Path
from tests.integration.test_specs_by_url import create_events, evaluate_all
folder = Path({str(tmp_path)!r})
url = "sqlite:///" + str(folder / "wh.db")
engine = sa.create_engine(url)
create_events(engine, "events")
engine.dispose()
verdicts = evaluate_all(url, "events", folder)
loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
print(json.dumps({{"verdicts": verdicts, "airflow": loaded}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GX_ANALYTICS_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["verdicts"] == EXPECTED
    assert report["airflow"] == []
