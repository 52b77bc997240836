"""Bias creep across groups: per-group rates, the gaps between groups, and their judgement. Pure.

Definitions (one attribute, e.g. ``region``; ``g`` a group of it; counts per group from the
window's predictions, and once labels mature their confusion counts):

* selection rate ``SR_g = selected_g / n_g`` (predicted positives over predictions with a predicted
  class; needs no label);
* true positive rate ``TPR_g = tp / (tp + fn)``, false positive rate ``FPR_g = fp / (fp + tn)``,
  accuracy ``(tp + tn) / (tp + fp + tn + fn)`` over the labelled predictions;
* demographic parity difference ``max_g SR_g - min_g SR_g`` and ratio (disparate impact)
  ``min_g SR_g / max_g SR_g`` (the four-fifths rule: a ratio below 0.8 is adverse impact);
* equal opportunity difference ``max_g TPR_g - min_g TPR_g``; equalized odds difference
  ``max(TPR difference, FPR difference)`` (Fairlearn's ``equalized_odds_difference`` with
  ``agg="worst_case"``).

Intervals: each group rate has a Wilson score interval (:func:`wilson_interval`, 95 %). A
difference ``max - min`` (between the two extreme groups ``a``, ``b``) has Newcombe's hybrid score
interval (method 10: ``d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2)``, ``d + sqrt((u_a - p_a)^2 +
(p_b - l_b)^2)``) and a delta-method standard error ``sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b)``. The
disparate impact ratio has the delta-method standard error of its logarithm,
``sqrt((1-p_min)/(n_min p_min) + (1-p_max)/(n_max p_max))``, and the interval
``ratio * exp(±z se)``.

Groups with fewer than ``min_group_size`` predictions (for the label metrics: labelled
predictions; for a TPR: labelled positives; for an FPR: labelled negatives) are skipped with the
reason and not judged; a gap needs at least two judged groups.

Judgement (:func:`judge_fairness`): the disparate impact ratio warns when it is below ``warn_ratio``
(default 0.8, the four-fifths rule) beyond its sampling error, i.e. when the upper bound of its
interval is below the level, and fails likewise below ``fail_ratio`` (default unset). A point estimate
below the level whose interval still reaches it passes, its finding saying "below 0.8 but within
sampling error" (with 75 predictions in a group, a ratio of 0.6 is not yet evidence).
``ratio_rule="estimate"`` judges the point estimate alone, as the four-fifths rule is often applied.
When the lowest group selected none, the upper bound is its Wilson upper bound over the highest
group's rate. Against a reference window's summary, bias creep
is a gap that grows: ``growth = gap - reference_gap``; it warns when ``growth > warn_growth`` and
fails when ``growth > fail_growth``, each only when also ``growth > z sqrt(se^2 + se_ref^2)`` (beyond
its sampling error). The worst group (lowest selection rate, lowest TPR) is named in the summary.

The counts are sums, so summaries merge (:meth:`FairnessSummary.__add__`): a week is the sum of its
days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_mlobs.core.intervals import wilson_interval
from airflow_mlobs.core.result import Finding, Status, worst

#: The check's name in results.
CHECK = "fairness"
Z95 = 1.959963984540054
NULL_GROUP = "(none)"


@dataclass(frozen=True)
class GroupCounts:
    """One group's counts: ``n`` predictions with a predicted class, ``selected`` predicted
    positives; over the labelled ones the confusion counts ``tp``, ``fp``, ``tn``, ``fn``."""

    n: int = 0
    selected: int = 0
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts(
            self.n + other.n,
            self.selected + other.selected,
            self.tp + other.tp,
            self.fp + other.fp,
            self.tn + other.tn,
            self.fn + other.fn,
        )

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True)
class FairnessSummary:
    """Per attribute, per group (value as text, ``"(none)"`` for NULL), the :class:`GroupCounts`."""

    groups: Mapping[str, Mapping[str, GroupCounts]] = field(default_factory=dict)

    def __add__(self, other: FairnessSummary) -> FairnessSummary:
        merged: dict[str, dict[str, GroupCounts]] = {a: dict(g) for a, g in self.groups.items()}
        for attribute, groups in other.groups.items():
            target = merged.setdefault(attribute, {})
            for name, counts in groups.items():
                target[name] = target.get(name, GroupCounts()) + counts
        return FairnessSummary(merged)


@dataclass(frozen=True)
class Gap:
    """One gap (``metric``: ``demographic_parity_difference`` ...) of one attribute: its value, the
    groups at the extremes (``worst``: the lowest rate), the delta-method ``se`` and the interval;
    or ``value=None`` with the ``reason``."""

    metric: str
    value: float | None
    worst: str | None = None
    best: str | None = None
    se: float | None = None
    low: float | None = None
    high: float | None = None
    reason: str = ""


def _rate(k: int, n: int) -> float | None:
    return k / n if n > 0 else None


def _difference(rates: Mapping[str, tuple[int, int]], metric: str, z: float) -> Gap:
    """``max - min`` of ``k/n`` over the groups, with Newcombe's interval and delta-method se."""
    usable = {g: kn for g, kn in rates.items() if kn[1] > 0}
    if len(usable) < 2:
        return Gap(metric, None, reason=f"{len(usable)} group(s) large enough; a gap needs two")
    by_rate = sorted(usable, key=lambda g: (usable[g][0] / usable[g][1], g))
    lo_g, hi_g = by_rate[0], by_rate[-1]
    (ka, na), (kb, nb) = usable[hi_g], usable[lo_g]
    pa, pb = ka / na, kb / nb
    d = pa - pb
    wa, wb = wilson_interval(ka, na, z), wilson_interval(kb, nb, z)
    assert wa is not None and wb is not None
    low = d - math.sqrt((pa - wa[0]) ** 2 + (wb[1] - pb) ** 2)
    high = d + math.sqrt((wa[1] - pa) ** 2 + (pb - wb[0]) ** 2)
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return Gap(metric, d, worst=lo_g, best=hi_g, se=se, low=low, high=high)


