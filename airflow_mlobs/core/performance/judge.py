"""The judgement of the delayed-label performance check: one window's metrics against their
baselines, with the label coverage, the segments and a reference window.

**Baselines from a reference window**: a metric without a given baseline value can take it from a
labelled reference window (:func:`judge_performance` ``reference=``); the drop is then weighed
against the standard error of the difference, ``sqrt(SE_window^2 + SE_reference^2)``.

**Judgement** (:func:`judge_performance`): ``drop`` is the main metric's fall from its baseline in
the metric's units, positive when worse (``baseline - value`` for metrics where higher is better,
``value - baseline`` for losses and errors, ``|value| - |baseline|`` for bias). A level of
``max_drop`` is breached when ``drop`` exceeds it *and* exceeds ``sigma`` standard errors, so a
drop within the sampling error never breaches. With ``relative=True`` the levels are fractions of
``|baseline|``.

Pure: no Airflow, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from airflow_mlobs.core.performance.metrics import MetricValue, calibration_map, compute_metrics
from airflow_mlobs.core.performance.summary import (
    ClassificationSummary,
    MulticlassSummary,
    RegressionSummary,
    Summary,
)
from airflow_mlobs.core.performance.window import Coverage, PerformanceWindow
from airflow_mlobs.core.performance_settings import (
    ABSOLUTE,
    CHECK,
    DESCRIPTIVE,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    DuplicateLabels,
    PerformanceSettings,
)
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst


def drop_of(metric: str, value: float, baseline: float) -> float:
    """The fall from ``baseline`` to ``value`` in the metric's units, positive when worse."""
    if metric in ABSOLUTE:
        return abs(value) - abs(baseline)
    if metric in LOWER_IS_BETTER:
        return value - baseline
    return baseline - value


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.1%}" if metric in HIGHER_IS_BETTER - {"r2"} or metric in DESCRIPTIVE else f"{value:.4g}"


@dataclass(frozen=True)
class MetricBaseline:
    """A metric's baseline value, with its standard error when it was measured on a reference
    window (``source="reference"``) rather than given."""

    value: float
    se: float | None = None
    source: str = "given"


def _judge_metric(
    name: str, metric: MetricValue, settings: PerformanceSettings, subject: str, base: MetricBaseline | None
) -> tuple[Finding, float | None]:
    """One metric against its baseline: the finding and the drop."""
    baseline = base.value if base is not None else None
    if metric.value is None:
        return Finding(
            subject, name, Status.SKIPPED, None, baseline, f"{name} undefined: {metric.reason}"
        ), None
    if base is None or baseline is None:
        return Finding(subject, name, Status.PASS, metric.value, None, "no baseline"), None
    drop = drop_of(name, metric.value, baseline)
    levels = settings.levels_for(name)
    se = math.hypot(metric.se or 0.0, base.se or 0.0)
    noise = settings.sigma * se
    words = f"{name} {_fmt(name, metric.value)} vs baseline {_fmt(name, baseline)} (drop {drop:+.3g}, SE {se:.2g})"
    if levels is None:
        return Finding(subject, name, Status.PASS, metric.value, baseline, words + "; no max_drop"), drop
    warn_at, fail_at = levels.absolute(baseline)
    status = Status.PASS
    reason = words
    if drop > fail_at and drop > noise:
        status, reason = Status.FAIL, f"{words} > {fail_at:.3g}"
    elif drop > warn_at and drop > noise:
        status, reason = Status.WARN, f"{words} > {warn_at:.3g}"
    elif drop > warn_at:
        reason = f"{words}: within {settings.sigma:g} SE of the baseline, not a breach"
    return Finding(subject, name, status, metric.value, fail_at, reason), drop


@dataclass(frozen=True)
class _Reference:
    """What a labelled reference window contributes: baselines (given values merged in),
    the calibration map of the estimates, notes, and its report in the result's metrics."""

    baselines: dict[str, MetricBaseline]
    calibration: tuple[float, ...] | None = None
    notes: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None


