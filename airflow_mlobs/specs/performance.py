"""The delayed-label performance check as a plain spec: one window's predictions joined with their
late labels, summarised once (in the database, or in memory across connections and files) and
judged once against the baselines.

Used by ``PerformanceCheckOperator``; anything else that holds database URLs (the CLI, a notebook)
evaluates the same spec through :func:`~airflow_mlobs.specs.base.url_connected`. Gathering is
:mod:`airflow_mlobs.sources.performance_sql` (both tables on one connection: one pushed-down
statement) or :mod:`airflow_mlobs.sources.performance_frame` (the chunked in-memory join);
judging is :func:`airflow_mlobs.core.performance.judge.judge_performance`.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.performance_settings import (
    DEFAULT_BINS,
    DEFAULT_CHUNKSIZE,
    DuplicateLabels,
    PerformanceSettings,
    Task,
    check_duplicate_labels,
    parse_max_drop,
)
from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, pseudonym
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone, parse_duration, parse_moment
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.specs.base import Connector, connector_or_default

if TYPE_CHECKING:
    from airflow_mlobs.core.performance.summary import Summary
    from airflow_mlobs.core.performance.window import PerformanceWindow
    from airflow_mlobs.sources.label_join import LabelPath
    from airflow_mlobs.sources.performance_sql import PerformanceQuery

log = logging.getLogger(__name__)

TASKS = ("classification", "regression", "multiclass")
#: The prediction log's layout as PredictionLogger writes it (airflow_mlobs.recorder.layout; a
#: unit test holds the two equal): read when the arguments do not name other tables or columns.
PREDICTION_LOG_TABLE = "mlobs_prediction_log"
LABELS_TABLE = "mlobs_labels"
SCORE_COLUMN = "score"


@dataclass(frozen=True)
class PerformanceSpec:
    """What to join and how to judge it, as plain serializable values (templates already rendered).

    Without table and column names it reads the prediction log as ``PredictionLogger`` writes it
    (``mlobs_prediction_log``: ``prediction_id``, ``predicted_at``, ``score``; ``mlobs_labels``:
    ``prediction_id``, ``label``, ``labelled_at``). A ``score_column`` is assumed (``score``) only
    when no ``predicted_column`` is given.

    Predictions come from ``predictions_table`` on ``conn_id`` or from ``predictions_path``; labels
    from ``labels_table`` on ``label_conn_id`` (default ``conn_id``) or from ``labels_path``. Both
    tables on one connection: the join runs in the database; otherwise in memory in chunks of
    ``chunksize`` rows. ``label_delay`` is seconds or text such as ``"7d"``; ``label_cutoff`` and
    ``reference_window`` are ISO text or datetimes; ``max_drop`` a number, ``(warn, fail)``,
    ``"5%"``, or a mapping of those per metric (the arguments of ``PerformanceCheckOperator``).
    """

    prediction_time_column: str = "predicted_at"
    label_time_column: str = "labelled_at"
    conn_id: str = ""
    predictions_table: str = ""
    labels_table: str = ""
    label_conn_id: str | None = None
    predictions_path: str | None = None
    labels_path: str | None = None
    chunksize: int = DEFAULT_CHUNKSIZE
    id_column: str = "prediction_id"
    label_id_column: str | None = None
    label_column: str = "label"
    score_column: str | None = None
    predicted_column: str | None = None
    task: Task = "classification"
    positive_label: Any = 1
    threshold: float = 0.5
    model_version_column: str | None = None
    model_version: str | None = None
    segment_column: str | None = None
    label_delay: str | float = 0.0
    label_cutoff: datetime | str | None = None
    duplicate_labels: DuplicateLabels = "latest"
    timezone: str = "UTC"
    metric: str | None = None
    baseline: Mapping[str, float] = field(default_factory=dict)
    reference_window: tuple[datetime | str, ...] | None = None
    max_drop: Any = None
    relative: bool = False
    sigma: float = 2.0
    min_label_coverage: float = 0.5
    min_segment_labels: int = 30
    bins: int = DEFAULT_BINS
    count_orphan_labels: bool = True
    #: The reduced label table (``airflow_mlobs.sources.label_table``) to join instead of the label
    #: table where it answers the cut-off exactly: ``"auto"`` (``<labels_table>_reduced`` when it
    #: exists and answers, else the full statement), a table name (required: an error naming it
    #: when it cannot answer), or ``None`` (never).
    reduced_labels_table: str | None = "auto"
    dataset: str | None = None
    #: Columns whose values never reach the result: a sensitive ``segment_column``'s segments are
    #: named by keyed pseudonyms (``pseudonym_key``), or without a key by ``[redacted] #n`` (counts
    #: only); a sensitive ``label_column``'s values are not listed when no label is positive.
    sensitive_columns: tuple[str, ...] = ()
    pseudonym_key: PseudonymKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The prediction log's layout (airflow_mlobs.recorder: PredictionLogger) fills what is not
        # given: the tables on a connection, and the score column when no class column is named.
        if self.conn_id and not self.predictions_path and not self.predictions_table:
            object.__setattr__(self, "predictions_table", PREDICTION_LOG_TABLE)
        if self.labels_connection() and not self.labels_path and not self.labels_table:
            object.__setattr__(self, "labels_table", LABELS_TABLE)
        if self.task != "multiclass" and self.score_column is None and self.predicted_column is None:
            object.__setattr__(self, "score_column", SCORE_COLUMN)

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for an impossible combination of arguments, a
        literal ``label_delay`` that is no duration, or settings the judgement cannot take."""
        if self.task not in TASKS:
            raise ValueError(
                f"{task_id}: task must be 'classification', 'multiclass' or 'regression', got {self.task!r}"
            )
        if self.task == "multiclass" and self.predicted_column is None:
            raise ValueError(f"{task_id}: task='multiclass' needs predicted_column (the predicted class)")
        if self.reduced_labels_table is not None and not (
            isinstance(self.reduced_labels_table, str) and self.reduced_labels_table
        ):
            raise ValueError(
                f"{task_id}: reduced_labels_table must be 'auto', a table name or None, "
                f"got {self.reduced_labels_table!r}"
            )
        if not (self.predictions_path or (self.conn_id and self.predictions_table)):
            raise ValueError(f"{task_id}: give conn_id and predictions_table, or predictions_path")
        if not (self.labels_path or (self.labels_connection() and self.labels_table)):
            raise ValueError(f"{task_id}: give labels_table (on conn_id or label_conn_id), or labels_path")
        self.check_settings(task_id)
        if (
            self.task != "multiclass"
            and self.score_column is None
            and (self.task == "regression" or self.predicted_column is None)
        ):
            raise ValueError(
                f"{task_id}: give score_column (predicted probability or value)"
                + (" or predicted_column" if self.task == "classification" else "")
            )
        self.delay(name=f"{task_id}: label_delay")
        if self.reference_window is not None and len(self.reference_window) != 2:
            raise ValueError(
                f"{task_id}: reference_window must be (start, end), got {self.reference_window!r}"
            )
        self.settings(task_id)

    def check_settings(self, task_id: str = "") -> None:
        """``ValueError`` naming the task, the argument and the allowed range for a numeric or
        enumerated setting out of range: ``threshold`` in [0, 1], ``sigma`` > 0, ``min_label_coverage``
        in [0, 1], ``min_segment_labels`` >= 1, ``bins`` >= 2, ``chunksize`` >= 1, ``timezone`` a zone,
        ``duplicate_labels`` 'latest' or 'earliest', ``relative`` and ``count_orphan_labels`` booleans
        (``max_drop`` >= 0 and the metric names: :meth:`settings`). Run at construction (literal
        arguments: a DAG import error) and again when the check runs (rendered templates)."""
        prefix = f"{task_id}: " if task_id else ""

        def number(name: str, low: float, high: float, rule: str, *, integer: bool = False) -> None:
            value = getattr(self, name)
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{prefix}{name} must be {rule}, got {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{prefix}{name} must be {rule}, got {value!r}")

        number("threshold", 0.0, 1.0, "a number within [0, 1]")
        number("sigma", math.ulp(0.0), 1e308, "a finite number > 0")
        number("min_label_coverage", 0.0, 1.0, "a number within [0, 1]")
        number("min_segment_labels", 1, 1e308, "an integer >= 1", integer=True)
        number("bins", 2, 1_000_000, "an integer within [2, 1000000]", integer=True)
        number("chunksize", 1, 1e308, "an integer >= 1", integer=True)
        for name in ("relative", "count_orphan_labels"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{prefix}{name} must be True or False, got {getattr(self, name)!r}")
        try:
            check_duplicate_labels(self.duplicate_labels)
        except ValueError as exc:
            raise ValueError(f"{prefix}{exc}") from exc
        try:
            get_zone(self.timezone)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{prefix}timezone: {exc}") from exc

    def labels_connection(self) -> str:
        """The labels' connection: ``label_conn_id``, else ``conn_id``."""
        return self.label_conn_id or self.conn_id

    def delay(self, *, name: str = "label_delay") -> timedelta:
        """``label_delay`` as a duration."""
        return parse_duration(self.label_delay, name=name)

    def settings(self, task_id: str = "") -> PerformanceSettings:
        """How to judge: the main metric (default ``accuracy``, ``mae`` for regression), baselines,
        drop levels; ``ValueError`` (naming ``task_id`` when given) for unknown metrics or levels."""
        prefix = f"{task_id}: " if task_id else ""
        main = self.metric or ("mae" if self.task == "regression" else "accuracy")
        if isinstance(self.max_drop, Mapping):
            levels = {
                name: parse_max_drop(v, relative=self.relative, name=f"{prefix}max_drop[{name!r}]")
                for name, v in self.max_drop.items()
            }
        elif self.max_drop is not None:
            levels = {main: parse_max_drop(self.max_drop, relative=self.relative, name=f"{prefix}max_drop")}
        else:
            levels = {}
        try:
            return PerformanceSettings(
                task=self.task,
                metric=main,
                baseline={k: float(v) for k, v in self.baseline.items()},
                max_drop=levels,
                sigma=self.sigma,
                min_label_coverage=self.min_label_coverage,
                min_segment_labels=self.min_segment_labels,
                duplicate_labels=self.duplicate_labels,
                label_column=self.label_column,
            )
        except ValueError as exc:
            raise ValueError(f"{prefix}{exc}") from exc

    def dataset_name(self) -> str:
        """``conn_id:predictions_table`` (or the predictions path), unless ``dataset`` names it."""
        return self.dataset or self.predictions_path or f"{self.conn_id}:{self.predictions_table}"

    def evaluate(
        self, *, window_start: datetime, window_end: datetime, connect: Connector | None = None
    ) -> CheckResult:
        """Judge the run for the data interval ``[window_start, window_end)``: shift it back by the
        label delay, gather the window's summary (and the reference window's), judge.
        ``connect`` opens the databases (default: Airflow connections).

        Raises ``MlobsInputError`` for bad input (a moment that is no timestamp, a reference window
        after the cut-off, a missing table or column); the operator turns that into an ``error``.
        """
        # numpy and the gatherers load when a check runs, never when a DAG imports the spec.
        from airflow_mlobs.core.performance.judge import (
            judge_performance,
            positive_label_absent,
            with_absent_positive_label,
            with_repeated_ids,
        )
        from airflow_mlobs.core.performance.window import PerformanceWindow, evaluation_window

        try:
            self.check_settings()
            self.settings()
        except ValueError as exc:
            raise MlobsInputError(str(exc)) from exc
        zone = get_zone(self.timezone)
        cutoff = parse_moment(self.label_cutoff, "label_cutoff")
        window = evaluation_window(window_start, window_end, self.delay(), label_cutoff=cutoff, zone=zone)
        query = self.query(window)
        reference_bounds = self._reference_bounds(window) if self.reference_window is not None else None
        connector = connector_or_default(connect)
        overall, segments, path = self._summaries(query, connector)
        if self.segment_column and self.segment_column in self.sensitive_columns:
            segments = pseudonymized_segments(segments, self.pseudonym_key)
        reference = None
        if reference_bounds is not None:
            reference_window = PerformanceWindow(*reference_bounds, window.label_cutoff, window.label_cutoff)
            # the same cut-off: the same label source answers it
            reference, _, _ = self._summaries(query.for_reference(reference_window), connector, path)
        result = judge_performance(
            overall,
            self.settings(),
            dataset=self.dataset_name(),
            window=window,
            segments=segments or None,
            window_start=window_start,
            window_end=window_end,
            reference=reference,
            reference_window=reference_bounds,
        )
        if positive_label_absent(overall):
            result = with_absent_positive_label(
                result, self.positive_label, self.label_column, self._label_values(query, connector)
            )
        if overall.coverage.repeated:
            result = with_repeated_ids(result, overall.coverage.repeated, self.id_column)
        if path is not None:
            result = path.on_result(result)
        return result

    def _label_values(self, query: PerformanceQuery, connect: Connector) -> list[Any] | None:
        """A few distinct label values by the cut-off (``None`` for labels in a file)."""
        from airflow_mlobs.sources.performance_sql import label_values_seen

        if self.labels_path or self.label_column in self.sensitive_columns:
            return None
        with connect(self.labels_connection()) as engine:
            return label_values_seen(engine, query)

    def query(self, window: PerformanceWindow) -> PerformanceQuery:
        """What the gatherers join for ``window`` (tables default to ``predictions`` / ``labels``
        where a side is a file)."""
        from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource

        source = PerformanceSource(
            predictions=parse_table_name(self.predictions_table or "predictions"),
            labels=parse_table_name(self.labels_table or "labels"),
            id_column=self.id_column,
            prediction_time_column=self.prediction_time_column,
            label_column=self.label_column,
            label_time_column=self.label_time_column,
            score_column=self.score_column,
            predicted_column=self.predicted_column,
            label_id_column=self.label_id_column,
            model_version_column=self.model_version_column,
            segment_column=self.segment_column,
        )
        return PerformanceQuery(
            source,
            window,
            task=self.task,
            positive_label=self.positive_label,
            threshold=self.threshold,
            model_version=self.model_version,
            naive_zone=get_zone(self.timezone),
            bins=self.bins,
            count_orphans=self.count_orphan_labels,
            duplicate_labels=self.duplicate_labels,
        )

    def _reference_bounds(self, window: PerformanceWindow) -> tuple[datetime, datetime]:
        """The rendered ``reference_window`` as aware moments, checked against the cut-off."""
        assert self.reference_window is not None
        bounds = [parse_moment(v, f"reference_window[{i}]") for i, v in enumerate(self.reference_window)]
        ref_start, ref_end = bounds
        if ref_start is None or ref_end is None or ref_end <= ref_start:
            raise MlobsInputError(
                f"reference_window must be (start, end) with start < end, got {self.reference_window!r}"
            )
        if ref_end > window.label_cutoff:
            raise MlobsInputError(
                f"reference_window ends at {ref_end.isoformat()}, after the label cut-off "
                f"{window.label_cutoff.isoformat()}: its labels could not have arrived"
            )
        return ref_start, ref_end

    def _summaries(
        self, query: PerformanceQuery, connect: Connector, path: LabelPath | None = None
    ) -> tuple[Summary, dict[str, Summary], LabelPath | None]:
        """One window's summary (and per segment): in the database when both tables share the
        connection (joining the reduced label table where ``reduced_labels_table`` allows and it
        answers the cut-off; ``path``: the choice already made for this cut-off), otherwise joined
        in memory (no label path)."""
        from airflow_mlobs.sources.label_join import choose_label_path
        from airflow_mlobs.sources.performance_sql import performance_summary_sql

        if self.predictions_path or self.labels_path or self.labels_connection() != self.conn_id:
            return (*self._join_in_memory(query, connect), None)
        with connect(self.conn_id) as engine:
            if path is None:
                path = choose_label_path(engine, query, self.reduced_labels_table)
            overall, segments, stats = performance_summary_sql(engine, query, reduced=path.reduced)
        log.info(
            "Joined %s with %s in the database for predictions in [%s, %s): %d statement, "
            "%d aggregate rows fetched; %s",
            self.predictions_table,
            self.labels_table,
            query.window.prediction_start.isoformat(),
            query.window.prediction_end.isoformat(),
            stats.statements,
            stats.rows_fetched,
            path.reason,
        )
        return overall, segments, path

    def _join_in_memory(
        self, query: PerformanceQuery, connect: Connector
    ) -> tuple[Summary, dict[str, Summary]]:
        """Predictions and labels on different connections or in files: stream both and join in
        memory, in chunks (:mod:`airflow_mlobs.sources.performance_frame`)."""
        from airflow_mlobs.sources.performance_frame import performance_summary_join  # pandas

        label_conn = self.labels_connection()
        preds_where = (
            f"file {self.predictions_path}" if self.predictions_path else f"connection {self.conn_id!r}"
        )
        labels_where = f"file {self.labels_path}" if self.labels_path else f"connection {label_conn!r}"
        try:
            with ExitStack() as stack:
                preds: Any = self.predictions_path or stack.enter_context(connect(self.conn_id))
                labels: Any = self.labels_path or stack.enter_context(connect(label_conn))
                overall, segments, stats = performance_summary_join(
                    preds, labels, query, chunksize=self.chunksize
                )
        except MlobsInputError as exc:
            raise SourceError(
                f"joining predictions on {preds_where} and labels on {labels_where} in memory: {exc}"
            ) from exc
        log.info(
            "Joined %s with %s in memory: %d predictions in %d chunks, %d label rows read "
            "(%d label ids and %d late ids held)",
            self.predictions_path or f"{self.conn_id}:{self.predictions_table}",
            self.labels_path or f"{label_conn}:{self.labels_table}",
            stats.prediction_rows,
            stats.prediction_chunks,
            stats.label_rows,
            stats.label_ids_held,
            stats.late_ids_held,
        )
        return overall, segments


def pseudonymized_segments(segments: Mapping[Any, Any], key: PseudonymKey | None) -> dict[Any, Any]:
    """The segments of a sensitive segment column renamed as soon as they are gathered, before
    anything judges or shows them: by the keyed pseudonym of each value (stable across runs), or
    without a key by ``[redacted] #n`` (counts only), numbered by size (most predictions first),
    ties in random order: nothing about the values decides a number (an order derived from them,
    even an unkeyed hash, lets anyone who can list the possible values tell which segment is
    which). Configure a key for names that are stable across runs. A NULL segment stays ``None``."""
    if key is not None:
        return {None if name is None else pseudonym(name, key): summary for name, summary in segments.items()}

    def size(name: Any) -> tuple[int, int, float]:
        coverage = getattr(segments[name], "coverage", None)
        return (
            -int(getattr(coverage, "predictions", 0) or 0),
            -int(getattr(coverage, "labelled", 0) or 0),
            secrets.SystemRandom().random(),
        )

    named = sorted((n for n in segments if n is not None), key=size)
    renamed: dict[Any, Any] = {f"{REDACTED} #{i}": segments[n] for i, n in enumerate(named, start=1)}
    if None in segments:
        renamed[None] = segments[None]
    return renamed
