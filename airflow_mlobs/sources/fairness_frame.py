"""Fairness counts joined in memory: the same :class:`~airflow_mlobs.core.fairness.FairnessSummary`
as :func:`airflow_mlobs.sources.fairness_sql.fairness_summary_sql`, by reusing the performance
check's in-memory join
(:func:`airflow_mlobs.sources.performance_frame.performance_summary_join`) with each attribute as
the segment column; and :func:`fairness_summary_rows` for plain rows already in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.fairness import NULL_GROUP, FairnessSummary, GroupCounts
from airflow_mlobs.core.performance.summary import Summary
from airflow_mlobs.sources.fairness_sql import fairness_query, summary_from_segments
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import PerformanceQuery, class_text


def fairness_summary_join(
    predictions: Engine | str | Path,
    labels: Engine | str | Path,
    query: PerformanceQuery,
    group_columns: Sequence[str],
) -> FairnessSummary:
    """The window's fairness counts per attribute, joined in memory."""
    if not group_columns:
        raise SourceError("give at least one group column")
    per: dict[str, dict[str, Summary]] = {}
    for attribute in group_columns:
        _, segments, _ = performance_summary_join(predictions, labels, fairness_query(query, attribute))
        per[attribute] = segments
    return summary_from_segments(per, query.source.predicted_column is None)


def fairness_summary_rows(
    rows: Iterable[Mapping[str, Any]],
    group_columns: Sequence[str],
    predicted: str = "predicted",
    label: str = "label",
) -> FairnessSummary:
    """Counts from rows holding the predicted class (0/1) and the label (0/1, or ``None`` for not
    yet labelled) and the group columns (``None`` is the group ``"(none)"``)."""
    out: dict[str, dict[str, GroupCounts]] = {a: {} for a in group_columns}
    for row in rows:
        yhat = int(row[predicted])
        y = row.get(label)
        for attribute in group_columns:
            value = row.get(attribute)
            g = NULL_GROUP if value is None else class_text(value)
            cell = GroupCounts(
                n=1,
                selected=yhat,
                tp=int(y is not None and y == 1 and yhat == 1),
                fp=int(y is not None and y == 0 and yhat == 1),
                tn=int(y is not None and y == 0 and yhat == 0),
                fn=int(y is not None and y == 1 and yhat == 0),
            )
            out[attribute][g] = out[attribute].get(g, GroupCounts()) + cell
    return FairnessSummary(out)
