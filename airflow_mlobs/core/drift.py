"""Drift: compare a current :class:`Profile` with a :class:`Baseline`, per column and for the dataset.

Decisions gate on **effect sizes**; p-values are only a second condition (a column drifts when its
effect reaches the threshold *and* its adjusted p-value is below ``alpha``), so a tiny shift in a
huge window is not an alarm and a noisy small window does not page anyone.

Per column:

- numeric: the default method is the binned Wasserstein-1 distance divided by the reference
  standard deviation (``wasserstein``; 0.1 means "the distribution moved by a tenth of a standard
  deviation"); when the reference is constant it falls back to the Jensen-Shannon distance.
  PSI, JS, Hellinger and the binned KS statistic are always reported. The p-value is the KS test's.
- categorical: the default method is the Jensen-Shannon distance (base 2) over the union of
  categories; the p-value is the chi-square test of homogeneity. The share of current values in
  categories the reference never saw is its own finding (``unseen_share``), counted by the gatherer
  against the baseline's category set before folding, so rare new values folded into ``(other)``
  count too.
- a constant reference (a single value ``c``; the baseline's edges are ``c`` and the next double
  above it, so the bins count ``x < c``, ``x == c`` and ``x > c``): judged by the Jensen-Shannon
  distance over those three bins, which sees a change in either direction; the finding names the
  shares of window values below and above ``c``.
- always: the change in missing rate (NULL share; absolute change, two-proportion test), and for
  numeric columns the change in the share of non-finite values (``+-inf``, NaN where kept apart
  from NULL, decimals beyond double range), judged the same way and at least a ``warn`` naming
  the count when the reference had none. A column that became (mostly) NULL or non-finite fails.
- too little data: a window with fewer than ``min_rows`` rows is ``skipped`` (an empty one is an
  ``error``); a column with fewer than ``min_rows`` finite (numeric) or non-NULL (categorical)
  values has its distribution finding ``skipped`` (its missing-rate and non-finite findings count).

Dataset: ``drift_share`` is the share of judged columns that drifted (weighted by ``importances``
when given). The check fails when it reaches ``drift_share`` and warns when any column drifted (or,
with ``warn_share``, when the share reaches it). A column that could not be judged (missing, type
changed, text in a numeric column) is an ``error`` finding and makes the result ``error``: a drift
check that silently skips a feature is worse than one that stops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_mlobs.core import stats

# Defined in the light drift_settings (operators need them at DAG parse time); re-exported here.
from airflow_mlobs.core.drift_settings import CHECK as CHECK
from airflow_mlobs.core.drift_settings import DEFAULT_THRESHOLDS as DEFAULT_THRESHOLDS
from airflow_mlobs.core.drift_settings import METHODS as METHODS
from airflow_mlobs.core.drift_settings import MISSING_RATE_THRESHOLD as MISSING_RATE_THRESHOLD
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
)
from airflow_mlobs.core.readings import DriftedColumn, DriftReading
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst


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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _numeric_metrics(
    spec: ColumnSpec, ref: NumericProfile, cur: NumericProfile
) -> tuple[dict[str, Any], float | None]:
    """All distribution metrics of a numeric column, and the KS p-value."""
    ks = stats.ks_binned(ref.bins, cur.bins)
    lows = [v for v in (ref.min, cur.min) if v is not None]
    highs = [v for v in (ref.max, cur.max) if v is not None]
    wasserstein = (
        stats.wasserstein_binned(
            ref.bins, cur.bins, spec.edges, low=min(lows), high=max(highs), reference_std=ref.std
        )
        if lows and highs and spec.edges
        else None
    )
    metrics = {
        "wasserstein": _finite(wasserstein),
        "psi": stats.psi(ref.bins, cur.bins),
        "js": stats.js_distance(ref.bins, cur.bins),
        "hellinger": stats.hellinger(ref.bins, cur.bins),
        "ks": ks.statistic,
        "reference_mean": ref.mean,
        "current_mean": cur.mean,
        "reference_std": ref.std,
        "current_std": cur.std,
    }
    return metrics, ks.pvalue


def _aligned_categories(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[list[str], list[int], list[int]]:
    """Counts over the union of categories; each side's folded tail is one more category."""
    names = sorted(set(ref.counts) | set(cur.counts))
    ref_counts = [ref.counts.get(n, 0) for n in names]
    cur_counts = [cur.counts.get(n, 0) for n in names]
    if ref.other or cur.other:
        names.append("(other)")
        ref_counts.append(ref.other)
        cur_counts.append(cur.other)
    return names, ref_counts, cur_counts


