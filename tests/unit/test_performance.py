"""The pure performance core: metrics against exact numpy/scipy computations on random data, standard
errors against simulation, degenerate input, the delay/maturity arithmetic, label rules, and the
judgement (the keys the retraining gate and notifications read)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy import stats as sps

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.gate import GatePolicy, conditions_met
from airflow_mlobs.core.performance.judge import drop_of, judge_performance
from airflow_mlobs.core.performance.metrics import classification_metrics, regression_metrics
from airflow_mlobs.core.performance.summary import (
    ClassificationSummary,
    RegressionSummary,
    score_bin,
    summarize_classification,
    summarize_regression,
)
from airflow_mlobs.core.performance.window import (
    Coverage,
    evaluation_window,
    latest_labels,
    shift_back,
    winning_labels,
)
from airflow_mlobs.core.performance_settings import DropLevels, PerformanceSettings, parse_max_drop
from airflow_mlobs.core.result import Status
from airflow_mlobs.render.headline import headline

BERLIN = ZoneInfo("Europe/Berlin")


def _classification(rng: np.random.Generator, n: int, separation: float = 1.0, prevalence: float = 0.3):  # type: ignore[no-untyped-def]
    y = (rng.random(n) < prevalence).astype(int)
    logit = rng.normal(separation * (2 * y - 1), 1.0)
    s = 1 / (1 + np.exp(-logit))
    return y, s


def _summary(y: np.ndarray, s: np.ndarray, bins: int = 1000) -> ClassificationSummary:
    ids = np.arange(len(y))
    return summarize_classification(ids, (s >= 0.5).astype(int), s, dict(enumerate(y.tolist())), bins=bins)


def _exact_average_precision(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    # thresholds at distinct scores: the last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / ys.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# --- metrics against exact values ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_classification_metrics_equal_exact_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, s = _classification(rng, 20_000, separation=[0.3, 1.0, 2.0][seed - 1])
    yhat = (s >= 0.5).astype(int)
    m = classification_metrics(_summary(y, s))
    tp = int(np.sum((y == 1) & (yhat == 1)))
    fp = int(np.sum((y == 0) & (yhat == 1)))
    fn = int(np.sum((y == 1) & (yhat == 0)))
    tn = int(np.sum((y == 0) & (yhat == 0)))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert m["accuracy"].value == pytest.approx(np.mean(y == yhat), abs=1e-12)
    assert m["precision"].value == pytest.approx(precision, abs=1e-12)
    assert m["recall"].value == pytest.approx(recall, abs=1e-12)
    assert m["f1"].value == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-12)
    assert m["specificity"].value == pytest.approx(tn / (tn + fp), abs=1e-12)
    assert m["balanced_accuracy"].value == pytest.approx((recall + tn / (tn + fp)) / 2, abs=1e-12)
    assert m["positive_rate"].value == pytest.approx(np.mean(yhat), abs=1e-12)
    # ROC AUC from 1000-bin histograms vs the exact Mann-Whitney U
    u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    exact_auc = u / ((y == 1).sum() * (y == 0).sum())
    assert m["roc_auc"].value == pytest.approx(exact_auc, abs=0.005)
    assert m["roc_auc"].extra["binning_error_bound"] < 0.005
    assert m["pr_auc"].value == pytest.approx(_exact_average_precision(y, s), abs=0.005)
    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    exact_ll = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert m["log_loss"].value == pytest.approx(exact_ll, rel=1e-9)  # exact sums, no binning
    group = np.minimum((s * 10).astype(int), 9)
    exact_ece = sum(
        np.mean(group == b) * abs(s[group == b].mean() - y[group == b].mean())
        for b in range(10)
        if np.any(group == b)
    )
    assert m["ece"].value == pytest.approx(exact_ece, abs=0.001)
    assert (
        m["expected_positive_rate"].value == pytest.approx(s.mean()) and m["expected_positive_rate"].estimate
    )


def test_auc_within_0005_even_for_coarse_bins_on_discrete_scores() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(5000) < 0.5).astype(int)
    s = np.round(np.clip(rng.normal(0.5 + 0.1 * (2 * y - 1), 0.2), 0, 1), 2)  # many ties
    u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    exact = u / ((y == 1).sum() * (y == 0).sum())
    assert classification_metrics(_summary(y, s))["roc_auc"].value == pytest.approx(exact, abs=0.005)


def test_regression_metrics_equal_exact_values() -> None:
    rng = np.random.default_rng(4)
    y = rng.gamma(2.0, 5.0, 10_000)
    y[:200] = 0.0
    pred = y + rng.normal(0.3, 2.0, len(y))
    summary = summarize_regression(np.arange(len(y)), pred, dict(enumerate(y.tolist())))
    m = regression_metrics(summary)
    e = pred - y
    nz = y != 0
    assert m["mae"].value == pytest.approx(np.mean(np.abs(e)), rel=1e-9)
    assert m["rmse"].value == pytest.approx(math.sqrt(np.mean(e * e)), rel=1e-9)
    assert m["bias"].value == pytest.approx(np.mean(e), rel=1e-9)
    assert m["mape"].value == pytest.approx(np.mean(np.abs(e[nz]) / y[nz]), rel=1e-9)
    assert m["mape"].extra["zero_labels"] == 200 and summary.zero_labels == 200
    r2 = 1 - np.sum(e * e) / np.sum((y - y.mean()) ** 2)
    assert m["r2"].value == pytest.approx(r2, rel=1e-9)
    assert m["bias"].se == pytest.approx(np.std(e, ddof=1) / math.sqrt(len(e)), rel=1e-6)


def test_standard_errors_match_the_spread_over_repeated_samples() -> None:
    rng = np.random.default_rng(9)
    values: dict[str, list[float]] = {
        "accuracy": [],
        "f1": [],
        "roc_auc": [],
        "log_loss": [],
        "balanced_accuracy": [],
    }
    ses: dict[str, list[float]] = {k: [] for k in values}
    for _ in range(300):
        y, s = _classification(rng, 800)
        m = classification_metrics(_summary(y, s))
        for name in values:
            values[name].append(m[name].value)  # type: ignore[arg-type]
            ses[name].append(m[name].se)  # type: ignore[arg-type]
    for name in values:
        spread, mean_se = float(np.std(values[name], ddof=1)), float(np.mean(ses[name]))
        if name == "roc_auc":
            # Hanley-McNeil assumes exponential score distributions; for binormal scores it is known
            # to be conservative (here about 20% too wide), never too narrow.
            assert spread * 0.95 <= mean_se <= spread * 1.35, (name, mean_se, spread)
        else:
            assert mean_se == pytest.approx(spread, rel=0.2), name


# --- degenerate input --------------------------------------------------------------------------------


def test_single_class_and_no_predicted_positives_are_undefined_with_reasons() -> None:
    y = np.ones(100, dtype=int)
    s = np.linspace(0.0, 0.4, 100)  # nothing predicted positive
    m = classification_metrics(_summary(y, s))
    assert m["roc_auc"].value is None and m["roc_auc"].reason == "only positive labels"
    assert m["precision"].value is None and m["precision"].reason == "no predicted positives"
    assert m["specificity"].value is None and m["balanced_accuracy"].value is None
    assert m["accuracy"].value == 0.0 and m["recall"].value == 0.0
    assert m["pr_auc"].value == pytest.approx(1.0)
    negatives = classification_metrics(_summary(np.zeros(10, dtype=int), s[:10]))
    assert negatives["roc_auc"].reason == "only negative labels" and negatives["pr_auc"].value is None


def test_empty_summaries_never_raise_or_return_infinities() -> None:
    for metrics in (classification_metrics(ClassificationSummary()), regression_metrics(RegressionSummary())):
        for metric in metrics.values():
            assert metric.value is None and metric.reason
    result = judge_performance(
        ClassificationSummary(), PerformanceSettings(baseline={"accuracy": 0.9}, max_drop={}), dataset="d"
    )
    assert result.status is Status.SKIPPED and "no predictions in the window" in result.summary
    json.loads(result.to_json())


def test_zero_and_constant_labels_for_regression() -> None:
    zeros = summarize_regression([1, 2, 3], [0.5, -0.5, 0.0], {1: 0.0, 2: 0.0, 3: 0.0})
    m = regression_metrics(zeros)
    assert m["mape"].value is None and m["mape"].reason == "all 3 labels are 0"
    assert m["r2"].value is None and m["r2"].reason == "the labels are constant"
    assert m["mae"].value == pytest.approx(1 / 3) and m["rmse"].value == pytest.approx(math.sqrt(0.5 / 3))
    perfect = regression_metrics(summarize_regression([1, 2], [1.0, 2.0], {1: 1.0, 2: 2.0}))
    assert perfect["rmse"].value == 0.0 and perfect["rmse"].se == 0.0 and perfect["r2"].value == 1.0


def test_scores_out_of_range_are_left_out_of_score_metrics() -> None:
    s = np.array([0.2, 0.9, np.nan, 1.5, -0.1, 1.0, 0.0])
    assert score_bin(s, 10).tolist() == [2, 9, -1, -1, -1, 9, 0]
    summary = summarize_classification(
        range(7), (np.nan_to_num(s) >= 0.5).astype(int), s, dict.fromkeys(range(7), 1)
    )
    assert summary.invalid_scores == 3 and sum(summary.positives) == 4 and summary.labelled == 7


# --- windows, maturity and labels ------------------------------------------------------------------


def test_delay_shifts_whole_days_in_wall_clock_time_across_daylight_saving() -> None:
    # Berlin switches to summer time on 2026-03-29: the day before has 24h, the run's day 24h, but
    # 7 days back crosses the change; the window must still start at local midnight.
    start = datetime(2026, 4, 2, tzinfo=BERLIN)
    end = datetime(2026, 4, 3, tzinfo=BERLIN)
    window = evaluation_window(start, end, timedelta(days=7), zone=BERLIN)
    assert window.prediction_start == datetime(2026, 3, 26, tzinfo=BERLIN)
    assert window.prediction_start.astimezone(UTC) == datetime(2026, 3, 25, 23, tzinfo=UTC)  # UTC+1
    assert end.astimezone(UTC) == datetime(2026, 4, 2, 22, tzinfo=UTC)  # UTC+2
    # the short day itself (23h) maps to a 24h day a week earlier, both at local midnight
    short = evaluation_window(
        datetime(2026, 3, 29, tzinfo=BERLIN).astimezone(UTC),
        datetime(2026, 3, 30, tzinfo=BERLIN).astimezone(UTC),
        timedelta(days=7),
        zone=BERLIN,
    )
    assert short.prediction_start.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 22)
    assert short.prediction_end - short.prediction_start == timedelta(hours=24)
    assert short.label_cutoff == datetime(2026, 3, 30, tzinfo=BERLIN)
    # in UTC the same delay is plain absolute time
    utc = evaluation_window(start.astimezone(UTC), end.astimezone(UTC), timedelta(days=7), zone=UTC)
    assert utc.prediction_start == start.astimezone(UTC) - timedelta(hours=168)


def test_delay_across_month_ends_and_leap_days() -> None:
    w = evaluation_window(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), timedelta(days=7)
    )
    assert (w.prediction_start, w.prediction_end) == (
        datetime(2026, 2, 22, tzinfo=UTC),
        datetime(2026, 2, 23, tzinfo=UTC),
    )
    leap = evaluation_window(
        datetime(2028, 3, 1, tzinfo=UTC), datetime(2028, 3, 2, tzinfo=UTC), timedelta(days=1)
    )
    assert leap.prediction_start == datetime(2028, 2, 29, tzinfo=UTC)
    month = evaluation_window(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), timedelta(days=7)
    )
    assert (month.prediction_start, month.prediction_end) == (
        datetime(2026, 2, 22, tzinfo=UTC),
        datetime(2026, 3, 25, tzinfo=UTC),
    )
    year_end = shift_back(datetime(2027, 1, 2, 6, tzinfo=BERLIN), timedelta(days=3, hours=12), BERLIN)
    assert year_end == datetime(2026, 12, 29, 18, tzinfo=BERLIN)


def test_cutoff_rules() -> None:
    start, end = datetime(2026, 5, 10, tzinfo=UTC), datetime(2026, 5, 11, tzinfo=UTC)
    w = evaluation_window(start, end, timedelta(days=2), label_cutoff=datetime(2026, 5, 12, tzinfo=UTC))
    assert w.label_cutoff == datetime(2026, 5, 12, tzinfo=UTC) and w.arrivals_start == start
    with pytest.raises(MlobsInputError, match="before the end of the predictions' window"):
        evaluation_window(start, end, timedelta(0), label_cutoff=start)
    with pytest.raises(MlobsInputError, match="empty data interval"):
        evaluation_window(end, start, timedelta(days=1))


def test_latest_label_by_the_cutoff_wins_and_late_labels_do_not_count() -> None:
    t = datetime(2026, 1, 10, tzinfo=UTC)
    cutoff = t + timedelta(days=1)
    ids = [1, 1, 2, 2, 3, 4, 4]
    values = [0, 1, 1, 0, 1, 0, 1]
    times = [
        t,
        t + timedelta(hours=1),
        t + timedelta(hours=2),
        t + timedelta(days=2),
        t + timedelta(days=3),
        t,
        t,
    ]
    labels, counts, late = latest_labels(ids, values, times, cutoff)
    assert labels == {
        1: 1,
        2: 1,
        4: 1,
    }  # 1: the later one; 2: the correction came after the cut-off; 4: tie -> larger
    assert counts == {1: 2, 2: 1, 4: 2} and late == {3}
    summary = summarize_classification(
        [1, 2, 3, 4, 5],
        [1, 1, 1, 0, 0],
        [0.9, 0.8, 0.7, 0.2, 0.1],
        labels,
        label_counts=counts,
        late_ids=late,
        orphan_labels=2,
    )
    assert summary.coverage == Coverage(predictions=5, labelled=3, late=1, duplicate=2, orphan_labels=2)
    assert (summary.tp, summary.fn) == (2, 1)


def test_earliest_label_by_the_cutoff_wins_when_asked() -> None:
    """``duplicate_labels="earliest"``: the first verdict counts, later corrections are ignored; ties
    still go to the larger label; labels after the cut-off never count; the counts are the same."""
    t = datetime(2026, 1, 10, tzinfo=UTC)
    cutoff = t + timedelta(days=1)
    ids = [1, 1, 2, 2, 3, 4, 4, 5, 5, 5]
    values = [0, 1, 1, 0, 1, 0, 1, 1, 0, 0]
    times = [
        t + timedelta(hours=1),
        t,
        t + timedelta(hours=2),
        t + timedelta(days=2),
        t + timedelta(days=3),
        t,
        t,
        t + timedelta(hours=3),  # 5: a first verdict, then two corrections
        t + timedelta(hours=5),
        t + timedelta(hours=4),
    ]
    latest, latest_counts, latest_late = winning_labels(ids, values, times, cutoff)
    assert (latest, latest_counts, latest_late) == latest_labels(ids, values, times, cutoff)
    assert latest == {1: 0, 2: 1, 4: 1, 5: 0}
    labels, counts, late = winning_labels(ids, values, times, cutoff, duplicate_labels="earliest")
    # 1: the earlier one (listed second); 2: the only one by the cut-off; 4: a tie -> the larger;
    # 5: the first verdict, not either correction
    assert labels == {1: 1, 2: 1, 4: 1, 5: 1}
    assert counts == latest_counts == {1: 2, 2: 1, 4: 2, 5: 3} and late == latest_late == {3}
    # a missing label loses a tie, a label without a time is ignored
    none_ids, none_values = [6, 6, 7, 7, 8], [None, 0, 1, 0, 1]
    none_times = [t, t, None, t + timedelta(hours=1), None]
    labels, counts, late = winning_labels(
        none_ids, none_values, none_times, cutoff, duplicate_labels="earliest"
    )
    assert labels == {6: 0, 7: 0} and counts == {6: 2, 7: 1} and late == set()
    with pytest.raises(ValueError, match="duplicate_labels must be 'latest' or 'earliest', got 'first'"):
        winning_labels(ids, values, times, cutoff, duplicate_labels="first")  # type: ignore[arg-type]


def test_the_note_on_duplicates_names_the_rule() -> None:
    summary = summarize_classification(
        [1, 2, 3], [1, 0, 1], [0.9, 0.2, 0.8], {1: 1, 2: 0, 3: 1}, label_counts={1: 2, 2: 1, 3: 3}
    )
    assert summary.coverage.duplicate == 2
    latest = judge_performance(summary, PerformanceSettings(), dataset="d")
    assert "2 predictions with duplicate labels (latest kept)" in latest.summary
    earliest = judge_performance(summary, PerformanceSettings(duplicate_labels="earliest"), dataset="d")
    assert "2 predictions with duplicate labels (earliest kept)" in earliest.summary
    with pytest.raises(ValueError, match="duplicate_labels must be 'latest' or 'earliest', got 'last'"):
        PerformanceSettings(duplicate_labels="last")  # type: ignore[arg-type]


def test_summaries_merge_by_addition() -> None:
    rng = np.random.default_rng(3)
    y, s = _classification(rng, 3000)
    whole = _summary(y, s)
    merged = _summary(y[:1000], s[:1000]) + _summary(y[1000:], s[1000:])
    assert merged.positives == whole.positives and merged.tp == whole.tp
    assert merged.log_loss_sum == pytest.approx(whole.log_loss_sum)
    with pytest.raises(MlobsInputError):
        _ = _summary(y, s, bins=100) + whole


# --- judgement -----------------------------------------------------------------------------------------


def _judge(summary: ClassificationSummary, **settings: object):  # type: ignore[no-untyped-def]
    return judge_performance(summary, PerformanceSettings(**settings), dataset="wh:predictions")  # type: ignore[arg-type]


def test_immature_labels_are_skipped_with_the_coverage_and_estimates() -> None:
    rng = np.random.default_rng(8)
    y, s = _classification(rng, 1000)
    labels = {i: int(y[i]) for i in range(410)}
    summary = summarize_classification(np.arange(1000), (s >= 0.5).astype(int), s, labels)
    result = _judge(summary, baseline={"accuracy": 0.85}, max_drop={"accuracy": DropLevels(0.02, 0.05)})
    assert result.status is Status.SKIPPED
    assert "labels not mature: 41% coverage" in result.summary and "expected accuracy" in result.summary
    assert result.metrics["label_coverage"] == pytest.approx(0.41)
    assert result.metrics["metrics"]["expected_accuracy"]["estimate"] is True


def test_drop_within_sampling_error_does_not_breach_but_a_real_drop_does() -> None:
    rng = np.random.default_rng(12)
    y, s = _classification(rng, 400)
    summary = _summary(y, s)
    acc = classification_metrics(summary)["accuracy"]
    assert acc.value is not None and acc.se is not None
    levels = {"accuracy": DropLevels(0.01, 0.02)}
    # 1.5 SE worse than baseline: past both levels, but within sigma=2 SE
    near = _judge(summary, baseline={"accuracy": acc.value + 1.5 * acc.se}, max_drop=levels)
    assert near.status is Status.PASS and "within 2 SE" in near.findings[0].reason
    far = _judge(summary, baseline={"accuracy": acc.value + 0.15}, max_drop=levels)
    assert far.status is Status.FAIL
    assert far.metrics["metric"] == "accuracy" and far.metrics["drop"] == pytest.approx(0.15)
    assert far.metrics["value"] == acc.value and far.metrics["baseline_value"] == pytest.approx(
        acc.value + 0.15
    )
    assert far.metrics["label_coverage"] == 1.0
    warn = _judge(
        summary, baseline={"accuracy": acc.value + 0.15}, max_drop={"accuracy": DropLevels(0.1, 0.2)}
    )
    assert warn.status is Status.WARN
    better = _judge(summary, baseline={"accuracy": acc.value - 0.1}, max_drop=levels)
    assert better.status is Status.PASS and better.metrics["drop"] == pytest.approx(-0.1)
    # the gate and notifications read these keys
    assert "performance_drop" in conditions_met(GatePolicy(drift_share=None, performance_drop=0.1), far)
    assert headline(far) is not None and "label coverage 100%" in (headline(far) or "")
    json.loads(far.to_json())


def test_relative_levels_and_lower_is_better_metrics() -> None:
    assert drop_of("log_loss", 0.5, 0.4) == pytest.approx(0.1)
    assert drop_of("bias", -0.3, 0.1) == pytest.approx(0.2)
    assert drop_of("roc_auc", 0.7, 0.8) == pytest.approx(0.1)
    assert parse_max_drop("5%") == DropLevels(0.05, 0.05, relative=True)
    assert parse_max_drop(("2%", "5%")) == DropLevels(0.02, 0.05, relative=True)
    assert parse_max_drop((0.01, 0.03)) == DropLevels(0.01, 0.03)
    with pytest.raises(ValueError, match="max_drop"):
        parse_max_drop("lots")
    rng = np.random.default_rng(2)
    y, s = _classification(rng, 20_000, separation=0.5)
    summary = _summary(y, s)
    ll = classification_metrics(summary)["log_loss"].value
    assert ll is not None
    result = _judge(
        summary,
        metric="log_loss",
        baseline={"log_loss": ll / 1.2},
        max_drop={"log_loss": DropLevels(0.1, 0.15, relative=True)},
    )
    assert result.status is Status.FAIL and result.metrics["drop"] > 0


def test_unknown_metrics_and_bad_levels_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown classification metric 'acuracy'"):
        PerformanceSettings(metric="acuracy")
    with pytest.raises(ValueError, match="unknown regression metric 'accuracy'"):
        PerformanceSettings(task="regression", metric="accuracy")
    with pytest.raises(ValueError, match="warn <= fail"):
        DropLevels(0.2, 0.1)


def test_undefined_main_metric_is_reported_not_raised() -> None:
    y = np.ones(200, dtype=int)
    s = np.linspace(0.01, 0.99, 200)
    result = _judge(
        _summary(y, s),
        metric="roc_auc",
        baseline={"roc_auc": 0.8},
        max_drop={"roc_auc": DropLevels(0.05, 0.1)},
    )
    assert result.status is Status.SKIPPED and "only positive labels" in result.summary
    assert result.metrics["value"] is None and result.metrics["drop"] is None


def test_segments_name_the_worst_and_warn_at_most() -> None:
    rng = np.random.default_rng(21)
    parts = {}
    for name, sep in (("good", 2.0), ("bad", 0.1), ("ok", 1.5), ("tiny", 0.0)):
        y, s = _classification(rng, 2000 if name != "tiny" else 10, separation=sep)
        parts[name] = _summary(y, s)
    overall = parts["good"] + parts["bad"] + parts["ok"] + parts["tiny"]
    result = judge_performance(
        overall,
        PerformanceSettings(baseline={"accuracy": 0.8}, max_drop={"accuracy": DropLevels(0.05, 0.1)}),
        dataset="d",
        segments=parts,
    )
    assert result.metrics["worst_segments"][0] == "bad"
    assert "worst segments: bad" in result.summary
    seg = {f.subject: f for f in result.findings if f.subject.startswith("segment:")}
    assert seg["segment:bad"].status is Status.WARN  # a fail capped at warn
    assert "segment:tiny" not in seg  # fewer than min_segment_labels


# --- the operator's own checks (no database) -------------------------------------------------------


def test_operator_validates_arguments_at_parse_time_and_names_both_connections() -> None:
    from airflow_mlobs.operators import PerformanceCheckOperator

    common = dict(
        conn_id="preds_db",
        predictions_table="predictions",
        labels_table="labels",
        prediction_time_column="predicted_at",
        label_time_column="labelled_at",
        score_column="score",
    )
    with pytest.raises(ValueError, match="label_delay"):
        PerformanceCheckOperator(task_id="t1", label_delay="a week", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown classification metric 'auc'"):
        PerformanceCheckOperator(task_id="t2", metric="auc", **common)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^t7: duplicate_labels must be 'latest' or 'earliest', got 'newest'$"
    ):
        PerformanceCheckOperator(task_id="t7", duplicate_labels="newest", **common)  # type: ignore[arg-type]
    first = PerformanceCheckOperator(task_id="t8", duplicate_labels="earliest", **common)  # type: ignore[arg-type]
    assert first.duplicate_labels == first.settings.duplicate_labels == "earliest"
    assert PerformanceCheckOperator(task_id="t9", **common).settings.duplicate_labels == "latest"  # type: ignore[arg-type]
    op = PerformanceCheckOperator(task_id="t3", label_conn_id="labels_db", label_delay="7d", **common)  # type: ignore[arg-type]
    assert op.label_delay == timedelta(days=7) and op.dataset_name() == "preds_db:predictions"
    context = {
        "data_interval_start": datetime(2026, 1, 1, tzinfo=UTC),
        "data_interval_end": datetime(2026, 1, 2, tzinfo=UTC),
    }
    # Across connections the join runs in memory (tests/integration/test_performance_join.py); an
    # undefined connection is an error naming both sides and the missing one.
    with pytest.raises(
        MlobsInputError,
        match="'preds_db' and labels on connection 'labels_db' in memory: connection 'preds_db' is not defined",
    ):
        op.evaluate(context)  # type: ignore[arg-type]
    # A reference window is checked before any query: it must end by the label cut-off.
    with pytest.raises(ValueError, match=r"reference_window must be \(start, end\)"):
        PerformanceCheckOperator(task_id="t4", reference_window=("2025-12-01",), **common)  # type: ignore[arg-type]
    late = PerformanceCheckOperator(
        task_id="t5",
        reference_window=("2025-12-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00"),
        **common,  # type: ignore[arg-type]
    )
    with pytest.raises(
        MlobsInputError, match="reference_window ends at 2026-01-05T00:00:00\\+00:00, after the label cut-off"
    ):
        late.evaluate(context)  # type: ignore[arg-type]
    backwards = PerformanceCheckOperator(
        task_id="t6",
        reference_window=("2025-12-10", "2025-12-01"),
        **common,  # type: ignore[arg-type]
    )
    with pytest.raises(MlobsInputError, match="start < end"):
        backwards.evaluate(context)  # type: ignore[arg-type]


# --- reference window: calibrated estimates and measured baselines -----------------------------------


def _miscalibrated(rng: np.random.Generator, n: int, low: float, high: float):  # type: ignore[no-untyped-def]
    """Scores uniform on [low, high]; the true positive probability is half the score (an
    over-confident model), the same in every window (covariate shift only)."""
    s = rng.uniform(low, high, n)
    y = (rng.random(n) < 0.5 * s).astype(int)
    return y, s


def test_calibration_map_is_the_reference_rate_per_score_bin_and_identity_where_empty() -> None:
    rng = np.random.default_rng(21)
    y, s = _miscalibrated(rng, 50_000, 0.0, 0.7)
    from airflow_mlobs.core.performance.metrics import calibration_map

    rates = calibration_map(_summary(y, s))
    assert len(rates) == 10
    for b in range(7):
        inside = (s >= b / 10) & (s < (b + 1) / 10)
        assert rates[b] == pytest.approx(y[inside].mean(), abs=1e-12)
    # no reference scores above 0.7: those bins keep their midpoint (no correction)
    assert rates[7:] == pytest.approx((0.75, 0.85, 0.95))


def test_calibrated_estimates_equal_a_direct_computation_and_track_the_labels() -> None:
    rng = np.random.default_rng(22)
    ref_y, ref_s = _miscalibrated(rng, 100_000, 0.0, 1.0)
    reference = _summary(ref_y, ref_s)
    y, s = _miscalibrated(rng, 20_000, 0.3, 1.0)  # the new mix scores higher
    current = _summary(y, s)
    from airflow_mlobs.core.performance.metrics import calibration_map

    rates = np.asarray(calibration_map(reference))
    calibrated = classification_metrics(current, tuple(rates))
    raw = classification_metrics(current)
    c = rates[np.minimum((score_bin(s, 1000) + 0.5) / 1000 * 10, 9).astype(int)]
    yhat = s >= 0.5
    assert calibrated["expected_positive_rate"].value == pytest.approx(c.mean(), rel=1e-12)
    assert calibrated["expected_accuracy"].value == pytest.approx(np.where(yhat, c, 1 - c).mean(), rel=1e-12)
    assert calibrated["expected_accuracy"].extra == {"calibration": "reference"}
    assert raw["expected_positive_rate"].value == pytest.approx(s.mean())
    # the calibrated estimates are close to what the labels show; the raw ones are far off
    actual_rate, actual_accuracy = y.mean(), (yhat == (y == 1)).mean()
    assert abs(calibrated["expected_positive_rate"].value - actual_rate) < 0.01
    assert abs(calibrated["expected_accuracy"].value - actual_accuracy) < 0.015  # type: ignore[operator]
    assert abs(raw["expected_positive_rate"].value - actual_rate) > 0.25  # type: ignore[operator]


def test_reference_window_gives_the_baseline_and_its_error_counts_in_the_noise() -> None:
    rng = np.random.default_rng(23)
    ref_y, ref_s = _classification(rng, 400, separation=1.2)
    reference = _summary(ref_y, ref_s)
    ref_acc = classification_metrics(reference)["accuracy"]
    y, s = _classification(rng, 400, separation=1.2)
    summary = _summary(y, s)
    acc = classification_metrics(summary)["accuracy"]
    assert acc.value is not None and ref_acc.value is not None and ref_acc.se is not None
    settings = PerformanceSettings(
        max_drop={"accuracy": DropLevels(0.0, 0.0), "roc_auc": DropLevels(0.5, 0.6)}
    )
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
    result = judge_performance(summary, settings, dataset="d", reference=reference, reference_window=window)
    m = result.metrics
    assert m["baseline_value"] == ref_acc.value and m["baseline_source"] == "reference"
    assert m["baseline_se"] == ref_acc.se
    assert m["reference"]["window"] == [t.isoformat() for t in window]
    assert m["reference"]["labelled"] == 400 and "roc_auc" in m["reference"]["metrics"]
    assert {f.metric for f in result.findings if f.subject == "model"} == {"accuracy", "roc_auc"}
    se = math.hypot(acc.se or 0, ref_acc.se)
    finding = next(f for f in result.findings if f.metric == "accuracy")
    assert f"SE {se:.2g}" in finding.reason
    drop = ref_acc.value - acc.value
    # with zero levels, only the sampling error of both windows decides
    assert (finding.status is Status.FAIL) == (drop > 2 * se)
    assert "vs baseline" in result.summary and "(reference window)" in result.summary
    # a given value wins over the reference
    given = judge_performance(
        summary,
        PerformanceSettings(baseline={"accuracy": 0.99}, max_drop={"accuracy": DropLevels(0.01, 0.02)}),
        dataset="d",
        reference=reference,
    )
    assert given.metrics["baseline_value"] == 0.99 and given.metrics["baseline_source"] == "given"
    assert given.status is Status.FAIL


def test_reference_without_labels_gives_no_baseline_and_says_so() -> None:
    rng = np.random.default_rng(24)
    y, s = _classification(rng, 300)
    reference = summarize_classification(np.arange(300), (s >= 0.5).astype(int), s, {})
    empty = ClassificationSummary()
    for ref in (reference, empty):
        result = judge_performance(
            _summary(y, s),
            PerformanceSettings(max_drop={"accuracy": DropLevels(0.01, 0.02)}),
            dataset="d",
            reference=ref,
        )
        assert result.status is Status.PASS and result.metrics["baseline_value"] is None
        assert "the reference window has no labelled predictions" in result.summary
        assert result.findings[0].reason == "no baseline"


def test_immature_window_estimates_are_calibrated_on_the_reference_and_compared_with_the_baseline() -> None:
    rng = np.random.default_rng(25)
    ref_y, ref_s = _miscalibrated(rng, 50_000, 0.0, 1.0)
    y, s = _miscalibrated(rng, 5_000, 0.3, 1.0)
    labels = {i: int(y[i]) for i in range(200)}
    summary = summarize_classification(np.arange(5_000), (s >= 0.5).astype(int), s, labels)
    result = judge_performance(
        summary,
        PerformanceSettings(min_label_coverage=0.8, max_drop={"accuracy": DropLevels(0.02, 0.05)}),
        dataset="d",
        reference=_summary(ref_y, ref_s),
    )
    assert result.status is Status.SKIPPED
    assert "estimated from scores calibrated on the reference window: expected accuracy" in result.summary
    assert "(baseline " in result.summary
    assert result.metrics["metrics"]["expected_accuracy"]["calibration"] == "reference"


@pytest.mark.parametrize(
    ("argument", "value", "allowed"),
    [
        ("threshold", 1.5, "[0, 1]"),
        ("sigma", 0.0, "> 0"),
        ("min_label_coverage", -0.1, "[0, 1]"),
        ("min_segment_labels", 0, ">= 1"),
        ("bins", 1, "[2, 1000000]"),
        ("chunksize", 0, ">= 1"),
        ("max_drop", -0.05, "0 <= warn <= fail"),
        ("metric", "rmse", "use one of"),
        ("timezone", "Mars/Olympus", "IANA"),
        ("duplicate_labels", "first", "'latest' or 'earliest'"),
    ],
)
def test_out_of_range_settings_are_a_dag_import_error_naming_task_argument_and_range(
    argument: str, value: object, allowed: str
) -> None:
    from airflow_mlobs.operators import PerformanceCheckOperator

    with pytest.raises(ValueError) as raised:
        PerformanceCheckOperator(
            task_id="perf_churn",
            conn_id="warehouse",
            predictions_table="predictions",
            labels_table="labels",
            prediction_time_column="predicted_at",
            label_time_column="labelled_at",
            score_column="score",
            **{argument: value},  # type: ignore[arg-type]
        )
    message = str(raised.value)
    assert message.startswith("perf_churn: ") and allowed in message, message
    assert argument in message or repr(value) in message, message


def test_an_invalid_score_has_no_predicted_class_when_the_class_comes_from_the_score() -> None:
    from airflow_mlobs.core.performance.summary import summarize_classification_arrays

    # 4 correct scored predictions and 4 with NULL, NaN, +inf and 1.5 (all positives)
    scores = np.array([0.9, 0.1, 0.8, 0.2, np.nan, np.nan, np.inf, 1.5])
    y = np.array([1, 0, 1, 0, 1, 1, 1, 1], dtype=bool)
    yhat = scores >= 0.5
    decided = summarize_classification_arrays(np.ones(8, bool), y, yhat, scores, score_decides=True)
    assert (decided.tp, decided.fp, decided.fn, decided.tn) == (2, 0, 0, 2)
    assert decided.unscored == 4 and decided.invalid_scores == 4 and decided.labelled == 4
    assert classification_metrics(decided)["accuracy"].value == 1.0
    result = _judge(decided, baseline={"accuracy": 0.95}, max_drop={"accuracy": DropLevels(0.02, 0.02)})
    assert "4 predictions without a valid score excluded" in result.summary
    assert result.metrics["unscored"] == 4
    # with a predicted-class column the class is known: counted, only the score metrics skip them
    given = summarize_classification_arrays(np.ones(8, bool), y, np.ones(8, bool) & y, scores)
    assert given.labelled == 8 and given.unscored == 0 and given.invalid_scores == 4


def test_huge_regression_values_make_rmse_undefined_not_infinite() -> None:
    from airflow_mlobs.core.performance.summary import summarize_regression_arrays

    y = np.array([1e300, -1e300, 1.0, 2.0, 3.0])
    summary = summarize_regression_arrays(np.ones(5, bool), y, np.array([0.0, 0.0, 1.0, 2.0, 3.5]))
    assert summary.huge == 2 and summary.count == 5
    metrics = regression_metrics(summary)
    assert metrics["rmse"].value is None and "not finite" in (metrics["rmse"].reason or "")
    assert metrics["r2"].value is None
    json.dumps({k: m.to_dict() for k, m in metrics.items()}, allow_nan=False)
