"""Incremental windows: a drift window longer than its schedule (a 7-day window judged daily) is
cut into aligned slices; each whole slice whose exact profile is already stored is reused, the
rest are profiled, and the slice profiles add up (:meth:`~airflow_mlobs.core.profile.Profile.merge`)
to the window's profile.

Pure: the planner decides from the stored slices' provenance alone, so it is testable without a
database. Slices are aligned to whole multiples of the increment counted from 1970-01-01 00:00 UTC
(``increment="1d"``: UTC midnights; ``"1h"``: whole UTC hours), so every run of every window length
cuts the same slices and finds the same stored ones. UTC has no daylight-saving jumps, so every
whole slice has the increment's length exactly. A slice the window only partly covers (a window
that does not start or end on a boundary) is always profiled, never stored.

A stored slice is trusted as of when it was profiled: rows that arrive later for that slice are not
seen until the slice is rescanned (``recheck_last`` newest stored slices every run, or every slice
when ``rescan_all``, which the operator sets for a cleared or retried task).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_mlobs.core.timeutil import format_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The provenance fields that must equal the check's for a stored slice to be reused, and how a
#: mismatch is explained.
PROVENANCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("baseline", "another baseline"),
    ("baseline_version", "another baseline version"),
    ("edges_key", "other bin edges or categories"),
    ("source", "another source, where or timestamp column"),
    ("max_categories", "another max_categories"),
)


@dataclass(frozen=True)
class Slice:
    """One aligned piece ``[start, end)`` of a window; ``whole`` when it spans a full increment
    (only whole slices are stored and reused)."""

    start: datetime
    end: datetime
    whole: bool

    def label(self, increment: timedelta) -> str:
        """The slice's start as a date (``2026-11-05``) for a whole number of days, else in ISO."""
        if self.whole and increment % timedelta(days=1) == timedelta(0):
            return self.start.date().isoformat()
        return self.start.isoformat()


@dataclass(frozen=True)
class StoredSlice:
    """A stored profile of exactly ``[start, end)``: its ``provenance`` (how it was profiled: see
    :func:`provenance_of`; empty for a profile stored without one), when it was ``recorded_at``, its
    ``row_count``, and whether it holds a covariance profile (``has_joint``)."""

    start: datetime
    end: datetime
    provenance: Mapping[str, Any]
    recorded_at: datetime | None
    row_count: int
    has_joint: bool = False
    profile: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SliceDecision:
    """What the plan does with one slice: reuse its ``stored`` profile, or scan it (``reason`` says
    why, e.g. ``"not stored"``)."""

    slice: Slice
    stored: StoredSlice | None
    reason: str | None = None

    @property
    def reused(self) -> bool:
        """Whether the stored profile is used instead of scanning."""
        return self.stored is not None and self.reason is None


