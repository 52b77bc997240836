"""The retraining gate's policy: should this window's check results start a retraining?

Conditions (each optional; ``require="any"`` opens the gate when one holds, ``"all"`` when all the
configured ones hold):

- ``drift_share``: a drift result's share of drifted columns reached this level;
- ``critical_features``: one of these columns drifted;
- ``performance_drop``: a performance result reports ``metrics["drop"]`` (the metric's fall from
  its baseline, in the metric's units) of at least this much.

A condition counts only if it also held in each of the ``consecutive_windows - 1`` previous windows
of the same dataset (from the results history), so one noisy day does not retrain. The windows must
follow each other without a gap (each earlier window ends where the next one starts); a missing
window (a run that never happened, or failed before storing a result) ends the streak. Then the
``cooldown``: no retraining within that time after the last retraining of the same target, by this
gate or by any other gate that starts the same retraining (the same asset or DAG, ``targets``): a
drift gate and a performance gate watching one model do not retrain it twice in a row.

Times are the decisions' own: a decision's time is the end of the window it judged (for a run
without a data interval, its logical date or run-after time), stored with the decision as
``retrained_at`` when it started a retraining. The cooldown holds on either side of that time, so
a backfill of an earlier window does not retrain again either. A window retrains at most once:
clearing and re-running it, or a second run over the same window, finds the stored retraining of
that window and holds (``already_retrained``), and the new decision keeps ``retrained_at``, so a
third run holds too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from airflow_mlobs.core.readings import DriftReading, PerformanceReading
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.timeutil import format_duration

CHECK = "retrain_gate"
RETRAIN = "retrain"
HOLD = "hold"
NO_RETRAIN = "no_retrain"


@dataclass(frozen=True)
class GatePolicy:
    """When to retrain; see the module docstring."""

    drift_share: float | None = 0.3
    critical_features: tuple[str, ...] = ()
    performance_drop: float | None = None
    consecutive_windows: int = 1
    cooldown: timedelta | None = None
    require: Literal["any", "all"] = "any"

    def __post_init__(self) -> None:
        if self.drift_share is not None:
            share = _number("drift_share", self.drift_share, "a share in (0, 1], e.g. 0.3")
            if not 0 < share <= 1:
                raise ValueError(
                    f"drift_share must be in (0, 1] (a share of drifted columns), got {self.drift_share!r}"
                )
        if self.performance_drop is not None:
            drop = _number("performance_drop", self.performance_drop, "a positive number")
            if not drop > 0:
                raise ValueError(
                    "performance_drop must be a positive number (the metric's fall from its baseline), "
                    f"got {self.performance_drop!r}"
                )
        if isinstance(self.critical_features, str) or not all(
            isinstance(name, str) and name for name in self.critical_features
        ):
            raise ValueError(
                f"critical_features must be a list of column names, got {self.critical_features!r}"
            )
        windows = self.consecutive_windows
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ValueError(f"consecutive_windows must be an integer of at least 1, got {windows!r}")
        if self.cooldown is not None and (
            not isinstance(self.cooldown, timedelta) or self.cooldown < timedelta(0)
        ):
            raise ValueError(f"cooldown must be a non-negative duration, got {self.cooldown!r}")
        if self.require not in ("any", "all"):
            raise ValueError(f"require must be 'any' or 'all', got {self.require!r}")
        if self.drift_share is None and not self.critical_features and self.performance_drop is None:
            raise ValueError(
                "the gate needs at least one condition: drift_share, critical_features or performance_drop"
            )


def _number(name: str, value: object, expected: str) -> float:
    """``value`` as a finite float; ``ValueError`` naming ``name`` for text, booleans, NaN, inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def conditions_met(policy: GatePolicy, result: CheckResult) -> dict[str, str]:
    """The policy's conditions ``result`` meets, each with a sentence saying why."""
    met: dict[str, str] = {}
    drift = DriftReading.of(result)
    if drift is not None:
        share = drift.drift_share
        if policy.drift_share is not None and share >= policy.drift_share:
            met["drift_share"] = f"{result.dataset}: drift share {share:.0%} >= {policy.drift_share:.0%}"
        drifted = drift.drifted()
        critical = [c for c in policy.critical_features if c in drifted]
        if critical:
            met["critical_features"] = f"{result.dataset}: critical feature(s) drifted: {', '.join(critical)}"
    performance = PerformanceReading.of(result)
    if performance is not None and policy.performance_drop is not None:
        drop = performance.drop
        if drop is not None and drop >= policy.performance_drop:
            met["performance_drop"] = (
                f"{result.dataset}: {performance.metric} dropped by {drop:.3g} (>= {policy.performance_drop:g})"
            )
    return met


