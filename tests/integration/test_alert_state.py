"""Alert state per check task (issue 16): two checks of one dataset de-duplicate separately, with a
real Slack webhook server and a real results store, and version-4 stores are migrated in place."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.notify import breach_fingerprint
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.notifiers import RetryPolicy, SlackWebhookNotifier
from airflow_mlobs.store import ALERT_STATE_TABLE, Delivery, ResultsStore, RunKey
from tests.servers import SlackServer

DAY = datetime(2026, 11, 5, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, base_delay=0.05, max_delay=1.0, timeout=5)


@pytest.fixture
def webhook_conn(slack: SlackServer, airflow_connection: Any) -> str:
    return str(
        airflow_connection(
            "mlobs_state_hook",
            conn_type="slackwebhook",
            host=f"{slack.url}/services",
            password="T0/B0/tok1234",
        )
    )


def quality(column: str, day: int, status: Status = Status.FAIL, partition: str | None = None) -> CheckResult:
    metrics: dict[str, Any] = {} if partition is None else {"partition": partition}
    return CheckResult(
        check="quality",
        dataset="wh:orders",
        status=status,
        summary=f"wh:orders: {column} {'has nulls' if status is not Status.PASS else 'ok'}",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        metrics=metrics,
        findings=(Finding(column, "null_share", status, value=0.3, threshold=0.01),),
    )


def run_key(task: str, day: int, map_index: int = -1) -> RunKey:
    return RunKey(dag_id="orders", task_id=task, run_id=f"scheduled__{day}", map_index=map_index)


def send(notifier: SlackWebhookNotifier, result: CheckResult, store: ResultsStore, run: RunKey) -> str | None:
    store.save(result, run)
    return notifier.send_result(result, {}, store, run)


def test_two_quality_checks_on_one_dataset_are_each_sent_once(
    slack: SlackServer, webhook_conn: str, store: ResultsStore
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, renotify_after="7d", retry=FAST)
    kinds = []
    for day in range(3):
        kinds.append(send(notifier, quality("amount", day), store, run_key("quality_amount", day)))
        kinds.append(send(notifier, quality("customer_id", day), store, run_key("quality_customers", day)))
    # Each check task alerts once; both breaches persisting for two more days send nothing more.
    assert kinds == ["alert", "alert", None, None, None, None]
    assert len(slack.received()) == 2
    # One recovers: a recovery for it alone; the other's breach is still de-duplicated.
    assert (
        send(notifier, quality("amount", 3, Status.PASS), store, run_key("quality_amount", 3)) == "recovery"
    )
    assert send(notifier, quality("customer_id", 3), store, run_key("quality_customers", 3)) is None


def test_mapped_partitions_keep_their_own_state(
    slack: SlackServer, webhook_conn: str, store: ResultsStore
) -> None:
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=webhook_conn, retry=FAST)
    kinds = []
    for day in range(2):
        for index, part in enumerate(("eu", "us")):
            result = quality("amount" if part == "eu" else "tax", day, partition=part)
            kinds.append(send(notifier, result, store, run_key("quality", day, map_index=index)))
    assert kinds == ["alert", "alert", None, None]
    # The partition keys the state, not the map index: the list of partitions reordered next day
    # (us first) still de-duplicates.
    assert (
        send(notifier, quality("tax", 2, partition="us"), store, run_key("quality", 2, map_index=0)) is None
    )


def test_version_4_alert_state_is_migrated_in_place(tmp_path: Path) -> None:
    """A v4 store where two tasks shared one row (the bug) and a row no stored result explains: the
    shared row goes to the task whose latest breach it holds, the other stays readable by every
    task as before."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'v4.db'}")
    store = ResultsStore(engine)
    store.ensure_table()
    a, b = quality("amount", 0), quality("customer_id", 0)
    store.save(a, run_key("quality_amount", 0))
    store.save(b, run_key("quality_customers", 0))
    store.record_delivery(
        b, run_key("quality_customers", 0), Delivery("slack-webhook:hook", "alert", True, 1)
    )
    now = DAY.isoformat()
    shared = {
        "open": True,
        "fingerprint": breach_fingerprint(b),
        "status": "fail",
        "consecutive": 1,
        "escalated": False,
        "first_sent": now,
        "last_sent": now,
    }
    orphan = {**shared, "fingerprint": "0123456789abcdef"}
    with engine.begin() as conn:
        # Make the tables version 4: the alert state without its task column, old keys.
        conn.execute(sa.text(f"DROP TABLE {ALERT_STATE_TABLE}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {ALERT_STATE_TABLE} (state_key VARCHAR(768) PRIMARY KEY, channel VARCHAR(256) NOT NULL, "
                "check_name VARCHAR(64) NOT NULL, dataset VARCHAR(512) NOT NULL, state_json TEXT NOT NULL, "
                "updated_at DATETIME NOT NULL)"
            )
        )
        for channel, check, dataset, state in (
            ("slack-webhook:hook", "quality", "wh:orders", shared),
            ("slack-webhook:hook", "drift", "wh:gone", orphan),
        ):
            conn.execute(
                sa.text(f"INSERT INTO {ALERT_STATE_TABLE} VALUES (:k, :c, :n, :d, :s, :u)"),
                {
                    "k": f"{channel}|{check}|{dataset}",
                    "c": channel,
                    "n": check,
                    "d": dataset,
                    "s": json.dumps(state),
                    "u": now,
                },
            )
        conn.execute(sa.text("UPDATE mlobs_schema_version SET version = 4"))
    engine.dispose()

    upgraded = ResultsStore(sa.create_engine(f"sqlite:///{tmp_path / 'v4.db'}"))
    upgraded.ensure_table()
    assert upgraded.schema_version() is not None and upgraded.schema_version() >= 5
    owner = run_key("quality_customers", 1).alert_scope(b)
    other = run_key("quality_amount", 1).alert_scope(a)
    assert upgraded.alert_state("slack-webhook:hook", "quality", "wh:orders", task=owner) == shared
    # The other task no longer reads the row it never wrote.
    assert upgraded.alert_state("slack-webhook:hook", "quality", "wh:orders", task=other) is None
    # The unexplained row stays, read by any task of its check and dataset until it writes its own.
    unexplained = upgraded.alert_state("slack-webhook:hook", "drift", "wh:gone", task="x|y|-1")
    assert unexplained == orphan
    with upgraded.engine.connect() as conn:
        keys = sorted(conn.execute(sa.text(f"SELECT state_key FROM {ALERT_STATE_TABLE}")).scalars())
    assert keys == ["slack-webhook:hook|drift|wh:gone", f"slack-webhook:hook|quality|wh:orders|task={owner}"]
