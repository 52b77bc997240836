"""Fairness definitions against Fairlearn's MetricFrame and metrics, merging, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy import stats
from sklearn.metrics import accuracy_score

from airflow_mlobs.core.fairness import (
    FairnessSummary,
    FairnessThresholds,
    GroupCounts,
    attribute_report,
    judge_fairness,
)
from airflow_mlobs.core.intervals import wilson_interval
from airflow_mlobs.core.result import Status
from airflow_mlobs.sources.fairness_frame import fairness_summary_rows


def _rows(seed: int = 3, n: int = 3000) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], size=n)
    y = rng.integers(0, 2, size=n)
    p = np.where(region == "south", 0.25, 0.5) + 0.2 * y
    yhat = (rng.random(n) < p).astype(int)
    return [
        {"region": str(r), "predicted": int(a), "label": int(b)}
        for r, a, b in zip(region, yhat, y, strict=True)
    ]


def test_metrics_equal_fairlearn() -> None:
    rows = _rows()
    y = np.array([r["label"] for r in rows])
    yhat = np.array([r["predicted"] for r in rows])
    g = np.array([r["region"] for r in rows])
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "accuracy": accuracy_score,
        },
        y_true=y,
        y_pred=yhat,
        sensitive_features=g,
    )
    rep = attribute_report(
        "region", fairness_summary_rows(rows, ["region"]).groups["region"], min_group_size=1
    )
    for group in ("north", "south", "east"):
        ours = rep.rates[group]
        assert ours["selection_rate"] == pytest.approx(frame.by_group.loc[group, "selection_rate"], abs=1e-12)
        assert ours["true_positive_rate"] == pytest.approx(frame.by_group.loc[group, "tpr"], abs=1e-12)
        assert ours["false_positive_rate"] == pytest.approx(frame.by_group.loc[group, "fpr"], abs=1e-12)
        assert ours["accuracy"] == pytest.approx(frame.by_group.loc[group, "accuracy"], abs=1e-12)
    gaps = rep.gaps
    assert gaps["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(y, yhat, sensitive_features=g), abs=1e-12
    )
    assert gaps["disparate_impact_ratio"].value == pytest.approx(
        demographic_parity_ratio(y, yhat, sensitive_features=g), abs=1e-12
    )
    assert gaps["equalized_odds_difference"].value == pytest.approx(
        equalized_odds_difference(y, yhat, sensitive_features=g), abs=1e-12
    )
    tpr = frame.by_group["tpr"]
    assert gaps["equal_opportunity_difference"].value == pytest.approx(tpr.max() - tpr.min(), abs=1e-12)
    assert gaps["disparate_impact_ratio"].worst == "south"


def test_wilson_and_newcombe_against_scipy() -> None:
    k, n = 37, 120
    low, high = wilson_interval(k, n)  # type: ignore[misc]
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-9)
    groups = {"a": GroupCounts(n=200, selected=120), "b": GroupCounts(n=150, selected=45)}
    gap = attribute_report("x", groups, min_group_size=1).gaps["demographic_parity_difference"]
    assert gap.value == pytest.approx(0.6 - 0.3)
    la, ua = wilson_interval(120, 200)  # type: ignore[misc]
    lb, ub = wilson_interval(45, 150)  # type: ignore[misc]
    assert gap.low == pytest.approx(0.3 - math.sqrt((0.6 - la) ** 2 + (ub - 0.3) ** 2))
    assert gap.high == pytest.approx(0.3 + math.sqrt((ua - 0.6) ** 2 + (0.3 - lb) ** 2))
    assert gap.se == pytest.approx(math.sqrt(0.6 * 0.4 / 200 + 0.3 * 0.7 / 150))
    assert gap.low < gap.value < gap.high  # type: ignore[operator]


def test_summary_merges_week_is_sum_of_days() -> None:
    rows = _rows(n=700)
    days = [rows[i : i + 100] for i in range(0, 700, 100)]
    summed = FairnessSummary()
    for day in days:
        summed = summed + fairness_summary_rows(day, ["region"])
    assert summed == fairness_summary_rows(rows, ["region"])


def test_four_fifths_warns_and_names_worst_group() -> None:
    summary = FairnessSummary(
        {"region": {"north": GroupCounts(n=500, selected=250), "south": GroupCounts(n=500, selected=150)}}
    )
    status, text, findings, metrics = judge_fairness(summary)
    assert status == Status.WARN
    assert "region=south" in text
    di = next(f for f in findings if f.metric == "disparate_impact_ratio")
    assert di.value == pytest.approx(0.6) and di.threshold == 0.8
    # no labels yet: label gaps skipped with a reason, selection part still judged
    eo = next(f for f in findings if f.metric == "equalized_odds_difference")
    assert eo.status == Status.SKIPPED and "labelled" in eo.reason
    assert metrics["region"]["gaps"]["demographic_parity_difference"]["value"] == pytest.approx(0.2)


def test_ratio_below_four_fifths_within_sampling_error_passes_and_says_so() -> None:
    """75 per group: a ratio of 0.64 has a 95% interval reaching past 0.8, so it is not evidence
    of adverse impact (the interval rule); the point-estimate rule warns on it."""
    summary = FairnessSummary(
        {"region": {"north": GroupCounts(n=75, selected=22), "south": GroupCounts(n=75, selected=14)}}
    )
    status, _, findings, metrics = judge_fairness(summary)
    di = next(f for f in findings if f.metric == "disparate_impact_ratio")
    gap = metrics["region"]["gaps"]["disparate_impact_ratio"]
    assert di.value == pytest.approx(14 / 22, abs=1e-6) and gap["high"] > 0.8
    assert status == Status.PASS and di.status == Status.PASS
    assert "below 0.8 but within sampling error" in di.reason
    status, _, _, _ = judge_fairness(summary, FairnessThresholds(ratio_rule="estimate"))
    assert status == Status.WARN
    # the same rates on 20x the predictions: the interval lies below 0.8, so it warns
    big = FairnessSummary(
        {"region": {"north": GroupCounts(n=1500, selected=440), "south": GroupCounts(n=1500, selected=280)}}
    )
    status, text, findings, metrics = judge_fairness(big)
    assert metrics["region"]["gaps"]["disparate_impact_ratio"]["high"] < 0.8
    assert status == Status.WARN and "region=south" in text


def test_ratio_interval_matches_its_definition() -> None:
    """The delta-method interval on log(ratio), computed here from its formula."""
    import math

    summary = FairnessSummary(
        {"g": {"a": GroupCounts(n=400, selected=120), "b": GroupCounts(n=300, selected=45)}}
    )
    _, _, _, metrics = judge_fairness(summary)
    gap = metrics["g"]["gaps"]["disparate_impact_ratio"]
    ratio = (45 / 300) / (120 / 400)
    se = math.sqrt((1 - 45 / 300) / 45 + (1 - 120 / 400) / 120)
    assert gap["value"] == pytest.approx(ratio)
    assert gap["low"] == pytest.approx(ratio * math.exp(-1.959964 * se), rel=1e-4)
    assert gap["high"] == pytest.approx(ratio * math.exp(1.959964 * se), rel=1e-4)


def test_bias_creep_against_reference_beyond_noise() -> None:
    ref = FairnessSummary(
        {"g": {"a": GroupCounts(n=2000, selected=1000), "b": GroupCounts(n=2000, selected=980)}}
    )
    now = FairnessSummary(
        {"g": {"a": GroupCounts(n=2000, selected=1000), "b": GroupCounts(n=2000, selected=740)}}
    )
    small = FairnessSummary({"g": {"a": GroupCounts(n=40, selected=24), "b": GroupCounts(n=40, selected=18)}})
    t = FairnessThresholds(warn_ratio=None)
    status, text, _, _ = judge_fairness(now, t, ref)
    assert status == Status.FAIL and "g=b" in text
    # a growth of 0.14 on 40 per group is within sampling error: not judged as creep
    status_small, _, _, _ = judge_fairness(small, t, ref)
    assert status_small == Status.PASS


def test_degenerate_groups() -> None:
    rows = (
        [{"region": None, "predicted": 1, "label": None}] * 50
        + [{"region": "x", "predicted": 0, "label": 0}] * 50
        + [{"region": "tiny", "predicted": 1, "label": 1}] * 3
    )
    summary = fairness_summary_rows(rows, ["region"])
    status, _, findings, metrics = judge_fairness(summary)
    skipped = [f for f in findings if f.metric == "group_size"]
    assert [f.subject for f in skipped] == ["region=tiny"]
    assert metrics["region"]["groups"]["x"]["true_positive_rate_reason"] == "no labelled positives"
    di = next(f for f in findings if f.metric == "disparate_impact_ratio")
    assert di.value == 0.0 and di.status == Status.WARN
    # no selected prediction in the low group: the upper bound is its Wilson bound over the rate
    # of the high group (50 of 50 selected), here 0 of 50 -> 0.0713 / 1.0
    assert metrics["region"]["gaps"]["disparate_impact_ratio"]["high"] == pytest.approx(0.07134, abs=1e-4)
    # an all-NULL group column: one group "(none)", gaps skipped with the reason
    status, _, findings, _ = judge_fairness(fairness_summary_rows(rows[:50], ["region"]))
    assert status == Status.SKIPPED
    assert all(f.status == Status.SKIPPED and f.reason for f in findings)
    assert judge_fairness(FairnessSummary())[0] == Status.SKIPPED


def test_headline_names_the_worst_group() -> None:
    from airflow_mlobs.core.result import CheckResult
    from airflow_mlobs.render.headline import headline

    summary = FairnessSummary(
        {"region": {"north": GroupCounts(n=500, selected=250), "south": GroupCounts(n=500, selected=150)}}
    )
    status, text, _, metrics = judge_fairness(summary)
    result = CheckResult(check="fairness", dataset="d", status=status, summary=text, metrics=metrics)
    assert headline(result) == "region: south selected at 0.60x north (parity gap 0.20)"


def test_spec_defaults_are_the_recorders_layout() -> None:
    from airflow_mlobs.recorder.layout import PERFORMANCE_DEFAULTS
    from airflow_mlobs.specs.fairness import FairnessSpec

    spec = FairnessSpec(conn_id="c", group_columns=("region",))
    for name, value in PERFORMANCE_DEFAULTS.items():
        if name != "model_version_column":  # judged across versions unless asked
            assert getattr(spec, name) == value, name
