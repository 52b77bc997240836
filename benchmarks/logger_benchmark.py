"""Prediction logger benchmark: rows per second written into PostgreSQL (and SQLite).

```
.venv/bin/python benchmarks/logger_benchmark.py [--rows 200000] [--features 10] [--batch-size 10000]
    [--runs 3] [--skip-sqlite] [--row-by-row 20000]
```

Each run logs ``--rows`` predictions with ``--features`` feature columns (numeric, one text) and a
pseudonymized ``customer_id`` through ``PredictionLogger.log_batch`` into a fresh table of the
schema ``mlobs_bench_logger`` (PostgreSQL from ``MLOBS_TEST_DATABASE_URL``, default the local
server), flushed every ``--batch-size`` rows: the COPY path (psycopg2's ``copy_expert``) and the
``executemany`` path (``fast_copy=False``). The time covers everything from the column values in
memory to the committed rows: pseudonyms, uuid4 ids, CSV, COPY, the unique index. ``--row-by-row``
also times that many single ``log()`` calls (the serving path). The median of ``--runs`` is
reported and written to ``benchmarks/results/logger-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlobs.recorder import PredictionLogger  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SCHEMA = "mlobs_bench_logger"
KEY = "benchmark-key-0123456789abcdef"


def columns(rows: int, features: int, seed: int = 1) -> tuple[dict[str, Any], list[float], list[int]]:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {"customer_id": rng.integers(1, 5_000_000, rows).tolist()}
    for i in range(features - 1):
        data[f"f{i:02d}"] = rng.normal(size=rows).round(6).tolist()
    data["region"] = rng.choice(["north", "south", "east", "west"], rows).tolist()
    scores = rng.random(rows).tolist()
    return data, scores, [int(s >= 0.5) for s in scores]


def run_batch(
    engine: sa.Engine,
    schema: str | None,
    table: str,
    data: dict[str, Any],
    scores: list[float],
    classes: list[int],
    batch_size: int,
    fast: bool,
) -> tuple[float, str]:
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {schema + '.' if schema else ''}{table}"))
    start = time.perf_counter()
    with PredictionLogger(
        engine,
        table=table,
        schema=schema,
        labels_table=table + "_labels",
        pseudonymize=["customer_id"],
        key=KEY,
        model_version="v1",
        batch_size=batch_size,
        fast_copy=fast,
    ) as logger:
        logger.log_batch(data, scores=scores, predicted_classes=classes)
    elapsed = time.perf_counter() - start
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(f"SELECT count(*) FROM {schema + '.' if schema else ''}{table}")
        ).scalar()
    assert count == len(scores), (count, len(scores))
    return elapsed, logger.predictions.last_path


def run_rows(
    engine: sa.Engine,
    schema: str | None,
    table: str,
    data: dict[str, Any],
    scores: list[float],
    rows: int,
    batch_size: int,
) -> float:
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {schema + '.' if schema else ''}{table}"))
    names = list(data)
    start = time.perf_counter()
    with PredictionLogger(
        engine,
        table=table,
        schema=schema,
        labels_table=table + "_labels",
        pseudonymize=["customer_id"],
        key=KEY,
        model_version="v1",
        batch_size=batch_size,
    ) as logger:
        for i in range(rows):
            logger.log({name: data[name][i] for name in names}, score=scores[i], predicted_class=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--row-by-row", type=int, default=20_000)
    args = parser.parse_args()
    data, scores, classes = columns(args.rows, args.features)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "features": args.features,
        "batch_size": args.batch_size,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "sqlalchemy": sa.__version__,
        },
        "measurements": {},
    }
    pg = sa.create_engine(os.environ.get("MLOBS_TEST_DATABASE_URL", DEFAULT_PG_URL))
    with pg.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        results["machine"]["postgresql"] = conn.execute(sa.text("SHOW server_version")).scalar()
    targets: list[tuple[str, sa.Engine, str | None, bool]] = [
        ("postgresql copy", pg, SCHEMA, True),
        ("postgresql executemany", pg, SCHEMA, False),
    ]
    tmp = tempfile.mkdtemp(prefix="mlobs-logger-bench-")
    if not args.skip_sqlite:
        targets.append(("sqlite executemany", sa.create_engine(f"sqlite:///{tmp}/log.db"), None, True))
    for name, engine, schema, fast in targets:
        times = []
        path = ""
        for _ in range(args.runs):
            elapsed, path = run_batch(
                engine, schema, "bench_log", data, scores, classes, args.batch_size, fast
            )
            times.append(elapsed)
        median = statistics.median(times)
        results["measurements"][name] = {
            "seconds": times,
            "median_seconds": median,
            "rows_per_second": args.rows / median,
            "path": path,
        }
        print(
            f"{name:28s} {args.rows / median:>10,.0f} rows/s  (median {median:.2f} s of {[round(t, 2) for t in times]}, {path})"
        )
    if args.row_by_row:
        elapsed = run_rows(pg, SCHEMA, "bench_rows", data, scores, args.row_by_row, args.batch_size)
        results["measurements"]["postgresql log() row by row"] = {
            "rows": args.row_by_row,
            "seconds": elapsed,
            "rows_per_second": args.row_by_row / elapsed,
        }
        print(
            f"{'postgresql log() row by row':28s} {args.row_by_row / elapsed:>10,.0f} rows/s  ({args.row_by_row} rows, {elapsed:.2f} s)"
        )
    with pg.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {SCHEMA} CASCADE"))
    out = ROOT / "benchmarks" / "results" / f"logger-{datetime.now(UTC).date().isoformat()}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
