"""Attribution drift: a model that starts relying on different features (pure; no data access).

"If your fraud detection system suddenly weighs location less heavily than before": the accuracy
may not move while the reasons for the predictions do. Given per-prediction feature attributions
(SHAP values or similar, one number per feature per prediction), a window is summarized per feature
by the mergeable sums ``n`` (finite values), ``Σ|a|`` and ``Σa²`` (:class:`FeatureSums`); only those
aggregates cross the wire.

Definitions (``m`` features; importance of feature ``f`` = its mean absolute attribution
``I(f) = Σ|a| / n``):

- **share** of ``f``: ``I(f) / Σ_g I(g)``, the part of the total importance it carries. Its standard
  error is the delta-method ``se(I(f)) / Σ_g I(g)`` with ``se(I(f)) = sqrt(s²/n)`` and
  ``s² = (Σa² - (Σ|a|)²/n) / (n - 1)`` (the sample variance of ``|a|``); the variation of the
  denominator is neglected (it is a sum over every feature). A feature **gained** or **lost** weight
  when ``|share_cur - share_ref| >= min_share_change`` and ``>= z x sqrt(se_cur² + se_ref²)``
  (a given reference importance has no standard error).
- **nDCG** as SageMaker Clarify defines it for feature attribution drift
  (https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-feature-attribution-drift.html):
  with ``F = [f_1..f_m]`` the features sorted by reference importance, ``F' = [f'_1..f'_m]`` sorted by
  current importance and ``a(f)`` the reference importance, ``DCG = Σ_i a(f'_i) / log2(i + 1)``,
  ``iDCG = Σ_i a(f_i) / log2(i + 1)``, ``nDCG = DCG / iDCG``. 1.0 means the current ranking orders
  the reference's important features as the reference does; Clarify alerts below 0.90, the default
  ``ndcg_fail`` here.
- **Spearman** rank correlation of current and reference importances: the Pearson correlation of
  their ranks, ties given their average rank (as ``scipy.stats.spearmanr``); undefined (``None``,
  with the reason) when either ranking is constant or fewer than 2 features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from airflow_mlobs.core.result import CheckResult, Finding, Status, worst

CHECK = "attribution_drift"
#: The prediction log's attribution columns are named ``attr__<feature>`` (``PredictionLogger``'s
#: ``attributions=``; airflow_mlobs.recorder.layout re-exports it).
ATTRIBUTION_PREFIX = "attr__"


@dataclass(frozen=True)
class FeatureSums:
    """One feature's attributions in a window: ``n`` finite values, ``Σ|a|`` and ``Σa²``."""

    n: int = 0
    sum_abs: float = 0.0
    sum_sq: float = 0.0

    def merge(self, other: FeatureSums) -> FeatureSums:
        """The sums of both windows."""
        return FeatureSums(self.n + other.n, self.sum_abs + other.sum_abs, self.sum_sq + other.sum_sq)

    @property
    def mean_abs(self) -> float | None:
        """``Σ|a| / n``; ``None`` without values."""
        return self.sum_abs / self.n if self.n else None

    @property
    def se_mean_abs(self) -> float | None:
        """Standard error of the mean ``|a|``; ``None`` below 2 values."""
        if self.n < 2:
            return None
        var = (self.sum_sq - self.sum_abs * self.sum_abs / self.n) / (self.n - 1)
        return math.sqrt(max(var, 0.0) / self.n)


@dataclass(frozen=True)
class AttributionSummary:
    """A window's attributions: its row count and each feature's :class:`FeatureSums`."""

    rows: int
    features: Mapping[str, FeatureSums] = field(default_factory=dict)

    def merge(self, other: AttributionSummary) -> AttributionSummary:
        """Both windows' sums (features of either)."""
        names = list(self.features) + [f for f in other.features if f not in self.features]
        return AttributionSummary(
            self.rows + other.rows,
            {
                f: self.features.get(f, FeatureSums()).merge(other.features.get(f, FeatureSums()))
                for f in names
            },
        )

    def importances(self) -> dict[str, float]:
        """Mean ``|a|`` per feature with values."""
        return {f: s.mean_abs for f, s in self.features.items() if s.mean_abs is not None}


