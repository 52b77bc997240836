"""The results history: every check result, one row per task and data interval (SQLAlchemy).

Airflow-free: the store takes a SQLAlchemy ``Engine``; the operators build it from
``results_conn_id`` (default: a SQLite file under ``AIRFLOW_HOME``). The tables are created on first
use, by any number of processes at once, and upgraded in place when they were made by an older
version (``mlobs_schema_version`` holds the version). Re-running a task for the same data interval
replaces its row rather than adding one, so the history holds the latest verdict per interval.

Concurrency: on PostgreSQL creation and upgrades run under a transaction-scoped advisory lock, on
SQLite under ``BEGIN IMMEDIATE``; on any database a creator that loses a race ("already exists",
duplicate keys) looks again and carries on. Saves are single-statement upserts
(``INSERT ... ON CONFLICT (key) DO UPDATE``) on PostgreSQL and SQLite, and an update-or-insert
retried on conflicts elsewhere.
"""

from __future__ import annotations

import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from airflow_mlobs.core.increments import StoredSlice
from airflow_mlobs.core.notify import Silence
from airflow_mlobs.core.profile import Profile
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.retention import ErasureAudit, TableDeletion
from airflow_mlobs.sources.dialect import dialect_for
from airflow_mlobs.sources.retention_sql import DatedTable, delete_before

log = logging.getLogger(__name__)

RESULTS_TABLE = "mlobs_check_results"
PROFILES_TABLE = "mlobs_profiles"
ALERT_STATE_TABLE = "mlobs_alert_state"
DELIVERIES_TABLE = "mlobs_deliveries"
SCHEMA_VERSION_TABLE = "mlobs_schema_version"
ERASURES_TABLE = "mlobs_erasures"
SILENCES_TABLE = "mlobs_silences"

#: Version 1: the four tables as first released (no version table). Version 2: ``partition`` on
#: ``mlobs_profiles``, an index on results by check and window end, and ``mlobs_schema_version``.
#: Version 3: the indexes the dashboard and the history CLI read by (:data:`V3_RESULT_INDEXES`).
#: Version 4: ``mlobs_erasures``, the audit records of erasure requests (no personal data).
#: Version 5: ``mlobs_alert_state.task_scope``: alert state per check task (dag, task, map index or
#: partition), not per channel, check and dataset alone (:func:`_upgrade_to_5` migrates the rows).
#: Version 6: ``mlobs_silences``, the silences of alerts (:class:`~airflow_mlobs.core.notify.Silence`).
SCHEMA_VERSION = 6

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
    # v2: the gate reads history(check=..., start=, end=) without a dataset.
    sa.Index("ix_mlobs_results_check_window", "check_name", "window_end"),
    # v3: the dashboard (airflow_mlobs.history): every dataset over a time range, one dataset over a
    # time range, results without a window by when they were stored, one result by its run key.
    sa.Index("ix_mlobs_results_window_end", "window_end"),
    sa.Index("ix_mlobs_results_dataset_window", "dataset", "window_end"),
    sa.Index("ix_mlobs_results_recorded", "recorded_at"),
    sa.Index("ix_mlobs_results_run", "dag_id", "run_id", "task_id", "map_index"),
)

#: The indexes version 3 adds to ``mlobs_check_results``, by name: their columns.
V3_RESULT_INDEXES: dict[str, tuple[str, ...]] = {
    "ix_mlobs_results_window_end": ("window_end",),
    "ix_mlobs_results_dataset_window": ("dataset", "window_end"),
    "ix_mlobs_results_recorded": ("recorded_at",),
    "ix_mlobs_results_run": ("dag_id", "run_id", "task_id", "map_index"),
}

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
    # v2: which partition of the dataset (a mapped task's share); NULL for the whole dataset.
    sa.Column("partition", sa.String(256), nullable=True),
    sa.Index("ix_mlobs_profiles_dataset", "dataset", "edges_key", "window_end"),
)

