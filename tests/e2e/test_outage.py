"""A database outage in real Airflow: the check's task is retried and succeeds once the database is
back; bad input (a missing table) fails at once, without retrying.

Every database is the local PostgreSQL reached through a :class:`~tests.servers.TcpProxy` the test
switches off and on (a real ``connection refused``). One ``airflow dags test`` run of one DAG holds
all the cases, each task on its own proxies (``airflow dags test`` honours ``retries`` and
``retry_delay``: its loop runs ``up_for_retry`` task instances again once the delay is over):

- ``source_outage``: the source database is down for the first try;
- ``results_outage``: the results history (``results_conn_id``) is down for the first try;
- ``gate_outage``: the retraining gate's results history is down for the first try;
- ``lasting_outage``: the source never comes back (``retries=1``): the last try stores an ``error``;
- ``missing_table``: ``retries=3``, yet one try only.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from tests.conftest import pg_connection_fields, pg_url
from tests.e2e.airflow_runner import DagRunOutcome, TaskTry, finish_dag, start_dag, task_tries
from tests.servers import TcpProxy, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
DAG_ID = "mlobs_outage"
DAY = "2026-11-26"  # the run's data interval is [2026-11-25, 2026-11-26)
PASSWORD = "s3cr3t-pw"  # PostgreSQL trusts local connections; the password must still never show
RETRY_DELAY = 3  # seconds


@dataclass
class OutageRun:
    outcome: DagRunOutcome
    tries: dict[str, TaskTry]
    # The try state of each task when its proxy was started again (proof the first try failed first).
    restarted_after: dict[str, TaskTry]
    stored: dict[str, list[tuple[str, str]]]  # task_id -> [(status, summary)] in the results history


DAG_FILE = f"""
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_mlobs.operators import FreshnessCheckOperator
from airflow_mlobs.operators.gate import RetrainGateOperator

with DAG(
    "{DAG_ID}",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    default_args={{"retries": 3, "retry_delay": timedelta(seconds={RETRY_DELAY})}},
):
    common = dict(table="public.events", timestamp_column="ts", max_age="3d")
    FreshnessCheckOperator(task_id="source_outage", conn_id="src_down", results_conn_id="res_up", **common)
    FreshnessCheckOperator(task_id="results_outage", conn_id="src_up", results_conn_id="res_down", **common)
    FreshnessCheckOperator(
        task_id="missing_table", conn_id="src_up", results_conn_id="res_up",
        table="public.no_such_table", timestamp_column="ts", max_age="3d",
    )
    FreshnessCheckOperator(
        task_id="lasting_outage", conn_id="src_gone", results_conn_id="res_up",
        retries=1, retry_delay=timedelta(seconds=1), **common,
    )
    gate_input = FreshnessCheckOperator(
        task_id="gate_input", conn_id="src_up", results_conn_id="res_up", **common
    )
    gate_input >> RetrainGateOperator(task_id="gate_outage", results_conn_id="gate_down")
"""


@pytest.fixture(scope="module")
def outage_database(pg_engine: sa.Engine) -> Iterator[str]:
    """A database of its own (source table and results history), dropped afterwards."""
    name = f"mlobs_outage_{uuid.uuid4().hex[:8]}"
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_url()).set(database=name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id integer, ts timestamptz)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, '2026-11-25 12:00:00+00')"))
    engine.dispose()
    yield name
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def run(
    airflow_db: Path, outage_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutageRun]:
    """Run the DAG once with three proxies down; start each again after its task's first failed try."""
    base = tmp_path_factory.mktemp("outage")
    dags = base / "dags"
    dags.mkdir()
    (dags / "outage.py").write_text(textwrap.dedent(DAG_FILE))
    pg = sa.engine.make_url(pg_url())
    host, port = pg.host or "127.0.0.1", pg.port or 5432
    up = TcpProxy(host, port).start()
    down = {task: TcpProxy(host, port) for task in ("source_outage", "results_outage", "gate_outage")}
    gone_port = free_port()  # nothing ever listens here

    def connection(proxy_port: int) -> str:
        fields = pg_connection_fields()
        fields.update(host="127.0.0.1", port=proxy_port, schema=outage_database, password=PASSWORD)
        return json.dumps(fields)

    env = {
        "AIRFLOW_CONN_SRC_UP": connection(up.port),
        "AIRFLOW_CONN_RES_UP": connection(up.port),
        "AIRFLOW_CONN_SRC_DOWN": connection(down["source_outage"].port),
        "AIRFLOW_CONN_RES_DOWN": connection(down["results_outage"].port),
        "AIRFLOW_CONN_GATE_DOWN": connection(down["gate_outage"].port),
        "AIRFLOW_CONN_SRC_GONE": connection(gone_port),
    }
    output = base / "dags_test.log"
    process = start_dag(airflow_db, dags, DAG_ID, DAY, output, env)
    restarted_after: dict[str, TaskTry] = {}
    try:
        deadline = time.monotonic() + 540
        while process.poll() is None and time.monotonic() < deadline:
            tries = task_tries(airflow_db, DAG_ID, DAY)
            for task, proxy in down.items():
                current = tries.get(task)
                if task in restarted_after or current is None:
                    continue
                if current.state == "up_for_retry" or current.try_number >= 2:
                    proxy.start()  # the outage ends after the first failed try
                    restarted_after[task] = current
            time.sleep(0.2)
        outcome = finish_dag(process, airflow_db, DAG_ID, DAY, output)
    finally:
        if process.poll() is None:
            process.kill()
        for proxy in (up, *down.values()):
            proxy.stop()
    results_engine = sa.create_engine(sa.engine.make_url(pg_url()).set(database=outage_database))
    stored: dict[str, list[tuple[str, str]]] = {}
    for row in ResultsStore(results_engine).history(dag_id=DAG_ID):
        stored.setdefault(row.run.task_id or "", []).append((row.result.status.value, row.result.summary))
    results_engine.dispose()
    yield OutageRun(outcome, task_tries(airflow_db, DAG_ID, DAY), restarted_after, stored)


