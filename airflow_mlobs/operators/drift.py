"""Drift in DAGs: ``BaselineOperator`` builds and stores a baseline; ``DriftCheckOperator`` compares
each window with it. The work happens in :mod:`airflow_mlobs.core.drift` and the gatherers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlobs import settings
from airflow_mlobs.connections import connected, results_engine
from airflow_mlobs.core.drift_settings import CHECK, DriftSettings, Threshold
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    Baseline,
    ColumnKind,
    Profile,
    baseline_path,
    load_baseline,
)
from airflow_mlobs.core.readings import DriftReading
from airflow_mlobs.core.result import CheckResult, Status, worst
from airflow_mlobs.core.timeutil import get_zone, parse_moment
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_window_arg,
    with_window_basis,
)
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.drift_sql import profile_sql
from airflow_mlobs.store import ResultsStore

if TYPE_CHECKING:
    from airflow.sdk import Context

BASELINE_DIR_ENV = settings.BASELINE_DIR_ENV


def default_baseline_dir() -> Any:
    """``[mlobs] baseline_dir``, else ``$MLOBS_BASELINE_DIR``, else ``$AIRFLOW_HOME/mlobs_baselines``
    (an error under a distributed executor: see :mod:`airflow_mlobs.settings`)."""
    return settings.baseline_dir(None)


class _SourceArgs:
    """Source arguments shared by the baseline and drift operators (SQL pushdown or a file)."""

    conn_id: str | None
    table: str | None
    sql: str | None
    path: str | None
    where: str | None
    timestamp_column: str | None
    timestamp_timezone: str
    task_id: str

    source_template_fields: tuple[str, ...] = ("conn_id", "table", "sql", "path", "where", "timestamp_column")

    def validate_source(self) -> None:
        """Exactly one of table / sql / path; SQL sources need a connection."""
        given = [n for n in ("table", "sql", "path") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(
                f"{self.task_id}: give exactly one of table, sql or path (got {given or 'none'})"
            )
        if (self.table or self.sql) and not self.conn_id:
            raise ValueError(f"{self.task_id}: a table or sql source needs conn_id")

    def source_name(self) -> str:
        """``conn_id:table``, ``conn_id:query`` or the path."""
        if self.table:
            return f"{self.conn_id}:{self.table}"
        if self.sql:
            return f"{self.conn_id}:query"
        return str(self.path)


class BaselineOperator(_SourceArgs, BaseCheckOperator):
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
    :param calibrate_chunk_size: for file sources, calibrate data-driven thresholds on
        ``calibrate_chunks`` reference samples of this size (the size of a production window).
    :param baseline_dir: where baselines live (default ``$MLOBS_BASELINE_DIR`` or
        ``$AIRFLOW_HOME/mlobs_baselines``; an ``ObjectStoragePath`` works too). Templated.
    """

    check_name = "baseline"
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *_SourceArgs.source_template_fields,
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.validate_source()

    def dataset_name(self) -> str:
        """The baseline's name and version."""
        return self.dataset or f"baseline:{self.baseline}/{self.version}"

    def build(self) -> Baseline:
        """Build the baseline from the configured source."""
        # numpy, pandas and pyarrow load when a task runs, never at DAG parse time.
        from airflow_mlobs.sources import drift_frame as frame_source
        from airflow_mlobs.sources.baseline_sql import build_baseline_sql

        start = parse_moment(self.reference_start, "reference_start")
        end = parse_moment(self.reference_end, "reference_end")
        if self.path:
            frame = file_source.read_window(
                self.path,
                (
                    [*self.columns, *([self.timestamp_column] if self.timestamp_column else [])]
                    if self.columns
                    else None
                ),
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
            )
            if self.timestamp_column and self.timestamp_column in frame.columns and not self.columns:
                frame = frame.drop(columns=[self.timestamp_column])
            baseline = frame_source.build_baseline(
                frame,
                name=self.baseline,
                version=self.version,
                columns=self.columns,
                kinds=self.kinds,
                bins=self.bins,
                max_categories=self.max_categories,
                source=str(self.path),
            )
            if self.calibrate_chunk_size:
                baseline = frame_source.calibrate_baseline(
                    frame, baseline, chunk_size=self.calibrate_chunk_size, chunks=self.calibrate_chunks
                )
            return baseline
        assert self.conn_id is not None
        with connected(self.conn_id) as engine:
            return build_baseline_sql(
                engine,
                name=self.baseline,
                version=self.version,
                table=parse_table_name(self.table) if self.table else None,
                sql=self.sql,
                columns=self.columns,
                kinds=self.kinds,
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
                naive_zone=get_zone(self.timestamp_timezone),
                where=self.where,
                bins=self.bins,
                max_categories=self.max_categories,
                source=self.source_name(),
            )

    def evaluate(self, context: Context) -> CheckResult:
        """Build and store the baseline unless that version exists already."""
        directory = settings.baseline_dir(self.baseline_dir)
        target = baseline_path(directory, self.baseline, self.version)
        if target.exists() and not self.overwrite:
            existing = load_baseline(directory, self.baseline, self.version)
            summary = (
                f"baseline {self.baseline} {self.version} already exists at {target}; kept (overwrite=False)"
            )
            created = False
        else:
            existing = self.build()
            target = existing.save(directory)
            summary = f"built baseline {self.baseline} {self.version} from {self.source_name()} at {target}"
            created = True
        columns = existing.columns.values()
        return CheckResult(
            check=self.check_name,
            dataset=self.dataset_name(),
            status=Status.PASS,
            summary=summary,
            metrics={
                "baseline": self.baseline,
                "version": self.version,
                "path": str(target),
                "created": created,
                "reference_rows": existing.reference.row_count,
                "numeric_columns": sorted(c.name for c in columns if c.kind == "numeric"),
                "categorical_columns": sorted(c.name for c in columns if c.kind == "categorical"),
                "calibrated": bool(existing.thresholds),
            },
        )


