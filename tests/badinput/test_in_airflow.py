"""Bad input in real Airflow 3 (issue 12): one ``airflow dags test`` run of a DAG holding a
representative bad input per area (freshness, schema, quality, drift, performance, the gate, the
notifiers), every task with ``retries=2``.

For each: the task's state and try number (a configuration error is not retried), the stored result
in the results table (status, and a message naming the culprit), the task log (the message, no Python
traceback of our code for an input error) and no part of a webhook secret anywhere (log, results,
deliveries). Airflow runs once for the module.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import DagRunOutcome, TaskTry, run_dag, task_tries
from tests.servers import Reply, SlackServer

pytestmark = pytest.mark.e2e
DAY = "2026-11-26"  # the run's data interval is [2026-11-25, 2026-11-26)
DAG_ID = "mlobs_badinput_in_airflow"
TOKEN_SEGMENTS = ("T0INAIRFLOW", "B0INAIRFLOW", "inAirflowHookSecret0123456789")
TOKEN = "/".join(TOKEN_SEGMENTS)


@dataclass
class Run:
    outcome: DagRunOutcome
    tries: dict[str, TaskTry]
    results: dict[str, tuple[str, str]]
    deliveries: list[dict[str, Any]]
    results_db_text: str
    slack: SlackServer
    home: Path


@pytest.fixture(scope="module")
def run(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("badinput_airflow")
    wh = tmp / "wh.db"
    engine = sa.create_engine(f"sqlite:///{wh}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER, label TEXT, x REAL, ts TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, 'a', 1.0, '2026-11-20 08:00:00.000000')"))
        conn.execute(sa.text("CREATE TABLE labels (prediction_id INTEGER, label INTEGER, ts TIMESTAMP)"))
    engine.dispose()
    baselines = tmp / "baselines"
    baselines.mkdir()
    slack = SlackServer().start()
    # The error answer quotes the URL, the token and each segment (as a misbehaving proxy might).
    slack.script(
        Reply(
            404,
            f"no such hook {slack.url}/services/{TOKEN} ({TOKEN_SEGMENTS[0]} {TOKEN_SEGMENTS[1]} {TOKEN_SEGMENTS[2]})",
        )
    )
    dags = tmp / "dags"
    dags.mkdir()
    body = f"""
        from datetime import UTC, datetime, timedelta
        from airflow.sdk import DAG, CronDataIntervalTimetable
        from airflow_mlobs.notifiers import SlackWebhookNotifier
        from airflow_mlobs.operators import (
            DriftCheckOperator, ExpectationSuiteOperator, FreshnessCheckOperator,
            PerformanceCheckOperator, RetrainGateOperator, SchemaCheckOperator,
        )

        with DAG(
            {DAG_ID!r},
            schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
            start_date=datetime(2026, 11, 1, tzinfo=UTC),
            catchup=False,
            default_args={{"retries": 2, "retry_delay": timedelta(seconds=1)}},
        ):
            FreshnessCheckOperator(task_id="fresh_missing_table", conn_id="wh", table="no_such_table", timestamp_column="ts", max_age="6h")
            FreshnessCheckOperator(task_id="fresh_unknown_conn", conn_id="no_such_conn", table="events", timestamp_column="ts", max_age="6h")
            SchemaCheckOperator(task_id="schema_missing_contract", conn_id="wh", table="events", contract={str(tmp / "nowhere.schema.json")!r})
            ExpectationSuiteOperator(task_id="quality_missing_suite", conn_id="wh", table="events", suite={str(tmp / "nowhere.suite.json")!r})
            DriftCheckOperator(task_id="drift_missing_baseline", conn_id="wh", table="events", baseline="no_such_baseline", baseline_dir={str(baselines)!r}, timestamp_column="ts", window="30d")
            PerformanceCheckOperator(
                task_id="perf_missing_table", conn_id="wh", predictions_table="no_predictions", labels_table="labels",
                prediction_time_column="ts", label_time_column="ts", predicted_column="label", window="30d",
            )
            RetrainGateOperator(task_id="gate_unknown_task", check_task_ids=["no_such_check"])
            gate = RetrainGateOperator(task_id="gate_unknown_results_conn", check_task_ids=["notified_stale"], results_conn_id="no_results_conn")
            FreshnessCheckOperator(
                task_id="notified_stale", conn_id="wh", table="events", timestamp_column="ts", max_age="6h",
                on_breach="continue",
                notify=[
                    SlackWebhookNotifier(slack_webhook_conn_id="hook_url", renotify_after=None),
                    SlackWebhookNotifier(slack_webhook_conn_id="hook_undefined", renotify_after=None),
                ],
            ) >> gate
    """
    (dags / "badinput_in_airflow.py").write_text(textwrap.dedent(body))
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(wh)}),
        # The Slack provider's other form: the whole webhook URL in the password.
        "AIRFLOW_CONN_HOOK_URL": json.dumps(
            {"conn_type": "slackwebhook", "password": f"{slack.url}/services/{TOKEN}"}
        ),
    }
    try:
        outcome = run_dag(airflow_db, dags, DAG_ID, DAY, env)
    finally:
        slack.stop()
    store_engine = sa.create_engine(f"sqlite:///{airflow_db / 'mlobs_results.db'}")
    store = ResultsStore(store_engine)
    stored = {
        s.run.task_id or "": (s.result.status.value, s.result.summary) for s in store.history(dag_id=DAG_ID)
    }
    with store_engine.connect() as conn:
        deliveries = [
            dict(row._mapping)
            for row in conn.execute(
                sa.text("SELECT * FROM mlobs_deliveries WHERE result_key LIKE :dag"), {"dag": f"%{DAG_ID}%"}
            )
        ]
    store_engine.dispose()
    yield Run(
        outcome,
        task_tries(airflow_db, DAG_ID, DAY),
        stored,
        deliveries,
        (airflow_db / "mlobs_results.db").read_bytes().decode("utf-8", "replace"),
        slack,
        airflow_db,
    )


# task id -> (state, stored status or None when nothing can be stored, words the message names)
CASES: dict[str, tuple[str, str | None, list[str]]] = {
    "fresh_missing_table": ("failed", "error", ["no_such_table", "'wh'"]),
    "fresh_unknown_conn": ("failed", "error", ["'no_such_conn'", "not defined"]),
    "schema_missing_contract": ("failed", "error", ["nowhere.schema.json", "does not exist"]),
    "quality_missing_suite": ("failed", "error", ["nowhere.suite.json", "does not exist"]),
    "drift_missing_baseline": ("failed", "error", ["no_such_baseline"]),
    "perf_missing_table": ("failed", "error", ["no_predictions"]),
    "gate_unknown_task": ("failed", "error", ["no_such_check"]),
    "gate_unknown_results_conn": ("failed", None, ["'no_results_conn'", "not defined"]),
    "notified_stale": ("success", "fail", ["events"]),
}


@pytest.mark.parametrize("task_id", list(CASES))
def test_bad_input_in_airflow_is_a_named_outcome_without_retry(run: Run, task_id: str) -> None:
    state, status, words = CASES[task_id]
    tried = run.tries[task_id]
    assert tried.state == state, (task_id, run.outcome.output[-3000:])
    # Bad input and configuration errors fail at once: no retry despite retries=2.
    assert tried.try_number == 1, (task_id, tried)
    if status is None:
        assert task_id not in run.results
        message = next(line for line in run.outcome.output.splitlines() if words[0] in line)
    else:
        got, message = run.results[task_id]
        assert got == status, (task_id, message)
        assert message in run.outcome.output  # the task log carries the stored message
    for word in words:
        assert word in message, (task_id, word, message)


def test_connection_errors_are_prefixed_only_when_they_come_from_the_connection(run: Run) -> None:
    _, quality = run.results["quality_missing_suite"]
    _, schema = run.results["schema_missing_contract"]
    assert "connection 'wh'" not in quality and "connection 'wh'" not in schema


def test_input_errors_leave_no_python_traceback_but_the_task_failure(run: Run) -> None:
    """Airflow logs the exception that fails a task ("Task failed with exception"); for bad input that
    is our CheckBreachError with the message, never an internal error or a chain of causes."""
    lines = run.outcome.output.splitlines()
    assert "The above exception was the direct cause" not in run.outcome.output
    assert "During handling of the above exception" not in run.outcome.output
    failures = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    assert len(failures) == sum(1 for state, _, _ in CASES.values() if state == "failed")
    for start in failures:
        last = next(line for line in lines[start + 1 :] if not line.startswith((" ", "\t")))
        assert last.startswith("airflow_mlobs.exceptions.CheckBreachError: "), last


def test_webhook_secret_in_the_password_leaks_nowhere_and_undefined_hook_is_not_retried(run: Run) -> None:
    by_channel = {d["channel"]: d for d in run.deliveries}
    assert set(by_channel) == {"slack-webhook:hook_url", "slack-webhook:hook_undefined"}, run.deliveries
    sent = by_channel["slack-webhook:hook_url"]
    assert (bool(sent["delivered"]), sent["attempts"]) == (False, 1)  # a 404 is final
    assert "rejected (HTTP 404)" in sent["error"]
    undefined = by_channel["slack-webhook:hook_undefined"]
    assert (bool(undefined["delivered"]), undefined["attempts"]) == (False, 1)
    assert "connection 'hook_undefined' is not defined" in undefined["error"]
    assert run.slack.received(f"/services/{TOKEN}"), "the notifier never reached the server"
    for where, text in {
        "log": run.outcome.output,
        "deliveries": repr(run.deliveries),
        "results db": run.results_db_text,
    }.items():
        for secret in (TOKEN, *TOKEN_SEGMENTS):
            assert secret not in text, f"{secret!r} found in the {where}"