@dataclass(frozen=True)
class Reference:
    """What the window is compared with: importances per feature, and the sums behind them when the
    reference is a window of the log (for standard errors). ``label`` says where it came from."""

    importances: Mapping[str, float]
    label: str
    summary: AttributionSummary | None = None


@dataclass(frozen=True)
class AttributionRules:
    """Levels: fail when nDCG < ``ndcg_fail`` (SageMaker Clarify's 0.90), warn below ``ndcg_warn``;
    warn when Spearman < ``spearman_warn``; a share moves by ``min_share_change`` and ``z`` standard
    errors to count; ``min_rows`` rows are needed in the window."""

    ndcg_fail: float = 0.9
    ndcg_warn: float = 0.95
    spearman_warn: float | None = 0.5
    min_share_change: float = 0.05
    z: float = 3.0
    min_rows: int = 30

    def check(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` for a level out of range."""
        if not 0 < self.ndcg_fail <= 1 or not self.ndcg_fail <= self.ndcg_warn <= 1:
            raise ValueError(
                f"{where}: need 0 < ndcg_fail <= ndcg_warn <= 1, got {self.ndcg_fail}, {self.ndcg_warn}"
            )
        if self.spearman_warn is not None and not -1 <= self.spearman_warn <= 1:
            raise ValueError(f"{where}: spearman_warn must be in [-1, 1], got {self.spearman_warn}")
        if not 0 <= self.min_share_change < 1:
            raise ValueError(f"{where}: min_share_change must be in [0, 1), got {self.min_share_change}")
        if self.z < 0 or self.min_rows < 1:
            raise ValueError(f"{where}: z must be >= 0 and min_rows >= 1, got {self.z}, {self.min_rows}")


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ascending, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho of paired values (average ranks for ties); ``None`` when undefined."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ndcg(current: Mapping[str, float], reference: Mapping[str, float]) -> float | None:
    """SageMaker Clarify's nDCG of the current ranking with the reference importances as relevance
    (module docstring); features missing from ``current`` rank last. ``None`` when iDCG is 0."""
    features = list(reference)
    ideal = sorted(features, key=lambda f: (-abs(reference[f]), f))
    live = sorted(features, key=lambda f: (-current.get(f, -math.inf), f))
    idcg = sum(abs(reference[f]) / math.log2(i + 2) for i, f in enumerate(ideal))
    if idcg <= 0:
        return None
    dcg = sum(abs(reference[f]) / math.log2(i + 2) for i, f in enumerate(live))
    return dcg / idcg


def _shares(importances: Mapping[str, float]) -> dict[str, float] | None:
    total = sum(abs(v) for v in importances.values())
    if total <= 0:
        return None
    return {f: abs(v) / total for f, v in importances.items()}


def _share_se(summary: AttributionSummary | None, feature: str, total: float) -> float:
    if summary is None or feature not in summary.features:
        return 0.0
    se = summary.features[feature].se_mean_abs
    return se / total if se is not None and total > 0 else 0.0


def judge_attribution(
    *,
    dataset: str,
    current: AttributionSummary,
    reference: Reference | None,
    rules: AttributionRules,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """The window's attributions against the reference: nDCG, Spearman and the features that
    gained or lost weight. Degenerate inputs (no attribution columns, no rows, all NULL, all zero,
    an empty reference) are ``skipped`` with the reason."""

    def skipped(reason: str, metrics: Mapping[str, object] | None = None) -> CheckResult:
        return CheckResult(
            check=CHECK,
            dataset=dataset,
            status=Status.SKIPPED,
            summary=f"attribution drift not judged: {reason}",
            window_start=window_start,
            window_end=window_end,
            metrics={"rows": current.rows, **(metrics or {})},
            findings=[Finding("attributions", "ndcg", Status.SKIPPED, reason=reason)],
        )

    if not current.features:
        return skipped("no attribution columns")
    if current.rows == 0:
        return skipped("the window has no rows")
    cur_imp = current.importances()
    if not cur_imp:
        return skipped("every attribution in the window is NULL (or not finite)")
    if current.rows < rules.min_rows:
        return skipped(f"{current.rows} rows in the window, fewer than min_rows={rules.min_rows}")
    cur_total = sum(cur_imp.values())
    if cur_total <= 0:
        return skipped("every attribution in the window is zero")
    if reference is None:
        return skipped("no reference: give reference_window, baseline_importances or importances_table")
    ref_imp = {f: abs(v) for f, v in reference.importances.items() if f in current.features}
    ref_shares = _shares(ref_imp)
    if not ref_imp or ref_shares is None:
        return skipped(f"the reference ({reference.label}) has no non-zero importance for these features")
    ref_total = sum(ref_imp.values())
    cur_shares = {f: cur_imp.get(f, 0.0) / cur_total for f in ref_imp}
    names = list(ref_imp)
    score = ndcg(cur_imp, ref_imp)
    rho = spearman([cur_imp.get(f, 0.0) for f in names], [ref_imp[f] for f in names])

    findings: list[Finding] = []
    gained: list[str] = []
    lost: list[str] = []
    for f in sorted(names, key=lambda f: -abs(cur_shares[f] - ref_shares[f])):
        diff = cur_shares[f] - ref_shares[f]
        se = math.hypot(_share_se(current, f, cur_total), _share_se(reference.summary, f, ref_total))
        moved = abs(diff) >= rules.min_share_change and abs(diff) >= rules.z * se
        if moved:
            (gained if diff > 0 else lost).append(f)
        findings.append(
            Finding(
                subject=f,
                metric="attribution_share",
                status=Status.WARN if moved else Status.PASS,
                value=round(cur_shares[f], 6),
                threshold=round(ref_shares[f], 6),
                reason=(
                    f"{'gained' if diff > 0 else 'lost'} weight: share of mean |attribution| "
                    f"{ref_shares[f]:.1%} -> {cur_shares[f]:.1%} (±{se:.1%} standard error)"
                    if moved
                    else ""
                ),
            )
        )

    if score is not None and score < rules.ndcg_fail:
        ndcg_status = Status.FAIL
    elif score is not None and score < rules.ndcg_warn:
        ndcg_status = Status.WARN
    else:
        ndcg_status = Status.PASS
    ndcg_reason = (
        f"nDCG {score:.3f} below {rules.ndcg_fail if ndcg_status is Status.FAIL else rules.ndcg_warn}"
        if ndcg_status is not Status.PASS and score is not None
        else ""
    )
    rho_status = Status.PASS
    rho_reason = "undefined: a constant ranking or fewer than 2 features" if rho is None else ""
    if rho is not None and rules.spearman_warn is not None and rho < rules.spearman_warn:
        rho_status, rho_reason = Status.WARN, f"Spearman {rho:.3f} below {rules.spearman_warn}"
    head = [
        Finding("ranking", "ndcg", ndcg_status, score, rules.ndcg_fail, ndcg_reason),
        Finding(
            "ranking",
            "spearman",
            rho_status if rho is not None else Status.SKIPPED,
            rho,
            rules.spearman_warn,
            rho_reason,
        ),
    ]
    status = worst([ndcg_status, rho_status, *(x.status for x in findings)])
    moved_text = "; ".join(
        part
        for part in (
            f"gained weight: {', '.join(gained)}" if gained else "",
            f"lost weight: {', '.join(lost)}" if lost else "",
        )
        if part
    )
    score_text = "nDCG n/a" if score is None else f"nDCG {score:.3f}"
    rho_text = "Spearman n/a" if rho is None else f"Spearman {rho:.3f}"
    summary = f"{score_text}, {rho_text} vs {reference.label}" + (f"; {moved_text}" if moved_text else "")
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics={
            "rows": current.rows,
            "ndcg": score,
            "spearman": rho,
            "features": len(names),
            "gained": gained,
            "lost": lost,
            "reference": reference.label,
            "shares": {f: round(cur_shares[f], 6) for f in names},
            "reference_shares": {f: round(ref_shares[f], 6) for f in names},
        },
        findings=[*head, *findings],
    )
