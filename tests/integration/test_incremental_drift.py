"""Incremental drift windows on SQLite and PostgreSQL (issue 17 part 3): a 7-day window judged from
stored day profiles equals the 7 days scanned at once; the next day's run scans one day (counted
statements); another baseline version rescans, saying why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import CategoricalProfile, NumericProfile, Profile, load_baseline
from airflow_mlobs.specs.drift import BaselineSpec, DriftSpec
from airflow_mlobs.specs.drift_incremental import evaluate_incremental, profile_provenance
from airflow_mlobs.store import ResultsStore

DAY = timedelta(days=1)
FIRST = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 10
ROWS_PER_DAY = 400
FEATURES = ("x1", "x2", "segment")


def events(seed: int = 7) -> pd.DataFrame:
    """Ten days of x1 (normal, some nulls), x2 (exponential, drifting from day 6) and a segment."""
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(DAYS):
        n = ROWS_PER_DAY
        x1 = rng.normal(0.0, 1.0, n)
        x1[rng.random(n) < 0.05] = np.nan
        x2 = rng.exponential(2.0 if d >= 6 else 1.0, n)
        seconds = np.sort(rng.uniform(0, 86400, n))
        frames.append(
            pd.DataFrame(
                {
                    "ts": [
                        (FIRST + d * DAY + timedelta(seconds=float(s))).replace(tzinfo=None) for s in seconds
                    ],
                    "x1": x1,
                    "x2": x2,
                    "segment": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["id"] = np.arange(len(frame))
    return frame


class Counted:
    """Counts the statements an engine executes (a SQLAlchemy event listener)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements = 0
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def connect(self, _conn_id: str) -> Any:
        return nullcontext(self.engine)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


def assert_same_profile(merged: Profile, whole: Profile) -> None:
    """Counts, bins, nulls and extremes exactly; moments and the covariance to float rounding."""
    assert merged.row_count == whole.row_count
    assert merged.edges_key == whole.edges_key
    assert set(merged.columns) == set(whole.columns)
    for name, column in whole.columns.items():
        other = merged.columns[name]
        if isinstance(column, NumericProfile):
            assert isinstance(other, NumericProfile)
            assert other.bins == column.bins, name
            assert (other.count, other.nulls, other.non_finite) == (
                column.count,
                column.nulls,
                column.non_finite,
            )
            assert (other.min, other.max) == (column.min, column.max)
            assert other.mean == pytest.approx(column.mean, rel=1e-9)
            assert other.std == pytest.approx(column.std, rel=1e-9)
            for got, want in ((other.low_mean, column.low_mean), (other.high_mean, column.high_mean)):
                assert (got is None) == (want is None)
                assert want is None or got == pytest.approx(want, rel=1e-9)
        else:
            assert isinstance(column, CategoricalProfile) and isinstance(other, CategoricalProfile)
            assert dict(other.counts) == dict(column.counts)
            assert (other.nulls, other.other) == (column.nulls, column.other)
    assert (merged.joint is None) == (whole.joint is None)
    if whole.joint is not None and merged.joint is not None:
        assert merged.joint.n == whole.joint.n
        assert merged.joint.dropped == whole.joint.dropped
        np.testing.assert_allclose(merged.joint.sum_y, whole.joint.sum_y, rtol=1e-9)
        np.testing.assert_allclose(merged.joint.sum_yy, whole.joint.sum_yy, rtol=1e-9)


def build_baseline(table: str, version: str, directory: Path, connect: Any) -> None:
    """Baseline ``events`` ``version`` of the first three days' x1, x2 and segment."""
    BaselineSpec(
        conn_id="wh",
        table=table,
        timestamp_column="ts",
        reference_start=FIRST,
        reference_end=FIRST + 3 * DAY,
        baseline="events",
        version=version,
        columns=FEATURES,
    ).ensure(directory, connect=connect)


