"""Issue 14, part 3, acceptance: values planted in sensitive columns of a PostgreSQL source never
reach any output of the checks run in real Airflow (``airflow dags test``): not the results
history (every row and column of every ``mlobs_*`` table), not the baselines, not XCom, not the
Slack and email messages (real HTTP and SMTP servers on 127.0.0.1), not the task log. The same DAG
without ``sensitive_columns`` shows the planted values in each of those places, so the search
cannot pass vacuously.

Planted: an unseen category of a drift-checked column (also bad values for a quality suite), one
person's extreme income (a drift-checked numeric column, and a quality ``max``), and the segment
values of a performance check."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.conftest import pg_connection_fields
from tests.e2e.airflow_runner import DagRunOutcome, run_dag
from tests.servers import SlackServer, SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PLANTED = "PLANTED-7f3a"
PLANTED_CITY = f"{PLANTED}-city-q9d2"
PLANTED_SEGMENTS = (f"{PLANTED}-seg-alpha", f"{PLANTED}-seg-beta")
PLANTED_INCOME = 9876543.21
PLANTED_INCOME_TEXT = "9876543"
#: How messages and the log print it (``%g``).
PLANTED_INCOME_SHOWN = "9.87654e+06"
KEY = "h3-sensitive-e2e-key-0123456789abcdef"
CITIES = ("north", "south", "east", "west")


def _load(engine: sa.Engine, schema: str) -> None:
    """Features: reference on 11-01..11-03, the judged window on 11-05 with the planted city and
    income; predictions on 11-05 whose segments are the planted values, labels an hour later."""
    rng = np.random.default_rng(14)
    features = []
    for day, rows in ((datetime(2026, 11, 1, tzinfo=UTC), 3000), (datetime(2026, 11, 5, tzinfo=UTC), 1500)):
        for i in range(rows):
            city = str(rng.choice(CITIES, p=[0.4, 0.3, 0.2, 0.1]))
            if day.day == 5 and i < 300:
                city = PLANTED_CITY
            income = float(round(rng.normal(50_000, 8_000), 2))
            if day.day == 5 and i == 7:
                income = PLANTED_INCOME
            features.append({"t": day + timedelta(seconds=i * 50), "income": income, "city": city})
    preds, labels = [], []
    for i in range(1200):
        at = datetime(2026, 11, 5, tzinfo=UTC) + timedelta(seconds=i * 60)
        y = int(rng.random() < 0.4)
        predicted = y if rng.random() < 0.7 else 1 - y
        preds.append(
            {"i": i, "t": at, "c": predicted, "s": 0.8 if predicted else 0.2, "g": PLANTED_SEGMENTS[i % 2]}
        )
        labels.append({"i": i, "y": y, "t": at + timedelta(hours=1)})
    with engine.begin() as conn:
        conn.execute(
            sa.text(f'CREATE TABLE "{schema}".features (ts TIMESTAMPTZ, income DOUBLE PRECISION, city TEXT)')
        )
        conn.execute(sa.text(f'INSERT INTO "{schema}".features VALUES (:t, :income, :city)'), features)
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".predictions (prediction_id BIGINT PRIMARY KEY, predicted_at TIMESTAMPTZ, '
                "predicted_class INT, score FLOAT, customer TEXT)"
            )
        )
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".labels (prediction_id BIGINT, label INT, labelled_at TIMESTAMPTZ)'
            )
        )
        conn.execute(sa.text(f'INSERT INTO "{schema}".predictions VALUES (:i, :t, :c, :s, :g)'), preds)
        conn.execute(sa.text(f'INSERT INTO "{schema}".labels VALUES (:i, :y, :t)'), labels)


SUITE = {
    "name": "h3_sensitive.quality",
    "expectations": [
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "city", "value_set": list(CITIES)},
        },
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "income", "max_value": 200000}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "income", "max_value": 200000}},
    ],
}


def _dag(dag_id: str, schema: str, suite: Path, sensitive: bool) -> str:
    features = "['income', 'city']" if sensitive else "[]"
    segments = "['customer']" if sensitive else "[]"
    return f"""
        from datetime import UTC, datetime
        from airflow.sdk import DAG, CronDataIntervalTimetable
        from airflow_mlobs.notifiers import EmailNotifier, RetryPolicy, SlackWebhookNotifier
        from airflow_mlobs.operators import (
            BaselineOperator, DriftCheckOperator, ExpectationSuiteOperator, PerformanceCheckOperator,
            RetrainGateOperator,
        )

        FAST = RetryPolicy(attempts=2, base_delay=0.1, timeout=5)

        def notify():
            return [
                SlackWebhookNotifier(slack_webhook_conn_id="mlobs_hook", min_severity="warn", retry=FAST),
                EmailNotifier(to=["oncall@example.com"], smtp_conn_id="mlobs_smtp", min_severity="warn", retry=FAST),
            ]

        common = dict(conn_id="wh", results_conn_id="res_{dag_id}", on_breach="continue")
        with DAG(
            {dag_id!r},
            schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
            start_date=datetime(2026, 10, 1, tzinfo=UTC),
            catchup=False,
        ):
            baseline = BaselineOperator(
                task_id="baseline", baseline={dag_id!r}, version="v1", table="{schema}.features",
                timestamp_column="ts", columns=["income", "city"], kinds={{"city": "categorical"}},
                reference_start="2026-11-01T00:00:00+00:00", reference_end="2026-11-03T00:00:00+00:00",
                sensitive_columns={features}, **common,
            )
            drift = DriftCheckOperator(
                task_id="drift", baseline={dag_id!r}, table="{schema}.features", timestamp_column="ts",
                sensitive_columns={features}, notify=notify(), **common,
            )
            baseline >> drift
            ExpectationSuiteOperator(
                task_id="quality", table="{schema}.features", suite={str(suite)!r}, timestamp_column="ts",
                sensitive_columns={features}, notify=notify(), **common,
            )
            performance = PerformanceCheckOperator(
                task_id="performance", predictions_table="{schema}.predictions", labels_table="{schema}.labels",
                prediction_time_column="predicted_at", label_time_column="labelled_at",
                predicted_column="predicted_class", score_column="score", segment_column="customer",
                label_delay="0d", baseline={{"accuracy": 0.9}}, max_drop=(0.02, 0.05),
                sensitive_columns={segments}, notify=notify(), **common,
            )
            # Reads the upstream results and cites them; takes their sensitive_columns for its own.
            gate = RetrainGateOperator(
                task_id="gate", drift_share=0.3, performance_drop=0.05, results_conn_id="res_{dag_id}",
            )
            [drift, performance] >> gate
    """


@dataclass
class Outputs:
    """Every place a run's values can reach, as text, by where they were found."""

    places: dict[str, str]

    def holding(self, needle: str) -> list[str]:
        return sorted(place for place, text in self.places.items() if needle in text)