@dataclass(frozen=True)
class RetrainEvent:
    """A stored decision that started a retraining: when (its window end) and by which gate."""

    at: datetime
    by: str


@dataclass(frozen=True)
class GateReading:
    """What a stored gate decision says, as :func:`decide` writes it and later gates read it.

    ``retrained`` is the retraining this decision started or kept (``retrained_at`` /
    ``retrained_by``); ``last_retrain`` the nearest earlier one the cooldown looked at.
    ``retrained_text`` is the stored ``retrained_at`` as text, as found (``""`` when absent).
    """

    decision: str
    reasons: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    last_retrain: datetime | None = None
    last_retrain_by: str | None = None
    retrained: RetrainEvent | None = None
    targets: tuple[str, ...] = ()
    retrained_text: str = ""

    def to_metrics(self) -> dict[str, object]:
        """The stored metrics of the decision."""
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "inputs": list(self.inputs),
            "last_retrain": self.last_retrain.isoformat() if self.last_retrain else None,
            "last_retrain_by": self.last_retrain_by if self.last_retrain else None,
            "retrained_at": self.retrained.at.isoformat() if self.retrained else None,
            "retrained_by": self.retrained.by if self.retrained else None,
            "targets": sorted(self.targets),
        }

    @classmethod
    def of(cls, result: CheckResult) -> GateReading | None:
        """The reading of a stored gate decision; ``None`` for any other check."""
        if result.check != CHECK:
            return None
        m = result.metrics
        at = m.get("retrained_at")
        text = at if isinstance(at, str) else ""
        retrained = None
        if text:
            try:
                by = m.get("retrained_by")
                retrained = RetrainEvent(datetime.fromisoformat(text), str(by) if by else result.dataset)
            except ValueError:
                retrained = None
        last = m.get("last_retrain")
        try:
            last_retrain = datetime.fromisoformat(last) if isinstance(last, str) and last else None
        except ValueError:
            last_retrain = None
        by_last = m.get("last_retrain_by")
        return cls(
            decision=str(m.get("decision", "")),
            reasons=tuple(str(r) for r in m.get("reasons") or ()),
            inputs=tuple(str(i) for i in m.get("inputs") or ()),
            last_retrain=last_retrain,
            last_retrain_by=str(by_last) if by_last else None,
            retrained=retrained,
            targets=tuple(str(t) for t in m.get("targets") or ()),
            retrained_text=text,
        )


def retrain_event(result: CheckResult) -> RetrainEvent | None:
    """The retraining a stored gate decision started, if any: ``metrics["retrained_at"]``, or for
    decisions stored before that field existed, a ``retrain`` decision at its window end."""
    reading = GateReading.of(result)
    if reading is None:
        return None
    if reading.retrained_text:
        return reading.retrained  # None when the stored time cannot be read
    if reading.decision == RETRAIN and result.window_end is not None:
        return RetrainEvent(result.window_end, result.dataset)
    return None


@dataclass(frozen=True)
class GateDecision:
    """The decision, its reasons, and the result to store."""

    decision: str
    reasons: tuple[str, ...]
    result: CheckResult

    @property
    def retrain(self) -> bool:
        """Whether to start the retraining."""
        return self.decision == RETRAIN


