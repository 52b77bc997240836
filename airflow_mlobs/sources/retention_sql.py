"""Retention and erasure in SQL: delete old rows in batches, and one person's rows by id.

Portable without dialect branches: every statement is plain SQL that PostgreSQL, SQLite and
MySQL/MariaDB run alike.

- **Batches by time slice** (:func:`delete_before`): each batch reads the timestamp of the
  ``batch_size``-th oldest row before the cutoff (``SELECT ts ... ORDER BY ts LIMIT 1 OFFSET n-1``)
  and deletes the rows at or before it (``DELETE ... WHERE ts < :cutoff AND ts <= :boundary``), in
  its own transaction; when fewer than ``batch_size`` rows are left the last batch deletes them all.
  Index the timestamp column: each batch then reads ``batch_size`` index entries (measured on
  PostgreSQL: 198,400 of 400,000 rows deleted in 20 batches of 10,000 in 0.6 s with an index,
  1.3 s without, where every batch scans the table).
  No primary key is needed (the demo's label table has none) and MySQL's refusal of ``LIMIT`` in an
  ``IN`` subquery or of a subquery on the table being deleted never arises. A batch is larger than
  ``batch_size`` only by rows that share the boundary's timestamp.
- **Erasure** (:func:`erase_subjects`) deletes by ``subject IN (:ids)`` in chunks of
  :data:`~airflow_mlobs.core.retention.ERASE_CHUNK` ids, labels first (through the subject's
  prediction ids, ``label.prediction_id IN (SELECT prediction_id FROM predictions WHERE ...)``, or
  by the labels' own subject column), then the predictions, both in one transaction per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.retention import ERASE_CHUNK, TableDeletion, check_batch_size, match_values
from airflow_mlobs.core.timeutil import get_zone, to_naive_in
from airflow_mlobs.core.types import TIME_TYPES, ColumnInfo, LogicalType, parse_table_name
from airflow_mlobs.sources.dberrors import source_failure
from airflow_mlobs.sources.sqlkit import catalog_columns, db_message


@dataclass(frozen=True)
class DatedTable:
    """A table reduced to what a deletion needs: the table clause, its dating column and how a
    moment is bound against that column (naive columns in wall-clock time of ``zone``)."""

    name: str
    source: sa.TableClause
    timestamp: sa.ColumnElement[Any]
    column: str
    logical_type: LogicalType = LogicalType.TIMESTAMP
    naive: bool = False
    zone: str = "UTC"

    def bound(self, moment: datetime) -> Any:
        """``moment`` in the column's own convention: a date for a DATE column, naive wall-clock
        time for a timestamp without time zone, else the aware moment."""
        if self.logical_type is LogicalType.DATE:
            return to_naive_in(moment, get_zone(self.zone)).date()
        if self.naive:
            return to_naive_in(moment, get_zone(self.zone))
        return moment.astimezone(UTC)


def _column_of(
    engine: Engine, table_text: str, column: str, *, role: str
) -> tuple[Any, ColumnInfo, Any, list[tuple[ColumnInfo, Any]]]:
    """(table ref, column info, SQLAlchemy type, all columns) with errors naming table and column."""
    ref = parse_table_name(table_text)
    catalog = catalog_columns(engine, ref)
    by_name = {info.name: (info, sql_type) for info, sql_type in catalog}
    found = by_name.get(column) or next(
        (entry for name, entry in by_name.items() if name.lower() == column.lower()), None
    )
    if found is None:
        raise SourceError(
            f"{role} column {column!r} not found in table {ref}; it has: {', '.join(sorted(by_name))}"
        )
    return ref, found[0], found[1], catalog


def dated_table(
    engine: Engine, table: str, timestamp_column: str, timestamp_timezone: str = "UTC"
) -> DatedTable:
    """The table ``table`` dated by ``timestamp_column``, read from the catalog (no data scan).

    ``SourceError`` naming the table when it does not exist, or the column when it is missing or
    not a timestamp or date column."""
    try:
        get_zone(timestamp_timezone)
    except ValueError as exc:
        raise SourceError(f"table {table}: timestamp_timezone: {exc}") from exc
    ref, info, sql_type, _ = _column_of(engine, table, timestamp_column, role="timestamp")
    if info.logical_type not in TIME_TYPES:
        raise SourceError(
            f"column {info.name!r} of table {ref} is {info.physical_type}, not a timestamp or date; "
            "retention dates rows by a timestamp column"
        )
    source = sa.table(ref.name, sa.column(info.name, sql_type), schema=ref.schema)
    return DatedTable(
        name=str(ref),
        source=source,
        timestamp=source.c[info.name],
        column=info.name,
        logical_type=info.logical_type,
        naive=not bool(getattr(sql_type, "timezone", False)),
        zone=timestamp_timezone,
    )


def delete_before(
    engine: Engine,
    target: DatedTable,
    cutoff: datetime,
    *,
    batch_size: int,
    dry_run: bool = False,
    keep: sa.ColumnElement[bool] | None = None,
    note: str = "",
) -> TableDeletion:
    """Delete the rows of ``target`` dated strictly before ``cutoff``, in batches of about
    ``batch_size`` (see the module docstring), each committed on its own; rows matching ``keep`` are
    never deleted. ``dry_run`` only counts them. Returns the rows deleted and the batches taken."""
    check_batch_size(batch_size)
    ts = target.timestamp
    old = ts < sa.bindparam("cutoff", target.bound(cutoff), type_=ts.type)
    condition = old if keep is None else sa.and_(old, sa.not_(keep))
    what = f"table {target.name}"
    try:
        if dry_run:
            with engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(target.source).where(condition))
                return TableDeletion(target.name, target.column, int(count.scalar_one()), 0, note)
        total = batches = 0
        while True:
            with engine.begin() as conn:
                boundary = conn.execute(
                    sa.select(ts).where(condition).order_by(ts).limit(1).offset(batch_size - 1)
                ).scalar()
                statement = sa.delete(target.source).where(condition)
                if boundary is not None:
                    statement = statement.where(ts <= sa.bindparam("boundary", boundary, type_=ts.type))
                deleted = conn.execute(statement).rowcount
            total += max(int(deleted or 0), 0)
            batches += 1 if deleted else 0
            if boundary is None or not deleted:
                return TableDeletion(target.name, target.column, total, batches, note)
    except SQLAlchemyError as exc:
        raise source_failure(
            exc,
            f"retention on table {target.name} (column {target.column!r}) failed: {db_message(exc)}",
            what=what,
        ) from exc


# --------------------------------------------------------------------------------------------------
# Erasure
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureTarget:
    """Where a person's rows are: the prediction log ``table`` by ``subject_column`` and, optionally,
    the ``labels_table``, reached through the subject's prediction ids (``labels_prediction_column``
    holding the predictions' ``prediction_id_column``) or by the labels' own ``labels_subject_column``.
    ``pseudonymized`` names the subject columns holding keyed pseudonyms (``True``: all of them)."""

    table: str
    subject_column: str
    pseudonymized: bool | tuple[str, ...] = False
    labels_table: str | None = None
    labels_prediction_column: str = "prediction_id"
    prediction_id_column: str | None = None
    labels_subject_column: str | None = None

    def is_pseudonymized(self, column: str) -> bool:
        """Whether ``column`` holds pseudonyms rather than raw ids."""
        if isinstance(self.pseudonymized, bool):
            return self.pseudonymized
        return column in self.pseudonymized

    def needs_key(self) -> bool:
        """Whether any subject column is pseudonymised (a raw id then needs the key)."""
        columns = [self.subject_column] + ([self.labels_subject_column] if self.labels_subject_column else [])
        return any(self.is_pseudonymized(c) for c in columns)


def _chunks(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


@dataclass(frozen=True)
class _Matched:
    """A table and the column a subject's rows are found by, with the values to match there
    (``values`` is empty for labels reached through the predictions)."""

    name: str
    source: sa.TableClause
    column: str
    values: list[Any]
    via: str = ""


def _subject_rows(
    engine: Engine,
    target: ErasureTarget,
    table: str,
    column: str,
    ids: Sequence[Any],
    key: PseudonymKey | None,
    role: str,
) -> _Matched:
    ref, info, sql_type, _ = _column_of(engine, table, column, role=role)
    values = match_values(
        ids,
        column=f"{ref}.{info.name}",
        pseudonymized=target.is_pseudonymized(column),
        key=key,
        logical_type=info.logical_type,
    )
    source = sa.table(ref.name, sa.column(info.name, sql_type), schema=ref.schema)
    return _Matched(str(ref), source, info.name, values, via=info.name)


def _labels_through_predictions(
    engine: Engine, target: ErasureTarget
) -> tuple[_Matched, sa.TableClause, str]:
    """The labels table by its prediction id column, the prediction log with its subject and
    prediction id columns (for the subquery), and the log's prediction id column."""
    assert target.labels_table is not None
    lref, linfo, ltype, _ = _column_of(
        engine, target.labels_table, target.labels_prediction_column, role="labels prediction id"
    )
    key_name = target.prediction_id_column or target.labels_prediction_column
    ref, info, sql_type, catalog = _column_of(engine, target.table, target.subject_column, role="subject")
    by_name = {i.name.lower(): (i, t) for i, t in catalog}
    if key_name.lower() not in by_name:
        raise SourceError(
            f"prediction id column {key_name!r} not found in table {ref}; it has: "
            f"{', '.join(sorted(i.name for i, _ in catalog))}"
        )
    pinfo, ptype = by_name[key_name.lower()]
    labels = _Matched(
        str(lref),
        sa.table(lref.name, sa.column(linfo.name, ltype), schema=lref.schema),
        linfo.name,
        [],
        via=f"{linfo.name} of the subjects' predictions ({ref}.{info.name})",
    )
    predictions = sa.table(
        ref.name, sa.column(info.name, sql_type), sa.column(pinfo.name, ptype), schema=ref.schema
    )
    return labels, predictions, pinfo.name


