"""In-memory gathering from pandas (or pyarrow) data: baselines and profiles, vectorised numpy.

The SQL gatherer (:mod:`airflow_mlobs.sources.drift_sql`) produces the same :class:`Profile` for the same
rows; the definitions live in :mod:`airflow_mlobs.core.profile`. No per-row Python: numeric columns
are binned with ``numpy.searchsorted`` + ``numpy.bincount``; categories are counted with
``value_counts`` and only the distinct values are converted to text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlobs.core.covariance import FOLDS, JointDriftModel, build_joint_model
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.core.profile import (
    DEFAULT_BINS,
    DEFAULT_CATEGORICAL_MAX_DISTINCT,
    DEFAULT_MAX_CATEGORIES,
    MOMENT_SHIFT,
    MOMENT_SPLIT,
    MOMENT_TINY,
    Baseline,
    CategoricalProfile,
    ColumnKind,
    ColumnProfile,
    ColumnSpec,
    NumericProfile,
    Profile,
    capped,
    check_baseline_args,
    check_pseudonym_key,
    constant_split,
    count_unseen,
    edges_key,
    moment_shift,
    quantile_levels,
    reference_joint_inputs,
    sensitive_key,
    split_moments,
    split_sum,
    tail_width,
    without_extremes,
)
from airflow_mlobs.core.types import category_text
from airflow_mlobs.sources.covariance_frame import covariance_folds_of_array


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    try:  # pyarrow Table / RecordBatch
        frame = data.to_pandas()
    except AttributeError as exc:
        raise MlobsInputError(
            f"expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}"
        ) from exc
    if not isinstance(frame, pd.DataFrame):
        raise MlobsInputError(f"expected a DataFrame, got {type(frame).__name__}")
    return frame


def infer_kind(
    series: pd.Series, categorical_max_distinct: int = DEFAULT_CATEGORICAL_MAX_DISTINCT
) -> ColumnKind | None:
    """``numeric``, ``categorical``, or ``None`` for columns drift does not cover (datetimes)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_timedelta64_dtype(series.dtype):
        return None
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric" if distinct_exceeds(series, categorical_max_distinct) else "categorical"
    return "categorical"


#: First slice :func:`distinct_exceeds` deduplicates; each next one is twice as long, up to the cap.
_DISTINCT_FIRST = 4_096
_DISTINCT_CAP = 1 << 20


def distinct_exceeds(series: pd.Series, limit: int) -> bool:
    """Whether ``series`` has more than ``limit`` distinct non-missing values, as
    ``series.nunique(dropna=True) > limit`` says, without hashing every value of a column with many.

    A full ``nunique`` builds a hash table of every distinct value: for a continuous column of 10M
    rows that is 10M entries, most of a baseline build and worse than linear (cache misses). The
    distinct values of the whole are the distinct values of the distinct values of its slices, so
    slices of growing length are deduplicated one after the other (the same pandas hashing as
    ``nunique``) and the answer is known as soon as more than ``limit`` have been seen: after the
    first 4,096 rows for a continuous column. Only a column with at most ``limit`` distinct values is
    read to its end, into a table of at most ``limit + 1`` entries."""
    seen: pd.Series | None = None
    start, step = 0, _DISTINCT_FIRST
    while start < len(series):
        part = series.iloc[start : start + step].drop_duplicates()
        seen = part if seen is None else pd.concat([seen, part], ignore_index=True).drop_duplicates()
        if seen.nunique(dropna=True) > limit:
            return True
        start += step
        step = min(2 * step, _DISTINCT_CAP)
    return False


