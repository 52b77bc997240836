"""Ten million predictions joined with nine million labels in PostgreSQL: the worker fetches only
aggregate rows and its memory stays flat (the issue's scale; the timing is in
``benchmarks/performance_benchmark.py``, never asserted here).

Rows fetched are counted with a SQLAlchemy cursor event (catalog reads included); the worker's
resident memory is sampled from ``/proc/self/statm`` by a thread while the join runs.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.performance.metrics import classification_metrics
from airflow_mlobs.core.performance.summary import ClassificationSummary
from airflow_mlobs.sources.performance_sql import PerformanceQuery, performance_summary_sql
from tests.integration.test_performance_sql import WINDOW, _source

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROWS = 10_000_000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """The largest resident set seen while the block runs, sampled every 20 ms."""

    def __enter__(self) -> _PeakRss:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def test_ten_million_predictions_fetch_aggregates_only_with_flat_memory(
    pg_engine: sa.Engine, pg_schema: str
) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.7)"))
        conn.execute(
            sa.text(
                f'CREATE UNLOGGED TABLE "{pg_schema}".predictions AS SELECT g AS prediction_id, '
                "CAST(:start AS TIMESTAMPTZ) + (g % 86400) * INTERVAL '1 second' AS predicted_at, "
                "random() AS score, (g % 4)::text AS segment FROM generate_series(1, :n) g"
            ),
            {"start": WINDOW.prediction_start, "n": ROWS},
        )
        # 90% labelled 3 days later; every 100th labelled prediction gets a later correction.
        conn.execute(
            sa.text(
                f'CREATE UNLOGGED TABLE "{pg_schema}".labels AS SELECT prediction_id, '
                "CASE WHEN random() < score * 0.8 + 0.1 THEN 1 ELSE 0 END AS label, "
                "predicted_at + INTERVAL '3 days' AS labelled_at "
                f'FROM "{pg_schema}".predictions WHERE prediction_id % 10 <> 0 '
                "UNION ALL SELECT prediction_id, 1, predicted_at + INTERVAL '4 days' "
                f'FROM "{pg_schema}".predictions WHERE prediction_id % 100 = 1'
            )
        )
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".predictions'))
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".labels'))
    fetched: list[int] = []

    def count_rows(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        fetched.append(max(cursor.rowcount, 0))

    sa.event.listen(pg_engine, "after_cursor_execute", count_rows)
    try:
        with _PeakRss() as rss:
            overall, segments, stats = performance_summary_sql(
                pg_engine, PerformanceQuery(_source(pg_schema, segment_column="segment"), WINDOW)
            )
    finally:
        sa.event.remove(pg_engine, "after_cursor_execute", count_rows)

    assert isinstance(overall, ClassificationSummary)
    cov = overall.coverage
    assert cov.predictions == ROWS and cov.labelled == ROWS * 9 // 10
    assert cov.duplicate == ROWS // 100  # ids 1, 101, ... are all labelled (id % 10 == 1)
    assert sum(overall.positives) + sum(overall.negatives) == overall.labelled
    assert len(segments) == 4 and sum(s.coverage.predictions for s in segments.values()) == ROWS
    # Only aggregate rows crossed the wire: one statement, at most segments x states x y x yhat x bins.
    assert stats.statements == 1 and stats.rows_fetched <= 4 * 2 * 2 * 2 * 1000 + 1
    assert sum(fetched) < 20_000 and sum(fetched) * 500 < ROWS
    # ... and the worker's memory did not grow with the table (10M rows of 4 columns would be
    # hundreds of MB in pandas).
    assert rss.peak - rss.start < 50 * 2**20, (rss.start, rss.peak)
    auc = classification_metrics(overall)["roc_auc"].value
    assert auc is not None and 0.7 < auc < 0.8
