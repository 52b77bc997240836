"""Drift: compare a current :class:`Profile` with a :class:`Baseline`, per column and for the dataset.

Decisions gate on **effect sizes**; p-values are only a second condition (a column drifts when its
effect reaches the threshold *and* its adjusted p-value is below ``alpha``), so a tiny shift in a
huge window is not an alarm and a noisy small window does not page anyone.

Per column:

- numeric: the default method is the binned Wasserstein-1 distance (``wasserstein``): the larger
  of the distance in reference standard deviations (``wasserstein_std``; 0.1 means "the
  distribution moved by a tenth of a standard deviation") and the distance between the columns'
  normal scores (``wasserstein_scores``: values mapped through the reference's CDF to standard
  normal quantiles; the same number on a normal column, and on a skewed or heavy-tailed column it
  sees a change of the bulk that the tail-ruled standard deviation hides). Both have the no-drift
  noise of a normal column's W/std, so the one level (0.05) means the same on every shape. PSI, JS, Hellinger and the binned KS statistic are
  always reported. The p-value is the shape test's: KS and a chi-square test over the baseline's
  own quantile bins, Bonferroni-combined (:func:`~airflow_mlobs.core.stats.shape_test`), so scale
  and tail changes are significant where KS alone barely moves.
- categorical: the default method is the Jensen-Shannon distance (base 2) with the expected
  sampling noise subtracted (:func:`~airflow_mlobs.core.stats.js_distance_corrected`; the raw
  distance is reported as ``js_raw``), over categories folded the same way on both sides
  (:func:`_aligned_categories`); the p-value is the chi-square test of homogeneity over the same
  cells, sparse ones pooled. Values in categories the reference never saw are their own finding
  (``unseen_share``) when the reference's category set is complete: the share beyond what the
  reference's own rare categories predict (Good-Turing, :func:`~airflow_mlobs.core.stats.unseen_test`),
  counted by the gatherer against the baseline's category set before folding. A reference with
  more categories than it keeps has no complete set: there new values show as the growth of
  ``(other)``.
- a constant reference (a single value ``c``; the baseline's edges are ``c`` and the next double
  above it, so the bins count ``x < c``, ``x == c`` and ``x > c``): judged by the Jensen-Shannon
  distance between "all equal to ``c``" and the window's shares below, equal to and above ``c``,
  which sees a change in either direction; the finding names the shares.
- always: the missing rate (NULL share) against the reference's own rate, and for numeric columns
  the non-finite rate (``+-inf``, NaN where kept apart from NULL, decimals beyond double range),
  by a two-proportion test: ``warn``/``fail`` at an absolute change of ``missing_rate`` (2 / 5
  points), ``fail`` also when the rate at least doubles and rises by at least 1 point
  (:data:`RATE_MIN_RISE`: 1% -> 5% fails), and at least ``warn`` for non-finite values the
  reference never had.
- one family: every distribution test and every side test (missing rate, non-finite rate, unseen
  categories) of the check is adjusted together (``correction``, Benjamini-Hochberg by default),
  and every finding needs its adjusted p-value below ``alpha``.
- too little data: a window with fewer than ``min_rows`` rows is ``skipped`` (an empty one is an
  ``error``); a column with fewer than ``min_rows`` finite (numeric) or non-NULL (categorical)
  values has its distribution finding ``skipped`` (its missing-rate and non-finite findings count).
- sampled (the window's or the baseline's profile holds a sample, :mod:`airflow_mlobs.core.sampling`):
  each judged column's effect size carries its sampling standard error (``standard_error`` in its
  metrics, ``wasserstein 0.31 ± 0.02 (sampled)`` in its finding) and the decision accounts for it
  (:func:`~airflow_mlobs.core.sampling.sampled_level`): the column fails only when the effect minus
  1.96 standard errors still reaches the fail threshold; past the threshold only within its error it
  is a ``warn`` whose reason says *borderline* (``borderline`` True in its metrics), and it does not
  count as drifted in the drift share. An unsampled profile is judged exactly as before.

Dataset: ``drift_share`` is the share of judged columns that drifted (weighted by ``importances``
when given). The check fails when it reaches ``drift_share`` and warns when any column drifted (or,
with ``warn_share``, when the share reaches it). A column that could not be judged (missing, type
changed, text in a numeric column) is an ``error`` finding and makes the result ``error``: a drift
check that silently skips a feature is worse than one that stops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_mlobs.core import sampling, stats

# Defined in the light drift_settings (operators need them at DAG parse time); re-exported here.
from airflow_mlobs.core.drift_settings import CHECK as CHECK
from airflow_mlobs.core.drift_settings import DEFAULT_THRESHOLDS as DEFAULT_THRESHOLDS
from airflow_mlobs.core.drift_settings import METHODS as METHODS
from airflow_mlobs.core.drift_settings import MISSING_RATE_THRESHOLD as MISSING_RATE_THRESHOLD
from airflow_mlobs.core.drift_settings import RATE_MIN_RISE as RATE_MIN_RISE
from airflow_mlobs.core.drift_settings import UNSEEN_SHARE_THRESHOLD as UNSEEN_SHARE_THRESHOLD
from airflow_mlobs.core.drift_settings import DriftSettings as DriftSettings
from airflow_mlobs.core.drift_settings import Method as Method
from airflow_mlobs.core.drift_settings import Threshold as Threshold
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import (
    Baseline,
    CategoricalProfile,
    ColumnProfile,
    ColumnSpec,
    NumericProfile,
    Profile,
    tail_width,
)
from airflow_mlobs.core.readings import DriftedColumn, DriftReading
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst


@dataclass
class _SideTest:
    """A finding beside the distribution's (missing rate, non-finite rate, unseen categories) that
    waits for its p-value adjusted across the whole family of tests of the check."""

    pvalue: float
    decide: Callable[[float], Finding | None]


@dataclass
class _ColumnOutcome:
    name: str
    method: str
    effect: float | None
    pvalue: float | None
    metrics: dict[str, Any]
    findings: list[Finding]
    status: Status = Status.PASS
    reason: str = ""
    side_tests: list[_SideTest] = field(default_factory=list)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _tail_bounds(
    spec: ColumnSpec, ref: NumericProfile, cur: NumericProfile
) -> tuple[list[float], list[float]]:
    """Outer bounds for a sensitive column, whose profiles keep no minimum or maximum: where a
    side's tail holds values, the bound at which that tail spread uniformly has its mean (what
    :func:`~airflow_mlobs.core.stats.wasserstein_binned` places there anyway), so the distance
    needs no single value; an empty tail needs none (the outer edge). Empty lists when a non-empty
    tail's mean is unknown (an old profile): then Jensen-Shannon judges."""
    width = tail_width(len(spec.edges) + 1)
    if len(spec.edges) <= 2 * (width - 1):
        width = 1
    inner_low, inner_high = float(spec.edges[width - 1]), float(spec.edges[-width])
    lows, highs = [float(spec.edges[0])], [float(spec.edges[-1])]
    for side in (ref, cur):
        for index, mean, inner, bounds in (
            (0, side.low_mean, inner_low, lows),
            (-1, side.high_mean, inner_high, highs),
        ):
            if mean is not None:
                bounds.append(2 * mean - inner)
            elif side.bins and side.tail_count(index):
                return [], []
    return [min(lows)], [max(highs)]