def incremental_outcomes(engine: sa.Engine, table: str, directory: Path, store: ResultsStore) -> None:
    counted = Counted(engine)
    try:
        build_baseline(table, "v1", directory, counted.connect)
        spec = DriftSpec(
            conn_id="wh", table=table, timestamp_column="ts", baseline="events", dataset="events"
        )
        baseline = load_baseline(directory, "events", "v1")
        kept: list[Profile] = []

        def run(start: datetime, end: datetime, spec: DriftSpec = spec) -> Any:
            counted.statements = 0
            result = evaluate_incremental(
                spec,
                directory,
                window_start=start,
                window_end=end,
                increment=DAY,
                stored_slices=store.stored_slices,
                save_slice=lambda b, p, prov: store.save_profile("events", b.key, p, provenance=prov),
                keep_profile=lambda _b, p: kept.append(p),
                connect=counted.connect,
            )
            return result, counted.statements

        # Day 1: nothing stored; seven days scanned and stored.
        first, first_statements = run(FIRST + 2 * DAY, FIRST + 9 * DAY)
        assert first.metrics["incremental"]["scanned_days"] == [f"2026-11-0{d}" for d in range(3, 10)]
        assert first.metrics["incremental"]["stored_days"] == []
        assert first.summary.startswith("0 days from the store, 7 scanned: ")

        # The merged 7-day profile equals the profile of the 7 days scanned at once.
        counted.statements = 0
        whole = spec.gather(baseline, FIRST + 2 * DAY, FIRST + 9 * DAY, connect=counted.connect)
        whole_statements = counted.statements
        assert_same_profile(kept[-1], whole)
        at_once = spec.judge(baseline, whole, FIRST + 2 * DAY, FIRST + 9 * DAY)
        assert first.status == at_once.status
        assert [(f.subject, f.status) for f in first.findings] == [
            (f.subject, f.status) for f in at_once.findings
        ]
        for got, want in zip(first.findings, at_once.findings, strict=True):
            assert got.value == pytest.approx(want.value, rel=1e-6), got.subject
        # x2 drifted from day 7: the window judges it so, as the full scan does.
        assert "x2" in {f.subject for f in first.findings if f.status.value != "pass"}
        assert first_statements == 7 * whole_statements

        # Day 2: six days from the store, one scanned, in exactly one day's statements.
        counted.statements = 0
        spec.gather(baseline, FIRST + 9 * DAY, FIRST + 10 * DAY, connect=counted.connect)
        one_day_statements = counted.statements
        second, second_statements = run(FIRST + 3 * DAY, FIRST + 10 * DAY)
        assert second.metrics["incremental"]["stored_days"] == [f"2026-11-0{d}" for d in range(4, 10)]
        assert second.metrics["incremental"]["scanned_days"] == ["2026-11-10"]
        assert second.metrics["incremental"]["scan_reasons"] == {"2026-11-10": "not stored"}
        assert second.summary.startswith("6 days from the store, 1 scanned: ")
        assert second_statements == one_day_statements
        counted.statements = 0
        whole = spec.gather(baseline, FIRST + 3 * DAY, FIRST + 10 * DAY, connect=counted.connect)
        assert_same_profile(kept[-1], whole)

        # A new baseline version (same reference, same edges): every day rescanned, saying why.
        build_baseline(table, "v2", directory, counted.connect)
        third, _ = run(FIRST + 3 * DAY, FIRST + 10 * DAY)
        info = third.metrics["incremental"]
        assert info["stored_days"] == [] and len(info["scanned_days"]) == 7
        assert (
            info["scan_reasons"]["2026-11-04"] == "profiled against baseline version v1 (this check uses v2)"
        )
        # ... and once rescanned, the next run reuses them.
        fourth, _ = run(FIRST + 3 * DAY, FIRST + 10 * DAY)
        assert len(fourth.metrics["incremental"]["stored_days"]) == 7

        # Another where: the stored days are not this check's rows.
        narrowed = DriftSpec(
            conn_id="wh",
            table=table,
            timestamp_column="ts",
            baseline="events",
            dataset="events",
            where="segment <> 'c'",
        )
        fifth, _ = run(FIRST + 3 * DAY, FIRST + 10 * DAY, narrowed)
        assert set(fifth.metrics["incremental"]["scan_reasons"].values()) == {
            "profiled with another source, where or timestamp column"
        }
        # A partial last day is scanned and not stored.
        sixth, _ = run(FIRST + 3 * DAY, FIRST + 9 * DAY + timedelta(hours=12))
        assert sixth.metrics["incremental"]["scan_reasons"] == {
            (FIRST + 9 * DAY).isoformat(): "partial slice (the window does not cover it whole)"
        }
        assert sixth.metrics["incremental"]["stored_days"] == [f"2026-11-0{d}" for d in range(4, 10)]
    finally:
        counted.close()


