"""``erase``: remove a person's rows from the prediction log and labels, and store the audit record.

The one code path of an erasure request, used by :class:`~airflow_mlobs.operators.retention.ErasureOperator`
and ``python -m airflow_mlobs erase``. Airflow-free: it takes SQLAlchemy engines (the operator and
the CLI build them from connections or URLs) and an already-resolved pseudonym key.

The audit record (``mlobs_erasures`` in the results history) holds no personal data: when, who
asked (a user, or the DAG run), the reason text given, how many ids were asked for, rows deleted per
table and the pseudonym key's fingerprint (``key_id``), never an id or a pseudonym. Rerun-safe: a
second erasure of the same ids deletes 0 rows and records that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from airflow_mlobs.core.privacy import PseudonymKey, id_text, is_pseudonym
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.retention import ErasureAudit, clean_ids, erasure_result
from airflow_mlobs.sources.retention_sql import ErasureTarget, erase_subjects
from airflow_mlobs.store import ResultsStore


def needs_key(target: ErasureTarget, ids: Iterable[Any]) -> bool:
    """Whether erasing ``ids`` from ``target`` needs the pseudonym key: a pseudonymised column and
    at least one id given raw (ids given as pseudonyms need no key)."""
    return target.needs_key() and any(not is_pseudonym(id_text(value)) for value in ids)


def erase(
    subject_ids: Iterable[Any] | str,
    *,
    engine: Engine,
    target: ErasureTarget,
    store: ResultsStore,
    key: PseudonymKey | Callable[[], PseudonymKey] | None = None,
    requested_by: str | None = None,
    reason: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    dry_run: bool = False,
    dataset: str | None = None,
) -> tuple[ErasureAudit, CheckResult]:
    """Delete the rows of ``subject_ids`` (raw or pseudonymised, see :class:`ErasureTarget`) from
    ``target`` on ``engine``, labels before predictions, and store the audit record in ``store``.

    ``key`` is the pseudonym key, or a function returning it (called only when a raw id must be
    turned into a pseudonym, so a missing key fails only erasures that need it). Returns the
    stored audit record and the ``erasure`` result. Bad input (no ids, a missing table or column, no
    key for a pseudonymised column) raises ``MlobsInputError`` naming it, before anything is
    deleted or recorded."""
    ids = clean_ids(subject_ids)
    resolved: PseudonymKey | None = None
    if needs_key(target, ids):
        resolved = key() if callable(key) else key
    elif isinstance(key, PseudonymKey):
        resolved = key
    deletions = erase_subjects(engine, target, ids, key=resolved, dry_run=dry_run)
    audit = ErasureAudit(
        erased_at=datetime.now(UTC),
        ids_requested=len(ids),
        deleted={d.table: d.rows for d in deletions},
        requested_by=requested_by,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        reason=reason,
        key_id=resolved.key_id if resolved is not None else None,
        dry_run=dry_run,
    )
    store.record_erasure(audit)
    result = erasure_result(dataset or target.table, audit, {d.table: d.column for d in deletions})
    return audit, result