def _numeric_metrics(
    spec: ColumnSpec, ref: NumericProfile, cur: NumericProfile
) -> tuple[dict[str, Any], float | None]:
    """All distribution metrics of a numeric column, and the shape test's p-value (KS and
    chi-square over the baseline bins, combined)."""
    shape = stats.shape_test(ref.bins, cur.bins)
    wasserstein, raw_scale, normal_scores = _wasserstein(spec, ref, cur, ref.bins, cur.bins)
    metrics = {
        "wasserstein": _finite(wasserstein),
        "psi": stats.psi(ref.bins, cur.bins),
        "js": stats.js_distance_corrected(ref.bins, cur.bins, adjacent=True),
        "js_raw": stats.js_distance(ref.bins, cur.bins),
        "hellinger": stats.hellinger_corrected(ref.bins, cur.bins, adjacent=True),
        "ks": shape.statistic,
        "reference_mean": ref.mean,
        "current_mean": cur.mean,
        "reference_std": ref.std,
        "current_std": cur.std,
        "wasserstein_std": _finite(raw_scale),
        "wasserstein_scores": _finite(normal_scores),
    }
    return metrics, shape.pvalue


def _wasserstein(
    spec: ColumnSpec,
    ref: NumericProfile,
    cur: NumericProfile,
    ref_bins: Sequence[float],
    cur_bins: Sequence[float],
    scores: tuple[Any, float, float] | str | None = "",
) -> tuple[float | None, float | None, float | None]:
    """The binned Wasserstein distance of a numeric column (the larger of the two below), in
    reference standard deviations, and in normal scores, over the bin counts ``ref_bins`` and
    ``cur_bins`` (the profiles' own, or redrawn ones: the extremes, tail means and spread are the
    profiles'). ``scores``: the normal-score edges to use (default: those of ``ref_bins``,
    :func:`~airflow_mlobs.core.stats.normal_score_edges`)."""
    lows = [v for v in (ref.min, cur.min) if v is not None]
    highs = [v for v in (ref.max, cur.max) if v is not None]
    if spec.sensitive and spec.edges and not (lows and highs):
        lows, highs = _tail_bounds(spec, ref, cur)
    raw_scale = (
        stats.wasserstein_binned(
            ref_bins,
            cur_bins,
            spec.edges,
            low=min(lows),
            high=max(highs),
            reference_std=ref.std,
            tails=((ref.low_mean, ref.high_mean), (cur.low_mean, cur.high_mean)),
            tail_bins=tail_width(len(ref.bins)),
        )
        if lows and highs and spec.edges
        else None
    )
    if isinstance(scores, str):
        scores = stats.normal_score_edges(ref_bins)
    normal_scores = (
        stats.wasserstein_binned(
            ref_bins, cur_bins, scores[0], low=scores[1], high=scores[2], reference_std=1.0
        )
        if scores is not None and raw_scale is not None
        else None
    )
    wasserstein = (
        max(raw_scale, normal_scores) if raw_scale is not None and normal_scores is not None else raw_scale
    )
    return wasserstein, raw_scale, normal_scores


