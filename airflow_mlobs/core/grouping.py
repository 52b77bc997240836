"""One message per incident: grouping the checks of a DAG run, and inhibition between them.

Pure: no Airflow, no I/O, no formatting beyond the summary line of the grouped result.

Definitions
-----------
Group
    The results of one DAG run that share a group key. The key is built from ``group_by``, a tuple
    of ``"run"`` (the DAG run) and ``"dataset"``; the default ``("run", "dataset")`` gives one group
    per DAG run and dataset, ``("run",)`` one group per DAG run.
Inhibition rule (Alertmanager's ``inhibit_rules``)
    ``source_checks`` / ``source_statuses`` match the results that inhibit, ``target_checks`` the
    results they inhibit, and ``equal`` the labels (``"dataset"``) that must be the same on both.
    Check names may be shell patterns. A result never inhibits itself, and an inhibited result
    still counts as breached in the stored results: only its alert is held back and it is listed
    in the message that was sent ("also failing, explained by the stale feed: drift, quality").
    The default: a ``fail`` (or ``error``) of freshness or schema inhibits drift, quality and
    performance of the same dataset.
Grouped result
    A :class:`CheckResult` with ``check = "group"``, the group's dataset (``"*"`` when the group
    spans datasets), the worst status of the results not inhibited, and as findings the breached
    findings of each of them, worst first, at most ``max_findings`` per check, each subject prefixed
    by its check (``"freshness: orders"``). Its breach fingerprint (``core.notify``) is therefore the
    set of ``(check: subject, metric)`` pairs: the same breaches the next day are de-duplicated,
    a new breached check is a new alert, and a group with no breach left is a recovery, all by
    :func:`airflow_mlobs.core.notify.decide_notification` on one alert state per group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Literal

from airflow_mlobs.core.result import CheckResult, Finding, Status, worst

GroupBy = Literal["run", "dataset"]
GROUP_CHECK = "group"


def _breached(result: CheckResult) -> bool:
    """``warn`` and worse: what a notifier at ``min_severity="warn"`` would send."""
    return result.status.severity >= Status.WARN.severity


@dataclass(frozen=True)
class InhibitRule:
    """A source result matching ``source_checks`` at one of ``source_statuses`` holds back the
    alerts of results matching ``target_checks`` that agree with it on every label of ``equal``."""

    source_checks: tuple[str, ...]
    target_checks: tuple[str, ...]
    source_statuses: tuple[Status, ...] = (Status.FAIL, Status.ERROR)
    equal: tuple[str, ...] = ("dataset",)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.source_checks or not self.target_checks:
            raise ValueError("InhibitRule: source_checks and target_checks must not be empty")
        unknown = set(self.equal) - {"dataset"}
        if unknown:
            raise ValueError(f"InhibitRule: equal may only name 'dataset', got {sorted(unknown)}")

    def inhibits(self, source: CheckResult, target: CheckResult) -> bool:
        """Whether ``source`` holds back ``target``'s alert under this rule."""
        if source is target or (source.check == target.check and source.dataset == target.dataset):
            return False
        if source.status not in self.source_statuses or not _breached(target):
            return False
        if not any(fnmatchcase(source.check, p) for p in self.source_checks):
            return False
        if not any(fnmatchcase(target.check, p) for p in self.target_checks):
            return False
        return all(source.dataset == target.dataset for label in self.equal if label == "dataset")


DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule(
        source_checks=("freshness", "schema"),
        target_checks=("drift*", "quality*", "performance*"),
        name="a stale feed or a changed schema explains the rest",
    ),
)

_EXPLAINED_BY = {"freshness": "the stale feed", "schema": "the schema change"}


@dataclass(frozen=True)
class Inhibition:
    """The results of a group split into those alerted and those held back (target -> source)."""

    kept: tuple[CheckResult, ...]
    inhibited: tuple[tuple[CheckResult, CheckResult], ...] = field(default_factory=tuple)