alert_state_table = sa.Table(
    ALERT_STATE_TABLE,
    _metadata,
    sa.Column("state_key", sa.String(768), primary_key=True),
    sa.Column("channel", sa.String(256), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # v5: the check task the state belongs to (:meth:`RunKey.alert_scope`); NULL for a state a
    # version-4 store kept per channel, check and dataset that no stored result could attribute.
    sa.Column("task_scope", sa.String(768), nullable=True),
)
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
schema_version_table = sa.Table(
    SCHEMA_VERSION_TABLE,
    _metadata,
    # One row, id 1: the version the tables are at.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("upgraded_at", sa.DateTime(timezone=True), nullable=False),
)
erasures_table = sa.Table(
    ERASURES_TABLE,
    _metadata,
    # v4: one row per erasure request carried out (or dry-run). Never an id or a pseudonym: counts,
    # who asked (user, or the DAG run), the reason text given, and the pseudonym key's fingerprint.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("requested_by", sa.String(250), nullable=True),
    sa.Column("dag_id", sa.String(250), nullable=True),
    sa.Column("run_id", sa.String(250), nullable=True),
    sa.Column("task_id", sa.String(250), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("ids_requested", sa.Integer, nullable=False),
    sa.Column("rows_deleted", sa.BigInteger, nullable=False),
    sa.Column("deleted_json", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=True),
    sa.Column("dry_run", sa.Boolean, nullable=False),
)
silences_table = sa.Table(
    SILENCES_TABLE,
    _metadata,
    # v6: one row per silence, kept after it ends (who silenced what, why, until when).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(512), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("column_name", sa.String(256), nullable=True),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(250), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_mlobs_silences_until", "until"),
)
_TABLES = [
    results_table,
    profiles_table,
    alert_state_table,
    deliveries_table,
    schema_version_table,
    erasures_table,
    silences_table,
]
_V1_TABLES = {RESULTS_TABLE, PROFILES_TABLE, ALERT_STATE_TABLE, DELIVERIES_TABLE}

# Advisory lock key (first half) of table creation on PostgreSQL; the second half is the schema's hash.
_LOCK_CLASS = zlib.crc32(b"airflow_mlobs.store") & 0x7FFFFFFF
_CREATE_ATTEMPTS = 8
_SAVE_ATTEMPTS = 8
# Undecodable rows: the decoders raise these on truncated JSON, missing keys, wrong shapes or values.
_DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError)
# Words in the driver's message of an error a concurrent writer causes and a retry resolves.
_RACE_WORDS = ("already exists", "duplicate", "database is locked", "deadlock", "could not serialize")

T = TypeVar("T")


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

    def alert_scope(self, result: CheckResult) -> str | None:
        """Which check task an alert state belongs to: ``dag|task|<part>``, where the part is
        ``partition=<name>`` for a result of one partition (stable when the mapped list is
        reordered), else the map index. ``None`` without a task (a result sent outside a run)."""
        if self.dag_id is None and self.task_id is None:
            return None
        partition = result.metrics.get("partition") if isinstance(result.metrics, dict) else None
        part = f"partition={partition}" if isinstance(partition, str) and partition else str(self.map_index)
        return f"{self.dag_id}|{self.task_id}|{part}"


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


def alert_state_key(channel: str, check: str, dataset: str, task: str | None = None) -> str:
    """The primary key of an alert state row (hashed when it would not fit the column)."""
    import hashlib

    key = f"{channel}|{check}|{dataset}" if task is None else f"{channel}|{check}|{dataset}|task={task}"
    if len(key) <= 768:
        return key
    return key[:700] + "#" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _is_race(exc: DBAPIError) -> bool:
    """Whether ``exc`` is what losing a race to another writer looks like (a retry resolves it)."""
    if isinstance(exc, IntegrityError):
        return True
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(word in text for word in _RACE_WORDS)


def _backoff(attempt: int) -> None:
    # Jittered, so writers that collided once do not collide again in lockstep.
    time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))


def _profile_key(dataset: str, baseline: str, profile: Profile, partition: str | None) -> str:
    # Without a partition the key is the one version 1 wrote, so re-runs still replace old rows.
    key = (
        f"{dataset}|{baseline}|{profile.edges_key}|{profile.segment or ''}|"
        f"{_iso(profile.window_start)}/{_iso(profile.window_end)}"
    )
    return key if partition is None else f"{key}|partition={partition}"


