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
    results they inhibit, and ``equal`` the labels that must be the same on both: ``"dataset"``,
    and ``"column"``, which makes the rule hold back findings rather than whole results: only the
    target's breached findings about a column (their subject) that the source itself breached on
    are held back (a renamed ``customer_age`` explains the drift of ``customer_age``, not the drift
    of ``monthly_spend``). A target all of whose breached findings are held back is inhibited; one
    with some left is sent with those, its status the worst of them, and the held findings listed
    ("also failing, explained by the schema change: drift (customer_age)").
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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from airflow_mlobs.core.result import CheckResult, Finding, Status, worst

GroupBy = Literal["run", "dataset"]
GROUP_CHECK = "group"
#: The labels an :class:`InhibitRule`'s ``equal`` may name.
EQUAL_LABELS = ("dataset", "column")


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
        unknown = set(self.equal) - set(EQUAL_LABELS)
        if unknown:
            raise ValueError(
                f"InhibitRule: equal may only name {', '.join(map(repr, EQUAL_LABELS))}, got {sorted(unknown)}"
            )

    def _applies(self, source: CheckResult, target: CheckResult) -> bool:
        if source is target or (source.check == target.check and source.dataset == target.dataset):
            return False
        if source.status not in self.source_statuses or not _breached(target):
            return False
        if not any(fnmatchcase(source.check, p) for p in self.source_checks):
            return False
        if not any(fnmatchcase(target.check, p) for p in self.target_checks):
            return False
        return "dataset" not in self.equal or source.dataset == target.dataset

    def held_findings(self, source: CheckResult, target: CheckResult) -> tuple[Finding, ...]:
        """The breached findings of ``target`` that ``source`` holds back: all of them for a rule
        without ``"column"`` in ``equal``, else those about a column ``source`` breached on."""
        if not self._applies(source, target):
            return ()
        breaches = tuple(target.breaches())
        if "column" not in self.equal:
            return breaches
        columns = {f.subject for f in source.breaches()}
        return tuple(f for f in breaches if f.subject in columns)

    def inhibits(self, source: CheckResult, target: CheckResult) -> bool:
        """Whether ``source`` holds back ``target``'s whole alert under this rule."""
        if "column" not in self.equal:
            return self._applies(source, target)
        held = self.held_findings(source, target)
        return bool(held) and len(held) == len(target.breaches())


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
    #: Findings held back from results that were kept (column rules): (target, finding, source).
    held: tuple[tuple[CheckResult, Finding, CheckResult], ...] = field(default_factory=tuple)


