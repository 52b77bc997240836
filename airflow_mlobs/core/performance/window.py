"""Which predictions and labels one run of the delayed-label performance check judges.

**Windows and maturity.** Labels arrive late. The run for the data interval ``[S, E)`` judges the
predictions made in ``[S - label_delay, E - label_delay)`` (:func:`evaluation_window`); a label
counts only if its label time is at or before the label cut-off (default ``E``), so a re-run of the
same interval sees the same labels. When a prediction has several labels by the cut-off, the
``duplicate_labels`` rule picks one (:func:`winning_labels`): ``"latest"`` (the default) keeps the
one with the latest label time, so a later correction replaces the first verdict; ``"earliest"``
keeps the one with the earliest label time, so the first verdict counts and later corrections are
ignored (labels after the cut-off never count, under either rule). Ties at the same label time go to
the larger label under both rules. ``label_coverage`` is labelled / predictions (:class:`Coverage`);
below ``min_label_coverage`` the result is ``skipped`` ("labels not mature"). Whole days of the delay
are subtracted in the wall-clock time of ``timezone`` (:func:`shift_back`), so a daily window at
local midnight maps onto a local-midnight window across a daylight-saving change; the rest of the
delay is absolute time.

Pure: no Airflow, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.performance_settings import DuplicateLabels, check_duplicate_labels


@dataclass(frozen=True)
class PerformanceWindow:
    """What one run judges: predictions made in ``[prediction_start, prediction_end)``, labels with
    label time ``<= label_cutoff``; labels that arrived in ``(arrivals_start, label_cutoff]`` are
    checked for unknown prediction ids."""

    prediction_start: datetime
    prediction_end: datetime
    label_cutoff: datetime
    arrivals_start: datetime


def shift_back(moment: datetime, delay: timedelta, zone: tzinfo) -> datetime:
    """``moment - delay``, whole days in the wall-clock time of ``zone``, the rest as absolute time.

    So 7 days before local midnight is local midnight, whether or not a daylight-saving change lies
    between. An aware ``moment`` is required; the result is in ``moment``'s zone.
    """
    if moment.tzinfo is None:
        raise MlobsInputError(f"shift_back needs an aware datetime, got {moment!r}")
    days = timedelta(days=delay.days)
    rest = delay - days
    local = moment.astimezone(zone)
    # Wall-clock arithmetic: drop the zone, subtract, put the zone back (zoneinfo resolves the offset).
    shifted = (local.replace(tzinfo=None) - days).replace(tzinfo=zone, fold=local.fold)
    return (shifted - rest).astimezone(moment.tzinfo)


def evaluation_window(
    interval_start: datetime,
    interval_end: datetime,
    label_delay: timedelta,
    *,
    label_cutoff: datetime | None = None,
    zone: tzinfo | None = None,
) -> PerformanceWindow:
    """The window judged by the run for the data interval ``[interval_start, interval_end)``.

    Predictions: the interval shifted back by ``label_delay`` (:func:`shift_back` in ``zone``,
    default the interval's own zone). Labels: label time ``<= label_cutoff`` (default
    ``interval_end``). Raises ``MlobsInputError`` for an empty interval or a cut-off before the
    predictions' end (no label could be mature).
    """
    if interval_end <= interval_start:
        raise MlobsInputError(f"empty data interval: start {interval_start} is not before end {interval_end}")
    cutoff = label_cutoff if label_cutoff is not None else interval_end
    wall = zone or interval_end.tzinfo
    assert wall is not None  # aware datetimes (checked by shift_back)
    start = shift_back(interval_start, label_delay, wall)
    end = shift_back(interval_end, label_delay, wall)
    if cutoff < end:
        raise MlobsInputError(
            f"label cut-off {cutoff.isoformat()} is before the end of the predictions' window "
            f"{end.isoformat()}; labels could not have arrived: raise label_delay or the cut-off"
        )
    arrivals = min(interval_start, cutoff)
    return PerformanceWindow(start, end, cutoff, arrivals)


@dataclass(frozen=True)
class Coverage:
    """How many of the window's predictions have a usable label.

    ``predictions``: in the window; ``labelled``: with a label at or before the cut-off; ``late``:
    whose only labels came after the cut-off; ``duplicate``: with more than one label by the
    cut-off (the ``duplicate_labels`` rule chose the winner); ``orphan_labels``: labels that
    arrived in the run's arrivals window for a prediction id the log does not have (``None`` when
    not counted, e.g. per segment); ``null_labels``: label rows by the cut-off for a window
    prediction whose label is NULL (binary classification: a NULL label is no label, neither
    labelled nor negative); ``unidentified``: log rows in the window without a prediction id (NULL),
    left out of the join and of ``predictions``; ``repeated``: log rows in the window repeating a
    prediction id already logged there (rows minus distinct ids); each is judged as a prediction.
    """

    predictions: int = 0
    labelled: int = 0
    late: int = 0
    duplicate: int = 0
    orphan_labels: int | None = None
    null_labels: int = 0
    unidentified: int = 0
    repeated: int = 0

    @property
    def coverage(self) -> float | None:
        """``labelled / predictions``; ``None`` for an empty window."""
        return self.labelled / self.predictions if self.predictions else None

    def __add__(self, other: Coverage) -> Coverage:
        orphans = (
            None
            if self.orphan_labels is None and other.orphan_labels is None
            else (self.orphan_labels or 0) + (other.orphan_labels or 0)
        )
        return Coverage(
            self.predictions + other.predictions,
            self.labelled + other.labelled,
            self.late + other.late,
            self.duplicate + other.duplicate,
            orphans,
            self.null_labels + other.null_labels,
            self.unidentified + other.unidentified,
            self.repeated + other.repeated,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the result's metrics."""
        return {
            "predictions": self.predictions,
            "labelled": self.labelled,
            "late_labels": self.late,
            "duplicate_labels": self.duplicate,
            "orphan_labels": self.orphan_labels,
            "null_labels": self.null_labels,
            "unidentified_predictions": self.unidentified,
            "repeated_predictions": self.repeated,
            "label_coverage": self.coverage,
        }


