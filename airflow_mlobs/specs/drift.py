"""The drift checks as plain specs: building a baseline (:class:`BaselineSpec`) and judging a window
against it (:class:`DriftSpec`), each gathered once and judged once.

Used by ``BaselineOperator``, ``DriftCheckOperator`` and ``DriftMergeOperator`` (which shares
:func:`judge_profile` and :func:`checked_baseline`), and by the command line
(``python -m airflow_mlobs baseline``) through :func:`~airflow_mlobs.specs.base.url_connected`.
A table or query is profiled in the database (only aggregates are fetched); a file is read in
memory, only the needed columns and rows. Importing this module loads no Airflow, pandas or scipy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.drift_settings import DEFAULT_MIN_ROWS, DriftSettings, Threshold
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    Baseline,
    ColumnKind,
    Profile,
    baseline_path,
    check_pseudonym_key,
    load_baseline,
)
from airflow_mlobs.core.readings import DriftReading
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst
from airflow_mlobs.core.timeutil import get_zone, parse_moment
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.specs.base import Connector, connector_or_default, source_label

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

KeepProfile = Callable[[Baseline, Profile], None]
"""Stores a window's profile (the operator writes it to the results history)."""


@dataclass(frozen=True, kw_only=True)
class DriftSource:
    """Where the data is: exactly one of ``table`` or ``sql`` (on ``conn_id``) or ``path``, with an
    optional SQL ``where`` and the ``timestamp_column`` that bounds a window (naive timestamps read
    in ``timestamp_timezone``).

    ``sensitive_columns``: columns whose values never leave the gatherer (:mod:`airflow_mlobs.core.privacy`):
    categorical ones are counted by keyed pseudonyms made with ``pseudonym_key`` (required for
    them), numeric ones keep no minimum, maximum or extreme bin edge (see
    :class:`~airflow_mlobs.core.profile.ColumnSpec`)."""

    conn_id: str | None = None
    table: str | None = None
    sql: str | None = None
    path: str | None = None
    where: str | None = None
    timestamp_column: str | None = None
    timestamp_timezone: str = "UTC"
    sensitive_columns: tuple[str, ...] = ()
    pseudonym_key: PseudonymKey | None = field(default=None, repr=False, compare=False)

    def validate_source(self, task_id: str) -> None:
        """``ValueError`` naming the task unless exactly one source is given (SQL ones with a
        connection)."""
        given = [n for n in ("table", "sql", "path") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(f"{task_id}: give exactly one of table, sql or path (got {given or 'none'})")
        if (self.table or self.sql) and not self.conn_id:
            raise ValueError(f"{task_id}: a table or sql source needs conn_id")

    def source_name(self) -> str:
        """``conn_id:table``, ``conn_id:query`` or the path."""
        return source_label(self.conn_id, table=self.table, sql=self.sql, path=self.path)

    def read_frame(
        self, columns: Sequence[str] | None, start: datetime | None, end: datetime | None
    ) -> pd.DataFrame:
        """The file's rows in ``[start, end)`` (by ``timestamp_column``), only ``columns`` (and the
        timestamp column) when given."""
        assert self.path is not None
        wanted = [*columns, *([self.timestamp_column] if self.timestamp_column else [])] if columns else None
        frame: pd.DataFrame = file_source.read_window(
            self.path,
            wanted,
            timestamp_column=self.timestamp_column,
            window_start=start,
            window_end=end,
        )
        return frame


@dataclass(frozen=True, kw_only=True)
class BaselineSpec(DriftSource):
    """A baseline to build from reference data and store as ``<dir>/<baseline>/<version>.json``.

    ``reference_start``/``reference_end`` (datetimes or ISO text, UTC without a zone) bound the
    reference rows by ``timestamp_column``; ``columns`` default to every numeric and text column,
    ``kinds`` override the kind found (``{"zip_code": "categorical"}``); ``bins`` quantile bins per
    numeric column; ``calibrate_chunk_size`` (files only) calibrates data-driven thresholds on
    ``calibrate_chunks`` reference samples of that size. ``sample``/``sample_rows``/``sample_key``/
    ``sample_seed`` build it from a sample, as for :class:`DriftSpec`: edges, counts (and the
    calibration, for a file) are the sample's, and the reference profile records how it was sampled.
    """

    baseline: str
    version: str
    reference_start: datetime | str | None = None
    reference_end: datetime | str | None = None
    columns: tuple[str, ...] | None = None
    kinds: Mapping[str, ColumnKind] = field(default_factory=dict)
    bins: int = DEFAULT_BINS
    max_categories: int = DEFAULT_MAX_CATEGORIES
    calibrate_chunk_size: int | None = None
    calibrate_chunks: int = 20
    sample: str | float | None = None
    sample_rows: int | None = None
    sample_key: str | None = None
    sample_seed: int = 0

    def validate(self, task_id: str) -> None:
        """``ValueError`` naming the task for an impossible source, kind or sample."""
        self.validate_source(task_id)
        from airflow_mlobs.core.sampling import parse_sample

        try:
            parse_sample(self.sample, self.sample_rows, self.sample_seed, self.sample_key)
        except ValueError as exc:
            raise ValueError(f"task {task_id!r}: {exc}") from exc
        bad = {c: k for c, k in self.kinds.items() if k not in ("numeric", "categorical")}
        if bad:
            raise ValueError(f"{task_id}: kinds must be 'numeric' or 'categorical', got {bad}")

    def build(self, *, connect: Connector | None = None) -> Baseline:
        """Build the baseline from the source (pushed down for a table or query)."""
        # numpy, pandas and pyarrow load when a check runs, never when a DAG imports the spec.
        from airflow_mlobs.core.sampling import parse_sample
        from airflow_mlobs.sources import drift_frame as frame_source
        from airflow_mlobs.sources.baseline_sql import build_baseline_sql

        sampling = parse_sample(self.sample, self.sample_rows, self.sample_seed, self.sample_key)
        start = parse_moment(self.reference_start, "reference_start")
        end = parse_moment(self.reference_end, "reference_end")
        columns = list(self.columns) if self.columns is not None else None
        if self.path:
            key = (
                [sampling.key]
                if sampling and sampling.key and columns and sampling.key not in columns
                else []
            )
            frame = self.read_frame([*columns, *key] if columns else None, start, end)
            frame, info = frame_sample(frame, sampling, self.source_name())
            if self.timestamp_column and self.timestamp_column in frame.columns and not columns:
                frame = frame.drop(columns=[self.timestamp_column])
            baseline = frame_source.build_baseline(
                frame,
                name=self.baseline,
                version=self.version,
                columns=columns,
                kinds=dict(self.kinds),
                bins=self.bins,
                max_categories=self.max_categories,
                source=str(self.path),
                sensitive_columns=self.sensitive_columns,
                pseudonym_key=self.pseudonym_key,
            )
            if self.calibrate_chunk_size:
                baseline = frame_source.calibrate_baseline(
                    frame,
                    baseline,
                    chunk_size=self.calibrate_chunk_size,
                    chunks=self.calibrate_chunks,
                    pseudonym_key=self.pseudonym_key,
                )
            if info is not None:
                sampled = replace(info, sampled_rows=baseline.reference.row_count)
                baseline = replace(baseline, reference=replace(baseline.reference, sample=sampled))
            return baseline
        assert self.conn_id is not None
        with connector_or_default(connect)(self.conn_id) as engine:
            return build_baseline_sql(
                engine,
                name=self.baseline,
                version=self.version,
                table=parse_table_name(self.table) if self.table else None,
                sql=self.sql,
                columns=columns,
                kinds=dict(self.kinds),
                timestamp_column=self.timestamp_column,
                window_start=start,
                window_end=end,
                naive_zone=get_zone(self.timestamp_timezone),
                where=self.where,
                bins=self.bins,
                max_categories=self.max_categories,
                source=self.source_name(),
                sensitive_columns=self.sensitive_columns,
                pseudonym_key=self.pseudonym_key,
                sampling=sampling,
            )

    def ensure(
        self, directory: Path | Any, *, overwrite: bool = False, connect: Connector | None = None
    ) -> CheckResult:
        """Build and store the baseline in ``directory`` unless that version exists there
        (``overwrite`` rebuilds it); a ``pass`` result saying which, with the columns covered."""
        target = baseline_path(directory, self.baseline, self.version)
        name = f"baseline {self.baseline} {self.version}"
        if target.exists() and not overwrite:
            # A kept baseline built before a column was declared sensitive stores its values: an
            # error saying to rebuild it, not a silent pass.
            stored = checked_sensitive(
                load_baseline(directory, self.baseline, self.version),
                self.sensitive_columns,
                None,
                key_needed=False,
            )
            summary = f"{name} already exists at {target}; kept (overwrite=False)"
            created = False
        else:
            stored = self.build(connect=connect)
            target = stored.save(directory)
            sampled = f", {stored.reference.sample.describe()}" if stored.reference.sample else ""
            summary = f"built {name} from {self.source_name()} ({stored.reference.row_count} rows{sampled}) at {target}"
            created = True
        columns = stored.columns.values()
        return CheckResult(
            check="baseline",
            dataset=f"baseline:{self.baseline}/{self.version}",
            status=Status.PASS,
            summary=summary,
            metrics={
                "baseline": self.baseline,
                "version": self.version,
                "path": str(target),
                "created": created,
                "reference_rows": stored.reference.row_count,
                "numeric_columns": sorted(c.name for c in columns if c.kind == "numeric"),
                "categorical_columns": sorted(c.name for c in columns if c.kind == "categorical"),
                "calibrated": bool(stored.thresholds),
                "sample": stored.reference.sample.to_dict() if stored.reference.sample else None,
            },
        )


@dataclass(frozen=True, kw_only=True)
class DriftSpec(DriftSource):
    """A window of the source judged against a stored baseline.

    ``columns`` are the features that decide the status (default: the baseline's, minus
    ``prediction_columns``, which are judged apart and reported as prediction drift); ``settings``
    how each column and the dataset are judged (:func:`drift_settings_arg` builds them from the
    operators' arguments); ``max_categories`` the categories kept per column in the profile.
    """

    baseline: str
    baseline_version: str | None = None
    columns: tuple[str, ...] | None = None
    prediction_columns: tuple[str, ...] = ()
    settings: DriftSettings = field(default_factory=DriftSettings)
    max_categories: int = DEFAULT_MAX_CATEGORIES
    dataset: str | None = None
    #: Profile a sample: ``sample="1%"`` (or 0.01) or ``sample_rows=200_000``; ``sample_key`` an
    #: integer key column for the deterministic hash sample (needed where the database has no block
    #: sampling, and for ``sql=``); ``sample_seed`` the repeatable seed. See core/sampling.py.
    sample: str | float | None = None
    sample_rows: int | None = None
    sample_key: str | None = None
    sample_seed: int = 0

    def validate(self, task_id: str) -> None:
        """``ValueError`` naming the task for an impossible source."""
        self.validate_source(task_id)
        from airflow_mlobs.core.sampling import parse_sample

        try:
            parse_sample(self.sample, self.sample_rows, self.sample_seed, self.sample_key)
        except ValueError as exc:
            raise ValueError(f"task {task_id!r}: {exc}") from exc

    def dataset_name(self) -> str:
        """``dataset`` if given, else ``conn_id:table``, ``conn_id:query`` or the path."""
        return self.dataset or self.source_name()

    def load(self, directory: Path | Any) -> Baseline:
        """The baseline (its newest version unless ``baseline_version``), checked to cover the
        requested columns."""
        baseline = checked_baseline(
            load_baseline(directory, self.baseline, self.baseline_version),
            [*(self.columns or ()), *self.prediction_columns],
        )
        return checked_sensitive(baseline, self.sensitive_columns, self.pseudonym_key)

    def gather(
        self,
        baseline: Baseline,
        start: datetime | None,
        end: datetime | None,
        *,
        connect: Connector | None = None,
    ) -> Profile:
        """The window's profile over the baseline's columns (pushed down for a table or query)."""
        # numpy, pandas and SQLAlchemy load when a check runs, never when a DAG imports the spec.
        from airflow_mlobs.core.sampling import parse_sample
        from airflow_mlobs.sources import drift_frame as frame_source
        from airflow_mlobs.sources.drift_sql import profile_sql

        sampling = parse_sample(self.sample, self.sample_rows, self.sample_seed, self.sample_key)
        specs = list(baseline.columns.values())
        if self.path:
            wanted = [s.name for s in specs]
            if sampling is not None and sampling.key and sampling.key not in wanted:
                wanted.append(sampling.key)
            frame = self.read_frame(wanted, start, end)
            frame, info = frame_sample(frame, sampling, self.source_name())
            profile = frame_source.profile_frame(
                frame,
                specs,
                window_start=start,
                window_end=end,
                max_categories=self.max_categories,
                pseudonym_key=self.pseudonym_key,
            )
            if info is not None:
                return replace(profile, sample=replace(info, sampled_rows=profile.row_count))
            joint = baseline.joint
            if joint is not None and all(c in frame.columns for c in joint.reference.columns):
                from airflow_mlobs.sources.covariance_frame import covariance_profile_of

                window = covariance_profile_of(frame, joint.reference.columns, joint.reference.shift)
                profile = replace(profile, joint=window)
            return profile
        assert self.conn_id is not None
        with connector_or_default(connect)(self.conn_id) as engine:
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
                pseudonym_key=self.pseudonym_key,
                sampling=sampling,
            )
            if baseline.joint is not None and sampling is None and profile.row_count:
                window = self._gather_joint(engine, baseline, start, end)
                if not isinstance(window, str):
                    profile = replace(profile, joint=window)
                else:
                    log.info("Joint drift not gathered for %s: %s", self.source_name(), window)
        log.info(
            "Profiled %s in the database: %d statements, %d rows fetched",
            self.source_name(),
            stats.statements,
            stats.rows_fetched,
        )
        return profile

    def _gather_joint(
        self,
        engine: Any,
        baseline: Baseline,
        start: datetime | None,
        end: datetime | None,
    ) -> Any:
        """The window's covariance profile in one more statement (or the reason it is not)."""
        from airflow_mlobs.sources.covariance_sql import gather_window_covariance

        assert baseline.joint is not None
        reference = baseline.joint.reference
        window, _ = gather_window_covariance(
            engine,
            reference.columns,
            reference.shift,
            table=parse_table_name(self.table) if self.table else None,
            sql=self.sql,
            timestamp_column=self.timestamp_column,
            window_start=start,
            window_end=end,
            naive_zone=get_zone(self.timestamp_timezone),
            where=self.where,
        )
        return window

    def judge(
        self, baseline: Baseline, profile: Profile, start: datetime | None, end: datetime | None
    ) -> CheckResult:
        """The window's profile compared with the baseline (:func:`judge_profile`); a sampled
        profile's result says so (``metrics["sample"]`` and the summary)."""
        result = judge_profile(
            baseline,
            profile,
            self.settings,
            dataset=self.dataset_name(),
            columns=self.columns,
            prediction_columns=self.prediction_columns,
            window_start=start,
            window_end=end,
        )
        return with_sample(result, profile, baseline)

    def evaluate(
        self,
        directory: Path | Any,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        connect: Connector | None = None,
        keep_profile: KeepProfile | None = None,
    ) -> CheckResult:
        """Load the baseline from ``directory``, profile the window ``[window_start, window_end)``
        once, hand a non-empty profile to ``keep_profile`` (to store it), judge it once."""
        baseline = self.load(directory)
        profile = self.gather(baseline, window_start, window_end, connect=connect)
        if keep_profile is not None and profile.row_count:
            keep_profile(baseline, profile)
        return self.judge(baseline, profile, window_start, window_end)


