"""One run of the retraining gate: its upstream results, the history it reads, its decision.

:mod:`airflow_mlobs.core.gate` says what the policy decides from results; this module says which
results those are. The operator hands over what its upstream tasks pushed (:func:`read_pushed`) and
a results history (anything with :meth:`ResultHistory.history`, such as
:class:`airflow_mlobs.store.ResultsStore`), and :meth:`Gate.judge` reads only the windows the
policy can use:

- per upstream result, the earlier windows of its own series (same check, dataset, task and map
  index) ending at most ``consecutive_windows`` (and one more) window lengths before it, newest
  first (:func:`streak_read`); nothing when ``consecutive_windows`` is 1;
- the stored gate decisions whose windows end within the cooldown either side of this window.

So the cost of a gate run does not grow with the length of the history. Pure: the history is a
protocol, no SQLAlchemy here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from airflow_mlobs.core.gate import (
    CHECK,
    GateDecision,
    GatePolicy,
    GateReading,
    RetrainEvent,
    decide,
    retrain_event,
)
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.window import RunTimes


@dataclass(frozen=True)
class Upstream:
    """One upstream check result and where it came from: its task, and for a mapped task the map
    index whose result it is (``-1`` when not mapped)."""

    result: CheckResult
    task_id: str = ""
    map_index: int = -1

    @property
    def series(self) -> str:
        """The series of windows its streak runs over: its dataset, and for a mapped check also its
        task and map index, so segments mapped over one dataset keep their own streaks."""
        dataset = self.result.dataset
        return dataset if self.map_index < 0 else f"{dataset}|{self.task_id}[{self.map_index}]"


def read_pushed(
    task_id: str, value: Any, *, is_check: bool, mapped: bool, gate_map_index: int
) -> tuple[list[Upstream], list[str]]:
    """The check results in what ``task_id`` pushed to XCom (one value, or a list for a mapped task),
    and the problems that make the gate an ``error`` when ``is_check`` (no result at all, values
    that are not results, an upstream ``error``).

    Whose result each is: the map index it carries, else the gate's own in a mapped gate
    (``gate_map_index >= 0``), else its position (results pushed before map indexes were recorded).
    """
    values = value if isinstance(value, list | tuple) else [] if value is None else [value]
    found = [v for v in values if isinstance(v, dict) and "check" in v and "status" in v]
    problems: list[str] = []
    if not found:
        if is_check:
            problems.append(f"upstream task {task_id!r} pushed no check result (did it run? is it a check?)")
        return [], problems
    if len(found) < len(values) and is_check:
        problems.append(
            f"upstream task {task_id!r} pushed {len(values) - len(found)} value(s) that are not check results"
        )
    mapped = mapped or len(values) > 1
    upstream: list[Upstream] = []
    for position, item in enumerate(found):
        result = CheckResult.from_dict(item)
        carried = item.get("map_index")
        fallback = gate_map_index if gate_map_index >= 0 else position
        index = (carried if isinstance(carried, int) else fallback) if mapped else -1
        if result.status is Status.ERROR:
            problems.append(f"upstream task {task_id!r} could not run its check: {result.summary}")
        upstream.append(Upstream(result, task_id, index))
    return upstream, problems


#: What an upstream task pushed, whether it is mapped, and whether it is one of our checks.
Pulled = tuple[Any, bool, bool]


def collect_upstream(
    task_ids: Sequence[str],
    pull: Callable[[str], Pulled],
    *,
    explicit: bool,
    known: Collection[str],
    dag_id: str,
    gate_task_id: str,
    gate_map_index: int,
) -> tuple[list[Upstream], list[str]]:
    """Every check result the upstream tasks pushed (``pull(task_id)``, see :data:`Pulled`), and the
    problems that make the gate an ``error``: a task named in ``check_task_ids`` (``explicit``) that
    is not among the DAG's ``known`` tasks, the problems of :func:`read_pushed`, no check at all.
    Without ``explicit`` names, tasks that are not checks and pushed no result are left out."""
    upstream: list[Upstream] = []
    problems: list[str] = []
    for task_id in task_ids:
        if explicit and known and task_id not in known:
            problems.append(f"check_task_ids names {task_id!r}, which is not a task of DAG {dag_id!r}")
            continue
        value, mapped, is_check = pull(task_id)
        found, wrong = read_pushed(
            task_id, value, is_check=explicit or is_check, mapped=mapped, gate_map_index=gate_map_index
        )
        upstream += found
        problems += wrong
    if not upstream and not problems:
        problems.append(f"no check results to judge: no upstream task of {gate_task_id!r} is a check")
    return upstream, problems


def decision_window(results: Sequence[CheckResult], times: RunTimes) -> tuple[datetime | None, datetime]:
    """The window the decision is about, and its time: the latest judged window among ``results``,
    else the run's data interval, else its logical date or run-after time (else now)."""
    judged = [r for r in results if r.window_end is not None]
    if judged:
        latest = max(judged, key=lambda r: r.window_end or datetime.min.replace(tzinfo=UTC))
        assert latest.window_end is not None
        return latest.window_start, latest.window_end
    anchor, _ = times.anchor()
    if anchor is None:
        anchor = datetime.now(UTC)
    return (times.interval_start if times.interval_end is not None else anchor), anchor


class StoredRun(Protocol):
    """The task run a stored result belongs to (:class:`airflow_mlobs.store.RunKey`)."""

    @property
    def dag_id(self) -> str | None: ...

    @property
    def task_id(self) -> str | None: ...

    @property
    def map_index(self) -> int: ...