def _label_above(value: Any, other: Any) -> bool:
    """``value > other`` for the tie-break, a missing label (``None``) below any label."""
    return value is not None and (other is None or value > other)


def winning_labels(
    label_ids: ArrayLike,
    label_values: ArrayLike,
    label_times: ArrayLike,
    cutoff: Any,
    *,
    duplicate_labels: DuplicateLabels = "latest",
) -> tuple[dict[Any, Any], dict[Any, int], set[Any]]:
    """Labels by prediction id, the winner among the labels at or before ``cutoff`` chosen by
    ``duplicate_labels``: ``"latest"`` the latest label time, ``"earliest"`` the earliest (the first
    verdict; later corrections are ignored); ties at the same time go to the larger label under
    both rules. Also the number of labels by the cut-off per id, and the ids labelled only after it.

    Under ``"earliest"`` a label without a time (``None``) is ignored and a ``None`` label loses a
    tie, as in the SQL and in-memory joins under that rule.
    """
    rule = check_duplicate_labels(duplicate_labels)
    ids = np.asarray(label_ids, dtype=object)
    values = np.asarray(label_values, dtype=object)
    times = np.asarray(label_times, dtype=object)
    best: dict[Any, tuple[Any, Any]] = {}
    counts: dict[Any, int] = {}
    late: set[Any] = set()
    earliest = rule == "earliest"
    for i, v, t in zip(ids, values, times, strict=True):
        if earliest and t is None:
            continue
        if t > cutoff:
            late.add(i)
            continue
        counts[i] = counts.get(i, 0) + 1
        if i not in best:
            best[i] = (t, v)
        elif earliest:
            best_t, best_v = best[i]
            if t < best_t or (t == best_t and _label_above(v, best_v)):
                best[i] = (t, v)
        elif (t, v) > best[i]:
            best[i] = (t, v)
    return {i: tv[1] for i, tv in best.items()}, counts, late - set(best)


def latest_labels(
    label_ids: ArrayLike, label_values: ArrayLike, label_times: ArrayLike, cutoff: Any
) -> tuple[dict[Any, Any], dict[Any, int], set[Any]]:
    """Labels by prediction id, the latest label time at or before ``cutoff`` winning (ties: the
    larger label); also the number of labels by the cut-off per id, and the ids labelled only after it.
    (:func:`winning_labels` with the default rule.)"""
    return winning_labels(label_ids, label_values, label_times, cutoff)