def _effect_function(
    method: str, spec: ColumnSpec, ref: ColumnProfile, cur: ColumnProfile
) -> Callable[[Sequence[float], Sequence[float]], float | None] | None:
    """The column's effect size ``method`` as a function of the two sides' counts (numeric: the bin
    counts; categorical: the aligned category counts of :func:`_aligned_categories`), the same
    definition :func:`_numeric_metrics` / :func:`_categorical_metrics` report; ``None`` for a
    method it cannot redraw."""
    adjacent = isinstance(ref, NumericProfile)
    if method == "psi":
        return stats.psi
    if method == "js":
        return lambda r, c: stats.js_distance_corrected(r, c, adjacent=adjacent)
    if method == "hellinger":
        return lambda r, c: stats.hellinger_corrected(r, c, adjacent=adjacent)
    if method == "ks" and adjacent:
        return lambda r, c: stats.ks_binned(r, c).statistic
    if method == "wasserstein" and isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        # The normal-score edges held at the baseline's observed shares (their own noise is second
        # order, and recomputing them per redraw is most of the cost).
        scores = stats.normal_score_edges(ref.bins)
        return lambda r, c: _finite(_wasserstein(spec, ref, cur, r, c, scores)[0])
    return None


def _sampling_error(
    outcome: _ColumnOutcome, spec: ColumnSpec, baseline: Baseline, current: Profile
) -> float | None:
    """The sampling standard error of the column's gating effect size when the window or the
    baseline was sampled (:func:`~airflow_mlobs.core.sampling.bootstrap_standard_error`); ``None``
    when neither was, or for a constant reference (judged on shares around the constant)."""
    if current.sample is None and baseline.reference.sample is None:
        return None
    if outcome.effect is None or "constant" in outcome.metrics:
        return None
    ref, cur = baseline.reference.columns.get(outcome.name), current.columns.get(outcome.name)
    if ref is None or cur is None:
        return None
    effect = _effect_function(outcome.method, spec, ref, cur)
    if effect is None:
        return None
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        ref_counts: Sequence[float] = ref.bins
        cur_counts: Sequence[float] = cur.bins
    elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        _, ref_counts, cur_counts = _aligned_categories(ref, cur)
    else:
        return None
    return sampling.bootstrap_standard_error(
        effect,
        ref_counts,
        cur_counts,
        reference_sampled=baseline.reference.sample is not None,
        current_sampled=current.sample is not None,
    )


def _listing_floor(side: CategoricalProfile, share: float) -> float:
    """The smallest count, in both samples together, at which a category is listed by ``side``
    (which folded its tail) with near certainty (3 standard deviations) under no drift.

    ``side`` lists every category counted more than ``cut`` times (its least frequent listed one);
    a category with ``P`` values in both samples has about ``x = P * share`` of them on this side
    (``share`` = this side's share of all values), binomially, so ``x - 3 sqrt(x) >= cut`` makes
    it listed: ``x >= ((3 + sqrt(9 + 4 cut)) / 2) ** 2``."""
    # Ties at the smallest listed count are broken by name, so only counts above it are surely listed.
    cut = min(side.counts.values()) + 1 if side.counts else 0
    needed = ((3 + math.sqrt(9 + 4 * cut)) / 2) ** 2
    return needed / share if share > 0 else math.inf