@dataclass(frozen=True)
class IncrementPlan:
    """Every slice of the window, in time order, with its decision."""

    increment: timedelta
    decisions: tuple[SliceDecision, ...]

    @property
    def reused(self) -> list[SliceDecision]:
        """The slices taken from the store."""
        return [d for d in self.decisions if d.reused]

    @property
    def scanned(self) -> list[SliceDecision]:
        """The slices to profile."""
        return [d for d in self.decisions if not d.reused]

    def unit(self, count: int) -> str:
        """``"day"``/``"days"``, ``"hour"``/``"hours"``, else ``"slice"``/``"slices"``."""
        name = {timedelta(days=1): "day", timedelta(hours=1): "hour"}.get(self.increment, "slice")
        return name if count == 1 else f"{name}s"

    def describe(self) -> str:
        """E.g. ``"6 days from the store, 1 scanned"``."""
        reused, scanned = len(self.reused), len(self.scanned)
        return f"{reused} {self.unit(reused)} from the store, {scanned} scanned"

    def metrics(self) -> dict[str, Any]:
        """``metrics["incremental"]``: the increment, the stored and scanned slices (by
        :meth:`Slice.label`), why each scanned slice was scanned, and when each stored one was
        profiled."""

        def label(decision: SliceDecision) -> str:
            return decision.slice.label(self.increment)

        return {
            "increment": format_duration(self.increment),
            "stored_days": [label(d) for d in self.reused],
            "scanned_days": [label(d) for d in self.scanned],
            "scan_reasons": {label(d): d.reason for d in self.scanned},
            "stored_as_of": {
                label(d): d.stored.recorded_at.isoformat()
                for d in self.reused
                if d.stored is not None and d.stored.recorded_at is not None
            },
        }


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one read as UTC, as the results store returns them on SQLite)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def floor_to(moment: datetime, increment: timedelta) -> datetime:
    """The last slice boundary at or before ``moment``: a whole multiple of ``increment`` from the epoch."""
    return EPOCH + ((as_utc(moment) - EPOCH) // increment) * increment


def plan_slices(start: datetime, end: datetime, increment: timedelta) -> list[Slice]:
    """The aligned slices covering ``[start, end)`` in time order: whole ones between the first and
    last boundary inside the window, a partial one at either end the window only partly covers.
    An empty or reversed window has none. ``ValueError`` for a non-positive increment."""
    if increment <= timedelta(0):
        raise ValueError(f"the increment must be positive, got {format_duration(increment)}")
    start, end = as_utc(start), as_utc(end)
    slices: list[Slice] = []
    cursor = start
    while cursor < end:
        boundary = floor_to(cursor, increment) + increment
        stop = min(boundary, end)
        slices.append(Slice(cursor, stop, whole=stop - cursor == increment))
        cursor = stop
    return slices


def provenance_of(
    *,
    baseline: str,
    baseline_version: str,
    edges_key: str,
    source: str,
    max_categories: int,
    sampled: bool,
) -> dict[str, Any]:
    """How a profile was made, stored beside it so a later check can tell whether it may reuse it:
    the baseline's name, version and ``edges_key``, a ``source`` fingerprint (the table or query,
    ``where``, timestamp column and zone, sensitive columns), ``max_categories``, and whether the
    rows were ``sampled``."""
    return {
        "baseline": baseline,
        "baseline_version": baseline_version,
        "edges_key": edges_key,
        "source": source,
        "max_categories": max_categories,
        "sampled": sampled,
    }


def distrust_reason(stored: StoredSlice, wanted: Mapping[str, Any], *, needs_joint: bool) -> str | None:
    """Why a stored slice may not stand for a scan with provenance ``wanted``, or ``None`` when it may."""
    found = stored.provenance
    if not found:
        return "stored without provenance (by an older check, or a partitioned one)"
    if found.get("sampled"):
        return "stored from a sampled profile"
    for name, explained in PROVENANCE_FIELDS:
        if found.get(name) != wanted.get(name):
            if name == "baseline_version":
                return f"profiled against baseline version {found.get(name)} (this check uses {wanted.get(name)})"
            return f"profiled with {explained}"
    if stored.row_count <= 0:
        return "stored with no rows (data may have arrived since)"
    if needs_joint and not stored.has_joint:
        return "stored without a covariance profile (joint drift)"
    return None


def plan_increments(
    slices: Sequence[Slice],
    stored: Sequence[StoredSlice],
    wanted: Mapping[str, Any],
    *,
    increment: timedelta,
    needs_joint: bool = False,
    recheck_last: int = 0,
    rescan_all: str | None = None,
) -> IncrementPlan:
    """Decide for each slice whether to reuse a stored profile of exactly its bounds (the newest
    trusted one, if several) or scan it: partial slices are scanned; a whole one is scanned when none
    is stored, when :func:`distrust_reason` gives a reason, when it is one of the ``recheck_last``
    newest slices that would otherwise be reused (late-arriving data), or when ``rescan_all``
    (the reason, e.g. ``"task retried"``) is given."""
    if recheck_last < 0:
        raise ValueError(f"recheck_last must be 0 or more, got {recheck_last}")
    # Several profiles of one slice (another check's where, an older version): the newest
    # trusted one, else the newest, whose reason is then reported.
    best: dict[tuple[datetime, datetime], tuple[bool, datetime, StoredSlice]] = {}
    for candidate in stored:
        key = (as_utc(candidate.start), as_utc(candidate.end))
        rank = (distrust_reason(candidate, wanted, needs_joint=needs_joint) is None, _recorded(candidate))
        held = best.get(key)
        if held is None or rank >= held[:2]:
            best[key] = (*rank, candidate)
    newest = {key: held[2] for key, held in best.items()}
    decisions: list[SliceDecision] = []
    for piece in slices:
        if not piece.whole:
            decisions.append(SliceDecision(piece, None, "partial slice (the window does not cover it whole)"))
            continue
        found = newest.get((piece.start, piece.end))
        if found is None:
            decisions.append(SliceDecision(piece, None, "not stored"))
            continue
        reason = rescan_all or distrust_reason(found, wanted, needs_joint=needs_joint)
        decisions.append(SliceDecision(piece, found, reason))
    if recheck_last:
        reusable = [i for i, d in enumerate(decisions) if d.reused]
        for i in reusable[-recheck_last:]:
            decisions[i] = SliceDecision(
                decisions[i].slice,
                decisions[i].stored,
                f"rechecked: one of the {recheck_last} newest stored (incremental_recheck_last={recheck_last})",
            )
    return IncrementPlan(increment, tuple(decisions))


def _recorded(found: StoredSlice) -> datetime:
    return as_utc(found.recorded_at) if found.recorded_at is not None else EPOCH
