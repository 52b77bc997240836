"""Attribution drift: nDCG (SageMaker Clarify's definition), Spearman against scipy, the judgement
on a synthetic model whose attributions move while its accuracy does not, degenerate inputs, and
the in-memory gatherer equal to the SQL one on SQLite (one aggregate row fetched)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats

from airflow_mlobs.core.attribution import (
    AttributionRules,
    AttributionSummary,
    FeatureSums,
    Reference,
    judge_attribution,
    ndcg,
    spearman,
)
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.recorder.layout import attribution_column
from airflow_mlobs.sources.attribution_frame import gather_attribution_frame
from airflow_mlobs.sources.attribution_sql import AttributionSource, gather_attributions
from airflow_mlobs.specs.attribution import AttributionSpec
from airflow_mlobs.specs.base import url_connected

T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T1 + timedelta(days=1)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]),
        ([0.5, 0.5, 0.1, 0.9, 0.3], [0.2, 0.4, 0.4, 0.8, 0.1]),
        ([3.0, 2.0, 1.0], [1.0, 2.0, 3.0]),
    ],
)
def test_spearman_equals_scipy(x: list[float], y: list[float]) -> None:
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_undefined_for_a_constant_ranking() -> None:
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert spearman([1.0], [2.0]) is None


def test_ndcg_as_sagemaker_clarify_defines_it() -> None:
    reference = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert ndcg(reference, reference) == pytest.approx(1.0)
    # Live ranking c, b, a: DCG = a(c)/log2(2) + a(b)/log2(3) + a(a)/log2(4).
    dcg = 0.2 / 1 + 0.3 / math.log2(3) + 0.5 / 2
    idcg = 0.5 / 1 + 0.3 / math.log2(3) + 0.2 / 2
    assert ndcg({"a": 0.1, "b": 0.2, "c": 0.3}, reference) == pytest.approx(dcg / idcg)
    assert ndcg({"a": 1.0}, {"a": 0.0}) is None


def test_summary_merges_and_its_standard_error_is_numpys() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    whole = FeatureSums(a.size, float(np.abs(a).sum()), float((a * a).sum()))
    halves = FeatureSums(250, float(np.abs(a[:250]).sum()), float((a[:250] ** 2).sum())).merge(
        FeatureSums(250, float(np.abs(a[250:]).sum()), float((a[250:] ** 2).sum()))
    )
    assert halves.n == whole.n and halves.sum_abs == pytest.approx(whole.sum_abs)
    assert whole.mean_abs == pytest.approx(np.abs(a).mean())
    assert whole.se_mean_abs == pytest.approx(stats.sem(np.abs(a)))


def linear_model_log(seed: int = 7, n: int = 2000) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two correlated, equally predictive features x1, x2 (and a weak x3); y = x1 + x2 + 0.3 x3 +
    noise. Day 1 the model is 1.6 x1 + 0.4 x2 + 0.3 x3; day 2 (retrained) 0.4 x1 + 1.6 x2 + 0.3 x3.
    Attributions are linear SHAP values, w_j (x_j - mean x_j). Returns the log and each day's RMSE."""
    rng = np.random.default_rng(seed)
    rows = []
    rmse = {}
    for day, weights in ((T0, (1.6, 0.4, 0.3)), (T1, (0.4, 1.6, 0.3))):
        z = rng.normal(size=n)
        x1 = z + 0.05 * rng.normal(size=n)
        x2 = z + 0.05 * rng.normal(size=n)
        x3 = rng.normal(size=n)
        y = x1 + x2 + 0.3 * x3 + 0.5 * rng.normal(size=n)
        xs = np.column_stack([x1, x2, x3])
        w = np.array(weights)
        pred = xs @ w
        rmse[day.date().isoformat()] = float(np.sqrt(np.mean((pred - y) ** 2)))
        shap = w * (xs - xs.mean(axis=0))
        for i in range(n):
            rows.append(
                {
                    "predicted_at": day + timedelta(seconds=int(i * 40)),
                    "model_version": "v1" if day == T0 else "v2",
                    "score": float(pred[i]),
                    **{attribution_column(f): float(shap[i, j]) for j, f in enumerate(("x1", "x2", "x3"))},
                }
            )
    return pd.DataFrame(rows), rmse


def sqlite_log(tmp_path: Path, frame: pd.DataFrame) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("mlobs_prediction_log", engine, index=False, dtype={"predicted_at": sa.DateTime()})
    engine.dispose()
    return url


def test_attributions_swap_while_accuracy_holds_and_the_check_names_them(tmp_path: Path) -> None:
    frame, rmse = linear_model_log()
    assert rmse["2026-11-01"] == pytest.approx(rmse["2026-11-02"], rel=0.05)  # accuracy unchanged
    url = sqlite_log(tmp_path, frame)
    spec = AttributionSpec(
        conn_id="log", reference_window=(T0.isoformat(), T1.isoformat()), model_version_column=None
    )
    result = spec.evaluate(window_start=T1, window_end=T2, connect=lambda _: url_connected(url))
    assert result.status is Status.FAIL
    assert result.metrics["ndcg"] < 0.9
    assert result.metrics["gained"] == ["x2"] and result.metrics["lost"] == ["x1"]
    assert "gained weight: x2" in result.summary and "lost weight: x1" in result.summary
    # Expected from the construction: shares 1.6:0.4:0.3 -> 0.4:1.6:0.3 of E|x - mean|.
    shares = result.metrics["shares"]
    assert shares["x2"] > 0.6 and shares["x1"] < 0.2


