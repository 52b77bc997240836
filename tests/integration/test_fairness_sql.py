"""Fairness counts pushed down on PostgreSQL and SQLite (the performance join, GROUP BY the group
column), equal to the in-memory join and to Fairlearn on the same rows; only aggregates fetched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, equalized_odds_difference, selection_rate

from airflow_mlobs.core.fairness import attribute_report, judge_fairness
from airflow_mlobs.core.result import Status
from airflow_mlobs.sources.fairness_frame import fairness_summary_join
from airflow_mlobs.sources.fairness_sql import fairness_summary_sql
from airflow_mlobs.specs.fairness import FairnessSpec

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)


def _data(n: int = 1200, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], size=n)
    band = rng.choice(["18-30", "31-50", "51+"], size=n)
    y = rng.integers(0, 2, size=n)
    score = np.clip(rng.random(n) * np.where(region == "south", 0.5, 1.0) + 0.2 * y, 0, 1)
    labelled = rng.random(n) < 0.8
    return {"region": region, "band": band, "y": y, "score": score, "labelled": labelled}


def _load(engine: sa.Engine, schema: str | None, d: dict[str, np.ndarray], labels: bool = True) -> None:
    md = sa.MetaData(schema=schema)
    preds = sa.Table(
        "mlobs_prediction_log",
        md,
        sa.Column("prediction_id", sa.BigInteger),
        sa.Column("predicted_at", sa.DateTime(timezone=True)),
        sa.Column("score", sa.Float),
        sa.Column("region", sa.Text),
        sa.Column("band", sa.Text),
    )
    labs = sa.Table(
        "mlobs_labels",
        md,
        sa.Column("prediction_id", sa.BigInteger),
        sa.Column("label", sa.Integer),
        sa.Column("labelled_at", sa.DateTime(timezone=True)),
    )
    md.create_all(engine)
    n = len(d["y"])
    with engine.begin() as conn:
        conn.execute(
            preds.insert(),
            [
                {
                    "prediction_id": i,
                    "predicted_at": START + timedelta(seconds=60 * i),
                    "score": float(d["score"][i]),
                    "region": str(d["region"][i]),
                    "band": str(d["band"][i]),
                }
                for i in range(n)
            ],
        )
        rows = [
            {
                "prediction_id": i,
                "label": int(d["y"][i]),
                "labelled_at": START + timedelta(seconds=60 * i + 30),
            }
            for i in range(n)
            if labels and d["labelled"][i]
        ]
        if rows:
            conn.execute(labs.insert(), rows)


def _check(engine: sa.Engine, schema: str | None, d: dict[str, np.ndarray]) -> None:
    prefix = f"{schema}." if schema else ""
    spec = FairnessSpec(
        conn_id="unused",
        group_columns=("region", "band"),
        predictions_table=prefix + "mlobs_prediction_log",
        labels_table=prefix + "mlobs_labels",
    )
    query = spec.query(START, END)
    summary, stats = fairness_summary_sql(engine, query, spec.group_columns)
    assert stats.statements == 2 and stats.rows_fetched < 60  # aggregates, not 1200 rows
    assert summary == fairness_summary_join(engine, engine, query, spec.group_columns)
    yhat = (d["score"] >= 0.5).astype(int)
    frame = MetricFrame(metrics=selection_rate, y_true=d["y"], y_pred=yhat, sensitive_features=d["region"])
    rep = attribute_report("region", summary.groups["region"], min_group_size=1)
    for g, value in frame.by_group.items():
        assert rep.rates[str(g)]["selection_rate"] == pytest.approx(value, abs=1e-12)
    assert rep.gaps["disparate_impact_ratio"].value == pytest.approx(
        demographic_parity_ratio(d["y"], yhat, sensitive_features=d["region"]), abs=1e-12
    )
    m = d["labelled"]
    assert rep.gaps["equalized_odds_difference"].value == pytest.approx(
        equalized_odds_difference(d["y"][m], yhat[m], sensitive_features=d["region"][m]), abs=1e-12
    )


def test_sqlite_pushed_down_equals_memory_and_fairlearn(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    d = _data()
    _load(engine, None, d)
    _check(engine, None, d)


def test_postgres_pushed_down_equals_memory_and_fairlearn(pg_engine: sa.Engine, pg_schema: str) -> None:
    d = _data()
    _load(pg_engine, pg_schema, d)
    _check(pg_engine, pg_schema, d)


def test_no_labels_yet_selection_part_still_judges(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    d = _data()
    _load(engine, None, d, labels=False)
    spec = FairnessSpec(conn_id="unused", group_columns=("region",))
    summary, _ = fairness_summary_sql(engine, spec.query(START, END), spec.group_columns)
    status, text, findings, _ = judge_fairness(summary)
    di = next(f for f in findings if f.metric == "disparate_impact_ratio")
    assert di.status == Status.WARN and "region=south" in text
    eo = next(f for f in findings if f.metric == "equalized_odds_difference")
    assert eo.status == Status.SKIPPED and "labelled" in eo.reason
    assert status == Status.WARN