def test_a_sampled_day_is_never_reused(
    tmp_path: Path, sqlite_warehouse: sa.Engine, store: ResultsStore
) -> None:
    directory = tmp_path / "baselines"
    connect = lambda _c: nullcontext(sqlite_warehouse)  # noqa: E731
    build_baseline("events", "v1", directory, connect)
    baseline = load_baseline(directory, "events", "v1")
    sampled = DriftSpec(
        conn_id="wh", table="events", timestamp_column="ts", baseline="events", dataset="events",
        sample="50%", sample_key="id",
    )  # fmt: skip
    day = sampled.gather(baseline, FIRST + 5 * DAY, FIRST + 6 * DAY, connect=connect)
    assert day.sample is not None
    store.save_profile("events", baseline.key, day, provenance=profile_provenance(sampled, baseline, day))
    exact = DriftSpec(
        conn_id="wh", table="events", timestamp_column="ts", baseline="events", dataset="events"
    )
    result = evaluate_incremental(
        exact,
        directory,
        window_start=FIRST + 5 * DAY,
        window_end=FIRST + 6 * DAY,
        increment=DAY,
        stored_slices=store.stored_slices,
        save_slice=None,
        connect=connect,
    )
    assert result.metrics["incremental"]["scan_reasons"] == {"2026-11-06": "stored from a sampled profile"}
    assert result.metrics["rows"] == ROWS_PER_DAY  # every row, not the stored sample's


def test_a_windowed_query_reuses_its_days(
    tmp_path: Path, sqlite_warehouse: sa.Engine, store: ResultsStore
) -> None:
    directory = tmp_path / "baselines"
    connect = lambda _c: nullcontext(sqlite_warehouse)  # noqa: E731
    build_baseline("events", "v1", directory, connect)
    assert load_baseline(directory, "events", "v1").joint is not None
    query = DriftSpec(
        conn_id="wh", sql="SELECT ts, x1, x2, segment FROM events", timestamp_column="ts",
        baseline="events", dataset="events-query",
    )  # fmt: skip

    def run(start: datetime) -> Any:
        return evaluate_incremental(
            query,
            directory,
            window_start=start,
            window_end=start + 7 * DAY,
            increment=DAY,
            stored_slices=store.stored_slices,
            save_slice=lambda b, p, prov: store.save_profile("events-query", b.key, p, provenance=prov),
            connect=connect,
        )

    first = run(FIRST + 2 * DAY).metrics["incremental"]
    assert len(first["scanned_days"]) == 7 and first["capped_columns"] == []
    second = run(FIRST + 3 * DAY).metrics["incremental"]
    assert second["scanned_days"] == ["2026-11-10"] and len(second["stored_days"]) == 6

    # Two categories kept of three: the merged counts may differ from a full scan, and it says so.
    capped = evaluate_incremental(
        replace(query, max_categories=2),
        directory,
        window_start=FIRST + 3 * DAY,
        window_end=FIRST + 5 * DAY,
        increment=DAY,
        stored_slices=store.stored_slices,
        save_slice=None,
        connect=connect,
    ).metrics["incremental"]
    assert capped["capped_columns"] == ["segment"]
    assert set(capped["scan_reasons"].values()) == {"profiled with another max_categories"}


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    events().to_sql("events", engine, index=False)
    yield engine
    engine.dispose()


def test_incremental_window_sqlite(tmp_path: Path, sqlite_warehouse: sa.Engine, store: ResultsStore) -> None:
    incremental_outcomes(sqlite_warehouse, "events", tmp_path / "baselines", store)


def test_incremental_window_postgres(
    tmp_path: Path, pg_engine: sa.Engine, pg_schema: str, store: ResultsStore
) -> None:
    events().to_sql("events", pg_engine, schema=pg_schema, index=False)
    incremental_outcomes(pg_engine, f"{pg_schema}.events", tmp_path / "baselines", store)