def with_sample(result: CheckResult, profile: Profile, baseline: Baseline | None = None) -> CheckResult:
    """A result of a sampled window or a sampled ``baseline``: says so and with what error.

    ``metrics["sample"]`` (a sampled window) holds the rate, method, seed, key, row estimate,
    sampled row count, whether it is repeatable, and ``psi_standard_error``: per numeric column, the
    delta-method standard error of the (unsmoothed) PSI of the window's bin shares over the
    baseline's (:func:`airflow_mlobs.core.sampling.psi_standard_error`). ``metrics["baseline_sample"]``
    says how a sampled baseline was sampled. ``metrics["sampling_error"]`` (either sampled) holds
    per judged column the sampling standard error of the effect size that decided it
    (``standard_error``, see :func:`airflow_mlobs.core.drift.compare`) and the ``borderline``
    columns (past the fail threshold only within their error: warned, not failed). The summary ends
    with how each side was sampled. p-values already come from the sampled counts (nothing scales
    them up). All errors are row-sample theory, which understates a clustered block sample's."""
    from airflow_mlobs.core.profile import NumericProfile
    from airflow_mlobs.core.sampling import Z, psi_standard_error

    info = profile.sample
    base = baseline.reference.sample if baseline is not None else None
    if info is None and base is None:
        return result
    metrics = dict(result.metrics)
    summary = result.summary
    if info is not None:
        errors: dict[str, float] = {}
        for name, column in profile.columns.items():
            reference = baseline.reference.columns.get(name) if baseline is not None else None
            if not (isinstance(column, NumericProfile) and isinstance(reference, NumericProfile)):
                continue
            if sum(column.bins) <= 0 or sum(reference.bins) <= 0 or len(column.bins) != len(reference.bins):
                continue
            expected = [b / sum(reference.bins) for b in reference.bins]
            actual = [b / sum(column.bins) for b in column.bins]
            errors[name] = psi_standard_error(expected, actual, sum(column.bins))
        metrics["sample"] = {**info.to_dict(), "psi_standard_error": errors}
        summary += f" ({info.describe()})"
    if base is not None:
        metrics["baseline_sample"] = base.to_dict()
        summary += f" (baseline {base.describe()})"
    judged = metrics.get("columns")
    columns = judged if isinstance(judged, Mapping) else {}
    metrics["sampling_error"] = {
        "z": Z,
        "standard_error": {
            n: c["standard_error"] for n, c in columns.items() if c.get("standard_error") is not None
        },
        "borderline": sorted(n for n, c in columns.items() if c.get("borderline")),
    }
    return replace(result, metrics=metrics, summary=summary)


