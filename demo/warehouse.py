"""Builds the demo's embedded SQLite "warehouse" for a churn model, and the upstream change that
breaks it. Deterministic (fixed seeds and dates), so the demo and the tests see the same story:

- ``customer_features``: one row per customer, refreshed through the scenario (naive UTC timestamps).
- ``transactions``: events every 10 minutes until ``FEED_STOPS_AT``, then nothing (a stale feed).
- ``customer_activity``: the model's daily inputs (400 customers a day). From ``DRIFT_STARTS`` the
  customer mix shifts (younger, shorter tenure, higher spend, many more in the west region) and the
  churn rate jumps from about 10% to about 40%.
- ``churn_training``: labelled examples (features and ``churned``) from the same population, which
  the retraining DAG trains on.
- ``churn_predictions``: written by the monitoring DAG's scoring task.
- ``prediction_log`` and ``churn_labels``: what the deployed churn model predicted for the customers
  active each day (its score, the predicted class, the region; the customer id as a keyed
  pseudonym), written through ``PredictionLogger`` as a model service would, and the churn labels, which arrive
  1.5 to 3.5 days after the prediction (about 3% never do). Before ``DRIFT_STARTS`` the model is
  right about 90% of the time; on the shifted customer mix far less often. Predictions run to
  ``PREDICTIONS_END``, so the last days' labels are still on their way when the demo judges them.
  From ``BIAS_STARTS`` (after the retraining) the deployed model leans on ``region``: south's churn
  scores are lower (logit minus ``BIAS_LOGIT_SHIFT``), so south is predicted to churn at a quarter to
  a third of the other regions' rate; the labels (drawn from the true churn probability) do not change.

- ``request_log``: the model service's requests (about 3,000 a day: time, latency in milliseconds,
  HTTP status, model version, region). Latency is lognormal with a p95 of about 120 ms and about
  0.5% of requests fail with a 5xx, until ``SLOW_SERVICE_DAY``: then the service slows down (p95
  about 900 ms) and 7% of requests fail, most of them in the west region.

On 2026-11-25 an upstream bug writes ``customer_age`` = 150 for a few customers (the quality suite
catches it in the broken day's window). Then :func:`rename_customer_age` is the upstream team's
migration: ``customer_age`` becomes ``age``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

SCENARIO_START = datetime(2026, 11, 10, tzinfo=UTC)
SCENARIO_END = datetime(2026, 11, 26, tzinfo=UTC)
#: The reference period the first baseline (v1) is built from.
REFERENCE_START = datetime(2026, 11, 10, tzinfo=UTC)
REFERENCE_END = datetime(2026, 11, 20, tzinfo=UTC)
#: The customer mix shifts from here on.
DRIFT_STARTS = datetime(2026, 11, 23, tzinfo=UTC)
#: The transactions feed's last event.
FEED_STOPS_AT = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
#: Logical dates of the demo's runs. An Airflow 3 run's data interval ends at its logical date.
HEALTHY_DAY = datetime(2026, 11, 23, tzinfo=UTC)  # window 22 -> 23: all checks pass
DRIFT_DAY = datetime(2026, 11, 24, tzinfo=UTC)  # window 23 -> 24: drift, the gate starts retraining
RETRAINED_DAY = datetime(2026, 11, 25, tzinfo=UTC)  # window 24 -> 25: passes against the new baseline
BROKEN_DAY = datetime(2026, 11, 26, tzinfo=UTC)  # window 25 -> 26: stale transactions, renamed column
#: An upstream bug on this day writes an age of 150 for a few customers.
BAD_AGES_DAY = datetime(2026, 11, 25, tzinfo=UTC)
BAD_AGES = 4
#: The prediction log runs to here; labels arrive ``LABEL_DELAY_DAYS`` days later (uniform).
PREDICTIONS_END = datetime(2026, 11, 29, tzinfo=UTC)
LABEL_DELAY_DAYS = (1.5, 3.5)
#: The first model_performance run of the demo (it judges the predictions of 11-22).
LABELS_STORY_STARTS = datetime(2026, 11, 26, tzinfo=UTC)
NEVER_LABELLED = 0.03
#: Bias creep: from here on the model's scores for ``BIASED_REGION`` are lower (the days whose
#: labels have not arrived when the demo's last model_performance runs judge them).
BIAS_STARTS = datetime(2026, 11, 26, tzinfo=UTC)
BIASED_REGION = "south"
BIAS_LOGIT_SHIFT = 0.6
#: The model service slows down and fails on this day (the window ending ``SLOW_SERVICE_END``).
SLOW_SERVICE_DAY = datetime(2026, 11, 26, tzinfo=UTC)
SLOW_SERVICE_END = SLOW_SERVICE_DAY + timedelta(days=1)
REQUESTS_PER_DAY = 3_000
#: Lognormal latency: median 70 ms and sigma 0.328 put the p95 at 120 ms; on the slow day the
#: median is 535 ms (p95 about 900 ms).
LATENCY_MEDIAN_MS = 70.0
SLOW_LATENCY_MEDIAN_MS = 535.0
LATENCY_SIGMA = 0.328
#: Shares of requests answered with a 5xx: normally, and on the slow day (west, other regions).
ERROR_RATE = 0.005
SLOW_ERROR_RATE = {"west": 0.13, "other": 0.05}
PREDICTIONS_PER_DAY = 600
N_CUSTOMERS = 2_000
ROWS_PER_DAY = 400
FEATURES = ("customer_age", "tenure_months", "monthly_spend", "region")
REGIONS = ("north", "south", "east", "west")
#: The demo's pseudonym key (the model service's HMAC key for customer ids). A real deployment keeps
#: its key in a secrets backend; this one is public, so the demo's pseudonyms protect nothing.
DEMO_PSEUDONYM_KEY = "demo-only-pseudonym-key-not-a-secret"

metadata = sa.MetaData()
customer_features = sa.Table(
    "customer_features",
    metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True),
    sa.Column("customer_age", sa.Integer, nullable=False),
    sa.Column("tenure_months", sa.Integer, nullable=False),
    sa.Column("monthly_spend", sa.Float, nullable=False),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("transaction_id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),
)


def _daily_table(name: str, *, labelled: bool) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("event_time", sa.DateTime, nullable=False),
        sa.Column("customer_age", sa.Integer, nullable=False),
        sa.Column("tenure_months", sa.Integer, nullable=False),
        sa.Column("monthly_spend", sa.Float, nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        *([sa.Column("churned", sa.Integer, nullable=False)] if labelled else []),
    )


customer_activity = _daily_table("customer_activity", labelled=False)
churn_training = _daily_table("churn_training", labelled=True)
request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("request_id", sa.Integer, primary_key=True),
    sa.Column("requested_at", sa.DateTime, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("region", sa.String(16), nullable=False),
)


def churn_probability(age: Any, tenure: Any, spend: Any, west: Any) -> Any:
    """The true churn probability the scenario draws labels from."""
    z = -0.65 - 0.03 * (age - 45) - 0.04 * tenure + 0.01 * (spend - 60) + 0.8 * west
    return 1.0 / (1.0 + np.exp(-z))


def deployed_model_score(age: Any, tenure: Any, spend: Any) -> Any:
    """The deployed churn model (v1): a logistic model fitted on the old customer mix, which knows
    nothing of regions."""
    z = -0.5 - 0.03 * (age - 45) - 0.04 * tenure + 0.01 * (spend - 60)
    return 1.0 / (1.0 + np.exp(-z))


def _population(rng: np.random.Generator, day: datetime, n: int) -> dict[str, Any]:
    """``n`` customers active on ``day``: the old mix before ``DRIFT_STARTS``, the new one after."""
    if day >= DRIFT_STARTS:
        age = rng.integers(18, 46, n)
        tenure = rng.integers(1, 31, n)
        spend = rng.gamma(2.0, 40.0, n)
        region = rng.choice(len(REGIONS), n, p=[0.15, 0.15, 0.2, 0.5])
    else:
        age = rng.integers(18, 81, n)
        tenure = rng.integers(1, 121, n)
        spend = rng.gamma(2.0, 30.0, n)
        region = rng.choice(len(REGIONS), n, p=[0.3, 0.3, 0.2, 0.2])
    seconds = np.sort(rng.integers(0, 86_400, n))
    return {
        "customer_id": rng.integers(1, N_CUSTOMERS + 1, n),
        "event_time": [(day + timedelta(seconds=int(s))).replace(tzinfo=None) for s in seconds],
        "customer_age": age,
        "tenure_months": tenure,
        "monthly_spend": np.round(spend, 2),
        "region": np.asarray(REGIONS)[region],
    }


def _rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
    names = list(columns)
    return [
        {
            name: (value.item() if hasattr(value, "item") else value)
            for name, value in zip(names, values, strict=True)
        }
        for values in zip(*columns.values(), strict=True)
    ]


def build(path: str | Path) -> str:
    """Create the warehouse file afresh; returns its SQLAlchemy URL."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    rng = np.random.default_rng(7)
    minutes = int((SCENARIO_END - SCENARIO_START).total_seconds() // 60)
    customers = [
        {
            "customer_id": i,
            "customer_age": int(rng.integers(18, 80)),
            "tenure_months": int(rng.integers(1, 120)),
            "monthly_spend": round(float(rng.gamma(2.0, 30.0)), 2),
            "region": str(rng.choice(REGIONS)),
            "updated_at": (SCENARIO_START + timedelta(minutes=int(rng.integers(0, minutes)))).replace(
                tzinfo=None
            ),
        }
        for i in range(1, N_CUSTOMERS + 1)
    ]
    steps = int((FEED_STOPS_AT - SCENARIO_START).total_seconds() // 600) + 1
    events = [
        {
            "transaction_id": i + 1,
            "customer_id": int(rng.integers(1, N_CUSTOMERS + 1)),
            "amount": round(float(rng.gamma(2.0, 20.0)), 2),
            "event_time": (SCENARIO_START + timedelta(minutes=10 * i)).replace(tzinfo=None),
        }
        for i in range(steps)
    ]
    activity: list[dict[str, Any]] = []
    training: list[dict[str, Any]] = []
    day = SCENARIO_START
    while day < SCENARIO_END:
        rows = _rows(_population(rng, day, ROWS_PER_DAY))
        if day == BAD_AGES_DAY:
            for row in rows[:BAD_AGES]:
                row["customer_age"] = 150
        activity += rows
        labelled = _population(rng, day, ROWS_PER_DAY)
        p = churn_probability(
            labelled["customer_age"],
            labelled["tenure_months"],
            labelled["monthly_spend"],
            labelled["region"] == "west",
        )
        labelled["churned"] = (rng.random(ROWS_PER_DAY) < p).astype(int)
        training += _rows(labelled)
        day += timedelta(days=1)
    predictions, labels = _prediction_log()
    requests = _request_log()
    with engine.begin() as conn:
        conn.execute(request_log.insert(), requests)
        conn.execute(customer_features.insert(), customers)
        conn.execute(transactions.insert(), events)
        conn.execute(customer_activity.insert(), activity)
        conn.execute(churn_training.insert(), training)
    record_predictions(engine, predictions, labels)
    engine.dispose()
    return url


def record_predictions(
    engine: sa.Engine, predictions: list[dict[str, Any]], labels: list[dict[str, Any]]
) -> None:
    """Write the deployed model's predictions and their labels the way a model service would:
    through ``PredictionLogger``, customer ids as keyed pseudonyms (``DEMO_PSEUDONYM_KEY``), in the
    recorder's layout (``score``, ``predicted_class``; labels in ``label``)."""
    from airflow_mlobs.recorder import PredictionLogger

    with PredictionLogger(
        engine,
        table="prediction_log",
        labels_table="churn_labels",
        model_version="v1",
        pseudonymize=["customer_id"],
        key=DEMO_PSEUDONYM_KEY,
    ) as logger:
        logger.log_batch(
            {
                "customer_id": [p["customer_id"] for p in predictions],
                "region": [p["region"] for p in predictions],
            },
            scores=[p["churn_score"] for p in predictions],
            predicted_classes=[p["predicted_churn"] for p in predictions],
            prediction_ids=[p["prediction_id"] for p in predictions],
            predicted_at=[p["predicted_at"].replace(tzinfo=UTC) for p in predictions],
        )
        logger.log_labels(
            [label["prediction_id"] for label in labels],
            [label["churned"] for label in labels],
            labelled_at=[label["labelled_at"].replace(tzinfo=UTC) for label in labels],
        )


def _prediction_log() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The deployed model's predictions from ``SCENARIO_START`` to ``PREDICTIONS_END`` and their
    late labels (a separate random stream, so the other tables do not depend on it)."""
    rng = np.random.default_rng(11)
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    day = SCENARIO_START
    while day < PREDICTIONS_END:
        people = _population(rng, day, PREDICTIONS_PER_DAY)
        score = deployed_model_score(people["customer_age"], people["tenure_months"], people["monthly_spend"])
        if day >= BIAS_STARTS:  # no random draws here: the other days' rows stay the same
            biased = people["region"] == BIASED_REGION
            lowered = 1.0 / (1.0 + np.exp(-(np.log(score / (1.0 - score)) - BIAS_LOGIT_SHIFT)))
            score = np.where(biased, lowered, score)
        truth = churn_probability(
            people["customer_age"],
            people["tenure_months"],
            people["monthly_spend"],
            people["region"] == "west",
        )
        churned = rng.random(PREDICTIONS_PER_DAY) < truth
        delay_days = rng.uniform(*LABEL_DELAY_DAYS, PREDICTIONS_PER_DAY)
        labelled = rng.random(PREDICTIONS_PER_DAY) >= NEVER_LABELLED
        for i in range(PREDICTIONS_PER_DAY):
            pid = len(predictions) + 1
            at = people["event_time"][i]
            predictions.append(
                {
                    "prediction_id": pid,
                    "customer_id": int(people["customer_id"][i]),
                    "predicted_at": at,
                    "model_version": "v1",
                    "churn_score": round(float(score[i]), 6),
                    "predicted_churn": int(score[i] >= 0.5),
                    "region": str(people["region"][i]),
                }
            )
            if labelled[i]:
                labels.append(
                    {
                        "prediction_id": pid,
                        "churned": int(churned[i]),
                        "labelled_at": at + timedelta(days=float(delay_days[i])),
                    }
                )
        day += timedelta(days=1)
    return predictions, labels


def _request_log() -> list[dict[str, Any]]:
    """The model service's requests from ``SCENARIO_START`` to ``PREDICTIONS_END`` (its own random
    stream): healthy until ``SLOW_SERVICE_DAY``, slow and failing on that day, healthy after."""
    rng = np.random.default_rng(13)
    rows: list[dict[str, Any]] = []
    day = SCENARIO_START
    while day < PREDICTIONS_END:
        slow = day == SLOW_SERVICE_DAY
        n = REQUESTS_PER_DAY
        seconds = np.sort(rng.uniform(0, 86_400, n))
        median = SLOW_LATENCY_MEDIAN_MS if slow else LATENCY_MEDIAN_MS
        latency = median * np.exp(LATENCY_SIGMA * rng.standard_normal(n))
        region = rng.choice(REGIONS, n)
        if slow:
            rate = np.where(region == "west", SLOW_ERROR_RATE["west"], SLOW_ERROR_RATE["other"])
        else:
            rate = np.full(n, ERROR_RATE)
        failed = rng.random(n) < rate
        client_error = ~failed & (rng.random(n) < 0.01)  # 4xx: the caller's fault, not an error
        status = np.where(failed, 503, np.where(client_error, 400, 200))
        for i in range(n):
            rows.append(
                {
                    "request_id": len(rows) + 1,
                    "requested_at": (day + timedelta(seconds=float(seconds[i]))).replace(tzinfo=None),
                    "latency_ms": round(float(latency[i]), 2),
                    "status_code": int(status[i]),
                    "model_version": "v1",
                    "region": str(region[i]),
                }
            )
        day += timedelta(days=1)
    return rows


def rename_customer_age(url: str) -> None:
    """The upstream team's migration: ``customer_age`` becomes ``age`` (same type)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE customer_features RENAME COLUMN customer_age TO age"))
    engine.dispose()
