"""The prediction logger on PostgreSQL: the COPY path writes exactly what the insert path writes,
concurrent writers (processes and threads, racing to create the table) lose nothing and repeat
nothing, and the performance check reads the logged table and labels in a schema.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.recorder import PERFORMANCE_DEFAULTS, PredictionLogger
from tests.conftest import pg_url

ROOT = Path(__file__).resolve().parents[2]
KEY = "pg-test-key-0123456789abcdef"
DAY = datetime(2026, 11, 22, tzinfo=UTC)


def _rows(engine: sa.Engine, schema: str, table: str, order: str = "prediction_id") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(f'SELECT * FROM "{schema}"."{table}" ORDER BY {order}'))
        return [dict(r._mapping) for r in result]


def _awkward_batch() -> dict[str, list[Any]]:
    """Values the CSV of COPY must carry exactly: NULL vs empty text, quotes, commas, newlines,
    backslashes, unicode, NaN and infinities, booleans, moments in other zones, bytes."""
    return {
        "text": [
            "plain",
            "",
            None,
            'say "hi", ok',
            "two\nlines\r\n",
            "back\\slash",
            "ünïcødé ✓",
            "\\N",
            "NULL",
        ],
        "number": [1.5, float("nan"), None, float("inf"), -float("inf"), 0.0, -2.25e-300, 1e300, 3.0],
        "count": [1, None, -3, 2**62, 0, 5, 6, 7, 8],
        "flag": [True, False, None, True, True, False, False, True, None],
        "seen": [
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            datetime(2026, 1, 1, 12, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo")),
            None,
            datetime(2026, 1, 1, 12),  # naive: taken as UTC
            DAY,
            DAY,
            DAY,
            DAY,
            DAY,
        ],
        "blob": [b"\x00\x01", None, b"", b"abc", b"\xff", b"x", b"y", b"z", b"w"],
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize("fast", [True, False], ids=["copy", "executemany"])
def test_copy_and_insert_write_the_same_values(pg_engine: sa.Engine, pg_schema: str, fast: bool) -> None:
    batch = _awkward_batch()
    n = len(batch["text"])
    ids = [f"id-{i}" for i in range(n)]
    with PredictionLogger(pg_engine, schema=pg_schema, fast_copy=fast, model_version="v1") as logger:
        logger.log_batch(
            batch,
            scores=[0.5] * n,
            predicted_classes=["a"] * n,
            prediction_ids=ids,
            predicted_at=DAY,
        )
        logger.flush()
        path = logger.predictions.last_path
    # A batch holding the NULL marker as text goes through the insert, so "\N" stays text.
    assert path == "executemany"
    with PredictionLogger(pg_engine, schema=pg_schema, fast_copy=fast) as logger:
        logger.log_batch({k: v[:7] for k, v in batch.items()}, prediction_ids=[f"more-{i}" for i in range(7)])
        logger.flush()
        assert logger.predictions.last_path == ("copy" if fast else "executemany")
    rows = {r["prediction_id"]: r for r in _rows(pg_engine, pg_schema, "mlobs_prediction_log")}
    for i, pid in enumerate(ids):
        for name, values in batch.items():
            want = values[i]
            if isinstance(want, datetime) and want.tzinfo is None:
                want = want.replace(tzinfo=UTC)
            got = rows[pid][name]
            if name == "blob" and got is not None:
                got = bytes(got)
            assert _same(want, got), (pid, name, want, got)
            more = rows.get(f"more-{i}")
            if more is not None:
                other = bytes(more[name]) if name == "blob" and more[name] is not None else more[name]
                assert _same(want, other), ("copy", i, name, want, other)
    assert rows["id-0"]["predicted_at"] == DAY and rows["id-0"]["model_version"] == "v1"
    assert rows["id-1"]["text"] == "" and rows["id-2"]["text"] is None and rows["id-7"]["text"] == "\\N"
    assert rows["more-1"]["text"] == "" and rows["more-2"]["text"] is None


_WRITER = """
import sys
from airflow_mlobs.recorder import PredictionLogger
url, schema, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with PredictionLogger(url, schema=schema, pseudonymize=["customer_id"], key=sys.argv[5], batch_size=499) as logger:
    for start in range(0, n, 250):
        ids = logger.log_batch(
            {"customer_id": [(worker + 1) * 1_000_000 + i for i in range(start, start + 250)], "x": [float(i) for i in range(250)]},
            scores=[0.5] * 250,
        )
        logger.log_labels(ids, [1] * 250)