def _aligned_categories(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[list[str], list[int], list[int]]:
    """Counts over the categories compared one by one, everything else pooled in ``(other)`` on
    both sides (the same categories on both: a category kept by one profile and folded by the
    other is never counted as new or shifted).

    Without folding, every category is compared. Where a side folded its tail, which categories it
    lists depends on its own sampling noise, and comparing only those would inflate that side's
    counts (a 20,000-level id column: 9.5% of a 100k reference in its 1,000 listed ids, 5% of the
    window). So the categories compared are chosen on the two samples' *combined* count, whose
    split between the sides carries no selection (the chi-square test conditions on it too): those
    counted at least :func:`_listing_floor` times together, which every folding side lists with
    near certainty under no drift; the rare rest is pooled."""
    n_ref, n_cur = ref.count, cur.count
    total = n_ref + n_cur
    ref_floor = _listing_floor(ref, n_ref / total) if ref.overflow and total else 0.0
    cur_floor = _listing_floor(cur, n_cur / total) if cur.overflow and total else 0.0
    # The window's values in reference categories are known to be all listed when the gatherer's
    # unseen count leaves nothing for unlisted ones (a window of only new ids, say): then every
    # reference category's window count is exact, 0 where unlisted.
    residual = None
    if not ref.overflow and cur.unseen is not None:
        residual = n_cur - cur.unseen - sum(n for c, n in cur.counts.items() if c in ref.counts)

    def floor(category: str) -> float | None:
        """The combined count ``category`` needs to be compared (``None``: never known)."""
        need = 0.0
        if category not in ref.counts and ref.overflow:
            return None
        if category in ref.counts and ref.overflow:
            need = max(need, ref_floor)  # listed by the reference's noise
        if category in cur.counts:
            if cur.overflow:
                need = max(need, cur_floor)  # listed by the window's noise
        elif cur.overflow and not (category in ref.counts and residual == 0):
            return None
        return need

    names = []
    for category in sorted(set(ref.counts) | set(cur.counts)):
        need = floor(category)
        if need is not None and ref.counts.get(category, 0) + cur.counts.get(category, 0) >= need:
            names.append(category)
    ref_counts = [ref.counts.get(n, 0) for n in names]
    cur_counts = [cur.counts.get(n, 0) for n in names]
    ref_other, cur_other = n_ref - sum(ref_counts), n_cur - sum(cur_counts)
    if ref_other or cur_other:
        names.append("(other)")
        ref_counts.append(ref_other)
        cur_counts.append(cur_other)
    return names, ref_counts, cur_counts


def _categorical_metrics(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[dict[str, Any], float | None]:
    """Distribution metrics of a categorical column over the consistently folded categories, the
    chi-square p-value (sparse categories pooled), and the unseen-category counts."""
    names, ref_counts, cur_counts = _aligned_categories(ref, cur)
    pooled_ref, pooled_cur = stats.pool_sparse(ref_counts, cur_counts, adjacent=False)
    chi2 = stats.chi2_homogeneity(pooled_ref, pooled_cur)  # type: ignore[arg-type]
    total_ref, total_cur = sum(ref_counts), sum(cur_counts)
    shifts = sorted(
        (
            (n, (c / total_cur if total_cur else 0.0) - (r / total_ref if total_ref else 0.0))
            for n, r, c in zip(names, ref_counts, cur_counts, strict=True)
        ),
        key=lambda kv: -abs(kv[1]),
    )
    metrics: dict[str, Any] = {
        "js": stats.js_distance_corrected(ref_counts, cur_counts, adjacent=False),
        "js_raw": stats.js_distance(ref_counts, cur_counts),
        "psi": stats.psi(ref_counts, cur_counts),
        "hellinger": stats.hellinger_corrected(ref_counts, cur_counts, adjacent=False),
        "chi2": chi2.statistic,
        "chi2_dof": chi2.dof,
        "cramers_v": stats.cramers_v(chi2.statistic, total_ref + total_cur)
        if chi2.statistic is not None
        else None,
        "top_shifts": {n: round(d, 6) for n, d in shifts[:5]},
        "approximate": ref.overflow or cur.overflow,
    }
    metrics["compared_categories"] = len(names) - (names[-1:] == ["(other)"])
    metrics["other_share"] = cur_counts[-1] / total_cur if names[-1:] == ["(other)"] and total_cur else 0.0
    metrics["reference_other_share"] = (
        ref_counts[-1] / total_ref if names[-1:] == ["(other)"] and total_ref else 0.0
    )
    if ref.overflow:
        # The reference's full category set is not known: a value outside its listed categories
        # may be in its folded tail. New values show as the growth of (other), never as unseen.
        metrics["unseen_share"] = None
        metrics["unseen_categories"] = []
    else:
        listed = [n for n, c in cur.counts.items() if c and n not in ref.counts]
        unseen = cur.unseen if cur.unseen is not None else sum(cur.counts[n] for n in listed)
        if cur.unseen is None and cur.overflow:
            metrics["approximate"] = True  # an older profile: values folded in (other) not counted
        singletons = sum(1 for c in ref.counts.values() if c == 1)
        doubletons = sum(1 for c in ref.counts.values() if c == 2)
        metrics["unseen"] = unseen
        metrics["unseen_share"] = unseen / total_cur if total_cur else None
        metrics["expected_unseen_share"] = singletons / total_ref if total_ref else None
        metrics["unseen_categories"] = sorted(listed, key=lambda n: (-cur.counts[n], n))[:10]
        metrics["reference_singletons"] = singletons
        metrics["reference_doubletons"] = doubletons
    return metrics, chi2.pvalue


def _shown_category(value: str) -> str:
    """A category for a message: quoted when it is empty or has leading or trailing whitespace
    (``''``, ``' north'``), so it cannot be mistaken for another."""
    return repr(value) if not value or value != value.strip() else value


def _level(value: float, threshold: Threshold) -> Status:
    if value >= threshold.fail:
        return Status.FAIL
    if value >= threshold.warn:
        return Status.WARN
    return Status.PASS


def compare(
    baseline: Baseline,
    current: Profile,
    settings: DriftSettings | None = None,
    *,
    dataset: str | None = None,
    columns: Sequence[str] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """Judge ``current`` against ``baseline`` (see the module docstring). Never raises on
    degenerate data: each problem is a finding with a reason."""
    settings = settings or DriftSettings()
    dataset = dataset or baseline.name
    wanted = list(columns) if columns is not None else list(baseline.columns)
    window_start = window_start or current.window_start
    window_end = window_end or current.window_end
    outcomes: list[_ColumnOutcome] = []
    errors: list[Finding] = []
    for name in wanted:
        spec = baseline.columns.get(name)
        if spec is None:
            errors.append(
                Finding(
                    name,
                    "column",
                    Status.ERROR,
                    reason=f"`{name}` is not in baseline {baseline.name} {baseline.version}",
                )
            )
            continue
        outcome = _judge_column(spec, baseline, current, settings)
        if outcome is None:
            continue
        if outcome.status is Status.ERROR:
            errors.extend(outcome.findings)
        else:
            outcomes.append(outcome)

    if current.row_count == 0:
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=Status.ERROR,
            summary=f"{dataset}: no rows in the window; nothing to compare with baseline {baseline.name} {baseline.version}",
            window_start=window_start,
            window_end=window_end,
            metrics={"rows": 0, "baseline": f"{baseline.name}/{baseline.version}"},
            findings=(Finding("window", "rows", Status.ERROR, value=0, reason="no rows in the window"),),
        )

    if not errors and current.row_count < settings.min_rows:
        reason = (
            f"window has {current.row_count} row{'s' if current.row_count != 1 else ''}, fewer than "
            f"min_rows={settings.min_rows}; too few to judge drift"
        )
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=Status.SKIPPED,
            summary=f"{dataset}: {reason} against baseline {baseline.name} {baseline.version}",
            window_start=window_start,
            window_end=window_end,
            metrics={
                "rows": current.row_count,
                "min_rows": settings.min_rows,
                "baseline": f"{baseline.name}/{baseline.version}",
            },
            findings=(
                Finding(
                    "window",
                    "rows",
                    Status.SKIPPED,
                    value=current.row_count,
                    threshold=settings.min_rows,
                    reason=reason,
                ),
            ),
        )

    # One family: every column's distribution test and every side test (missing rate, non-finite
    # rate, unseen categories) adjusted together, then the decisions.
    side = [t for o in outcomes for t in o.side_tests]
    family = stats.adjust_pvalues(
        [o.pvalue for o in outcomes] + [t.pvalue for t in side], settings.correction
    )
    adjusted, side_adjusted = family[: len(outcomes)], family[len(outcomes) :]
    decided = iter(side_adjusted)
    for outcome in outcomes:
        for test in outcome.side_tests:
            p_side = next(decided)
            finding = test.decide(test.pvalue if p_side is None else p_side)
            if finding is not None:
                outcome.findings.append(finding)
    for outcome, p_adj in zip(outcomes, adjusted, strict=True):
        outcome.metrics["p_value"] = outcome.pvalue
        outcome.metrics["p_value_adjusted"] = p_adj
        if outcome.status is Status.SKIPPED or outcome.effect is None:
            continue
        threshold = settings.threshold_for(outcome.name, outcome.method, baseline)
        shown = f"{outcome.method} {outcome.effect:.4g}"
        error = _sampling_error(outcome, baseline.columns[outcome.name], baseline, current)
        borderline = False
        if error is None:
            level = _level(outcome.effect, threshold)
        else:
            # A sampled side: the decision accounts for the effect's sampling error
            # (core/sampling.py sampled_level: fail only past the threshold by 1.96 errors).
            named, borderline = sampling.sampled_level(outcome.effect, error, threshold.warn, threshold.fail)
            level = Status(named)
            shown += f" ± {error:.2g} (sampled)"
            outcome.metrics["standard_error"] = error
            outcome.metrics["borderline"] = borderline
        significant = p_adj is None or p_adj < settings.alpha
        if level is not Status.PASS and not significant:
            reason = f"{shown} reaches {threshold.warn:g} but is not significant (adjusted p={p_adj:.3g})"
            level = Status.PASS
            borderline = False
        elif level is Status.PASS:
            reason = f"{shown} below {threshold.warn:g}"
        elif borderline:
            assert error is not None
            reason = (
                f"{shown} reaches the fail threshold {threshold.fail:g} only within its sampling error "
                f"(lower bound {outcome.effect - sampling.Z * error:.4g}): borderline, warn"
                + (f" (adjusted p={p_adj:.2g})" if p_adj is not None else "")
            )
        else:
            reason = f"{shown} >= {threshold.fail if level is Status.FAIL else threshold.warn:g}" + (
                f" (adjusted p={p_adj:.2g})" if p_adj is not None else ""
            )
        if "constant" in outcome.metrics and level is not Status.PASS:
            reason = f"`{outcome.name}`: {outcome.metrics['constant']}; {reason}"
        outcome.status = level
        outcome.reason = reason
        outcome.findings.insert(
            0,
            Finding(
                subject=outcome.name,
                metric=outcome.method,
                status=level,
                value=round(outcome.effect, 6),
                threshold=threshold.fail if level is Status.FAIL or borderline else threshold.warn,
                reason=reason,
            ),
        )

    # A column's status is its worst finding: distribution, missing rate or unseen categories.
    for outcome in outcomes:
        outcome.status = worst(
            (f.status for f in outcome.findings if f.status is not Status.SKIPPED), default=Status.SKIPPED
        )
    judged = [o for o in outcomes if o.status is not Status.SKIPPED]
    drifted = [o for o in judged if o.status is Status.FAIL]
    weights = {o.name: float(settings.importances.get(o.name, 1.0)) for o in judged}
    total_weight = sum(weights.values())
    share = sum(weights[o.name] for o in drifted) / total_weight if total_weight else 0.0
    ranked = sorted(drifted, key=lambda o: -(o.effect or 0.0))

    findings: list[Finding] = list(errors)
    for outcome in sorted(outcomes, key=lambda o: (-o.status.severity, -(o.effect or 0.0))):
        findings.extend(outcome.findings)

    if errors:
        status = Status.ERROR
        summary = f"{dataset}: cannot judge drift for " + "; ".join(f.reason for f in errors[:3])
        if len(errors) > 3:
            summary += f" (+{len(errors) - 3} more)"
    else:
        warned = [o for o in judged if o.status is Status.WARN]
        if drifted and share >= settings.drift_share:
            status = Status.FAIL
        elif (drifted and (settings.warn_share is None or share >= settings.warn_share)) or (
            warned and settings.warn_share is None
        ):
            status = Status.WARN
        else:
            status = Status.PASS
        if drifted:
            names = ", ".join(_describe(o) for o in ranked[:5])
            summary = (
                f"{dataset}: {len(drifted)} of {len(judged)} columns drifted ({share:.0%} drift share, "
                f"fail at {settings.drift_share:.0%}): {names}"
            )
        elif warned:
            summary = f"{dataset}: no column drifted; early signs in " + ", ".join(
                _describe(o) for o in warned[:5]
            )
        else:
            summary = f"{dataset}: no drift in {len(judged)} columns against baseline {baseline.name} {baseline.version}"

    metrics_tests = len([p for p in family if p is not None])
    reading = DriftReading(
        rows=current.row_count,
        reference_rows=baseline.reference.row_count,
        baseline=f"{baseline.name}/{baseline.version}",
        columns_judged=len(judged),
        columns_drifted=len(drifted),
        drift_share=round(share, 6),
        drifted_columns=tuple(DriftedColumn(o.name, o.method, round(o.effect or 0.0, 6)) for o in ranked),
    )
    metrics = {
        **reading.to_metrics(),
        "correction": settings.correction,
        "tests": metrics_tests,
        "columns": {o.name: {k: _round(v) for k, v in o.metrics.items()} for o in outcomes},
    }
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        findings=tuple(findings),
    )