def _categorical_metrics(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[dict[str, Any], float | None]:
    names, ref_counts, cur_counts = _aligned_categories(ref, cur)
    chi2 = stats.chi2_homogeneity(ref_counts, cur_counts)
    unseen_listed = sum(
        c for n, c in zip(names, cur_counts, strict=True) if n not in ref.counts and n != "(other)"
    )
    # The gatherer's count covers the folded tail too; without it (an older stored profile) only the
    # listed categories are known, and folded ones are counted when the reference folded nothing.
    unseen_exact = cur.unseen is not None or not cur.other
    if cur.unseen is not None:
        unseen = cur.unseen
    elif not ref.overflow:
        unseen = unseen_listed + cur.other
        unseen_exact = False
    else:
        unseen = unseen_listed
    total_cur = sum(cur_counts)
    shifts = sorted(
        (
            (n, (c / total_cur if total_cur else 0.0) - (r / sum(ref_counts) if sum(ref_counts) else 0.0))
            for n, r, c in zip(names, ref_counts, cur_counts, strict=True)
        ),
        key=lambda kv: -abs(kv[1]),
    )
    metrics = {
        "js": stats.js_distance(ref_counts, cur_counts),
        "psi": stats.psi(ref_counts, cur_counts),
        "hellinger": stats.hellinger(ref_counts, cur_counts),
        "chi2": chi2.statistic,
        "chi2_dof": chi2.dof,
        "cramers_v": stats.cramers_v(chi2.statistic, sum(ref_counts) + total_cur)
        if chi2.statistic is not None
        else None,
        "unseen_share": unseen / total_cur if total_cur else None,
        "unseen_categories": [
            n for n, c in zip(names, cur_counts, strict=True) if c and n not in ref.counts and n != "(other)"
        ][:10],
        "top_shifts": {n: round(d, 6) for n, d in shifts[:5]},
        "approximate": ref.overflow or cur.overflow or not unseen_exact,
    }
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

    # p-values adjusted across the judged columns, then the drift decision per column.
    adjusted = stats.adjust_pvalues([o.pvalue for o in outcomes], settings.correction)
    for outcome, p_adj in zip(outcomes, adjusted, strict=True):
        outcome.metrics["p_value"] = outcome.pvalue
        outcome.metrics["p_value_adjusted"] = p_adj
        if outcome.status is Status.SKIPPED or outcome.effect is None:
            continue
        threshold = settings.threshold_for(outcome.name, outcome.method, baseline)
        level = _level(outcome.effect, threshold)
        significant = p_adj is None or p_adj < settings.alpha
        if level is not Status.PASS and not significant:
            reason = f"{outcome.method} {outcome.effect:.4g} reaches {threshold.warn:g} but is not significant (adjusted p={p_adj:.3g})"
            level = Status.PASS
        elif level is Status.PASS:
            reason = f"{outcome.method} {outcome.effect:.4g} below {threshold.warn:g}"
        else:
            reason = (
                f"{outcome.method} {outcome.effect:.4g} >= {threshold.fail if level is Status.FAIL else threshold.warn:g}"
                + (f" (adjusted p={p_adj:.2g})" if p_adj is not None else "")
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
                threshold=threshold.fail if level is Status.FAIL else threshold.warn,
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
        return f"{outcome.name} ({outcome.method} {outcome.effect:.3g})"
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
    missing = _missing_rate_finding(name, ref, cur, settings)
    if missing is not None:
        findings.append(missing)

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
        non_finite = _non_finite_finding(name, ref, cur, settings)
        if non_finite is not None:
            findings.append(non_finite)
        if cur.count == 0:
            if cur.nulls == cur.rows:
                detail = " (all NULL)"
            elif cur.non_finite:
                detail = f" ({cur.non_finite} of {cur.rows} infinite, NaN or beyond double range)"
            else:
                detail = ""
            return _skipped(name, method, f"`{name}`: no finite values in the window{detail}", 0, findings)
        if ref.count == 0:
            reason = f"`{name}`: the reference has no finite values"
            return _skipped(name, method, reason, cur.count, findings)
        if cur.count < settings.min_rows:
            reason = (
                f"`{name}`: {cur.count} finite value{'s' if cur.count != 1 else ''} in the window, "
                f"fewer than min_rows={settings.min_rows}"
            )
            return _skipped(name, method, reason, cur.count, findings)
        metrics, pvalue = _numeric_metrics(spec, ref, cur)
        if ref.min is not None and ref.min == ref.max:
            method = "js"  # a constant reference has no spread to scale by
            metrics.update(_constant_reference(spec, ref, cur))
        elif metrics.get(method) is None:
            # Never judge nothing: a spread that cannot be measured (all values below 2**-500,
            # whose squares are not summed) falls back to the distance that needs none.
            method = "js"
            metrics["note"] = f"{settings.method_for(spec)} undefined here: judged by Jensen-Shannon distance"
    else:
        assert isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile)
        if cur.count == 0:
            reason = f"`{name}`: no values in the window" + (" (all NULL)" if cur.nulls == cur.rows else "")
            return _skipped(name, method, reason, 0, findings)
        if ref.count == 0:
            reason = f"`{name}`: the reference has no values"
            return _skipped(name, method, reason, cur.count, findings)
        if cur.count < settings.min_rows:
            reason = (
                f"`{name}`: {cur.count} non-NULL value{'s' if cur.count != 1 else ''} in the window, "
                f"fewer than min_rows={settings.min_rows}"
            )
            return _skipped(name, method, reason, cur.count, findings)
        if method in ("wasserstein", "ks"):
            method = "js"
        metrics, pvalue = _categorical_metrics(ref, cur)
        unseen = metrics["unseen_share"] or 0.0
        level = _level(unseen, settings.unseen_share)
        if level is not Status.PASS:
            shown = ", ".join(_shown_category(c) for c in metrics["unseen_categories"][:5])
            if len(metrics["unseen_categories"]) > 5 or (unseen and not metrics["unseen_categories"]):
                shown += ", ..." if shown else "folded into (other)"
            findings.append(
                Finding(
                    name,
                    "unseen_share",
                    level,
                    value=round(unseen, 6),
                    threshold=settings.unseen_share.fail
                    if level is Status.FAIL
                    else settings.unseen_share.warn,
                    reason=f"`{name}`: {unseen:.1%} of values in categories the reference never saw ({shown})",
                )
            )
    effect = metrics.get(method)
    return _ColumnOutcome(
        name, method, effect if isinstance(effect, float) else None, pvalue, metrics, findings
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
        above, exact = (1 if cur.max is not None and cur.max > constant else 0), False
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


def _non_finite_finding(
    name: str, ref: NumericProfile, cur: NumericProfile, settings: DriftSettings
) -> Finding | None:
    """The change in the share of non-finite values, judged like the missing rate; at least a
    ``warn`` naming the count when the window has some and the reference had none."""
    if not cur.non_finite and not ref.non_finite:
        return None
    test = stats.two_proportion_test(ref.non_finite, ref.rows, cur.non_finite, cur.rows)
    change = test.statistic or 0.0
    level = _level(abs(change), settings.missing_rate)
    if level is not Status.PASS and test.pvalue is not None and test.pvalue >= settings.alpha:
        level = Status.PASS
    if level is Status.PASS and cur.non_finite and not ref.non_finite:
        level = Status.WARN
    if level is Status.PASS:
        return None
    ref_rate = ref.non_finite / ref.rows if ref.rows else 0.0
    cur_rate = cur.non_finite / cur.rows if cur.rows else 0.0
    return Finding(
        name,
        "non_finite",
        level,
        value=round(change, 6),
        threshold=settings.missing_rate.fail if level is Status.FAIL else settings.missing_rate.warn,
        reason=(
            f"`{name}`: {cur.non_finite} infinite, NaN or out-of-range values, not binned "
            f"(non-finite rate {ref_rate:.1%} -> {cur_rate:.1%})"
        ),
    )


def _missing_rate_finding(
    name: str,
    ref: NumericProfile | CategoricalProfile,
    cur: NumericProfile | CategoricalProfile,
    settings: DriftSettings,
) -> Finding | None:
    """The change in missing (NULL) rate, judged on its absolute size and a two-proportion test."""
    test = stats.two_proportion_test(ref.nulls, ref.rows, cur.nulls, cur.rows)
    if test.statistic is None:
        return None
    change = test.statistic
    level = _level(abs(change), settings.missing_rate)
    if level is not Status.PASS and test.pvalue is not None and test.pvalue >= settings.alpha:
        level = Status.PASS
    if level is Status.PASS:
        return None
    ref_rate = ref.nulls / ref.rows if ref.rows else 0.0
    cur_rate = cur.nulls / cur.rows if cur.rows else 0.0
    return Finding(
        name,
        "missing_rate",
        level,
        value=round(change, 6),
        threshold=settings.missing_rate.fail if level is Status.FAIL else settings.missing_rate.warn,
        reason=f"`{name}`: missing rate {ref_rate:.1%} -> {cur_rate:.1%}",
    )


def _skipped(name: str, method: str, reason: str, count: int, findings: list[Finding]) -> _ColumnOutcome:
    """A column with nothing to compare on one side: a ``skipped`` distribution finding (its
    missing-rate finding, if any, still counts)."""
    return _ColumnOutcome(
        name,
        method,
        None,
        None,
        {"count": count},
        [Finding(name, method, Status.SKIPPED, reason=reason), *findings],
        Status.SKIPPED,
        reason,
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