def _results_text(path: Path) -> dict[str, str]:
    """Every row, every column, of every ``mlobs_*`` table in a results database."""
    engine = sa.create_engine(f"sqlite:///{path}")
    found: dict[str, str] = {}
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("mlobs_")]
        assert tables, f"no mlobs_* tables in {path}"
        for table in tables:
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            found[f"table {table}"] = "\n".join(repr(tuple(r)) for r in rows)
    engine.dispose()
    return found


def _email_text(smtp: SmtpServer, start: int) -> str:
    parts = []
    for envelope in smtp.envelopes[start:]:
        parts.append(str(envelope.message["Subject"]))
        for part in envelope.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(str(part.get_content()))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SlackServer, SmtpServer]]:
    slack, smtp = SlackServer().start(), SmtpServer().start()
    yield slack, smtp
    slack.stop()
    smtp.stop()


@pytest.fixture(scope="module")
def runs(
    airflow_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pg_engine: sa.Engine,
    servers: tuple[SlackServer, SmtpServer],
) -> Iterator[dict[str, tuple[DagRunOutcome, Outputs]]]:
    """The DAG with sensitive_columns and the same DAG without, each run once for 2026-11-06
    (interval [11-05, 11-06)), with every output they left."""
    slack, smtp = servers
    schema = "h3_sensitive_e2e"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    _load(pg_engine, schema)
    tmp = tmp_path_factory.mktemp("h3_sensitive")
    suite = tmp / "h3_sensitive.quality.json"
    suite.write_text(json.dumps(SUITE))
    dags = tmp / "dags"
    dags.mkdir()
    baselines = tmp / "baselines"
    outcomes: dict[str, tuple[DagRunOutcome, Outputs]] = {}
    for dag_id, sensitive in (("h3_sensitive_on", True), ("h3_sensitive_off", False)):
        (dags / f"{dag_id}.py").write_text(textwrap.dedent(_dag(dag_id, schema, suite, sensitive)))
        results = tmp / f"{dag_id}.db"
        env = {
            "AIRFLOW_CONN_WH": json.dumps(pg_connection_fields()),
            f"AIRFLOW_CONN_RES_{dag_id.upper()}": json.dumps({"conn_type": "sqlite", "host": str(results)}),
            "AIRFLOW_CONN_MLOBS_HOOK": json.dumps(
                {"conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": "T0/B0/h3token"}
            ),
            "AIRFLOW_CONN_MLOBS_SMTP": json.dumps(smtp.connection_fields(from_email="mlobs@example.com")),
            "MLOBS_BASELINE_DIR": str(baselines),
            "MLOBS_PSEUDONYM_KEY": KEY,
            # The most the task log can say: whatever reaches it at DEBUG is searched too.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        }
        slack_start, smtp_start = len(slack.received()), len(smtp.envelopes)
        outcome = run_dag(airflow_db, dags, dag_id, "2026-11-06", env)
        logs = outcome.output
        log_dir = airflow_db / "logs" / f"dag_id={dag_id}"
        if log_dir.exists():
            logs += "\n".join(p.read_text(errors="replace") for p in log_dir.rglob("*") if p.is_file())
        places = {
            "task log": logs,
            "xcom": json.dumps(outcome.xcoms),
            "slack": "\n".join(r.body.decode("utf-8", "replace") for r in slack.received()[slack_start:]),
            "email": _email_text(smtp, smtp_start),
            **_results_text(results),
        }
        for path in (baselines / dag_id).glob("*.json"):
            places[f"baseline {path.name}"] = path.read_text()
        outcomes[dag_id] = (outcome, Outputs(places))
    yield outcomes
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


CHECKS = {"baseline": "pass", "drift": "fail", "quality": "fail", "performance": "fail"}


def test_the_checks_ran_and_breached(runs: dict[str, tuple[DagRunOutcome, Outputs]]) -> None:
    for dag_id, (outcome, outputs) in runs.items():
        errors = [line[:400] for line in outcome.output.splitlines() if "error" in line.lower()]
        assert outcome.returncode == 0, (dag_id, outcome.states, errors[:20])
        assert set(outcome.states.values()) == {"success"}, (dag_id, outcome.states)
        assert outcome.xcoms["gate"]["metrics"]["decision"] == "retrain", outcome.xcoms["gate"]["summary"]
        statuses = {task: outcome.xcoms[task]["status"] for task in CHECKS}
        assert statuses == CHECKS, (dag_id, {t: outcome.xcoms[t]["summary"] for t in CHECKS})
        assert outputs.places["slack"] and outputs.places["email"], dag_id  # three breaches were sent


def test_without_sensitive_columns_the_planted_values_appear_everywhere(
    runs: dict[str, tuple[DagRunOutcome, Outputs]],
) -> None:
    """The control: the same checks without sensitive_columns leak the planted values into every
    kind of output, so the search in the next test is able to find them."""
    outputs = runs["h3_sensitive_off"][1]
    for needle in (PLANTED_CITY, *PLANTED_SEGMENTS):
        found = outputs.holding(needle)
        assert {"task log", "xcom", "table mlobs_check_results"} <= set(found), (needle, found)
    assert {"xcom", "table mlobs_check_results", "table mlobs_profiles"} <= set(
        outputs.holding(PLANTED_INCOME_TEXT)
    )
    assert {"task log", "slack", "email"} <= set(outputs.holding(PLANTED_INCOME_SHOWN))
    for place in ("slack", "email"):
        assert PLANTED in outputs.places[place], place
    assert outputs.holding(PLANTED_CITY) and any(p.startswith("baseline") for p in outputs.holding("north"))


def test_with_sensitive_columns_no_planted_value_reaches_any_output(
    runs: dict[str, tuple[DagRunOutcome, Outputs]],
) -> None:
    outcome, outputs = runs["h3_sensitive_on"]
    assert {"task log", "xcom", "slack", "email", "table mlobs_check_results", "baseline v1.json"} <= set(
        outputs.places
    )
    assert "[debug" in outputs.places["task log"], "DEBUG logging was not on in the run"
    assert not outputs.holding(KEY), "the pseudonym key itself must never be shown"
    for needle in (PLANTED, PLANTED_CITY, *PLANTED_SEGMENTS, PLANTED_INCOME_TEXT, PLANTED_INCOME_SHOWN):
        leaks = {
            place: [line[:200] for line in outputs.places[place].splitlines() if needle in line][:3]
            for place in outputs.holding(needle)
        }
        assert not leaks, (needle, leaks)
    # The baseline and stored profiles hold pseudonyms, not categories ("north" is also in the
    # quality suite's value set, which is configuration, not data, and is shown as such).
    stored = [p for p in outputs.holding("north") if p.startswith("baseline") or p == "table mlobs_profiles"]
    assert not stored, stored
    # What is reported instead: the unseen share by pseudonym, counts of bad values, pseudonymous segments.
    drift = outcome.xcoms["drift"]
    assert "ps_" in json.dumps(drift) and "never saw" in json.dumps(drift)
    quality = json.dumps(outcome.xcoms["quality"])
    assert "withheld" in quality and "20% of values (300 rows)" in quality
    assert outcome.xcoms["gate"]["metrics"]["sensitive_columns"] == ["city", "customer", "income"]
    performance = outcome.xcoms["performance"]["metrics"]
    assert {s["segment"][:3] for s in performance["segments"]} == {"ps_"}
