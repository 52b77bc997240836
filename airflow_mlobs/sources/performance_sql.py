"""Delayed-label performance pushed down: join the prediction log with the label table and aggregate
in the database, in one statement. Only aggregate rows cross the wire.

The statement (PostgreSQL, SQLite 3.30+; any database with window functions and ``FILTER``):

1. ``p``: the window's predictions (``prediction_start <= time < prediction_end``, optionally one
   model version);
2. each prediction once, with its winning label (labels at or before the cut-off first, then the
   latest label time, then the larger label; with ``duplicate_labels="earliest"`` the earliest label
   time instead, then the larger label), or none, or only a late one, and the number of its labels
   by the cut-off (duplicates). Two formulations (:func:`performance_statement`):

   * *grouped* (classification): ``p LEFT JOIN labels ... GROUP BY`` the prediction's columns, no
     window function. The winner's class is read off aggregates: the latest in-time label time
     ``t = max(label_time) FILTER (label_time <= cutoff)``; the winner is the positive class when
     ``max(label_time) FILTER (in time AND label = positive) = t`` and no label ``> positive`` (nor,
     in PostgreSQL, a NULL label) has time ``t``. ``count(label_time) FILTER (in time)`` counts
     duplicates; LATE is ``max(label_time) IS NOT NULL`` without an in-time label. The per-prediction
     expressions (score bin, confidence, log-loss term) are the aggregate's projection, computed
     once per prediction;
   * *ranked* (multi-class, regression): each joined row ranked per prediction by ``ROW_NUMBER()``
     in that order, ``COUNT() FILTER (label_time <= cutoff) OVER (PARTITION BY id)`` counting
     duplicates; only rank 1 is kept.

   Under ``"latest"`` both keep each dialect's NULL order of ``ORDER BY ... DESC``: in PostgreSQL a
   NULL label wins a tie with any label at the same time, and a label with a NULL time ranks above a
   late one (the prediction is then unlabelled, not LATE); in SQLite NULLs rank last.

   Under ``"earliest"`` the ranked order is ``label_time ASC NULLS LAST, label DESC NULLS LAST`` in
   every dialect (the dialects' defaults differ for ``ASC`` and for ``DESC``), so a label with a NULL
   time never decides (a late label makes the prediction LATE) and a NULL label never wins a tie with
   a label: the same as the in-memory join, in PostgreSQL and SQLite alike. The grouped statement
   mirrors it: ``t = min(label_time) FILTER (in time)``; positive when
   ``min(label_time) FILTER (in time AND label = positive) = t`` and no label ``> positive`` has time
   ``t``; LATE is ``max(label_time) IS NOT NULL`` without an in-time label, with no dialect special
   cases.

   Under either rule, log rows with the same prediction id are one prediction in both formulations
   (the grouped one keeps rows that differ in score, predicted class or segment apart);
3. ``GROUP BY segment, label state, y, ŷ, score bin`` for classification (confusion counts and score
   histograms at once, with the sums of the log-loss terms and of the scores),
   ``GROUP BY segment, label state, label, predicted class`` for multi-class (the confusion matrix
   as counts; classes become canonical text in Python), or ``GROUP BY segment, label state`` with
   the regression sums;
4. ``UNION ALL`` one row counting the labels that arrived in ``(arrivals_start, cutoff]`` for a
   prediction id the log does not have (``NOT EXISTS``), and for a binary classification one row
   counting the NULL labels by the cut-off of the window's predictions (``EXISTS``): there a NULL
   label is no label, left out of the join (neither labelled nor negative).

At most ``segments x 3 states x 2 x 2 x bins`` rows for classification (in practice about
``segments x 2 x bins``), ``segments x 3`` for regression.

Every database difference (the score bin's floor, the NULL order of ``DESC``, the session's planner
settings before the statement, :func:`session_purpose`) is asked of the engine's dialect object
(:mod:`airflow_mlobs.sources.dialect`). Why the grouped formulation, and what is left of the gap to
a bare join: ``benchmarks/README.md`` (performance section).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.selectable import NamedFromClause

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.performance.summary import (
    HUGE,
    LOG_LOSS_EPS,
    ClassificationSummary,
    MulticlassSummary,
    RegressionSummary,
    Summary,
)
from airflow_mlobs.core.performance.window import Coverage, PerformanceWindow
from airflow_mlobs.core.performance_settings import (
    DEFAULT_BINS,
    DuplicateLabels,
    Task,
    check_duplicate_labels,
)
from airflow_mlobs.core.timeutil import to_naive_in
from airflow_mlobs.core.types import NUMERIC_TYPES, TIME_TYPES, ColumnInfo, LogicalType, TableRef
from airflow_mlobs.sources.dberrors import source_failure, unsupported_dialect
from airflow_mlobs.sources.dialect import QueryPurpose, SqlDialect, database_name, dialect_for
from airflow_mlobs.sources.sqlkit import DOUBLE, MAX_FLOAT, QueryStats, catalog_columns, db_message

#: How each prediction's winning label is found (see :func:`performance_statement`).
Formulation = Literal["auto", "grouped", "ranked"]

#: Label states of a prediction: no label at all, labelled by the cut-off, labelled only after it.
NO_LABEL, LABELLED, LATE = 0, 1, 2
_ORPHANS = -1
_NULL_LABELS = -2
_UNIDENTIFIED = -3
_REPEATED = -4
NO_SEGMENT = "(none)"


def class_text(value: Any) -> str:
    """A class value as canonical text (``1``, ``1.0`` -> ``"1"``; booleans ``"true"``/``"false"``),
    shared by the pushed-down and the in-memory multi-class paths."""
    from airflow_mlobs.core.types import category_text

    return category_text(value)


@dataclass(frozen=True)
class PerformanceSource:
    """Where the predictions and labels are, and which columns hold what.

    ``predicted_column`` holds the predicted class (compared with ``positive_label``); without it
    the predicted class is ``score >= threshold``. ``score_column`` holds the probability of the
    positive class (classification) or the predicted value (regression).
    """

    predictions: TableRef
    labels: TableRef
    id_column: str
    prediction_time_column: str
    label_column: str
    label_time_column: str
    score_column: str | None = None
    predicted_column: str | None = None
    label_id_column: str | None = None
    model_version_column: str | None = None
    segment_column: str | None = None

    @property
    def label_id(self) -> str:
        """The prediction id's column in the label table (``label_id_column``, else ``id_column``)."""
        return self.label_id_column or self.id_column