def _describe(outcome: _ColumnOutcome) -> str:
    """``name (method value)``, or the worst side finding's reason when that is what breached."""
    main = next((f for f in outcome.findings if f.metric == outcome.method), None)
    if main is not None and main.status is outcome.status and outcome.effect is not None:
        error = outcome.metrics.get("standard_error")
        spread = f" ± {error:.2g}" if isinstance(error, float) else ""
        return f"{outcome.name} ({outcome.method} {outcome.effect:.3g}{spread})"
    worst_finding = max(outcome.findings, key=lambda f: f.status.severity)
    return worst_finding.reason.replace(f"`{outcome.name}`", outcome.name, 1)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def _judge_column(
    spec: ColumnSpec, baseline: Baseline, current: Profile, settings: DriftSettings
) -> _ColumnOutcome | None:
    name = spec.name
    method = settings.method_for(spec)
    if method not in METHODS:
        return _error(name, method, f"`{name}`: unknown method {method!r}; use one of {', '.join(METHODS)}")
    if name in current.errors:
        return _error(name, method, f"`{name}`: {current.errors[name]}")
    if name in current.missing_columns or name not in current.columns:
        return _error(
            name,
            method,
            f"`{name}` is missing from the current data (in baseline {baseline.name} {baseline.version})",
        )
    ref = baseline.reference.columns.get(name)
    cur = current.columns[name]
    if ref is None:
        return _error(
            name, method, f"`{name}` has no reference profile in baseline {baseline.name} {baseline.version}"
        )
    if type(ref) is not type(cur):
        return _error(
            name, method, f"`{name}`: the baseline profiled it as {ref.kind}, the current data as {cur.kind}"
        )

    findings: list[Finding] = []
    side_tests: list[_SideTest] = []
    missing = _rate_test(
        name, "missing_rate", "missing rate", ref.nulls, ref.rows, cur.nulls, cur.rows, settings
    )
    if missing is not None:
        side_tests.append(missing)

    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        if len(cur.bins) != len(ref.bins):
            return _error(
                name,
                method,
                f"`{name}`: profiled over other bin edges than baseline {baseline.name} {baseline.version}",
            )
        if cur.invalid:
            return _error(
                name,
                method,
                f"`{name}`: {cur.invalid} values are not numbers (text in a numeric column? type changed since the baseline)",
            )
        non_finite = _rate_test(
            name,
            "non_finite",
            "non-finite rate",
            ref.non_finite,
            ref.rows,
            cur.non_finite,
            cur.rows,
            settings,
            detail=f"{cur.non_finite} infinite, NaN or out-of-range values, not binned",
        )
        if non_finite is not None:
            side_tests.append(non_finite)
        if cur.count == 0:
            if cur.nulls == cur.rows:
                detail = " (all NULL)"
            elif cur.non_finite:
                detail = f" ({cur.non_finite} of {cur.rows} infinite, NaN or beyond double range)"
            else:
                detail = ""
            return _skipped(name, method, f"`{name}`: no finite values in the window{detail}", 0, side_tests)
        if ref.count == 0:
            reason = f"`{name}`: the reference has no finite values"
            return _skipped(name, method, reason, cur.count, side_tests)
        if cur.count < settings.min_rows:
            reason = (
                f"`{name}`: {cur.count} finite value{'s' if cur.count != 1 else ''} in the window, "
                f"fewer than min_rows={settings.min_rows}"
            )
            return _skipped(name, method, reason, cur.count, side_tests)
        metrics, pvalue = _numeric_metrics(spec, ref, cur)
        if ref.min is not None and ref.min == ref.max:
            method = "js"  # a constant reference has no spread to scale by
            metrics.update(_constant_reference(spec, ref, cur))
            share_below, share_above = metrics["share_below_constant"], metrics["share_above_constant"]
            metrics["js"] = stats.js_distance(
                [0.0, 1.0, 0.0], [share_below, max(1.0 - share_below - share_above, 0.0), share_above]
            )
        elif metrics.get(method) is None:
            # Never judge nothing: a spread that cannot be measured (all values below 2**-500,
            # whose squares are not summed) falls back to the distance that needs none.
            method = "js"
            metrics["note"] = f"{settings.method_for(spec)} undefined here: judged by Jensen-Shannon distance"
    else:
        assert isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile)
        if cur.count == 0:
            reason = f"`{name}`: no values in the window" + (" (all NULL)" if cur.nulls == cur.rows else "")
            return _skipped(name, method, reason, 0, side_tests)
        if ref.count == 0:
            reason = f"`{name}`: the reference has no values"
            return _skipped(name, method, reason, cur.count, side_tests)
        if cur.count < settings.min_rows:
            reason = (
                f"`{name}`: {cur.count} non-NULL value{'s' if cur.count != 1 else ''} in the window, "
                f"fewer than min_rows={settings.min_rows}"
            )
            return _skipped(name, method, reason, cur.count, side_tests)
        if method in ("wasserstein", "ks"):
            method = "js"
        metrics, pvalue = _categorical_metrics(ref, cur)
        unseen = _unseen_test(name, ref, cur, metrics, settings)
        if unseen is not None:
            side_tests.append(unseen)
        if not metrics["compared_categories"]:
            # An id-like column: every category too rare in both samples to compare one by one.
            reason = (
                f"`{name}`: no category is frequent enough in both samples to compare "
                f"({len(ref.counts)}{'+' if ref.overflow else ''} in the reference, "
                f"{len(cur.counts)}{'+' if cur.overflow else ''} in the window); id-like columns are "
                "judged by their missing rate and new values only"
            )
            outcome = _skipped(name, method, reason, cur.count, side_tests)
            outcome.metrics.update(metrics)
            return outcome
    effect = metrics.get(method)
    return _ColumnOutcome(
        name,
        method,
        effect if isinstance(effect, float) else None,
        pvalue,
        metrics,
        findings,
        side_tests=side_tests,
    )


