"""OpenLineage events and StatsD metrics of the check operators in one real Airflow DAG run.

The run (``airflow dags test``, once for the module) has the OpenLineage provider enabled with its
file transport and ``[metrics] statsd_on`` pointed at a UDP socket this module opens on 127.0.0.1.
The checks read a PostgreSQL table, so the lineage namespace is the one the PostgreSQL hook gives.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import DagRunOutcome, run_dag
from tests.e2e.test_checks_in_dags import write_dag

pytestmark = pytest.mark.e2e
DAY = "2026-11-26"  # the run judges [2026-11-25, 2026-11-26)
DAG_ID = "mlobs_observe"


class StatsdListener:
    """A UDP socket on 127.0.0.1 collecting every StatsD datagram sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.extend(line for line in data.decode(errors="replace").splitlines() if line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass
class Observed:
    outcome: DagRunOutcome
    airflow_home: Path
    schema: str
    events: list[dict[str, Any]]
    statsd: list[str]
    seconds: float


def _rows(day: datetime, n: int, shift: float, rng: random.Random, start_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": start_id + i,
            "x1": rng.gauss(shift, 1.0),
            "region": rng.choice(["north", "south", "east"] if shift == 0 else ["north", "north", "west"]),
            "ts": day + timedelta(seconds=int(i * 86000 / n)),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def observed(
    airflow_db: Path, pg_engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("observe")
    schema = f"mlobs_obs_{random.randrange(16**8):08x}"
    rng = random.Random(13)
    rows: list[dict[str, Any]] = []
    for d in range(3):  # the reference: 2026-11-01 .. 2026-11-04
        rows += _rows(datetime(2026, 11, 1 + d, tzinfo=UTC), 200, 0.0, rng, len(rows))
    rows += _rows(datetime(2026, 11, 25, tzinfo=UTC), 200, 1.5, rng, len(rows))  # drifted window
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".events (id INTEGER, x1 DOUBLE PRECISION, region TEXT, '
                "ts TIMESTAMPTZ)"
            )
        )
        conn.execute(sa.text(f'INSERT INTO "{schema}".events VALUES (:id, :x1, :region, :ts)'), rows)
    contract = tmp / "events.schema.json"
    contract.write_text(
        json.dumps(
            {
                "name": "events.schema",
                "expectations": [
                    {"type": "expect_column_to_exist", "kwargs": {"column": "customer_age"}, "meta": {}},
                    {
                        "type": "expect_column_values_to_be_of_type",
                        "kwargs": {"column": "id", "type_": "INTEGER"},
                    },
                ],
            }
        )
    )
    dags = tmp / "dags"
    table = f"{schema}.events"
    write_dag(
        dags,
        "observe",
        f"""
        from airflow_mlobs.operators import BaselineOperator, DriftCheckOperator
        with DAG({DAG_ID!r}, schedule=SCHEDULE, start_date=START, catchup=False) as dag:
            FreshnessCheckOperator(
                task_id="freshness", conn_id="pg", table={table!r}, timestamp_column="ts", max_age="6h",
                dataset="events",
            )
            FreshnessCheckOperator(
                task_id="too_old", conn_id="pg", table={table!r}, timestamp_column="ts", max_age="1m",
                dataset="events",
            )
            SchemaCheckOperator(
                task_id="schema", conn_id="pg", table={table!r}, contract={str(contract)!r},
                on_breach="continue", dataset="events",
            )
            common = dict(conn_id="pg", table={table!r}, timestamp_column="ts", baseline_dir={str(tmp / "bl")!r})
            baseline = BaselineOperator(
                task_id="baseline", baseline="events", version="v1", columns=["x1", "region"],
                reference_start="2026-11-01T00:00:00+00:00", reference_end="2026-11-04T00:00:00+00:00",
                **common,
            )
            drift = DriftCheckOperator(
                task_id="drift", baseline="events", on_breach="continue", dataset="events", **common,
            )
            baseline >> drift
        """,
    )
    lineage_file = tmp / "openlineage.jsonl"
    listener = StatsdListener()
    env = {
        "AIRFLOW_CONN_PG": json.dumps(pg_connection_fields()),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(lineage_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlobs_test",
        "AIRFLOW__API__BASE_URL": "http://airflow.test:8080/",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        # Tags in the datagrams (InfluxDB line style), so the test sees them; legacy names carry none.
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }
    started = time.monotonic()
    try:
        outcome = run_dag(airflow_db, dags, DAG_ID, DAY, env)
        seconds = time.monotonic() - started
        time.sleep(0.5)  # the last datagrams
    finally:
        listener.close()
    events = []
    if lineage_file.exists():
        events = [json.loads(line) for line in lineage_file.read_text().splitlines() if line.strip()]
    try:
        yield Observed(outcome, airflow_db, schema, events, list(listener.lines), seconds)
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def complete_event(observed: Observed, task_id: str, event_type: str = "COMPLETE") -> dict[str, Any]:
    found = [
        e
        for e in observed.events
        if e.get("eventType") == event_type and e.get("job", {}).get("name") == f"{DAG_ID}.{task_id}"
    ]
    assert found, (task_id, [(e.get("eventType"), e.get("job", {}).get("name")) for e in observed.events])
    return found[-1]


def test_the_run_succeeds_with_breaches_continued(observed: Observed) -> None:
    assert observed.outcome.states == {
        "freshness": "success",
        "too_old": "failed",
        "schema": "success",
        "baseline": "success",
        "drift": "success",
    }
    assert observed.outcome.xcoms["schema"]["status"] == "fail"
    assert observed.outcome.xcoms["drift"]["status"] == "fail"
    print(f"observe DAG run took {observed.seconds:.1f}s")


def test_complete_events_carry_the_postgres_input_dataset(observed: Observed) -> None:
    for task_id in ("freshness", "schema", "drift"):
        event = complete_event(observed, task_id)
        (dataset,) = event["inputs"]
        assert dataset["namespace"] == "postgres://127.0.0.1:5432", dataset
        assert dataset["name"] == f"test.{observed.schema}.events", dataset


def test_schema_assertions_name_the_missing_column(observed: Observed) -> None:
    dataset = complete_event(observed, "schema")["inputs"][0]
    assertions = dataset["facets"]["dataQualityAssertions"]["assertions"]
    fields = [(f["name"], f["type"]) for f in dataset["facets"]["schema"]["fields"]]
    assert fields == [
        ("id", "INTEGER"),
        ("x1", "DOUBLE PRECISION"),
        ("region", "TEXT"),
        ("ts", "TIMESTAMP WITH TIME ZONE"),
    ], fields
    missing = [a for a in assertions if a["assertion"] == "missing"]
    assert missing and missing[0]["column"] == "customer_age" and missing[0]["success"] is False, assertions


def test_freshness_assertion_passes(observed: Observed) -> None:
    dataset = complete_event(observed, "freshness")["inputs"][0]
    assertions = dataset["facets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"]) for a in assertions] == [("age", True)], assertions


