"""The words at the top of a message: its title, and each check's line of key numbers.

:func:`title` names what happened (an alert, a reminder, an escalation, a recovery), the check, the
dataset and the window. :func:`headline` is the one line of numbers a person reads first, written
once per check from its typed reading (:mod:`airflow_mlobs.core.readings`); a check without one
has no headline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from airflow_mlobs.core.drift_settings import CHECK as DRIFT
from airflow_mlobs.core.freshness import CHECK as FRESHNESS
from airflow_mlobs.core.health import CHECK as SERVICE_HEALTH
from airflow_mlobs.core.health import ms, pct
from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.performance_settings import CHECK as PERFORMANCE
from airflow_mlobs.core.readings import DriftReading, FreshnessReading, HealthReading, PerformanceReading
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import format_duration


def title(result: CheckResult, *, kind: Kind, consecutive: int = 1) -> str:
    """``[prefix]STATUS: check on dataset (window)``, or ``Recovered: ...`` for a recovery."""
    window = ""
    if result.window_end is not None:
        window = (
            f" ({result.window_start:%Y-%m-%d %H:%M} to {result.window_end:%Y-%m-%d %H:%M} UTC)"
            if result.window_start
            else f" (as of {result.window_end:%Y-%m-%d %H:%M} UTC)"
        )
    if kind == "recovery":
        return f"Recovered: {result.check} on {result.dataset}{window}"
    prefix = {
        "alert": "",
        "reminder": "Still failing: ",
        "escalation": f"Escalation ({consecutive} windows in a row): ",
    }[kind]
    return f"{prefix}{result.status.value.upper()}: {result.check} on {result.dataset}{window}"


def drift_headline(result: CheckResult) -> str | None:
    """Drift share, drifted of judged columns, the baseline and the rows judged."""
    drift = DriftReading.of(result)
    if drift is None:
        return None
    return (
        f"Drift share {drift.drift_share:.0%} ({drift.columns_drifted} of {drift.columns_judged} columns), "
        f"baseline {drift.baseline}, {drift.rows} rows"
    )


def performance_headline(result: CheckResult) -> str | None:
    """The main metric against its baseline, and the label coverage."""
    performance = PerformanceReading.of(result)
    if performance is None or performance.value is None:
        return None
    coverage = performance.label_coverage
    cov = f", label coverage {coverage:.0%}" if coverage is not None else ""
    baseline = performance.baseline_value if performance.baseline_value is not None else "-"
    return f"{performance.metric} {performance.value:.3g} against baseline {baseline}{cov}"


def freshness_headline(result: CheckResult) -> str | None:
    """How old the newest data was."""
    freshness = FreshnessReading.of(result)
    if freshness is None or freshness.age_seconds is None:
        return None
    return f"Newest data {format_duration(timedelta(seconds=float(freshness.age_seconds)))} old"


def health_headline(result: CheckResult) -> str | None:
    """``p95 900 ms (7.5x baseline 120 ms), errors 7.1% [6.0%, 8.3%] of 1,234 requests``."""
    health = HealthReading.of(result)
    if health is None:
        return None
    if health.requests == 0:
        return "No requests in the window"
    p95 = f"p95 {ms(health.p95_ms)}"
    if health.p95_ratio is not None and health.baseline_p95_ms is not None:
        p95 += f" ({health.p95_ratio:.1f}x baseline {ms(health.baseline_p95_ms)})"
    errors = f"errors {pct(health.error_rate)}"
    if health.error_rate_low is not None and health.error_rate_high is not None:
        errors += f" [{pct(health.error_rate_low)}, {pct(health.error_rate_high)}]"
    return f"{p95}, {errors} of {health.requests:,} requests"


#: One headline per check, by check name.
HEADLINES: dict[str, Callable[[CheckResult], str | None]] = {
    DRIFT: drift_headline,
    PERFORMANCE: performance_headline,
    FRESHNESS: freshness_headline,
    SERVICE_HEALTH: health_headline,
    "attribution_drift": lambda result: attribution_headline(result),
    "fairness": lambda result: fairness_headline(result),
}


def headline(result: CheckResult) -> str | None:
    """The check's line of key numbers (``None`` when the check has none, or the result lacks them)."""
    render = HEADLINES.get(result.check)
    return render(result) if render is not None else None


def attribution_headline(result: CheckResult) -> str | None:
    """``nDCG 0.78 · Spearman 0.50 · gained x2 · lost x1`` for the attribution-drift check."""
    value = result.metrics.get("ndcg")
    if not isinstance(value, int | float):
        return None
    parts = [f"nDCG {value:.2f}"]
    rho = result.metrics.get("spearman")
    if isinstance(rho, int | float):
        parts.append(f"Spearman {rho:.2f}")
    for key in ("gained", "lost"):
        names = result.metrics.get(key)
        if isinstance(names, list) and names:
            parts.append(f"{key} {', '.join(str(n) for n in names)}")
    return " · ".join(parts)


def fairness_headline(result: CheckResult) -> str | None:
    """``region: south selected at 0.28x north (parity gap 0.33)`` per attribute, for the fairness
    check (the lowest disparate impact ratio first)."""
    parts: list[tuple[float, str]] = []
    for attribute, block in result.metrics.items():
        gaps = block.get("gaps", {}) if isinstance(block, dict) else {}
        di = gaps.get("disparate_impact_ratio", {})
        dp = gaps.get("demographic_parity_difference", {})
        if not isinstance(di, dict) or not isinstance(di.get("value"), int | float):
            continue
        text = f"{attribute}: {di.get('worst')} selected at {di['value']:.2f}x {di.get('best')}"
        if isinstance(dp, dict) and isinstance(dp.get("value"), int | float):
            text += f" (parity gap {dp['value']:.2f})"
        parts.append((float(di["value"]), text))
    return " · ".join(t for _, t in sorted(parts)) if parts else None