class StoredRow(Protocol):
    """A stored result and its run (:class:`airflow_mlobs.store.StoredResult`)."""

    @property
    def result(self) -> CheckResult: ...

    @property
    def run(self) -> StoredRun: ...


class ResultHistory(Protocol):
    """The results history the gate reads (:meth:`airflow_mlobs.store.ResultsStore.history`)."""

    def history(
        self,
        check: str | None = None,
        dataset: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        map_index: int | None = None,
        recorded_since: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[StoredRow]:
        """Stored results, newest window first; ``start``/``end`` bound the window end (inclusive)."""
        ...


@dataclass(frozen=True)
class StreakRead:
    """The earlier windows one upstream result's streak can use: results of its check and dataset
    (and task and map index, when known) whose windows end within ``[start, end]``, newest first,
    at most ``limit`` rows (a bound when the window's length is unknown)."""

    check: str
    dataset: str
    task_id: str | None
    map_index: int | None
    start: datetime | None
    end: datetime
    limit: int | None


def streak_read(policy: GatePolicy, upstream: Upstream, *, now: datetime) -> StreakRead | None:
    """What to read for ``upstream``'s streak (``None`` when the policy needs no earlier window).

    The earlier windows end where this one starts and reach back ``consecutive_windows - 1``
    window lengths; one more length of slack keeps windows of uneven length (a local day across
    a daylight-saving change) in reach.
    """
    needed = policy.consecutive_windows - 1
    if needed < 1:
        return None
    result = upstream.result
    end = result.window_start or result.window_end or now
    length = (
        result.window_end - result.window_start
        if result.window_start is not None and result.window_end is not None
        else None
    )
    start = end - length * (needed + 1) if length else None
    # The same task (and map index) only: other tasks checking the same dataset (a merge step,
    # another DAG) store their own verdicts for the same windows.
    return StreakRead(
        check=result.check,
        dataset=result.dataset,
        task_id=upstream.task_id or None,
        map_index=upstream.map_index if upstream.task_id else None,
        start=start,
        end=end,
        limit=None if start is not None else needed * 10,
    )


def earlier_windows(stored: Iterable[CheckResult], *, now: datetime, needed: int) -> list[CheckResult]:
    """The newest ``needed`` earlier windows of ``stored`` (newest first), one verdict per window
    (its latest), none ending at or after ``now``."""
    earlier: list[CheckResult] = []
    seen: set[datetime] = set()
    for result in stored:
        window_end = result.window_end
        if window_end is None or window_end >= now or window_end in seen:
            continue
        seen.add(window_end)
        earlier.append(result)
    return earlier[:needed]


@dataclass(frozen=True)
class GateHistory:
    """What the gate read: each series' earlier windows (newest first), the nearest retraining
    within the cooldown by this gate or one sharing a target, and a retraining already stored for
    this very window (a re-run)."""

    previous: Mapping[str, Sequence[CheckResult]]
    nearest_retrain: RetrainEvent | None
    already_retrained: RetrainEvent | None


@dataclass(frozen=True)
class Gate:
    """One retraining gate: its policy, its task (named ``<dag_id>.<task_id>``) and the targets it
    starts (asset URIs, ``dag:<dag_id>``: gates sharing one share the cooldown)."""

    policy: GatePolicy
    dag_id: str
    task_id: str
    targets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``<dag_id>.<task_id>``: the dataset of its stored decisions."""
        return f"{self.dag_id}.{self.task_id}"

    def read_history(
        self, upstream: Sequence[Upstream], history: ResultHistory, *, now: datetime
    ) -> GateHistory:
        """Read what the policy can use about ``upstream`` from ``history`` (module docstring)."""
        policy = self.policy
        previous: dict[str, list[CheckResult]] = {}
        for item in upstream:
            read = streak_read(policy, item, now=now)
            if read is None:
                continue
            rows = history.history(
                read.check,
                read.dataset,
                dag_id=self.dag_id if read.task_id else None,
                task_id=read.task_id,
                map_index=read.map_index,
                start=read.start,
                end=read.end,
                limit=read.limit,
            )
            earlier = earlier_windows(
                (row.result for row in rows), now=now, needed=policy.consecutive_windows - 1
            )
            previous.setdefault(item.series, []).extend(earlier)

        reach = policy.cooldown or timedelta(0)
        margin = timedelta(seconds=1)
        nearest: RetrainEvent | None = None
        already: RetrainEvent | None = None
        for row in history.history(CHECK, start=now - reach - margin, end=now + reach + margin):
            same_gate = row.run.dag_id == self.dag_id and row.run.task_id == self.task_id
            reading = GateReading.of(row.result)
            shared = set(self.targets) & set(reading.targets if reading else ())
            event = retrain_event(row.result) if same_gate or shared else None
            if event is None:
                continue
            if row.result.window_end == now or event.at == now:
                already = already or event
            elif nearest is None or abs(event.at - now) < abs(nearest.at - now):
                nearest = event
        return GateHistory(previous, nearest, already)

    def judge(
        self,
        upstream: Sequence[Upstream],
        history: ResultHistory,
        *,
        window_start: datetime | None,
        window_end: datetime,
    ) -> GateDecision:
        """Read the history the policy needs and decide for the window ending at ``window_end``
        (the decision's time)."""
        read = self.read_history(upstream, history, now=window_end)
        nearest = read.nearest_retrain
        return decide(
            self.policy,
            [u.result for u in upstream],
            gate=self.name,
            now=window_end,
            previous=read.previous,
            last_retrain=nearest.at if nearest else None,
            last_retrain_by=nearest.by if nearest else None,
            targets=self.targets,
            window_start=window_start,
            window_end=window_end,
            already_retrained=read.already_retrained,
            series=[u.series for u in upstream],
        )
