"""Retention and erasure: ``RetentionOperator`` (delete rows older than ``keep``) and
``ErasureOperator`` (delete one person's rows on request), each storing what it deleted as a result.

The deletions are :mod:`airflow_mlobs.sources.retention_sql` and
:meth:`airflow_mlobs.store.ResultsStore.purge_before`; the erasure path is
:func:`airflow_mlobs.erasure.erase`; the definitions and results are :mod:`airflow_mlobs.core.retention`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected, pseudonym_key, results_engine
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import id_text
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.retention import (
    DEFAULT_BATCH_SIZE,
    ERASURE_CHECK,
    RETENTION_CHECK,
    RetentionTarget,
    TableDeletion,
    as_target,
    check_batch_size,
    clean_ids,
    parse_keep,
    retention_cutoff,
    retention_result,
)
from airflow_mlobs.operators.base import BaseCheckOperator, resolve_as_of
from airflow_mlobs.sources.retention_sql import ErasureTarget, dated_table, delete_before
from airflow_mlobs.store import ResultsStore

if TYPE_CHECKING:
    from airflow.sdk import Context

TargetArg = RetentionTarget | Mapping[str, Any] | Sequence[str]


class RetentionOperator(BaseCheckOperator):
    """Delete rows older than ``keep`` from tables on ``conn_id`` and from the results history.

    The cutoff is ``keep`` back from the run's ``data_interval_end`` (else its logical date; override
    with ``as_of``), so a rerun of the same run finds nothing more to delete and reports 0. Rows
    are deleted in batches of about ``batch_size``, each in its own transaction
    (:func:`~airflow_mlobs.sources.retention_sql.delete_before`). The result (check ``retention``,
    status ``pass``) has one finding per table with the rows deleted and the cutoff; a missing
    table or column is an ``error`` result naming it.

    :param keep: how long rows are kept: a ``timedelta`` or text like ``"90d"``. Templated.
    :param conn_id: Airflow connection of the database holding ``tables``. Templated.
    :param tables: the tables to age: dicts ``{"table": ..., "timestamp_column": ...,
        "timestamp_timezone": "UTC"}`` or ``(table, timestamp_column)`` pairs (the prediction log,
        the labels, ...). Rows with a NULL timestamp are never deleted.
    :param results_history: also age the results history's own tables (results and profiles by
        ``window_end``, deliveries by ``recorded_at``, alert state by ``updated_at`` except open
        incidents; see :meth:`~airflow_mlobs.store.ResultsStore.purge_before`). Default True.
    :param batch_size: rows per delete statement (default 10,000).
    :param count_only: a dry run: count what would be deleted, delete nothing. Templated.
    :param as_of: the moment ``keep`` is measured back from (datetime or ISO text). Templated.

    And ``dataset`` (default ``retention:<conn_id>``), ``results_conn_id``, ``on_breach``,
    ``notify`` from :class:`BaseCheckOperator`.
    """

    check_name = RETENTION_CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "keep",
        "conn_id",
        "as_of",
        "count_only",
    )
    ui_color = "#f3e8e8"

    def __init__(
        self,
        *,
        keep: timedelta | str | float,
        conn_id: str | None = None,
        tables: Sequence[TargetArg] = (),
        results_history: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        count_only: bool | str = False,
        as_of: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep = keep
        self.conn_id = conn_id
        self.tables = list(tables)
        self.results_history = results_history
        self.batch_size = batch_size
        self.count_only = count_only
        self.as_of = as_of
        # Literal arguments are checked here, so a wrong DAG fails to import instead of every run.
        try:
            if not (isinstance(keep, str) and "{{" in keep):
                parse_keep(keep)
            targets = [as_target(t) for t in self.tables]
            check_batch_size(batch_size)
        except MlobsInputError as exc:
            raise ValueError(f"{self.task_id}: {exc}") from exc
        if targets and not conn_id:
            raise ValueError(f"{self.task_id}: tables={[t.table for t in targets]} need conn_id")
        if not targets and not results_history:
            raise ValueError(
                f"{self.task_id}: nothing to age: give tables (with conn_id) or results_history=True"
            )

    def dataset_name(self) -> str:
        """``dataset``, else ``retention:<conn_id>`` (``retention:results`` for the history alone)."""
        return self.dataset or f"retention:{self.conn_id or 'results'}"

    def evaluate(self, context: Context) -> CheckResult:
        """Delete (or count) the rows before the cutoff in every table, then in the history."""
        keep = parse_keep(self.keep)
        as_of = resolve_as_of(context, self.as_of)
        cutoff = retention_cutoff(as_of, keep)
        dry_run = _as_bool(self.count_only, "count_only")
        deletions: list[TableDeletion] = []
        targets = [as_target(t) for t in self.tables]
        if targets:
            assert self.conn_id is not None
            with connected(self.conn_id) as engine:
                # Every table is checked before any is touched: a typo in the last one must not
                # leave the first ones aged and the run failed.
                dated = [
                    dated_table(engine, t.table, t.timestamp_column, t.timestamp_timezone) for t in targets
                ]
                for table in dated:
                    deletions.append(
                        delete_before(engine, table, cutoff, batch_size=self.batch_size, dry_run=dry_run)
                    )
                    self.log.info("%s: %s row(s)", table.name, deletions[-1].rows)
        if self.results_history:
            engine = results_engine(self.results_conn_id)
            try:
                deletions += ResultsStore(engine).purge_before(
                    cutoff, batch_size=self.batch_size, dry_run=dry_run
                )
            finally:
                engine.dispose()
        return retention_result(
            self.dataset_name(), keep=keep, as_of=as_of, cutoff=cutoff, deletions=deletions, dry_run=dry_run
        )


class ErasureOperator(BaseCheckOperator):
    """Delete one or more people's rows from the prediction log and its labels (an erasure request),
    and store an audit record without personal data (``mlobs_erasures``).

    ``subject_ids`` are raw ids or pseudonyms (``ps_`` + 32 hex digits); for a pseudonymised column a
    raw id is turned into its keyed pseudonym with the key from ``key_conn_id`` (its password) or
    the ``MLOBS_PSEUDONYM_KEY`` environment variable. The labels of the subjects' predictions are
    deleted before the predictions. Rerun-safe: a second run deletes 0 rows and records that. The
    result (check ``erasure``) names tables and counts only; the ids never appear in it or in the log.

    :param subject_ids: the ids: a list, or text split on commas and whitespace. Templated, e.g.
        ``"{{ dag_run.conf['subject_ids'] | join(',') }}"``.
    :param conn_id: Airflow connection of the prediction log. Templated.
    :param table: the prediction log table. Templated.
    :param subject_column: its column identifying the person (e.g. ``customer_id``).
    :param pseudonymized: whether the subject columns hold keyed pseudonyms (``True``), or the
        names of the columns that do.
    :param labels_table: the label table, if any. Templated.
    :param labels_prediction_column: the labels' column holding the prediction id (default
        ``prediction_id``); ``prediction_id_column`` is the prediction log's (default the same name).
    :param labels_subject_column: delete labels by their own subject column instead.
    :param key_conn_id: Airflow connection whose password is the pseudonym key.
    :param reason: why (a ticket, a request reference); stored in the audit record. Templated.
    :param requested_by: who asked; default the user who triggered the run, else the DAG. Templated.
    :param count_only: a dry run: count what would be deleted, delete nothing
        (still audited, as a dry run). Templated.
    """

    check_name = ERASURE_CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "subject_ids",
        "conn_id",
        "table",
        "labels_table",
        "reason",
        "requested_by",
        "count_only",
    )
    ui_color = "#f3e8e8"

    def __init__(
        self,
        *,
        subject_ids: Sequence[Any] | str,
        conn_id: str,
        table: str,
        subject_column: str,
        pseudonymized: bool | Sequence[str] = False,
        labels_table: str | None = None,
        labels_prediction_column: str = "prediction_id",
        prediction_id_column: str | None = None,
        labels_subject_column: str | None = None,
        key_conn_id: str | None = None,
        reason: str | None = None,
        requested_by: str | None = None,
        count_only: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject_ids = subject_ids
        self.conn_id = conn_id
        self.table = table
        self.subject_column = subject_column
        self.pseudonymized = pseudonymized if isinstance(pseudonymized, bool) else tuple(pseudonymized)
        self.labels_table = labels_table
        self.labels_prediction_column = labels_prediction_column
        self.prediction_id_column = prediction_id_column
        self.labels_subject_column = labels_subject_column
        self.key_conn_id = key_conn_id
        self.reason = reason
        self.requested_by = requested_by
        self.count_only = count_only
        if not subject_column:
            raise ValueError(f"{self.task_id}: subject_column must name the column identifying a person")

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render, then register each subject id with Airflow's secrets masker, so the ids are
        ``***`` in the rendered fields Airflow stores (and shows under "Rendered Template") and in
        the task log. Airflow does not mask values shorter than ``[logging]
        min_length_masked_secret`` (5); ``dag_run.conf`` itself stays as triggered."""
        super().render_template_fields(context, jinja_env)
        try:
            ids = clean_ids(self.subject_ids)
        except MlobsInputError:
            return  # no ids: evaluate reports it
        from airflow.sdk.log import mask_secret

        for value in ids:
            mask_secret(id_text(value))

    def dataset_name(self) -> str:
        """``dataset``, else ``<conn_id>:<table>``."""
        return self.dataset or f"{self.conn_id}:{self.table}"

    def target(self) -> ErasureTarget:
        """The rendered arguments as an :class:`ErasureTarget`."""
        return ErasureTarget(
            table=self.table,
            subject_column=self.subject_column,
            pseudonymized=self.pseudonymized,
            labels_table=self.labels_table or None,
            labels_prediction_column=self.labels_prediction_column,
            prediction_id_column=self.prediction_id_column,
            labels_subject_column=self.labels_subject_column,
        )

    def evaluate(self, context: Context) -> CheckResult:
        """Erase, store the audit record, and return the ``erasure`` result."""
        from airflow_mlobs.erasure import erase

        ti = context["ti"]
        dag_run = context.get("dag_run")
        requested_by = (
            self.requested_by or getattr(dag_run, "triggering_user_name", None) or f"dag {ti.dag_id}"
        )
        with connected(self.conn_id) as engine:
            results = results_engine(self.results_conn_id)
            try:
                audit, result = erase(
                    self.subject_ids,
                    engine=engine,
                    target=self.target(),
                    store=ResultsStore(results),
                    key=lambda: pseudonym_key(conn_id=self.key_conn_id),
                    requested_by=requested_by,
                    reason=self.reason or None,
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    dry_run=_as_bool(self.count_only, "count_only"),
                    dataset=self.dataset_name(),
                )
            finally:
                results.dispose()
        self.log.info(
            "Erasure audit: %d id(s) asked, %d row(s) deleted", audit.ids_requested, audit.rows_deleted
        )
        return result


def _as_bool(value: bool | str, name: str) -> bool:
    """A boolean argument that may have been rendered from a template (``"True"``, ``"false"``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "none"):
        return False
    raise MlobsInputError(f"{name}: expected true or false, got {value!r}")