#: The sums of a classification cell (one aggregate row), named as the
#: :class:`~airflow_mlobs.core.performance.summary.ClassificationSummary` fields they add to.
CLASSIFICATION_SUMS = ("score_sum", "confidence_sum", "log_loss_sum", "log_loss_sumsq")
#: The sums of a regression row, named as the
#: :class:`~airflow_mlobs.core.performance.summary.RegressionSummary` fields they add to
#: (``count``: the labelled rows with a finite prediction and label).
REGRESSION_SUMS = (
    "count",
    "sum_abs_error",
    "sum_error",
    "sum_sq_error",
    "sum_quartic_error",
    "sum_y",
    "sum_sq_y",
    "sum_ape",
    "sum_sq_ape",
    "nonzero_labels",
    "zero_labels",
    "huge",
)
_INTEGER_SUMS = frozenset({"count", "nonzero_labels", "zero_labels", "huge"})


@dataclass(frozen=True)
class PerformanceQuery:
    """What one performance gather joins and summarises, built once and given to the pushed-down
    gatherer (:func:`performance_summary_sql`, :func:`performance_statement`) and the in-memory one
    (:func:`airflow_mlobs.sources.performance_frame.performance_summary_join`).

    ``source``: the tables and columns; ``window``: the predictions' window, the label cut-off and
    the arrivals window of the orphan count; ``task``; ``positive_label`` (the positive class of a
    binary classifier); ``threshold`` (without ``predicted_column`` the predicted class is
    ``score >= threshold``); ``model_version`` (with ``source.model_version_column``: judge one
    version only); ``naive_zone`` (the zone of timestamps without one, default UTC); ``bins`` (score
    histogram bins); ``count_orphans`` (count the labels for unknown prediction ids);
    ``duplicate_labels`` (which label by the cut-off wins).
    """

    source: PerformanceSource
    window: PerformanceWindow
    task: Task = "classification"
    positive_label: Any = 1
    threshold: float = 0.5
    model_version: str | None = None
    naive_zone: tzinfo | None = None
    bins: int = DEFAULT_BINS
    count_orphans: bool = True
    duplicate_labels: DuplicateLabels = "latest"

    @property
    def zone(self) -> tzinfo:
        """The zone of naive timestamps (``naive_zone``, default UTC)."""
        return self.naive_zone or UTC

    @property
    def uses_score(self) -> bool:
        """Whether the score column is read (multi-class reads the predicted class only)."""
        return self.source.score_column is not None and self.task != "multiclass"

    def earliest(self) -> bool:
        """Whether the ``"earliest"`` duplicate-label rule applies; ``SourceError`` for an unknown rule."""
        try:
            return check_duplicate_labels(self.duplicate_labels) == "earliest"
        except ValueError as exc:
            raise SourceError(str(exc)) from exc

    def check_columns(self) -> None:
        """``SourceError`` when the task lacks the column it needs (before any catalog read)."""
        source, task = self.source, self.task
        if task == "multiclass" and source.predicted_column is None:
            raise SourceError("a multiclass check needs predicted_column (the predicted class)")
        if (
            source.score_column is None
            and task != "multiclass"
            and (task == "regression" or source.predicted_column is None)
        ):
            raise SourceError(
                "give score_column (the predicted probability or value), or predicted_column for classification"
            )

    def for_reference(self, window: PerformanceWindow) -> PerformanceQuery:
        """The same query over a labelled reference ``window``: no segments, no orphan count."""
        return replace(
            self, source=replace(self.source, segment_column=None), window=window, count_orphans=False
        )


class TableCatalog:
    """Catalog columns of one table, with errors naming the table and what it has (shared by the
    pushed-down and the in-memory gatherers)."""

    def __init__(self, engine: Engine, table: TableRef) -> None:
        self.table = table
        self.columns: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]] = {
            info.name: (info, sql_type) for info, sql_type in catalog_columns(engine, table)
        }

    def get(self, name: str, role: str, kinds: tuple[LogicalType, ...] | None = None) -> ColumnInfo:
        found = self.columns.get(name)
        if found is None:
            raise SourceError(
                f"{role} column {name!r} not found in table {self.table}; it has: {', '.join(sorted(self.columns))}"
            )
        info = found[0]
        if kinds is not None and info.logical_type not in kinds:
            raise SourceError(
                f"{role} column {name!r} of table {self.table} is {info.physical_type}, "
                f"not {' or '.join(k.value for k in kinds)}"
            )
        return info

    def sa_table(self, names: set[str]) -> sa.TableClause:
        return sa.table(
            self.table.name,
            *(sa.column(n, self.columns[n][1]) for n in sorted(names)),
            schema=self.table.schema,
        )

    def naive(self, name: str) -> bool:
        info, sql_type = self.columns[name]
        return info.logical_type is LogicalType.DATE or not bool(getattr(sql_type, "timezone", False))