def quantile_edges(
    values: np.ndarray[Any, Any], bins: int = DEFAULT_BINS, *, sensitive: bool = False
) -> tuple[float, ...]:
    """Bin edges at the reference quantiles :func:`quantile_levels` (the "lower" order statistic,
    ``numpy.quantile(method="lower")``, so every edge is an observed value), tied edges removed.
    Empty input gives no edges; a constant column the constant and the next double above it
    (:func:`~airflow_mlobs.core.profile.constant_split`). A ``sensitive`` column has no edge at its
    minimum, maximum or extreme tail levels (:func:`quantile_levels`)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ()
    # `finite` is a copy (boolean indexing): numpy may partition it in place instead of copying again.
    edges = np.quantile(
        finite, quantile_levels(bins, sensitive=sensitive), method="lower", overwrite_input=True
    )
    return constant_split(tuple(float(e) for e in np.unique(edges)))


def _numeric_values(series: pd.Series) -> tuple[np.ndarray[Any, Any], int, int]:
    """Float values (NaN for missing), the null count, and the count of non-numeric values."""
    nulls = int(series.isna().sum())
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.astype("float64")
    else:
        numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    invalid = int(np.isnan(values).sum()) - nulls
    return values, nulls, max(invalid, 0)


#: Values squared at a time by :func:`sum_of_squares`: 512 KiB of doubles, resident in a core's L2.
_SQUARE_CHUNK = 1 << 16


def sum_of_squares(values: np.ndarray[Any, Any]) -> float:
    """The sum of ``values ** 2`` without BLAS: a chunked multiply into one reused buffer, each chunk
    summed by numpy's pairwise summation.

    ``numpy.dot(x, x)`` calls OpenBLAS, which starts its own threads for long vectors; inside the
    column thread pool of :func:`profile_frame` they spin against the other columns' threads (on 2
    cores the comparison of 1M + 1M rows took 1.8x as long with them). Pairwise sums are also at
    least as accurate as BLAS's blocked dot product, and no array of the squares is allocated."""
    size = int(values.size)
    if size <= _SQUARE_CHUNK:
        return float(np.square(values).sum())
    buffer = np.empty(_SQUARE_CHUNK, dtype=np.float64)
    total = 0.0
    for start in range(0, size, _SQUARE_CHUNK):
        part = values[start : start + _SQUARE_CHUNK]
        out = buffer[: part.size]
        np.multiply(part, part, out=out)
        total += float(out.sum())
    return total


def numeric_profile(series: pd.Series, edges: Sequence[float]) -> NumericProfile:
    """Profile a numeric column over ``edges`` (see :mod:`airflow_mlobs.core.profile`): counts, bins,
    min and max, the moments of the values shifted by :func:`moment_shift` of the edges, and the
    totals of the two open-ended bins."""
    values, nulls, invalid = _numeric_values(series)
    finite_mask = np.isfinite(values)
    non_finite = int((~finite_mask).sum()) - nulls - invalid
    finite = values[finite_mask]
    low = float(finite.min()) if finite.size else None
    high = float(finite.max()) if finite.size else None
    shift = moment_shift(edges)
    edge_values = np.asarray(edges, dtype=np.float64)
    # Counting the values below each edge is the same binning as
    # searchsorted(edges, x, side="right") + bincount, and about 3x faster for a few dozen edges.
    below: list[int] = []
    # The tail regions (core.profile.tail_edges): x < e[1] and x >= e[-2] (e[0], e[-1] with fewer
    # than three edges; none without edges).
    outer: list[np.ndarray[Any, Any]] = []
    width = tail_width(len(edge_values) + 1)
    for index, edge in enumerate(edge_values):
        mask = finite < edge
        below.append(int(np.count_nonzero(mask)))
        if index == width - 1:
            outer.insert(0, mask)
        if index == len(edge_values) - width:
            outer.append(~mask)
    bins = np.diff(np.asarray([0, *below, finite.size], dtype=np.int64))
    # The shifted values, in place: `finite` is a copy (boolean indexing) no longer needed as it is.
    shifted = np.subtract(finite, shift, out=finite) if shift else finite
    outer_totals: list[float | None] = [None, None]
    if (
        low is not None
        and high is not None
        and (low - shift <= -MOMENT_SPLIT or high - shift >= MOMENT_SPLIT)
    ):
        big = np.abs(shifted) >= MOMENT_SPLIT  # the split moments of core.profile, as in the database
        small = shifted[~big]
        squared = small[np.abs(small) >= MOMENT_TINY]
        scaled = np.ldexp(shifted[big], -MOMENT_SHIFT)
        total, total_sq, scale_exp = split_moments(
            float(small.sum()),
            sum_of_squares(squared),
            float(scaled.sum()),
            sum_of_squares(scaled),
            int(np.count_nonzero(big)),
        )
        for side, mask in enumerate(outer):
            outer_totals[side] = split_sum(
                float(shifted[mask & ~big].sum()),
                float(np.ldexp(shifted[mask & big], -MOMENT_SHIFT).sum()),
                scale_exp,
            )
    else:
        # numpy does not fail on an underflow: squares below 2**-1000 count here (the database
        # leaves them out, a difference below 2**-1000 per value).
        total, total_sq, scale_exp = float(shifted.sum()), sum_of_squares(shifted), 0
        for side, mask in enumerate(outer):
            outer_totals[side] = float(shifted[mask].sum())
    return NumericProfile(
        count=int(finite.size),
        nulls=nulls,
        non_finite=non_finite,
        invalid=invalid,
        min=low,
        max=high,
        total=total,
        total_sq=total_sq,
        bins=tuple(int(c) for c in bins),
        scale_exp=scale_exp,
        shift=shift,
        low_total=outer_totals[0],
        high_total=outer_totals[1],
    )