def frame_sample(frame: Any, sampling: Any, where: str) -> tuple[Any, Any]:
    """A deterministic in-memory row sample of a DataFrame: the key hash on ``sampling.key`` if
    given, else rows kept by a seeded uniform draw per row position (``numpy.random.default_rng
    (seed)``), so rows are independent draws; ``(frame, None)`` without sampling."""
    if sampling is None:
        return frame, None
    import numpy as np

    from airflow_mlobs.core.sampling import (
        HASH_MODULUS,
        SampleInfo,
        hash_parameters,
        hash_threshold,
        resolve_rate,
    )

    rate = resolve_rate(sampling, len(frame))
    if sampling.key:
        if sampling.key not in frame.columns:
            raise ValueError(f"sample_key column {sampling.key!r} not found in {where}")
        keys = np.abs(frame[sampling.key].to_numpy(dtype="int64")) % HASH_MODULUS
        multiplier, offset = hash_parameters(sampling.seed)
        keep = (keys * multiplier + offset) % HASH_MODULUS < hash_threshold(rate)
        method = "key-hash"
    else:
        keep = np.random.default_rng(sampling.seed).random(len(frame)) < rate
        method = "rows"
    info = SampleInfo(
        rate=rate,
        method=method,
        seed=sampling.seed,
        sampled_rows=int(keep.sum()),
        key=sampling.key,
        estimate=len(frame) if sampling.rate is None else None,
    )
    return frame[keep], info