def unique_column(engine: Engine, table: TableRef, column: str) -> bool:
    """Whether the catalog declares ``column`` of ``table`` unique on its own (a one-column primary
    key, unique constraint or unique index); ``False`` when it does not say or cannot be read."""
    try:
        insp = sa.inspect(engine)
        if insp.get_pk_constraint(table.name, table.schema).get("constrained_columns") == [column]:
            return True
        if any(
            c.get("column_names") == [column] for c in insp.get_unique_constraints(table.name, table.schema)
        ):
            return True
        return any(
            bool(i.get("unique")) and i.get("column_names") == [column]
            for i in insp.get_indexes(table.name, table.schema)
        )
    except (SQLAlchemyError, NotImplementedError, AttributeError, TypeError):
        return False


def _bound(column: sa.ColumnElement[Any], naive: bool, zone: tzinfo, value: datetime, name: str) -> Any:
    """``value`` as a bind parameter in the column's own convention (naive wall-clock in ``zone``)."""
    bound = to_naive_in(value, zone) if naive else value
    return sa.bindparam(name, bound, type_=column.type)


def _score_bin(dialect: SqlDialect, s: sa.ColumnElement[Any], bins: int) -> sa.ColumnElement[int]:
    """``floor(s * bins)``, 1.0 in the last bin, -1 for NULL or outside [0, 1] (as ``score_bin``)."""
    valid = sa.and_(s >= 0.0, s <= 1.0)
    return sa.case((valid, dialect.floor_capped(s * float(bins), bins - 1)), else_=-1)