def inhibit(
    results: Sequence[CheckResult], rules: Iterable[InhibitRule] = DEFAULT_INHIBIT_RULES
) -> Inhibition:
    """Apply ``rules``: a result is inhibited when some other result of the group, itself not
    inhibited by it in turn, matches a rule as its source (the first such source, in the order of
    the rules and their ``source_checks``, is named)."""
    rules = tuple(rules)
    inhibited: list[tuple[CheckResult, CheckResult]] = []
    kept: list[CheckResult] = []
    for target in results:
        # The first source in the order of the rules and of their source patterns: with a stale
        # feed and a schema change, the stale feed explains the rest whatever order the checks ran.
        source = next(
            (
                s
                for rule in rules
                for pattern in rule.source_checks
                for s in results
                if fnmatchcase(s.check, pattern) and rule.inhibits(s, target)
            ),
            None,
        )
        if source is not None and not any(rule.inhibits(target, source) for rule in rules):
            inhibited.append((target, source))
        else:
            kept.append(target)
    return Inhibition(tuple(kept), tuple(inhibited))


def group_key(result: CheckResult, run_id: str, group_by: Sequence[GroupBy] = ("run", "dataset")) -> str:
    """The key of ``result``'s group (see the module docstring)."""
    bad = set(group_by) - {"run", "dataset"}
    if not group_by or bad:
        raise ValueError(
            f"group_by must be a non-empty tuple of 'run' and 'dataset', got {tuple(group_by)!r}"
        )
    parts = []
    if "run" in group_by:
        parts.append(f"run={run_id}")
    if "dataset" in group_by:
        parts.append(f"dataset={result.dataset}")
    return "|".join(parts)


def group_results(
    results: Iterable[CheckResult], run_id: str, group_by: Sequence[GroupBy] = ("run", "dataset")
) -> dict[str, list[CheckResult]]:
    """The results by group key, in the order first seen."""
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(group_key(result, run_id, group_by), []).append(result)
    return groups


def _worst_first(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.status.severity, f.subject, f.metric))


def grouped_result(
    results: Sequence[CheckResult],
    rules: Iterable[InhibitRule] = DEFAULT_INHIBIT_RULES,
    *,
    max_findings: int = 3,
) -> CheckResult:
    """One result standing for a group (see the module docstring). An empty group is a pass with
    the reason ``"no check results stored for this group"``."""
    if not results:
        return CheckResult(GROUP_CHECK, "*", Status.PASS, "no check results stored for this group")
    datasets = sorted({r.dataset for r in results})
    dataset = datasets[0] if len(datasets) == 1 else "*"
    split = inhibit(results, rules)
    breached = [r for r in split.kept if _breached(r)]
    findings: list[Finding] = []
    for r in sorted(breached, key=lambda r: (-r.status.severity, r.check, r.dataset)):
        prefix = r.check if len(datasets) == 1 else f"{r.check} ({r.dataset})"
        own = _worst_first(r.breaches()) or [Finding("check", "status", r.status, reason=r.summary)]
        findings += [replace(f, subject=f"{prefix}: {f.subject}") for f in own[:max_findings]]
    status = worst((r.status for r in split.kept), default=Status.PASS)
    if breached:
        summary = f"{len(breached)} of {len(results)} checks breached: " + ", ".join(
            f"{r.check} {r.status.value}" for r in breached
        )
    else:
        summary = f"all {len(results)} checks passed"
    explained = explained_lines(split)
    if explained and breached:
        summary += "; " + "; ".join(explained)
    metrics = {
        "checks": [r.check for r in results],
        "breached": [r.check for r in breached],
        "inhibited": [{"check": t.check, "dataset": t.dataset, "by": s.check} for t, s in split.inhibited],
    }
    starts = [r.window_start for r in results if r.window_start is not None]
    ends = [r.window_end for r in results if r.window_end is not None]
    return CheckResult(
        GROUP_CHECK,
        dataset,
        status,
        summary,
        window_start=min(starts) if starts else None,
        window_end=max(ends) if ends else None,
        metrics=metrics,
        findings=tuple(findings),
    )


def explained_lines(split: Inhibition) -> list[str]:
    """``"also failing, explained by the stale feed: drift, quality"``, one line per source."""
    by_source: dict[str, list[str]] = {}
    for target, source in split.inhibited:
        by_source.setdefault(source.check, []).append(target.check)
    return [
        f"also failing, explained by {_EXPLAINED_BY.get(src, src)}: {', '.join(dict.fromkeys(targets))}"
        for src, targets in by_source.items()
    ]