def categorical_profile(
    series: pd.Series,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    categories: Sequence[str] = (),
    *,
    pseudonym_key: PseudonymKey | None = None,
) -> CategoricalProfile:
    """Count categories by their canonical text (:func:`category_text`); with the baseline's
    ``categories``, also the values not among them (``unseen``, before folding). With
    ``pseudonym_key`` (a sensitive column) each value is counted by its keyed pseudonym of that
    text instead, as the SQL gatherer does: no value's text is kept."""
    nulls = int(series.isna().sum())
    counts: dict[str, int] = {}
    for value, count in series.value_counts(dropna=True, sort=False).items():
        if not count:  # declared but unused categories of a pandas Categorical were not seen
            continue
        key = category_text(value)
        if pseudonym_key is not None:
            key = pseudonym(key, pseudonym_key)
        counts[key] = counts.get(key, 0) + int(count)
    return capped(counts, nulls=nulls, max_categories=max_categories, unseen=count_unseen(counts, categories))


def build_baseline(
    data: Any,
    *,
    name: str,
    version: str,
    columns: Iterable[str] | None = None,
    kinds: Mapping[str, ColumnKind] | None = None,
    bins: int = DEFAULT_BINS,
    categorical_max_distinct: int = DEFAULT_CATEGORICAL_MAX_DISTINCT,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    source: str = "",
    sensitive_columns: Iterable[str] = (),
    pseudonym_key: PseudonymKey | None = None,
) -> Baseline:
    """Build a baseline from reference data: kinds, quantile edges, category sets, reference profile.

    ``columns`` defaults to every column drift can cover (datetimes are left out); ``kinds``
    overrides the inferred kind per column. Raises ``MlobsInputError`` naming unknown columns.
    ``sensitive_columns`` are stored without any value: numeric ones without edges at their
    extremes and without min/max, categorical ones by pseudonyms made with ``pseudonym_key``
    (required for them: :func:`sensitive_spec`).
    """
    sensitive = set(sensitive_columns)
    frame = _as_frame(data)
    names = list(columns) if columns is not None else list(frame.columns)
    unknown = [c for c in names if c not in frame.columns]
    if unknown:
        raise MlobsInputError(
            f"baseline {name!r}: columns not in the reference data: {', '.join(map(str, unknown))}"
        )
    check_baseline_args(name, bins, max_categories)

    def spec_for(column: Any) -> ColumnSpec | None:
        series = frame[column]
        kind = (kinds or {}).get(column) or infer_kind(series, categorical_max_distinct)
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            # Inferred from no finite value at all, the column would become a category `inf`.
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if not np.isfinite(values).any():
                nulls = int(series.isna().sum())
                raise _no_reference_values(name, column, len(series), nulls, len(series) - nulls)
        if kind is None:
            if columns is not None:
                raise MlobsInputError(
                    f"baseline {name!r}: column {column!r} ({series.dtype}) is not numeric or categorical"
                )
            return None
        if kind == "numeric":
            values, nulls, invalid = _numeric_values(series)
            if invalid and invalid == series.notna().sum():
                raise MlobsInputError(
                    f"baseline {name!r}: column {column!r} has no numeric values; declare it categorical"
                )
            finite = int(np.isfinite(values).sum())
            if not finite:
                raise _no_reference_values(name, column, len(series), nulls, len(series) - nulls - invalid)
            return ColumnSpec(
                str(column),
                "numeric",
                edges=quantile_edges(values, bins, sensitive=column in sensitive),
                source_type=str(series.dtype),
                sensitive=column in sensitive,
            )
        else:
            key = sensitive_key(name, str(column), pseudonym_key) if column in sensitive else None
            profile = categorical_profile(series, max_categories, pseudonym_key=key)
            if not profile.count:
                raise _no_reference_values(name, column, len(series), profile.nulls, 0)
            return ColumnSpec(
                str(column),
                "categorical",
                categories=tuple(profile.to_dict()["counts"]),
                source_type=str(series.dtype),
                sensitive=key is not None,
                pseudonym_key_id=key.key_id if key is not None else None,
            )

    # Columns are independent and numpy's partition (the quantiles) releases the GIL: the specs
    # are built in parallel as profile_frame profiles. map() yields in order, so the first
    # column in `names` that is in error is the one raised, as in a plain loop.
    workers = min(len(names), os.cpu_count() or 1)
    if workers > 1 and len(frame) >= 50_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            built = list(pool.map(spec_for, names))
    else:
        built = [spec_for(column) for column in names]
    specs = {str(column): spec for column, spec in zip(names, built, strict=True) if spec is not None}
    reference = profile_frame(frame, specs.values(), pseudonym_key=pseudonym_key)
    joint = joint_model_of(frame, specs, reference)
    return Baseline(
        name=name,
        version=version,
        columns=specs,
        reference=reference,
        created_at=datetime.now(UTC),
        source=source,
        joint=joint if isinstance(joint, JointDriftModel) else None,
        joint_reason=joint if isinstance(joint, str) else "",
    )