def performance_statement(
    engine: Engine,
    query: PerformanceQuery,
    *,
    formulation: Formulation = "auto",
    reduced: TableRef | None = None,
) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """The one statement of :func:`performance_summary_sql` (for EXPLAIN and the benchmark).

    ``formulation``: how each prediction's winning label is found (module docstring). ``"auto"``:
    ``"grouped"`` for classification, ``"ranked"`` (``ROW_NUMBER()``) for the other tasks; the
    ranked statement can be asked for a classification too (the tests compare the two).

    ``reduced``: the reduced label table of ``query.source.labels``
    (:mod:`airflow_mlobs.sources.label_table`: one row per id, ``lid``, ``label``, ``label_time``,
    ``n_labels``), to be used only where :func:`~airflow_mlobs.sources.label_join.reduced_label_state`
    says it answers the cut-off (every label is at or before it, none NULL, rule ``"latest"``). The
    winning label is then the reduced row itself: ``p LEFT JOIN reduced ON lid = pid``, a plain
    hash join with no per-prediction grouping or window function; every log row is
    judged (as in the in-memory join); state LABELLED when a row joined, else NO_LABEL (no label is
    late); ``n_labels`` counts duplicates. The same cell rows as the full statement, so the same
    summary; the orphan count still reads the label table (label rows in the arrivals window), the
    NULL-label count row is left out (there are none).
    """
    source, window, task = query.source, query.window, query.task
    positive_label, threshold, bins = query.positive_label, query.threshold, query.bins
    formulation = "ranked" if reduced is not None else _resolve(formulation, task)
    earliest = query.earliest()
    zone = query.zone
    preds_cat = TableCatalog(engine, source.predictions)
    labels_cat = preds_cat if source.labels == source.predictions else TableCatalog(engine, source.labels)
    label_id = source.label_id
    preds_cat.get(source.id_column, "prediction id")
    preds_cat.get(source.prediction_time_column, "prediction time", TIME_TYPES)
    query.check_columns()
    if query.uses_score:
        assert source.score_column is not None
        preds_cat.get(source.score_column, "score", NUMERIC_TYPES)
    if source.predicted_column is not None:
        preds_cat.get(source.predicted_column, "predicted class")
    if source.model_version_column is not None:
        preds_cat.get(source.model_version_column, "model version")
    if source.segment_column is not None:
        preds_cat.get(source.segment_column, "segment")
    labels_cat.get(label_id, "label id")
    labels_cat.get(source.label_time_column, "label time", TIME_TYPES)
    label_info = labels_cat.get(source.label_column, "label", NUMERIC_TYPES if task == "regression" else None)
    if label_info.logical_type is LogicalType.BOOLEAN:
        positive_label = positive_label in (True, 1, "1", "true", "True")

    pred_names = {
        c
        for c in (
            source.id_column,
            source.prediction_time_column,
            source.score_column,
            source.predicted_column,
            source.model_version_column,
            source.segment_column,
        )
        if c
    }
    preds = preds_cat.sa_table(pred_names)
    labels = labels_cat.sa_table({label_id, source.label_column, source.label_time_column})
    labels_alias = labels.alias("l")
    dialect = dialect_for(engine)
    pt = preds.c[source.prediction_time_column]
    p_conditions = [
        pt
        >= _bound(
            pt, preds_cat.naive(source.prediction_time_column), zone, window.prediction_start, "p_start"
        ),
        pt < _bound(pt, preds_cat.naive(source.prediction_time_column), zone, window.prediction_end, "p_end"),
    ]
    if source.model_version_column is not None and query.model_version is not None:
        p_conditions.append(
            preds.c[source.model_version_column] == sa.bindparam("model_version", query.model_version)
        )
    p_columns: list[sa.ColumnElement[Any]] = [preds.c[source.id_column].label("pid")]
    if query.uses_score:
        assert source.score_column is not None
        p_columns.append(sa.cast(preds.c[source.score_column], DOUBLE).label("score"))
    if source.predicted_column:
        p_columns.append(preds.c[source.predicted_column].label("predicted"))
    segment_expr: sa.ColumnElement[Any] = (
        sa.cast(preds.c[source.segment_column], sa.Text) if source.segment_column else sa.null()
    )
    p_columns.append(segment_expr.label("segment"))
    pid = preds.c[source.id_column]
    # A log row without an id joins nothing and is no prediction: left out, counted apart.
    unidentified = _count_row(_UNIDENTIFIED, sa.func.count()).where(*p_conditions, pid.is_(None))
    # Log rows repeating an id already logged in the window: each is judged; counted and reported
    # (not counted where the catalog declares the id unique: a sort of every id saved).
    id_counts: tuple[sa.Select[Any], ...] = (unidentified,)
    if not unique_column(engine, source.predictions, source.id_column):
        repeated = _count_row(_REPEATED, sa.func.count() - sa.func.count(sa.distinct(pid))).where(
            *p_conditions, pid.is_not(None)
        )
        id_counts = (unidentified, repeated)
    p = sa.select(*p_columns).where(*p_conditions, pid.is_not(None)).subquery("p")

    lt = labels_alias.c[source.label_time_column]
    label_naive = labels_cat.naive(source.label_time_column)
    cutoff = _bound(lt, label_naive, zone, window.label_cutoff, "cutoff")
    in_time = lt <= cutoff
    label_col = labels_alias.c[source.label_column]
    # In-time labels first; then the winning label time (latest: DESC in the dialect's NULL order, as
    # the grouped statement reproduces; earliest: ASC, NULLs last in every dialect), then the larger
    # label (earliest: a NULL label last in every dialect).
    rank_order: tuple[sa.ColumnElement[Any], ...] = (
        (sa.case((in_time, 0), else_=1), *dialect.nulls_last(lt.asc()), *dialect.nulls_last(label_col.desc()))
        if earliest
        else (sa.case((in_time, 0), else_=1), lt.desc(), label_col.desc())
    )
    grouped: Any
    if formulation == "grouped":
        grouped = _grouped_classification(
            dialect_for(engine),
            p,
            labels_alias,
            source,
            label_id,
            in_time,
            positive_label=positive_label,
            predicted_positive=_predicted_positive(preds_cat, source, positive_label),
            threshold=threshold,
            bins=bins,
            earliest=earliest,
        )
        return _with_orphans(grouped, CLASSIFICATION_SUMS, query, labels, preds, label_naive, p, id_counts)
    if reduced is not None:
        r = TableCatalog(engine, reduced).sa_table({"lid", "label", "label_time", "n_labels"}).alias("r")
        joined = (
            sa.select(p, r.c.label, r.c.label_time, sa.literal(1).label("rn"), r.c.n_labels)
            .select_from(p.outerjoin(r, r.c.lid == p.c.pid))
            .subquery("j")
        )
    else:
        joined = (
            sa.select(
                p,
                labels_alias.c[source.label_column].label("label"),
                lt.label("label_time"),
                sa.func.row_number().over(partition_by=p.c.pid, order_by=rank_order).label("rn"),
                dialect.filtered(sa.func.count, lt, in_time).over(partition_by=p.c.pid).label("n_labels"),
            )
            .select_from(p.outerjoin(labels_alias, _label_join(labels_alias, source, label_id, p, task)))
            .subquery("j")
        )
    j = joined.c
    state = sa.case((j.label_time.is_(None), NO_LABEL), (j.label_time <= cutoff, LABELLED), else_=LATE)
    duplicate = dialect.filtered(sa.func.count, None, j.n_labels > 1)
    n = sa.func.count()
    if task == "classification":
        positive: sa.BindParameter[Any] = sa.bindparam("positive_label", positive_label)
        predicted_positive = _predicted_positive(preds_cat, source, positive_label)
        keys = (
            sa.select(
                j.segment.label("segment"),
                state.label("state"),
                *_classification_columns(
                    dialect_for(engine),
                    source,
                    score=j.score if source.score_column else sa.null(),
                    predicted=j.predicted if source.predicted_column else None,
                    # over the reduced table a label is in time, never NULL: labelled when joined
                    labelled=j.label.is_not(None) if reduced is not None else state == LABELLED,
                    label_positive=j.label == positive,
                    predicted_positive=predicted_positive,
                    threshold=threshold,
                    bins=bins,
                ),
                j.n_labels,
            )
            .where(j.rn == 1)
            .subquery("k")
        )
        grouped = _classification_cells(keys, dialect)
        sums: tuple[str, ...] = CLASSIFICATION_SUMS
        if reduced is not None:
            grouped = _state_from_label(keys, dialect)
    elif task == "multiclass":
        # The confusion matrix as counts per (label, predicted class); the classes are made canonical
        # text in Python (_assemble), so 1, 1.0 and TRUE compare as in the in-memory join.
        label_of_labelled = sa.case((state == LABELLED, j.label))
        grouped = (
            sa.select(
                j.segment.label("segment"),
                state.label("state"),
                label_of_labelled.label("y"),
                j.predicted.label("yhat"),
                sa.null().label("bin"),
                n.label("n"),
                duplicate.label("dup"),
            )
            .where(j.rn == 1)
            .group_by(j.segment, state, label_of_labelled, j.predicted)
        )
        sums = ()
    else:
        pred_v = j.score
        yv = sa.cast(j.label, DOUBLE)
        finite = sa.and_(pred_v >= -MAX_FLOAT, pred_v <= MAX_FLOAT, yv >= -MAX_FLOAT, yv <= MAX_FLOAT)
        ok = sa.and_(state == LABELLED, finite)
        e = pred_v - yv
        # Powers only of errors and labels within HUGE (summary.HUGE): beyond it a fourth power
        # overflows (an error in PostgreSQL, inf in SQLite); those rows are counted as ``huge``.
        small = sa.and_(ok, sa.func.abs(e) <= HUGE, sa.func.abs(yv) <= HUGE)
        nonzero = sa.and_(ok, yv != 0.0)
        ape = sa.func.abs(e) / sa.func.abs(yv)
        grouped = (
            sa.select(
                j.segment.label("segment"),
                state.label("state"),
                sa.null().label("y"),
                sa.null().label("yhat"),
                sa.null().label("bin"),
                n.label("n"),
                duplicate.label("dup"),
                *(
                    expression.label(name)
                    for name, expression in zip(
                        REGRESSION_SUMS,
                        _elements(
                            dialect.filtered(sa.func.count, None, ok),
                            dialect.filtered(sa.func.sum, sa.func.abs(e), ok),
                            dialect.filtered(sa.func.sum, e, ok),
                            dialect.filtered(sa.func.sum, sa.case((small, e * e)), ok),
                            dialect.filtered(sa.func.sum, sa.case((small, e * e * e * e)), ok),
                            dialect.filtered(sa.func.sum, yv, ok),
                            dialect.filtered(sa.func.sum, sa.case((small, yv * yv)), ok),
                            dialect.filtered(sa.func.sum, ape, nonzero),
                            dialect.filtered(sa.func.sum, ape * ape, nonzero),
                            dialect.filtered(sa.func.count, None, nonzero),
                            dialect.filtered(sa.func.count, None, sa.and_(ok, yv == 0.0)),
                            dialect.filtered(sa.func.count, None, sa.and_(ok, sa.not_(small))),
                        ),
                        strict=True,
                    )
                ),
            )
            .where(j.rn == 1)
            .group_by(j.segment, state)
        )
        sums = REGRESSION_SUMS
    return _with_orphans(
        grouped,
        sums,
        query,
        labels,
        preds,
        label_naive,
        p,
        id_counts,
        null_labels=reduced is None,
    )


