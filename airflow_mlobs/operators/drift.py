"""Drift in DAGs: ``BaselineOperator`` builds and stores a baseline; ``DriftCheckOperator`` compares
each window with it. Each is arguments, a spec (:mod:`airflow_mlobs.specs.drift`) and the run's
window; the work happens in the spec, :mod:`airflow_mlobs.core.drift` and the gatherers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs import settings
from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.drift_settings import CHECK, DEFAULT_MIN_ROWS
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.profile import DEFAULT_BINS, DEFAULT_MAX_CATEGORIES, Baseline, ColumnKind, Profile
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_window_arg,
    with_window_basis,
)
from airflow_mlobs.operators.lineage import schema_of_baseline
from airflow_mlobs.specs.drift import BaselineSpec, DriftSpec, drift_settings_arg
from airflow_mlobs.specs.drift_incremental import evaluate_incremental, incremental_arg, profile_provenance
from airflow_mlobs.store import ResultsStore

if TYPE_CHECKING:
    from airflow.sdk import Context

BASELINE_DIR_ENV = settings.BASELINE_DIR_ENV


def default_baseline_dir() -> Any:
    """``[mlobs] baseline_dir``, else ``$MLOBS_BASELINE_DIR``, else ``$AIRFLOW_HOME/mlobs_baselines``
    (an error under a distributed executor: see :mod:`airflow_mlobs.settings`)."""
    return settings.baseline_dir(None)


SOURCE_TEMPLATE_FIELDS = ("conn_id", "table", "sql", "path", "where", "timestamp_column")
SOURCE_ARGUMENTS = (*SOURCE_TEMPLATE_FIELDS, "timestamp_timezone")


def source_of(task: Any) -> dict[str, Any]:
    """The rendered source arguments of a baseline or drift task, as :class:`~airflow_mlobs.specs.drift.DriftSource` takes them."""
    return {name: getattr(task, name) for name in SOURCE_ARGUMENTS}


class BaselineOperator(BaseCheckOperator):
    """Build a drift baseline from reference data and store it as ``<baseline_dir>/<name>/<version>.json``.

    Idempotent: when that version exists it is kept (``overwrite=True`` rebuilds it). For a table or
    query the work is pushed down (kinds from the catalog, quantile edges by ``ROW_NUMBER()``, the
    reference profile as aggregates); a file is read in memory (only the needed columns).

    :param baseline: the baseline's name. Templated.
    :param version: its version, e.g. ``"v3"`` or ``"{{ ds_nodash }}"``. Templated.
    :param conn_id, table, sql, path, where, timestamp_column: the reference data; with
        ``timestamp_column``, ``reference_start``/``reference_end`` bound it (templated).
    :param columns, kinds: columns to cover (default: all numeric and text ones) and kind overrides
        (``{"zip_code": "categorical"}``).
    :param bins: quantile bins per numeric column (default 20, plus an open bin at each end).
    :param sensitive_columns: columns stored without any value: a categorical one by keyed
        pseudonyms of its categories (the key, ``key_conn_id`` or ``$MLOBS_PSEUDONYM_KEY``, is
        required; the baseline records its key id so a check with another key is a clear error), a
        numeric one without its minimum, maximum or extreme-quantile edges (its outer bins are open
        beyond the 1% and 99% quantiles) and with no min/max in the reference profile.
    :param calibrate_chunk_size: for file sources, calibrate data-driven thresholds on
        ``calibrate_chunks`` reference samples of this size (the size of a production window).
    :param sample, sample_rows, sample_key, sample_seed: build the baseline from a sample, as
        :class:`DriftCheckOperator` profiles one (``sample="1%"`` or ``sample_rows=200_000``); its
        edges and counts are the sample's, the stored baseline records how it was sampled, and the
        checks against it account for its sampling error.
    :param baseline_dir: where baselines live (default ``$MLOBS_BASELINE_DIR`` or
        ``$AIRFLOW_HOME/mlobs_baselines``; an ``ObjectStoragePath`` works too). Templated.
    """

    check_name = "baseline"
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *SOURCE_TEMPLATE_FIELDS,
        "baseline",
        "version",
        "baseline_dir",
        "reference_start",
        "reference_end",
    )
    template_ext = (".sql",)

    def __init__(
        self,
        *,
        baseline: str,
        version: str,
        conn_id: str | None = None,
        table: str | None = None,
        sql: str | None = None,
        path: str | None = None,
        where: str | None = None,
        timestamp_column: str | None = None,
        timestamp_timezone: str = "UTC",
        reference_start: datetime | str | None = None,
        reference_end: datetime | str | None = None,
        columns: Sequence[str] | None = None,
        kinds: Mapping[str, ColumnKind] | None = None,
        bins: int = DEFAULT_BINS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        calibrate_chunk_size: int | None = None,
        calibrate_chunks: int = 20,
        baseline_dir: str | None = None,
        overwrite: bool = False,
        sample: str | float | None = None,
        sample_rows: int | None = None,
        sample_key: str | None = None,
        sample_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sample, self.sample_rows = sample, sample_rows
        self.sample_key, self.sample_seed = sample_key, sample_seed
        self.baseline = baseline
        self.version = version
        self.conn_id, self.table, self.sql, self.path = conn_id, table, sql, path
        self.where = where
        self.timestamp_column = timestamp_column
        self.timestamp_timezone = timestamp_timezone
        self.reference_start = reference_start
        self.reference_end = reference_end
        self.columns = list(columns) if columns is not None else None
        self.kinds = dict(kinds or {})
        self.bins = bins
        self.max_categories = max_categories
        self.calibrate_chunk_size = calibrate_chunk_size
        self.calibrate_chunks = calibrate_chunks
        self.baseline_dir = baseline_dir
        self.overwrite = overwrite
        self.spec().validate(self.task_id)

    def spec(self, pseudonym_key: PseudonymKey | None = None) -> BaselineSpec:
        """The rendered arguments as a :class:`BaselineSpec` (``pseudonym_key`` for sensitive
        categorical columns, read when the task runs)."""
        return BaselineSpec(
            **source_of(self),
            sensitive_columns=tuple(self.sensitive_columns),
            pseudonym_key=pseudonym_key,
            baseline=self.baseline,
            version=self.version,
            reference_start=self.reference_start,
            reference_end=self.reference_end,
            columns=tuple(self.columns) if self.columns is not None else None,
            kinds=self.kinds,
            bins=self.bins,
            max_categories=self.max_categories,
            calibrate_chunk_size=self.calibrate_chunk_size,
            calibrate_chunks=self.calibrate_chunks,
            sample=self.sample,
            sample_rows=self.sample_rows,
            sample_key=self.sample_key,
            sample_seed=self.sample_seed,
        )

    def dataset_name(self) -> str:
        """The baseline's name and version."""
        return self.dataset or f"baseline:{self.baseline}/{self.version}"

    def evaluate(self, context: Context) -> CheckResult:
        """Build and store the baseline unless that version exists already."""
        spec = self.spec(self.resolved_pseudonym_key())
        result = spec.ensure(settings.baseline_dir(self.baseline_dir), overwrite=self.overwrite)
        return replace(result, dataset=self.dataset_name())


