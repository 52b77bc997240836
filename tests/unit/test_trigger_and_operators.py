"""Operator construction (parse-time validation, no I/O) and the freshness trigger's own loop."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.operators import ExpectationSuiteOperator, FreshnessCheckOperator, SchemaCheckOperator
from airflow_mlobs.sensors.freshness import FreshnessSensor
from airflow_mlobs.triggers.freshness import FreshnessTrigger

AS_OF = datetime(2026, 11, 26, tzinfo=UTC)


def test_operator_init_does_no_io_for_an_unknown_connection() -> None:
    # Constructing must not touch the connection (DAG parse time); only execute does.
    op = FreshnessCheckOperator(
        task_id="t", conn_id="does_not_exist", table="t", timestamp_column="ts", max_age=timedelta(hours=6)
    )
    assert op.max_age == 6 * 3600
    assert op.dataset_name() == "does_not_exist:t"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conn_id": "c", "timestamp_column": "ts", "max_age": "6h"}, "exactly one of"),
        (
            {"conn_id": "c", "table": "t", "sql": "select 1", "timestamp_column": "ts", "max_age": "6h"},
            "exactly one",
        ),
        ({"table": "t", "timestamp_column": "ts", "max_age": "6h"}, "needs conn_id"),
        ({"conn_id": "c", "table": "t", "timestamp_column": "ts"}, "max_age is required"),
        ({"conn_id": "c", "table": "t", "timestamp_column": "ts", "max_age": "6 hours"}, "max_age"),
        (
            {"conn_id": "c", "table": "t", "timestamp_column": "ts", "max_age": "6h", "on_breach": "page"},
            "on_breach",
        ),
    ],
)
def test_operator_rejects_bad_arguments_at_parse_time(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FreshnessCheckOperator(task_id="t", **kwargs)  # type: ignore[arg-type]


def test_templated_duration_is_not_parsed_at_parse_time() -> None:
    op = FreshnessCheckOperator(
        task_id="t", conn_id="c", table="t", timestamp_column="ts", max_age="{{ params.max_age }}"
    )
    assert "max_age" in op.template_fields and op.max_age == "{{ params.max_age }}"


def test_schema_operator_requires_a_source_and_a_contract() -> None:
    with pytest.raises(ValueError, match="exactly one of table"):
        SchemaCheckOperator(task_id="s", contract="x.json")
    with pytest.raises(ValueError, match="contract"):
        SchemaCheckOperator(task_id="s", conn_id="c", table="t")


FRESH = {"conn_id": "c", "table": "t", "timestamp_column": "ts"}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: FreshnessCheckOperator(task_id="f1", max_age=-60, **FRESH),
            "f1: max_age: must not be negative, got -60",
        ),
        (
            lambda: FreshnessCheckOperator(task_id="f2", max_age="1h", warn_after="90m", **FRESH),
            r"f2: warn_after \(1h 30m\) must not exceed max_age \(1h\); allowed: 0 <= warn_after <= max_age",
        ),
        (
            lambda: FreshnessCheckOperator(task_id="f3", max_age="1h", path="/d", file_pattern="a/*.csv"),
            "f3: file_pattern 'a/\\*.csv' is matched against file names, not paths",
        ),
        (
            lambda: FreshnessSensor(task_id="f4", max_age="1h", timestamp_timezone="CET+1", **FRESH),
            "f4: timestamp_timezone: unknown time zone 'CET\\+1'",
        ),
        (
            lambda: SchemaCheckOperator(
                task_id="s1", contract="c.json", path="x.csv", forbidden_columns="pii_*"
            ),
            r"s1: forbidden_columns must be a list of glob patterns such as \['pii_\*'\], got the string",
        ),
        (
            lambda: ExpectationSuiteOperator(
                task_id="q1", suite="s.json", conn_id="c", table="t", timestamp_timezone="Berlin"
            ),
            "q1: timestamp_timezone: unknown time zone 'Berlin'",
        ),
    ],
    ids=[
        "negative-max_age",
        "warn_after-over-max_age",
        "file_pattern-path",
        "sensor-zone",
        "forbidden-string",
        "quality-zone",
    ],
)
def test_settings_out_of_range_are_dag_import_errors(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_templated_limits_wait_for_rendering() -> None:
    op = FreshnessCheckOperator(
        task_id="t",
        max_age="{{ params.max_age }}",
        warn_after="2h",
        file_pattern="{{ params.glob }}",
        **FRESH,
    )
    assert op.warn_after == "2h"


def test_sensor_shares_the_operator_arguments() -> None:
    sensor = FreshnessSensor(
        task_id="s", conn_id="c", table="t", timestamp_column="ts", max_age="1d", mode="reschedule"
    )
    assert sensor.spec().max_age == "1d"
    assert set(FreshnessCheckOperator.template_fields) == set(sensor.template_fields)
    with pytest.raises(ValueError, match="max_age"):
        FreshnessSensor(task_id="s", conn_id="c", table="t", timestamp_column="ts")


def _trigger(db: Path, table: str, deadline: datetime | None) -> FreshnessTrigger:
    spec = FreshnessCheckOperator(
        task_id="t", conn_id="trig_wh", table=table, timestamp_column="ts", max_age="6h"
    ).spec()
    return FreshnessTrigger(
        spec=spec.to_kwargs(),
        as_of=AS_OF.isoformat(),
        poke_interval=0.2,
        deadline=deadline.isoformat() if deadline else None,
        window_start=(AS_OF - timedelta(days=1)).isoformat(),
        window_end=AS_OF.isoformat(),
    )


@pytest.fixture
def trigger_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE fresh (ts TIMESTAMP)"))
        conn.execute(sa.text("CREATE TABLE stale (ts TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO fresh VALUES ('2026-11-25 22:00:00.000000')"))
        conn.execute(sa.text("INSERT INTO stale VALUES ('2026-11-20 22:00:00.000000')"))
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_TRIG_WH", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    return db


async def _first_event(trigger: FreshnessTrigger) -> dict[str, object]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("trigger yielded nothing")


def test_trigger_serializes_to_plain_json(trigger_db: Path) -> None:
    classpath, kwargs = _trigger(trigger_db, "fresh", None).serialize()
    assert classpath == "airflow_mlobs.triggers.freshness.FreshnessTrigger"
    rebuilt = FreshnessTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_trigger_fires_when_fresh(trigger_db: Path) -> None:
    payload = asyncio.run(_first_event(_trigger(trigger_db, "fresh", None)))
    assert payload["timed_out"] is False
    assert payload["result"]["status"] == "pass"  # type: ignore[index]


def test_trigger_times_out_with_the_last_result(trigger_db: Path) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=0.5)
    payload = asyncio.run(_first_event(_trigger(trigger_db, "stale", deadline)))
    assert payload["timed_out"] is True
    assert payload["result"]["status"] == "fail"  # type: ignore[index]
    assert "stale" in payload["result"]["summary"]  # type: ignore[index]


def test_trigger_stops_at_once_on_bad_input(trigger_db: Path) -> None:
    payload = asyncio.run(_first_event(_trigger(trigger_db, "missing_table", None)))
    assert payload["result"]["status"] == "error"  # type: ignore[index]
    assert "missing_table" in payload["result"]["summary"]  # type: ignore[index]


def test_trigger_without_a_fixed_moment_sees_data_that_lands_while_it_waits(trigger_db: Path) -> None:
    """A run without an interval (manual, asset-triggered) defers with ``as_of=None``: each
    evaluation judges as of its own time. Before, ``as_of`` was frozen at deferral, so a row that
    landed while the sensor waited was "after as_of" and never counted."""
    engine = sa.create_engine(f"sqlite:///{trigger_db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE landing (ts TIMESTAMP)"))
        old = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute(sa.text("INSERT INTO landing VALUES (:ts)"), {"ts": old})
    spec = FreshnessCheckOperator(
        task_id="t", conn_id="trig_wh", table="landing", timestamp_column="ts", max_age="6h"
    ).spec()
    trigger = FreshnessTrigger(spec=spec.to_kwargs(), as_of=None, poke_interval=0.2)
    assert trigger.evaluate().status.value == "fail"

    async def land_then_wait() -> dict[str, object]:
        waiting = asyncio.ensure_future(_first_event(trigger))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # still stale
        with engine.begin() as conn:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.execute(sa.text("INSERT INTO landing VALUES (:ts)"), {"ts": now})
        return await asyncio.wait_for(waiting, timeout=10)

    payload = asyncio.run(land_then_wait())
    engine.dispose()
    assert payload["timed_out"] is False
    assert payload["result"]["status"] == "pass"  # type: ignore[index]
    assert FreshnessTrigger(**trigger.serialize()[1]).as_of is None
