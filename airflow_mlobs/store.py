"""The results history: every check result, one row per task and data interval (SQLAlchemy).

Airflow-free: the store takes a SQLAlchemy ``Engine``; the operators build it from
``results_conn_id`` (default: a SQLite file under ``AIRFLOW_HOME``). The table is created on first
use. Re-running a task for the same data interval replaces its row rather than adding one, so the
history holds the latest verdict per interval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from airflow_mlobs.core.profile import Profile
from airflow_mlobs.core.result import CheckResult

RESULTS_TABLE = "mlobs_check_results"

_metadata = sa.MetaData()
results_table = sa.Table(
    RESULTS_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_key", sa.String(768), nullable=False, unique=True),
    sa.Column("dag_id", sa.String(250), nullable=True),
    sa.Column("task_id", sa.String(250), nullable=True),
    sa.Column("map_index", sa.Integer, nullable=False, default=-1),
    sa.Column("run_id", sa.String(250), nullable=True),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result_json", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_mlobs_results_dataset_check", "dataset", "check_name", "window_end"),
)

PROFILES_TABLE = "mlobs_profiles"
profiles_table = sa.Table(
    PROFILES_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile_key", sa.String(768), nullable=False, unique=True),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("baseline", sa.String(512), nullable=False),
    sa.Column("edges_key", sa.String(64), nullable=False),
    sa.Column("segment", sa.String(256), nullable=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("profile_json", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_mlobs_profiles_dataset", "dataset", "edges_key", "window_end"),
)

ALERT_STATE_TABLE = "mlobs_alert_state"
alert_state_table = sa.Table(
    ALERT_STATE_TABLE,
    _metadata,
    sa.Column("state_key", sa.String(768), primary_key=True),
    sa.Column("channel", sa.String(256), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
DELIVERIES_TABLE = "mlobs_deliveries"
deliveries_table = sa.Table(
    DELIVERIES_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_key", sa.String(768), nullable=False, index=True),
    sa.Column("channel", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Delivery:
    """One notification sent (or not) for a stored result. ``error`` never holds a secret."""

    channel: str
    kind: str
    delivered: bool
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class RunKey:
    """Identifies the task run a result belongs to; a result for the same key replaces the old one."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int = -1

    def key_for(self, result: CheckResult) -> str:
        """The unique key: task plus data interval (or the run id when there is no interval)."""
        if result.window_start is None and result.window_end is None:
            interval = f"run={self.run_id}"
        else:
            interval = f"{_iso(result.window_start)}/{_iso(result.window_end)}"
        return f"{self.dag_id}|{self.task_id}|{self.map_index}|{result.dataset}|{interval}"


