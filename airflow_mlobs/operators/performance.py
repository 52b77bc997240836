"""``PerformanceCheckOperator``: model quality per window once the labels have arrived.

The check itself (join the predictions with their late labels, summarise, judge) is
:class:`~airflow_mlobs.specs.performance.PerformanceSpec`; this module turns the operator's
arguments into that spec and gives it the run's window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.performance_settings import (
    CHECK,
    DEFAULT_BINS,
    DEFAULT_CHUNKSIZE,
    DuplicateLabels,
    PerformanceSettings,
    Task,
)
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.operators.base import BaseCheckOperator, judged_window, parse_window_arg, with_window_basis
from airflow_mlobs.specs.freshness import seconds_or_text
from airflow_mlobs.specs.performance import PerformanceSpec

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The operator's arguments that are the spec's (all but ``window`` and the base's).
SPEC_ARGUMENTS = frozenset(f.name for f in fields(PerformanceSpec)) - {
    "dataset",
    "sensitive_columns",
    "pseudonym_key",
}


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
    :param predictions_table: the prediction log (``schema.table``; default ``mlobs_prediction_log``,
        as :class:`~airflow_mlobs.recorder.PredictionLogger` writes it). Templated.
    :param labels_table: the label table (default ``mlobs_labels``). Templated.
    :param label_conn_id: the labels' connection (default ``conn_id``); a different connection
        joins in memory. Templated.
    :param predictions_path, labels_path: read that side from a Parquet/Feather/CSV file or
        dataset directory instead of a table (joins in memory). Templated.
    :param chunksize: rows per chunk of the in-memory join (default 50,000; at least 1).
    :param id_column, label_id_column: the prediction id in each table (``label_id_column`` defaults
        to ``id_column``). Prediction ids should be unique in the log: every logged row is judged as
        a prediction, and rows repeating an id already logged in the window are counted
        (``repeated_predictions``) and make the result at least a ``warn``; rows without an id are
        left out and counted (``unidentified_predictions``).
    :param prediction_time_column, label_time_column, label_column: when the prediction was made,
        when the label arrived, and the label (the true class, or the true value); defaults
        ``predicted_at``, ``labelled_at``, ``label`` (the recorder's layout).
    :param score_column: probability of the positive class (classification) or the predicted value
        (regression); default ``score`` when no ``predicted_column`` is given.
    :param predicted_column: the predicted class; without it, ``score >= threshold`` (``threshold``
        in [0, 1]), and a NULL, NaN, infinite or out-of-range score has no class: left out of the
        confusion counts and the metrics, counted as ``unscored``.
    :param task: ``"classification"`` (binary; ``positive_label`` is the positive class),
        ``"multiclass"`` (needs ``predicted_column``; accuracy, macro_f1, weighted_f1,
        macro_precision, macro_recall) or ``"regression"``.
    :param model_version_column, model_version: judge one model version only (templated).
    :param segment_column: report the main metric per segment and name the worst (segment findings
        warn at most). When it is one of ``sensitive_columns``, segments are named by keyed
        pseudonyms (``key_conn_id`` or ``$MLOBS_PSEUDONYM_KEY``), or without a key ``[redacted] #n``.
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
    :param sigma: a drop within this many standard errors never breaches (default 2; > 0).
    :param min_label_coverage: below this share of labelled predictions the result is ``skipped``
        (in [0, 1]).

    :param reduced_labels_table: the reduced label table to join instead of the label table
        (``LabelTableOperator`` keeps it: one row per prediction id, the winning label and the
        label count), making the join a plain hash join. ``"auto"`` (default) joins
        ``<labels_table>_reduced`` when it exists and answers the window's cut-off exactly (no label
        later than the cut-off, refreshed since the last label was written, no NULL label rows,
        ``duplicate_labels="latest"``), else the label table as before (a backfill with an older
        cut-off); a table name requires it (an ``error`` naming the table and why when it cannot
        answer); ``None`` never. ``metrics["label_source"]`` and the summary say which was used
        and why. Templated.

    Numeric and enumerated settings out of range (also ``min_segment_labels`` >= 1, ``bins`` in
    [2, 1000000], ``max_drop`` >= 0, ``timezone``, ``duplicate_labels``) are a ``ValueError`` naming
    the task and the argument when the DAG is imported.
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
        "reduced_labels_table",
    )

    def __init__(
        self,
        *,
        prediction_time_column: str = "predicted_at",
        label_time_column: str = "labelled_at",
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
        reduced_labels_table: str | None = "auto",
        **kwargs: Any,
    ) -> None:
        # Every argument the spec takes is stored under its own name (Airflow renders the templated
        # ones in place); taken first, so locals() holds only the arguments.
        arguments = {name: value for name, value in locals().items() if name in SPEC_ARGUMENTS}
        super().__init__(**kwargs)
        for name, value in arguments.items():
            setattr(self, name, value)
        self.window = window
        spec = self.spec()
        spec.validate(self.task_id)
        parse_window_arg(window, self.task_id)
        self.label_delay = spec.delay()

    @property
    def settings(self) -> PerformanceSettings:
        """How the check judges (:meth:`PerformanceSpec.settings`)."""
        return self.spec().settings(self.task_id)

    def spec(self) -> PerformanceSpec:
        """The rendered arguments as a :class:`PerformanceSpec`."""
        values = {name: getattr(self, name) for name in SPEC_ARGUMENTS}
        values["label_delay"] = seconds_or_text(values["label_delay"])
        values["baseline"] = dict(values["baseline"] or {})
        if isinstance(values["reference_window"], list):  # rendered templates may give a list
            values["reference_window"] = tuple(values["reference_window"])
        return PerformanceSpec(
            **values, dataset=self.dataset, sensitive_columns=tuple(self.sensitive_columns)
        )

    def dataset_name(self) -> str:
        """See :meth:`PerformanceSpec.dataset_name`."""
        return self.spec().dataset_name()

    def evaluate(self, context: Context) -> CheckResult:
        """Judge the run's window (shifted back by the label delay in the spec)."""
        judged = judged_window(context, self.window)
        assert judged.start is not None and judged.end is not None  # a required window has both
        spec = self.spec()
        if spec.segment_column and spec.segment_column in spec.sensitive_columns:
            spec = replace(spec, pseudonym_key=self.resolved_pseudonym_key())
        result = spec.evaluate(window_start=judged.start, window_end=judged.end)
        return with_window_basis(result, judged)