def _ratio(rates: Mapping[str, tuple[int, int]], z: float) -> Gap:
    metric = "disparate_impact_ratio"
    usable = {g: kn for g, kn in rates.items() if kn[1] > 0}
    if len(usable) < 2:
        return Gap(metric, None, reason=f"{len(usable)} group(s) large enough; a ratio needs two")
    by_rate = sorted(usable, key=lambda g: (usable[g][0] / usable[g][1], g))
    lo_g, hi_g = by_rate[0], by_rate[-1]
    (kl, nl), (kh, nh) = usable[lo_g], usable[hi_g]
    if kh == 0:
        return Gap(metric, None, reason="no group has a selected prediction", worst=lo_g, best=hi_g)
    ratio = (kl / nl) / (kh / nh)
    if kl == 0:
        upper = wilson_interval(kl, nl, z)
        assert upper is not None
        high = upper[1] / (kh / nh)
        return Gap(
            metric,
            0.0,
            worst=lo_g,
            best=hi_g,
            low=0.0,
            high=high,
            reason=f"group {lo_g} has no selected prediction",
        )
    se = math.sqrt((1 - kl / nl) / kl + (1 - kh / nh) / kh)
    return Gap(metric, ratio, lo_g, hi_g, se, ratio * math.exp(-z * se), ratio * math.exp(z * se))


@dataclass(frozen=True)
class AttributeReport:
    """One attribute's per-group rates (with Wilson intervals), gaps and skipped groups."""

    attribute: str
    rates: Mapping[str, Mapping[str, Any]]
    gaps: Mapping[str, Gap]
    skipped: Mapping[str, str]


