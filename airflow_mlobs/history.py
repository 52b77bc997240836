"""Reading the results history for people: the dashboard's and the history CLI's queries.

Airflow-free, like :mod:`airflow_mlobs.store` (whose tables it reads). Every query is bounded in
SQL: by a time range over a result's *moment* (the end of its data window, or when it was stored
for a result without a window), by dataset, or by a run key, and selects only the columns it
needs; the full ``result_json`` is read only where a page draws metrics (:meth:`History.results`,
:meth:`History.result`). The indexes these queries use are created by the store (schema version 3).

Definitions:

- a result's **moment** is ``window_end``, or ``recorded_at`` when it has no window;
- a **monitor** is a dataset x check as one task judges it (``dataset, check, dag_id, task_id``):
  two tasks checking the same dataset with the same check (say, matured and recent performance
  windows) are two monitors, so one's skipped window never hides the other's breach; the map
  indexes of a mapped task are one monitor;
- the **latest** result of a monitor is the one with the newest moment (ties: the newest stored,
  then the highest id);
- a **breach** is a result with status ``fail`` or ``error`` (:attr:`Status.is_breach`);
- an **open alert** is a notifier channel's stored alert state (``mlobs_alert_state``, one row per
  channel x check task (dag, task, map index or partition) x check x dataset, written by :meth:`CheckNotifier.send_result
  <airflow_mlobs.notifiers.base.CheckNotifier.send_result>`) whose ``open`` is true: a breach was
  delivered and no recovery has closed it since; it is ``since`` the moment its first message was
  sent for (``first_sent``: the window end of the result that opened it). A dataset x check
  lists the open alerts of every task that checks it, one per task and channel;
- **readable** DAG ids (``readable=``, on the queries of the overview and dataset pages) restrict
  the rows to results whose ``dag_id`` is one of them, in SQL (``dag_id IN (...)``); results without
  a DAG (stored from the CLI or a notebook) stay visible, as Airflow keeps event logs without a DAG;
  ``None`` means no restriction, an empty set keeps only results without a DAG.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_mlobs.core.gate import CHECK as GATE_CHECK
from airflow_mlobs.core.profile import Baseline, Profile, load_baseline
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.store import (
    ResultsStore,
    RunKey,
    StoredResult,
    alert_state_table,
    deliveries_table,
    profiles_table,
    results_table,
)

log = logging.getLogger(__name__)

#: Statuses that are breaches, as stored.
BREACH_STATUSES = tuple(s.value for s in Status if s.is_breach)

_R = results_table.c
_SUMMARY_COLUMNS = (
    _R.id,
    _R.result_key,
    _R.dag_id,
    _R.task_id,
    _R.map_index,
    _R.run_id,
    _R.check_name,
    _R.dataset,
    _R.status,
    _R.summary,
    _R.window_start,
    _R.window_end,
    _R.recorded_at,
)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ResultSummary:
    """One stored result without its findings and metrics: what lists and strips show."""

    id: int
    result_key: str
    run: RunKey
    check: str
    dataset: str
    status: Status
    summary: str
    window_start: datetime | None
    window_end: datetime | None
    recorded_at: datetime

    @property
    def moment(self) -> datetime:
        """The end of the data window, or when the result was stored (no window)."""
        return self.window_end or self.recorded_at

    @property
    def monitor(self) -> MonitorKey:
        """(dataset, check, dag_id, task_id)."""
        return (self.dataset, self.check, self.run.dag_id, self.run.task_id)


class StatusPoint(NamedTuple):
    """One cell of a status strip: a result's moment and status (a named tuple: a 90-day overview
    reads thousands)."""

    moment: datetime
    status: Status
    result_id: int


@dataclass(frozen=True)
class DeliveryRecord:
    """A stored notification delivery (``error`` never holds a secret: the notifiers scrub it)."""

    result_key: str
    channel: str
    kind: str
    delivered: bool
    attempts: int
    error: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class WindowProfile:
    """A stored drift profile of one window: the baseline key (``name/version``) it was cut on."""

    baseline: str
    partition: str | None
    segment: str | None
    profile: Profile


@dataclass(frozen=True)
class OpenAlert:
    """One channel's open alert on a dataset x check (the definitions in the module docstring)."""

    channel: str
    check: str
    dataset: str
    status: Status
    since: datetime | None
    last_sent: datetime | None
    consecutive: int
    escalated: bool