def _with_reference(
    settings: PerformanceSettings,
    reference: Summary | None,
    reference_window: tuple[datetime, datetime] | None,
) -> _Reference:
    """The given baselines, completed from ``reference`` for the main metric and every metric with
    its own ``max_drop`` (a given value wins)."""
    baselines: dict[str, MetricBaseline] = {k: MetricBaseline(v) for k, v in settings.baseline.items()}
    if reference is None:
        return _Reference(baselines)
    ref_metrics = compute_metrics(reference)
    for name in dict.fromkeys([settings.metric, *settings.max_drop]):
        ref = ref_metrics.get(name)
        if name not in baselines and ref is not None and ref.value is not None:
            baselines[name] = MetricBaseline(ref.value, ref.se, "reference")
    calibration: tuple[float, ...] | None = None
    scored_reference = isinstance(reference, ClassificationSummary) and (
        reference.labelled - (reference.invalid_scores - reference.unscored) > 0
    )
    if isinstance(reference, ClassificationSummary) and scored_reference:
        calibration = calibration_map(reference)
    ref_labelled = reference.coverage.labelled
    notes = []
    if ref_labelled == 0:
        notes.append("the reference window has no labelled predictions: no baseline from it")
    report = {
        "window": [t.isoformat() for t in reference_window] if reference_window else None,
        "labelled": ref_labelled,
        "predictions": reference.coverage.predictions,
        "label_coverage": reference.coverage.coverage,
        "metrics": {name: ref_metrics[name].to_dict() for name in baselines if name in ref_metrics},
    }
    return _Reference(baselines, calibration, notes, report)


def _reported(
    summary: Summary,
    settings: PerformanceSettings,
    metrics: Mapping[str, MetricValue],
    main_base: MetricBaseline | None,
    window: PerformanceWindow | None,
    reference_report: dict[str, Any] | None,
) -> dict[str, Any]:
    """The result's metrics before judging (``drop`` and the segments are filled in later)."""
    main_metric = metrics[settings.metric]
    coverage = summary.coverage
    out: dict[str, Any] = {
        "metric": settings.metric,
        "value": main_metric.value,
        "baseline_value": main_base.value if main_base else None,
        "baseline_se": main_base.se if main_base else None,
        "baseline_source": main_base.source if main_base else None,
        "drop": None,
        "se": main_metric.se,
        "band": [main_metric.low, main_metric.high],
        "label_coverage": coverage.coverage,
        "task": settings.task,
        **coverage.to_dict(),
        **_row_counts(summary),
        "metrics": {name: m.to_dict() for name, m in metrics.items()},
    }
    if window is not None:
        out["prediction_window"] = [window.prediction_start.isoformat(), window.prediction_end.isoformat()]
        out["label_cutoff"] = window.label_cutoff.isoformat()
    if reference_report is not None:
        out["reference"] = reference_report
    return out


def _row_counts(summary: Summary) -> dict[str, int]:
    """The labelled rows left out of the metrics, for the result's metrics: ``invalid_scores`` and
    ``unscored`` (classification, see ``ClassificationSummary``), ``invalid`` (regression: NULL or
    non-finite prediction or label; multi-class: NULL label or predicted class), ``huge``
    (regression, see ``RegressionSummary``)."""
    if isinstance(summary, ClassificationSummary):
        return {"invalid_scores": summary.invalid_scores, "unscored": summary.unscored}
    if isinstance(summary, RegressionSummary):
        return {"invalid": summary.invalid, "huge": summary.huge}
    return {"invalid": summary.invalid}