def checked_sensitive(
    baseline: Baseline,
    sensitive_columns: Sequence[str],
    key: PseudonymKey | None,
    *,
    key_needed: bool = True,
) -> Baseline:
    """``baseline`` when every column declared sensitive was built as one (else its stored edges or
    categories hold values: ``MlobsInputError`` saying to rebuild it with ``sensitive_columns``),
    and its pseudonymized columns can be gathered with ``key`` (the same key: a clear error
    instead of a silent full drift; not checked without ``key_needed``: the partition merge adds
    stored profiles, already pseudonymized). A column the baseline marks sensitive stays sensitive
    even when the check does not declare it."""
    raw = [c for c in sensitive_columns if c in baseline.columns and not baseline.columns[c].sensitive]
    if raw:
        raise MlobsInputError(
            f"baseline {baseline.name} {baseline.version} was built without "
            f"{', '.join(map(repr, raw))} as sensitive columns, so it stores their values; rebuild it "
            "with sensitive_columns naming them (BaselineOperator overwrite=True, or a new version)"
        )
    if key_needed:
        for spec in baseline.columns.values():
            check_pseudonym_key(spec, key)
    return baseline


def checked_baseline(baseline: Baseline, requested: Sequence[str]) -> Baseline:
    """``baseline`` when it covers every ``requested`` column, else ``MlobsInputError`` naming the
    missing ones and those it has."""
    unknown = [c for c in requested if c not in baseline.columns]
    if unknown:
        raise MlobsInputError(
            f"baseline {baseline.name} {baseline.version} was built for other columns: it has no "
            f"{', '.join(map(repr, unknown))} (it has {', '.join(baseline.columns)}); rebuild it "
            "with these columns or name columns of the baseline"
        )
    return baseline


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
    from airflow_mlobs.core.drift import compare  # scipy: not when a DAG imports the spec

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
    return with_joint_drift(result, baseline, profile, features)


