"""Service health, the third pillar: latency, throughput and errors of a model's endpoint, judged.

Pure: no Airflow, SQLAlchemy or pandas. The gatherers (:mod:`airflow_mlobs.sources.health_sql`,
:mod:`airflow_mlobs.sources.health_frame`) produce :class:`HealthSummary` values; this module
defines every statistic once and judges them.

Definitions (every latency in milliseconds; a ``latency_unit="s"`` column is multiplied by 1000):

* **requests**: rows of the request log in the window ``[start, end)``; **errors**: rows the error
  rule counts (a true ``error_column``, or a status in ``error_statuses``, default status >= 500; a
  NULL is not an error). **error rate** = errors / requests, with its Wilson score 95% interval
  (:func:`~airflow_mlobs.core.intervals.wilson_interval`).
* **latency mean, p50, p95, p99, max** over the rows with a finite latency (NULL, NaN, infinite
  and, on SQLite, stored non-numbers are left out and counted as ``latency_missing``). A
  percentile is PostgreSQL's ``percentile_cont`` (= ``numpy.percentile(method="linear")``): of the
  ``n`` sorted values, the value at rank ``h = 1 + q (n - 1)``, interpolated linearly between the
  ranks ``floor(h)`` and ``floor(h) + 1`` (:func:`interpolate_rank`).
* **throughput** = requests / window length in minutes; **peak minute** = the most requests in one
  calendar minute of the window.
* **burn rate** (Google SRE workbook, "Alerting on SLOs") of an SLO with target ``T`` over a
  window = the share of bad events / ``(1 - T)``: 1 spends the error budget exactly over the SLO
  period, 14.4 spends 2% of a 30-day budget in one hour. Availability: bad = errors, of all
  requests. Latency: bad = latency > ``slo_latency_ms``, of the requests with a latency. Burn
  windows end at the judged window's end (they may reach back before its start). Multiwindow,
  multi-burn-rate rule: **page** (fail) when the burn rate is >= 14.4 over both the last 1 h and
  the last 5 min; **ticket** (warn) when >= 6 over both the last 6 h and the last 30 min. A burn
  window without events has no burn rate and never alerts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from airflow_mlobs.core.intervals import wilson_interval
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst

CHECK = "service_health"

#: The percentiles every summary reports.
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)

LatencyUnit = Literal["ms", "s"]
ErrorKind = Literal["auto", "boolean", "status"]
#: How many milliseconds one unit of the latency column is.
UNIT_MS: dict[str, float] = {"ms": 1.0, "s": 1000.0}


def rank_position(n: int, q: float) -> tuple[int, float]:
    """``(k, t)`` for the ``q`` percentile of ``n`` sorted values: the value lies between the ranks
    ``k`` and ``k + 1`` (1-based) at fraction ``t``; ``k = floor(q (n - 1)) + 1``. The database
    computes ``k`` from the same double product ``q * (n - 1)``, so both agree exactly."""
    virtual = q * (n - 1)
    below = math.floor(virtual)
    return int(below) + 1, virtual - below


def interpolate_rank(low: float, high: float | None, t: float) -> float:
    """Linear interpolation between the values at ranks ``k`` and ``k + 1`` at fraction ``t``, in
    numpy's exact form (``numpy.lib._function_base_impl._lerp``: from the upper value when
    ``t >= 0.5``), so a percentile equals ``numpy.percentile(method="linear")`` to the last bit."""
    if high is None or t == 0.0:
        return float(low)
    diff = float(high) - float(low)
    if t >= 0.5:
        return float(high) - diff * (1.0 - t)
    return float(low) + diff * t


@dataclass(frozen=True)
class HealthSummary:
    """What one window of the request log is, gathered in one aggregate statement.

    ``window_minutes`` is the window's length; latencies are in ms; ``latency_count`` counts the
    requests with a finite latency; ``peak_per_minute`` the most requests in one minute (``None``
    where not gathered, e.g. per segment).
    """

    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    peak_per_minute: int | None = None
    window_minutes: float | None = None

    @property
    def error_rate(self) -> float | None:
        """errors / requests; ``None`` without requests."""
        return self.errors / self.requests if self.requests else None

    @property
    def error_interval(self) -> tuple[float, float] | None:
        """The Wilson 95% interval of the error rate."""
        return wilson_interval(self.errors, self.requests)

    @property
    def throughput_per_min(self) -> float | None:
        """requests per minute of the window; ``None`` for a window of no length."""
        if not self.window_minutes:
            return None
        return self.requests / self.window_minutes

    @property
    def latency_missing(self) -> int:
        """Requests without a finite latency."""
        return self.requests - self.latency_count

    def to_metrics(self, prefix: str = "") -> dict[str, Any]:
        """The JSON form, keys prefixed by ``prefix``."""
        interval = self.error_interval
        values: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "error_rate_low": interval[0] if interval else None,
            "error_rate_high": interval[1] if interval else None,
            "latency_count": self.latency_count,
            "latency_missing": self.latency_missing,
            "latency_mean_ms": self.latency_mean_ms,
            "latency_p50_ms": self.p50_ms,
            "latency_p95_ms": self.p95_ms,
            "latency_p99_ms": self.p99_ms,
            "latency_max_ms": self.max_ms,
            "throughput_per_min": self.throughput_per_min,
            "peak_per_minute": self.peak_per_minute,
        }
        return {f"{prefix}{key}": value for key, value in values.items()}


@dataclass(frozen=True)
class BurnWindow:
    """Counts of one burn-rate window ending at the judged window's end: requests, errors, and of
    the requests with a latency (``latency_count``) those slower than the latency SLO (``slow``)."""

    minutes: int
    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    slow: int = 0


#: The burn windows (minutes) the multiwindow rule reads: page over 60 and 5, ticket over 360 and 30.
PAGE_WINDOWS = (60, 5)
TICKET_WINDOWS = (360, 30)
BURN_WINDOWS: tuple[int, ...] = (5, 30, 60, 360)


def burn_rate(bad: int, total: int, target: float) -> float | None:
    """``(bad / total) / (1 - target)``; ``None`` without events (no evidence either way)."""
    if total <= 0 or not 0.0 < target < 1.0:
        return None
    # The budget 1 - T rounded to 12 digits (1 - 0.999 is 0.0010000000000000009 in binary), and
    # one division, so a rate exactly at an alert level (15 of 1,000 at 0.999 is 15) reads as such.
    budget = round(1.0 - target, 12)
    return bad / (total * budget)


@dataclass(frozen=True)
class HealthBaseline:
    """What the window is compared with: given values, else a reference window's summary."""

    p95_ms: float | None = None
    error_rate: float | None = None
    throughput_per_min: float | None = None
    source: str = "given"

    @classmethod
    def combine(cls, given: Mapping[str, float] | None, reference: HealthSummary | None) -> HealthBaseline:
        """Given values win; the reference window fills what they leave out."""
        values = dict(given or {})
        ref_values = {
            "p95_ms": reference.p95_ms if reference else None,
            "error_rate": reference.error_rate if reference else None,
            "throughput_per_min": reference.throughput_per_min if reference else None,
        }
        picked = {k: (values[k] if values.get(k) is not None else ref_values[k]) for k in ref_values}
        source = "reference window" if reference is not None else "given"
        if reference is not None and values:
            source = "given values and reference window"
        return cls(
            p95_ms=None if picked["p95_ms"] is None else float(picked["p95_ms"]),
            error_rate=None if picked["error_rate"] is None else float(picked["error_rate"]),
            throughput_per_min=(
                None if picked["throughput_per_min"] is None else float(picked["throughput_per_min"])
            ),
            source=source,
        )