class ResultsStore:
    """Append results to the history table, replacing a task's earlier result for the same interval.

    ``skipped_rows`` is the number of stored rows the last :meth:`history`, :meth:`profiles` or
    :meth:`window_profiles` call skipped because they could not be decoded (each call logs one
    warning naming the table and row ids); ``skipped_total`` counts them over all calls.
    """

    #: Save with the database's one-statement upsert where its dialect has one
    #: (:meth:`~airflow_mlobs.sources.dialect.SqlDialect.upsert_insert`); else, or when False, the
    #: portable update-then-insert.
    native_upsert: bool = True
    #: Create the tables under the dialect's lock where it has one (PostgreSQL advisory lock, SQLite
    #: ``BEGIN IMMEDIATE``); else, or when False, rely on catching the lost race and looking again.
    creation_lock: bool = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        self.skipped_rows = 0
        self.skipped_total = 0

    # ----------------------------------------------------------------------------------------------
    # Tables: creation and upgrades
    # ----------------------------------------------------------------------------------------------

    def ensure_table(self) -> None:
        """Create the tables if they do not exist, or upgrade them to :data:`SCHEMA_VERSION`.

        Safe when many processes call it at once on a fresh database: creation and upgrade run
        under a lock where the database has one, and a creator that finds its tables made by
        another in the meantime carries on.
        """
        if self._ready:
            return
        with self.engine.connect() as conn:
            current = self._read_version(conn)
        if current is not None and current >= SCHEMA_VERSION:
            self._warn_if_newer(current)
            self._ready = True
            return
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                self._create_or_upgrade_locked()
                break
            except DBAPIError as exc:
                if not _is_race(exc) or attempt == _CREATE_ATTEMPTS - 1:
                    raise
                log.info(
                    "Results tables were being created or upgraded by another process (%s); looking again",
                    type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                )
                _backoff(attempt)
        self._ready = True

    def schema_version(self) -> int | None:
        """The version the results tables are at (``None``: not created yet; 1: made before versions
        were recorded)."""
        with self.engine.connect() as conn:
            return self._read_version(conn)

    def _read_version(self, conn: Connection) -> int | None:
        inspector = sa.inspect(conn)
        if inspector.has_table(SCHEMA_VERSION_TABLE):
            version = conn.execute(
                sa.select(schema_version_table.c.version).where(schema_version_table.c.id == 1)
            ).scalar()
            if version is not None:
                return int(version)
        return 1 if inspector.has_table(RESULTS_TABLE) or inspector.has_table(PROFILES_TABLE) else None

    def _warn_if_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            log.warning(
                "The results tables are at schema version %d, newer than this airflow-mlobs knows (%d); "
                "reading and writing them as version %d: upgrade airflow-mlobs on every worker",
                version,
                SCHEMA_VERSION,
                SCHEMA_VERSION,
            )

    def _create_or_upgrade_locked(self) -> None:
        with self.engine.connect() as conn:
            if self.creation_lock:
                dialect_for(conn).lock_table_creation(conn, _LOCK_CLASS)
            self._create_or_upgrade(conn)
            conn.commit()

    def _create_or_upgrade(self, conn: Connection) -> None:
        existing = set(sa.inspect(conn).get_table_names())
        version = self._read_version(conn)
        if version is not None and version >= SCHEMA_VERSION:
            return  # another process got here first
        _metadata.create_all(conn, tables=_TABLES, checkfirst=True)
        if version is not None:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                _UPGRADES[step](conn)
            log.info(
                "Upgraded the results tables (%s) from schema version %d to %d",
                ", ".join(sorted(existing & _V1_TABLES)),
                version,
                SCHEMA_VERSION,
            )
        now = datetime.now(UTC)
        updated = conn.execute(
            sa.update(schema_version_table)
            .where(schema_version_table.c.id == 1)
            .values(version=SCHEMA_VERSION, upgraded_at=now)
        )
        if updated.rowcount == 0:
            conn.execute(
                sa.insert(schema_version_table).values(id=1, version=SCHEMA_VERSION, upgraded_at=now)
            )

    # ----------------------------------------------------------------------------------------------
    # Upserts
    # ----------------------------------------------------------------------------------------------

    def _upsert(
        self, table: sa.Table, key_column: str, row: dict[str, Any], *, returns_id: bool
    ) -> int | None:
        """Insert ``row`` or replace the row with the same ``key_column`` value; with ``returns_id``
        the row id is returned (a new id on PostgreSQL and SQLite, as a replaced row is a new one)."""
        insert = (
            dialect_for(self.engine).upsert_insert(table, self.engine.dialect) if self.native_upsert else None
        )
        if insert is not None:
            return self._retrying(lambda: self._native_upsert(insert, table, key_column, row, returns_id))
        return self._retrying(lambda: self._portable_upsert(table, key_column, row, returns_id))

    def _retrying(self, save: Callable[[], T]) -> T:
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                return save()
            except (IntegrityError, OperationalError) as exc:
                # The portable upsert loses to a concurrent first insert of the same key; SQLite may
                # stay locked past its busy timeout. Both resolve on a later attempt.
                if not _is_race(exc) or attempt == _SAVE_ATTEMPTS - 1:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def _native_upsert(
        self, insert: Any, table: sa.Table, key_column: str, row: dict[str, Any], returns_id: bool
    ) -> int | None:
        statement = insert.values(**row)
        updates: dict[str, Any] = {name: statement.excluded[name] for name in row if name != key_column}
        if returns_id:
            # The proposed row's id (its default was drawn), so the replaced row gets a new id.
            updates["id"] = statement.excluded["id"]
        statement = statement.on_conflict_do_update(index_elements=[table.c[key_column]], set_=updates)
        with self.engine.begin() as conn:
            if not returns_id:
                conn.execute(statement)
                return None
            if self.engine.dialect.insert_returning:
                return int(conn.execute(statement.returning(table.c.id)).scalar_one())
            conn.execute(statement)
            return self._id_of(conn, table, key_column, row[key_column])

    def _portable_upsert(
        self, table: sa.Table, key_column: str, row: dict[str, Any], returns_id: bool
    ) -> int | None:
        # Update first: a concurrent writer of the same key holds the row lock, the update waits for
        # it and then replaces its row. Only two first inserts can collide; the loser's retry updates.
        key = row[key_column]
        values = {name: value for name, value in row.items() if name != key_column}
        with self.engine.begin() as conn:
            updated = conn.execute(sa.update(table).where(table.c[key_column] == key).values(**values))
            if updated.rowcount == 0:
                inserted = conn.execute(sa.insert(table).values(**row))
                if returns_id:
                    primary_key = inserted.inserted_primary_key
                    if primary_key is not None and primary_key[0] is not None:
                        return int(primary_key[0])
            return self._id_of(conn, table, key_column, key) if returns_id else None

    @staticmethod
    def _id_of(conn: Connection, table: sa.Table, key_column: str, key: str) -> int:
        return int(conn.execute(sa.select(table.c.id).where(table.c[key_column] == key)).scalar_one())

    def _note_skipped(self, table: str, column: str, skipped: Sequence[tuple[int, BaseException]]) -> None:
        self.skipped_rows = len(skipped)
        self.skipped_total += len(skipped)
        if skipped:
            ids = ", ".join(str(row_id) for row_id, _ in skipped[:10]) + (
                ", ..." if len(skipped) > 10 else ""
            )
            first = skipped[0][1]
            log.warning(
                "Skipped %d row(s) of %s whose %s cannot be decoded (ids %s; first: %s: %s); "
                "fix or delete those rows",
                len(skipped),
                table,
                column,
                ids,
                type(first).__name__,
                str(first)[:200],
            )

    # ----------------------------------------------------------------------------------------------
    # Results
    # ----------------------------------------------------------------------------------------------

    def save(self, result: CheckResult, run: RunKey | None = None) -> int:
        """Store ``result``; returns the row id. Replaces the row with the same :class:`RunKey` and window."""
        self.ensure_table()
        run = run or RunKey()
        row: dict[str, Any] = {
            "result_key": run.key_for(result),
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
        row_id = self._upsert(results_table, "result_key", row, returns_id=True)
        assert row_id is not None
        return row_id

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
        run_id: str | None = None,
    ) -> list[StoredResult]:
        """Stored results, newest window first (then newest recorded), filtered in SQL.

        Time: ``start`` and ``end`` bound the window's end, both inclusive (``start <= window_end
        <= end``, as :meth:`profiles` bounds windows); rows without a window are left out when
        either is given. ``recorded_since`` keeps rows stored at or after it. Naive datetimes are
        taken as UTC. ``limit`` keeps the newest rows: with ``end`` it reads the last windows up to
        a time without reading the rest of the history. The other filters select by check,
        dataset, task, map index and DAG run id. Rows whose ``result_json`` cannot be decoded are skipped (see
        ``skipped_rows``); ``limit`` counts them, so fewer rows may come back.
        """
        self.ensure_table()
        query = sa.select(results_table)
        for column, value in (
            (results_table.c.dataset, dataset),
            (results_table.c.check_name, check),
            (results_table.c.dag_id, dag_id),
            (results_table.c.task_id, task_id),
            (results_table.c.map_index, map_index),
            (results_table.c.run_id, run_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if start is not None:
            query = query.where(results_table.c.window_end >= _utc(start))
        if end is not None:
            query = query.where(results_table.c.window_end <= _utc(end))
        if recorded_since is not None:
            query = query.where(results_table.c.recorded_at >= _utc(recorded_since))
        query = query.order_by(
            *dialect_for(self.engine).nulls_last(results_table.c.window_end.desc()),
            results_table.c.recorded_at.desc(),
            results_table.c.id.desc(),
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows: Sequence[sa.Row[Any]] = conn.execute(query).all()
        stored: list[StoredResult] = []
        skipped: list[tuple[int, BaseException]] = []
        for r in rows:
            try:
                stored.append(
                    StoredResult(
                        id=int(r.id),
                        run=RunKey(
                            dag_id=r.dag_id, task_id=r.task_id, run_id=r.run_id, map_index=int(r.map_index)
                        ),
                        result=_in_utc(CheckResult.from_json(r.result_json)),
                        recorded_at=_utc(r.recorded_at) or datetime.now(UTC),
                    )
                )
            except _DECODE_ERRORS as exc:  # one bad row must not hide the rest of the history
                skipped.append((int(r.id), exc))
        self._note_skipped(RESULTS_TABLE, "result_json", skipped)
        return stored

    # ----------------------------------------------------------------------------------------------
    # Profiles
    # ----------------------------------------------------------------------------------------------

    def save_profile(
        self,
        dataset: str,
        baseline: str,
        profile: Profile,
        *,
        partition: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a window's profile (replacing the same dataset, baseline, segment, partition and
        window), so later windows, reports and merge steps reuse it instead of reading the data
        again. ``partition`` names the share of the dataset profiled (e.g. a mapped task's);
        ``provenance`` says how it was profiled (:func:`airflow_mlobs.core.increments.provenance_of`),
        kept in the profile's JSON for incremental windows to decide whether to reuse it."""
        self.ensure_table()
        text = profile.to_json()
        if provenance is not None:
            text = json.dumps(
                {**profile.to_dict(), "provenance": dict(provenance)}, allow_nan=False, separators=(",", ":")
            )
        row = {
            # With provenance the key names the source fingerprint too: two checks of one dataset
            # with another ``where`` keep a profile each instead of replacing each other's.
            "profile_key": _profile_key(dataset, baseline, profile, partition)
            + (f"|source={provenance.get('source')}" if provenance is not None else ""),
            "dataset": dataset,
            "baseline": baseline,
            "edges_key": profile.edges_key,
            "segment": profile.segment,
            "partition": partition,
            "window_start": _utc(profile.window_start),
            "window_end": _utc(profile.window_end),
            "row_count": profile.row_count,
            "profile_json": text,
            "recorded_at": datetime.now(UTC),
        }
        self._upsert(profiles_table, "profile_key", row, returns_id=False)

    def stored_slices(self, dataset: str, start: datetime, end: datetime) -> list[StoredSlice]:
        """The whole-dataset profiles of ``dataset`` (no partition, no segment, any bin edges) whose
        windows lie within ``[start, end]``, with the provenance they were stored with and when:
        what an incremental window (:mod:`airflow_mlobs.core.increments`) may reuse."""
        self.ensure_table()
        columns = profiles_table.c
        query = sa.select(
            columns.id, columns.profile_json, columns.recorded_at, columns.window_start, columns.window_end
        ).where(
            columns.dataset == dataset,
            columns.partition.is_(None),
            columns.segment.is_(None),
            columns.window_start >= _utc(start),
            columns.window_end <= _utc(end),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(columns.window_start, columns.id)).all()
        found: list[StoredSlice] = []
        skipped: list[tuple[int, BaseException]] = []
        for row_id, text, recorded_at, window_start, window_end in rows:
            try:
                data = json.loads(text)
                profile = Profile.from_dict(data)
            except _DECODE_ERRORS as exc:
                skipped.append((int(row_id), exc))
                continue
            provenance = data.get("provenance")
            found.append(
                StoredSlice(
                    start=window_start,
                    end=window_end,
                    provenance=provenance if isinstance(provenance, dict) else {},
                    recorded_at=recorded_at,
                    row_count=profile.row_count,
                    has_joint=profile.joint is not None,
                    profile=profile,
                )
            )
        self._note_skipped(PROFILES_TABLE, "profile_json", skipped)
        return found

    def profiles(
        self,
        dataset: str,
        *,
        edges_key: str,
        start: datetime | None = None,
        end: datetime | None = None,
        segment: str | None = None,
        partition: str | None = None,
    ) -> list[Profile]:
        """Stored profiles of ``dataset`` over the same edges whose windows lie within ``[start, end]``,
        oldest first; merge them with :meth:`Profile.merge` to roll windows up. ``segment`` and
        ``partition`` select one segment / partition (``None``: the profiles without one)."""
        self.ensure_table()
        query = self._profile_query(dataset, edges_key, segment).where(
            _is(profiles_table.c.partition, partition)
        )
        if start is not None:
            query = query.where(profiles_table.c.window_start >= _utc(start))
        if end is not None:
            query = query.where(profiles_table.c.window_end <= _utc(end))
        query = query.order_by(profiles_table.c.window_start, profiles_table.c.id)
        return [profile for _, profile in self._decode_profiles(query)]

    def window_profiles(
        self,
        dataset: str,
        *,
        edges_key: str,
        window_start: datetime | None,
        window_end: datetime | None,
        segment: str | None = None,
    ) -> list[tuple[str | None, Profile]]:
        """Every partition's stored profile of exactly this window, as ``(partition, profile)``
        ordered by partition (the unpartitioned profile, if any, first, as ``None``): what a merge
        step adds up into one dataset profile."""
        self.ensure_table()
        query = (
            self._profile_query(dataset, edges_key, segment)
            .where(_is(profiles_table.c.window_start, _utc(window_start)))
            .where(_is(profiles_table.c.window_end, _utc(window_end)))
            .order_by(profiles_table.c.id)
        )
        # Sorted here: NULLS FIRST is not portable SQL.
        return sorted(self._decode_profiles(query), key=lambda found: (found[0] is not None, found[0] or ""))

    @staticmethod
    def _profile_query(dataset: str, edges_key: str, segment: str | None) -> sa.Select[Any]:
        return sa.select(
            profiles_table.c.id, profiles_table.c.partition, profiles_table.c.profile_json
        ).where(
            profiles_table.c.dataset == dataset,
            profiles_table.c.edges_key == edges_key,
            _is(profiles_table.c.segment, segment),
        )

    def _decode_profiles(self, query: sa.Select[Any]) -> list[tuple[str | None, Profile]]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        decoded: list[tuple[str | None, Profile]] = []
        skipped: list[tuple[int, BaseException]] = []
        for row_id, partition, text in rows:
            try:
                decoded.append((partition, Profile.from_dict(json.loads(text))))
            except _DECODE_ERRORS as exc:
                skipped.append((int(row_id), exc))
        self._note_skipped(PROFILES_TABLE, "profile_json", skipped)
        return decoded

    # ----------------------------------------------------------------------------------------------
    # Alert state and deliveries
    # ----------------------------------------------------------------------------------------------

    def alert_state(
        self, channel: str, check: str, dataset: str, *, task: str | None = None
    ) -> dict[str, Any] | None:
        """The stored alert state of a channel for one check task (``task``:
        :meth:`RunKey.alert_scope`) on a dataset (a JSON dict), if any. A task without a state of
        its own reads the one a version-4 store kept per channel, check and dataset, if any was
        left unattributed by the upgrade (it then writes its own)."""
        self.ensure_table()
        keys = [alert_state_key(channel, check, dataset, task)]
        if task is not None:
            keys.append(alert_state_key(channel, check, dataset))
        with self.engine.connect() as conn:
            for key in keys:
                text = conn.execute(
                    sa.select(alert_state_table.c.state_json).where(alert_state_table.c.state_key == key)
                ).scalar()
                if text is not None:
                    return dict(json.loads(text))
        return None

    def save_alert_state(
        self, channel: str, check: str, dataset: str, state: dict[str, Any], *, task: str | None = None
    ) -> None:
        """Replace the alert state of a channel for one check task (``task``) on a dataset."""
        self.ensure_table()
        row = {
            "state_key": alert_state_key(channel, check, dataset, task),
            "channel": channel,
            "check_name": check,
            "dataset": dataset,
            "task_scope": task,
            "state_json": json.dumps(state, sort_keys=True),
            "updated_at": datetime.now(UTC),
        }
        self._upsert(alert_state_table, "state_key", row, returns_id=False)

    def add_silence(
        self,
        *,
        dataset: str,
        check: str,
        until: datetime,
        reason: str,
        created_by: str,
        column: str | None = None,
    ) -> Silence:
        """Store a silence of the alerts of ``check`` on ``dataset`` (shell patterns allowed) until
        ``until``; returns it with its id."""
        self.ensure_table()
        now = datetime.now(UTC)
        values = {
            "dataset": dataset,
            "check_name": check,
            "column_name": column,
            "until": _utc(until),
            "reason": reason,
            "created_by": created_by,
            "created_at": now,
        }
        with self.engine.begin() as conn:
            primary_key = conn.execute(sa.insert(silences_table).values(**values)).inserted_primary_key
        row_id = int(primary_key[0]) if primary_key is not None and primary_key[0] is not None else 0
        return Silence(row_id, dataset, check, _utc(until) or now, reason, created_by, column, now)

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        """Stored silences, newest first; with ``active_at`` only those holding then."""
        self.ensure_table()
        query = sa.select(silences_table).order_by(silences_table.c.id.desc())
        if active_at is not None:
            at = _utc(active_at)
            query = query.where(
                silences_table.c.until > at,
                sa.or_(silences_table.c.expired_at.is_(None), silences_table.c.expired_at > at),
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Silence(
                id=int(r.id),
                dataset=r.dataset,
                check=r.check_name,
                until=_utc(r.until) or datetime.now(UTC),
                reason=r.reason,
                created_by=r.created_by,
                column=r.column_name,
                created_at=_utc(r.created_at),
                expired_at=_utc(r.expired_at),
            )
            for r in rows
        ]

    def expire_silence(self, silence_id: int, at: datetime | None = None) -> bool:
        """End a silence now (or at ``at``); ``False`` when no such silence holds still."""
        self.ensure_table()
        when = _utc(at) or datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(silences_table)
                .where(
                    silences_table.c.id == silence_id,
                    silences_table.c.expired_at.is_(None),
                    silences_table.c.until > when,
                )
                .values(expired_at=when)
            )
        return bool(updated.rowcount)

    def silence_for(self, result: CheckResult, at: datetime) -> Silence | None:
        """The newest silence holding at ``at`` that covers ``result``, if any."""
        return next((s for s in self.silences(active_at=at) if s.matches(result)), None)

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

    # ----------------------------------------------------------------------------------------------
    # Retention and the erasure audit
    # ----------------------------------------------------------------------------------------------

    def purge_before(
        self, cutoff: datetime, *, batch_size: int, dry_run: bool = False
    ) -> list[TableDeletion]:
        """Delete the history's rows dated before ``cutoff`` (in batches, see
        :func:`~airflow_mlobs.sources.retention_sql.delete_before`); ``dry_run`` only counts them.

        How each table is dated: results and profiles by the end of the data window they describe
        (``window_end``; a result without a window by ``recorded_at``, when it was stored), so a
        backfilled old interval ages like the data it judged; deliveries by ``recorded_at``; alert
        state by ``updated_at`` (its last write), and the state of a still-open incident is never
        deleted, whatever its age, so its recovery message is still sent (it ages out once a
        passing result closes it). ``mlobs_schema_version`` and ``mlobs_erasures`` (the proof that
        erasures were done) are never aged.
        """
        self.ensure_table()
        still_open = alert_state_table.c.state_json.contains('"open": true', autoescape=True)
        plans: list[tuple[DatedTable, sa.ColumnElement[bool] | None, str]] = [
            (
                _dated(
                    results_table,
                    sa.func.coalesce(results_table.c.window_end, results_table.c.recorded_at),
                    "coalesce(window_end, recorded_at)",
                ),
                None,
                "",
            ),
            (
                _dated(
                    profiles_table,
                    sa.func.coalesce(profiles_table.c.window_end, profiles_table.c.recorded_at),
                    "coalesce(window_end, recorded_at)",
                ),
                None,
                "",
            ),
            (_dated(deliveries_table, deliveries_table.c.recorded_at, "recorded_at"), None, ""),
            (
                _dated(alert_state_table, alert_state_table.c.updated_at, "updated_at"),
                still_open,
                "the state of open incidents is kept",
            ),
        ]
        return [
            delete_before(
                self.engine, dated, cutoff, batch_size=batch_size, dry_run=dry_run, keep=keep, note=note
            )
            for dated, keep, note in plans
        ]

    def record_erasure(self, audit: ErasureAudit) -> int:
        """Store the audit record of one erasure (no ids or pseudonyms are in it); returns its id."""
        self.ensure_table()
        with self.engine.begin() as conn:
            inserted = conn.execute(
                sa.insert(erasures_table).values(
                    erased_at=_utc(audit.erased_at),
                    requested_by=audit.requested_by,
                    dag_id=audit.dag_id,
                    run_id=audit.run_id,
                    task_id=audit.task_id,
                    reason=audit.reason,
                    ids_requested=audit.ids_requested,
                    rows_deleted=audit.rows_deleted,
                    deleted_json=json.dumps(dict(audit.deleted), sort_keys=True),
                    key_id=audit.key_id,
                    dry_run=audit.dry_run,
                )
            )
            primary_key = inserted.inserted_primary_key
            return int(primary_key[0]) if primary_key is not None and primary_key[0] is not None else 0

    def erasures(self, limit: int | None = None) -> list[ErasureAudit]:
        """The stored erasure audit records, newest first."""
        self.ensure_table()
        query = sa.select(erasures_table).order_by(
            erasures_table.c.erased_at.desc(), erasures_table.c.id.desc()
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ErasureAudit(
                erased_at=_utc(r.erased_at) or datetime.now(UTC),
                ids_requested=int(r.ids_requested),
                deleted={str(k): int(v) for k, v in json.loads(r.deleted_json).items()},
                requested_by=r.requested_by,
                dag_id=r.dag_id,
                run_id=r.run_id,
                task_id=r.task_id,
                reason=r.reason,
                key_id=r.key_id,
                dry_run=bool(r.dry_run),
            )
            for r in rows
        ]


def _dated(table: sa.Table, timestamp: sa.ColumnElement[Any], column: str) -> DatedTable:
    """One of the history's tables dated by ``timestamp`` (aware UTC columns)."""
    return DatedTable(name=table.name, source=table, timestamp=timestamp, column=column)


def _is(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[bool]:
    """``column = value``, or ``column IS NULL`` for ``None``."""
    return column.is_(None) if value is None else column == value


def _upgrade_to_2(conn: Connection) -> None:
    """v1 -> v2: ``mlobs_profiles.partition`` and the results index by check. Each step checks first,
    so a half-done upgrade (or tables created at v2 beside v1 ones) completes."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    inspector = sa.inspect(conn)
    operations = Operations(MigrationContext.configure(connection=conn))
    if "partition" not in {c["name"] for c in inspector.get_columns(PROFILES_TABLE)}:
        operations.add_column(PROFILES_TABLE, sa.Column("partition", sa.String(256), nullable=True))
    if "ix_mlobs_results_check_window" not in {i["name"] for i in inspector.get_indexes(RESULTS_TABLE)}:
        operations.create_index("ix_mlobs_results_check_window", RESULTS_TABLE, ["check_name", "window_end"])


def _upgrade_to_3(conn: Connection) -> None:
    """v2 -> v3: the dashboard's indexes on ``mlobs_check_results`` (each created unless present)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    present = {i["name"] for i in sa.inspect(conn).get_indexes(RESULTS_TABLE)}
    operations = Operations(MigrationContext.configure(connection=conn))
    for name, columns in V3_RESULT_INDEXES.items():
        if name not in present:
            operations.create_index(name, RESULTS_TABLE, list(columns))


def _upgrade_to_4(conn: Connection) -> None:
    """v3 -> v4: ``mlobs_erasures`` (created unless present; ``create_all`` before the steps
    normally made it already)."""
    erasures_table.create(conn, checkfirst=True)


def _upgrade_to_5(conn: Connection) -> None:
    """v4 -> v5: ``mlobs_alert_state.task_scope``, and each state kept per channel, check and
    dataset moved in place to the check task it belongs to.

    Version 4 let every task checking the same dataset with the same check share one row (the last
    writer's fingerprint won). A row goes to a task when the stored results name only one task of
    that check and dataset, or, for an open alert, to the tasks whose latest result has the row's
    fingerprint (the breach it was sent for); its key becomes the task's. A row no result explains
    keeps its old key and no task: :meth:`ResultsStore.alert_state` reads it for any task of that
    check and dataset that has no state of its own yet, so nothing already sent is sent again.
    """
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from airflow_mlobs.core.notify import breach_fingerprint

    if "task_scope" not in {c["name"] for c in sa.inspect(conn).get_columns(ALERT_STATE_TABLE)}:
        Operations(MigrationContext.configure(connection=conn)).add_column(
            ALERT_STATE_TABLE, sa.Column("task_scope", sa.String(768), nullable=True)
        )
    legacy = conn.execute(sa.select(alert_state_table).where(alert_state_table.c.task_scope.is_(None))).all()
    for row in legacy:
        try:
            state = json.loads(row.state_json)
        except ValueError:
            continue
        latest: dict[tuple[Any, Any, int], CheckResult] = {}
        results = conn.execute(
            sa.select(results_table)
            .where(results_table.c.check_name == row.check_name, results_table.c.dataset == row.dataset)
            .order_by(results_table.c.recorded_at.desc(), results_table.c.id.desc())
        ).all()
        for r in results:
            task = (r.dag_id, r.task_id, int(r.map_index))
            if task in latest or (r.dag_id is None and r.task_id is None):
                continue
            try:
                latest[task] = CheckResult.from_json(r.result_json)
            except _DECODE_ERRORS:
                continue
        if len(latest) > 1 and isinstance(state, dict) and state.get("open"):
            owners = [
                t for t, result in latest.items() if breach_fingerprint(result) == state.get("fingerprint")
            ]
        else:
            owners = list(latest) if len(latest) == 1 else []
        scopes = list(
            dict.fromkeys(
                scope
                for dag_id, task_id, map_index in owners
                if (
                    scope := RunKey(dag_id, task_id, None, map_index).alert_scope(
                        latest[(dag_id, task_id, map_index)]
                    )
                )
            )
        )
        if not scopes:
            continue
        first, *others = scopes
        conn.execute(
            sa.update(alert_state_table)
            .where(alert_state_table.c.state_key == row.state_key)
            .values(
                state_key=alert_state_key(row.channel, row.check_name, row.dataset, first), task_scope=first
            )
        )
        for scope in others:  # more tasks whose latest breach it was: each gets a copy
            conn.execute(
                sa.insert(alert_state_table).values(
                    state_key=alert_state_key(row.channel, row.check_name, row.dataset, scope),
                    channel=row.channel,
                    check_name=row.check_name,
                    dataset=row.dataset,
                    state_json=row.state_json,
                    updated_at=row.updated_at,
                    task_scope=scope,
                )
            )


def _upgrade_to_6(conn: Connection) -> None:
    """v5 -> v6: ``mlobs_silences`` (created unless present)."""
    silences_table.create(conn, checkfirst=True)


# Upgrade steps by the version they lead to.
_UPGRADES: dict[int, Callable[[Connection], None]] = {
    2: _upgrade_to_2,
    3: _upgrade_to_3,
    4: _upgrade_to_4,
    5: _upgrade_to_5,
    6: _upgrade_to_6,
}