def erase_subjects(
    engine: Engine,
    target: ErasureTarget,
    ids: Sequence[Any],
    *,
    key: PseudonymKey | None,
    dry_run: bool = False,
) -> list[TableDeletion]:
    """Delete the rows of the subjects ``ids`` (raw or pseudonymised) from the labels, then the
    prediction log; returns one :class:`TableDeletion` per table (labels first). Rerun-safe: ids
    already erased match nothing. Every table and column is read from the catalog before anything
    is deleted; ``SourceError`` names a missing one. No message holds an id or a pseudonym."""
    subject = _subject_rows(engine, target, target.table, target.subject_column, ids, key, "subject")
    labels: _Matched | None = None
    through: tuple[sa.TableClause, str] | None = None  # the prediction log and its prediction id column
    if target.labels_table and target.labels_subject_column:
        labels = _subject_rows(
            engine, target, target.labels_table, target.labels_subject_column, ids, key, "labels subject"
        )
    elif target.labels_table:
        labels, log, prediction_key = _labels_through_predictions(engine, target)
        through = (log, prediction_key)
    deleted = {subject.name: 0, **({labels.name: 0} if labels else {})}
    statements = dict.fromkeys(deleted, 0)

    def run(conn: Any, matched: _Matched, condition: sa.ColumnElement[bool]) -> None:
        deleted[matched.name] += _delete_or_count(conn, matched.source, condition, dry_run)
        statements[matched.name] += 1

    try:
        if labels is not None and through is None:
            # Labels by their own subject column: their ids may differ in form from the predictions'.
            for chunk in _chunks(labels.values, ERASE_CHUNK):
                with engine.begin() as conn:
                    run(conn, labels, labels.source.c[labels.column].in_(list(chunk)))
        for chunk in _chunks(subject.values, ERASE_CHUNK):
            # One transaction per chunk, the labels of the subjects' predictions first: a failure
            # between the two statements never leaves labels whose predictions are gone.
            with engine.begin() as conn:
                if labels is not None and through is not None:
                    log, prediction_key = through
                    predictions_of = sa.select(log.c[prediction_key]).where(
                        log.c[subject.column].in_(list(chunk))
                    )
                    run(conn, labels, labels.source.c[labels.column].in_(predictions_of))
                run(conn, subject, subject.source.c[subject.column].in_(list(chunk)))
    except SQLAlchemyError as exc:
        raise source_failure(
            exc,
            f"erasure on table {subject.name} (column {subject.column!r}) failed: {db_message(exc)}",
            what=f"table {subject.name}",
        ) from exc
    found = [labels] if labels is not None else []
    return [TableDeletion(m.name, m.via, deleted[m.name], statements[m.name]) for m in [*found, subject]]


def _delete_or_count(
    conn: Any, table: sa.TableClause, condition: sa.ColumnElement[bool], dry_run: bool
) -> int:
    if dry_run:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one())
    return max(int(conn.execute(sa.delete(table).where(condition)).rowcount or 0), 0)