def _constant_reference(spec: ColumnSpec, ref: NumericProfile, cur: NumericProfile) -> dict[str, Any]:
    """How the window differs from a constant reference ``c``: the shares of finite window values
    below and above ``c``. Baselines built since the constant split (edges ``(c, nextafter(c))``)
    count them exactly; an older single-edge baseline only bounds the share above (``approximate``)."""
    constant = float(ref.min)  # type: ignore[arg-type]
    bins = cur.bins
    below = bins[0] if bins else 0
    if len(bins) >= 3:
        above, exact = sum(bins[2:]), True
    elif cur.min is not None and cur.min > constant:
        above, exact = cur.count, True
    elif cur.max is not None and cur.max == constant:
        above, exact = 0, True
    else:
        # An older single-edge baseline: values equal to and above c share a bin. With none below,
        # the mean bounds the share above from below: mean - c <= share_above * (max - c).
        above, exact = (1 if cur.max is not None and cur.max > constant else 0), False
        mean = cur.mean
        if not below and mean is not None and cur.max is not None and cur.max > constant:
            above = max(above, math.ceil(cur.count * (mean - constant) / (cur.max - constant) - 1e-9))
    share_below, share_above = below / cur.count, above / cur.count
    text = (
        f"reference is constant at {constant:g}; {share_below + share_above:.1%} of window values differ "
        f"({share_below:.1%} below, {share_above:.1%} above)"
    )
    if not exact:
        text += " (at least: rebuild the baseline to count values above the constant)"
    return {
        "note": "reference is constant: judged by Jensen-Shannon distance over below / equal / above",
        "constant": text,
        "share_below_constant": share_below,
        "share_above_constant": share_above,
    }


