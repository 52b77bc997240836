"""Multi-class performance: the confusion-matrix summary and its metrics against direct numpy
computations on random data, merging, degenerate matrices (a class never predicted, never labelled,
nothing labelled), the judgement, and the vectorised chunk summaries the in-memory join uses against
the reference summaries."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from airflow_mlobs.core.performance.judge import judge_performance
from airflow_mlobs.core.performance.metrics import compute_metrics, multiclass_metrics
from airflow_mlobs.core.performance.summary import (
    MulticlassSummary,
    summarize_classification,
    summarize_classification_arrays,
    summarize_multiclass,
    summarize_multiclass_arrays,
    summarize_regression,
    summarize_regression_arrays,
)
from airflow_mlobs.core.performance.window import Coverage, latest_labels
from airflow_mlobs.core.performance_settings import DropLevels, PerformanceSettings
from airflow_mlobs.core.result import Status

CLASSES = ["cat", "dog", "fox", "owl"]


def _random(
    rng: np.random.Generator, n: int, k: int = 4, skill: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(k, n, p=rng.dirichlet(np.ones(k) * 3))
    guess = np.where(rng.random(n) < skill, y, rng.integers(0, k, n))
    return y, guess


def _summary(y: np.ndarray, guess: np.ndarray, names: list[str] = CLASSES) -> MulticlassSummary:
    return summarize_multiclass_arrays(
        np.ones(len(y), bool), [names[i] for i in y], [names[i] for i in guess]
    )


def _numpy_reference(y: np.ndarray, guess: np.ndarray, k: int) -> dict[str, Any]:
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y, guess), 1)
    tp = np.diag(m).astype(float)
    support, predicted = m.sum(axis=1).astype(float), m.sum(axis=0).astype(float)
    present = (support + predicted) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / predicted
        recall = tp / support
        f1 = 2 * tp / (support + predicted)
    return {
        "accuracy": float(np.mean(y == guess)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": float(np.mean(f1[present])),
        "weighted_f1": float(np.sum(np.nan_to_num(f1) * support) / support.sum()),
        "macro_precision": float(np.nanmean(precision[present])),
        "macro_recall": float(np.nanmean(recall[present])),
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_metrics_equal_numpy_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = [3, 4, 4, 2][seed - 1]
    y, guess = _random(rng, 5000, k=k, skill=[0.3, 0.6, 0.9, 0.5][seed - 1])
    metrics = multiclass_metrics(_summary(y, guess))
    want = _numpy_reference(y, guess, k)
    for name in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall"):
        assert metrics[name].value == pytest.approx(want[name], abs=1e-12), name
        assert metrics[name].se is not None and 0 < metrics[name].se < 0.05
    for i in range(k):
        c = CLASSES[i]
        assert metrics[f"precision[{c}]"].value == pytest.approx(want["precision"][i], abs=1e-12)
        assert metrics[f"recall[{c}]"].value == pytest.approx(want["recall"][i], abs=1e-12)
        assert metrics[f"f1[{c}]"].value == pytest.approx(want["f1"][i], abs=1e-12)
    # accuracy's SE is the binomial one; macro recall is the balanced accuracy
    acc = want["accuracy"]
    assert metrics["accuracy"].se == pytest.approx(np.sqrt(acc * (1 - acc) / len(y)))
    assert metrics["macro_recall"].value == pytest.approx(np.mean(want["recall"]))


def test_binary_as_multiclass_matches_the_binary_f1() -> None:
    rng = np.random.default_rng(11)
    y, guess = _random(rng, 4000, k=2, skill=0.7)
    multi = multiclass_metrics(_summary(y, guess, ["0", "1"]))
    binary = compute_metrics(
        summarize_classification(np.arange(len(y)), guess, np.where(guess == 1, 0.9, 0.1), dict(enumerate(y)))
    )
    assert multi["f1[1]"].value == pytest.approx(binary["f1"].value)
    assert multi["f1[1]"].se == pytest.approx(binary["f1"].se)
    assert multi["accuracy"].value == pytest.approx(binary["accuracy"].value)
    assert multi["precision[1]"].value == pytest.approx(binary["precision"].value)


def test_summaries_merge_by_addition() -> None:
    rng = np.random.default_rng(3)
    y, guess = _random(rng, 3000)
    whole = _summary(y, guess)
    parts = [_summary(y[i : i + 700], guess[i : i + 700]) for i in range(0, 3000, 700)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    assert merged.cells == whole.cells and merged.labelled == 3000
    classes, m = whole.matrix()
    assert classes == tuple(CLASSES) and int(m.sum()) == 3000 and int(np.trace(m)) == int(np.sum(y == guess))


def test_a_class_never_predicted_has_no_precision_and_macro_f1_counts_it_as_zero() -> None:
    # "owl" is labelled 10 times but never predicted; "fox" is predicted but never labelled
    y = ["cat"] * 50 + ["dog"] * 40 + ["owl"] * 10
    guess = ["cat"] * 45 + ["fox"] * 5 + ["dog"] * 38 + ["cat"] * 2 + ["dog"] * 10
    summary = summarize_multiclass_arrays(np.ones(100, bool), y, guess)
    m = multiclass_metrics(summary)
    assert m["precision[owl]"].value is None and m["precision[owl]"].reason == "class 'owl' never predicted"
    assert m["recall[fox]"].value is None and m["recall[fox]"].reason == "no labels of class 'fox'"
    assert m["f1[owl]"].value == 0.0 and m["f1[fox]"].value == 0.0
    # macro F1: over every class seen as a label or a prediction (scikit-learn's rule)
    f1_cat = 2 * 45 / (50 + 47)
    f1_dog = 2 * 38 / (40 + 48)
    assert m["macro_f1"].value == pytest.approx((f1_cat + f1_dog + 0 + 0) / 4)
    assert m["weighted_f1"].value == pytest.approx((50 * f1_cat + 40 * f1_dog + 10 * 0) / 100)
    # macro precision / recall: over the classes where they are defined, the others named
    assert m["macro_precision"].value == pytest.approx((45 / 47 + 38 / 48 + 0 / 5) / 3)
    assert m["macro_precision"].extra["undefined"] == ["precision[owl]"]
    assert m["macro_recall"].value == pytest.approx((45 / 50 + 38 / 40 + 0 / 10) / 3)
    assert m["macro_recall"].extra["undefined"] == ["recall[fox]"]
    assert m["accuracy"].value == pytest.approx(83 / 100)


def test_empty_and_invalid_rows() -> None:
    empty = multiclass_metrics(MulticlassSummary())
    assert all(v.value is None and v.reason == "no labelled predictions" for v in empty.values())
    summary = summarize_multiclass_arrays(
        [True, True, True, False],
        ["a", None, "b", None],
        ["a", "b", None, "a"],
        late=[False, False, False, True],
    )
    assert summary.labelled == 1 and summary.invalid == 2
    assert summary.coverage == Coverage(predictions=4, labelled=3, late=1, duplicate=0)
    assert multiclass_metrics(summary)["accuracy"].value == 1.0
    result = judge_performance(
        summary, PerformanceSettings(task="multiclass", min_label_coverage=0.0), dataset="d"
    )
    assert "2 labelled predictions with no label or predicted class" in result.summary


def test_reference_summary_uses_the_latest_label_and_counts_duplicates_and_late() -> None:
    cutoff = datetime(2026, 3, 10, tzinfo=UTC)
    t = cutoff - timedelta(days=1)
    labels, counts, late = latest_labels(
        [1, 1, 2, 3, 4],
        ["dog", "cat", "fox", "owl", "cat"],
        [t, t + timedelta(hours=1), t, cutoff + timedelta(hours=1), t],
        cutoff,
    )
    summary = summarize_multiclass(
        [1, 2, 3, 5], ["cat", "dog", "owl", "cat"], labels, label_counts=counts, late_ids=late
    )
    assert summary.counts() == {("cat", "cat"): 1, ("fox", "dog"): 1}
    assert summary.coverage == Coverage(predictions=4, labelled=2, late=1, duplicate=1, orphan_labels=None)


def test_judgement_of_macro_f1_against_its_baseline() -> None:
    rng = np.random.default_rng(5)
    y, guess = _random(rng, 20_000, skill=0.5)
    summary = _summary(y, guess)
    summary = MulticlassSummary(summary.cells, 0, Coverage(20_000, 20_000))
    value = multiclass_metrics(summary)["macro_f1"].value
    assert value is not None
    settings = PerformanceSettings(
        task="multiclass",
        metric="macro_f1",
        baseline={"macro_f1": value + 0.1, "accuracy": 0.1},
        max_drop={"macro_f1": DropLevels(0.02, 0.05)},
    )
    result = judge_performance(summary, settings, dataset="m")
    assert result.status is Status.FAIL and result.metrics["metric"] == "macro_f1"
    assert result.metrics["drop"] == pytest.approx(0.1)
    assert "f1[cat]" in result.metrics["metrics"] and "precision[owl]" in result.metrics["metrics"]
    with pytest.raises(ValueError, match="unknown multiclass metric 'roc_auc'"):
        PerformanceSettings(task="multiclass", metric="roc_auc")


def _assert_same(got: Any, want: Any) -> None:
    for f in fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert a == (pytest.approx(b, rel=1e-12, abs=1e-12) if isinstance(b, float) else b), f.name


def test_vectorised_chunk_summaries_equal_the_reference_summaries() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    ids = np.arange(n)
    scores = rng.random(n)
    scores[:30] = np.nan
    labelled = rng.random(n) < 0.8
    y = rng.random(n) < scores.clip(0, 1)
    dup = labelled & (rng.random(n) < 0.1)
    late = ~labelled & (rng.random(n) < 0.5)
    labels = {int(i): int(v) for i, v, h in zip(ids, y, labelled, strict=True) if h}
    counts = {int(i): 2 for i in ids[dup]}
    late_ids = {int(i) for i in ids[late]}
    predicted = (np.nan_to_num(scores) >= 0.5).astype(int)
    _assert_same(
        summarize_classification_arrays(labelled, y, predicted == 1, scores, duplicate=dup, late=late),
        summarize_classification(ids, predicted, scores, labels, label_counts=counts, late_ids=late_ids),
    )
    values = rng.normal(10, 3, n)
    truth = np.where(rng.random(n) < 0.05, 0.0, values + rng.normal(0, 1, n))
    reg_labels = {int(i): float(v) for i, v, h in zip(ids, truth, labelled, strict=True) if h}
    _assert_same(
        summarize_regression_arrays(
            labelled, np.where(labelled, truth, np.nan), values, duplicate=dup, late=late
        ),
        summarize_regression(ids, values, reg_labels, label_counts=counts, late_ids=late_ids),
    )
