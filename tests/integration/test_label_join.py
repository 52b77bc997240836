"""The plain join over the reduced label table (``performance_summary_sql(..., reduced=...)``) gives
the same summary as the in-memory join and as today's statement, on SQLite, PostgreSQL, MariaDB and
DuckDB, for classification (segments, NULL scores, duplicate labels with ties, repeated log rows,
rows without an id, orphan labels), multi-class and regression; ``choose_label_path`` takes the
reduced table only when it answers the cut-off, and says why not."""

from __future__ import annotations

import uuid
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.performance.window import PerformanceWindow
from airflow_mlobs.core.performance_settings import Task
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.label_join import choose_label_path
from airflow_mlobs.sources.label_table import LabelTableSpec, keep_label_table, rebuild_label_table
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import PerformanceQuery, PerformanceSource, performance_summary_sql
from tests.integration.test_label_table import target  # noqa: F401  (the four databases)

T0 = datetime(2026, 1, 1)
UTC0 = T0.replace(tzinfo=UTC)
LAST_LABEL = T0 + timedelta(days=5)  # labels arrive up to here


def _frames(task: Task, seed: int, *, repeated: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions over two days (the window is the second), labels 0-5 days later for 85% of them,
    12% with a second label (a correction, some at the very same time), orphans, NULL scores."""
    rng = np.random.default_rng(seed)
    n = 400
    ids = np.arange(1, n + 1, dtype=float)
    ids[rng.random(n) < 0.02] = np.nan  # rows without an id
    predicted_at = [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 2 * 1440, n)]
    score = rng.random(n)
    score[rng.random(n) < 0.03] = np.nan
    classes = np.array(["a", "b", "c"])
    preds = pd.DataFrame(
        {
            "pid": pd.array(ids, dtype="Int64"),
            "predicted_at": predicted_at,
            "score": score * (100 if task == "regression" else 1),
            "predicted": rng.choice(classes, n) if task == "multiclass" else (score >= 0.5).astype(int),
            "segment": rng.choice(["north", "south", None], n),
        }
    )
    if repeated:  # log rows repeating an id, with another score: each is judged (identical rows
        # are one prediction in the grouped statement, each one in the other paths)
        again = preds.dropna(subset=["pid", "score"]).head(15).assign(score=lambda f: 1 - f["score"])
        preds = pd.concat([preds, again], ignore_index=True)
    rows: list[tuple[Any, Any, datetime]] = []
    for i in range(1, n + 1):
        if rng.random() < 0.85:
            t = T0 + timedelta(days=1, minutes=int(rng.integers(0, 4 * 1440)))
            value: Any = {
                "classification": int(rng.random() < 0.4),
                "multiclass": str(rng.choice(classes)),
                "regression": float(rng.normal(50, 20)),
            }[task]
            rows.append((i, value, t))
            if rng.random() < 0.12:
                other: Any = {
                    "classification": 1 - value if isinstance(value, int) else value,
                    "multiclass": str(rng.choice(classes)),
                    "regression": float(rng.normal(50, 20)),
                }[task]
                tie = rng.random() < 0.3
                rows.append((i, other, t if tie else t + timedelta(hours=int(rng.integers(-20, 20)))))
    for k in range(12):  # labels for ids the log never had
        rows.append((10_000 + k, rows[0][1], T0 + timedelta(days=2, hours=k)))
    labels = pd.DataFrame(rows, columns=["pid", "y", "labelled_at"])
    labels = labels[labels["labelled_at"] <= LAST_LABEL]
    return preds, labels


def _write(
    engine: sa.Engine, schema: str | None, tag: str, preds: pd.DataFrame, labels: pd.DataFrame
) -> None:
    preds.to_sql(f"p_{tag}", engine, schema=schema, index=False, if_exists="replace")
    labels.to_sql(f"l_{tag}", engine, schema=schema, index=False, if_exists="replace")


def _append(engine: sa.Engine, schema: str | None, tag: str, rows: list[tuple[int, Any, datetime]]) -> None:
    """Label rows ``(id, label, time)`` written after the others."""
    pd.DataFrame(rows, columns=["pid", "y", "labelled_at"]).to_sql(
        f"l_{tag}", engine, schema=schema, index=False, if_exists="append"
    )


def _query(task: Task, schema: str | None, tag: str, cutoff: datetime) -> PerformanceQuery:
    source = PerformanceSource(
        predictions=TableRef(f"p_{tag}", schema),
        labels=TableRef(f"l_{tag}", schema),
        id_column="pid",
        prediction_time_column="predicted_at",
        label_column="y",
        label_time_column="labelled_at",
        score_column="score",
        predicted_column="predicted" if task != "regression" else None,
        segment_column="segment",
    )
    window = PerformanceWindow(
        prediction_start=UTC0 + timedelta(days=1),
        prediction_end=UTC0 + timedelta(days=2),
        label_cutoff=cutoff,
        arrivals_start=UTC0 + timedelta(days=1),
    )
    return PerformanceQuery(source, window, task=task, positive_label=1, bins=10)


def _assert_same(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    for f in fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, float):  # DuckDB and PostgreSQL sum in parallel: another addition order
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f.name
        else:
            assert a == b, f.name


def _drop(engine: sa.Engine, schema: str | None, tag: str) -> None:
    if schema:
        return  # pg_schema drops the schema
    with engine.begin() as conn:
        for name in (f"p_{tag}", f"l_{tag}", f"l_{tag}_reduced", f"l_{tag}_reduced_meta"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


@pytest.mark.parametrize("task", ["classification", "multiclass", "regression"])
def test_label_join_summary_with_and_without_the_reduced_table_equals_the_in_memory_join(
    target: tuple[sa.Engine, str | None],  # noqa: F811
    task: Task,
) -> None:
    engine, schema = target
    tag = uuid.uuid4().hex[:8]
    # the ranked statement (multi-class, regression) keeps one row per repeated id; the in-memory
    # join and the reduced join judge each: repeated rows only where all paths agree
    preds, labels = _frames(task, 11, repeated=task == "classification")
    try:
        _write(engine, schema, tag, preds, labels)
        rebuild_label_table(
            engine, LabelTableSpec(f"l_{tag}", "pid", "y", "labelled_at", f"l_{tag}_reduced", schema)
        )
        query = _query(task, schema, tag, UTC0 + timedelta(days=6))
        path = choose_label_path(engine, query, "auto")
        assert path.reduced == TableRef(f"l_{tag}_reduced", schema), path.reason
        assert "reduced table" in path.reason
        memory, memory_segments, _ = performance_summary_join(engine, engine, query)
        full, full_segments, _ = performance_summary_sql(engine, query)
        reduced, reduced_segments, stats = performance_summary_sql(engine, query, reduced=path.reduced)
        assert stats.rows_fetched < 200  # aggregate cells only
        assert memory.coverage.labelled > 50 and memory.coverage.duplicate > 0
        assert memory.coverage.orphan_labels > 0 and memory.coverage.unidentified > 0
        if task == "classification":
            assert memory.coverage.repeated > 0
        _assert_same(reduced, memory)
        _assert_same(full, memory)
        assert set(reduced_segments) == set(memory_segments) == set(full_segments)
        for name, want in memory_segments.items():
            _assert_same(reduced_segments[name], want)
            _assert_same(full_segments[name], want)
        # a backfill with a cut-off before the last label: the reduced table cannot answer, the
        # fallback (today's statement, late labels) still equals the in-memory join
        older = _query(task, schema, tag, UTC0 + timedelta(days=3))
        fallback = choose_label_path(engine, older, "auto")
        assert fallback.reduced is None and "before the reduced table's watermark" in fallback.reason
        old_memory, _, _ = performance_summary_join(engine, engine, older)
        old_sql, _, _ = performance_summary_sql(engine, older)
        assert old_memory.coverage.late > 0
        _assert_same(old_sql, old_memory)
        with pytest.raises(SourceError, match=f"l_{tag}_reduced.*cannot answer"):
            choose_label_path(engine, older, f"l_{tag}_reduced")
    finally:
        _drop(engine, schema, tag)


def test_label_path_refuses_null_labels_stale_tables_and_the_earliest_rule(
    target: tuple[sa.Engine, str | None],  # noqa: F811
) -> None:
    engine, schema = target
    tag = uuid.uuid4().hex[:8]
    preds, labels = _frames("classification", 12, repeated=False)
    try:
        _write(engine, schema, tag, preds, labels)
        query = _query("classification", schema, tag, UTC0 + timedelta(days=6))
        missing = choose_label_path(engine, query, "auto")
        assert missing.reduced is None and f"no reduced label table l_{tag}_reduced" in missing.reason
        assert "reduced_labels_table=None" in choose_label_path(engine, query, None).reason
        spec = LabelTableSpec(f"l_{tag}", "pid", "y", "labelled_at", f"l_{tag}_reduced", schema)
        rebuild_label_table(engine, spec)
        assert choose_label_path(engine, query, "auto").reduced is not None
        earliest = PerformanceQuery(query.source, query.window, bins=10, duplicate_labels="earliest")
        assert "earliest" in choose_label_path(engine, earliest, "auto").reason

        # a label written since the build: stale until refreshed
        _append(engine, schema, tag, [(3, 1, T0 + timedelta(days=2))])
        stale = choose_label_path(engine, query, "auto")
        assert stale.reduced is None and "stale" in stale.reason
        _append(engine, schema, tag, [(3, None, T0 + timedelta(days=2))])
        rebuild_label_table(engine, spec)
        nulls = choose_label_path(engine, query, "auto")
        assert nulls.reduced is None and "NULL" in nulls.reason
        # the fallback counts the NULL label apart, as the in-memory join does
        memory, _, _ = performance_summary_join(engine, engine, query)
        full, _, _ = performance_summary_sql(engine, query)
        assert full.coverage.null_labels == memory.coverage.null_labels == 1
        _assert_same(full, memory)
    finally:
        _drop(engine, schema, tag)


def test_keep_label_table_refreshes_appended_labels_and_rebuilds_after_a_backdated_one(
    target: tuple[sa.Engine, str | None],  # noqa: F811
) -> None:
    engine, schema = target
    tag = uuid.uuid4().hex[:8]
    preds, labels = _frames("classification", 13, repeated=False)
    spec = LabelTableSpec(f"l_{tag}", "pid", "y", "labelled_at", f"l_{tag}_reduced", schema)
    query = _query("classification", schema, tag, UTC0 + timedelta(days=9))
    try:
        _write(engine, schema, tag, preds, labels)
        first = keep_label_table(engine, spec)
        assert first.action == "rebuilt" and "no reduced label table" in first.why
        assert first.source_rows == len(labels)
        _append(
            engine,
            schema,
            tag,
            [(5, 1, LAST_LABEL + timedelta(hours=1)), (6, 0, LAST_LABEL + timedelta(hours=2))],
        )
        refreshed = keep_label_table(engine, spec)
        assert (refreshed.action, refreshed.ids) == ("refreshed", 2)
        path = choose_label_path(engine, query, "auto")
        assert path.reduced is not None, path.reason
        memory, _, _ = performance_summary_join(engine, engine, query)
        _assert_same(performance_summary_sql(engine, query, reduced=path.reduced)[0], memory)
        _append(engine, schema, tag, [(7, 1, T0 + timedelta(days=1))])  # backdated: before the watermark
        backdated = keep_label_table(engine, spec)
        assert backdated.action == "rebuilt" and "changed" in backdated.why
        path = choose_label_path(engine, query, "auto")
        memory, _, _ = performance_summary_join(engine, engine, query)
        _assert_same(performance_summary_sql(engine, query, reduced=path.reduced)[0], memory)
    finally:
        _drop(engine, schema, tag)


def test_the_check_says_which_label_source_it_used(tmp_path: Any) -> None:
    """``PerformanceSpec.evaluate``: the same judgement with and without the reduced table, the
    path in ``metrics["label_source"]`` and the summary; an explicit table that cannot answer is
    an ``MlobsInputError`` naming it."""
    from airflow_mlobs.core.errors import MlobsInputError
    from airflow_mlobs.specs.base import url_connected
    from airflow_mlobs.specs.performance import PerformanceSpec

    url = f"sqlite:///{tmp_path / 'check.db'}"
    engine = sa.create_engine(url)
    preds, labels = _frames("classification", 14, repeated=False)
    _write(engine, None, "c", preds, labels)
    spec = PerformanceSpec(
        conn_id=url,
        predictions_table="p_c",
        labels_table="l_c",
        id_column="pid",
        label_column="y",
        predicted_column="predicted",
        score_column="score",
        label_delay="6d",
        baseline={"accuracy": 0.6},
    )
    window = {"window_start": UTC0 + timedelta(days=7), "window_end": UTC0 + timedelta(days=8)}
    before = spec.evaluate(**window, connect=url_connected)
    assert "label_source" not in before.metrics  # no reduced table under "auto": as before
    keep_label_table(engine, LabelTableSpec("l_c", "pid", "y", "labelled_at", "l_c_reduced"))
    used = spec.evaluate(**window, connect=url_connected)
    assert used.metrics["label_source"]["reduced_table"] == "l_c_reduced"
    assert used.summary.startswith(f"{before.summary}; labels from the reduced table l_c_reduced (watermark ")
    assert {k: v for k, v in used.metrics.items() if k != "label_source"} == dict(before.metrics)
    assert used.findings == before.findings
    backfill = {"window_start": UTC0 + timedelta(days=3), "window_end": UTC0 + timedelta(days=4)}
    with pytest.raises(MlobsInputError, match="reduced_labels_table l_c_reduced cannot answer the cut-off"):
        replace(spec, reduced_labels_table="l_c_reduced").evaluate(**backfill, connect=url_connected)
    fallback = spec.evaluate(**backfill, connect=url_connected)
    assert "reduced table not used: cut-off" in fallback.summary
    engine.dispose()


def test_repeated_ids_are_not_counted_where_the_catalog_declares_the_id_unique(
    target: tuple[sa.Engine, str | None],  # noqa: F811
) -> None:
    """A unique index on the prediction id: no ``count(DISTINCT id)`` in the statement (every id
    would be sorted for a count the database already guarantees is 0); the same summary."""
    from airflow_mlobs.sources.performance_sql import performance_statement, unique_column

    engine, schema = target
    tag = uuid.uuid4().hex[:8]
    preds, labels = _frames("classification", 15, repeated=False)
    name = f'"{schema}".p_{tag}' if schema else f"p_{tag}"
    try:
        _write(engine, schema, tag, preds, labels)
        query = _query("classification", schema, tag, UTC0 + timedelta(days=6))
        assert not unique_column(engine, query.source.predictions, "pid")
        before, _, _ = performance_summary_sql(engine, query)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM {name} WHERE pid IS NULL"))
            conn.execute(sa.text(f"CREATE UNIQUE INDEX u_{tag} ON {name} (pid)"))
        if engine.dialect.name == "duckdb":  # its inspector does not answer: counted as before
            assert not unique_column(engine, query.source.predictions, "pid")
        else:
            assert unique_column(engine, query.source.predictions, "pid")
            assert "DISTINCT" not in str(performance_statement(engine, query)).upper()
        after, _, _ = performance_summary_sql(engine, query)
        assert after.coverage.repeated == before.coverage.repeated == 0
        assert after.coverage.unidentified == 0 < before.coverage.unidentified
        _assert_same(replace(after, coverage=before.coverage), before)
    finally:
        _drop(engine, schema, tag)


def test_a_refresh_by_watermark_does_not_hide_a_backdated_label(
    target: tuple[sa.Engine, str | None],  # noqa: F811
) -> None:
    """A label written before the watermark, then a refresh without ids: the table stays refused
    (stale) until a rebuild, never silently answering with the old winner."""
    from airflow_mlobs.sources.label_table import refresh_label_table

    engine, schema = target
    tag = uuid.uuid4().hex[:8]
    preds, labels = _frames("classification", 16, repeated=False)
    spec = LabelTableSpec(f"l_{tag}", "pid", "y", "labelled_at", f"l_{tag}_reduced", schema)
    query = _query("classification", schema, tag, UTC0 + timedelta(days=9))
    try:
        _write(engine, schema, tag, preds, labels)
        rebuild_label_table(engine, spec)
        _append(
            engine, schema, tag, [(8, 1, T0 + timedelta(days=1)), (9, 0, LAST_LABEL + timedelta(hours=1))]
        )
        assert refresh_label_table(engine, spec) == 1  # only id 9 is above the watermark
        stale = choose_label_path(engine, query, "auto")
        assert stale.reduced is None and "stale" in stale.reason
        rebuild_label_table(engine, spec)
        assert choose_label_path(engine, query, "auto").reduced is not None
    finally:
        _drop(engine, schema, tag)
