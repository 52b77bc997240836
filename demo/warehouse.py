"""Builds the demo's embedded SQLite "warehouse" for a churn model, and the upstream changes that
break it: the transactions feed stops, and ``customer_age`` is renamed to ``age`` upstream.

Deterministic (fixed seed and fixed dates), so the demo and the tests see the same story:

- ``customer_features``: one row per customer, refreshed through the scenario (naive UTC timestamps).
- ``transactions``: events every 10 minutes until ``FEED_STOPS_AT``, then nothing.
- ``churn_predictions``: written by the example DAG's scoring task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

SCENARIO_START = datetime(2026, 11, 20, tzinfo=UTC)
SCENARIO_END = datetime(2026, 11, 26, tzinfo=UTC)
#: The transactions feed's last event.
FEED_STOPS_AT = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
#: Logical dates of the demo's two runs. An Airflow 3 run's data interval ends at its logical date:
#: the healthy run judges the interval ending 2026-11-25 00:00 (newest transaction 1h30m old), the
#: broken run the interval ending 2026-11-26 00:00 (newest transaction 25h30m old).
HEALTHY_DAY = datetime(2026, 11, 25, tzinfo=UTC)
BROKEN_DAY = datetime(2026, 11, 26, tzinfo=UTC)
N_CUSTOMERS = 2_000

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
            "region": str(rng.choice(["north", "south", "east", "west"])),
            # Naive timestamps in UTC, as many warehouses store them.
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
    with engine.begin() as conn:
        conn.execute(customer_features.insert(), customers)
        conn.execute(transactions.insert(), events)
    engine.dispose()
    return url


def rename_customer_age(url: str) -> None:
    """The upstream team's migration: ``customer_age`` becomes ``age`` (same type)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE customer_features RENAME COLUMN customer_age TO age"))
    engine.dispose()