print(logger.rows_written, logger.labels_written)
"""


def test_concurrent_processes_racing_to_create_the_table_lose_nothing(
    pg_engine: sa.Engine, pg_schema: str
) -> None:
    workers, n = 4, 5_000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, pg_url(), pg_schema, str(w), str(n), KEY],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert out.split() == [str(n), str(n)]
    with pg_engine.connect() as conn:
        total, distinct, customers = conn.execute(
            sa.text(
                f'SELECT count(*), count(DISTINCT prediction_id), count(DISTINCT customer_id) FROM "{pg_schema}".mlobs_prediction_log'
            )
        ).one()
        labels, joined = conn.execute(
            sa.text(
                f'SELECT count(*), count(p.prediction_id) FROM "{pg_schema}".mlobs_labels l '
                f'LEFT JOIN "{pg_schema}".mlobs_prediction_log p USING (prediction_id)'
            )
        ).one()
        sample = conn.execute(
            sa.text(
                f'SELECT customer_id FROM "{pg_schema}".mlobs_prediction_log WHERE x = 3 ORDER BY customer_id LIMIT 1'
            )
        ).scalar()
        meta = conn.execute(sa.text(f'SELECT count(*) FROM "{pg_schema}".mlobs_prediction_log_meta')).scalar()
    assert (total, distinct, customers) == (workers * n,) * 3
    assert (labels, joined) == (workers * n,) * 2
    key = PseudonymKey.from_text(KEY)
    assert sample in {
        pseudonym((w + 1) * 1_000_000 + i, key) for w in range(workers) for i in range(3, n, 250)
    }
    assert meta == 1  # four writers, one treatment row
    # No raw customer id in any column of any row (the log's and the labels').
    raw = {str((w + 1) * 1_000_000 + i) for w in range(workers) for i in range(n)}
    for table in ("mlobs_prediction_log", "mlobs_labels", "mlobs_prediction_log_meta"):
        for row in _rows(pg_engine, pg_schema, table, order="1"):
            assert raw.isdisjoint(str(v) for v in row.values()), (table, row)


def test_threads_sharing_one_logger_lose_nothing(pg_engine: sa.Engine, pg_schema: str) -> None:
    threads, per_thread = 8, 1_000
    returned: list[list[str]] = [[] for _ in range(threads)]
    with PredictionLogger(pg_engine, schema=pg_schema, table="shared", batch_size=300) as logger:

        def work(t: int) -> None:
            for i in range(per_thread):
                returned[t].append(logger.log({"thread": t, "i": i}, score=i / per_thread))

        started = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
    rows = _rows(pg_engine, pg_schema, "shared")
    assert len(rows) == threads * per_thread
    assert {r["prediction_id"] for r in rows} == {pid for ids in returned for pid in ids}
    assert sorted((r["thread"], r["i"]) for r in rows) == [
        (t, i) for t in range(threads) for i in range(per_thread)
    ]


def test_the_performance_check_reads_the_log_in_a_schema(pg_engine: sa.Engine, pg_schema: str) -> None:
    """Predictions (timestamptz) and labels logged into a schema, judged by PerformanceSpec in the
    database: accuracy, ROC AUC and coverage equal to numpy's count and scipy's AUC."""
    from scipy import stats

    from airflow_mlobs.specs.base import url_connected
    from airflow_mlobs.specs.performance import PerformanceSpec

    rng = np.random.default_rng(9)
    n = 3_000
    score = rng.random(n)
    truth = (rng.random(n) < score).astype(int)
    at = [DAY + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, n))]
    labelled = rng.random(n) < 0.85
    with PredictionLogger(pg_engine, schema=pg_schema, model_version="v2", sample=1.0) as logger:
        ids = logger.log_batch(
            {"age": rng.integers(18, 80, n).tolist()}, scores=score.tolist(), predicted_at=at
        )
        chosen = np.flatnonzero(labelled)
        logger.log_labels(
            [ids[i] for i in chosen],
            truth[chosen].tolist(),
            labelled_at=[at[i] + timedelta(hours=30) for i in chosen],
        )
        # Another model version's predictions in the same window: filtered out by model_version.
        logger.log_batch(
            {"age": [30] * 50}, scores=[0.99] * 50, predicted_at=DAY + timedelta(hours=1), model_version="v9"
        )
    tables = {
        "predictions_table": f"{pg_schema}.{PERFORMANCE_DEFAULTS['predictions_table']}",
        "labels_table": f"{pg_schema}.{PERFORMANCE_DEFAULTS['labels_table']}",
    }
    spec = PerformanceSpec(
        conn_id=pg_url(), **{**PERFORMANCE_DEFAULTS, **tables}, model_version="v2", label_delay="2d"
    )
    result = spec.evaluate(
        window_start=DAY + timedelta(days=2), window_end=DAY + timedelta(days=3), connect=url_connected
    )
    metrics = result.metrics["metrics"]
    y, s = truth[labelled], score[labelled]
    assert metrics["accuracy"]["value"] == pytest.approx(
        float(np.mean((s >= 0.5) == y.astype(bool))), rel=1e-12
    )
    assert result.metrics["label_coverage"] == pytest.approx(labelled.mean(), rel=1e-12)
    auc = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic / ((y == 1).sum() * (y == 0).sum())
    assert metrics["roc_auc"]["value"] == pytest.approx(auc, abs=0.01)  # binned scores: close, not equal


def test_psycopg3_copies_too(pg_schema: str) -> None:
    """The psycopg 3 driver's ``cursor.copy`` is found by duck typing like psycopg2's ``copy_expert``."""
    pytest.importorskip("psycopg")
    url = sa.engine.make_url(pg_url()).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url)
    batch = {k: v[:7] for k, v in _awkward_batch().items()}
    try:
        with PredictionLogger(engine, schema=pg_schema, pseudonymize=["text"], key=KEY) as logger:
            logger.log_batch(batch, prediction_ids=[str(i) for i in range(7)], scores=[0.25] * 7)
            logger.flush()
            assert logger.predictions.last_path == "copy"
        rows = _rows(engine, pg_schema, "mlobs_prediction_log")
    finally:
        engine.dispose()
    key = PseudonymKey.from_text(KEY)
    for row in rows:
        i = int(row["prediction_id"])
        want = batch["text"][i]
        assert row["text"] == (None if want is None else pseudonym(want, key))
        assert _same(batch["number"][i], row["number"]) and row["count"] == batch["count"][i]
        assert row["score"] == 0.25