#: A monitor: (dataset, check, dag_id, task_id).
MonitorKey = tuple[str, str, str | None, str | None]


def _monitor(row: Any) -> MonitorKey:
    return (str(row.dataset), str(row.check_name), row.dag_id, row.task_id)


def _summary(row: Any) -> ResultSummary:
    return ResultSummary(
        id=int(row.id),
        result_key=str(row.result_key),
        run=RunKey(dag_id=row.dag_id, task_id=row.task_id, run_id=row.run_id, map_index=int(row.map_index)),
        check=str(row.check_name),
        dataset=str(row.dataset),
        status=Status(row.status),
        summary=str(row.summary),
        window_start=_utc(row.window_start),
        window_end=_utc(row.window_end),
        recorded_at=_utc(row.recorded_at) or datetime.now(UTC),
    )


def _in_range(since: datetime | None, until: datetime | None) -> sa.ColumnElement[bool]:
    """The result's moment within ``[since, until]``, as two index-friendly arms (``window_end``,
    or ``recorded_at`` for results without a window)."""
    windowed: list[sa.ColumnElement[bool]] = [_R.window_end.is_not(None)]
    unwindowed: list[sa.ColumnElement[bool]] = [_R.window_end.is_(None)]
    if since is not None:
        windowed.append(_R.window_end >= _utc(since))
        unwindowed.append(_R.recorded_at >= _utc(since))
    if until is not None:
        windowed.append(_R.window_end <= _utc(until))
        unwindowed.append(_R.recorded_at <= _utc(until))
    return sa.or_(sa.and_(*windowed), sa.and_(*unwindowed))