def _rate_test(
    name: str,
    metric: str,
    label: str,
    ref_hits: int,
    ref_rows: int,
    cur_hits: int,
    cur_rows: int,
    settings: DriftSettings,
    *,
    detail: str = "",
) -> _SideTest | None:
    """The change of a rate (NULLs, non-finite values) against the reference's own rate, judged in
    the check's family of tests (two-proportion z-test). Levels: the absolute change against
    ``settings.missing_rate``; ``fail`` also when the rate at least doubles and rises by at least
    :data:`RATE_MIN_RISE` (1% -> 5% fails; 10% -> 11% does not); for non-finite values a ``warn``
    at least when the reference had none. Every level needs the adjusted p-value below ``alpha``.
    ``None`` when neither side has any."""
    if not ref_hits and not cur_hits:
        return None
    test = stats.two_proportion_test(ref_hits, ref_rows, cur_hits, cur_rows)
    if test.statistic is None or test.pvalue is None:
        return None
    change = test.statistic
    ref_rate = ref_hits / ref_rows
    cur_rate = cur_hits / cur_rows
    level = _level(abs(change), settings.missing_rate)
    if change >= RATE_MIN_RISE and cur_rate >= 2 * ref_rate:
        level = Status.FAIL
    elif level is Status.PASS and metric == "non_finite" and cur_hits and not ref_hits:
        level = Status.WARN
    if level is Status.PASS:
        return None
    threshold = settings.missing_rate.fail if level is Status.FAIL else settings.missing_rate.warn

    def decide(p_adj: float) -> Finding | None:
        if p_adj >= settings.alpha:
            return None
        return Finding(
            name,
            metric,
            level,
            value=round(change, 6),
            threshold=threshold,
            reason=f"`{name}`: {detail + ' (' if detail else ''}{label} {ref_rate:.1%} -> {cur_rate:.1%}"
            + (")" if detail else "")
            + f", adjusted p={p_adj:.2g}",
        )

    return _SideTest(test.pvalue, decide)