JOINT_SUBJECT = "(joint)"


def joint_not_judged_reason(
    baseline: Baseline, profile: Profile, features: Sequence[str] | None = None
) -> str | None:
    """Why joint drift cannot be judged for this window, or ``None`` when it can."""
    if baseline.joint is None:
        return (
            f"the baseline has no joint model ({baseline.joint_reason})"
            if baseline.joint_reason
            else "the baseline has no covariance profile (built before joint drift); rebuild it to judge joint drift"
        )
    outside = [c for c in baseline.joint.reference.columns if features is not None and c not in features]
    if outside:
        return (
            f"the baseline's joint model also covers {', '.join(outside)}, which this check does not "
            "judge as a feature (a prediction column, or columns= narrower than the baseline); build "
            "the baseline with columns= the features to judge joint drift"
        )
    if not profile.row_count:
        return "no rows in the window"
    if profile.sample is not None:
        return "the window was sampled (joint drift is judged on every row only)"
    if profile.joint is None:
        missing = [c for c in baseline.joint.reference.columns if c in profile.missing_columns]
        if missing:
            return f"columns missing from the window: {', '.join(missing)}"
        return "the window has no covariance profile (merged profiles stored before joint drift, or a windowed sql query)"
    return None


def _shown(value: float | None) -> float | None:
    """A reported joint-drift figure to 6 significant digits: a merged window's sums add in
    another order than the whole window's, and its figures must read the same."""
    return None if value is None else float(f"{value:.6g}")


