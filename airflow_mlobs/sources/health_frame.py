"""Service health gathered from a DataFrame in memory, with the SQL gatherer's definitions.

The same :class:`~airflow_mlobs.sources.health_sql.HealthSource` describes the columns, and the
result is the same :class:`~airflow_mlobs.core.health.HealthObservation` (a test holds the two
equal on the same rows): a window is ``[start, end)``; a latency counts when it is a finite number
(``latency_unit="s"`` is multiplied by 1000); the error rule is the source's; percentiles are
``numpy.percentile(method="linear")`` (= ``percentile_cont``); naive timestamps are wall-clock
time in ``naive_zone``; a NULL segment or version is ``"(null)"``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.health import (
    BURN_WINDOWS,
    QUANTILES,
    UNIT_MS,
    BurnWindow,
    GroupHealth,
    HealthObservation,
    HealthSummary,
)
from airflow_mlobs.sources.health_sql import NULL_GROUP, HealthSource


class _Columns:
    """The frame's columns as numpy arrays: timestamps (UTC ns), latency ms (NaN = none), errors."""

    def __init__(self, frame: pd.DataFrame, src: HealthSource) -> None:
        for role, name in (
            ("timestamp_column", src.timestamp_column),
            ("latency_column", src.latency_column),
            ("error_column", src.error_column),
            ("segment_column", src.segment_column),
            ("model_version_column", src.model_version_column),
        ):
            if name and name not in frame.columns:
                raise SourceError(
                    f"{role} {name!r} not found in the frame; it has: {', '.join(map(str, frame.columns))}"
                )
        ts = pd.to_datetime(frame[src.timestamp_column], errors="coerce")
        if ts.dt.tz is None:
            ts = ts.dt.tz_localize(src.naive_zone, ambiguous="NaT", nonexistent="NaT")
        self.ts = ts.dt.tz_convert("UTC")
        raw = frame[src.latency_column]
        if not (pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)) and not (
            raw.dtype == object and raw.map(lambda v: v is None or isinstance(v, int | float)).all()
        ):
            raise SourceError(
                f"latency_column {src.latency_column!r} of the frame is {raw.dtype}, not a number"
            )
        latency = pd.to_numeric(raw, errors="coerce").astype(float).to_numpy() * UNIT_MS[src.latency_unit]
        self.latency = np.where(np.isfinite(latency), latency, np.nan)
        self.errors = np.zeros(len(frame), dtype=bool)
        self.kind = src.error_kind
        if src.error_column:
            err = frame[src.error_column]
            if self.kind == "auto":
                self.kind = "boolean" if pd.api.types.is_bool_dtype(err) else "status"
            if self.kind == "boolean":
                self.errors = err.fillna(False).astype(bool).to_numpy()
            else:
                status = pd.to_numeric(err, errors="coerce")
                hit = (
                    status.isin(list(src.error_statuses))
                    if src.error_statuses
                    else status >= src.error_status_min
                )
                self.errors = hit.fillna(False).to_numpy(dtype=bool)
        else:
            self.kind = "status"
        keep = np.ones(len(frame), dtype=bool)
        if src.model_version is not None and src.model_version_column:
            keep = (
                (frame[src.model_version_column].astype("string") == src.model_version)
                .fillna(False)
                .to_numpy()
            )
        self.keep = keep & self.ts.notna().to_numpy()
        self.groups: dict[str, np.ndarray[Any, Any]] = {}
        for key, name in (("seg", src.segment_column), ("ver", src.model_version_column)):
            if name and not (key == "ver" and src.model_version is not None):
                values = frame[name]
                self.groups[key] = np.where(values.isna(), NULL_GROUP, values.astype(str)).astype(object)

    def mask(self, start: datetime, end: datetime) -> np.ndarray[Any, Any]:
        ts = self.ts
        return self.keep & (ts >= pd.Timestamp(start)).to_numpy() & (ts < pd.Timestamp(end)).to_numpy()


def _summary(cols: _Columns, mask: np.ndarray[Any, Any], minutes: float, *, peak: bool) -> HealthSummary:
    latency = cols.latency[mask]
    finite = latency[~np.isnan(latency)]
    quantiles: list[float | None] = (
        [float(np.percentile(finite, q * 100, method="linear")) for q in QUANTILES]
        if finite.size
        else [None, None, None]
    )
    peak_count: int | None = None
    if peak:
        per_minute = cols.ts[mask].dt.floor("min").value_counts()
        peak_count = int(per_minute.max()) if len(per_minute) else 0
    return HealthSummary(
        requests=int(mask.sum()),
        errors=int(cols.errors[mask].sum()),
        latency_count=int(finite.size),
        latency_mean_ms=float(finite.mean()) if finite.size else None,
        p50_ms=quantiles[0],
        p95_ms=quantiles[1],
        p99_ms=quantiles[2],
        max_ms=float(finite.max()) if finite.size else None,
        peak_per_minute=peak_count,
        window_minutes=minutes,
    )


def gather_health_frame(
    frame: pd.DataFrame,
    src: HealthSource,
    *,
    start: datetime,
    end: datetime,
    reference: tuple[datetime, datetime] | None = None,
    burn: bool = False,
    slo_latency_ms: float | None = None,
) -> HealthObservation:
    """The observation :func:`~airflow_mlobs.sources.health_sql.gather_health` gives for the same
    rows. Raises ``SourceError`` naming a missing or non-numeric column."""
    cols = _Columns(frame, src)
    windows = [(start, end)] + ([reference] if reference else [])
    summaries = []
    grouped: dict[str, list[dict[str, HealthSummary]]] = {key: [] for key in cols.groups}
    for lo, hi in windows:
        minutes = (hi - lo).total_seconds() / 60.0
        mask = cols.mask(lo, hi)
        summaries.append(_summary(cols, mask, minutes, peak=True))
        for key, values in cols.groups.items():
            grouped[key].append(
                {
                    str(v): _summary(cols, mask & (values == v), minutes, peak=False)
                    for v in sorted(set(values[mask]))
                }
            )
    burn_windows: tuple[BurnWindow, ...] = ()
    if burn:
        result = []
        for m in BURN_WINDOWS:
            mask = cols.mask(end - timedelta(minutes=m), end)
            latency = cols.latency[mask]
            has = ~np.isnan(latency)
            slow = int((latency[has] > slo_latency_ms).sum()) if slo_latency_ms is not None else 0
            result.append(
                BurnWindow(
                    minutes=m,
                    requests=int(mask.sum()),
                    errors=int(cols.errors[mask].sum()),
                    latency_count=int(has.sum()),
                    slow=slow,
                )
            )
        burn_windows = tuple(result)

    def group_health(key: str) -> tuple[GroupHealth, ...]:
        if key not in grouped:
            return ()
        current, ref = grouped[key][0], (grouped[key][1] if len(grouped[key]) > 1 else {})
        return tuple(
            GroupHealth(value=k, current=v, reference=ref.get(k)) for k, v in sorted(current.items())
        )

    return HealthObservation(
        current=summaries[0],
        reference=summaries[1] if len(summaries) > 1 else None,
        burn=burn_windows,
        segments=group_health("seg"),
        versions=group_health("ver"),
        latency_unit=src.latency_unit,
        error_rule=src.error_rule(cols.kind),
    )