def drift_settings_arg(
    task_id: str,
    methods: Mapping[str, str] | None,
    thresholds: Mapping[str, Any] | None,
    correction: str,
    drift_share: float,
    warn_share: float | None,
    importances: Mapping[str, float] | None,
) -> DriftSettings:
    """The drift operators' settings arguments as :class:`DriftSettings`, checked at parse time."""
    if correction not in ("none", "bonferroni", "bh", "by"):
        raise ValueError(f"{task_id}: correction must be none, bonferroni, bh or by, got {correction!r}")
    return DriftSettings(
        methods=dict(methods or {}),  # type: ignore[arg-type]
        thresholds={c: threshold_arg(v, c) for c, v in (thresholds or {}).items()},
        correction=correction,  # type: ignore[arg-type]
        drift_share=drift_share,
        warn_share=warn_share,
        importances=dict(importances or {}),
    )


def threshold_arg(value: Any, column: str) -> Threshold:
    """A per-column ``thresholds`` argument: a number (warn = fail), ``(warn, fail)`` or a Threshold."""
    if isinstance(value, Threshold):
        return value
    if isinstance(value, int | float):
        return Threshold(warn=float(value), fail=float(value))
    if isinstance(value, Sequence) and len(value) == 2:
        return Threshold(warn=float(value[0]), fail=float(value[1]))
    raise ValueError(f"threshold for {column!r} must be a number or (warn, fail), got {value!r}")