def _unseen_test(
    name: str,
    ref: CategoricalProfile,
    cur: CategoricalProfile,
    metrics: dict[str, Any],
    settings: DriftSettings,
) -> _SideTest | None:
    """Values in categories the reference never saw, beyond what its own rare categories predict
    (:func:`~airflow_mlobs.core.stats.unseen_test`); the excess share is judged against
    ``settings.unseen_share``. Only where the reference's category set is complete (it folded
    nothing): otherwise new values are judged as the growth of ``(other)``."""
    unseen = metrics.get("unseen")
    if ref.overflow or not unseen:
        return None
    test = stats.unseen_test(
        unseen, cur.count, metrics["reference_singletons"], metrics["reference_doubletons"], ref.count
    )
    if test.statistic is None or test.pvalue is None:
        return None
    excess = test.statistic
    metrics["unseen_excess"] = excess
    level = _level(excess, settings.unseen_share)
    if level is Status.PASS:
        return None
    shown = ", ".join(_shown_category(c) for c in metrics["unseen_categories"][:5])
    if len(metrics["unseen_categories"]) > 5 or not metrics["unseen_categories"]:
        shown += ", ..." if shown else "folded into (other)"
    share = metrics["unseen_share"] or 0.0
    expected = metrics["expected_unseen_share"] or 0.0

    def decide(p_adj: float) -> Finding | None:
        if p_adj >= settings.alpha:
            return None
        return Finding(
            name,
            "unseen_share",
            level,
            value=round(excess, 6),
            threshold=settings.unseen_share.fail if level is Status.FAIL else settings.unseen_share.warn,
            reason=(
                f"`{name}`: {share:.1%} of values in categories the reference never saw ({shown}); "
                f"its rare categories predict {expected:.2%}"
            ),
        )

    return _SideTest(test.pvalue, decide)


def _skipped(name: str, method: str, reason: str, count: int, side_tests: list[_SideTest]) -> _ColumnOutcome:
    """A column with nothing to compare on one side: a ``skipped`` distribution finding (its
    missing-rate and non-finite tests, if any, still count)."""
    return _ColumnOutcome(
        name,
        method,
        None,
        None,
        {"count": count},
        [Finding(name, method, Status.SKIPPED, reason=reason)],
        Status.SKIPPED,
        reason,
        side_tests=side_tests,
    )


def _error(name: str, method: str, reason: str) -> _ColumnOutcome:
    return _ColumnOutcome(
        name,
        method,
        None,
        None,
        {},
        [Finding(name, "column", Status.ERROR, reason=reason)],
        Status.ERROR,
        reason,
    )


def column_effect(
    spec: ColumnSpec, reference: ColumnProfile, current: ColumnProfile, method: str
) -> float | None:
    """The effect size ``method`` gives for one column, as :func:`compare` computes it (``None``
    where undefined: an empty side, a constant reference for ``wasserstein``)."""
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        if not reference.count or not current.count or len(reference.bins) != len(current.bins):
            return None
        metrics, _ = _numeric_metrics(spec, reference, current)
    elif isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile):
        if not reference.count or not current.count:
            return None
        metrics, _ = _categorical_metrics(reference, current)
    else:
        return None
    value = metrics.get(method)
    return value if isinstance(value, float) and math.isfinite(value) else None


def calibrate_thresholds(
    baseline: Baseline,
    chunks: Sequence[Profile],
    *,
    k_sigma: float = 3.0,
    settings: DriftSettings | None = None,
    chunk_size: int | None = None,
) -> Baseline:
    """Data-driven thresholds: each column's statistic on ``chunks`` (reference data cut into pieces
    the size of a production window) against the full reference; the threshold is
    ``mean + k_sigma * std`` (sample std) of those values, and never below a tenth of the method's
    default warn level (so a perfectly stable reference cannot make every wobble an alarm).

    Returns a copy of ``baseline`` recording the thresholds, the method per column, the number of
    chunks, their size and ``k_sigma``. Needs at least 5 chunks.
    """
    settings = settings or DriftSettings()
    if len(chunks) < 5:
        raise MlobsInputError(f"calibration needs at least 5 reference chunks, got {len(chunks)}")
    thresholds: dict[str, float] = {}
    methods: dict[str, str] = {}
    for spec in baseline.columns.values():
        method = settings.method_for(spec)
        if spec.kind == "categorical" and method in ("wasserstein", "ks"):
            method = "js"
        reference = baseline.reference.columns.get(spec.name)
        if reference is None:
            continue
        values = [
            v
            for chunk in chunks
            if spec.name in chunk.columns
            and (v := column_effect(spec, reference, chunk.columns[spec.name], method)) is not None
        ]
        if len(values) < 5:
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        floor = DEFAULT_THRESHOLDS[method].warn / 10
        thresholds[spec.name] = round(max(mean + k_sigma * std, floor), 6)
        methods[spec.name] = method
    sizes = [c.row_count for c in chunks]
    calibration = {
        "methods": methods,
        "chunks": len(chunks),
        "chunk_size": chunk_size if chunk_size is not None else round(sum(sizes) / len(sizes)),
        "k_sigma": k_sigma,
        "rule": "mean + k_sigma * std of the statistic over reference chunks",
    }
    return baseline.with_thresholds(thresholds, calibration)