def _notes(summary: Summary, settings: PerformanceSettings, reference_notes: Sequence[str]) -> str:
    """The text appended to every summary line: the reference's, the labels' and the rows' notes."""
    notes = [
        *reference_notes,
        *_label_notes(summary.coverage, settings.duplicate_labels, settings.label_column),
    ]
    if isinstance(summary, ClassificationSummary) and summary.unscored:
        notes.append(
            f"{summary.unscored} predictions without a valid score excluded "
            "(NULL, NaN, infinite or outside [0, 1]: no predicted class)"
        )
    if isinstance(summary, ClassificationSummary) and summary.invalid_scores > summary.unscored:
        notes.append(f"{summary.invalid_scores - summary.unscored} labelled predictions with no valid score")
    if isinstance(summary, MulticlassSummary) and summary.invalid:
        notes.append(f"{summary.invalid} labelled predictions with no label or predicted class")
    if isinstance(summary, RegressionSummary) and summary.huge:
        notes.append(
            f"{summary.huge} labelled predictions with an error or label beyond 1e70: "
            "the squares overflow the double range, so rmse, r2 and standard errors are undefined"
        )
    if isinstance(summary, RegressionSummary) and summary.invalid:
        notes.append(
            f"{summary.invalid} labelled predictions with a NULL or non-finite (NaN, +inf, -inf) "
            "label or predicted value excluded from the metrics"
        )
    if isinstance(summary, RegressionSummary) and summary.zero_labels:
        notes.append(f"{summary.zero_labels} labels are 0 (left out of MAPE)")
    return ("; " + "; ".join(notes)) if notes else ""


def _immature(
    dataset: str,
    coverage: Coverage,
    settings: PerformanceSettings,
    metrics: Mapping[str, MetricValue],
    main_base: MetricBaseline | None,
    calibrated: bool,
) -> tuple[str, Finding]:
    """The summary line and finding of a window whose labels are not mature, with the estimates."""
    main = settings.metric
    cov = coverage.coverage or 0.0
    estimates = [
        f"{m.name.replace('_', ' ')} {_fmt(m.name, m.value)}"
        + (
            f" (baseline {_fmt(main, main_base.value)})"
            if m.name == f"expected_{main}" and main_base is not None
            else ""
        )
        for m in metrics.values()
        if m.estimate and m.value is not None
    ]
    how = " calibrated on the reference window" if calibrated else ""
    est = f"; estimated from scores{how}: {', '.join(estimates)}" if estimates else ""
    reason = f"labels not mature: {cov:.0%} coverage (minimum {settings.min_label_coverage:.0%})"
    return (
        f"{dataset}: {reason}, {coverage.labelled} of {coverage.predictions} predictions labelled{est}",
        Finding("labels", "label_coverage", Status.SKIPPED, cov, settings.min_label_coverage, reason),
    )


def _judge_model(
    metrics: Mapping[str, MetricValue], settings: PerformanceSettings, baselines: Mapping[str, MetricBaseline]
) -> tuple[list[Finding], float | None, Status]:
    """The main metric and every other metric with a baseline: findings, the main drop, the status."""
    main = settings.metric
    main_finding, main_drop = _judge_metric(main, metrics[main], settings, "model", baselines.get(main))
    findings = [main_finding]
    for name, other in baselines.items():
        if name != main:
            finding, _ = _judge_metric(name, metrics[name], settings, "model", other)
            findings.append(finding)
    status = worst((f.status for f in findings if f.status is not Status.SKIPPED), Status.PASS)
    if metrics[main].value is None:
        status = Status.SKIPPED if status is Status.PASS else status
    return findings, main_drop, status


def _judge_segments(
    segments: Mapping[str, Summary], settings: PerformanceSettings, main_base: MetricBaseline | None
) -> tuple[list[Finding], list[dict[str, Any]], list[str]]:
    """The main metric per segment with enough labels (capped at ``warn``): the findings, the rows
    sorted by drop (worst first) and the segments that warn."""
    main = settings.metric
    findings: list[Finding] = []
    named: list[str] = []
    rows: list[dict[str, Any]] = []
    for segment, seg_summary in segments.items():
        seg_metric = compute_metrics(seg_summary)[main]
        labelled = seg_summary.coverage.labelled
        row: dict[str, Any] = {
            "segment": segment,
            "value": seg_metric.value,
            "se": seg_metric.se,
            "labelled": labelled,
            "label_coverage": seg_summary.coverage.coverage,
            "drop": None,
        }
        if labelled >= settings.min_segment_labels and seg_metric.value is not None:
            finding, drop = _judge_metric(main, seg_metric, settings, f"segment:{segment}", main_base)
            row["drop"] = drop
            if finding.status is Status.FAIL:
                finding = replace(finding, status=Status.WARN)
            findings.append(finding)
            if finding.status is Status.WARN:
                named.append(segment)
        rows.append(row)
    rows.sort(key=lambda r: -(r["drop"] if r["drop"] is not None else -math.inf))
    return findings, rows, named