def attribute_report(
    attribute: str, groups: Mapping[str, GroupCounts], min_group_size: int = 30, z: float = Z95
) -> AttributeReport:
    """The rates and gaps of one attribute (module docstring)."""
    skipped: dict[str, str] = {}
    selection: dict[str, tuple[int, int]] = {}
    tpr: dict[str, tuple[int, int]] = {}
    fpr: dict[str, tuple[int, int]] = {}
    acc: dict[str, tuple[int, int]] = {}
    rates: dict[str, dict[str, Any]] = {}
    for g in sorted(groups):
        c = groups[g]
        row: dict[str, Any] = {"n": c.n, "selected": c.selected, "labelled": c.labelled}
        if c.n < min_group_size:
            skipped[g] = f"{c.n} predictions < min_group_size {min_group_size}"
            rates[g] = row
            continue
        selection[g] = (c.selected, c.n)
        row["selection_rate"] = c.selected / c.n
        row["selection_rate_interval"] = wilson_interval(c.selected, c.n, z)
        if c.labelled >= min_group_size:
            acc[g] = (c.tp + c.tn, c.labelled)
            row["accuracy"] = (c.tp + c.tn) / c.labelled
            if c.tp + c.fn > 0:
                tpr[g] = (c.tp, c.tp + c.fn)
                row["true_positive_rate"] = c.tp / (c.tp + c.fn)
                row["true_positive_rate_interval"] = wilson_interval(c.tp, c.tp + c.fn, z)
            else:
                row["true_positive_rate_reason"] = "no labelled positives"
            if c.fp + c.tn > 0:
                fpr[g] = (c.fp, c.fp + c.tn)
                row["false_positive_rate"] = c.fp / (c.fp + c.tn)
                row["false_positive_rate_interval"] = wilson_interval(c.fp, c.fp + c.tn, z)
            else:
                row["false_positive_rate_reason"] = "no labelled negatives"
        else:
            row["label_reason"] = f"{c.labelled} labelled < min_group_size {min_group_size}"
        rates[g] = row
    gaps = {
        "demographic_parity_difference": _difference(selection, "demographic_parity_difference", z),
        "disparate_impact_ratio": _ratio(selection, z),
        "accuracy_difference": _difference(acc, "accuracy_difference", z),
        "equal_opportunity_difference": _difference(tpr, "equal_opportunity_difference", z),
    }
    fpr_gap = _difference(fpr, "false_positive_rate_difference", z)
    gaps["false_positive_rate_difference"] = fpr_gap
    eo = gaps["equal_opportunity_difference"]
    if eo.value is None or fpr_gap.value is None:
        why = "; ".join(x.reason for x in (eo, fpr_gap) if x.value is None)
        if not acc:
            why = "no group has enough labelled predictions yet"
        gaps["equalized_odds_difference"] = Gap("equalized_odds_difference", None, reason=why)
        for name in ("equal_opportunity_difference", "accuracy_difference", "false_positive_rate_difference"):
            if gaps[name].value is None and not acc:
                gaps[name] = Gap(name, None, reason="no group has enough labelled predictions yet")
    else:
        pick = eo if eo.value >= fpr_gap.value else fpr_gap
        gaps["equalized_odds_difference"] = Gap(
            "equalized_odds_difference", pick.value, pick.worst, pick.best, pick.se, pick.low, pick.high
        )
    return AttributeReport(attribute, rates, gaps, skipped)


@dataclass(frozen=True)
class FairnessThresholds:
    """``warn_ratio`` / ``fail_ratio``: the disparate impact ratio below which the check warns /
    fails (four-fifths rule by default; ``None`` turns one off). ``warn_growth`` / ``fail_growth``:
    how much a difference gap (demographic parity, equal opportunity, equalized odds) may grow over
    the reference's before warning / failing, and only beyond ``z`` standard errors of the growth.
    ``min_group_size``: smaller groups are skipped. ``ratio_rule``: ``"interval"`` judges the ratio's
    upper interval bound against the levels (adverse impact beyond sampling error), ``"estimate"``
    the point estimate."""

    warn_ratio: float | None = 0.8
    fail_ratio: float | None = None
    ratio_rule: str = "interval"
    warn_growth: float | None = 0.05
    fail_growth: float | None = 0.10
    min_group_size: int = 30
    z: float = Z95


RATIO_RULES = ("interval", "estimate")


