"""Incremental drift windows: a window longer than its schedule (``window="7d"`` run daily with
``incremental="1d"``) is judged from the stored profiles of its whole days plus a scan of only the
days not stored yet (:mod:`airflow_mlobs.core.increments` plans which). Each scanned whole day is
stored with its provenance, so tomorrow's run reuses it; the day profiles add up
(:meth:`~airflow_mlobs.core.profile.Profile.merge`) to exactly the profile of the window scanned at
once (bin counts, category counts, null counts, min/max; moments to float rounding), then the
window is judged as :class:`~airflow_mlobs.specs.drift.DriftSpec` judges any window.

The results store is reached through two callables (specs do not import it): ``stored_slices``
lists what is stored, ``save_slice`` stores a scanned day.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.increments import (
    IncrementPlan,
    StoredSlice,
    plan_increments,
    plan_slices,
    provenance_of,
)
from airflow_mlobs.core.profile import Baseline, CategoricalProfile, Profile
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.specs.base import Connector, connector_or_default
from airflow_mlobs.specs.drift import DriftSpec, KeepProfile

log = logging.getLogger(__name__)

StoredSlices = Callable[[str, datetime, datetime], Sequence[StoredSlice]]
"""Lists the stored profiles of a dataset within ``[start, end]`` (``ResultsStore.stored_slices``)."""
SaveSlice = Callable[[Baseline, Profile, Mapping[str, Any]], None]
"""Stores one scanned slice's profile with its provenance (``ResultsStore.save_profile``)."""


def incremental_arg(
    task_id: str,
    increment: timedelta | str | None,
    *,
    timestamp_column: str | None,
    sample: str | float | None = None,
    sample_rows: int | None = None,
    partition: str | None = None,
    recheck_last: int = 0,
) -> timedelta | None:
    """The ``incremental`` argument as a duration (``None``: off), checked when the DAG is parsed:
    a ``ValueError`` naming the task and the argument for a check that cannot be incremental (no
    ``timestamp_column`` to cut days by, sampling, a partition) or a bad ``incremental_recheck_last``."""
    if isinstance(recheck_last, bool) or not isinstance(recheck_last, int) or recheck_last < 0:
        raise ValueError(
            f"{task_id}: incremental_recheck_last must be a whole number >= 0, got {recheck_last!r}"
        )
    if increment in (None, ""):
        return None
    if not timestamp_column:
        raise ValueError(
            f"{task_id}: incremental={increment!r} needs timestamp_column: the window is cut into days by "
            "each row's time (a table, sql= or file without one has no days to reuse)"
        )
    if sample not in (None, "") or sample_rows is not None:
        raise ValueError(
            f"{task_id}: incremental={increment!r} does not combine with sample/sample_rows: a sampled "
            "day must never be reused as an exact one; drop one of them"
        )
    if partition not in (None, ""):
        raise ValueError(
            f"{task_id}: incremental={increment!r} does not combine with partition={partition!r}: the "
            "stored days are whole-dataset profiles (merge partitions with DriftMergeOperator instead)"
        )
    if isinstance(increment, str) and "{{" in increment:
        raise ValueError(f"{task_id}: incremental must be a literal duration such as '1d', not a template")
    duration = parse_duration(increment, name=f"{task_id}: incremental")
    if duration <= timedelta(0):
        raise ValueError(
            f"{task_id}: incremental must be a positive duration such as '1d', got {increment!r}"
        )
    return duration


