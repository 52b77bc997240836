"""The in-memory, chunked performance join (``performance_summary_join``) across databases and files
against the pushed-down SQL join (``performance_summary_sql``) on the same rows in one database.

Counts must be exact (confusion counts, every histogram bin, coverage, duplicate, late and orphan
labels), sums equal within 1e-9, under both duplicate-label rules (``"latest"``, ``"earliest"``). Memory stays bounded: joining 1,000,000 predictions in chunks of
50,000 allocates a small fraction of what loading the rows would take (measured with tracemalloc,
which sees numpy and pandas buffers).
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import fields, replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.performance.metrics import multiclass_metrics
from airflow_mlobs.core.performance.summary import ClassificationSummary, MulticlassSummary, RegressionSummary
from airflow_mlobs.core.performance_settings import DuplicateLabels
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource, performance_summary_sql
from tests.integration.test_performance_sql import RULES, WINDOW, _data, _load, _reference, _rule_winners

pytestmark = pytest.mark.postgres


def _assert_same(got: Any, want: Any, *, skip: tuple[str, ...] = ()) -> None:
    assert type(got) is type(want)
    for f in fields(want):
        if f.name in skip:
            continue
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f.name
        else:
            assert a == b, f.name


def _source(schema: str | None, **extra: Any) -> PerformanceSource:
    columns: dict[str, Any] = {
        "id_column": "prediction_id",
        "prediction_time_column": "predicted_at",
        "label_column": "label",
        "label_time_column": "labelled_at",
        "score_column": "score",
    }
    return PerformanceSource(
        predictions=TableRef("predictions", schema),
        labels=TableRef("labels", schema),
        **{**columns, **extra},
    )


def _cross(source: PerformanceSource) -> PerformanceSource:
    """The same columns with the label table in SQLite (no schema)."""
    return replace(source, labels=TableRef("labels"))


def _naive(moment: Any) -> Any:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _sqlite(path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}")


def _sqlite_predictions(engine: sa.Engine, data: dict[str, Any], label_type: Any = sa.Integer) -> None:
    meta = sa.MetaData()
    table = sa.Table(
        "predictions",
        meta,
        sa.Column("prediction_id", sa.BigInteger, primary_key=True),
        sa.Column("predicted_at", sa.DateTime),
        sa.Column("predicted_class", label_type),
        sa.Column("score", sa.Float),
        sa.Column("model_version", sa.Text),
        sa.Column("segment", sa.Text),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "prediction_id": int(i),
                    "predicted_at": _naive(t),
                    "predicted_class": c.item() if isinstance(c, np.generic) else c,
                    "score": None if math.isnan(s) else float(s),
                    "model_version": "v1",
                    "segment": str(g),
                }
                for i, t, c, s, g in zip(
                    data["ids"], data["times"], data["predicted"], data["score"], data["segment"], strict=True
                )
            ],
        )


def _sqlite_labels(engine: sa.Engine, data: dict[str, Any], label_type: Any = sa.Integer) -> None:
    meta = sa.MetaData()
    table = sa.Table(
        "labels",
        meta,
        sa.Column("prediction_id", sa.BigInteger),
        sa.Column("label", label_type),
        sa.Column("labelled_at", sa.DateTime),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"prediction_id": i, "label": y, "labelled_at": _naive(t)}
                for i, y, t in zip(data["label_ids"], data["label_values"], data["label_times"], strict=True)
            ],
        )


@pytest.mark.parametrize(
    ("chunksize", "duplicate_labels"),
    [(50_000, "latest"), (333, "latest"), (50_000, "earliest"), (333, "earliest")],
)
def test_postgres_predictions_sqlite_labels_equal_the_pushed_down_join(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path, chunksize: int, duplicate_labels: DuplicateLabels
) -> None:
    data = _data(np.random.default_rng(5))
    _load(pg_engine, pg_schema, data)
    labels = _sqlite(tmp_path / "labels.db")
    _sqlite_labels(labels, data)
    source = _source(pg_schema, predicted_column="predicted_class", segment_column="segment")
    want, want_segments, _ = performance_summary_sql(
        pg_engine, PerformanceQuery(source, WINDOW, duplicate_labels=duplicate_labels)
    )
    got, segments, stats = performance_summary_join(
        pg_engine,
        labels,
        PerformanceQuery(_cross(source), WINDOW, duplicate_labels=duplicate_labels),
        chunksize=chunksize,
    )
    assert isinstance(got, ClassificationSummary)
    _assert_same(got, want)
    _assert_same(got, _reference(data, duplicate_labels=duplicate_labels))
    cov = got.coverage
    assert cov.duplicate > 0 and cov.late > 0 and cov.orphan_labels and got.invalid_scores > 0
    assert set(segments) == set(want_segments)
    for name, summary in segments.items():
        _assert_same(summary, want_segments[name])
    # only the window's id range of labels was read, and chunks were used
    assert stats.id_range is not None and stats.label_rows < len(data["label_ids"])
    assert stats.prediction_chunks == math.ceil(cov.predictions / chunksize)


def test_sqlite_and_sqlite_with_threshold_and_boolean_labels(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path
) -> None:
    data = _data(np.random.default_rng(6), n=2500)
    data["label_values"] = [bool(v) for v in data["label_values"]]
    _load(pg_engine, pg_schema, data, label_type="BOOLEAN")
    preds, labels = _sqlite(tmp_path / "p.db"), _sqlite(tmp_path / "l.db")
    _sqlite_predictions(preds, data)
    _sqlite_labels(labels, data, sa.Boolean)
    want, _, _ = performance_summary_sql(
        pg_engine, PerformanceQuery(_source(pg_schema), WINDOW, threshold=0.5)
    )
    got, _, _ = performance_summary_join(
        preds, labels, PerformanceQuery(_source(None), WINDOW, threshold=0.5), chunksize=400
    )
    _assert_same(got, want)
    # one model version only; the orphan count still looks at the whole log
    other, _, _ = performance_summary_join(
        preds,
        labels,
        PerformanceQuery(_source(None, model_version_column="model_version"), WINDOW, model_version="v2"),
    )
    assert other.coverage.predictions == 0 and other.coverage.orphan_labels == want.coverage.orphan_labels
    # without the id range: every label up to the cut-off is read, same summary
    full, _, stats = performance_summary_join(
        preds, labels, PerformanceQuery(_source(None), WINDOW), restrict_label_ids=False
    )
    _assert_same(full, want)
    assert stats.id_range is None


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_regression_across_databases(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path, duplicate_labels: DuplicateLabels
) -> None:
    rng = np.random.default_rng(7)
    data = _data(rng, n=3000)
    truth = rng.gamma(2.0, 10.0, len(data["ids"])).round(1)
    truth[rng.random(len(truth)) < 0.05] = 0.0
    data["score"] = truth + rng.normal(0.5, 3.0, len(truth))
    value_of = dict(zip(data["ids"].tolist(), truth.tolist(), strict=True))
    data["label_values"] = [
        value_of.get(i, 1.0) + (0 if k % 7 else 0.25) for k, i in enumerate(data["label_ids"])
    ]
    _load(pg_engine, pg_schema, data, label_type="DOUBLE PRECISION")
    labels = _sqlite(tmp_path / "labels.db")
    _sqlite_labels(labels, data, sa.Float)
    options: dict[str, Any] = {"task": "regression", "duplicate_labels": duplicate_labels}
    want, _, _ = performance_summary_sql(pg_engine, PerformanceQuery(_source(pg_schema), WINDOW, **options))
    got, _, _ = performance_summary_join(
        pg_engine, labels, PerformanceQuery(_cross(_source(pg_schema)), WINDOW, **options), chunksize=700
    )
    assert isinstance(got, RegressionSummary)
    _assert_same(got, want)
    _assert_same(got, _reference(data, regression=True, duplicate_labels=duplicate_labels))
    assert got.zero_labels > 0 and got.coverage.duplicate > 0


def test_files_on_either_side(pg_engine: sa.Engine, pg_schema: str, tmp_path: Path) -> None:
    data = _data(np.random.default_rng(8), n=3000)
    _load(pg_engine, pg_schema, data)
    preds_file, labels_file = tmp_path / "predictions.parquet", tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "prediction_id": data["ids"],
            "predicted_at": pd.to_datetime(data["times"], utc=True),
            "predicted_class": data["predicted"],
            "score": data["score"],
            "segment": data["segment"],
        }
    ).to_parquet(preds_file, row_group_size=500)
    pd.DataFrame(
        {
            "prediction_id": data["label_ids"],
            "label": data["label_values"],
            "labelled_at": [_naive(t).isoformat(sep=" ") for t in data["label_times"]],
        }
    ).to_csv(labels_file, index=False)
    source = _source(pg_schema, predicted_column="predicted_class", segment_column="segment")
    want, want_segments, _ = performance_summary_sql(pg_engine, PerformanceQuery(source, WINDOW))
    for preds, labels in ((preds_file, labels_file), (pg_engine, labels_file), (preds_file, pg_engine)):
        got, segments, _ = performance_summary_join(
            preds, labels, PerformanceQuery(source, WINDOW), chunksize=256
        )
        _assert_same(got, want)
        assert {k: v.coverage for k, v in segments.items()} == {
            k: v.coverage for k, v in want_segments.items()
        }


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_multiclass_across_databases(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path, duplicate_labels: DuplicateLabels
) -> None:
    data = _data(np.random.default_rng(9), n=3000)
    rng = np.random.default_rng(10)
    data["predicted"] = rng.integers(0, 4, len(data["ids"]))
    data["label_values"] = [int(v) for v in rng.integers(0, 4, len(data["label_ids"]))]
    _load(pg_engine, pg_schema, data)
    labels = _sqlite(tmp_path / "labels.db")
    _sqlite_labels(labels, data, sa.Float)  # 1.0 in one database is the class "1" of the other
    source = _source(pg_schema, predicted_column="predicted_class", score_column=None)
    options: dict[str, Any] = {"task": "multiclass", "duplicate_labels": duplicate_labels}
    want, _, _ = performance_summary_sql(pg_engine, PerformanceQuery(source, WINDOW, **options))
    got, _, _ = performance_summary_join(
        pg_engine, labels, PerformanceQuery(_cross(source), WINDOW, **options), chunksize=500
    )
    assert isinstance(got, MulticlassSummary) and isinstance(want, MulticlassSummary)
    _assert_same(got, want)
    assert got.labelled > 500 and {a for a, _, _ in got.cells} == {"0", "1", "2", "3"}
    # the pushed-down confusion matrix equals numpy's on the same rows (the rule's label by the cut-off)
    in_window = np.array([WINDOW.prediction_start <= t < WINDOW.prediction_end for t in data["times"]])
    winners, counts, _ = _rule_winners(data, duplicate_labels)
    ids, guesses = data["ids"][in_window], data["predicted"][in_window]
    labelled = np.array([int(i) in winners for i in ids])
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, ([winners[int(i)] for i in ids[labelled]], guesses[labelled]), 1)
    classes, pushed = want.matrix()
    assert classes == ("0", "1", "2", "3") and (pushed == matrix).all()
    assert want.coverage.labelled == labelled.sum() and want.coverage.predictions == len(ids)
    assert want.coverage.duplicate == sum(1 for i in ids if counts.get(int(i), 0) > 1) > 0
    metrics = multiclass_metrics(want)
    assert metrics["accuracy"].value == pytest.approx(np.trace(matrix) / matrix.sum())


def test_operator_joins_across_connections_and_files(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path, airflow_connection: Any
) -> None:
    from airflow_mlobs.operators import PerformanceCheckOperator
    from tests.conftest import pg_connection_fields

    data = _data(np.random.default_rng(12), n=3000)
    _load(pg_engine, pg_schema, data)
    labels_db = tmp_path / "labels.db"
    _sqlite_labels(_sqlite(labels_db), data)
    airflow_connection("preds_pg", **pg_connection_fields())
    airflow_connection("labels_lite", conn_type="sqlite", host=str(labels_db))
    labels_file = tmp_path / "labels.parquet"
    pd.DataFrame(
        {
            "prediction_id": data["label_ids"],
            "label": data["label_values"],
            "labelled_at": pd.to_datetime(data["label_times"], utc=True),
        }
    ).to_parquet(labels_file)
    common: dict[str, Any] = {
        "conn_id": "preds_pg",
        "predictions_table": f"{pg_schema}.predictions",
        "prediction_time_column": "predicted_at",
        "label_time_column": "labelled_at",
        "predicted_column": "predicted_class",
        "score_column": "score",
        "label_delay": "7d",
        "baseline": {"accuracy": 0.99},
        "max_drop": 0.05,
        "chunksize": 1000,
    }
    context = {"data_interval_start": WINDOW.prediction_start + timedelta(days=7)}
    context["data_interval_end"] = context["data_interval_start"] + timedelta(days=1)
    want, _, _ = performance_summary_sql(
        pg_engine, PerformanceQuery(_source(pg_schema, predicted_column="predicted_class"), WINDOW)
    )
    results = [
        PerformanceCheckOperator(task_id=task_id, **common, **extra).evaluate(context)  # type: ignore[arg-type]
        for task_id, extra in (
            ("lite", {"label_conn_id": "labels_lite", "labels_table": "labels"}),
            ("file", {"labels_path": str(labels_file)}),
        )
    ]
    for result in results:
        assert result.status is Status.FAIL  # accuracy is far below the 0.99 baseline
        assert result.metrics["predictions"] == want.coverage.predictions
        assert result.metrics["labelled"] == want.coverage.labelled
        assert result.metrics["orphan_labels"] == want.coverage.orphan_labels
        assert result.metrics["value"] == pytest.approx((want.tp + want.tn) / want.labelled)
    broken = PerformanceCheckOperator(
        task_id="broken", label_conn_id="labels_lite", labels_table="nope", **common
    )
    with pytest.raises(
        SourceError, match=r"labels on connection 'labels_lite' in memory: .*nope does not exist"
    ):
        broken.evaluate(context)  # type: ignore[arg-type]


def test_missing_column_and_mismatched_ids_name_the_source(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path
) -> None:
    data = _data(np.random.default_rng(1), n=50)
    _load(pg_engine, pg_schema, data)
    labels = _sqlite(tmp_path / "labels.db")
    _sqlite_labels(labels, data)
    with pytest.raises(SourceError, match=r"label column 'outcome' not found in table labels"):
        performance_summary_join(
            pg_engine, labels, PerformanceQuery(_cross(_source(pg_schema, label_column="outcome")), WINDOW)
        )
    with labels.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE text_labels (prediction_id TEXT, label INT, labelled_at DATETIME)")
        )
    bad = PerformanceSource(
        TableRef("predictions", pg_schema),
        TableRef("text_labels"),
        "prediction_id",
        "predicted_at",
        "label",
        "labelled_at",
        score_column="score",
    )
    with pytest.raises(SourceError, match=r"give ids of one type"):
        performance_summary_join(pg_engine, labels, PerformanceQuery(bad, WINDOW))
    with pytest.raises(SourceError, match=r"does not exist"):
        performance_summary_join(
            pg_engine, tmp_path / "nope.parquet", PerformanceQuery(_source(pg_schema), WINDOW)
        )


def test_one_million_predictions_join_in_bounded_memory(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path
) -> None:
    rows = 1_000_000
    start = WINDOW.prediction_start
    with pg_engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.42)"))
        conn.execute(
            sa.text(
                f'CREATE TABLE "{pg_schema}".predictions AS SELECT g AS prediction_id, '
                "CAST(:start AS TIMESTAMPTZ) + (g % 86400) * INTERVAL '1 second' AS predicted_at, "
                "random() AS score, (g % 4)::text AS segment FROM generate_series(1, :n) g"
            ),
            {"start": start, "n": rows},
        )
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".predictions'))
    # 900,000 labels (every id not divisible by 10) in SQLite, three days after the prediction
    labels = _sqlite(tmp_path / "labels.db")
    base = _naive(start + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    with labels.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE labels (prediction_id BIGINT, label INTEGER, labelled_at DATETIME)")
        )
        conn.execute(
            sa.text(
                "INSERT INTO labels WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
                "SELECT x, (x * 7919) % 100 < 40, "
                "strftime('%Y-%m-%d %H:%M:%S', :base, '+' || (x % 86400) || ' seconds') || '.000000' "
                "FROM g WHERE x % 10 <> 0"
            ),
            {"n": rows, "base": base},
        )
    source = _cross(_source(pg_schema, segment_column="segment"))

    tracemalloc.start()
    try:
        got, segments, stats = performance_summary_join(
            pg_engine, labels, PerformanceQuery(source, WINDOW), chunksize=50_000
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(got, ClassificationSummary)
    assert got.coverage.predictions == rows and got.coverage.labelled == rows * 9 // 10
    assert sum(got.positives) + sum(got.negatives) == got.labelled
    assert stats.prediction_chunks == rows // 50_000 and len(segments) == 4

    # What loading the rows would take: the prediction rows (id, score, segment) and the label rows
    # (id, label, time) as pandas frames, measured the same way on a 100,000-row sample.
    sample = 100_000
    tracemalloc.start()
    with pg_engine.connect() as conn:
        frame_p = pd.read_sql(
            sa.text(f'SELECT prediction_id, score, segment FROM "{pg_schema}".predictions LIMIT {sample}'),
            conn,
        )
    with labels.connect() as conn:
        frame_l = pd.read_sql(sa.text(f"SELECT * FROM labels LIMIT {sample}"), conn)
    _, sample_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del frame_p, frame_l
    full_load = sample_peak * rows / sample
    mb = 1024 * 1024
    print(f"\nstreaming join peak {peak / mb:.1f} MB; loading all rows about {full_load / mb:.0f} MB")
    assert peak < 150 * mb, peak / mb
    assert peak < full_load / 2, (peak / mb, full_load / mb)