def decide(
    policy: GatePolicy,
    results: Sequence[CheckResult],
    *,
    gate: str,
    now: datetime,
    previous: Mapping[str, Sequence[CheckResult]] | None = None,
    last_retrain: datetime | None = None,
    last_retrain_by: str | None = None,
    targets: Sequence[str] = (),
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    already_retrained: RetrainEvent | None = None,
    series: Sequence[str] | None = None,
) -> GateDecision:
    """Apply ``policy`` to this window's ``results``.

    ``previous`` maps a dataset to its earlier results, newest first per check (from the
    results history), for ``consecutive_windows``; ``last_retrain`` is the time of the nearest
    retraining (before or after ``now``) by this gate, or by ``last_retrain_by`` (another gate with
    one of the same ``targets``), for ``cooldown``. ``already_retrained`` is a retraining stored for
    this very window (a re-run): the gate then holds whatever the policy says. ``targets`` (asset
    URIs, ``dag:<dag_id>``) are stored with the decision. ``series`` names, per result, the key of
    its earlier windows in ``previous`` (default: its dataset); mapped checks over one dataset
    (one task per segment) each have their own series.
    """
    previous = previous or {}
    configured = [
        name
        for name, on in (
            ("drift_share", policy.drift_share is not None),
            ("critical_features", bool(policy.critical_features)),
            ("performance_drop", policy.performance_drop is not None),
        )
        if on
    ]
    held: dict[str, list[str]] = {}
    findings: list[Finding] = []
    if series is not None and len(series) != len(results):
        raise ValueError(f"series has {len(series)} keys for {len(results)} results")
    for position, result in enumerate(results):
        key = series[position] if series is not None else result.dataset
        for condition, reason in conditions_met(policy, result).items():
            streak = 1
            follows = result.window_start
            same_check = [e for e in previous.get(key, []) if e.check == result.check]
            for earlier in same_check[: policy.consecutive_windows - 1]:
                adjacent = follows is None or earlier.window_end is None or earlier.window_end == follows
                if not adjacent or condition not in conditions_met(policy, earlier):
                    break
                streak += 1
                follows = earlier.window_start
            if streak >= policy.consecutive_windows:
                held.setdefault(condition, []).append(reason)
                # value / threshold: the streak of windows / the streak required.
                findings.append(
                    Finding(
                        result.dataset,
                        condition,
                        Status.WARN,
                        value=streak,
                        threshold=policy.consecutive_windows,
                        reason=reason,
                    )
                )
            else:
                findings.append(
                    Finding(
                        result.dataset,
                        condition,
                        Status.PASS,
                        value=streak,
                        threshold=policy.consecutive_windows,
                        reason=f"{reason}, but only {streak} of {policy.consecutive_windows} consecutive windows",
                    )
                )
    open_gate = bool(held) and (policy.require == "any" or all(c in held for c in configured))
    reasons = tuple(r for rs in held.values() for r in rs)
    decision = RETRAIN if open_gate else NO_RETRAIN
    summary = (
        f"{gate}: no retraining needed"
        if not reasons
        else f"{gate}: conditions met but not all required ({policy.require})"
    )
    retrained: RetrainEvent | None = None
    if open_gate:
        summary = f"{gate}: retraining triggered: " + "; ".join(reasons)
        retrained = RetrainEvent(now, gate)
        if already_retrained is not None:
            decision, retrained = HOLD, already_retrained
            by = f" by {already_retrained.by}" if already_retrained.by != gate else ""
            summary = (
                f"{gate}: retraining held: this window already started a retraining{by} "
                "(a re-run never retrains twice): " + "; ".join(reasons)
            )
            findings.append(
                Finding(
                    gate,
                    "already_retrained",
                    Status.WARN,
                    value=already_retrained.at.isoformat(),
                    reason=f"this window already started a retraining{by}",
                )
            )
        elif policy.cooldown is not None and last_retrain is not None:
            gap = now - last_retrain
            if abs(gap) < policy.cooldown:
                decision, retrained = HOLD, None
                wait = format_duration(policy.cooldown - abs(gap))
                by = f" by {last_retrain_by}" if last_retrain_by and last_retrain_by != gate else ""
                when = (
                    f"last retrain{by} {format_duration(gap)} ago"
                    if gap >= timedelta(0)
                    else f"a retrain{by} for a window {format_duration(-gap)} later"
                )
                summary = (
                    f"{gate}: retraining held by cooldown ({when}, "
                    f"cooldown {format_duration(policy.cooldown)}, {wait} left): " + "; ".join(reasons)
                )
                findings.append(
                    Finding(
                        gate,
                        "cooldown",
                        Status.WARN,
                        value=format_duration(abs(gap)),
                        threshold=format_duration(policy.cooldown),
                        reason=f"retrained too recently{by}",
                    )
                )
    if retrained is None and already_retrained is not None:
        # A re-run of a window that retrained, now below the policy (say, after a data fix): the
        # retraining still happened, and the new decision must keep saying so for the cooldown.
        retrained = already_retrained
    status = Status.WARN if decision in (RETRAIN, HOLD) else Status.PASS
    result = CheckResult(
        check=CHECK,
        dataset=gate,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics=GateReading(
            decision=decision,
            reasons=reasons,
            inputs=tuple(f"{r.check}:{r.dataset}:{r.status.value}" for r in results),
            last_retrain=last_retrain,
            last_retrain_by=last_retrain_by,
            retrained=retrained,
            targets=tuple(targets),
        ).to_metrics(),
        findings=tuple(findings),
    )
    return GateDecision(decision=decision, reasons=reasons, result=result)
