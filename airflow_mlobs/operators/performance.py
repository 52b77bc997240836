"""``PerformanceCheckOperator``: model quality per window once the labels have arrived.

The work happens in :mod:`airflow_mlobs.core.performance` (windows, metrics, judgement),
:mod:`airflow_mlobs.sources.performance_sql` (the join and aggregation, pushed down) and
:mod:`airflow_mlobs.sources.performance_frame` (the chunked in-memory join across connections or
files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected
from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.performance_settings import (
    CHECK,
    DEFAULT_BINS,
    DEFAULT_CHUNKSIZE,
    DuplicateLabels,
    PerformanceSettings,
    Task,
    check_duplicate_labels,
    parse_max_drop,
)
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone, parse_duration
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_moment,
    parse_window_arg,
    with_window_basis,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlobs.core.performance.summary import Summary
    from airflow_mlobs.core.performance.window import PerformanceWindow
    from airflow_mlobs.sources.performance_sql import PerformanceQuery


class PerformanceCheckOperator(BaseCheckOperator):
    """Join the prediction log with late-arriving labels and judge the model's quality.

    The run for the data interval ``[S, E)`` judges the predictions made in
    ``[S - label_delay, E - label_delay)`` with the labels whose label time is at or before
    ``label_cutoff`` (default ``E``, so re-runs are reproducible); of a prediction's labels by the
    cut-off the latest wins (``duplicate_labels="earliest"``: the first). With both tables on one
    connection the join and the aggregation run in the database as one statement and only
    aggregate rows (confusion counts, score histograms, sums) are fetched. With the labels on another connection (``label_conn_id``), or either side in files
    (``predictions_path`` / ``labels_path``), both are streamed and joined in memory in chunks of
    ``chunksize`` rows, with the same results (memory: the labels in the window's id range, one
    row per id, plus one chunk). Below ``min_label_coverage`` the result is ``skipped`` ("labels not mature: 41%
    coverage"), with estimates from the scores. Otherwise the main ``metric`` (and any other metric
    in ``baseline``) is judged against its baseline value: a drop breaches ``max_drop`` only when it
    also exceeds ``sigma`` standard errors.

    :param conn_id: Airflow SQL connection of the prediction log. Templated.
    :param predictions_table: the prediction log (``schema.table``). Templated.
    :param labels_table: the label table. Templated.
    :param label_conn_id: the labels' connection (default ``conn_id``); a different connection
        joins in memory. Templated.
    :param predictions_path, labels_path: read that side from a Parquet/Feather/CSV file or
        dataset directory instead of a table (joins in memory). Templated.
    :param chunksize: rows per chunk of the in-memory join (default 50,000).
    :param id_column, label_id_column: the prediction id in each table (``label_id_column`` defaults
        to ``id_column``). Prediction ids must be unique in the log.
    :param prediction_time_column, label_time_column, label_column: when the prediction was made,
        when the label arrived, and the label (the true class, or the true value).
    :param score_column: probability of the positive class (classification) or the predicted value
        (regression).
    :param predicted_column: the predicted class; without it, ``score >= threshold``.
    :param task: ``"classification"`` (binary; ``positive_label`` is the positive class),
        ``"multiclass"`` (needs ``predicted_column``; accuracy, macro_f1, weighted_f1,
        macro_precision, macro_recall) or ``"regression"``.
    :param model_version_column, model_version: judge one model version only (templated).
    :param segment_column: report the main metric per segment and name the worst (segment findings
        warn at most).
    :param label_delay: how long labels take, e.g. ``"7d"``; whole days are shifted in the
        wall-clock time of ``timezone``.
    :param window: the length of the prediction window before the shift, ending at the run's data
        interval end (or logical date, or run-after time, for runs with a zero-length or no interval,
        such as ``schedule="@daily"``), e.g. ``"1d"``. Without it the window is the run's data
        interval, and a run with none is an ``error`` saying so. Templated.
    :param label_cutoff: labels count only up to this moment (default: the end of the run's window).
        Templated.
    :param duplicate_labels: which label wins when a prediction has several by the cut-off:
        ``"latest"`` (default; the latest label time, so a later correction replaces the first
        verdict) or ``"earliest"`` (the earliest label time: the first verdict counts, later
        corrections are ignored). Ties at the same label time go to the larger label under both
        rules. The same rule in the database and in the in-memory join; the result's note on
        duplicates names it.
    :param timezone: zone of timestamp columns without time zone, and of the day shift.
    :param metric: the main metric (default ``accuracy``, or ``mae`` for regression).
    :param baseline: baseline values, e.g. ``{"accuracy": 0.85}``.
    :param reference_window: ``(start, end)`` of a labelled reference period of the same prediction
        log (e.g. the model's first weeks in production). Its metrics are the baseline of the main
        metric and of every metric in ``max_drop`` that ``baseline`` does not give (a given value
        wins); the drop is weighed against the error of both windows. It also calibrates the
        estimates for immature windows (the positive rate per score bin in the reference). Labels
        count up to the run's cut-off. One more aggregate statement per run. Templated.
    :param max_drop: a number, ``(warn, fail)``, or ``"5%"`` / ``("2%", "5%")`` relative to the
        baseline; per metric with a mapping ``{"accuracy": (0.02, 0.05)}``.
    :param relative: read numeric ``max_drop`` levels as fractions of the baseline.
    :param sigma: a drop within this many standard errors never breaches (default 2).
    :param min_label_coverage: below this share of labelled predictions the result is ``skipped``.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "conn_id",
        "label_conn_id",
        "predictions_table",
        "labels_table",
        "label_cutoff",
        "window",
        "model_version",
        "predictions_path",
        "labels_path",
        "reference_window",
    )

    def __init__(
        self,
        *,
        prediction_time_column: str,
        label_time_column: str,
        conn_id: str = "",
        predictions_table: str = "",
        labels_table: str = "",
        label_conn_id: str | None = None,
        predictions_path: str | None = None,
        labels_path: str | None = None,
        chunksize: int = DEFAULT_CHUNKSIZE,
        id_column: str = "prediction_id",
        label_id_column: str | None = None,
        label_column: str = "label",
        score_column: str | None = None,
        predicted_column: str | None = None,
        task: Task = "classification",
        positive_label: Any = 1,
        threshold: float = 0.5,
        model_version_column: str | None = None,
        model_version: str | None = None,
        segment_column: str | None = None,
        label_delay: timedelta | str = timedelta(0),
        window: timedelta | str | None = None,
        label_cutoff: datetime | str | None = None,
        duplicate_labels: DuplicateLabels = "latest",
        timezone: str = "UTC",
        metric: str | None = None,
        baseline: Mapping[str, float] | None = None,
        reference_window: Sequence[datetime | str] | None = None,
        max_drop: Any = None,
        relative: bool = False,
        sigma: float = 2.0,
        min_label_coverage: float = 0.5,
        min_segment_labels: int = 30,
        bins: int = DEFAULT_BINS,
        count_orphan_labels: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("classification", "regression", "multiclass"):
            raise ValueError(
                f"{self.task_id}: task must be 'classification', 'multiclass' or 'regression', got {task!r}"
            )
        if task == "multiclass" and predicted_column is None:
            raise ValueError(
                f"{self.task_id}: task='multiclass' needs predicted_column (the predicted class)"
            )
        if not (predictions_path or (conn_id and predictions_table)):
            raise ValueError(f"{self.task_id}: give conn_id and predictions_table, or predictions_path")
        if not (labels_path or ((label_conn_id or conn_id) and labels_table)):
            raise ValueError(
                f"{self.task_id}: give labels_table (on conn_id or label_conn_id), or labels_path"
            )
        if chunksize < 1:
            raise ValueError(f"{self.task_id}: chunksize must be positive, got {chunksize}")
        try:
            self.duplicate_labels: DuplicateLabels = check_duplicate_labels(duplicate_labels)
        except ValueError as exc:
            raise ValueError(f"{self.task_id}: {exc}") from exc
        if (
            task != "multiclass"
            and score_column is None
            and (task == "regression" or predicted_column is None)
        ):
            raise ValueError(
                f"{self.task_id}: give score_column (predicted probability or value)"
                + (" or predicted_column" if task == "classification" else "")
            )
        self.conn_id = conn_id
        self.label_conn_id = label_conn_id
        self.predictions_path = predictions_path
        self.labels_path = labels_path
        self.chunksize = chunksize
        self.predictions_table = predictions_table
        self.labels_table = labels_table
        self.prediction_time_column = prediction_time_column
        self.label_time_column = label_time_column
        self.id_column = id_column
        self.label_id_column = label_id_column
        self.label_column = label_column
        self.score_column = score_column
        self.predicted_column = predicted_column
        self.task = task
        self.positive_label = positive_label
        self.threshold = threshold
        self.model_version_column = model_version_column
        self.model_version = model_version
        self.segment_column = segment_column
        self.label_delay = parse_duration(label_delay, name=f"{self.task_id}: label_delay")
        self.window = window
        parse_window_arg(window, self.task_id)
        self.label_cutoff = label_cutoff
        self.timezone = timezone
        self.bins = bins
        self.count_orphan_labels = count_orphan_labels
        if reference_window is not None and len(reference_window) != 2:
            raise ValueError(
                f"{self.task_id}: reference_window must be (start, end), got {reference_window!r}"
            )
        self.reference_window = reference_window
        main = metric or ("mae" if task == "regression" else "accuracy")
        if isinstance(max_drop, Mapping):
            levels = {
                name: parse_max_drop(v, relative=relative, name=f"{self.task_id}: max_drop[{name!r}]")
                for name, v in max_drop.items()
            }
        elif max_drop is not None:
            levels = {main: parse_max_drop(max_drop, relative=relative, name=f"{self.task_id}: max_drop")}
        else:
            levels = {}
        try:
            self.settings = PerformanceSettings(
                task=task,
                metric=main,
                baseline={k: float(v) for k, v in (baseline or {}).items()},
                max_drop=levels,
                sigma=sigma,
                min_label_coverage=min_label_coverage,
                min_segment_labels=min_segment_labels,
                duplicate_labels=self.duplicate_labels,
            )
        except ValueError as exc:
            raise ValueError(f"{self.task_id}: {exc}") from exc

    def dataset_name(self) -> str:
        """``conn_id:predictions_table`` (or the predictions path), unless ``dataset`` names it."""
        return self.dataset or self.predictions_path or f"{self.conn_id}:{self.predictions_table}"

    def evaluate(self, context: Context) -> CheckResult:
        """Shift the window back by the label delay, join and aggregate in the database, judge."""
        # numpy (and the gatherers) load when a task runs, never at DAG parse time.
        from airflow_mlobs.core.performance.judge import judge_performance
        from airflow_mlobs.core.performance.window import PerformanceWindow, evaluation_window
        from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource

        label_conn = self.label_conn_id or self.conn_id
        judged = judged_window(context, self.window)
        start, end = judged.start, judged.end
        assert start is not None and end is not None  # a required window always has both bounds
        zone = get_zone(self.timezone)
        cutoff = parse_moment(self.label_cutoff, "label_cutoff")
        window = evaluation_window(start, end, self.label_delay, label_cutoff=cutoff, zone=zone)
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
        query = PerformanceQuery(
            source,
            window,
            task=self.task,
            positive_label=self.positive_label,
            threshold=self.threshold,
            model_version=self.model_version,
            naive_zone=zone,
            bins=self.bins,
            count_orphans=self.count_orphan_labels,
            duplicate_labels=self.duplicate_labels,
        )
        reference_bounds = self._reference_bounds(window) if self.reference_window is not None else None
        overall, segments = self._summaries(query, label_conn)
        reference = None
        if reference_bounds is not None:
            reference_window = PerformanceWindow(
                reference_bounds[0], reference_bounds[1], window.label_cutoff, window.label_cutoff
            )
            reference, _ = self._summaries(query.for_reference(reference_window), label_conn)
        result = judge_performance(
            overall,
            self.settings,
            dataset=self.dataset_name(),
            window=window,
            segments=segments or None,
            window_start=start,
            window_end=end,
            reference=reference,
            reference_window=reference_bounds,
        )
        return with_window_basis(result, judged)

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

    def _summaries(self, query: PerformanceQuery, label_conn: str) -> tuple[Summary, dict[str, Summary]]:
        """One window's summary (and per segment): in the database when both tables share the
        connection, otherwise joined in memory."""
        from airflow_mlobs.sources.performance_sql import performance_summary_sql

        if self.predictions_path or self.labels_path or label_conn != self.conn_id:
            return self._join_in_memory(query, label_conn)
        window = query.window
        with connected(self.conn_id) as engine:
            overall, segments, stats = performance_summary_sql(engine, query)
        self.log.info(
            "Joined %s with %s in the database for predictions in [%s, %s): %d statement, "
            "%d aggregate rows fetched",
            self.predictions_table,
            self.labels_table,
            window.prediction_start.isoformat(),
            window.prediction_end.isoformat(),
            stats.statements,
            stats.rows_fetched,
        )
        return overall, segments

    def _join_in_memory(self, query: PerformanceQuery, label_conn: str) -> tuple[Summary, dict[str, Summary]]:
        """Predictions and labels on different connections or in files: stream both and join in
        memory, in chunks (:mod:`airflow_mlobs.sources.performance_frame`)."""
        from airflow_mlobs.sources.performance_frame import performance_summary_join  # pandas

        preds_where = (
            f"file {self.predictions_path}" if self.predictions_path else f"connection {self.conn_id!r}"
        )
        labels_where = f"file {self.labels_path}" if self.labels_path else f"connection {label_conn!r}"
        try:
            with ExitStack() as stack:
                preds: Any = self.predictions_path or stack.enter_context(connected(self.conn_id))
                labels: Any = self.labels_path or stack.enter_context(connected(label_conn))
                overall, segments, stats = performance_summary_join(
                    preds, labels, query, chunksize=self.chunksize
                )
        except MlobsInputError as exc:
            raise SourceError(
                f"joining predictions on {preds_where} and labels on {labels_where} in memory: {exc}"
            ) from exc
        self.log.info(
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