def joint_model_of(
    frame: pd.DataFrame, specs: Mapping[str, ColumnSpec], reference: Profile, folds: int = FOLDS
) -> JointDriftModel | str:
    """The joint-drift model over the baseline's non-constant numeric columns, the reference rows
    split into ``folds`` folds by row index, shifted by the reference means
    (:func:`~airflow_mlobs.core.covariance.build_joint_model`); the reason when impossible."""
    chosen = reference_joint_inputs(specs, reference)
    if isinstance(chosen, str):
        return chosen
    columns, shift = chosen
    x = np.column_stack(
        [pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64, na_value=np.nan) for c in columns]
    )
    return build_joint_model(covariance_folds_of_array(x, columns, folds, shift))


def _no_reference_values(name: str, column: Any, rows: int, nulls: int, non_finite: int) -> MlobsInputError:
    """A baseline cannot describe a column the reference has no values for: an error naming it."""
    detail = f"{nulls} NULL" + (f", {non_finite} infinite or NaN" if non_finite else "")
    return MlobsInputError(
        f"baseline {name!r}: column {column!r} has no finite values in the reference ({rows} rows: "
        f"{detail}); fix the reference data or leave the column out of `columns`"
    )


def profile_frame(
    data: Any,
    specs: Iterable[ColumnSpec],
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    pseudonym_key: PseudonymKey | None = None,
) -> Profile:
    """Profile in-memory rows against baseline column specs (missing columns are recorded, not raised).

    Sensitive columns (``spec.sensitive``) leave no value in the profile: pseudonymized categorical
    ones are counted by pseudonyms made with ``pseudonym_key`` (which must be the baseline's:
    :func:`~airflow_mlobs.core.profile.check_pseudonym_key`), numeric ones keep no min/max."""
    frame = _as_frame(data)
    spec_list = list(specs)
    missing: list[str] = []
    errors: dict[str, str] = {}
    work: list[ColumnSpec] = []
    for spec in spec_list:
        check_pseudonym_key(spec, pseudonym_key)
        if spec.name not in frame.columns:
            missing.append(spec.name)
        elif spec.kind == "numeric" and pd.api.types.is_datetime64_any_dtype(frame[spec.name].dtype):
            errors[spec.name] = f"type changed: baseline numeric, now {frame[spec.name].dtype}"
        else:
            work.append(spec)

    def one(spec: ColumnSpec) -> ColumnProfile:
        series = frame[spec.name]
        if spec.kind == "numeric":
            return numeric_profile(series, spec.edges)
        key = pseudonym_key if spec.pseudonym_key_id else None
        return categorical_profile(series, max_categories, spec.categories, pseudonym_key=key)

    # Columns are independent and numpy releases the GIL in its loops: profile them in parallel.
    workers = min(len(work), os.cpu_count() or 1)
    if workers > 1 and len(frame) >= 50_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            profiles = list(pool.map(one, work))
    else:
        profiles = [one(spec) for spec in work]
    columns = {spec.name: profile for spec, profile in zip(work, profiles, strict=True)}
    profile = Profile(
        row_count=len(frame),
        columns=columns,
        edges_key=edges_key(spec_list),
        window_start=window_start,
        window_end=window_end,
        missing_columns=tuple(missing),
        errors=errors,
    )
    return without_extremes(profile, spec_list)


