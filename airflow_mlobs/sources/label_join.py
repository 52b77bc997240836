"""Which label source a pushed-down performance check joins: the reduced label table
(:mod:`airflow_mlobs.sources.label_table`, one row per prediction id) when it answers the window's
cut-off exactly, else the label table with today's statement (:mod:`.performance_sql`).

The reduced table answers exactly (the same cells as the full statement) when
:func:`~airflow_mlobs.sources.label_table.label_table_state` says so for the cut-off (every label at
or before it, the table fresh, no NULL label rows) and the rule is ``duplicate_labels="latest"``
(the table keeps the latest label). A backfill with an older cut-off, labels written since the
last refresh, or ``"earliest"`` take the full statement, and :class:`LabelPath` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import to_naive_in
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.label_table import LabelTableSpec, LabelTableState, label_table_state
from airflow_mlobs.sources.performance_sql import PerformanceQuery, TableCatalog
from airflow_mlobs.sources.sqlkit import db_message

#: ``reduced_labels_table="auto"``: the table ``<labels table>`` + this suffix, when it exists.
REDUCED_SUFFIX = "_reduced"


@dataclass(frozen=True)
class LabelPath:
    """Where one check's labels come from: ``reduced`` (the reduced table joined, or ``None`` for
    the label table with the full statement) and ``reason`` (text for the result)."""

    reduced: TableRef | None
    reason: str
    #: Whether the result names the path: a reduced table used or refused; not a table that was
    #: never built under ``"auto"``, nor ``None`` (the check's result is then as without the option).
    notable: bool = True

    def to_metrics(self) -> dict[str, Any]:
        """The result's ``metrics["label_source"]``: ``reduced_table`` (its name, or ``None`` for
        the label table) and ``reason``."""
        return {
            "reduced_table": None if self.reduced is None else str(self.reduced),
            "reason": self.reason,
        }

    def on_result(self, result: CheckResult) -> CheckResult:
        """``result`` with ``metrics["label_source"]`` and the reason in its summary, when notable."""
        if not self.notable:
            return result
        return replace(
            result,
            summary=f"{result.summary}; {self.reason}",
            metrics={**result.metrics, "label_source": self.to_metrics()},
        )


def reduced_table_spec(query: PerformanceQuery, reduced: str) -> LabelTableSpec:
    """The :class:`LabelTableSpec` of the reduced table ``reduced`` (same schema as the label table)
    of ``query``'s labels."""
    source = query.source
    return LabelTableSpec(
        labels=source.labels.name,
        id_column=source.label_id,
        label_column=source.label_column,
        label_time_column=source.label_time_column,
        reduced=reduced,
        schema=source.labels.schema,
    )


def reduced_label_state(engine: Engine, query: PerformanceQuery, reduced: str) -> LabelTableState:
    """Whether the reduced table ``reduced`` gives the same summary as the full statement for
    ``query``: rule ``"latest"`` and :func:`label_table_state` at the window's cut-off (expressed
    in the label time column's convention: naive wall-clock time in ``query.zone`` for a column
    without time zone)."""
    if query.earliest():
        return LabelTableState(
            False, f"duplicate_labels='earliest': the reduced table {reduced} keeps the latest label"
        )
    cutoff: Any = query.window.label_cutoff
    catalog = TableCatalog(engine, query.source.labels)
    catalog.get(query.source.label_time_column, "label time")
    if catalog.naive(query.source.label_time_column):
        cutoff = to_naive_in(cutoff, query.zone)
    try:
        return label_table_state(engine, reduced_table_spec(query, reduced), cutoff)
    except SQLAlchemyError as exc:
        return LabelTableState(False, f"reduced label table {reduced} could not be read: {db_message(exc)}")


def choose_label_path(engine: Engine, query: PerformanceQuery, reduced_labels_table: str | None) -> LabelPath:
    """The label source for ``query`` (``reduced_labels_table``: ``"auto"``, a table name, or
    ``None``). ``"auto"``: ``<labels table>_reduced`` when it exists and answers the cut-off, else the
    full statement; a name: that table, and a ``SourceError`` naming it and why when it cannot
    answer; ``None``: always the full statement."""
    labels = query.source.labels
    if reduced_labels_table is None:
        return LabelPath(None, "labels from the label table (reduced_labels_table=None)", notable=False)
    explicit = reduced_labels_table != "auto"
    name = reduced_labels_table if explicit else labels.name + REDUCED_SUFFIX
    state = reduced_label_state(engine, query, name)
    table = TableRef(name, labels.schema)
    if state.usable:
        return LabelPath(table, f"labels from the reduced table {table} (watermark {state.watermark})")
    if explicit:
        raise SourceError(
            f"reduced_labels_table {table} cannot answer the cut-off "
            f"{query.window.label_cutoff.isoformat()}: {state.reason}; "
            "refresh it (LabelTableOperator) or pass reduced_labels_table='auto' to fall back"
        )
    return LabelPath(
        None,
        f"labels from the label table {labels}; reduced table not used: {state.reason}",
        notable=not state.reason.startswith("no reduced label table"),
    )