def _judge_ratio(di: Gap, t: FairnessThresholds, attribute: str) -> tuple[Status, float | None, str]:
    """Status, level and reason of a disparate impact ratio (module docstring: the judged value is
    the interval's upper bound under ``ratio_rule="interval"``, the point estimate otherwise)."""
    assert di.value is not None
    judged = di.high if t.ratio_rule == "interval" and di.high is not None else di.value
    reason = f"selection rate of {attribute}={di.worst} is {di.value:.2f} of {attribute}={di.best}'s"
    if di.high is not None:
        reason += f" (95% interval up to {di.high:.2f})"
    for level, status in ((t.fail_ratio, Status.FAIL), (t.warn_ratio, Status.WARN)):
        if level is not None and judged < level:
            return status, level, reason
    for level in (t.fail_ratio, t.warn_ratio):
        if level is not None and di.value < level:
            return Status.PASS, t.warn_ratio, reason + f"; below {level:g} but within sampling error"
    return Status.PASS, t.warn_ratio, reason


CREEP_GAPS = ("demographic_parity_difference", "equal_opportunity_difference", "equalized_odds_difference")


def judge_fairness(
    summary: FairnessSummary,
    thresholds: FairnessThresholds = FairnessThresholds(),
    reference: FairnessSummary | None = None,
) -> tuple[Status, str, list[Finding], dict[str, Any]]:
    """Status, one-line summary naming the worst group, findings and metrics (module docstring)."""
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    notes: list[str] = []
    t = thresholds
    for attribute in sorted(summary.groups):
        rep = attribute_report(attribute, summary.groups[attribute], t.min_group_size, t.z)
        ref = None
        if reference is not None and attribute in reference.groups:
            ref = attribute_report(attribute, reference.groups[attribute], t.min_group_size, t.z)
        metrics[attribute] = {
            "groups": rep.rates,
            "gaps": {k: _gap_dict(v) for k, v in rep.gaps.items()},
            "skipped": dict(rep.skipped),
        }
        for g, why in rep.skipped.items():
            findings.append(Finding(f"{attribute}={g}", "group_size", Status.SKIPPED, reason=why))
        di = rep.gaps["disparate_impact_ratio"]
        if di.value is None:
            findings.append(Finding(attribute, di.metric, Status.SKIPPED, reason=di.reason))
        else:
            status, threshold, reason = _judge_ratio(di, t, attribute)
            findings.append(Finding(attribute, di.metric, status, round(di.value, 6), threshold, reason))
            if status != Status.PASS:
                notes.append(f"{attribute}={di.worst} selected at {di.value:.2f}x {attribute}={di.best}")
        for name in CREEP_GAPS:
            gap = rep.gaps[name]
            if gap.value is None:
                findings.append(Finding(attribute, name, Status.SKIPPED, reason=gap.reason))
                continue
            if ref is None or ref.gaps[name].value is None:
                findings.append(
                    Finding(attribute, name, Status.PASS, round(gap.value, 6), reason="no reference gap")
                )
                continue
            base = ref.gaps[name]
            assert base.value is not None
            growth = gap.value - base.value
            noise = t.z * math.sqrt((gap.se or 0.0) ** 2 + (base.se or 0.0) ** 2)
            status = Status.PASS
            threshold = t.warn_growth
            if growth > noise:
                if t.fail_growth is not None and growth > t.fail_growth:
                    status, threshold = Status.FAIL, t.fail_growth
                elif t.warn_growth is not None and growth > t.warn_growth:
                    status = Status.WARN
            reason = (
                f"gap {gap.value:.3f} vs reference {base.value:.3f} (growth {growth:+.3f}, noise {noise:.3f}); "
                f"worst group {attribute}={gap.worst}"
            )
            findings.append(Finding(attribute, name, status, round(gap.value, 6), threshold, reason))
            if status != Status.PASS:
                notes.append(f"{attribute} {name} grew {growth:+.3f} (worst {attribute}={gap.worst})")
    judged = [f.status for f in findings if f.status != Status.SKIPPED]
    status = worst(judged) if judged else Status.SKIPPED
    if not summary.groups:
        return Status.SKIPPED, "no group columns gathered", findings, metrics
    text = "; ".join(notes) if notes else f"no adverse impact across {', '.join(sorted(summary.groups))}"
    return status, text, findings, metrics


def _gap_dict(gap: Gap) -> dict[str, Any]:
    return {
        "value": gap.value,
        "worst": gap.worst,
        "best": gap.best,
        "se": gap.se,
        "low": gap.low,
        "high": gap.high,
        "reason": gap.reason,
    }