def with_joint_drift(
    result: CheckResult, baseline: Baseline, profile: Profile, features: Sequence[str] | None = None
) -> CheckResult:
    """Fold joint (multivariate) drift into the result (:func:`~airflow_mlobs.core.covariance.judge_joint`):
    ``metrics["joint_drift"]`` always (``judged`` False with the ``reason`` when it could not be
    judged); a ``fail`` finding on :data:`JOINT_SUBJECT` and the status at least ``fail`` when the
    window's reconstruction error is past the baseline's threshold."""
    from airflow_mlobs.core.covariance import judge_joint

    reason = joint_not_judged_reason(baseline, profile, features)
    metrics = dict(result.metrics)
    if reason is not None:
        metrics["joint_drift"] = {"judged": False, "reason": f"joint drift not judged: {reason}"}
        return replace(result, metrics=metrics)
    assert baseline.joint is not None and profile.joint is not None
    verdict = judge_joint(baseline.joint, profile.joint)
    if verdict.drifted is None:
        metrics["joint_drift"] = {
            "judged": False,
            "reason": verdict.message(),
            "n": verdict.n,
            "dropped": verdict.dropped,
        }
        return replace(result, metrics=metrics)
    metrics["joint_drift"] = {
        "judged": True,
        "drifted": verdict.drifted,
        "error": _shown(verdict.error),
        "expected": _shown(verdict.expected),
        "sd": _shown(verdict.expected_sd),
        "threshold": _shown(verdict.threshold),
        "n": verdict.n,
        "dropped": verdict.dropped,
        "columns": list(baseline.joint.reference.columns),
        "pairs": [
            {"left": p.left, "right": p.right, "reference": _shown(p.reference), "window": _shown(p.window)}
            for p in verdict.pairs
        ],
        "message": verdict.message(),
    }
    if not verdict.drifted:
        return replace(result, metrics=metrics)
    finding = Finding(
        JOINT_SUBJECT,
        "reconstruction_error",
        Status.FAIL,
        value=_shown(verdict.error),
        threshold=_shown(verdict.threshold),
        reason=verdict.message(),
    )
    return replace(
        result,
        status=worst([result.status, Status.FAIL]),
        summary=f"{result.summary}; {verdict.message()}",
        findings=(*result.findings, finding),
        metrics=metrics,
    )


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