def _headline(
    dataset: str,
    settings: PerformanceSettings,
    main_metric: MetricValue,
    main_base: MetricBaseline | None,
    main_drop: float | None,
    coverage: Coverage,
    findings: Sequence[Finding],
    worst_named: Sequence[str],
) -> str:
    """The summary line of a judged window: the main metric with its band, the baseline, the
    coverage, the model's breaches and the worst segments."""
    main = settings.metric
    head = f"{dataset}: {main} {_fmt(main, main_metric.value)}"
    if main_metric.value is None:
        head += f" ({main_metric.reason})"
    elif main_metric.se is not None:
        head += f" ± {3 * main_metric.se:.2g} (3 SE)"
    if main_base is not None and main_drop is not None:
        head += f" vs baseline {_fmt(main, main_base.value)}"
        if main_base.source == "reference":
            head += " (reference window)"
    head += f", {coverage.labelled} of {coverage.predictions} predictions labelled ({coverage.coverage or 0.0:.0%})"
    bad = [f for f in findings if f.status in (Status.WARN, Status.FAIL) and f.subject == "model"]
    if bad:
        head += ": " + "; ".join(f.reason for f in bad)
    if worst_named:
        head += f"; worst segments: {', '.join(worst_named[: settings.worst_segments])}"
    return head


def judge_performance(
    summary: Summary,
    settings: PerformanceSettings,
    *,
    dataset: str,
    window: PerformanceWindow | None = None,
    segments: Mapping[str, Summary] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    reference: Summary | None = None,
    reference_window: tuple[datetime, datetime] | None = None,
) -> CheckResult:
    """Judge one window's summary (and optionally its segments) against the baselines.

    ``reference``: the summary of a labelled reference window (``reference_window``, reported). It
    gives the baseline of the main metric and of every metric with its own ``max_drop`` that has no
    given value (a given value wins), and calibrates the estimates of a binary classifier
    (:mod:`airflow_mlobs.core.performance.metrics`). A reference without labelled rows gives no
    baseline (and says so).

    ``skipped`` when the window is empty or label coverage is below ``min_label_coverage`` (the
    estimates are still reported); otherwise the worst of the baseline metrics' findings decides.
    Segment findings (at least ``min_segment_labels`` labelled rows) are capped at ``warn``; the
    worst ``worst_segments`` by drop of the main metric are named in the summary. The metrics hold
    ``metric``, ``value``, ``baseline_value``, ``drop`` and ``label_coverage`` (read by the
    retraining gate and the notifications), the coverage counts, and every metric with its SE band.
    """
    ref = _with_reference(settings, reference, reference_window)
    metrics = compute_metrics(summary, ref.calibration)
    main_base = ref.baselines.get(settings.metric)
    out = _reported(summary, settings, metrics, main_base, window, ref.report)
    notes = _notes(summary, settings, ref.notes)
    coverage = summary.coverage

    def result(status: Status, summary_text: str, findings: Sequence[Finding]) -> CheckResult:
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=status,
            summary=summary_text + notes,
            window_start=window_start,
            window_end=window_end,
            metrics=out,
            findings=tuple(findings),
        )

    if coverage.predictions == 0:
        return result(
            Status.SKIPPED,
            f"{dataset}: no predictions in the window",
            [Finding("window", "predictions", Status.SKIPPED, 0, None, "no predictions in the window")],
        )
    if (coverage.coverage or 0.0) < settings.min_label_coverage:
        text, finding = _immature(
            dataset, coverage, settings, metrics, main_base, calibrated=ref.calibration is not None
        )
        return result(Status.SKIPPED, text, [finding])

    findings, main_drop, status = _judge_model(metrics, settings, ref.baselines)
    out["drop"] = main_drop
    named: list[str] = []
    if segments:
        seg_findings, seg_rows, named = _judge_segments(segments, settings, main_base)
        findings += seg_findings
        out["segments"] = seg_rows
        out["worst_segments"] = [r["segment"] for r in seg_rows if r["drop"] is not None][
            : settings.worst_segments
        ]
        if named:
            status = worst([status, Status.WARN])
    worst_named = ([s for s in out["worst_segments"] if s in named] or named) if named else []
    head = _headline(
        dataset, settings, metrics[settings.metric], main_base, main_drop, coverage, findings, worst_named
    )
    return result(status, head, findings)


