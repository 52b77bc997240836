"""The reduced label table (airflow_mlobs.sources.label_table): its rows equal the winning label per
id computed in pandas (latest label time, then larger label; count of labels), on SQLite,
PostgreSQL, MariaDB and DuckDB; incremental upkeep equals a full rebuild; the state refuses an older
cut-off, a stale table and NULL rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.sources.label_table import (
    LabelTableSpec,
    label_table_state,
    rebuild_label_table,
    refresh_label_table,
)

T0 = datetime(2026, 1, 1)


def _labels(n_ids: int, seed: int, start: datetime = T0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # several labels per id (corrections), ties in time resolved by the larger label
    ids = rng.integers(0, n_ids, size=n_ids * 3)
    minutes = rng.integers(0, 50, size=ids.size)
    return pd.DataFrame(
        {
            "pid": ids.astype(int),
            "y": rng.integers(0, 2, size=ids.size).astype(int),
            "labelled_at": [start + timedelta(minutes=int(m)) for m in minutes],
        }
    )


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    ordered = frame.sort_values(["pid", "labelled_at", "y"], ascending=[True, False, False])
    win = ordered.groupby("pid", sort=True).head(1).set_index("pid")
    out = pd.DataFrame(
        {
            "label": win["y"].astype(int),
            "label_time": win["labelled_at"],
            "n_labels": frame.groupby("pid").size(),
        }
    )
    return out.sort_index()


def _reduced(engine: sa.Engine, spec: LabelTableSpec) -> pd.DataFrame:
    name = f'"{spec.schema}"."{spec.reduced}"' if spec.schema else spec.reduced
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT lid, label, label_time, n_labels FROM {name}")).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["pid", "label", "label_time", "n_labels"])
    frame["label_time"] = pd.to_datetime(frame["label_time"])
    frame = frame.astype({"pid": int, "label": int, "n_labels": int}).set_index("pid")
    return frame.sort_index()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb", "duckdb"])
def target(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[sa.Engine, str | None]]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'labels.db'}")
        yield engine, None
        engine.dispose()
    elif request.param == "duckdb":
        pytest.importorskip(
            "duckdb_engine", reason="duckdb_engine is not installed (pip install airflow-mlobs[duckdb])"
        )
        engine = sa.create_engine(f"duckdb:///{tmp_path / 'labels.duckdb'}")
        yield engine, None
        engine.dispose()
    elif request.param == "postgresql":
        yield request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema")
    else:
        yield request.getfixturevalue("mysql_engine"), None


def _spec(schema: str | None) -> LabelTableSpec:
    tag = uuid.uuid4().hex[:8]
    return LabelTableSpec(
        labels=f"lab_{tag}",
        id_column="pid",
        label_column="y",
        label_time_column="labelled_at",
        reduced=f"lab_{tag}_reduced",
        schema=schema,
    )


def _write(engine: sa.Engine, spec: LabelTableSpec, frame: pd.DataFrame) -> None:
    frame.to_sql(spec.labels, engine, schema=spec.schema, if_exists="append", index=False)


def _drop(engine: sa.Engine, spec: LabelTableSpec) -> None:
    if spec.schema:
        return  # the schema is dropped by pg_schema
    with engine.begin() as conn:
        for name in (spec.labels, spec.reduced, spec.meta):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_rebuild_equals_pandas_and_refresh_equals_rebuild(target) -> None:  # type: ignore[no-untyped-def]
    engine, schema = target
    spec = _spec(schema)
    try:
        first = _labels(200, 1)
        _write(engine, spec, first)
        rebuild_label_table(engine, spec)
        pd.testing.assert_frame_equal(_reduced(engine, spec), _expected(first), check_dtype=False)
        # late labels and corrections for old and new ids, all later than the watermark
        second = _labels(260, 2, start=T0 + timedelta(hours=2))
        _write(engine, spec, second)
        assert not label_table_state(engine, spec, T0 + timedelta(days=1)).usable  # stale
        redone = refresh_label_table(engine, spec)
        assert redone == second["pid"].nunique()
        both = pd.concat([first, second], ignore_index=True)
        incremental = _reduced(engine, spec)
        pd.testing.assert_frame_equal(incremental, _expected(both), check_dtype=False)
        # a backdated correction: caught by the count (stale), then by passing its id
        backdated = pd.DataFrame({"pid": [3], "y": [1], "labelled_at": [T0 + timedelta(hours=5)]})
        _write(engine, spec, backdated)
        state = label_table_state(engine, spec, T0 + timedelta(days=1))
        assert not state.usable and "stale" in state.reason
        refresh_label_table(engine, spec, ids=[3])
        everything = pd.concat([both, backdated], ignore_index=True)
        pd.testing.assert_frame_equal(_reduced(engine, spec), _expected(everything), check_dtype=False)
        rebuild_label_table(engine, spec)
        pd.testing.assert_frame_equal(_reduced(engine, spec), _expected(everything), check_dtype=False)
        # usable for a cut-off at or after the watermark, not for an older one (backfill)
        latest = everything["labelled_at"].max().to_pydatetime()
        ok = label_table_state(engine, spec, latest)
        assert ok.usable, ok.reason
        old = label_table_state(engine, spec, T0 + timedelta(minutes=30))
        assert not old.usable and "before" in old.reason
    finally:
        _drop(engine, spec)


def test_null_rows_and_missing_table_refuse(target) -> None:  # type: ignore[no-untyped-def]
    engine, schema = target
    spec = _spec(schema)
    try:
        frame = _labels(20, 3)
        _write(engine, spec, frame)
        missing = label_table_state(engine, spec, T0 + timedelta(days=1))
        assert not missing.usable and "no reduced label table" in missing.reason
        _write(engine, spec, pd.DataFrame({"pid": [1], "y": [None], "labelled_at": [T0]}))
        rebuild_label_table(engine, spec)
        state = label_table_state(engine, spec, T0 + timedelta(days=1))
        assert not state.usable and "NULL" in state.reason
    finally:
        _drop(engine, spec)


def test_reduced_table_as_label_source_gives_the_same_cells(target) -> None:  # type: ignore[no-untyped-def]
    """With the cut-off at or after the watermark, today's statement over the reduced table gives
    the same confusion cells, histograms and sums as over the full label table (the label counts
    differ by design: ``n_labels`` carries them, and the orphan count is per id)."""
    from dataclasses import fields

    from airflow_mlobs.core.performance.window import PerformanceWindow
    from airflow_mlobs.core.types import TableRef
    from airflow_mlobs.sources.performance_sql import (
        PerformanceQuery,
        PerformanceSource,
        performance_summary_sql,
    )

    engine, schema = target
    spec = _spec(schema)
    preds = f"pred_{spec.labels}"
    try:
        rng = np.random.default_rng(7)
        n = 300
        pd.DataFrame(
            {
                "pid": np.arange(n),
                "predicted_at": [
                    T0 - timedelta(hours=1) + timedelta(seconds=int(s)) for s in rng.integers(0, 3000, n)
                ],
                "score": rng.random(n),
            }
        ).to_sql(preds, engine, schema=schema, index=False)
        _write(engine, spec, _labels(n, 8))
        rebuild_label_table(engine, spec)
        window = PerformanceWindow(
            prediction_start=T0 - timedelta(hours=1),
            prediction_end=T0,
            label_cutoff=T0 + timedelta(days=1),
            arrivals_start=T0 - timedelta(days=1),
        )
        assert label_table_state(engine, spec, window.label_cutoff).usable

        def summary(labels: str, id_col: str, label: str, time: str):  # type: ignore[no-untyped-def]
            source = PerformanceSource(
                predictions=TableRef(preds, schema),
                labels=TableRef(labels, schema),
                id_column="pid",
                label_id_column=id_col,
                prediction_time_column="predicted_at",
                label_column=label,
                label_time_column=time,
                score_column="score",
            )
            overall, _, stats = performance_summary_sql(
                engine, PerformanceQuery(source, window, count_orphans=False, bins=10)
            )
            return overall, stats

        full, _ = summary(spec.labels, "pid", "y", "labelled_at")
        reduced, stats = summary(spec.reduced, "lid", "label", "label_time")
        assert stats.rows_fetched <= 3 * 2 * 2 * 10 + 2  # aggregate cells only, not 300 rows
        for f in fields(full):
            if f.name == "coverage":
                a, b = full.coverage, reduced.coverage
                assert (a.predictions, a.labelled, a.late) == (b.predictions, b.labelled, b.late)
                assert a.labelled > 0
            else:
                want, got = getattr(full, f.name), getattr(reduced, f.name)
                if isinstance(want, float):  # DuckDB sums in parallel: another addition order
                    assert got == pytest.approx(want, rel=1e-12), f.name
                else:
                    assert got == want, f.name
    finally:
        _drop(engine, spec)
        if not schema:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {preds}"))
