"""Bad input for the retraining gate, the notifiers and the ``[mlobs]`` settings (issue 12).

Literal arguments are checked when the DAG is built: a ``ValueError`` naming the task (or the
notifier), the argument and the allowed values, so the DAG fails to import instead of a gate that
never opens or always does. Templated ones are checked once rendered, at delivery: an undelivered
message recorded with the reason, never retried. The ``[mlobs]`` options are an ``MlobsInputError``
naming the option and the bad value. Connection errors name the connection only when they come from
it: a suite file missing while connected is not blamed on the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.notifiers import EmailNotifier, RetryPolicy, SlackApiNotifier, SlackWebhookNotifier
from airflow_mlobs.operators.gate import RetrainGateOperator
from airflow_mlobs.store import ResultsStore, RunKey

RUN = RunKey(dag_id="ml", task_id="drift", run_id="scheduled__2026-11-05")

# --- the gate's policy at construction --------------------------------------------------------

GATE_CASES: list[Any] = [
    pytest.param({"drift_share": 0}, r"drift_share must be in \(0, 1\].*got 0", id="drift_share-zero"),
    pytest.param(
        {"drift_share": -0.1}, r"drift_share must be in \(0, 1\].*got -0.1", id="drift_share-negative"
    ),
    pytest.param(
        {"drift_share": 1.5}, r"drift_share must be in \(0, 1\].*got 1.5", id="drift_share-above-one"
    ),
    pytest.param(
        {"drift_share": "half"}, r"drift_share must be a share in \(0, 1\].*'half'", id="drift_share-text"
    ),
    pytest.param(
        {"drift_share": float("nan")}, r"drift_share must be a share in \(0, 1\].*nan", id="drift_share-nan"
    ),
    pytest.param(
        {"drift_share": True}, r"drift_share must be a share in \(0, 1\].*True", id="drift_share-bool"
    ),
    pytest.param(
        {"performance_drop": 0}, r"performance_drop must be a positive number.*got 0", id="drop-zero"
    ),
    pytest.param(
        {"performance_drop": -0.05}, r"performance_drop must be a positive number.*-0.05", id="drop-negative"
    ),
    pytest.param(
        {"performance_drop": "5%"}, r"performance_drop must be a positive number.*'5%'", id="drop-text"
    ),
    pytest.param(
        {"consecutive_windows": 0},
        r"consecutive_windows must be an integer of at least 1, got 0",
        id="windows-zero",
    ),
    pytest.param(
        {"consecutive_windows": 1.5},
        r"consecutive_windows must be an integer of at least 1, got 1.5",
        id="windows-float",
    ),
    pytest.param(
        {"consecutive_windows": "2"},
        r"consecutive_windows must be an integer of at least 1, got '2'",
        id="windows-text",
    ),
    pytest.param({"cooldown": "-1d"}, r"cooldown: '-1d' is not a duration", id="cooldown-negative-text"),
    pytest.param(
        {"cooldown": -60}, r"cooldown: must not be negative, got -60", id="cooldown-negative-seconds"
    ),
    pytest.param({"cooldown": "soon"}, r"cooldown: 'soon' is not a duration", id="cooldown-not-a-duration"),
    pytest.param({"require": "most"}, r"require must be 'any' or 'all', got 'most'", id="require-unknown"),
    pytest.param(
        {"critical_features": [""]},
        r"critical_features must be a list of column names",
        id="critical-empty-name",
    ),
    pytest.param(
        {"critical_features": [3]},
        r"critical_features must be a list of column names",
        id="critical-not-text",
    ),
    pytest.param({"drift_share": None}, r"the gate needs at least one condition", id="no-condition"),
]


@pytest.mark.parametrize(("arguments", "message"), GATE_CASES)
def test_gate_refuses_a_bad_policy_at_construction_naming_task_and_argument(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^retrain_gate_x: {message}") as caught:
        RetrainGateOperator(task_id="retrain_gate_x", **arguments)
    assert not isinstance(caught.value, MlobsInputError)  # a DAG import error, not a check result


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"drift_share": 1}, id="drift_share-one"),
        pytest.param({"drift_share": 1e-9}, id="drift_share-tiny"),
        pytest.param({"drift_share": None, "critical_features": "tenure"}, id="critical-one-name-as-text"),
        pytest.param({"cooldown": 0, "consecutive_windows": 3}, id="zero-cooldown"),
    ],
)
def test_gate_accepts_the_edges_of_the_allowed_ranges(arguments: dict[str, Any]) -> None:
    gate = RetrainGateOperator(task_id="retrain_gate_ok", **arguments)
    if arguments.get("critical_features") == "tenure":
        assert gate.policy.critical_features == ("tenure",)  # not ('t', 'e', 'n', ...)


# --- notifiers at construction ------------------------------------------------------------------


def _webhook(**options: Any) -> Any:
    return SlackWebhookNotifier(slack_webhook_conn_id="hook", **options)


NOTIFIER_CASES: list[Any] = [
    pytest.param(
        lambda: _webhook(min_severity="error"),
        r"SlackWebhookNotifier: min_severity must be 'warn' or 'fail', got 'error'",
        id="min_severity-unknown",
    ),
    pytest.param(
        lambda: _webhook(escalate_after=0),
        r"SlackWebhookNotifier: escalate_after must be an integer of at least 1 .*got 0",
        id="escalate_after-zero",
    ),
    pytest.param(
        lambda: _webhook(escalate_after="3"),
        r"escalate_after must be an integer of at least 1 .*got '3'",
        id="escalate_after-text",
    ),
    pytest.param(
        lambda: _webhook(renotify_after="0s"),
        r"SlackWebhookNotifier: renotify_after must be a positive duration.*'0s'",
        id="renotify-zero",
    ),
    pytest.param(
        lambda: _webhook(renotify_after="weekly"),
        r"SlackWebhookNotifier: renotify_after: 'weekly' is not a duration",
        id="renotify-not-a-duration",
    ),
    pytest.param(
        lambda: _webhook(renotify_after=-3600),
        r"SlackWebhookNotifier: renotify_after: must not be negative",
        id="renotify-negative",
    ),
    pytest.param(
        lambda: _webhook(only_escalations=True),
        r"SlackWebhookNotifier: only_escalations needs escalate_after",
        id="only-escalations-alone",
    ),
    pytest.param(
        lambda: _webhook(send_recovery="no"),
        r"SlackWebhookNotifier: send_recovery must be True or False, got 'no'",
        id="send_recovery-text",
    ),
    pytest.param(
        lambda: RetryPolicy(attempts=0),
        r"RetryPolicy: attempts must be an integer of at least 1, got 0",
        id="retry-attempts-zero",
    ),
    pytest.param(
        lambda: RetryPolicy(timeout=0),
        r"RetryPolicy: timeout must be a positive number of seconds, got 0",
        id="retry-timeout-zero",
    ),
    pytest.param(
        lambda: RetryPolicy(base_delay=-1),
        r"RetryPolicy: base_delay must be a non-negative number of seconds, got -1",
        id="retry-delay-negative",
    ),
    pytest.param(
        lambda: RetryPolicy(max_delay=float("inf")),
        r"RetryPolicy: max_delay must be a non-negative number",
        id="retry-delay-inf",
    ),
    pytest.param(
        lambda: _webhook(retry={"attempts": 2}),
        r"SlackWebhookNotifier: retry must be a RetryPolicy, got dict",
        id="retry-dict",
    ),
    pytest.param(
        lambda: SlackWebhookNotifier(slack_webhook_conn_id=""),
        r"slack_webhook_conn_id must be a connection id, got ''",
        id="webhook-conn-empty",
    ),
    pytest.param(
        lambda: SlackApiNotifier(slack_conn_id="api", channel=" "),
        r"SlackApiNotifier: channel must be a Slack channel name or id, got ' '",
        id="api-channel-blank",
    ),
    pytest.param(
        lambda: EmailNotifier(to=[]),
        r"EmailNotifier: to must name at least one recipient, got \[\]",
        id="email-no-recipient",
    ),
    pytest.param(
        lambda: EmailNotifier(to=["oncall"]),
        r"EmailNotifier: to must hold email addresses, got 'oncall'",
        id="email-not-an-address",
    ),
    pytest.param(
        lambda: EmailNotifier(to="a@example.com", smtp_conn_id=None),
        r"EmailNotifier: smtp_conn_id must be a connection id, got None",
        id="email-conn-none",
    ),
]


@pytest.mark.parametrize(("build", "message"), NOTIFIER_CASES)
def test_notifier_refuses_bad_settings_at_construction(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- templated notifier arguments, once rendered --------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultsStore]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    results = ResultsStore(engine)
    results.ensure_table()
    yield results
    engine.dispose()


def _breach() -> CheckResult:
    end = datetime(2026, 11, 5, tzinfo=UTC)
    return CheckResult(
        check="drift",
        dataset="wh:activity",
        status=Status.FAIL,
        summary="1 of 1 columns drifted",
        findings=(Finding("age", "wasserstein", Status.FAIL, 0.3, 0.1),),
        window_start=end - timedelta(days=1),
        window_end=end,
    )


@pytest.mark.parametrize(
    ("build", "culprit"),
    [
        pytest.param(
            lambda: SlackApiNotifier(slack_conn_id="api", channel="{{ params.channel }}"),
            ("slack_channel", "   "),
            id="api-channel-rendered-blank",
        ),
        pytest.param(
            lambda: EmailNotifier(to="{{ params.to }}", smtp_conn_id="smtp"),
            ("to", "nobody"),
            id="email-to-rendered-not-an-address",
        ),
    ],
)
def test_templated_notifier_arguments_are_checked_once_rendered(
    build: Callable[[], Any], culprit: tuple[str, str], store: ResultsStore
) -> None:
    notifier = build()
    field, rendered = culprit
    setattr(notifier, field, rendered)  # what rendering the template gave
    slept: list[float] = []
    notifier.sleep = slept.append
    result = _breach()
    store.save(result, RUN)
    assert notifier.send_result(result, {}, store, RUN) == "alert"
    [delivery] = store.deliveries(result, RUN)
    name = "channel" if field == "slack_channel" else field
    assert (delivery.delivered, delivery.attempts, slept) == (False, 0, [])
    assert (
        delivery.error is not None and f"{name} must" in delivery.error and repr(rendered) in delivery.error
    )


# --- [mlobs] settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "value", "read", "message"),
    [
        pytest.param(
            "AIRFLOW__MLOBS__RESULTS_CONN_ID",
            "my results db",
            "results",
            r"\[mlobs\] results_conn_id = 'my results db' is not a connection id",
            id="results-conn-spaces",
        ),
        pytest.param(
            "AIRFLOW__MLOBS__RESULTS_CONN_ID",
            "results;drop",
            "results",
            r"\[mlobs\] results_conn_id = 'results;drop' is not a connection id",
            id="results-conn-semicolon",
        ),
        pytest.param(
            "AIRFLOW__MLOBS__BASELINE_DIR",
            "://bucket/baselines",
            "baselines",
            r"\[mlobs\] baseline_dir = '://bucket/baselines' is not a path or a storage URL",
            id="baseline-dir-no-scheme",
        ),
        pytest.param(
            "MLOBS_BASELINE_DIR",
            "3s://bucket",
            "baselines",
            r"\$MLOBS_BASELINE_DIR = '3s://bucket' is not a path or a storage URL",
            id="baseline-env-bad-scheme",
        ),
    ],
)
def test_mlobs_settings_name_the_option_and_the_bad_value(
    env: str, value: str, read: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlobs import settings

    monkeypatch.delenv("AIRFLOW__MLOBS__BASELINE_DIR", raising=False)
    monkeypatch.setenv(env, value)
    with pytest.raises(MlobsInputError, match=message):
        if read == "results":
            settings.results_conn_id(None)
        else:
            settings.baseline_dir(None)


# --- connection errors name the connection only when they come from it ----------------------------


@pytest.fixture
def sqlite_conn(tmp_path: Path, airflow_connection: Any) -> str:
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER)"))
    engine.dispose()
    return str(airflow_connection("wh_badinput", conn_type="sqlite", host=str(path)))


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        pytest.param(
            SourceError("table missing_t does not exist"),
            "connection 'wh_badinput': table missing_t does not exist",
            id="table-prefixed",
        ),
        pytest.param(
            SourceError("file /data/suite.json does not exist"),
            "file /data/suite.json does not exist",
            id="file-not-prefixed",
        ),
        pytest.param(
            MlobsInputError("suite file /dags/suite.json does not exist"),
            "suite file /dags/suite.json does not exist",
            id="suite-file-not-prefixed",
        ),
        pytest.param(
            SourceError("connection 'wh_badinput': column x is missing"),
            "connection 'wh_badinput': column x is missing",
            id="already-named",
        ),
    ],
)
def test_connected_prefixes_only_errors_read_through_the_connection(
    raised: Exception, expected: str, sqlite_conn: str
) -> None:
    from airflow_mlobs.connections import connected

    with pytest.raises(MlobsInputError) as caught, connected(sqlite_conn):
        raise raised
    assert str(caught.value) == expected


def test_undefined_source_connection_names_it_and_how_to_add_it() -> None:
    from airflow_mlobs.connections import connected

    with (
        pytest.raises(SourceError, match=r"connection 'wh_nowhere' is not defined.*AIRFLOW_CONN_WH_NOWHERE"),
        connected("wh_nowhere"),
    ):
        pass
