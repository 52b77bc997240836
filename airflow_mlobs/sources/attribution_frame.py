"""Attribution sums gathered in memory (a pandas DataFrame): the same
:class:`~airflow_mlobs.core.attribution.AttributionSummary` as the SQL gatherer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from airflow_mlobs.core.attribution import ATTRIBUTION_PREFIX, AttributionSummary, FeatureSums
from airflow_mlobs.core.errors import SourceError


def attribution_columns_of(names: list[str], given: Mapping[str, str] | None) -> dict[str, str]:
    """``{feature: column}``: ``given``, else every column named ``attr__<feature>``."""
    if given:
        return dict(given)
    return {n[len(ATTRIBUTION_PREFIX) :]: n for n in names if n.startswith(ATTRIBUTION_PREFIX)}


def gather_attribution_frame(
    frame: Any,
    *,
    timestamp_column: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    attribution_columns: Mapping[str, str] | None = None,
) -> AttributionSummary:
    """The window ``[start, end)`` of ``frame`` summarized per feature (non-finite values skipped)."""
    columns = attribution_columns_of([str(c) for c in frame.columns], attribution_columns)
    missing = [c for c in columns.values() if c not in frame.columns]
    if missing:
        raise SourceError(f"attribution columns {missing} not found; the frame has {list(frame.columns)}")
    if timestamp_column is not None and (start is not None or end is not None):
        ts = frame[timestamp_column]
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= (ts >= start).to_numpy()
        if end is not None:
            keep &= (ts < end).to_numpy()
        frame = frame[keep]
    sums: dict[str, FeatureSums] = {}
    for feature, column in columns.items():
        values = np.asarray(frame[column].to_numpy(dtype=float, na_value=np.nan), dtype=float)
        values = values[np.isfinite(values)]
        sums[feature] = FeatureSums(
            int(values.size), float(np.abs(values).sum()), float((values * values).sum())
        )
    return AttributionSummary(rows=len(frame), features=sums)