def _predicted_positive(preds_cat: TableCatalog, source: PerformanceSource, positive_label: Any) -> Any:
    """The value of ``predicted_column`` that means the positive class (a boolean for a boolean column)."""
    if source.predicted_column and (
        preds_cat.get(source.predicted_column, "predicted class").logical_type is LogicalType.BOOLEAN
    ):
        return sa.bindparam("predicted_positive", positive_label in (True, 1, "1", "true", "True"))
    return sa.bindparam("positive_label", positive_label)


def _grouped_classification(
    dialect: SqlDialect,
    p: sa.Subquery,
    labels: NamedFromClause,
    source: PerformanceSource,
    label_id: str,
    in_time: sa.ColumnElement[bool],
    *,
    positive_label: Any,
    predicted_positive: Any,
    threshold: float,
    bins: int,
    earliest: bool = False,
) -> sa.Select[Any]:
    """Classification without window functions: ``p LEFT JOIN labels GROUP BY`` the prediction, the
    winner's class read off aggregates, then the confusion/histogram ``GROUP BY`` (module docstring).
    ``earliest``: the ``"earliest"`` duplicate-label rule (``min()`` and mirrored comparisons)."""
    lt = labels.c[source.label_time_column]
    label = labels.c[source.label_column]
    positive: sa.BindParameter[Any] = sa.bindparam("positive_label", positive_label)
    # The dialect's NULL order matters under "latest" only: the ranked "earliest" order puts NULLs
    # last explicitly, in every dialect.
    nulls_first = dialect.descending_nulls_first and not earliest
    pick = sa.func.min if earliest else sa.func.max

    def winning(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        """The winning (latest, or earliest) label time by the cut-off among the prediction's labels
        meeting ``conditions``."""
        return dialect.filtered(pick, lt, sa.and_(in_time, *conditions))

    t_in = winning()
    labelled = t_in.is_not(None)

    def not_at_winning(time: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """``time`` (a :func:`winning` time of some of the labels) is not the winning time ``t_in``."""
        return sa.or_(time.is_(None), time > t_in if earliest else time < t_in)

    # The winner (latest, or earliest, label time; ties the larger label) is the positive class when
    # a positive label has the winning time and no larger label has it. Where DESC ranks a NULL
    # label above any label (descending_nulls_first: PostgreSQL), under "latest" a NULL label at the
    # latest time wins there too (as with ROW_NUMBER()); under "earliest" a NULL label never wins a
    # tie (NULLS LAST).
    winner_conditions = [winning(label == positive) == t_in, not_at_winning(winning(label > positive))]
    if nulls_first:
        winner_conditions.append(not_at_winning(winning(label.is_(None))))
    winner_positive = sa.and_(*winner_conditions)
    # Only late labels: LATE; but under "latest" a NULLs-first DESC ranks a label with a NULL time
    # first, so there such a label makes the prediction unlabelled (as with ROW_NUMBER()). Under
    # "earliest" a NULL time ranks last everywhere: any late label makes the prediction LATE.
    late: sa.ColumnElement[bool] = sa.func.max(lt).is_not(None)
    if nulls_first:
        late = sa.and_(late, sa.func.count(labels.c[label_id]) == sa.func.count(lt))
    state = sa.case((labelled, LABELLED), (late, LATE), else_=NO_LABEL)

    # One row per prediction; every expression is computed once per prediction (the aggregate's
    # projection), not once per use as in a flattened subquery.
    per_prediction = (
        sa.select(
            p.c.segment.label("segment"),
            state.label("state"),
            *_classification_columns(
                dialect,
                source,
                score=p.c.score if source.score_column else sa.null(),
                predicted=p.c.predicted if source.predicted_column else None,
                labelled=labelled,
                label_positive=winner_positive,
                predicted_positive=predicted_positive,
                threshold=threshold,
                bins=bins,
            ),
            dialect.filtered(sa.func.count, lt, in_time).label("n_labels"),
        )
        .select_from(p.outerjoin(labels, _label_join(labels, source, label_id, p, "classification")))
        .group_by(*p.c)
        .subquery("k")
    )
    return _classification_cells(per_prediction, dialect)


def _classification_columns(
    dialect: SqlDialect,
    source: PerformanceSource,
    *,
    score: sa.ColumnElement[Any],
    predicted: sa.ColumnElement[Any] | None,
    labelled: sa.ColumnElement[bool],
    label_positive: sa.ColumnElement[bool],
    predicted_positive: Any,
    threshold: float,
    bins: int,
) -> list[sa.ColumnElement[Any]]:
    """One prediction's classification keys and terms, shared by both formulations: ``y`` (the
    winning label is positive; NULL when not labelled), ``yhat``, the score ``bin``, the valid score
    ``s``, the confidence ``conf`` (``ŷ s + (1 - ŷ)(1 - s)``) and the log-loss ``term``."""
    if predicted is not None:
        yhat = sa.case((predicted == predicted_positive, 1), else_=0)
    else:
        yhat = sa.case((score >= threshold, 1), else_=0)
    valid = sa.and_(score >= 0.0, score <= 1.0)
    clipped = sa.case(
        (score < LOG_LOSS_EPS, LOG_LOSS_EPS), (score > 1 - LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), else_=score
    )
    term = sa.case(
        (
            sa.and_(labelled, valid),
            sa.case((label_positive, -sa.func.ln(clipped)), else_=-sa.func.ln(1.0 - clipped)),
        ),
    )
    return [
        sa.case((labelled, sa.case((label_positive, 1), else_=0))).label("y"),
        yhat.label("yhat"),
        (_score_bin(dialect, score, bins) if source.score_column else sa.literal(-1)).label("bin"),
        sa.case((valid, score)).label("s"),
        sa.case((valid, sa.case((yhat == 1, score), else_=1.0 - score))).label("conf"),
        term.label("term"),
    ]


def _classification_cells(
    per_prediction: sa.Subquery, dialect: SqlDialect, *, with_state: bool = True
) -> sa.Select[Any]:
    """The confusion counts, score histograms and sums: one row per (segment, state, y, ŷ, bin)
    (without ``with_state``: per (segment, y, ŷ, bin), and no state column)."""
    k = per_prediction.c
    keys = (k.segment, k.state, k.y, k.yhat, k.bin) if with_state else (k.segment, k.y, k.yhat, k.bin)
    return sa.select(
        *keys,
        sa.func.count().label("n"),
        dialect.filtered(sa.func.count, None, k.n_labels > 1).label("dup"),
        *(
            expression.label(name)
            for name, expression in zip(
                CLASSIFICATION_SUMS,
                (sa.func.sum(k.s), sa.func.sum(k.conf), sa.func.sum(k.term), sa.func.sum(k.term * k.term)),
                strict=True,
            )
        ),
    ).group_by(*keys)


def _state_from_label(keys: sa.Subquery, dialect: SqlDialect) -> sa.Select[Any]:
    """The cells of :func:`_classification_cells` over the reduced label table, grouped without the
    per-prediction label state: ``y`` is NULL exactly when no label joined (the reduced table has
    no NULL label, and no late one where it may answer), so the state is read off each cell
    (NO_LABEL or LABELLED) after the grouping, not computed for every prediction."""
    c = _classification_cells(keys, dialect, with_state=False).subquery("c").c
    return sa.select(
        c.segment,
        sa.case((c.y.is_(None), NO_LABEL), else_=LABELLED).label("state"),
        c.y,
        c.yhat,
        c.bin,
        c.n,
        c.dup,
        *(c[name] for name in CLASSIFICATION_SUMS),
    )


def _with_orphans(
    grouped: sa.Select[Any],
    sums: tuple[str, ...],
    query: PerformanceQuery,
    labels: sa.TableClause,
    preds: sa.TableClause,
    label_naive: bool,
    p: sa.Subquery,
    id_counts: Sequence[Any],
    *,
    null_labels: bool = True,
) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """``grouped UNION ALL`` the row counting the orphan labels (module docstring, step 4), and for
    a binary classification (with ``null_labels``) the row counting the NULL labels by the cut-off
    of the window's predictions (a NULL label is no label); their ``sums`` columns (those of
    ``grouped``) are NULL."""
    statement: sa.Select[Any] | sa.CompoundSelect[Any] = grouped
    source, window, zone, label_id = query.source, query.window, query.zone, query.source.label_id
    extra: list[Any] = [  # the extra count rows (Select): rows without an id, rows repeating one
        count.add_columns(*(sa.null().label(name) for name in sums)) for count in id_counts
    ]
    if query.task == "classification" and null_labels:
        nulls = labels.alias("nl")
        nlt = nulls.c[source.label_time_column]
        ncut = _bound(nlt, label_naive, zone, window.label_cutoff, "cutoff")
        extra.append(
            _count_row(_NULL_LABELS, sa.func.count(), sums).where(
                nulls.c[source.label_column].is_(None),
                nlt <= ncut,
                sa.exists().where(p.c.pid == nulls.c[label_id]),
            )
        )
    if query.count_orphans:
        orphan_labels = labels.alias("ol")
        known = preds.alias("kp")
        olt = orphan_labels.c[source.label_time_column]
        ocut = _bound(olt, label_naive, zone, window.label_cutoff, "cutoff")
        arrivals = _bound(olt, label_naive, zone, window.arrivals_start, "arrivals_start")
        orphans = _count_row(_ORPHANS, sa.func.count(), sums).where(
            olt > arrivals,
            olt <= ocut,
            ~sa.exists().where(known.c[source.id_column] == orphan_labels.c[label_id]),
        )
        extra.append(orphans)
    statement = sa.union_all(grouped, *extra)
    return statement


def _count_row(state: int, count: Any, sums: Sequence[str] = ()) -> sa.Select[Any]:
    """An extra row of the grouped statement carrying only ``count`` as ``n`` under ``state`` (rows
    without an id, repeating one, NULL labels, orphan labels); its other columns, and ``sums``, are
    NULL so that it unions with the grouped rows."""
    return sa.select(
        sa.cast(sa.null(), sa.Text).label("segment"),
        sa.literal(state).label("state"),
        sa.null().label("y"),
        sa.null().label("yhat"),
        sa.null().label("bin"),
        count.label("n"),
        sa.literal(0).label("dup"),
        *(sa.null().label(name) for name in sums),
    )


def _elements(*expressions: Any) -> tuple[sa.ColumnElement[Any], ...]:
    """``expressions`` typed as column elements (a mixed tuple is ``object`` to mypy)."""
    return expressions


def _label_join(
    labels: NamedFromClause, source: PerformanceSource, label_id: str, p: sa.Subquery, task: Task
) -> sa.ColumnElement[bool]:
    """The prediction-label join condition: the same id; for a binary classification a NULL label
    is no label (left out of the join: neither labelled nor negative, counted apart)."""
    same_id = labels.c[label_id] == p.c.pid
    if task == "classification":
        return sa.and_(same_id, labels.c[source.label_column].is_not(None))
    return same_id


def session_purpose(task: Task, formulation: Formulation = "auto") -> QueryPurpose:
    """What the statement for ``task`` is, for the dialect's session settings
    (:meth:`~airflow_mlobs.sources.dialect.SqlDialect.session_settings`: on PostgreSQL sorting off
    for both formulations, JIT off for the ranked one)."""
    return "performance_grouped" if _resolve(formulation, task) == "grouped" else "performance_ranked"


def _resolve(formulation: Formulation, task: Task) -> Formulation:
    if formulation == "auto":
        return "grouped" if task == "classification" else "ranked"
    if formulation == "grouped" and task != "classification":
        raise SourceError(f"the grouped formulation is for classification only, not {task}")
    return formulation


def performance_summary_sql(
    engine: Engine, query: PerformanceQuery, *, reduced: TableRef | None = None
) -> tuple[Summary, dict[str, Summary], QueryStats]:
    """The window's summary, pushed down (module docstring); also per segment when
    ``query.source.segment_column`` is set (keys are the segment values as text, ``"(none)"`` for
    NULL). ``reduced``: join the reduced label table instead (:func:`performance_statement`; only
    where it answers the cut-off).

    Raises ``SourceError`` naming the table and column for a missing table or column, a time column
    that is not a timestamp, or a failed query.
    """
    source, task = query.source, query.task
    statement = performance_statement(engine, query, reduced=reduced)
    stats_rows = 0
    rows: list[Any] = []
    try:
        with engine.begin() as conn:
            dialect_for(engine).prepare_session(
                conn, "performance_reduced" if reduced is not None else session_purpose(task)
            )
            for row in conn.execute(statement):
                stats_rows += 1
                rows.append(row)
    except SQLAlchemyError as exc:
        joined = f"{source.labels} (reduced: {reduced})" if reduced is not None else f"{source.labels}"
        what = f"performance query joining {source.predictions} with {joined}"
        if (unsupported := unsupported_dialect(exc, database_name(engine), what=what)) is not None:
            raise unsupported from exc
        raise source_failure(
            exc,
            f"performance query joining {source.predictions} with {joined} failed: {db_message(exc)}",
            what=f"tables {source.predictions} and {joined}",
        ) from exc
    overall, segments = _assemble(
        rows,
        task,
        query.bins,
        query.count_orphans,
        segmented=source.segment_column is not None,
        score_decides=source.predicted_column is None,
    )
    return overall, segments, QueryStats(statements=1, rows_fetched=stats_rows)


def _assemble(
    rows: list[Any],
    task: Task,
    bins: int,
    count_orphans: bool,
    *,
    segmented: bool,
    score_decides: bool = False,
) -> tuple[Summary, dict[str, Summary]]:
    """Fold the aggregate rows into one summary per segment and their sum. ``score_decides``: the
    predicted class is ``score >= threshold``, so a row without a valid score (bin -1) has none and
    is left out of the confusion counts (``unscored``)."""
    orphans = null_labels = unidentified = repeated = 0
    parts: dict[str, dict[str, Any]] = {}
    for row in rows:
        state, count = int(row.state), int(row.n)
        if state == _ORPHANS:
            orphans += count
            continue
        if state == _NULL_LABELS:
            null_labels += count
            continue
        if state == _UNIDENTIFIED:
            unidentified += count
            continue
        if state == _REPEATED:
            repeated += count
            continue
        seg = NO_SEGMENT if row.segment is None else str(row.segment)
        acc = parts.setdefault(seg, _empty(task, bins))
        acc["predictions"] += count
        acc["duplicate"] += int(row.dup or 0)
        if state == LATE:
            acc["late"] += count
        if state == LABELLED:
            acc["labelled"] += count
        if task == "multiclass":
            if state != LABELLED:
                continue
            if row.y is None or row.yhat is None:
                acc["invalid"] += count
                continue
            cell = (class_text(row.y), class_text(row.yhat))
            acc["cells"][cell] = acc["cells"].get(cell, 0) + count
        elif task == "classification":
            bin_index, yhat = int(row.bin), int(row.yhat)
            if bin_index >= 0:
                acc["scored"] += count
                acc["score_sum"] += float(row.score_sum or 0.0)
                acc["confidence_sum"] += float(row.confidence_sum or 0.0)
                acc["scored_predicted_positive" if yhat else "scored_predicted_negative"][bin_index] += count
            if bin_index < 0 and score_decides:
                if state == LABELLED:
                    acc["invalid_scores"] += count
                    acc["unscored"] += count
                continue
            acc["predicted_positive_all"] += count * yhat
            if state != LABELLED:
                continue
            confusion = {(1, 1): "tp", (0, 1): "fp", (1, 0): "fn", (0, 0): "tn"}[(int(row.y), yhat)]
            acc[confusion] += count
            if bin_index < 0:
                acc["invalid_scores"] += count
                continue
            (acc["positives"] if int(row.y) == 1 else acc["negatives"])[bin_index] += count
            acc["log_loss_sum"] += float(row.log_loss_sum or 0.0)
            acc["log_loss_sumsq"] += float(row.log_loss_sumsq or 0.0)
        elif state == LABELLED:
            # By mapping key: a Row's attribute ``count`` is the tuple method, not the column.
            sums = row._mapping
            for name in REGRESSION_SUMS:
                acc[name] += int(sums[name] or 0) if name in _INTEGER_SUMS else float(sums[name] or 0.0)
            acc["invalid"] += count - int(sums["count"] or 0)
    summaries = {seg: _build(task, bins, acc) for seg, acc in parts.items()}
    overall: Summary = _build(task, bins, _empty(task, bins))
    for summary in summaries.values():
        overall = overall + summary  # type: ignore[operator]
    coverage = replace(
        overall.coverage, null_labels=null_labels, unidentified=unidentified, repeated=repeated
    )
    if count_orphans:
        coverage = replace(coverage, orphan_labels=orphans)
    overall = replace(overall, coverage=coverage)
    return overall, (summaries if segmented else {})


def _empty(task: Task, bins: int) -> dict[str, Any]:
    acc: dict[str, Any] = {"predictions": 0, "labelled": 0, "late": 0, "duplicate": 0}
    if task == "multiclass":
        acc.update({"cells": {}, "invalid": 0})
    elif task == "classification":
        acc.update(
            {
                "tp": 0,
                "fp": 0,
                "fn": 0,
                "tn": 0,
                "positives": [0] * bins,
                "negatives": [0] * bins,
                "invalid_scores": 0,
                "unscored": 0,
                "log_loss_sum": 0.0,
                "log_loss_sumsq": 0.0,
                "scored": 0,
                "score_sum": 0.0,
                "confidence_sum": 0.0,
                "predicted_positive_all": 0,
                "scored_predicted_positive": [0] * bins,
                "scored_predicted_negative": [0] * bins,
            }
        )
    else:
        acc.update({name: 0 if name in _INTEGER_SUMS else 0.0 for name in REGRESSION_SUMS})
        acc["invalid"] = 0
    return acc


def _build(task: Task, bins: int, acc: dict[str, Any]) -> Summary:
    coverage = Coverage(acc.pop("predictions"), acc.pop("labelled"), acc.pop("late"), acc.pop("duplicate"))
    if task == "multiclass":
        return MulticlassSummary.from_counts(acc["cells"], invalid=acc["invalid"], coverage=coverage)
    if task == "classification":
        for key in ("positives", "negatives", "scored_predicted_positive", "scored_predicted_negative"):
            acc[key] = tuple(acc[key])
        return ClassificationSummary(bins=bins, coverage=coverage, **acc)
    return RegressionSummary(coverage=coverage, **acc)


def label_values_seen(engine: Engine, query: PerformanceQuery, limit: int = 5) -> list[Any]:
    """Up to ``limit`` distinct non-NULL values of the label column among the labels by the cut-off
    (smallest first): what the labels hold when none equals ``positive_label``."""
    source = query.source
    cat = TableCatalog(engine, source.labels)
    cat.get(source.label_column, "label")
    cat.get(source.label_time_column, "label time", TIME_TYPES)
    labels = cat.sa_table({source.label_column, source.label_time_column})
    label, lt = labels.c[source.label_column], labels.c[source.label_time_column]
    cutoff = _bound(lt, cat.naive(source.label_time_column), query.zone, query.window.label_cutoff, "cutoff")
    statement = (
        sa.select(label).where(label.is_not(None), lt <= cutoff).distinct().order_by(label).limit(limit)
    )
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(statement)]
    except SQLAlchemyError as exc:
        raise source_failure(
            exc,
            f"reading the values of label column {source.label_column!r} of {source.labels} failed: "
            f"{db_message(exc)}",
            what=f"table {source.labels}",
        ) from exc
