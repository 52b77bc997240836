"""The pushed-down performance join on SQLite (the demo warehouse's database): the same single
statement as on PostgreSQL gives exactly the numpy summary of the same rows, for classification
(with segments), score-threshold classes with boolean labels, regression and multi-class, and only
aggregate rows are fetched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.performance.metrics import classification_metrics
from airflow_mlobs.core.performance.summary import ClassificationSummary, MulticlassSummary, RegressionSummary
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import PerformanceQuery, performance_summary_sql
from tests.integration.test_performance_join import (
    _assert_same,
    _source,
    _sqlite,
    _sqlite_labels,
    _sqlite_predictions,
)
from tests.integration.test_performance_sql import WINDOW, _data, _reference


def _loaded(tmp_path: Path, data: dict[str, Any], **types: Any) -> sa.Engine:
    engine = _sqlite(tmp_path / "warehouse.db")
    _sqlite_predictions(engine, data, types.get("predicted", sa.Integer))
    _sqlite_labels(engine, data, types.get("label", sa.Integer))
    return engine


def test_classification_on_sqlite_equals_numpy_with_segments(tmp_path: Path) -> None:
    data = _data(np.random.default_rng(15))
    engine = _loaded(tmp_path, data)
    source = _source(None, predicted_column="predicted_class", segment_column="segment")
    overall, segments, stats = performance_summary_sql(engine, PerformanceQuery(source, WINDOW))
    want = _reference(data)
    assert isinstance(overall, ClassificationSummary)
    _assert_same(overall, want)
    cov = overall.coverage
    assert cov.duplicate > 0 and cov.late > 0 and cov.orphan_labels and overall.invalid_scores > 0
    assert stats.statements == 1 and stats.rows_fetched < 2 * 2 * 1000 * 3 * 3
    assert stats.rows_fetched < cov.predictions  # aggregates, not the rows
    for name, summary in segments.items():
        ref = _reference(data, mask=data["segment"] == name)
        assert summary.coverage.labelled == ref.coverage.labelled
        assert summary.tp == ref.tp and summary.positives == ref.positives  # type: ignore[union-attr]
    assert classification_metrics(overall)["roc_auc"].value is not None


def test_threshold_and_boolean_labels_on_sqlite(tmp_path: Path) -> None:
    data = _data(np.random.default_rng(16), n=2000)
    data["label_values"] = [bool(v) for v in data["label_values"]]
    engine = _loaded(tmp_path, data, label=sa.Boolean)
    overall, _, _ = performance_summary_sql(engine, PerformanceQuery(_source(None), WINDOW, threshold=0.5))
    want = _reference({**data, "label_values": [int(v) for v in data["label_values"]]}, score_decides=True)
    _assert_same(overall, want)


def test_regression_on_sqlite_equals_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    data = _data(rng, n=3000)
    truth = rng.gamma(2.0, 10.0, len(data["ids"])).round(1)
    truth[rng.random(len(truth)) < 0.05] = 0.0
    data["score"] = truth + rng.normal(0.5, 3.0, len(truth))
    value_of = dict(zip(data["ids"].tolist(), truth.tolist(), strict=True))
    data["label_values"] = [value_of.get(i, 1.0) for i in data["label_ids"]]
    engine = _loaded(tmp_path, data, label=sa.Float)
    overall, _, stats = performance_summary_sql(
        engine, PerformanceQuery(_source(None), WINDOW, task="regression")
    )
    assert isinstance(overall, RegressionSummary)
    _assert_same(overall, _reference(data, regression=True))
    assert (
        overall.zero_labels > 0 and stats.rows_fetched <= 6
    )  # 3 states, orphans, rows without an id, repeated ids


def test_multiclass_on_sqlite_equals_the_in_memory_join(tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    data = _data(rng, n=3000)
    classes = np.array(["cat", "dog", "owl"])
    data["predicted"] = classes[rng.integers(0, 3, len(data["ids"]))]
    data["label_values"] = [str(classes[v % 3]) for v in rng.integers(0, 3, len(data["label_ids"]))]
    engine = _loaded(tmp_path, data, predicted=sa.Text, label=sa.Text)
    source = _source(None, predicted_column="predicted_class")
    pushed, _, _ = performance_summary_sql(engine, PerformanceQuery(source, WINDOW, task="multiclass"))
    joined, _, _ = performance_summary_join(
        engine, engine, PerformanceQuery(source, WINDOW, task="multiclass")
    )
    assert isinstance(pushed, MulticlassSummary) and isinstance(joined, MulticlassSummary)
    _assert_same(pushed, joined)
    assert sum(pushed.counts().values()) == pushed.coverage.labelled > 0
    assert {c for pair in pushed.counts() for c in pair} == {"cat", "dog", "owl"}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_empty_window_on_sqlite_is_a_result_not_an_error(tmp_path: Path, task: str) -> None:
    data = _data(np.random.default_rng(19), n=200)
    engine = _loaded(tmp_path, data)
    empty = WINDOW.__class__(
        WINDOW.prediction_start.replace(year=2020),
        WINDOW.prediction_end.replace(year=2020),
        WINDOW.label_cutoff.replace(year=2020),
        WINDOW.arrivals_start.replace(year=2020),
    )
    overall, segments, _ = performance_summary_sql(engine, PerformanceQuery(_source(None), empty, task=task))  # type: ignore[arg-type]
    assert overall.coverage.predictions == 0 and overall.coverage.labelled == 0 and segments == {}


def test_spec_from_plain_values_gathers_once_and_judges_once_in_the_database_and_in_memory(
    tmp_path: Path,
) -> None:
    """The spec the operator builds, evaluated without Airflow through database URLs: the same
    result as the gatherer plus the judge, pushed down (one connection) and joined in memory (labels
    on another connection)."""
    from airflow_mlobs.core.performance.judge import judge_performance
    from airflow_mlobs.specs.base import url_connected
    from airflow_mlobs.specs.performance import PerformanceSpec
    from tests.integration.test_performance_sql import DELAY, INTERVAL

    data = _data(np.random.default_rng(21))
    warehouse = _loaded(tmp_path, data)
    labels_only = _sqlite(tmp_path / "labels.db")
    _sqlite_labels(labels_only, data)
    url, labels_url = f"sqlite:///{tmp_path / 'warehouse.db'}", f"sqlite:///{tmp_path / 'labels.db'}"
    spec = PerformanceSpec(
        prediction_time_column="predicted_at",
        label_time_column="labelled_at",
        conn_id=url,
        predictions_table="predictions",
        labels_table="labels",
        score_column="score",
        predicted_column="predicted_class",
        segment_column="segment",
        label_delay=DELAY.total_seconds(),
        baseline={"accuracy": 0.9},
        max_drop=0.02,
    )
    spec.validate("check")
    summary, segments, _ = performance_summary_sql(
        warehouse,
        PerformanceQuery(_source(None, predicted_column="predicted_class", segment_column="segment"), WINDOW),
    )
    want = judge_performance(
        summary,
        spec.settings(),
        dataset=f"{url}:predictions",
        window=WINDOW,
        segments=segments,
        window_start=INTERVAL[0],
        window_end=INTERVAL[1],
    )
    pushed = spec.evaluate(window_start=INTERVAL[0], window_end=INTERVAL[1], connect=url_connected)
    assert pushed == want
    in_memory = replace(spec, label_conn_id=labels_url).evaluate(
        window_start=INTERVAL[0], window_end=INTERVAL[1], connect=url_connected
    )
    # The in-memory join adds the sums in another order: equal up to rounding.
    assert (in_memory.status, in_memory.findings) == (want.status, want.findings)
    for name, metric in want.metrics["metrics"].items():
        assert in_memory.metrics["metrics"][name]["value"] == pytest.approx(metric["value"], rel=1e-9), name
    # Without either column the recorder's layout is assumed (score); a regression needs a score
    # column even when a class column is named.
    assert replace(spec, score_column=None, predicted_column=None).score_column == "score"
    with pytest.raises(ValueError, match=r"^check: give score_column"):
        replace(spec, task="regression", score_column=None, predicted_column="predicted").validate("check")
