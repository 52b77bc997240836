"""Retention and erasure: the definitions and the results, pure (no Airflow, SQLAlchemy or pandas).

- **Retention** deletes rows older than ``keep`` (``"90d"``), measured back from the moment the run
  judges at (its data interval end, like every check): the *cutoff* is ``as_of - keep`` and a row
  is deleted when its timestamp is strictly before it. Rows with a NULL timestamp are never deleted.
  A rerun with the same ``as_of`` finds nothing more to delete and reports 0.
- **Erasure** removes one person's rows (a GDPR/CCPA erasure request) by their raw or pseudonymised
  id. For a pseudonymised column a raw id is turned into its keyed pseudonym
  (:func:`airflow_mlobs.core.privacy.pseudonym`); an id already in pseudonym form is used as it is.
  Its audit record says when, who, why, how many ids and how many rows per table, and the key's
  fingerprint: never an id or a pseudonym.

The gatherers and deleters are :mod:`airflow_mlobs.sources.retention_sql`; the operators are
:mod:`airflow_mlobs.operators.retention`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey, id_text, is_pseudonym, pseudonym
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.timeutil import format_duration, parse_duration
from airflow_mlobs.core.types import LogicalType

RETENTION_CHECK = "retention"
ERASURE_CHECK = "erasure"
#: Rows deleted per statement unless told otherwise: small enough to keep locks and undo short.
DEFAULT_BATCH_SIZE = 10_000
#: Ids matched per statement of an erasure (bound parameters stay well under every driver's limit).
ERASE_CHUNK = 500


@dataclass(frozen=True)
class RetentionTarget:
    """A table whose rows are deleted once older than the cutoff, dated by ``timestamp_column``.

    ``table`` is ``table``, ``schema.table`` or quoted parts; ``timestamp_timezone`` is the zone of a
    timestamp column without time zone (default UTC)."""

    table: str
    timestamp_column: str
    timestamp_timezone: str = "UTC"

    def validate(self, where: str = "retention target") -> None:
        """Both names must be given (bad input names the target)."""
        if not isinstance(self.table, str) or not self.table.strip():
            raise MlobsInputError(f"{where}: table must be a table name, got {self.table!r}")
        if not isinstance(self.timestamp_column, str) or not self.timestamp_column.strip():
            raise MlobsInputError(
                f"{where} (table {self.table}): timestamp_column must name the column that dates each row, "
                f"got {self.timestamp_column!r}"
            )


def as_target(value: RetentionTarget | Mapping[str, Any] | Sequence[str]) -> RetentionTarget:
    """A :class:`RetentionTarget` from itself, a dict (``table``, ``timestamp_column``, optional
    ``timestamp_timezone``) or a ``(table, timestamp_column)`` pair; anything else is bad input."""
    if isinstance(value, RetentionTarget):
        target = value
    elif isinstance(value, Mapping):
        unknown = set(value) - {"table", "timestamp_column", "timestamp_timezone"}
        if unknown:
            raise MlobsInputError(
                f"retention target {dict(value)!r}: unknown keys {sorted(unknown)}; "
                "give table, timestamp_column and optionally timestamp_timezone"
            )
        target = RetentionTarget(
            table=value.get("table", ""),
            timestamp_column=value.get("timestamp_column", ""),
            timestamp_timezone=value.get("timestamp_timezone", "UTC"),
        )
    elif isinstance(value, list | tuple) and len(value) == 2:
        target = RetentionTarget(table=value[0], timestamp_column=value[1])
    else:
        raise MlobsInputError(
            f"retention target {value!r}: give a dict with table and timestamp_column, "
            "or a (table, timestamp_column) pair"
        )
    target.validate()
    return target


def parse_keep(keep: timedelta | str | float) -> timedelta:
    """``keep`` as a positive duration (``"90d"``); zero or bad text is bad input naming ``keep``."""
    try:
        length = parse_duration(keep, name="keep")
    except ValueError as exc:
        raise MlobsInputError(str(exc)) from exc
    if length <= timedelta(0):
        raise MlobsInputError(f"keep: must be longer than zero, got {keep!r} (it would delete everything)")
    return length


def retention_cutoff(as_of: datetime, keep: timedelta | str | float) -> datetime:
    """The moment before which rows are deleted: ``as_of - keep`` (``as_of`` must be aware)."""
    if as_of.tzinfo is None:
        raise MlobsInputError("as_of must carry a time zone (the run's data interval end is in UTC)")
    return as_of - parse_keep(keep)


def check_batch_size(batch_size: int) -> int:
    """A batch size is a positive integer (bad input names it)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MlobsInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


@dataclass(frozen=True)
class TableDeletion:
    """What retention or erasure did to one table: rows deleted (or, in a dry run, that would be),
    the column that selected them, and the statements it took."""

    table: str
    column: str
    rows: int
    batches: int = 0
    note: str = ""


def retention_result(
    dataset: str,
    *,
    keep: timedelta,
    as_of: datetime,
    cutoff: datetime,
    deletions: Sequence[TableDeletion],
    dry_run: bool = False,
) -> CheckResult:
    """The ``retention`` result: status ``pass``, one finding per table (rows deleted, the cutoff)."""
    verb = "would delete" if dry_run else "deleted"
    total = sum(d.rows for d in deletions)
    findings = [
        Finding(
            subject=d.table,
            metric="rows_would_delete" if dry_run else "rows_deleted",
            status=Status.PASS,
            value=d.rows,
            threshold=cutoff.isoformat(),
            reason=(
                f"{verb} {d.rows} row(s) with {d.column} before {cutoff.isoformat()}"
                + (f" in {d.batches} batch(es)" if d.batches and not dry_run else "")
                + (f"; {d.note}" if d.note else "")
            ),
        )
        for d in deletions
    ]
    summary = (
        f"retention {format_duration(keep)}: {verb} {total} row(s) older than {cutoff.isoformat()} "
        f"from {len(deletions)} table(s)" + (" (dry run: nothing deleted)" if dry_run else "")
    )
    return CheckResult(
        check=RETENTION_CHECK,
        dataset=dataset,
        status=Status.PASS,
        summary=summary,
        metrics={
            "keep_seconds": keep.total_seconds(),
            "as_of": as_of.isoformat(),
            "cutoff": cutoff.isoformat(),
            "dry_run": dry_run,
            "rows_deleted": 0 if dry_run else total,
            "rows_would_delete": total if dry_run else 0,
            "tables": {d.table: d.rows for d in deletions},
        },
        findings=tuple(findings),
    )


