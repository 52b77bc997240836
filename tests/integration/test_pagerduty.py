"""PagerDutyNotifier against a real HTTP server on 127.0.0.1 speaking PagerDuty's Events API v2
(``tests.servers.PagerDutyServer``), through a ``pagerduty_events`` connection of Airflow's
PagerDuty provider, with a real results store (SQLite): trigger, de-duplication across days,
resolve with the same ``dedup_key``, severity routing, retries, and the routing key kept secret."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.exceptions import CheckBreachError
from airflow_mlobs.notifiers.base import RetryPolicy
from airflow_mlobs.notifiers.pagerduty import PagerDutyNotifier, incident_key
from airflow_mlobs.render.links import result_page_url
from airflow_mlobs.store import ResultsStore, RunKey
from tests.servers import PagerDutyServer, Reply, free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTING_KEY = "R0utingKeyW2pagerduty0123456789ab"
WRONG_KEY = "WrongRoutingKey9876543210zyxwvuts"
DAY = datetime(2026, 11, 5, tzinfo=UTC)
LOG_URL = "http://airflow.example.com/dags/ml/runs/r1/tasks/drift?try_number=1"
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=2.0, timeout=5)
DRIFTED = [("age", 0.31), ("income", 0.87), ("tenure", 0.12), ("clicks", 1.23), ("spend", 0.62)]


def run_key(day: int = 0) -> RunKey:
    return RunKey(dag_id="ml", task_id="drift", run_id=f"scheduled__2026-11-{5 + day:02d}")


@pytest.fixture
def pd_server() -> Iterator[PagerDutyServer]:
    server = PagerDutyServer(routing_keys={ROUTING_KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def pd_conn(pd_server: PagerDutyServer, airflow_connection: Any) -> str:
    return str(
        airflow_connection(
            "mlobs_pd",
            conn_type="pagerduty_events",
            password=ROUTING_KEY,
            extra={"base_url": pd_server.url},
        )
    )


@dataclass
class FakeTi:
    """The little of a task instance the notifiers read: its ids and log URL."""

    run_id: str
    log_url: str = LOG_URL
    dag_id: str = "ml"
    task_id: str = "drift"
    map_index: int = -1


def ctx(day: int = 0, **extra: Any) -> Any:
    return {"ti": FakeTi(run_id=str(run_key(day).run_id)), **extra}


def drift_result(status: Status = Status.FAIL, day: int = 0, summary: str | None = None) -> CheckResult:
    bad = Status.PASS if status is Status.PASS else status
    findings = [Finding(c, "psi", bad, value=v, threshold=0.1) for c, v in DRIFTED]
    findings.append(Finding("score", "psi", Status.PASS, value=0.01, threshold=0.1))
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=status,
        summary=summary or f"wh:activity: {0 if status is Status.PASS else 5} of 6 columns drifted",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        findings=tuple(findings),
    )


def send(notifier: PagerDutyNotifier, result: CheckResult, store: ResultsStore, day: int = 0) -> str | None:
    run = run_key(day)
    store.save(result, run)
    return notifier.send_result(result, ctx(day), store, run)


def expected_key() -> str:
    return incident_key(dag_id="ml", task_id="drift", check="drift", dataset="wh:activity")


# --- trigger, de-duplication, resolve ----------------------------------------------------------


def test_a_fail_triggers_a_critical_alert_with_the_incident_dedup_key(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"

    (request,) = pd_server.received()
    assert request.path == "/v2/enqueue"
    assert request.headers["content-type"] == "application/json"
    event = request.json
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    key = expected_key()
    assert event["dedup_key"] == key and key.startswith("mlobs-") and len(key) <= 255
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "wh:activity"
    assert payload["component"] == "drift"
    assert payload["group"] == "ml"
    assert payload["summary"] == (
        "FAIL: drift on wh:activity (2026-11-04 00:00 to 2026-11-05 00:00 UTC): "
        "wh:activity: 5 of 6 columns drifted"
    )
    assert payload["timestamp"] == DAY.isoformat()
    details = payload["custom_details"]
    assert details["status"] == "fail" and details["dag_id"] == "ml" and details["task_id"] == "drift"
    assert details["findings_not_passing"] == 5
    # The worst findings, largest first, as the stored result gives them.
    assert [f["subject"] for f in details["worst_findings"]] == ["clicks", "income", "spend", "age", "tenure"]
    assert details["worst_findings"][0] == {
        "subject": "clicks",
        "metric": "psi",
        "value": "1.23",
        "threshold": "0.1",
        "status": "fail",
    }
    report = result_page_url(
        "http://localhost:8080", dag_id="ml", run_id="scheduled__2026-11-05", task_id="drift"
    )
    assert {link["text"]: link["href"] for link in event["links"]}["Task log"] == LOG_URL
    report_href = {link["text"]: link["href"] for link in event["links"]}["Report"]
    assert report_href.endswith(report.split("/mlobs/", 1)[1]) and "/mlobs/result?" in report_href
    assert event["client_url"] == report_href
    assert pd_server.alerts == {key: "triggered"}

    (delivery,) = store.deliveries(result, run_key())
    assert (delivery.channel, delivery.kind, delivery.delivered, delivery.attempts) == (
        "pagerduty:mlobs_pd",
        "alert",
        True,
        1,
    )


def test_the_same_breach_the_next_day_does_not_page_again_and_the_recovery_resolves_it(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    assert send(notifier, drift_result(day=0), store, day=0) == "alert"
    assert send(notifier, drift_result(day=1), store, day=1) is None
    assert send(notifier, drift_result(day=2), store, day=2) is None
    assert len(pd_server.received()) == 1

    recovered = drift_result(Status.PASS, day=3)
    assert send(notifier, recovered, store, day=3) == "recovery"
    trigger, resolve = pd_server.events()
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert pd_server.alerts == {expected_key(): "resolved"}
    assert pd_server.opened == {expected_key(): 1}
    (delivery,) = store.deliveries(recovered, run_key(3))
    assert (delivery.kind, delivery.delivered) == ("recovery", True)

    # A pass after the recovery sends nothing; a new breach opens a new alert on the same key.
    assert send(notifier, drift_result(Status.PASS, day=4), store, day=4) is None
    assert send(notifier, drift_result(day=5), store, day=5) == "alert"
    assert pd_server.alerts == {expected_key(): "triggered"}
    assert pd_server.opened == {expected_key(): 2}


def test_other_tasks_and_datasets_are_other_incidents() -> None:
    keys = {
        incident_key(dag_id="ml", task_id="drift", check="drift", dataset="wh:activity"),
        incident_key(dag_id="ml", task_id="drift2", check="drift", dataset="wh:activity"),
        incident_key(dag_id="ml", task_id="drift", check="drift", dataset="wh:orders"),
        incident_key(dag_id="ml2", task_id="drift", check="drift", dataset="wh:activity"),
        incident_key(dag_id="ml", task_id="drift", check="quality", dataset="wh:activity"),
        # No ambiguity from the separator: names are hashed as a JSON list.
        incident_key(dag_id="ml|drift", task_id="", check="drift", dataset="wh:activity"),
    }
    assert len(keys) == 6
    assert incident_key(dag_id="ml", task_id="drift", check="drift", dataset="wh:activity") == expected_key()


def test_a_breach_that_spreads_or_worsens_updates_the_same_alert(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, min_severity="warn", retry=FAST)
    warn = drift_result(Status.WARN, day=0)
    assert send(notifier, warn, store, day=0) == "alert"
    assert send(notifier, drift_result(Status.FAIL, day=1), store, day=1) == "alert"  # got worse
    first, second = pd_server.events()
    assert (first["payload"]["severity"], second["payload"]["severity"]) == ("warning", "critical")
    assert first["dedup_key"] == second["dedup_key"] == expected_key()
    assert pd_server.opened == {expected_key(): 1}  # one page, updated


# --- severity ----------------------------------------------------------------------------------


def test_a_warn_below_min_severity_does_not_page(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)  # min_severity "fail"
    result = drift_result(Status.WARN)
    assert send(notifier, result, store) is None
    assert pd_server.received() == []
    assert store.deliveries(result, run_key()) == []


def test_the_severity_mapping_is_configurable(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(
        pagerduty_events_conn_id=pd_conn, severity={"fail": "error", "warn": "info"}, retry=FAST
    )
    assert notifier.severity == {"fail": "error", "error": "error", "warn": "info"}
    assert send(notifier, drift_result(Status.FAIL), store) == "alert"
    assert pd_server.events()[0]["payload"]["severity"] == "error"
    with pytest.raises(ValueError, match=r"severity\['fail'\] must be one of"):
        PagerDutyNotifier(severity={"fail": "sev1"})
    with pytest.raises(ValueError, match="severity maps our statuses"):
        PagerDutyNotifier(severity={"pass": "info"})


def test_a_long_summary_is_cut_to_pagerdutys_1024_characters(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    result = drift_result(summary="x" * 3000)
    assert send(notifier, result, store) == "alert"  # the server rejects a summary over 1024
    summary = pd_server.events()[0]["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("...")
    assert store.deliveries(result, run_key())[0].delivered


def test_a_resolve_held_back_by_a_mute_window_is_sent_on_the_next_run_after_it(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, mute=[("0 2 * * *", "4h")], retry=FAST)
    notifier.clock = lambda: datetime(2026, 11, 6, 1, 0, tzinfo=UTC)  # outside 02:00-06:00
    assert send(notifier, drift_result(day=0), store, day=0) == "alert"
    notifier.clock = lambda: datetime(2026, 11, 7, 3, 0, tzinfo=UTC)  # inside
    assert send(notifier, drift_result(Status.PASS, day=1), store, day=1) is None
    assert [e["event_action"] for e in pd_server.events()] == ["trigger"]
    (held,) = store.deliveries(drift_result(Status.PASS, day=1), run_key(1))
    assert (held.kind, held.delivered) == ("silenced", False)
    notifier.clock = lambda: datetime(2026, 11, 8, 7, 0, tzinfo=UTC)  # after
    assert send(notifier, drift_result(Status.PASS, day=2), store, day=2) == "recovery"
    trigger, resolve = pd_server.events()
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
    assert pd_server.alerts == {expected_key(): "resolved"}


# --- retries and errors ------------------------------------------------------------------------


def test_429_then_202_is_retried_after_the_servers_retry_after(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    pd_server.script(Reply(429, {"status": "throttle event"}, headers={"Retry-After": "0.3"}))
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    result = drift_result()
    assert send(notifier, result, store) == "alert"
    first, second = pd_server.received()
    assert second.at - first.at >= 0.3
    assert first.json == second.json
    (delivery,) = store.deliveries(result, run_key())
    assert (delivery.delivered, delivery.attempts) == (True, 2)
    assert pd_server.alerts == {expected_key(): "triggered"}


def test_5xx_is_retried_with_backoff_until_the_attempts_run_out(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore
) -> None:
    pd_server.script(*(Reply(503, {"status": "unavailable"}) for _ in range(3)))
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    result = drift_result()
    assert send(notifier, result, store, day=0) == "alert"  # the kind due, not delivered
    times = [r.at for r in pd_server.received()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1  # 0.05 * 2**n
    (delivery,) = store.deliveries(result, run_key())
    assert not delivery.delivered and delivery.attempts == 3
    assert delivery.error is not None and "HTTP 503" in delivery.error
    # Nothing reached on-call: the next window pages again instead of de-duplicating.
    assert send(notifier, drift_result(day=1), store, day=1) == "alert"
    assert pd_server.alerts == {expected_key(): "triggered"}


def test_400_invalid_routing_key_is_not_retried_and_is_recorded(
    airflow_connection: Any, pd_server: PagerDutyServer, store: ResultsStore
) -> None:
    conn = airflow_connection(
        "mlobs_pd_wrong", conn_type="pagerduty_events", password=WRONG_KEY, extra={"base_url": pd_server.url}
    )
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=conn, retry=FAST)
    result = drift_result()
    send(notifier, result, store)
    assert len(pd_server.received()) == 1
    (delivery,) = store.deliveries(result, run_key())
    assert not delivery.delivered and delivery.attempts == 1
    assert delivery.error is not None
    assert "HTTP 400" in delivery.error and "Invalid routing key" in delivery.error
    assert WRONG_KEY not in delivery.error
    assert pd_server.alerts == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (None, "connection 'mlobs_pd_missing' is not defined"),
        ({"conn_type": "pagerduty_events"}, "Cannot get token"),
        (
            {
                "conn_type": "pagerduty_events",
                "password": ROUTING_KEY,
                "extra": {"base_url": "ftp://pd.local"},
            },
            "extra base_url must be an http(s) URL",
        ),
    ],
)
def test_an_unusable_connection_is_not_retried_and_names_it(
    airflow_connection: Any, store: ResultsStore, fields: dict[str, Any] | None, expected: str
) -> None:
    if fields is not None:
        airflow_connection("mlobs_pd_missing", **fields)
    notifier = PagerDutyNotifier(pagerduty_events_conn_id="mlobs_pd_missing", retry=FAST)
    result = drift_result()
    send(notifier, result, store)
    (delivery,) = store.deliveries(result, run_key())
    assert not delivery.delivered and delivery.attempts == 1
    assert delivery.error is not None and expected in delivery.error
    assert ROUTING_KEY not in delivery.error


def test_an_unreachable_endpoint_is_retried(airflow_connection: Any, store: ResultsStore) -> None:
    conn = airflow_connection(
        "mlobs_pd_down",
        conn_type="pagerduty_events",
        password=ROUTING_KEY,
        extra={"base_url": f"http://127.0.0.1:{free_port()}"},
    )
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=conn, retry=FAST)
    result = drift_result()
    send(notifier, result, store)
    (delivery,) = store.deliveries(result, run_key())
    assert not delivery.delivered and delivery.attempts == 3
    assert delivery.error is not None and "PagerDuty not reachable" in delivery.error


# --- the routing key stays secret --------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: Any) -> Any:
    """Everything logged at DEBUG: stdlib records (caplog, e.g. urllib's or the provider's) and
    Airflow's structlog output, which goes to stdout at the level of its per-logger table (raised
    to DEBUG here), as in tests/integration/test_notifiers.py."""
    import airflow._shared.logging.structlog as core_logging
    import airflow.sdk._shared.logging.structlog as sdk_logging

    for module in (core_logging, sdk_logging):
        monkeypatch.setitem(module.PER_LOGGER_LEVELS, "", logging.DEBUG)
    caplog.set_level(logging.DEBUG)

    def read() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
        return "\n".join([caplog.text, records, out, err])

    return read


def test_the_routing_key_appears_in_no_log_delivery_or_stored_result(
    pd_server: PagerDutyServer, pd_conn: str, store: ResultsStore, debug_logs: Any
) -> None:
    # A server that echoes the key in its error must not leak it either.
    pd_server.script(
        Reply(429, {"status": "throttle event"}, headers={"Retry-After": "0"}),
        Reply(400, {"status": "invalid event", "errors": [f"routing key {ROUTING_KEY} is disabled"]}),
    )
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    send(notifier, drift_result(day=0), store, day=0)  # 429, then 400 echoing the key
    send(notifier, drift_result(day=1), store, day=1)  # triggered
    send(notifier, drift_result(Status.PASS, day=2), store, day=2)  # resolved
    assert [e["event_action"] for e in pd_server.events()] == ["trigger", "trigger", "trigger", "resolve"]
    assert pd_server.alerts == {expected_key(): "resolved"}

    failed = store.deliveries(drift_result(day=0), run_key(0))
    assert failed[0].error is not None and "***" in failed[0].error
    logs = debug_logs()
    assert "HTTP 400" in logs and "dedup_key" in logs and "PagerDuty accepted resolve" in logs
    with store.engine.connect() as conn:
        stored = [
            json.dumps([list(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))], default=str)
            for table in sa.inspect(conn).get_table_names()
        ]
    assert any("pagerduty:mlobs_pd" in text for text in stored)
    for text in (logs, *stored):
        assert ROUTING_KEY not in text


# --- as an on_failure_callback -----------------------------------------------------------------


def test_as_a_failure_callback_it_triggers_on_the_checks_incident_key(
    pd_server: PagerDutyServer, pd_conn: str
) -> None:
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, retry=FAST)
    result = drift_result()
    notifier.notify(ctx(exception=CheckBreachError(result)))
    notifier.notify(ctx(exception=RuntimeError("warehouse down")))
    breach, other = pd_server.events()
    assert breach["dedup_key"] == expected_key()  # the same incident as the check's own alerts
    assert breach["payload"]["severity"] == "critical"
    assert other["dedup_key"] == incident_key(dag_id="ml", task_id="drift", check="task", dataset="ml.drift")
    assert other["payload"]["severity"] == "error"
    assert "warehouse down" in other["payload"]["summary"]


def test_as_a_dags_failure_callback_it_pages_one_incident_per_dag(
    pd_server: PagerDutyServer, pd_conn: str, airflow_connection: Any, tmp_path: Path
) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    results = airflow_connection("mlobs_pd_results", conn_type="sqlite", host=str(tmp_path / "cb.db"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cb.db'}")
    run_id = "scheduled__2026-11-05"
    ResultsStore(engine).save(drift_result(), RunKey("ml", "drift", run_id))
    engine.dispose()
    with DAG("ml", schedule=None) as dag:
        EmptyOperator(task_id="drift")
    notifier = PagerDutyNotifier(pagerduty_events_conn_id=pd_conn, results_conn_id=results, retry=FAST)
    # The context of the run's last task instance comes along: the incident is still the DAG's.
    notifier.notify({"dag": dag, "run_id": run_id, "reason": "task_failure", "ti": FakeTi(run_id=run_id)})  # type: ignore[arg-type]
    (event,) = pd_server.events()
    assert event["dedup_key"] == incident_key(dag_id="ml", task_id=None, check="dag_run", dataset="ml")
    assert event["payload"]["severity"] == "critical" and event["payload"]["component"] == "dag_run"
    assert event["payload"]["summary"].startswith(
        "FAIL: dag_run on ml: DAG run ml / scheduled__2026-11-05 failed"
    )
    assert (
        "- drift: FAIL drift: wh:activity: 5 of 6 columns drifted"
        in event["payload"]["custom_details"]["summary"]
    )


# --- parse-time weight -------------------------------------------------------------------------


def test_importing_the_notifier_loads_neither_the_providers_hooks_nor_the_client_library() -> None:
    # (Airflow itself imports the provider's package and provider info at start; its hooks pull in
    # the pagerduty client, httpx2 and aiohttp, which a DAG file never needs.)
    heavy = ("pagerduty", "airflow.providers.pagerduty.hooks.pagerduty_events", "aiohttp", "httpx2")
    code = (
        "import sys; import airflow_mlobs.notifiers; import airflow_mlobs.notifiers.pagerduty; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