@dataclass(frozen=True)
class StoredResult:
    """A row of the results history."""

    id: int
    run: RunKey
    result: CheckResult
    recorded_at: datetime


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else "-"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in_utc(result: CheckResult) -> CheckResult:
    """``result`` with its aware window datetimes converted to UTC (naive ones are left as stored)."""

    def convert(value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value

    return result.with_window(convert(result.window_start), convert(result.window_end))


class ResultsStore:
    """Append results to the history table, replacing a task's earlier result for the same interval."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False

    def ensure_table(self) -> None:
        """Create the history table if it does not exist yet."""
        if not self._ready:
            _metadata.create_all(
                self.engine,
                tables=[results_table, profiles_table, alert_state_table, deliveries_table],
                checkfirst=True,
            )
            self._ready = True

    def save(self, result: CheckResult, run: RunKey | None = None) -> int:
        """Store ``result``; returns the row id. Replaces the row with the same :class:`RunKey` and window."""
        self.ensure_table()
        run = run or RunKey()
        key = run.key_for(result)
        row: dict[str, Any] = {
            "result_key": key,
            "dag_id": run.dag_id,
            "task_id": run.task_id,
            "map_index": run.map_index,
            "run_id": run.run_id,
            "check_name": result.check,
            "dataset": result.dataset,
            "status": result.status.value,
            "summary": result.summary,
            "window_start": _utc(result.window_start),
            "window_end": _utc(result.window_end),
            "result_json": result.to_json(),
            "recorded_at": datetime.now(UTC),
        }
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.delete(results_table).where(results_table.c.result_key == key))
                    inserted = conn.execute(sa.insert(results_table).values(**row))
                    primary_key = inserted.inserted_primary_key
                    assert primary_key is not None
                    return int(primary_key[0])
            except IntegrityError:
                # Two writers raced on the same key; the next attempt deletes the other's row.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def history(
        self,
        *,
        dataset: str | None = None,
        check: str | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        limit: int | None = None,
    ) -> list[StoredResult]:
        """Stored results, newest window first (then newest recorded)."""
        self.ensure_table()
        query = sa.select(results_table)
        for column, value in (
            (results_table.c.dataset, dataset),
            (results_table.c.check_name, check),
            (results_table.c.dag_id, dag_id),
            (results_table.c.task_id, task_id),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(
            results_table.c.window_end.desc().nulls_last(),
            results_table.c.recorded_at.desc(),
            results_table.c.id.desc(),
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows: Sequence[sa.Row[Any]] = conn.execute(query).all()
        return [
            StoredResult(
                id=int(r.id),
                run=RunKey(dag_id=r.dag_id, task_id=r.task_id, run_id=r.run_id, map_index=int(r.map_index)),
                result=_in_utc(CheckResult.from_json(r.result_json)),
                recorded_at=_utc(r.recorded_at) or datetime.now(UTC),
            )
            for r in rows
        ]

    def save_profile(self, dataset: str, baseline: str, profile: Profile) -> None:
        """Store a window's profile (replacing the same dataset, baseline, segment and window), so
        later windows and reports reuse it instead of reading the data again."""
        self.ensure_table()
        key = (
            f"{dataset}|{baseline}|{profile.edges_key}|{profile.segment or ''}|"
            f"{_iso(profile.window_start)}/{_iso(profile.window_end)}"
        )
        row = {
            "profile_key": key,
            "dataset": dataset,
            "baseline": baseline,
            "edges_key": profile.edges_key,
            "segment": profile.segment,
            "window_start": _utc(profile.window_start),
            "window_end": _utc(profile.window_end),
            "row_count": profile.row_count,
            "profile_json": profile.to_json(),
            "recorded_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(sa.delete(profiles_table).where(profiles_table.c.profile_key == key))
            conn.execute(sa.insert(profiles_table).values(**row))

    def profiles(
        self,
        dataset: str,
        *,
        edges_key: str,
        start: datetime | None = None,
        end: datetime | None = None,
        segment: str | None = None,
    ) -> list[Profile]:
        """Stored profiles of ``dataset`` over the same edges whose windows lie within ``[start, end]``,
        oldest first; merge them with :meth:`Profile.merge` to roll windows up."""
        self.ensure_table()
        query = sa.select(profiles_table.c.profile_json).where(
            profiles_table.c.dataset == dataset, profiles_table.c.edges_key == edges_key
        )
        query = query.where(
            profiles_table.c.segment.is_(None) if segment is None else profiles_table.c.segment == segment
        )
        if start is not None:
            query = query.where(profiles_table.c.window_start >= _utc(start))
        if end is not None:
            query = query.where(profiles_table.c.window_end <= _utc(end))
        with self.engine.connect() as conn:
            texts = conn.execute(query.order_by(profiles_table.c.window_start)).scalars().all()
        return [Profile.from_dict(json.loads(text)) for text in texts]

    def alert_state(self, channel: str, check: str, dataset: str) -> dict[str, Any] | None:
        """The stored alert state of a channel for one check and dataset (a JSON dict), if any."""
        self.ensure_table()
        key = f"{channel}|{check}|{dataset}"
        with self.engine.connect() as conn:
            text = conn.execute(
                sa.select(alert_state_table.c.state_json).where(alert_state_table.c.state_key == key)
            ).scalar()
        return None if text is None else dict(json.loads(text))

    def save_alert_state(self, channel: str, check: str, dataset: str, state: dict[str, Any]) -> None:
        """Replace the alert state of a channel for one check and dataset."""
        self.ensure_table()
        key = f"{channel}|{check}|{dataset}"
        row = {
            "state_key": key,
            "channel": channel,
            "check_name": check,
            "dataset": dataset,
            "state_json": json.dumps(state, sort_keys=True),
            "updated_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(sa.delete(alert_state_table).where(alert_state_table.c.state_key == key))
            conn.execute(sa.insert(alert_state_table).values(**row))

    def record_delivery(self, result: CheckResult, run: RunKey, delivery: Delivery) -> None:
        """Record on the stored result that a notification was delivered or failed."""
        self.ensure_table()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(deliveries_table).values(
                    result_key=run.key_for(result),
                    channel=delivery.channel,
                    kind=delivery.kind,
                    delivered=delivery.delivered,
                    attempts=delivery.attempts,
                    error=delivery.error,
                    recorded_at=datetime.now(UTC),
                )
            )

    def deliveries(self, result: CheckResult, run: RunKey) -> list[Delivery]:
        """Notifications recorded for a stored result, oldest first."""
        self.ensure_table()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries_table)
                .where(deliveries_table.c.result_key == run.key_for(result))
                .order_by(deliveries_table.c.id)
            ).all()
        return [Delivery(r.channel, r.kind, bool(r.delivered), int(r.attempts), r.error) for r in rows]