def test_no_change_passes(tmp_path: Path) -> None:
    frame, _ = linear_model_log()
    day1 = frame[frame["predicted_at"] < T1].copy()
    later = day1.copy()
    later["predicted_at"] = later["predicted_at"] + timedelta(days=1)
    url = sqlite_log(tmp_path, pd.concat([day1, later]))
    spec = AttributionSpec(conn_id="log", reference_window=(T0, T1), model_version_column=None)
    result = spec.evaluate(window_start=T1, window_end=T2, connect=lambda _: url_connected(url))
    assert result.status is Status.PASS, result.summary
    assert result.metrics["ndcg"] == pytest.approx(1.0)
    assert result.metrics["spearman"] == pytest.approx(1.0)
    assert result.metrics["gained"] == [] and result.metrics["lost"] == []


def test_given_baseline_and_importances_table_are_references(tmp_path: Path) -> None:
    frame, _ = linear_model_log()
    url = sqlite_log(tmp_path, frame)
    engine = sa.create_engine(url)
    pd.DataFrame(
        {"model_version": ["v1", "v1", "v1"], "feature": ["x1", "x2", "x3"], "importance": [1.28, 0.32, 0.24]}
    ).to_sql("importances", engine, index=False)
    engine.dispose()
    connect = lambda _: url_connected(url)  # noqa: E731
    by_table = AttributionSpec(
        conn_id="log",
        importances_table="importances",
        reference_model_version="v1",
        model_version_column=None,
    ).evaluate(window_start=T1, window_end=T2, connect=connect)
    given = AttributionSpec(
        conn_id="log", baseline_importances={"x1": 1.28, "x2": 0.32, "x3": 0.24}, model_version_column=None
    ).evaluate(window_start=T1, window_end=T2, connect=connect)
    for result in (by_table, given):
        assert result.status is Status.FAIL
        assert result.metrics["gained"] == ["x2"] and result.metrics["lost"] == ["x1"]
    assert by_table.metrics["ndcg"] == pytest.approx(given.metrics["ndcg"])


def test_sql_sums_equal_in_memory_and_fetch_one_row(tmp_path: Path) -> None:
    frame, _ = linear_model_log(n=300)
    frame.loc[3, attribution_column("x1")] = None
    url = sqlite_log(tmp_path, frame)
    engine = sa.create_engine(url)
    src = AttributionSource(table=parse_table_name("mlobs_prediction_log"), timestamp_column="predicted_at")
    current, reference, qs = gather_attributions(engine, src, start=T1, end=T2, reference=(T0, T1))
    engine.dispose()
    assert qs.statements == 2 and qs.rows_fetched == 2
    assert reference is not None
    for got, (lo, hi) in ((current, (T1, T2)), (reference, (T0, T1))):
        want = gather_attribution_frame(frame, timestamp_column="predicted_at", start=lo, end=hi)
        assert got.rows == want.rows
        for f, s in want.features.items():
            assert got.features[f].n == s.n
            assert got.features[f].sum_abs == pytest.approx(s.sum_abs, rel=1e-12)
            assert got.features[f].sum_sq == pytest.approx(s.sum_sq, rel=1e-12)
    assert reference.features["x1"].n == 299


def summary(**features: tuple[int, float, float]) -> AttributionSummary:
    return AttributionSummary(rows=100, features={f: FeatureSums(*v) for f, v in features.items()})


REF = Reference({"x1": 1.0, "x2": 0.5}, "given")


@pytest.mark.parametrize(
    ("current", "reason"),
    [
        (AttributionSummary(rows=100, features={}), "no attribution columns"),
        (AttributionSummary(rows=0, features={"x1": FeatureSums()}), "no rows"),
        (summary(x1=(0, 0.0, 0.0), x2=(0, 0.0, 0.0)), "NULL"),
        (summary(x1=(100, 0.0, 0.0), x2=(100, 0.0, 0.0)), "zero"),
        (AttributionSummary(rows=5, features={"x1": FeatureSums(5, 1.0, 1.0)}), "min_rows"),
    ],
)
def test_degenerate_inputs_are_skipped_with_a_reason(current: AttributionSummary, reason: str) -> None:
    result = judge_attribution(dataset="d", current=current, reference=REF, rules=AttributionRules())
    assert result.status is Status.SKIPPED
    assert reason in result.summary


def test_a_reference_without_importance_is_skipped() -> None:
    current = summary(x1=(100, 50.0, 40.0), x2=(100, 20.0, 10.0))
    result = judge_attribution(
        dataset="d", current=current, reference=Reference({"x1": 0.0}, "empty"), rules=AttributionRules()
    )
    assert result.status is Status.SKIPPED and "no non-zero importance" in result.summary
    assert judge_attribution(
        dataset="d", current=current, reference=None, rules=AttributionRules()
    ).status is (Status.SKIPPED)


def test_settings_out_of_range_name_the_argument() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        AttributionSpec(conn_id="c").validate("t")
    with pytest.raises(ValueError, match="ndcg_fail"):
        AttributionSpec(conn_id="c", baseline_importances={"a": 1.0}, ndcg_fail=1.5).validate("t")
    with pytest.raises(ValueError, match="reference_model_version"):
        AttributionSpec(conn_id="c", importances_table="imp").validate("t")


def test_the_specs_defaults_are_the_loggers_layout() -> None:
    from airflow_mlobs.core.attribution import ATTRIBUTION_PREFIX
    from airflow_mlobs.recorder import layout
    from airflow_mlobs.specs import attribution as spec

    assert (spec.DEFAULT_TABLE, spec.PREDICTED_AT, spec.MODEL_VERSION) == (
        layout.DEFAULT_TABLE,
        layout.PREDICTED_AT,
        layout.MODEL_VERSION,
    )
    assert layout.attribution_column("x") == f"{ATTRIBUTION_PREFIX}x" == "attr__x"