def _label_notes(
    coverage: Coverage, duplicate_labels: DuplicateLabels = "latest", label_column: str = "label"
) -> list[str]:
    notes = []
    if coverage.unidentified:
        notes.append(f"{coverage.unidentified} predictions without a prediction id excluded")
    if coverage.null_labels:
        notes.append(
            f"{coverage.null_labels} labels in column {label_column!r} were NULL "
            "(no label: neither labelled nor negative)"
        )
    if coverage.orphan_labels:
        notes.append(f"{coverage.orphan_labels} labels for unknown prediction ids")
    if coverage.duplicate:
        notes.append(f"{coverage.duplicate} predictions with duplicate labels ({duplicate_labels} kept)")
    if coverage.late:
        notes.append(f"{coverage.late} labels arrived after the cut-off (not counted)")
    return notes


def positive_label_absent(summary: Summary) -> bool:
    """Whether a binary classification window has labels but none of them is the positive class."""
    return (
        isinstance(summary, ClassificationSummary)
        and summary.coverage.labelled > 0
        and summary.tp + summary.fn == 0
    )


def with_absent_positive_label(
    result: CheckResult, positive_label: Any, label_column: str, values_seen: Sequence[Any] | None
) -> CheckResult:
    """``result`` with a finding and a note that no label equals ``positive_label``.

    Status: ``error`` when at least two distinct label values were seen, none of them
    ``positive_label``: a label column with two classes of which neither is the positive one is
    certainly a configuration mistake (a wrong ``positive_label`` or ``label_column``; every label
    would count as negative). With one value seen (or none known, labels in a file) the window may
    truly hold only negatives (a rare positive class): at least ``warn``, the judged status kept if
    worse.
    """
    shown = ", ".join(repr(v) for v in values_seen) if values_seen else "unknown"
    certain = values_seen is not None and len(values_seen) >= 2
    text = (
        f"no label in column {label_column!r} equals positive_label {positive_label!r} "
        f"(values seen: {shown}); every label counts as negative"
    )
    status = Status.ERROR if certain else worst([result.status, Status.WARN])
    finding = Finding(label_column, "positive_label", status, positive_label, None, text)
    metrics = {**result.metrics, "positive_label_absent": True}
    summary = (
        f"{result.dataset}: {text}; judged: {result.summary}" if certain else f"{result.summary}; {text}"
    )
    return replace(
        result, status=status, summary=summary, findings=(*result.findings, finding), metrics=metrics
    )


def with_repeated_ids(result: CheckResult, repeated: int, id_column: str) -> CheckResult:
    """``result`` with a ``warn`` (at least) finding that ``repeated`` log rows of the window repeat
    a prediction id already logged there. Rule: every logged row is judged as a prediction (a
    retry that logs again counts twice), so the counts and metrics include them; the finding says
    how many, so a duplicated log is never a silent pass."""
    text = (
        f"{repeated} prediction log rows repeat a {id_column!r} already logged in the window; each "
        "is judged as a prediction (keep prediction ids unique in the log)"
    )
    finding = Finding(id_column, "repeated_predictions", Status.WARN, repeated, None, text)
    return replace(
        result,
        status=worst([result.status, Status.WARN]),
        summary=f"{result.summary}; {text}",
        findings=(*result.findings, finding),
    )
