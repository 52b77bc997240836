"""Breaches that ``on_breach="continue"`` let through, made visible in the Airflow grid.

A check with ``on_breach="continue"`` succeeds on a ``fail`` result so that a downstream gate can
decide; its task is green like a pass. Airflow 3.3 gives a running task no way to say more than
its state: the execution API that tasks talk to sets states, XComs and the mapped-task label (shown
for mapped tasks only), not notes; a custom state or colour does not exist; ``skipped`` would
claim the check did not run and skip downstream tasks. So the breach goes where the grid does show
more than a state: the **task-instance note** (the grid marks a task instance that has one; the
task instance's page and the REST API show its text).

Notes are written with database access, by this module as an Airflow *listener* on the end of a DAG
run (``on_dag_run_success`` / ``on_dag_run_failed``, called by the scheduler, and by ``airflow dags
test``, in the session that finishes the run): for every task instance of the run that ended
``success`` while its pushed result (XCom ``return_value``) says ``fail``, the note becomes
``ML observability: fail (on_breach='continue'): <summary>``. A note someone wrote by hand is never
replaced. The ML observability plugin (``airflow_mlobs.ui.plugin``) registers the listener
(``listeners = [airflow_mlobs.breach_notes]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.listeners import hookimpl

#: Every note this module writes starts so (and only such notes are ever replaced).
NOTE_PREFIX = "ML observability: "
#: The longest note written (the summary is cut to fit).
MAX_NOTE = 1000
_RESULT_KEYS = ("schema_version", "check", "status", "summary")


def breach_note(value: Any) -> str | None:
    """The note for a task that succeeded with the pushed result ``value`` (the compact form of a
    :class:`~airflow_mlobs.core.result.CheckResult`): a ``fail`` result gives
    ``ML observability: fail (on_breach='continue'): <summary>``; anything else (a pass or warn, an
    XCom that is not a check result) gives ``None``."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping) or any(key not in value for key in _RESULT_KEYS):
        return None
    if value.get("status") != "fail":
        return None
    note = f"{NOTE_PREFIX}fail (on_breach='continue'): {value.get('summary')}"
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 3] + "..."


def annotate_run(dag_run: Any, session: Any = None) -> int:
    """Write the breach notes of ``dag_run``'s task instances (see the module docstring); returns
    how many were written. ``session`` defaults to the one ``dag_run`` belongs to (the scheduler's,
    so the notes commit with the run's new state), else a session of its own (``dags test`` hands
    listeners a detached run)."""
    import sqlalchemy as sa

    if session is None:
        session = sa.orm.object_session(dag_run)
    if session is None:
        from airflow.utils.session import create_session

        with create_session() as own:
            return annotate_run(dag_run, own)
    return _annotate(dag_run, session)


def _annotate(dag_run: Any, session: Any) -> int:
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.state import TaskInstanceState

    rows = session.execute(
        sa.select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == "return_value",
        )
    ).all()
    written = 0
    for task_id, map_index, value in rows:
        note = breach_note(value)
        if note is None:
            continue
        ti = session.scalar(
            sa.select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        )
        if ti is None or ti.state != TaskInstanceState.SUCCESS:
            continue
        if ti.note and not str(ti.note).startswith(NOTE_PREFIX):
            continue  # a person's note stays
        if ti.note != note:
            ti.note = note
            written += 1
    if written:
        session.flush()
    return written


def _annotate_quietly(dag_run: Any) -> None:
    import logging

    try:
        annotate_run(dag_run)
    except Exception:  # a note is never worth failing the scheduler's loop
        logging.getLogger(__name__).warning("could not write breach notes", exc_info=True)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """Listener: a finished run's continued breaches get their notes."""
    _annotate_quietly(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """Listener: as :func:`on_dag_run_success` (a run can fail elsewhere and still hold a continued
    breach)."""
    _annotate_quietly(dag_run)