def drift_settings_arg(
    task_id: str,
    *,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    correction: str = "bh",
    drift_share: float = 0.5,
    warn_share: float | None = None,
    importances: Mapping[str, float] | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> DriftSettings:
    """The drift operators' settings arguments as :class:`DriftSettings`, checked when the DAG is
    parsed: a ``ValueError`` naming the task, the argument and what it allows."""
    try:
        return DriftSettings(
            methods=dict(methods or {}),  # type: ignore[arg-type]
            thresholds={c: threshold_arg(v, c) for c, v in (thresholds or {}).items()},
            correction=correction,  # type: ignore[arg-type]
            drift_share=drift_share,
            warn_share=warn_share,
            importances=dict(importances or {}),
            min_rows=min_rows,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{task_id}: {exc}") from exc


def threshold_arg(value: Any, column: str) -> Threshold:
    """A per-column ``thresholds`` argument: a number (warn = fail), ``(warn, fail)`` or a Threshold."""
    if isinstance(value, Threshold):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Threshold(warn=float(value), fail=float(value))
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return Threshold(warn=float(value[0]), fail=float(value[1]))
    raise ValueError(f"threshold for {column!r} must be a number or (warn, fail), got {value!r}")


def partition_list(value: Any) -> list[str]:
    """The rendered ``partitions`` of a merge: a list, or text (a JSON or Python list, or
    comma-separated)."""
    if isinstance(value, str):
        import ast

        text = value.strip()
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = [part.strip() for part in text.split(",") if part.strip()]
        value = parsed if isinstance(parsed, list | tuple) else [parsed]
    if not isinstance(value, list | tuple):
        raise MlobsInputError(f"partitions must be a list of partition names, got {type(value).__name__}")
    return [str(p) for p in value]


def merge_partitions(
    found: Sequence[tuple[str, Profile]],
    wanted: Sequence[str] | None,
    *,
    where: str,
    dataset: str,
    max_categories: int,
) -> tuple[list[tuple[str, Profile]], Profile]:
    """The stored partition profiles to merge (all of ``found``, or exactly ``wanted``) and their
    sum (:meth:`Profile.merge`). ``MlobsInputError`` saying ``where`` when none was stored or a
    wanted one is missing: a merge of fewer partitions than expected would judge part of the data
    under the whole dataset's name."""
    if not found:
        raise MlobsInputError(
            f"no partition profiles stored {where}: nothing to merge. Run the mapped "
            f"DriftCheckOperator tasks for this window first, with dataset={dataset!r}, the same "
            "baseline version and results connection, and store_profile=True"
        )
    chosen = list(found)
    if wanted is not None:
        stored = {partition for partition, _ in found}
        missing = [p for p in wanted if p not in stored]
        if missing:
            raise MlobsInputError(
                f"partition profiles missing {where}: {', '.join(map(repr, missing))} of "
                f"{len(wanted)} expected (stored: {', '.join(map(repr, sorted(stored))) or 'none'}); "
                "run those partitions' drift tasks first"
            )
        chosen = [(partition, profile) for partition, profile in found if partition in set(wanted)]
    merged = chosen[0][1]
    for _, profile in chosen[1:]:
        merged = merged.merge(profile, max_categories)
    return chosen, merged


def with_partitions(result: CheckResult, merged: Sequence[tuple[str, Profile]]) -> CheckResult:
    """A merged window's result naming the partitions it added up and their rows."""
    names = [partition for partition, _ in merged]
    metrics = {
        **result.metrics,
        "partitions_merged": len(names),
        "partitions": names,
        "partition_rows": {partition: profile.row_count for partition, profile in merged},
    }
    summary = f"{len(names)} partitions merged ({', '.join(names)}): {result.summary}"
    return replace(result, summary=summary, metrics=metrics)