# --------------------------------------------------------------------------------------------------
# Erasure
# --------------------------------------------------------------------------------------------------


def clean_ids(ids: Iterable[Any] | str | None) -> list[Any]:
    """The ids asked for, without blanks and duplicates (kept in order); text is split on commas,
    whitespace and newlines (a rendered template, a file), and text that is a list literal (a list
    rendered by a template without ``| join``: ``"['a', 'b']"``) is read as that list. ``None`` and
    an empty list are bad input: an erasure of nobody is almost always a wrong template."""
    if ids is None:
        raise MlobsInputError("erase: no subject ids given")
    if isinstance(ids, str):
        ids = _split_ids(ids)
    seen: set[str] = set()
    kept: list[Any] = []
    for value in ids:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = id_text(value)
        if not text or text in seen:
            continue
        seen.add(text)
        kept.append(value)
    if not kept:
        raise MlobsInputError("erase: no subject ids given (the list is empty after removing blanks)")
    return kept


def _split_ids(text: str) -> list[Any]:
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            parsed = ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list):
            return parsed
    return text.replace(",", " ").split()


def match_values(
    ids: Sequence[Any],
    *,
    column: str,
    pseudonymized: bool,
    key: PseudonymKey | None,
    logical_type: LogicalType = LogicalType.STRING,
) -> list[Any]:
    """The values to match in ``column`` for the subject ``ids``.

    Pseudonymised column: a raw id becomes its pseudonym under ``key`` (required unless every id
    is already a pseudonym); a pseudonym is kept. Raw column: the ids as they are, read as the
    column's type (``"42"`` matches an integer column); a pseudonym cannot be matched there and
    is bad input naming the column. Messages never contain the ids."""
    values: list[Any] = []
    for position, value in enumerate(ids, start=1):
        text = id_text(value)
        if pseudonymized:
            if is_pseudonym(text):
                values.append(text)
                continue
            if key is None:
                raise MlobsInputError(
                    f"column {column!r} is pseudonymised: a raw id needs the pseudonym key "
                    "(give key_conn_id or set MLOBS_PSEUDONYM_KEY), or give the ids as pseudonyms"
                )
            values.append(pseudonym(value, key))
            continue
        if is_pseudonym(text):
            raise MlobsInputError(
                f"id #{position} is a pseudonym but column {column!r} holds raw ids; "
                "say the column is pseudonymised, or give the raw id"
            )
        values.append(_as_type(text, logical_type, column, position))
    return list(dict.fromkeys(values))


def _as_type(text: str, logical_type: LogicalType, column: str, position: int) -> Any:
    if logical_type is LogicalType.INTEGER:
        try:
            return int(text)
        except ValueError:
            raise MlobsInputError(
                f"id #{position} is not an integer, but column {column!r} is an integer column"
            ) from None
    if logical_type in (LogicalType.FLOAT, LogicalType.DECIMAL):
        try:
            return float(text)
        except ValueError:
            raise MlobsInputError(
                f"id #{position} is not a number, but column {column!r} is numeric"
            ) from None
    return text


@dataclass(frozen=True)
class ErasureAudit:
    """The stored record of one erasure: no ids and no pseudonyms, only counts and who/why/when.

    ``deleted`` maps each table to the rows deleted there; ``key_id`` is the fingerprint of the
    pseudonym key used (``None`` when none was needed)."""

    erased_at: datetime
    ids_requested: int
    deleted: Mapping[str, int] = field(default_factory=dict)
    requested_by: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    reason: str | None = None
    key_id: str | None = None
    dry_run: bool = False

    @property
    def rows_deleted(self) -> int:
        """Rows deleted over all tables."""
        return sum(self.deleted.values())


def erasure_result(dataset: str, audit: ErasureAudit, columns: Mapping[str, str]) -> CheckResult:
    """The ``erasure`` result (status ``pass``): one finding per table, no ids or pseudonyms.
    ``columns`` maps each table to the column its rows were matched by."""
    verb = "would delete" if audit.dry_run else "deleted"
    findings = [
        Finding(
            subject=table,
            metric="rows_would_delete" if audit.dry_run else "rows_deleted",
            status=Status.PASS,
            value=rows,
            reason=f"{verb} {rows} row(s) matched by {columns.get(table, '?')}",
        )
        for table, rows in audit.deleted.items()
    ]
    return CheckResult(
        check=ERASURE_CHECK,
        dataset=dataset,
        status=Status.PASS,
        summary=(
            f"erasure of {audit.ids_requested} subject id(s): {verb} {audit.rows_deleted} row(s) "
            f"from {len(audit.deleted)} table(s)" + (" (dry run: nothing deleted)" if audit.dry_run else "")
        ),
        metrics={
            "ids_requested": audit.ids_requested,
            "rows_deleted": 0 if audit.dry_run else audit.rows_deleted,
            "tables": dict(audit.deleted),
            "key_id": audit.key_id,
            "dry_run": audit.dry_run,
        },
        findings=tuple(findings),
    )
