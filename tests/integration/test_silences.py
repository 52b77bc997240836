"""Silences (CLI, stored in the results history) and mute windows (on a notifier), with the real
Slack webhook server and a real results store (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.cli import main
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.notifiers import RetryPolicy, SlackWebhookNotifier
from airflow_mlobs.store import SCHEMA_VERSION, SILENCES_TABLE, ResultsStore, RunKey
from tests.servers import SlackServer

DAY = datetime(2026, 11, 5, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, base_delay=0.05, max_delay=1.0, timeout=5)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def store(url: str) -> Iterator[ResultsStore]:
    engine = sa.create_engine(url)
    yield ResultsStore(engine)
    engine.dispose()


@pytest.fixture
def notifier(slack: SlackServer, airflow_connection: Any) -> SlackWebhookNotifier:
    conn = airflow_connection(
        "mlobs_silence_hook", conn_type="slackwebhook", host=f"{slack.url}/services", password="T0/B0/tok5678"
    )
    return SlackWebhookNotifier(slack_webhook_conn_id=conn, renotify_after=None, retry=FAST)


def drift(day: int, columns: tuple[str, ...] = ("age",), status: Status = Status.FAIL) -> CheckResult:
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=status,
        summary=f"wh:activity: {len(columns)} drifted",
        window_start=DAY + timedelta(days=day - 1),
        window_end=DAY + timedelta(days=day),
        findings=tuple(Finding(c, "psi", status, value=0.5, threshold=0.25) for c in columns),
    )


RUN = RunKey(dag_id="ml", task_id="drift", run_id="r")


def send(notifier: SlackWebhookNotifier, result: CheckResult, store: ResultsStore) -> str | None:
    run = RunKey("ml", "drift", f"r{result.window_end}")
    store.save(result, run)
    return notifier.send_result(result, {}, store, run)


def cli(url: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # drop the notifiers' log lines printed before
    code = main(["silence", *args, "--url", url])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_silence_holds_then_expires_and_the_persisting_breach_is_sent(
    slack: SlackServer, notifier: SlackWebhookNotifier, store: ResultsStore, url: str, capsys: Any
) -> None:
    code, out = cli(
        url,
        "add",
        "--dataset",
        "wh:*",
        "--check",
        "drift",
        "--for",
        "7d",
        "--reason",
        "upstream fixing the feed",
        "--by",
        "ana",
        capsys=capsys,
    )
    assert code == 0 and out.startswith("silence #1: drift on wh:* until ")
    code, out = cli(url, "list", "--json", capsys=capsys)
    (listed,) = json.loads(out)
    assert (
        listed["active"] and listed["created_by"] == "ana" and listed["reason"] == "upstream fixing the feed"
    )

    # Two silenced days: stored, recorded as silenced, nothing sent.
    assert [send(notifier, drift(d), store) for d in range(2)] == [None, None]
    assert slack.received() == []
    (delivery,) = store.deliveries(drift(1), RunKey("ml", "drift", f"r{drift(1).window_end}"))
    assert delivery.kind == "silenced" and not delivery.delivered
    assert delivery.error is not None and "silence #1 by ana until" in delivery.error
    assert delivery.error.startswith("alert not sent: ") and "upstream fixing the feed" in delivery.error
    assert len(store.history(check="drift")) == 2

    code, out = cli(url, "expire", "1", capsys=capsys)
    assert (code, out.strip()) == (0, "silence #1 expired")
    assert cli(url, "expire", "1", capsys=capsys)[0] == 1  # already ended
    assert cli(url, "list", capsys=capsys)[1].strip() == "no silences"
    assert "ended " in cli(url, "list", "--all", capsys=capsys)[1]

    # The breach persists after the silence: sent once, then de-duplicated.
    assert send(notifier, drift(2), store) == "alert"
    assert send(notifier, drift(3), store) is None
    assert len(slack.received()) == 1


def test_a_silence_that_ends_by_itself_lets_the_alert_out(
    slack: SlackServer, notifier: SlackWebhookNotifier, store: ResultsStore
) -> None:
    start = datetime.now(UTC)
    store.add_silence(
        dataset="wh:activity",
        check="drift",
        until=start + timedelta(hours=1),
        reason="maintenance",
        created_by="ops",
    )
    notifier.clock = lambda: start
    assert send(notifier, drift(0), store) is None
    notifier.clock = lambda: start + timedelta(hours=1, seconds=1)  # the next run, after it ended
    assert send(notifier, drift(1), store) == "alert"
    assert len(slack.received()) == 1


def test_a_column_silence_holds_only_that_column(
    slack: SlackServer, notifier: SlackWebhookNotifier, store: ResultsStore
) -> None:
    store.add_silence(
        dataset="wh:activity",
        check="drift",
        column="age",
        until=datetime.now(UTC) + timedelta(days=1),
        reason="known",
        created_by="ana",
    )
    assert send(notifier, drift(0, ("age",)), store) is None
    assert send(notifier, drift(1, ("age", "income")), store) == "alert"  # a new column breaches
    assert len(slack.received()) == 1


def test_a_recovery_is_not_silenced(
    slack: SlackServer, notifier: SlackWebhookNotifier, store: ResultsStore
) -> None:
    assert send(notifier, drift(0), store) == "alert"
    store.add_silence(
        dataset="wh:activity",
        check="*",
        until=datetime.now(UTC) + timedelta(days=1),
        reason="r",
        created_by="x",
    )
    assert send(notifier, drift(1, status=Status.PASS), store) == "recovery"
    assert len(slack.received()) == 2


def test_mute_window_holds_and_what_it_held_is_sent_after(
    slack: SlackServer, airflow_connection: Any, store: ResultsStore
) -> None:
    conn = airflow_connection(
        "mlobs_mute_hook", conn_type="slackwebhook", host=f"{slack.url}/services", password="T1/B1/tok"
    )
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=conn, mute=[("0 2 * * 6", "4h")], retry=FAST)
    saturday = datetime(2026, 11, 7, 3, 30, tzinfo=UTC)  # inside Saturday 02:00-06:00
    notifier.clock = lambda: saturday
    assert send(notifier, drift(0), store) is None
    (delivery,) = store.deliveries(drift(0), RunKey("ml", "drift", f"r{drift(0).window_end}"))
    assert delivery.kind == "silenced" and "mute window '0 2 * * 6' for 4h" in (delivery.error or "")
    assert slack.received() == []
    notifier.clock = lambda: saturday.replace(hour=6)  # the window ends at 06:00
    assert send(notifier, drift(1), store) == "alert"
    assert len(slack.received()) == 1


def test_mute_window_holds_on_the_wall_clock(
    slack: SlackServer, airflow_connection: Any, store: ResultsStore
) -> None:
    """Without a clock set: every minute's window of two minutes always holds; a New Year's minute
    window (nearly) never does."""
    conn = airflow_connection(
        "mlobs_mute2_hook", conn_type="slackwebhook", host=f"{slack.url}/services", password="T2/B2/tok"
    )
    always = SlackWebhookNotifier(slack_webhook_conn_id=conn, mute=[("* * * * *", "2m")], retry=FAST)
    assert send(always, drift(0), store) is None
    never = SlackWebhookNotifier(slack_webhook_conn_id=conn, mute=[("0 0 1 1 *", "1m")], retry=FAST)
    assert send(never, drift(1), store) == "alert"
    assert len(slack.received()) == 1


@pytest.mark.parametrize(
    ("mute", "message"),
    [
        ([("not cron", "1h")], "is not a cron expression"),
        ([("0 2 * * 6", "soon")], "mute duration"),
        ([("0 2 * * 6", "0h")], "positive duration"),
        (["0 2 * * 6"], "(cron, duration) pair"),
    ],
)
def test_bad_mute_windows_are_refused(mute: Any, message: str) -> None:
    with pytest.raises(ValueError, match="SlackWebhookNotifier") as caught:
        SlackWebhookNotifier(slack_webhook_conn_id="x", mute=mute)
    assert message in str(caught.value)


def test_cli_refuses_bad_input(url: str, capsys: Any) -> None:
    base = ["add", "--dataset", "d", "--check", "drift", "--reason", "r"]
    assert cli(url, *base, "--until", "2020-01-01", capsys=capsys)[0] == 2
    code, out = cli(url, *base, "--for", "forever", capsys=capsys)
    assert code == 2 and "--for" in out


def test_v5_store_gets_the_silences_table(url: str) -> None:
    engine = sa.create_engine(url)
    ResultsStore(engine).ensure_table()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {SILENCES_TABLE}"))
        conn.execute(sa.text("UPDATE mlobs_schema_version SET version = 5"))
    upgraded = ResultsStore(engine)
    upgraded.ensure_table()
    assert upgraded.schema_version() == SCHEMA_VERSION == 6
    assert upgraded.silences() == []
    engine.dispose()


def test_silences_and_alert_state_on_postgresql(
    slack: SlackServer, notifier: SlackWebhookNotifier, pg_engine: sa.Engine, pg_schema: str
) -> None:
    """The same on PostgreSQL (the v6 tables, per-task alert state, timezone-aware ``until``)."""
    engine = sa.create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={pg_schema}"})
    try:
        store = ResultsStore(engine)
        silence = store.add_silence(
            dataset="wh:activity",
            check="drift",
            until=datetime.now(UTC) + timedelta(hours=2),
            reason="feed fix",
            created_by="ana",
        )
        assert [s.id for s in store.silences(active_at=datetime.now(UTC))] == [silence.id]
        assert send(notifier, drift(0), store) is None
        assert store.expire_silence(silence.id) and not store.expire_silence(silence.id)
        assert send(notifier, drift(1), store) == "alert"
        assert send(notifier, drift(2), store) is None
        assert len(slack.received()) == 1
        assert store.silences(active_at=datetime.now(UTC)) == []
        assert store.silences()[0].expired_at is not None
    finally:
        engine.dispose()


def test_python_dash_m_silence_list(url: str) -> None:
    import os
    import subprocess
    import sys

    ResultsStore(sa.create_engine(url)).add_silence(
        dataset="wh:t",
        check="schema",
        until=datetime.now(UTC) + timedelta(days=1),
        reason="renaming",
        created_by="bo",
    )
    done = subprocess.run(
        [sys.executable, "-m", "airflow_mlobs", "silence", "list", "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.strip().splitlines()
    assert header.split()[:3] == ["id", "dataset", "check"]
    assert row.split()[:5] == ["1", "wh:t", "schema", "-", row.split()[4]] and row.endswith("renaming")