def _readable(readable: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    """``dag_id IN readable OR dag_id IS NULL`` (nothing when ``readable`` is ``None``)."""
    if readable is None:
        return []
    return [sa.or_(_R.dag_id.in_(sorted(readable)), _R.dag_id.is_(None))]


def _filters(
    *,
    dag_id: str | None = None,
    dataset: str | None = None,
    check: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    readable: Collection[str] | None = None,
) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = _readable(readable)
    for column, value in (
        (_R.dag_id, dag_id),
        (_R.dataset, dataset),
        (_R.check_name, check),
        (_R.run_id, run_id),
        (_R.task_id, task_id),
    ):
        if value is not None:
            found.append(column == value)
    return found


def _moment_order() -> list[sa.UnaryExpression[Any]]:
    return [
        sa.func.coalesce(_R.window_end, _R.recorded_at).desc(),
        _R.recorded_at.desc(),
        _R.id.desc(),
    ]


class History:
    """Read-only queries over the results history of ``engine`` (the tables are created or upgraded
    on first use, as every store reader does)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = ResultsStore(engine)

    def _ready(self) -> None:
        self.store.ensure_table()

    # ----------------------------------------------------------------------------------------------
    # Many datasets
    # ----------------------------------------------------------------------------------------------

    def latest(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        dag_id: str | None = None,
        dataset: str | None = None,
        check: str | None = None,
        status: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        readable: Collection[str] | None = None,
    ) -> list[ResultSummary]:
        """The latest result of every monitor (dataset x check x task) with a result in ``[since,
        until]`` (and the other filters), ordered by dataset, check, DAG, task; ``status`` keeps
        those whose latest status it is."""
        self._ready()
        ranked = (
            sa.select(
                *_SUMMARY_COLUMNS,
                sa.func.row_number()
                .over(
                    partition_by=(_R.dataset, _R.check_name, _R.dag_id, _R.task_id), order_by=_moment_order()
                )
                .label("rank"),
            )
            .where(
                _in_range(since, until),
                *_filters(
                    dag_id=dag_id,
                    dataset=dataset,
                    check=check,
                    run_id=run_id,
                    task_id=task_id,
                    readable=readable,
                ),
            )
            .subquery()
        )
        query = sa.select(*(ranked.c[c.name] for c in _SUMMARY_COLUMNS)).where(ranked.c.rank == 1)
        if status is not None:
            query = query.where(ranked.c.status == status)
        query = query.order_by(ranked.c.dataset, ranked.c.check_name, ranked.c.dag_id, ranked.c.task_id)
        with self.engine.connect() as conn:
            return [_summary(row) for row in conn.execute(query)]

    def status_strips(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        dag_id: str | None = None,
        dataset: str | None = None,
        check: str | None = None,
        readable: Collection[str] | None = None,
    ) -> dict[MonitorKey, list[StatusPoint]]:
        """Every result's status in ``[since, until]`` by monitor, oldest first: the cells of the
        overview's trend strips (six narrow columns a row)."""
        self._ready()
        moment = sa.func.coalesce(_R.window_end, _R.recorded_at)
        query = (
            sa.select(
                _R.dataset,
                _R.check_name,
                _R.dag_id,
                _R.task_id,
                _R.window_end,
                _R.recorded_at,
                _R.status,
                _R.id,
            )
            .where(
                _in_range(since, until),
                *_filters(dag_id=dag_id, dataset=dataset, check=check, readable=readable),
            )
            .order_by(moment, _R.id)
        )
        strips: dict[MonitorKey, list[StatusPoint]] = {}
        by_value = {s.value: s for s in Status}
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        # Tuples, not attribute access: a 90-day overview reads thousands of rows.
        for dataset_, check_, dag, task, window_end, recorded_at, status_, row_id in rows:
            when = _utc(window_end) or _utc(recorded_at)
            assert when is not None
            key = (str(dataset_), str(check_), dag, task)
            points = strips.get(key)
            if points is None:
                points = strips[key] = []
            points.append(StatusPoint(when, by_value[status_], int(row_id)))
        return strips

    def last_breaches(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        dag_id: str | None = None,
        dataset: str | None = None,
        readable: Collection[str] | None = None,
    ) -> dict[MonitorKey, datetime]:
        """The moment of the newest breach in ``[since, until]`` of every monitor that had one."""
        self._ready()
        moment = sa.func.max(sa.func.coalesce(_R.window_end, _R.recorded_at))
        query = (
            sa.select(_R.dataset, _R.check_name, _R.dag_id, _R.task_id, moment.label("moment"))
            .where(
                _in_range(since, until),
                _R.status.in_(BREACH_STATUSES),
                *_filters(dag_id=dag_id, dataset=dataset, readable=readable),
            )
            .group_by(_R.dataset, _R.check_name, _R.dag_id, _R.task_id)
        )
        found: dict[MonitorKey, datetime] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                when = _moment_value(row.moment)
                if when is not None:
                    found[_monitor(row)] = when
        return found

    def dag_ids(self, *, since: datetime, readable: Collection[str] | None = None) -> list[str]:
        """The (readable) DAGs with a result in ``[since, now]`` (for the filter's choices)."""
        self._ready()
        query = (
            sa.select(_R.dag_id)
            .where(_in_range(since, None), _R.dag_id.is_not(None), *_readable(readable))
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(str(v) for (v,) in conn.execute(query))

    # ----------------------------------------------------------------------------------------------
    # One dataset, one result
    # ----------------------------------------------------------------------------------------------

    def results(
        self,
        dataset: str,
        *,
        since: datetime,
        until: datetime | None = None,
        check: str | None = None,
        limit: int | None = None,
        readable: Collection[str] | None = None,
    ) -> list[StoredResult]:
        """Full results of ``dataset`` (optionally one check) in ``[since, until]``, oldest first;
        ``limit`` keeps the newest. Undecodable rows are skipped with a warning."""
        self._ready()
        query = (
            sa.select(_R.id, _R.dag_id, _R.task_id, _R.run_id, _R.map_index, _R.result_json, _R.recorded_at)
            .where(_in_range(since, until), *_filters(dataset=dataset, check=check, readable=readable))
            .order_by(*_moment_order())
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return list(reversed([s for s in (self._decode(row) for row in rows) if s is not None]))

    def gate_decisions(
        self,
        dataset: str,
        *,
        since: datetime,
        until: datetime | None = None,
        readable: Collection[str] | None = None,
    ) -> list[StoredResult]:
        """The retraining gate's results in ``[since, until]`` that judged a result of ``dataset``
        (its ``metrics.inputs`` entries are ``check:dataset:status``), oldest first."""
        self._ready()
        query = (
            sa.select(_R.id, _R.dag_id, _R.task_id, _R.run_id, _R.map_index, _R.result_json, _R.recorded_at)
            .where(
                _in_range(since, until),
                _R.check_name == GATE_CHECK,
                _R.result_json.contains(f":{dataset}:", autoescape=True),  # narrowed in SQL, decided below
                *_readable(readable),
            )
            .order_by(*_moment_order())
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = []
        for row in reversed(rows):
            stored = self._decode(row)
            if stored is None:
                continue
            inputs = stored.result.metrics.get("inputs") or ()
            judged = {str(i).split(":", 1)[-1].rsplit(":", 1)[0] for i in inputs if isinstance(i, str)}
            if dataset in judged:
                found.append(stored)
        return found

    def result(self, result_id: int) -> StoredResult | None:
        """The stored result with this id, if any."""
        self._ready()
        query = sa.select(
            _R.id, _R.dag_id, _R.task_id, _R.run_id, _R.map_index, _R.result_json, _R.recorded_at
        ).where(_R.id == result_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self._decode(row)

    def result_for_run(
        self, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> StoredResult | None:
        """The latest stored result of one task run (several windows of one run: the newest)."""
        self._ready()
        query = (
            sa.select(_R.id, _R.dag_id, _R.task_id, _R.run_id, _R.map_index, _R.result_json, _R.recorded_at)
            .where(_R.dag_id == dag_id, _R.run_id == run_id, _R.task_id == task_id, _R.map_index == map_index)
            .order_by(*_moment_order())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self._decode(row)

    def result_key(self, result_id: int) -> str | None:
        """The unique key of a stored result (what deliveries are recorded under)."""
        self._ready()
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(_R.result_key).where(_R.id == result_id)).scalar()
        return None if value is None else str(value)

    def _decode(self, row: Any) -> StoredResult | None:
        try:
            result = CheckResult.from_json(row.result_json)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("Skipped result %s whose result_json cannot be decoded: %s", row.id, exc)
            return None
        start, end = result.window_start, result.window_end
        return StoredResult(
            id=int(row.id),
            run=RunKey(
                dag_id=row.dag_id, task_id=row.task_id, run_id=row.run_id, map_index=int(row.map_index)
            ),
            result=result.with_window(
                start.astimezone(UTC) if start is not None and start.tzinfo else start,
                end.astimezone(UTC) if end is not None and end.tzinfo else end,
            ),
            recorded_at=_utc(row.recorded_at) or datetime.now(UTC),
        )

    # ----------------------------------------------------------------------------------------------
    # Profiles and deliveries
    # ----------------------------------------------------------------------------------------------

    def window_profiles(
        self, dataset: str, *, window_start: datetime | None, window_end: datetime | None
    ) -> list[WindowProfile]:
        """The stored drift profiles of exactly one window of ``dataset`` (every baseline, segment
        and partition), oldest stored first."""
        self._ready()
        p = profiles_table.c
        query = (
            sa.select(p.id, p.baseline, p.partition, p.segment, p.profile_json)
            .where(
                p.dataset == dataset,
                p.window_start.is_(None) if window_start is None else p.window_start == _utc(window_start),
                p.window_end.is_(None) if window_end is None else p.window_end == _utc(window_end),
            )
            .order_by(p.id)
        )
        found: list[WindowProfile] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                try:
                    profile = Profile.from_dict(json.loads(row.profile_json))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("Skipped profile %s that cannot be decoded: %s", row.id, exc)
                    continue
                found.append(WindowProfile(str(row.baseline), row.partition, row.segment, profile))
        return found

    def drift_window(self, drift: CheckResult, baseline_dir: Any) -> tuple[Baseline, Profile] | str:
        """The baseline a drift result was judged against (``metrics.baseline`` = ``name/version``,
        read from ``baseline_dir``) and its window's stored profile over that baseline's edges (the
        whole-dataset profile, else its partitions added up); or a sentence saying why not."""
        name, _, version = str(drift.metrics.get("baseline") or "").partition("/")
        if not name:
            return "the result names no baseline"
        if baseline_dir is None:
            return "no baseline directory is configured here ([mlobs] baseline_dir)"
        try:
            baseline = load_baseline(baseline_dir, name, version or None)
        except Exception as exc:  # missing, unreadable, elsewhere: the page says so
            return f"baseline {name}/{version} is not readable here: {exc}"
        stored = self.window_profiles(
            drift.dataset, window_start=drift.window_start, window_end=drift.window_end
        )
        matching = [w for w in stored if w.profile.edges_key == baseline.key and w.segment is None]
        if not matching:
            return "no profile of this window is stored (store_profile=False, or another baseline)"
        whole = [w for w in matching if w.partition is None]
        if whole:
            return baseline, whole[-1].profile
        profile = matching[0].profile
        for part in matching[1:]:
            profile = profile.merge(part.profile)
        return baseline, profile

    def deliveries(self, result_keys: Iterable[str]) -> list[DeliveryRecord]:
        """The notification deliveries recorded for these result keys, oldest first."""
        keys = sorted(set(result_keys))
        if not keys:
            return []
        self._ready()
        d = deliveries_table.c
        found: list[DeliveryRecord] = []
        with self.engine.connect() as conn:
            # Chunks: a dataset page over a year may hold more keys than a database takes binds.
            for start in range(0, len(keys), 500):
                query = (
                    sa.select(
                        d.result_key, d.channel, d.kind, d.delivered, d.attempts, d.error, d.recorded_at
                    )
                    .where(d.result_key.in_(keys[start : start + 500]))
                    .order_by(d.id)
                )
                found.extend(
                    DeliveryRecord(
                        str(r.result_key),
                        str(r.channel),
                        str(r.kind),
                        bool(r.delivered),
                        int(r.attempts),
                        r.error,
                        _utc(r.recorded_at) or datetime.now(UTC),
                    )
                    for r in conn.execute(query)
                )
        return sorted(found, key=lambda record: record.recorded_at)

    def open_alerts(self, datasets: Iterable[str]) -> dict[tuple[str, str], list[OpenAlert]]:
        """The open alerts on these datasets by (dataset, check), each list by channel: one query
        over the alert state rows of the datasets (per 500 datasets), narrowed in SQL to states whose
        JSON says ``"open": true`` and decided on the parsed state."""
        names = sorted(set(datasets))
        if not names:
            return {}
        self._ready()
        a = alert_state_table.c
        found: dict[tuple[str, str], list[OpenAlert]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(names), 500):
                query = (
                    sa.select(a.channel, a.check_name, a.dataset, a.state_json)
                    .where(
                        a.dataset.in_(names[start : start + 500]),
                        a.state_json.contains('"open": true', autoescape=True),
                    )
                    .order_by(a.dataset, a.check_name, a.channel)
                )
                for row in conn.execute(query):
                    alert = _open_alert(row)
                    if alert is not None:
                        found.setdefault((alert.dataset, alert.check), []).append(alert)
        return found

    def result_keys(
        self,
        dataset: str,
        *,
        since: datetime,
        until: datetime | None = None,
        readable: Collection[str] | None = None,
    ) -> list[str]:
        """The unique keys of ``dataset``'s (readable) results in ``[since, until]``."""
        self._ready()
        query = sa.select(_R.result_key).where(
            _in_range(since, until), *_filters(dataset=dataset, readable=readable)
        )
        with self.engine.connect() as conn:
            return [str(v) for (v,) in conn.execute(query)]


def _open_alert(row: Any) -> OpenAlert | None:
    """An alert state row as an :class:`OpenAlert`, or ``None`` when it is closed or undecodable."""
    try:
        state = json.loads(row.state_json)
        if not (isinstance(state, dict) and state.get("open") is True):
            return None

        def moment(key: str) -> datetime | None:
            value = state.get(key)
            return _utc(datetime.fromisoformat(value)) if isinstance(value, str) and value else None

        return OpenAlert(
            channel=str(row.channel),
            check=str(row.check_name),
            dataset=str(row.dataset),
            status=Status(state.get("status", Status.FAIL.value)),
            since=moment("first_sent"),
            last_sent=moment("last_sent"),
            consecutive=int(state.get("consecutive") or 0),
            escalated=bool(state.get("escalated", False)),
        )
    except (ValueError, TypeError) as exc:
        log.warning("Skipped the alert state of %s whose JSON cannot be read: %s", row.channel, exc)
        return None


def _moment_value(value: Any) -> datetime | None:
    """A ``MAX(COALESCE(...))`` value: a datetime (PostgreSQL) or its text (SQLite)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    return _utc(datetime.fromisoformat(str(value)))


def since_days(days: int, now: datetime | None = None) -> datetime:
    """``now - days`` (UTC)."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


def statuses(points: Sequence[StatusPoint]) -> list[Status]:
    """The statuses of a strip, oldest first."""
    return [p.status for p in points]