def inhibit(
    results: Sequence[CheckResult], rules: Iterable[InhibitRule] = DEFAULT_INHIBIT_RULES
) -> Inhibition:
    """Apply ``rules``: a result is inhibited when some other result of the group, itself not
    inhibited by it in turn, matches a rule as its source (the first such source, in the order of
    the rules and their ``source_checks``, is named)."""
    rules = tuple(rules)
    inhibited: list[tuple[CheckResult, CheckResult]] = []
    kept: list[CheckResult] = []
    held: list[tuple[CheckResult, Finding, CheckResult]] = []
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
            continue
        kept.append(target)
        seen: set[tuple[str, str]] = set()
        for rule in rules:
            if "column" not in rule.equal:
                continue
            for pattern in rule.source_checks:
                for s in results:
                    if not fnmatchcase(s.check, pattern) or rule.inhibits(target, s):
                        continue
                    for f in rule.held_findings(s, target):
                        if (f.subject, f.metric) not in seen:
                            seen.add((f.subject, f.metric))
                            held.append((target, f, s))
    return Inhibition(tuple(kept), tuple(inhibited), tuple(held))


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
    silenced: Mapping[int, str] | None = None,
) -> CheckResult:
    """One result standing for a group (see the module docstring). An empty group is a pass with
    the reason ``"no check results stored for this group"``.

    ``silenced`` maps ``id(result)`` of members to the silence covering them (its description).
    Silenced members still inhibit others (as in Alertmanager) but their findings are not listed:
    the summary says "silenced: freshness (silence #1 ...)". When every breached member left is
    silenced, the result keeps their status and findings with ``metrics["silenced_only"]``, so
    a notifier holds it back as silenced (recorded, not sent) instead of reading it as a recovery."""
    if not results:
        return CheckResult(GROUP_CHECK, "*", Status.PASS, "no check results stored for this group")
    silenced = silenced or {}
    datasets = sorted({r.dataset for r in results})
    dataset = datasets[0] if len(datasets) == 1 else "*"
    split = inhibit(results, rules)
    held = {(id(t), f.subject, f.metric) for t, f, _ in split.held}
    pairs = [(r, _without(r, held)) for r in split.kept]
    order = {id(r): (-r.status.severity, r.check, r.dataset) for r in results}
    quiet = sorted(
        ((r, k) for r, k in pairs if id(r) in silenced and _breached(k)), key=lambda pair: order[id(pair[0])]
    )
    quiet_ids = {id(r) for r, _ in quiet}
    kept = [k for r, k in pairs if id(r) not in quiet_ids]
    breached = sorted(
        (r for r in kept if _breached(r)), key=lambda r: (-r.status.severity, r.check, r.dataset)
    )
    silenced_only = bool(quiet) and not breached
    if silenced_only:
        kept = breached = [k for _, k in quiet]
    findings: list[Finding] = []
    for r in sorted(breached, key=lambda r: (-r.status.severity, r.check, r.dataset)):
        prefix = r.check if len(datasets) == 1 else f"{r.check} ({r.dataset})"
        own = _worst_first(r.breaches()) or [Finding("check", "status", r.status, reason=r.summary)]
        findings += [replace(f, subject=f"{prefix}: {f.subject}") for f in own[:max_findings]]
    status = worst((r.status for r in kept), default=Status.PASS)
    if breached:
        summary = f"{len(breached)} of {len(results)} checks breached: " + ", ".join(
            f"{r.check} {r.status.value}" for r in breached
        )
    else:
        summary = f"all {len(results)} checks passed"
    explained = explained_lines(split)
    if explained and breached:
        summary += "; " + "; ".join(explained)
    if quiet:
        summary += "; silenced: " + ", ".join(f"{r.check} ({silenced[id(r)]})" for r, _ in quiet)
    metrics: dict[str, Any] = {
        "checks": [r.check for r in results],
        "breached": [r.check for r in breached],
        "inhibited": [{"check": t.check, "dataset": t.dataset, "by": s.check} for t, s in split.inhibited],
        "held_findings": [
            {"check": t.check, "dataset": t.dataset, "subject": f.subject, "metric": f.metric, "by": s.check}
            for t, f, s in split.held
        ],
        "silenced": [{"check": r.check, "dataset": r.dataset, "silence": silenced[id(r)]} for r, _ in quiet],
        "silenced_only": silenced_only,
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


def _without(result: CheckResult, held: set[tuple[int, str, str]]) -> CheckResult:
    """``result`` without its held-back findings, its status the worst of the breaches left."""
    mine = {(subject, metric) for key, subject, metric in held if key == id(result)}
    if not mine:
        return result
    findings = tuple(f for f in result.findings if (f.subject, f.metric) not in mine)
    left = [f.status for f in findings if f.status.severity >= Status.WARN.severity]
    return replace(result, findings=findings, status=worst(left, default=Status.PASS))


def explained_lines(split: Inhibition) -> list[str]:
    """``"also failing, explained by the stale feed: drift, quality"``, one line per source; held
    findings as ``"drift (customer_age)"``."""
    by_source: dict[str, list[str]] = {}
    for target, source in split.inhibited:
        by_source.setdefault(source.check, []).append(target.check)
    columns: dict[tuple[str, str], list[str]] = {}
    for target, finding, source in split.held:
        columns.setdefault((source.check, target.check), []).append(finding.subject)
    for (src, check), subjects in columns.items():
        by_source.setdefault(src, []).append(f"{check} ({', '.join(dict.fromkeys(subjects))})")
    return [
        f"also failing, explained by {_EXPLAINED_BY.get(src, src)}: {', '.join(dict.fromkeys(targets))}"
        for src, targets in by_source.items()
    ]