def test_drift_event_carries_schema_assertions_and_profile_metrics(observed: Observed) -> None:
    dataset = complete_event(observed, "drift")["inputs"][0]
    fields = {f["name"]: f.get("type") for f in dataset["facets"]["schema"]["fields"]}
    assert set(fields) == {"x1", "region"}, fields
    assertions = dataset["facets"]["dataQualityAssertions"]["assertions"]
    by_column = {a["column"]: a for a in assertions if a["assertion"] in ("wasserstein", "js")}
    assert by_column["x1"]["success"] is False and by_column["x1"]["assertion"] == "wasserstein", assertions
    assert by_column["region"]["success"] is False, assertions
    metrics = dataset["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 200
    x1 = metrics["columnMetrics"]["x1"]
    assert x1["nullCount"] == 0 and x1["min"] < 1.5 < x1["max"], x1
    assert metrics["columnMetrics"]["region"]["distinctCount"] == 2, metrics


def datagrams(observed: Observed, name: str) -> list[tuple[dict[str, str], str]]:
    """``(tags, value|type)`` of every datagram of the metric ``name`` (prefix included)."""
    found = []
    for line in observed.statsd:
        head, _, value = line.partition(":")
        metric, *pairs = head.split(",")
        if metric == name:
            found.append((dict(p.split("=", 1) for p in pairs), value))
    return found


def test_status_metrics_are_tagged_and_name_encoded(observed: Observed) -> None:
    status = {
        tags["task_id"]: (tags, value) for tags, value in datagrams(observed, "airflow.mlobs.check.status")
    }
    assert status["freshness"] == (
        {"dag_id": DAG_ID, "task_id": "freshness", "dataset": "events", "check": "freshness"},
        "1|g",
    )
    assert status["schema"][1] == "3|g" and status["drift"][1] == "3|g"
    finish = datagrams(observed, "airflow.mlobs.check.finish")
    assert (
        {"dag_id": DAG_ID, "task_id": "drift", "dataset": "events", "check": "drift", "status": "fail"},
        "1|c",
    ) in finish
    # Legacy names (Airflow's default legacy_names_on) carry the variables in the name, no tags.
    assert datagrams(observed, f"airflow.mlobs.check.status.{DAG_ID}.schema") == [({}, "3|g")]
    assert datagrams(observed, f"airflow.mlobs.check.finish.{DAG_ID}.drift.fail") == [({}, "1|c")]
    assert datagrams(observed, f"airflow.mlobs.check.breach.{DAG_ID}.drift") == [({}, "1|g")]


def test_headline_metrics_age_drift_share_and_effect_per_column(observed: Observed) -> None:
    ((tags, value),) = [
        (tags, value)
        for tags, value in datagrams(observed, "airflow.mlobs.freshness.age_seconds")
        if tags["task_id"] == "freshness"
    ]
    age = float(value.split("|")[0])
    assert tags["task_id"] == "freshness" and 0 < age < 6 * 3600, (tags, value)
    ((_, share),) = datagrams(observed, "airflow.mlobs.drift.share")
    assert share == "1.0|g"
    effects = {
        tags["column"]: (tags["metric"], value)
        for tags, value in datagrams(observed, "airflow.mlobs.drift.effect")
    }
    assert set(effects) == {"x1", "region"}
    assert effects["x1"][0] == "wasserstein" and float(effects["x1"][1].split("|")[0]) > 0.5
    assert effects["region"][0] == "js"
    assert datagrams(observed, f"airflow.mlobs.drift.effect.{DAG_ID}.drift.x1")


def test_extra_link_is_stored_for_the_ui(observed: Observed) -> None:
    """Airflow 3 stores each extra link when the task ends (XCom ``_link_<class>``); the UI reads it."""
    from urllib.parse import quote

    engine = sa.create_engine(f"sqlite:///{observed.airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT task_id, run_id, value FROM xcom WHERE dag_id = :dag AND key = '_link_MlobsResultLink'"
            ),
            {"dag": DAG_ID},
        ).all()
    engine.dispose()
    links = {task: (run_id, json.loads(value)) for task, run_id, value in rows}
    assert set(links) == {"freshness", "too_old", "schema", "baseline", "drift"}
    run_id, url = links["drift"]
    assert url == (
        f"http://airflow.test:8080/mlobs/result?dag_id={DAG_ID}&run_id={quote(run_id, safe='')}"
        "&task_id=drift&map_index=-1"
    )


def test_a_failed_check_emits_its_facets_on_the_fail_event(observed: Observed) -> None:
    dataset = complete_event(observed, "too_old", "FAIL")["inputs"][0]
    assert dataset["name"] == f"test.{observed.schema}.events"
    assertions = dataset["facets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"], a["severity"]) for a in assertions] == [("age", False, "fail")]