#: The keys ``baseline=`` takes.
BASELINE_KEYS = frozenset({"p95_ms", "error_rate", "throughput_per_min"})


@dataclass(frozen=True)
class HealthRules:
    """The thresholds, with the article's defaults.

    * errors: fail when the Wilson lower bound of the error rate exceeds ``max_error_rate`` (5%);
      warn when only the point estimate does. Judged from ``min_requests`` (100) requests; fewer
      is ``skipped`` with the reason (the latency ratio likewise).
    * latency: p95 >= ``p95_fail_ratio`` (2) x the baseline p95 fails, >= ``p95_warn_ratio``
      (1.5) warns.
    * throughput: below ``min_throughput_ratio`` (0.5) x the baseline's fails (not gated by
      ``min_requests``: no traffic is the outage to catch).
    * SLOs (optional): ``slo_availability`` and/or ``slo_latency_ms`` with ``slo_latency_target``,
      judged by the multiwindow burn-rate rule (``page_burn_rate`` 14.4 fails,
      ``ticket_burn_rate`` 6 warns).
    """

    max_error_rate: float = 0.05
    min_requests: int = 100
    p95_warn_ratio: float = 1.5
    p95_fail_ratio: float = 2.0
    min_throughput_ratio: float = 0.5
    slo_availability: float | None = None
    slo_latency_ms: float | None = None
    slo_latency_target: float = 0.99
    page_burn_rate: float = 14.4
    ticket_burn_rate: float = 6.0

    def check(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` and the setting for a value out of range."""
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ValueError(f"{where}: max_error_rate must be in [0, 1], got {self.max_error_rate!r}")
        if (
            isinstance(self.min_requests, bool)
            or not isinstance(self.min_requests, int)
            or self.min_requests < 1
        ):
            raise ValueError(f"{where}: min_requests must be an integer >= 1, got {self.min_requests!r}")
        if not 1.0 <= self.p95_warn_ratio <= self.p95_fail_ratio:
            raise ValueError(
                f"{where}: need 1 <= p95_warn_ratio <= p95_fail_ratio, got {self.p95_warn_ratio!r} and "
                f"{self.p95_fail_ratio!r}"
            )
        if not 0.0 <= self.min_throughput_ratio <= 1.0:
            raise ValueError(
                f"{where}: min_throughput_ratio must be in [0, 1], got {self.min_throughput_ratio!r}"
            )
        for name in ("slo_availability", "slo_latency_target"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"{where}: {name} must be in (0, 1), e.g. 0.999, got {value!r}")
        if self.slo_latency_ms is not None and not self.slo_latency_ms > 0:
            raise ValueError(f"{where}: slo_latency_ms must be > 0, got {self.slo_latency_ms!r}")
        if not 0 < self.ticket_burn_rate <= self.page_burn_rate:
            raise ValueError(
                f"{where}: need 0 < ticket_burn_rate <= page_burn_rate, got {self.ticket_burn_rate!r} "
                f"and {self.page_burn_rate!r}"
            )

    @property
    def uses_burn_rates(self) -> bool:
        """Whether any SLO is set (then the burn windows are gathered)."""
        return self.slo_availability is not None or self.slo_latency_ms is not None


@dataclass(frozen=True)
class GroupHealth:
    """One segment's or model version's summary, and that group's reference summary if gathered."""

    value: str
    current: HealthSummary
    reference: HealthSummary | None = None


@dataclass(frozen=True)
class HealthObservation:
    """Everything gathered for one run: the window, the reference window, burn windows, groups."""

    current: HealthSummary
    reference: HealthSummary | None = None
    burn: tuple[BurnWindow, ...] = ()
    segments: tuple[GroupHealth, ...] = ()
    versions: tuple[GroupHealth, ...] = ()
    latency_unit: str = "ms"
    error_rule: str = "status >= 500"
    statements: int = 0
    rows_fetched: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def ms(value: float | None) -> str:
    """``900 ms``, ``1.25 s`` above 10 s; ``-`` for none."""
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:,.3g} s"
    return f"{value:,.4g} ms" if value < 100 else f"{value:,.0f} ms"


def pct(value: float | None) -> str:
    """``7.1%``; ``-`` for none."""
    return "-" if value is None else f"{value:.1%}"


def _ratio(value: float | None, base: float | None) -> float | None:
    """``value / base`` when both are known and ``base > 0`` (never an infinity)."""
    if value is None or base is None or base <= 0:
        return None
    return value / base


def judge_errors(summary: HealthSummary, rules: HealthRules, subject: str = "errors") -> Finding:
    """The error-rate rule on one summary (see :class:`HealthRules`)."""
    rate, interval = summary.error_rate, summary.error_interval
    threshold = rules.max_error_rate
    if summary.requests < rules.min_requests or rate is None or interval is None:
        return Finding(
            subject=subject,
            metric="error_rate",
            status=Status.SKIPPED,
            value=rate,
            threshold=threshold,
            reason=(
                f"not judged: {summary.requests:,} requests, fewer than min_requests ({rules.min_requests:,})"
            ),
        )
    low, high = interval
    numbers = f"{pct(rate)} [{pct(low)}, {pct(high)}] of {summary.requests:,} requests"
    if low > threshold:
        status, reason = Status.FAIL, f"errors {numbers}: even the lower bound exceeds {pct(threshold)}"
    elif rate > threshold:
        status, reason = (
            Status.WARN,
            f"errors {numbers}: above {pct(threshold)}, but the interval still reaches below it",
        )
    else:
        status, reason = Status.PASS, f"errors {numbers}, within {pct(threshold)}"
    return Finding(subject, "error_rate", status, value=rate, threshold=threshold, reason=reason)


def judge_latency(
    summary: HealthSummary, baseline_p95: float | None, rules: HealthRules, subject: str = "latency"
) -> Finding:
    """The p95 ratio rule on one summary against ``baseline_p95``."""
    thresholds = [rules.p95_warn_ratio, rules.p95_fail_ratio]
    if summary.p95_ms is None:
        reason = (
            "not judged: no requests in the window"
            if summary.requests == 0
            else f"not judged: none of the {summary.requests:,} requests has a latency"
        )
        return Finding(subject, "p95_ratio", Status.SKIPPED, threshold=thresholds, reason=reason)
    if summary.latency_count < rules.min_requests:
        return Finding(
            subject,
            "p95_ratio",
            Status.SKIPPED,
            value=None,
            threshold=thresholds,
            reason=(
                f"not judged: p95 {ms(summary.p95_ms)} from {summary.latency_count:,} latencies, fewer "
                f"than min_requests ({rules.min_requests:,})"
            ),
        )
    ratio = _ratio(summary.p95_ms, baseline_p95)
    if ratio is None:
        why = "no baseline p95" if baseline_p95 is None else f"baseline p95 is {ms(baseline_p95)}"
        return Finding(
            subject,
            "p95_ratio",
            Status.SKIPPED,
            threshold=thresholds,
            reason=f"p95 {ms(summary.p95_ms)}; ratio not judged: {why}",
        )
    numbers = f"p95 {ms(summary.p95_ms)} ({ratio:.2f}x baseline {ms(baseline_p95)})"
    if ratio >= rules.p95_fail_ratio:
        status, reason = Status.FAIL, f"{numbers}: at or over {rules.p95_fail_ratio:g}x"
    elif ratio >= rules.p95_warn_ratio:
        status, reason = Status.WARN, f"{numbers}: at or over {rules.p95_warn_ratio:g}x"
    else:
        status, reason = Status.PASS, f"{numbers}: under {rules.p95_warn_ratio:g}x"
    return Finding(subject, "p95_ratio", status, value=ratio, threshold=thresholds, reason=reason)


def judge_throughput(summary: HealthSummary, baseline: float | None, rules: HealthRules) -> Finding:
    """The throughput rule: below ``min_throughput_ratio`` x the baseline fails."""
    current = summary.throughput_per_min
    ratio = _ratio(current, baseline)
    threshold = rules.min_throughput_ratio
    if current is None or ratio is None:
        why = (
            "the window has no length"
            if current is None
            else ("no baseline throughput" if baseline is None else "baseline throughput is 0")
        )
        return Finding(
            "throughput", "throughput_ratio", Status.SKIPPED, threshold=threshold, reason=f"not judged: {why}"
        )
    numbers = f"{current:,.3g}/min ({ratio:.2f}x baseline {baseline:,.3g}/min)"
    if ratio < threshold:
        return Finding(
            "throughput",
            "throughput_ratio",
            Status.FAIL,
            value=ratio,
            threshold=threshold,
            reason=f"throughput {numbers}: below {threshold:g}x",
        )
    return Finding(
        "throughput",
        "throughput_ratio",
        Status.PASS,
        value=ratio,
        threshold=threshold,
        reason=f"throughput {numbers}",
    )


def burn_rates(burn: Sequence[BurnWindow], rules: HealthRules) -> dict[str, dict[str, float | None]]:
    """Burn rate per SLO (``availability``, ``latency``) and burn window (``"5m"``, ``"1h"``...)."""
    rates: dict[str, dict[str, float | None]] = {}
    if rules.slo_availability is not None:
        rates["availability"] = {
            window_label(w.minutes): burn_rate(w.errors, w.requests, rules.slo_availability) for w in burn
        }
    if rules.slo_latency_ms is not None:
        rates["latency"] = {
            window_label(w.minutes): burn_rate(w.slow, w.latency_count, rules.slo_latency_target)
            for w in burn
        }
    return rates


def window_label(minutes: int) -> str:
    """``5m``, ``30m``, ``1h``, ``6h``."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def judge_burn(slo: str, rates: Mapping[str, float | None], rules: HealthRules) -> Finding:
    """The multiwindow, multi-burn-rate rule for one SLO: page (fail) when both page windows burn
    at >= ``page_burn_rate``, ticket (warn) when both ticket windows burn at >= ``ticket_burn_rate``."""

    def over(windows: tuple[int, int], level: float) -> bool:
        values = [rates.get(window_label(m)) for m in windows]
        return all(v is not None and v >= level for v in values)

    shown = ", ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in rates.items())
    long_page, short_page = (window_label(m) for m in PAGE_WINDOWS)
    long_ticket, short_ticket = (window_label(m) for m in TICKET_WINDOWS)
    if over(PAGE_WINDOWS, rules.page_burn_rate):
        status = Status.FAIL
        reason = f"{slo} SLO burning at >= {rules.page_burn_rate:g}x over {long_page} and {short_page} (page)"
    elif over(TICKET_WINDOWS, rules.ticket_burn_rate):
        status = Status.WARN
        reason = f"{slo} SLO burning at >= {rules.ticket_burn_rate:g}x over {long_ticket} and {short_ticket} (ticket)"
    else:
        status = Status.PASS
        reason = f"{slo} SLO burn rates within the alert levels"
    value = rates.get(long_page)
    return Finding(
        f"slo:{slo}",
        "burn_rate",
        status,
        value=value,
        threshold=[rules.ticket_burn_rate, rules.page_burn_rate],
        reason=f"{reason}; burn rates {shown}",
    )


#: A group's p95 ratio stands out when it is at least this many times the whole window's ratio: a
#: service that slowed everywhere has no slowest segment worth naming.
STANDS_OUT_RATIO = 1.25
#: A group's error rate stands out when it exceeds the rest of the window's by this many standard
#: errors (two-proportion z with the pooled rate).
STANDS_OUT_Z = 3.0


def _errors_stand_out(group: HealthSummary, overall: HealthSummary) -> tuple[bool, float | None]:
    """Whether ``group``'s error rate is above the rest of the window's (``overall`` minus the group)
    by ``STANDS_OUT_Z`` standard errors, and the rest's rate."""
    rest_requests = overall.requests - group.requests
    rest_errors = overall.errors - group.errors
    if group.requests <= 0 or rest_requests <= 0 or rest_errors < 0:
        return False, None
    p_group = group.errors / group.requests
    p_rest = rest_errors / rest_requests
    pooled = (group.errors + rest_errors) / (group.requests + rest_requests)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / group.requests + 1.0 / rest_requests))
    return (se > 0 and (p_group - p_rest) / se >= STANDS_OUT_Z), p_rest


def _moved_most(
    kind: str,
    groups: Sequence[GroupHealth],
    baseline: HealthBaseline,
    rules: HealthRules,
    overall: HealthSummary,
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings naming the group with the largest p95 ratio and the largest error-rate rise (each
    group against its own reference window where gathered, else the overall baseline; the error
    rise, without a baseline error rate, against the whole window's). Warn at most, and only groups
    with ``min_requests`` requests are compared, and only when there are two or more of them (one
    group alone is the window itself)."""
    findings: list[Finding] = []
    named: dict[str, Any] = {}
    p95_moves: list[tuple[float, GroupHealth, float, str]] = []
    error_moves: list[tuple[float, GroupHealth, float, str]] = []
    judged = [group for group in groups if group.current.requests >= rules.min_requests]
    if len(judged) < 2:
        return findings, named
    for group in judged:
        cur = group.current
        ref = group.reference
        base_p95 = ref.p95_ms if ref is not None and ref.p95_ms is not None else baseline.p95_ms
        base_err = ref.error_rate if ref is not None and ref.error_rate is not None else baseline.error_rate
        basis = "its reference window's" if ref is not None and ref.error_rate is not None else "baseline"
        if base_err is None:  # no baseline error rate: against the whole window's, i.e. the others
            base_err, basis = overall.error_rate, "the whole window's"
        p95_basis = "its reference window's" if ref is not None and ref.p95_ms is not None else "baseline"
        ratio = _ratio(cur.p95_ms, base_p95)
        if ratio is not None and base_p95 is not None:
            p95_moves.append((ratio, group, base_p95, p95_basis))
        if cur.error_rate is not None and base_err is not None:
            error_moves.append((cur.error_rate - base_err, group, base_err, basis))
    subject = f"{kind}"
    if p95_moves:
        ratio, group, base, p95_basis = max(p95_moves, key=lambda m: (m[0], m[1].value))
        whole = _ratio(overall.p95_ms, baseline.p95_ms)
        stands_out = ratio >= rules.p95_warn_ratio and (whole is None or ratio >= STANDS_OUT_RATIO * whole)
        status = Status.WARN if stands_out else Status.PASS
        alike = (
            "" if stands_out or whole is None else f"; every {kind} moved alike (whole window {whole:.2f}x)"
        )
        findings.append(
            Finding(
                f"{subject}={group.value}",
                "p95_ratio",
                status,
                value=ratio,
                threshold=rules.p95_warn_ratio,
                reason=(
                    f"{kind} {group.value!r} moved most in latency: p95 {ms(group.current.p95_ms)} "
                    f"({ratio:.2f}x {p95_basis} {ms(base)}) over {group.current.requests:,} requests{alike}"
                ),
            )
        )
        named[f"worst_{kind}_p95"] = {
            "value": group.value,
            "p95_ms": group.current.p95_ms,
            "ratio": ratio,
            "stands_out": stands_out,
        }
    if error_moves:
        rise, group, base, basis = max(error_moves, key=lambda m: (m[0], m[1].value))
        interval = group.current.error_interval
        above, rest_rate = _errors_stand_out(group.current, overall)
        stands_out = interval is not None and interval[0] > rules.max_error_rate and above
        status = Status.WARN if stands_out else Status.PASS
        versus = "" if rest_rate is None else f"; the rest of the window {pct(rest_rate)}"
        findings.append(
            Finding(
                f"{subject}={group.value}",
                "error_rate_rise",
                status,
                value=rise,
                threshold=rules.max_error_rate,
                reason=(
                    f"{kind} {group.value!r} moved most in errors: {pct(group.current.error_rate)} of "
                    f"{group.current.requests:,} requests against {basis} {pct(base)} "
                    f"({rise * 100:+.1f} points){versus}"
                ),
            )
        )
        named[f"worst_{kind}_errors"] = {
            "value": group.value,
            "error_rate": group.current.error_rate,
            "rise": rise,
            "stands_out": stands_out,
        }
    return findings, named


def judge_health(
    *,
    dataset: str,
    observation: HealthObservation,
    rules: HealthRules,
    baseline: Mapping[str, float] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """Judge one window of the request log (see :class:`HealthRules` for the rules and the module
    docstring for the definitions). Never raises for degenerate input: an empty window, a window
    whose latencies are all NULL, or a single request give findings ``skipped`` with the reason
    (and the throughput rule still fails an empty window when a baseline throughput is known)."""
    current = observation.current
    base = HealthBaseline.combine(baseline, observation.reference)
    findings = [
        judge_latency(current, base.p95_ms, rules),
        judge_errors(current, rules),
        judge_throughput(current, base.throughput_per_min, rules),
    ]
    rates = burn_rates(observation.burn, rules)
    for slo, values in rates.items():
        findings.append(judge_burn(slo, values, rules))
    metrics: dict[str, Any] = current.to_metrics()
    named: dict[str, Any] = {}
    for kind, groups in (("segment", observation.segments), ("model_version", observation.versions)):
        group_findings, group_named = _moved_most(kind, groups, base, rules, current)
        findings += group_findings
        named.update(group_named)
    metrics.update(
        {
            "latency_unit": observation.latency_unit,
            "error_rule": observation.error_rule,
            "baseline_source": base.source,
            "baseline_p95_ms": base.p95_ms,
            "baseline_error_rate": base.error_rate,
            "baseline_throughput_per_min": base.throughput_per_min,
            "p95_ratio": _ratio(current.p95_ms, base.p95_ms),
            "throughput_ratio": _ratio(current.throughput_per_min, base.throughput_per_min),
            "burn_rates": rates,
            "statements": observation.statements,
            "rows_fetched": observation.rows_fetched,
            **named,
        }
    )
    if observation.reference is not None:
        metrics.update(observation.reference.to_metrics("reference_"))
    status = worst((f.status for f in findings), default=Status.SKIPPED)
    if all(f.status is Status.SKIPPED for f in findings):
        status = Status.SKIPPED
    summary = health_line(current, base)
    if current.requests == 0:
        summary = "no requests in the window"
    text = f"{dataset}: {summary}"
    for label, what in (("slowest", "p95"), ("most errors", "errors")):
        standing = [
            f"{kind} {named[key]['value']!r}"
            for kind, key in (
                ("segment", f"worst_segment_{what}"),
                ("model version", f"worst_model_version_{what}"),
            )
            if key in named and named[key]["stands_out"]
        ]
        if standing and status.severity >= Status.WARN.severity:
            text += f"; {label}: {', '.join(standing)}"
    bad = sorted(
        (f for f in findings if f.status.severity >= Status.WARN.severity), key=lambda f: -f.status.severity
    )
    ordered = bad + [f for f in findings if f not in bad]
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=text,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        findings=tuple(ordered),
    )


def health_line(current: HealthSummary, base: HealthBaseline | None = None) -> str:
    """``p95 900 ms (2.0x baseline 120 ms), errors 7.1% [6.0%, 8.3%] of 1,234 requests``."""
    p95 = f"p95 {ms(current.p95_ms)}"
    ratio = _ratio(current.p95_ms, base.p95_ms if base else None)
    if ratio is not None and base is not None:
        p95 += f" ({ratio:.1f}x baseline {ms(base.p95_ms)})"
    interval = current.error_interval
    errors = f"errors {pct(current.error_rate)}"
    if interval is not None:
        errors += f" [{pct(interval[0])}, {pct(interval[1])}]"
    return f"{p95}, {errors} of {current.requests:,} requests"


def with_notes(result: CheckResult, notes: Sequence[str]) -> CheckResult:
    """``result`` with gatherer notes (e.g. latencies left out) in its metrics."""
    if not notes:
        return result
    return replace(result, metrics={**result.metrics, "notes": list(notes)})