class DriftCheckOperator(_SourceArgs, BaseCheckOperator):
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
    :param partition: which partition of the dataset this task profiles; its stored profile is
        keyed by it, for :class:`~airflow_mlobs.operators.drift_merge.DriftMergeOperator` to add
        up. Default: the map index when the task is mapped, else none. Templated. Mapped tasks are
        labelled by their partition, else their table and ``where`` (``map_index_template``),
        unless given another ``map_index_template``.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *_SourceArgs.source_template_fields,
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
        baseline: str,
        baseline_version: str | None = None,
        window: timedelta | str | None = None,
        baseline_dir: str | None = None,
        conn_id: str | None = None,
        table: str | None = None,
        sql: str | None = None,
        path: str | None = None,
        where: str | None = None,
        timestamp_column: str | None = None,
        timestamp_timezone: str = "UTC",
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
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        store_profile: bool = True,
        partition: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.baseline = baseline
        self.baseline_version = baseline_version
        self.baseline_dir = baseline_dir
        self.partition = partition
        self.conn_id, self.table, self.sql, self.path = conn_id, table, sql, path
        self.where = where
        self.timestamp_column = timestamp_column
        self.timestamp_timezone = timestamp_timezone
        self.window = window
        parse_window_arg(window, self.task_id, timestamp_column)
        self.window_start = window_start
        self.window_end = window_end
        self.columns = list(columns) if columns is not None else None
        self.prediction_columns = list(prediction_columns)
        self.max_categories = max_categories
        self.store_profile = store_profile
        self.validate_source()
        self.settings = drift_settings_arg(
            self.task_id, methods, thresholds, correction, drift_share, warn_share, importances
        )

    def dataset_name(self) -> str:
        """``conn_id:table`` or the path, unless ``dataset`` names it."""
        return self.dataset or self.source_name()

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

    def gather(self, baseline: Baseline, start: datetime | None, end: datetime | None) -> Profile:
        """The window's profile over the baseline's columns (pushed down for SQL sources)."""
        from airflow_mlobs.sources import drift_frame as frame_source  # numpy and pandas: not at parse time

        specs = list(baseline.columns.values())
        if self.path:
            frame = file_source.read_window(
                self.path,
                [s.name for s in specs],
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
            )
            return frame_source.profile_frame(
                frame, specs, window_start=start, window_end=end, max_categories=self.max_categories
            )
        assert self.conn_id is not None
        with connected(self.conn_id) as engine:
            profile, stats = profile_sql(
                engine,
                specs,
                table=parse_table_name(self.table) if self.table else None,
                sql=self.sql,
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
                naive_zone=get_zone(self.timestamp_timezone),
                where=self.where,
                max_categories=self.max_categories,
            )
        self.log.info(
            "Profiled %s in the database: %d statements, %d rows fetched",
            self.source_name(),
            stats.statements,
            stats.rows_fetched,
        )
        return profile

    def evaluate(self, context: Context) -> CheckResult:
        """Load the baseline, profile the window, store the profile, compare."""

        dataset = self.dataset_name()
        judged = judged_window(
            context,
            self.window,
            start=self.window_start,
            end=self.window_end,
            required=self.timestamp_column is not None,
        )
        start, end = judged.start, judged.end
        directory = settings.baseline_dir(self.baseline_dir)
        baseline = load_baseline(directory, self.baseline, self.baseline_version)
        requested = [*(self.columns or []), *self.prediction_columns]
        unknown = [c for c in requested if c not in baseline.columns]
        if unknown:
            raise MlobsInputError(
                f"baseline {baseline.name} {baseline.version} was built for other columns: it has no "
                f"{', '.join(map(repr, unknown))} (it has {', '.join(baseline.columns)}); rebuild it with these columns"
            )
        profile = self.gather(baseline, start, end)
        partition = self.partition_name(context)
        if self.store_profile and profile.row_count:
            engine = results_engine(self.results_conn_id)
            try:
                ResultsStore(engine).save_profile(
                    dataset, f"{baseline.name}/{baseline.version}", profile, partition=partition
                )
            finally:
                engine.dispose()
        result = judge_profile(
            baseline,
            profile,
            self.settings,
            dataset=dataset,
            columns=self.columns,
            prediction_columns=self.prediction_columns,
            window_start=start,
            window_end=end,
        )
        if partition is not None:
            result = replace(result, metrics={**result.metrics, "partition": partition})
        return with_window_basis(result, judged)


def judge_profile(
    baseline: Baseline,
    profile: Profile,
    settings: DriftSettings,
    *,
    dataset: str,
    columns: Sequence[str] | None,
    prediction_columns: Sequence[str],
    window_start: datetime | None,
    window_end: datetime | None,
) -> CheckResult:
    """Compare a window's profile with the baseline: the feature columns (default: the baseline's,
    minus the prediction columns) decide the status; prediction columns are judged apart and
    folded in (:func:`with_prediction_drift`). Shared by the drift check and the partition merge."""
    from airflow_mlobs.core.drift import compare  # scipy: not at parse time

    features = list(columns or [c for c in baseline.columns if c not in prediction_columns])
    result = compare(
        baseline,
        profile,
        settings,
        dataset=dataset,
        columns=features,
        window_start=window_start,
        window_end=window_end,
    )
    if prediction_columns and profile.row_count:
        predictions = compare(
            baseline,
            profile,
            replace(settings, drift_share=1e-9),
            dataset=dataset,
            columns=list(prediction_columns),
            window_start=window_start,
            window_end=window_end,
        )
        result = with_prediction_drift(result, predictions)
    return result


def with_prediction_drift(features: CheckResult, predictions: CheckResult) -> CheckResult:
    """Fold the prediction-drift result into the feature result: findings prefixed ``prediction:``."""
    findings = (
        *features.findings,
        *(replace(f, subject=f"prediction:{f.subject}") for f in predictions.findings),
    )
    reading = DriftReading.of(predictions)
    drifted = reading.drifted_columns if reading else ()
    summary = features.summary
    if drifted:
        shown = ", ".join(f"{d.column} ({d.method} {d.value:.3g})" for d in drifted)
        summary += f"; prediction drift: {shown}"
    metrics = dict(features.metrics)
    metrics["prediction"] = dict(predictions.metrics)
    status = worst([features.status, predictions.status])
    return replace(features, status=status, summary=summary, findings=findings, metrics=metrics)
