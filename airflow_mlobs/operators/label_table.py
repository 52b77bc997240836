"""``LabelTableOperator``: keep the reduced label table beside a label table, so that
``PerformanceCheckOperator`` joins it with a plain hash join (``reduced_labels_table="auto"``).

The table and its upkeep are :mod:`airflow_mlobs.sources.label_table`
(:func:`~airflow_mlobs.sources.label_table.keep_label_table`); this module turns the arguments into
its spec and stores what it did as a result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.operators.base import BaseCheckOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The check name of the upkeep's stored results.
LABEL_TABLE_CHECK = "label_table"


class LabelTableOperator(BaseCheckOperator):
    """Build or refresh the reduced label table of ``labels_table`` on ``conn_id``: one row per
    prediction id with its winning label (the latest label time, ties the larger label: the
    performance check's ``duplicate_labels="latest"``), that label's time and the id's label count.

    Each run refreshes only the ids labelled after the table's watermark (its latest label time)
    when the label table only grew by such labels, and rebuilds it otherwise (no table yet, a
    backdated or deleted label, or ``rebuild=True``). Labels updated in place are not seen: use
    ``rebuild=True`` for a label table that is not append-only. Schedule it before the performance
    check (same DAG, upstream of it, or on the label loader's schedule): the check uses the table
    only while it is fresh and every label is at or before the window's cut-off, and otherwise
    falls back to joining the label table (and says so).

    The result (check ``label_table``, status ``pass``) says whether it was rebuilt or refreshed,
    why, how many ids were recomputed, the watermark and the label rows; a missing table or column
    is an ``error`` naming it.

    :param conn_id: Airflow SQL connection of the label table. Templated.
    :param labels_table: the label table (``schema.table``; default ``mlobs_labels``, as
        :class:`~airflow_mlobs.recorder.PredictionLogger` writes it). Templated.
    :param reduced_table: the reduced table, in the label table's schema (default
        ``<labels_table>_reduced``, the name ``PerformanceCheckOperator(reduced_labels_table="auto")``
        looks for); a bookkeeping table ``<reduced_table>_meta`` goes beside it. Templated.
    :param id_column, label_column, label_time_column: the label table's prediction id, label and
        label time (defaults ``prediction_id``, ``label``, ``labelled_at``).
    :param rebuild: always rebuild from the whole label table.
    """

    check_name = LABEL_TABLE_CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "conn_id",
        "labels_table",
        "reduced_table",
    )

    def __init__(
        self,
        *,
        conn_id: str,
        labels_table: str = "mlobs_labels",
        reduced_table: str | None = None,
        id_column: str = "prediction_id",
        label_column: str = "label",
        label_time_column: str = "labelled_at",
        rebuild: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not conn_id:
            raise ValueError(f"{self.task_id}: give conn_id (the label table's connection)")
        self.conn_id = conn_id
        self.labels_table = labels_table
        self.reduced_table = reduced_table
        self.id_column = id_column
        self.label_column = label_column
        self.label_time_column = label_time_column
        self.rebuild = rebuild

    def dataset_name(self) -> str:
        """``dataset``, else ``conn_id:labels_table``."""
        return self.dataset or f"{self.conn_id}:{self.labels_table}"

    def evaluate(self, context: Context) -> CheckResult:
        """Refresh or rebuild the reduced table (:func:`~airflow_mlobs.sources.label_table.keep_label_table`)."""
        from airflow_mlobs.core.types import parse_table_name
        from airflow_mlobs.sources.label_join import REDUCED_SUFFIX
        from airflow_mlobs.sources.label_table import LabelTableSpec, keep_label_table

        labels = parse_table_name(self.labels_table)
        spec = LabelTableSpec(
            labels=labels.name,
            id_column=self.id_column,
            label_column=self.label_column,
            label_time_column=self.label_time_column,
            reduced=self.reduced_table or labels.name + REDUCED_SUFFIX,
            schema=labels.schema,
        )
        with connected(self.conn_id) as engine:
            done = keep_label_table(engine, spec, rebuild=self.rebuild)
        reduced = f"{labels.schema}.{spec.reduced}" if labels.schema else spec.reduced
        ids = "every id" if done.ids is None else f"{done.ids} ids"
        text = (
            f"reduced label table {reduced} {done.action} ({done.why}; {ids}): "
            f"{done.source_rows} label rows up to {done.watermark}"
        )
        self.log.info(text)
        metrics = {
            "reduced_table": reduced,
            "action": done.action,
            "reason": done.why,
            "ids_recomputed": done.ids,
            "label_rows": done.source_rows,
            "watermark": None if done.watermark is None else str(done.watermark),
        }
        return CheckResult(
            check=LABEL_TABLE_CHECK,
            dataset=self.dataset_name(),
            status=Status.PASS,
            summary=text,
            metrics=metrics,
            findings=(Finding(reduced, done.action, Status.PASS, done.source_rows, None, text),),
        )