class DriftJudgeArgs(BaseCheckOperator):
    """The arguments that say how a window is judged against a baseline, shared by
    :class:`DriftCheckOperator` and :class:`~airflow_mlobs.operators.drift_merge.DriftMergeOperator`
    (an operator class, so that mapped tasks accept them); the settings are checked when the DAG is
    parsed (:func:`~airflow_mlobs.specs.drift.drift_settings_arg`)."""

    def __init__(
        self,
        *,
        baseline: str,
        baseline_version: str | None = None,
        baseline_dir: str | None = None,
        window: timedelta | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        columns: Sequence[str] | None = None,
        prediction_columns: Sequence[str] = (),
        methods: Mapping[str, str] | None = None,
        thresholds: Mapping[str, Any] | None = None,
        correction: str = "bh",
        drift_share: float = 0.5,
        warn_share: float | None = None,
        importances: Mapping[str, float] | None = None,
        min_rows: int = DEFAULT_MIN_ROWS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.baseline = baseline
        self.baseline_version = baseline_version
        self.baseline_dir = baseline_dir
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.columns = list(columns) if columns is not None else None
        self.prediction_columns = list(prediction_columns)
        self.max_categories = max_categories
        self.settings = drift_settings_arg(
            self.task_id,
            methods=methods,
            thresholds=thresholds,
            correction=correction,
            drift_share=drift_share,
            warn_share=warn_share,
            importances=importances,
            min_rows=min_rows,
        )


class DriftCheckOperator(DriftJudgeArgs):
    """Compare the run's window of a table, query or file with a stored baseline.

    For SQL sources the window's profile is computed in the database (only aggregates are
    fetched); files are read in memory, only the needed columns and rows. The window's profile is
    stored in the results database, so later windows can roll up without reading the data again.
    The result ranks the drifted columns by effect size; the log shows a table of every column.

    :param baseline, baseline_version: which baseline (default: its newest version). Templated.
    :param conn_id, table, sql, path, where, timestamp_column: the current data. ``where`` is a SQL
        condition (e.g. ``"model_version = 'v3'"``). Templated.
    :param window: the length of the window judged, ending at the run's data interval end (or its
        logical date, or run-after time, for runs whose interval is zero-length or absent, such as
        ``schedule="@daily"``, manual and asset-triggered runs), e.g. ``"1d"``. Without it the window
        is the run's data interval, and a run with none is an ``error`` saying so. Templated.
    :param window_start, window_end: explicit bounds, overriding the above. Templated.
    :param columns: feature columns to judge (default: the baseline's, minus prediction columns).
    :param prediction_columns: prediction and score columns, judged the same way and reported as
        prediction drift (a shift in the positive rate or the score distribution).
    :param methods: per-column method override (``wasserstein``, ``psi``, ``js``, ``hellinger``, ``ks``).
    :param thresholds: per-column levels: a number (warn = fail) or ``(warn, fail)``.
    :param correction: p-value correction across columns: ``none``, ``bonferroni``, ``bh`` (default), ``by``.
    :param drift_share: share of drifted columns at which the dataset fails (default 0.5).
    :param warn_share: share at which it warns (default: any drifted column).
    :param importances: per-column weights for the drift share.
    :param sensitive_columns: columns whose values never leave the gatherer; the baseline must have
        been built with them (an error says to rebuild it otherwise), and its pseudonymized
        categorical columns are counted by the same keyed pseudonyms (``key_conn_id`` or
        ``$MLOBS_PSEUDONYM_KEY``; a missing or different key is an error). An unseen category is
        reported by its share and pseudonym, never its text; a sensitive numeric column keeps no
        min/max (Wasserstein bounds its open outer bins by the tails' means instead).
    :param min_rows: the fewest rows a window is judged on (default 30); a smaller window is
        ``skipped`` with the reason, and a column with fewer finite values has its distribution
        skipped (a one-row window with ``age=150`` is no evidence either way).
    :param partition: which partition of the dataset this task profiles; its stored profile is
        keyed by it, for :class:`~airflow_mlobs.operators.drift_merge.DriftMergeOperator` to add
        up. Default: the map index when the task is mapped, else none. Templated. Mapped tasks are
        labelled by their partition, else their table and ``where`` (``map_index_template``),
        unless given another ``map_index_template``.
    :param incremental: e.g. ``"1d"``: for a window longer than the schedule (``window="7d"`` run
        daily), reuse the stored profile of each whole UTC day of the window and scan only the days
        not stored yet (each scanned day is stored for the next run); the day profiles add up to the
        profile of the window scanned at once. A stored day is reused only when profiled unsampled
        against the same baseline version and edges, from the same source, ``where`` and timestamp
        column. ``metrics["incremental"]`` lists the ``stored_days`` and ``scanned_days`` (and why
        each was scanned); the summary starts with e.g. "6 days from the store, 1 scanned". Needs
        ``timestamp_column``; not with sampling or ``partition`` (a ``ValueError`` at parse time).
        See :mod:`airflow_mlobs.specs.drift_incremental`.
    :param incremental_recheck_last: rescan the newest N stored days each run (default 0), for rows
        that arrive late: a stored day is trusted as of when it was profiled. A cleared or retried
        task (try number above 1) rescans every day of the window.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *SOURCE_TEMPLATE_FIELDS,
        "baseline",
        "baseline_version",
        "baseline_dir",
        "window",
        "window_start",
        "window_end",
        "partition",
    )
    template_ext = (".sql",)
    # Rendered by Airflow for each mapped task instance (the "Map Index" label in the UI).
    default_map_index_template = "{{ task.map_index_label() }}"
    #: The window's profile and the baseline's columns, kept for the OpenLineage facets.
    lineage_profile: Profile | None = None
    lineage_schema: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """As ``BaseOperator.partial``; mapped drift checks get a readable ``map_index_template``
        (the partition, else the table and ``where``) unless one is given."""
        if kwargs.get("map_index_template") is None:
            kwargs["map_index_template"] = cls.default_map_index_template
        return super().partial(**kwargs)  # type: ignore[misc]

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        table: str | None = None,
        sql: str | None = None,
        path: str | None = None,
        where: str | None = None,
        timestamp_column: str | None = None,
        timestamp_timezone: str = "UTC",
        store_profile: bool = True,
        partition: str | None = None,
        sample: str | float | None = None,
        sample_rows: int | None = None,
        sample_key: str | None = None,
        sample_seed: int = 0,
        incremental: timedelta | str | None = None,
        incremental_recheck_last: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.increment = incremental_arg(
            self.task_id,
            incremental,
            timestamp_column=timestamp_column,
            sample=sample,
            sample_rows=sample_rows,
            partition=partition,
            recheck_last=incremental_recheck_last,
        )
        self.incremental_recheck_last = incremental_recheck_last
        self.sample, self.sample_rows = sample, sample_rows
        self.sample_key, self.sample_seed = sample_key, sample_seed
        self.conn_id, self.table, self.sql, self.path = conn_id, table, sql, path
        self.where = where
        self.timestamp_column = timestamp_column
        self.timestamp_timezone = timestamp_timezone
        self.store_profile = store_profile
        self.partition = partition
        parse_window_arg(self.window, self.task_id, timestamp_column)
        self.spec().validate(self.task_id)

    def dataset_name(self) -> str:
        """``conn_id:table`` or the path, unless ``dataset`` names it."""
        return self.spec().dataset_name()

    @contextmanager
    def results_store(self) -> Iterator[ResultsStore]:
        """The results history on ``results_conn_id``, disposed afterwards."""
        engine = results_engine(self.results_conn_id)
        try:
            yield ResultsStore(engine)
        finally:
            engine.dispose()

    def evaluate_incremental(
        self, context: Context, spec: DriftSpec, start: datetime | None, end: datetime | None, keep: Any
    ) -> CheckResult:
        """The window from stored day profiles plus scans of the rest
        (:func:`~airflow_mlobs.specs.drift_incremental.evaluate_incremental`); a try above the first
        (a cleared or retried task) rescans every day."""
        assert self.increment is not None
        try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        rescan = f"task try {try_number}: every day rescanned" if try_number > 1 else None
        with self.results_store() as store:

            def save_slice(baseline: Baseline, profile: Profile, provenance: Mapping[str, Any]) -> None:
                store.save_profile(spec.dataset_name(), baseline.key, profile, provenance=provenance)

            return evaluate_incremental(
                spec,
                settings.baseline_dir(self.baseline_dir),
                window_start=start,
                window_end=end,
                increment=self.increment,
                stored_slices=store.stored_slices,
                save_slice=save_slice if self.store_profile else None,
                keep_profile=keep,
                recheck_last=self.incremental_recheck_last,
                rescan_all=rescan,
            )

    def partition_name(self, context: Context) -> str | None:
        """``partition`` if given, else the map index of a mapped task, else ``None``."""
        if self.partition not in (None, ""):
            return str(self.partition)
        map_index = getattr(context.get("ti"), "map_index", None)
        return str(map_index) if map_index is not None and int(map_index) >= 0 else None

    def map_index_label(self) -> str:
        """A mapped task's label: its partition, else its table or file and ``where``."""
        if self.partition not in (None, ""):
            return str(self.partition)
        source = self.table or self.path or ("query" if self.sql else "")
        label = f"{source} where {self.where}" if self.where else str(source)
        return label if len(label) <= 200 else label[:199] + "…"

    def spec(self, pseudonym_key: PseudonymKey | None = None) -> DriftSpec:
        """The rendered arguments as a :class:`DriftSpec` (``pseudonym_key`` for a baseline's
        pseudonymized columns, read when the task runs)."""
        return DriftSpec(
            **source_of(self),
            sensitive_columns=tuple(self.sensitive_columns),
            pseudonym_key=pseudonym_key,
            baseline=self.baseline,
            baseline_version=self.baseline_version,
            columns=tuple(self.columns) if self.columns is not None else None,
            prediction_columns=tuple(self.prediction_columns),
            settings=self.settings,
            max_categories=self.max_categories,
            dataset=self.dataset,
            sample=self.sample,
            sample_rows=self.sample_rows,
            sample_key=self.sample_key,
            sample_seed=self.sample_seed,
        )

    def evaluate(self, context: Context) -> CheckResult:
        """Profile the run's window once, store the profile (keyed by the partition), judge it."""
        judged = judged_window(
            context,
            self.window,
            start=self.window_start,
            end=self.window_end,
            required=self.timestamp_column is not None,
        )
        spec = self.spec(self.resolved_pseudonym_key())
        partition = self.partition_name(context)

        def keep(baseline: Baseline, profile: Profile) -> None:
            # Kept for the OpenLineage facets (row, null counts, min, max) and the schema facet.
            self.lineage_profile = profile
            self.lineage_schema = schema_of_baseline(baseline)
            if not self.store_profile:
                return
            # Without a partition the profile may stand for its window in an incremental check.
            provenance = None if partition is not None else profile_provenance(spec, baseline, profile)
            with self.results_store() as store:
                store.save_profile(
                    spec.dataset_name(), baseline.key, profile, partition=partition, provenance=provenance
                )

        if self.increment is not None:
            if partition is not None:
                raise MlobsInputError(
                    f"{self.task_id}: incremental does not combine with a partition ({partition})"
                )
            result = self.evaluate_incremental(context, spec, judged.start, judged.end, keep)
        else:
            result = spec.evaluate(
                settings.baseline_dir(self.baseline_dir),
                window_start=judged.start,
                window_end=judged.end,
                keep_profile=keep,
            )
        if partition is not None:
            result = replace(result, metrics={**result.metrics, "partition": partition})
        return with_window_basis(result, judged)