def source_fingerprint(spec: DriftSpec) -> str:
    """A short hash of what decides which rows a profile counts and how: the source (connection,
    table, query text or path), ``where``, the timestamp column and its zone, the sensitive columns."""
    payload = json.dumps(
        [
            spec.source_name(),
            spec.table,
            spec.sql,
            spec.path,
            spec.where,
            spec.timestamp_column,
            spec.timestamp_timezone,
            sorted(spec.sensitive_columns),
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def profile_provenance(spec: DriftSpec, baseline: Baseline, profile: Profile) -> dict[str, Any]:
    """How ``profile`` was made by ``spec`` against ``baseline`` (:func:`provenance_of`), stored with it."""
    return provenance_of(
        baseline=baseline.name,
        baseline_version=baseline.version,
        edges_key=baseline.key,
        source=source_fingerprint(spec),
        max_categories=spec.max_categories,
        sampled=profile.sample is not None or spec.sample not in (None, "") or spec.sample_rows is not None,
    )


def evaluate_incremental(
    spec: DriftSpec,
    directory: Path | Any,
    *,
    window_start: datetime | None,
    window_end: datetime | None,
    increment: timedelta,
    stored_slices: StoredSlices,
    save_slice: SaveSlice | None,
    keep_profile: KeepProfile | None = None,
    recheck_last: int = 0,
    rescan_all: str | None = None,
    connect: Connector | None = None,
) -> CheckResult:
    """Judge ``[window_start, window_end)`` from stored slice profiles plus scans of the rest.

    Loads the baseline, cuts the window into ``increment`` slices (:func:`plan_slices`), reads what
    ``stored_slices`` holds and plans (:func:`plan_increments`); profiles each slice to scan (one
    pushed-down profile per slice, on one connection), hands each scanned whole slice with rows to
    ``save_slice``, adds every slice's profile, hands the sum to ``keep_profile`` and judges it
    (:meth:`DriftSpec.judge`). The result carries ``metrics["incremental"]``
    (:meth:`IncrementPlan.metrics`) and its summary starts with e.g. ``"6 days from the store, 1
    scanned"``. An unbounded window is a ``MlobsInputError``: it has no days."""
    if window_start is None or window_end is None:
        raise MlobsInputError(
            f"incremental drift of {spec.dataset_name()} needs a bounded window (got "
            f"{window_start} .. {window_end}); give window= or window_start/window_end"
        )
    baseline = spec.load(directory)
    wanted = profile_provenance(spec, baseline, Profile(0, {}))
    slices = plan_slices(window_start, window_end, increment)
    stored = stored_slices(spec.dataset_name(), window_start, window_end) if slices else []
    plan = plan_increments(
        slices,
        stored,
        wanted,
        increment=increment,
        # A windowed sql= query gathers no covariance profile: its stored days cannot hold one either.
        needs_joint=baseline.joint is not None and not spec.sql,
        recheck_last=recheck_last,
        rescan_all=rescan_all,
    )
    for decision in plan.decisions:
        label = decision.slice.label(increment)
        if decision.reused:
            log.info(
                "%s: from the store (profiled %s)", label, decision.stored and decision.stored.recorded_at
            )
        else:
            log.info("%s: scanned (%s)", label, decision.reason)
    profiles: list[Profile] = []
    with _one_connection(spec, connect) as reuse:
        for decision in plan.decisions:
            if decision.reused:
                assert decision.stored is not None
                profiles.append(decision.stored.profile)
                continue
            piece = decision.slice
            profile = spec.gather(baseline, piece.start, piece.end, connect=reuse)
            if save_slice is not None and piece.whole and profile.row_count:
                save_slice(baseline, profile, profile_provenance(spec, baseline, profile))
            profiles.append(profile)
    if not profiles:  # an empty window: judged as the gatherer sees it (no rows: a reason)
        profiles.append(spec.gather(baseline, window_start, window_end, connect=connect))
    merged = profiles[0]
    for profile in profiles[1:]:
        merged = merged.merge(profile, spec.max_categories)
    merged = replace(merged, window_start=window_start, window_end=window_end)
    if keep_profile is not None and merged.row_count:
        keep_profile(baseline, merged)
    result = spec.judge(baseline, merged, window_start, window_end)
    return with_increments(result, plan, capped_columns(profiles))


def capped_columns(profiles: Sequence[Profile]) -> list[str]:
    """The categorical columns some slice kept only its ``max_categories`` most frequent values of:
    there the merged counts can differ from a scan of the whole window (a category folded into
    ``other`` on one day is not counted under its name)."""
    return sorted(
        {
            name
            for profile in profiles
            for name, column in profile.columns.items()
            if isinstance(column, CategoricalProfile) and column.overflow
        }
    )


def with_increments(result: CheckResult, plan: IncrementPlan, capped: Sequence[str] = ()) -> CheckResult:
    """``result`` with ``metrics["incremental"]`` (plus ``capped_columns``, see :func:`capped_columns`)
    and the summary prefixed by how the window was assembled."""
    return replace(
        result,
        summary=f"{plan.describe()}: {result.summary}",
        metrics={**result.metrics, "incremental": {**plan.metrics(), "capped_columns": list(capped)}},
    )


@contextmanager
def _one_connection(spec: DriftSpec, connect: Connector | None) -> Iterator[Connector | None]:
    """A connector handing every slice the same open engine (one connection setup for the window)."""
    if not spec.conn_id:
        yield connect
        return
    with connector_or_default(connect)(spec.conn_id) as engine:
        yield lambda _conn_id: nullcontext(engine)
