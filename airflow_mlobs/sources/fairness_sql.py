"""Fairness counts pushed down, by reusing the performance check's prediction-label join.

For each group attribute, :func:`airflow_mlobs.sources.performance_sql.performance_summary_sql` runs
once with that attribute as the segment column: one aggregate statement joining the window's
predictions with their labels by the cut-off, ``GROUP BY`` the attribute (and the label state and
the confusion cell), through the engine's dialect object. Only aggregate rows are fetched. The
per-segment :class:`~airflow_mlobs.core.performance.summary.ClassificationSummary` becomes the
group's :class:`~airflow_mlobs.core.fairness.GroupCounts` (:func:`group_counts`): ``n`` the
predictions with a predicted class (those with a valid score when the score decides), ``selected``
the predicted positives, and the confusion counts of the labelled ones. Predictions with no label
yet count in ``n`` and ``selected`` only, so the selection-rate part is judged the same day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.engine import Engine

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.fairness import FairnessSummary, GroupCounts
from airflow_mlobs.core.performance.summary import ClassificationSummary, Summary
from airflow_mlobs.sources.performance_sql import PerformanceQuery, performance_summary_sql
from airflow_mlobs.sources.sqlkit import QueryStats


def group_counts(summary: Summary, score_decides: bool) -> GroupCounts:
    """A segment's classification summary as fairness counts (module docstring)."""
    if not isinstance(summary, ClassificationSummary):
        raise SourceError("the fairness check needs a binary classification (task='classification')")
    n = summary.scored if score_decides else summary.coverage.predictions
    return GroupCounts(
        n=n,
        selected=summary.predicted_positive_all,
        tp=summary.tp,
        fp=summary.fp,
        tn=summary.tn,
        fn=summary.fn,
    )


def fairness_query(query: PerformanceQuery, attribute: str) -> PerformanceQuery:
    """``query`` segmented by ``attribute``, without the orphan count (not a fairness matter) and
    with one score bin (the score histograms are not needed, so the statement returns at most
    ``groups x 3 label states x 2 x 2`` rows)."""
    return replace(query, source=replace(query.source, segment_column=attribute), count_orphans=False, bins=1)


def summary_from_segments(
    per_attribute: dict[str, dict[str, Summary]], score_decides: bool
) -> FairnessSummary:
    return FairnessSummary(
        {
            attribute: {g: group_counts(s, score_decides) for g, s in segments.items()}
            for attribute, segments in per_attribute.items()
        }
    )


def fairness_summary_sql(
    engine: Engine, query: PerformanceQuery, group_columns: Sequence[str]
) -> tuple[FairnessSummary, QueryStats]:
    """The window's fairness counts per attribute, pushed down (one statement per attribute)."""
    if not group_columns:
        raise SourceError("give at least one group column")
    per: dict[str, dict[str, Summary]] = {}
    statements = rows = 0
    for attribute in group_columns:
        _, segments, stats = performance_summary_sql(engine, fairness_query(query, attribute))
        per[attribute] = segments
        statements += stats.statements
        rows += stats.rows_fetched
    score_decides = query.source.predicted_column is None
    return summary_from_segments(per, score_decides), QueryStats(statements=statements, rows_fetched=rows)
