"""In-memory covariance profile of a DataFrame (or any 2-D array): the twin of ``covariance_sql``.

Complete cases only: a row counts when every included column is finite; the others are
``dropped`` (see :mod:`airflow_mlobs.core.covariance`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from airflow_mlobs.core.covariance import CovarianceProfile


def covariance_profile_of(
    frame: Any, columns: Sequence[str], shift: Sequence[float] | None = None
) -> CovarianceProfile:
    """The covariance profile of ``frame[columns]``; a missing column is a clear error."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"covariance profile: columns not in the frame: {missing}")
    x = np.asarray(frame[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    return covariance_profile_of_array(x, columns, shift)


def covariance_profile_of_array(
    x: Any, columns: Sequence[str], shift: Sequence[float] | None = None
) -> CovarianceProfile:
    arr = np.asarray(x, dtype=np.float64).reshape(-1, len(columns))
    keep = np.all(np.isfinite(arr), axis=1)
    rows = arr[keep]
    c = np.zeros(len(columns)) if shift is None else np.asarray(shift, dtype=np.float64)
    y = rows - c
    return CovarianceProfile.from_arrays(
        columns, c, int(rows.shape[0]), int((~keep).sum()), y.sum(axis=0), y.T @ y
    )


def covariance_folds_of_array(
    x: Any, columns: Sequence[str], folds: int, shift: Sequence[float] | None = None
) -> list[CovarianceProfile]:
    """``folds`` profiles of the rows split by ``row_index % folds`` (the SQL builder's split)."""
    arr = np.asarray(x, dtype=np.float64).reshape(-1, len(columns))
    idx = np.arange(arr.shape[0]) % folds
    return [covariance_profile_of_array(arr[idx == f], columns, shift) for f in range(folds)]