def retry_lines(output: str, subject: str) -> list[str]:
    return [line for line in output.splitlines() if subject in line and "the task will be retried" in line]


def test_source_outage_retries_then_succeeds_with_one_result(run: OutageRun) -> None:
    task = "source_outage"
    assert run.restarted_after[task].try_number == 1, run.restarted_after
    assert run.outcome.states[task] == "success", run.outcome.output[-4000:]
    assert run.tries[task].try_number == 2
    lines = retry_lines(run.outcome.output, "connection 'src_down' (table public.events) is unavailable")
    assert lines and "try 1 of 4" in lines[0], run.outcome.output[-4000:]
    assert "Connection refused" in lines[0]
    assert [status for status, _ in run.stored[task]] == ["pass"]
    assert run.outcome.xcoms[task]["status"] == "pass"


def test_results_outage_retries_then_stores_exactly_one_result(run: OutageRun) -> None:
    task = "results_outage"
    assert run.restarted_after[task].try_number == 1, run.restarted_after
    assert run.outcome.states[task] == "success", run.outcome.output[-4000:]
    assert run.tries[task].try_number == 2
    lines = retry_lines(run.outcome.output, "connection 'res_down' (the results history) is unavailable")
    assert lines and "try 1 of 4" in lines[0], run.outcome.output[-4000:]
    assert [status for status, _ in run.stored[task]] == ["pass"]


def test_gate_retries_when_its_results_history_is_down(run: OutageRun) -> None:
    task = "gate_outage"
    assert run.restarted_after[task].try_number == 1, run.restarted_after
    # A passing upstream check: the gate stores its decision (no retraining) and skips, on the second try.
    assert run.outcome.states[task] == "skipped", run.outcome.output[-4000:]
    assert run.tries[task].try_number == 2
    assert retry_lines(run.outcome.output, "connection 'gate_down' (the results history) is unavailable")
    # It was the gate's own history read that failed (retry_when_results_unavailable's wrapper), not
    # the storing of its decision (publish), which would have retried anyway.
    first_try = run.outcome.output.split("starting task_id=gate_outage")[1].split(
        "end task task_id=gate_outage"
    )[0]
    assert "in wrapper" in first_try and "in publish" not in first_try
    assert len(run.stored[task]) == 1


def test_missing_table_fails_at_once_without_retrying(run: OutageRun) -> None:
    task = "missing_table"
    assert run.outcome.states[task] == "failed"
    assert run.tries[task].try_number == 1  # retries=3, yet a single try
    ((status, summary),) = run.stored[task]
    assert status == "error" and "public.no_such_table" in summary and "does not exist" in summary


def test_lasting_outage_ends_in_a_named_error_on_the_last_try(run: OutageRun) -> None:
    task = "lasting_outage"
    assert run.outcome.states[task] == "failed"
    assert run.tries[task].try_number == 2  # retries=1: two tries
    assert retry_lines(run.outcome.output, "connection 'src_gone' (table public.events) is unavailable")
    assert "no retries left (try 2 of 2)" in run.outcome.output
    ((status, summary),) = run.stored[task]
    assert status == "error"
    assert "connection 'src_gone' (table public.events) is unavailable" in summary
    assert "Connection refused" in summary


def test_no_password_in_the_output(run: OutageRun) -> None:
    assert "unavailable" in run.outcome.output
    assert PASSWORD not in run.outcome.output