def calibrate_baseline(
    data: Any,
    baseline: Baseline,
    *,
    chunk_size: int,
    chunks: int = 20,
    k_sigma: float = 3.0,
    seed: int = 0,
    pseudonym_key: PseudonymKey | None = None,
) -> Baseline:
    """Add data-driven thresholds to ``baseline``: profile ``chunks`` random samples of
    ``chunk_size`` reference rows (the size of a production window) and set each column's threshold
    at ``mean + k_sigma * std`` of its statistic (:func:`airflow_mlobs.core.drift.calibrate_thresholds`).
    """
    from airflow_mlobs.core.drift import calibrate_thresholds

    frame = _as_frame(data)
    if chunk_size < 1 or chunk_size > len(frame):
        raise MlobsInputError(
            f"calibration chunk_size must be between 1 and the reference size ({len(frame)} rows), got {chunk_size}"
        )
    rng = np.random.default_rng(seed)
    specs = list(baseline.columns.values())
    profiles = [
        profile_frame(
            frame.iloc[rng.choice(len(frame), size=chunk_size, replace=False)],
            specs,
            pseudonym_key=pseudonym_key,
        )
        for _ in range(chunks)
    ]
    return calibrate_thresholds(baseline, profiles, k_sigma=k_sigma, chunk_size=chunk_size)


def profile_frame_segments(
    data: Any,
    specs: Iterable[ColumnSpec],
    segment_column: str,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_segments: int = 200,
    pseudonym_key: PseudonymKey | None = None,
) -> dict[str | None, Profile]:
    """One profile per value of ``segment_column`` (keyed by :func:`category_text` of the value,
    ``None`` for missing), as :func:`airflow_mlobs.sources.drift_sql.profile_sql_segments` gives for the
    same rows. More than ``max_segments`` values is an error naming the column."""
    from dataclasses import replace

    frame = _as_frame(data)
    if segment_column not in frame.columns:
        raise MlobsInputError(f"segment column {segment_column!r} is not in the data")
    spec_list = list(specs)
    keys = frame[segment_column]
    groups = list(keys.groupby(keys, dropna=False, sort=False).groups.items())
    if len(groups) > max_segments:
        raise MlobsInputError(
            f"segment column {segment_column!r} has {len(groups)} values, more than max_segments={max_segments}"
        )
    profiles: dict[str | None, Profile] = {}
    for value, index in groups:
        key = (
            None
            if value is None or (isinstance(value, float) and math.isnan(value))
            else category_text(value)
        )
        profile = profile_frame(
            frame.loc[index],
            spec_list,
            window_start=window_start,
            window_end=window_end,
            max_categories=max_categories,
            pseudonym_key=pseudonym_key,
        )
        profiles[key] = replace(profile, segment=key)
    if not profiles:
        empty = profile_frame(
            frame.iloc[0:0],
            spec_list,
            window_start=window_start,
            window_end=window_end,
            pseudonym_key=pseudonym_key,
        )
        profiles[None] = empty
    return profiles
