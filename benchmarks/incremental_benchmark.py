"""Incremental drift windows benchmark: a 7-day window over PostgreSQL, full rescan against the
incremental second run (six days from the store, one scanned).

    .venv/bin/python benchmarks/incremental_benchmark.py [--rows 1000000] [--runs 3]

Loads (once; reused when present with the right row count) ``mlobs_bench.incremental_events``:
eight UTC days of ``--rows / 7`` rows each (so the 7-day window holds ``--rows``), ten numeric and
three categorical columns, generated in the database (``generate_series``). Builds a baseline from
the first day, then times, median of ``--runs`` after one warm-up:

* ``full``: ``DriftSpec.evaluate`` of days 1-7 (one pushed-down profile of the whole window);
* ``incremental_first``: ``evaluate_incremental`` of days 1-7 with an empty store (seven day scans);
* ``incremental_second``: days 2-8 with days 2-7 stored: one day scanned, six read from the
  results store (SQLite in a temporary folder), merged and judged. The stored day 8 is deleted
  before each repeat so that each scans it again.

Statements executed on PostgreSQL are counted per run. Results go to
``benchmarks/results/incremental-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from airflow_mlobs.specs.drift import BaselineSpec, DriftSpec  # noqa: E402
from airflow_mlobs.specs.drift_incremental import evaluate_incremental  # noqa: E402
from airflow_mlobs.store import ResultsStore, profiles_table  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SCHEMA, TABLE = "mlobs_bench", "incremental_events"
DAY = timedelta(days=1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
NUMERIC = [f"n{i:02d}" for i in range(1, 11)]
CATEGORICAL = ["c1", "c2", "c3"]


def load(engine: sa.Engine, per_day: int) -> None:
    """Eight days of ``per_day`` rows each, generated in the database; kept when already loaded."""
    total = 8 * per_day
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        exists = conn.execute(sa.text(f"SELECT to_regclass('{SCHEMA}.{TABLE}')")).scalar()
        if exists and conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.{TABLE}")).scalar() == total:
            return
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {SCHEMA}.{TABLE}"))
        numeric = ", ".join(
            f"sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) * {i + 1} + {i} AS {name}"
            for i, name in enumerate(NUMERIC)
        )
        categorical = ", ".join(
            f"(ARRAY['a','b','c','d','e'])[1 + floor(random() * {k + 2})::int] AS {name}"
            for k, name in enumerate(CATEGORICAL)
        )
        conn.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.{TABLE} AS SELECT "
                f"TIMESTAMP '2024-01-01' + (i * 8 * 86400.0 / {total}) * INTERVAL '1 second' AS ts, "
                f"{numeric}, {categorical} FROM generate_series(0, {total - 1}) AS i"
            )
        )
        conn.execute(sa.text(f"ANALYZE {SCHEMA}.{TABLE}"))


def timed(run: Callable[[], Any], runs: int, before: Callable[[], None] = lambda: None) -> list[float]:
    """Wall times of ``runs`` calls after one warm-up (``before`` runs untimed before each)."""
    before()
    run()
    times = []
    for _ in range(runs):
        before()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the 7-day window")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    per_day = args.rows // 7
    engine = sa.create_engine(args.url)
    started = time.perf_counter()
    load(engine, per_day)
    load_s = time.perf_counter() - started
    statements = [0]
    sa.event.listen(engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))

    def connect(_conn_id: str) -> Any:
        return nullcontext(engine)

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "baselines"
        table = f"{SCHEMA}.{TABLE}"
        BaselineSpec(
            conn_id="pg",
            table=table,
            timestamp_column="ts",
            reference_start=T0,
            reference_end=T0 + DAY,
            baseline="bench",
            version="v1",
        ).ensure(directory, connect=connect)
        spec = DriftSpec(conn_id="pg", table=table, timestamp_column="ts", baseline="bench", dataset="bench")
        results = sa.create_engine(f"sqlite:///{Path(folder) / 'results.db'}")
        store = ResultsStore(results)
        store.ensure_table()

        def incremental(start: datetime) -> Any:
            return evaluate_incremental(
                spec,
                directory,
                window_start=start,
                window_end=start + 7 * DAY,
                increment=DAY,
                stored_slices=store.stored_slices,
                save_slice=lambda b, p, prov: store.save_profile("bench", b.key, p, provenance=prov),
                connect=connect,
            )

        def forget(*starts: datetime) -> Callable[[], None]:
            def delete() -> None:
                with results.begin() as conn:
                    conn.execute(
                        profiles_table.delete().where(
                            profiles_table.c.window_start.in_([s.astimezone(UTC) for s in starts])
                        )
                    )

            return delete

        figures: dict[str, Any] = {}
        for name, run, before in (
            (
                "full",
                lambda: spec.evaluate(directory, window_start=T0, window_end=T0 + 7 * DAY, connect=connect),
                None,
            ),
            ("incremental_first", lambda: incremental(T0), forget(*(T0 + d * DAY for d in range(8)))),
            ("incremental_second", lambda: incremental(T0 + DAY), forget(T0 + 7 * DAY)),
        ):
            if name == "incremental_second":
                incremental(T0)  # days 1-7 stored
            times = timed(run, args.runs, before or (lambda: None))
            statements[0] = 0
            (before or (lambda: None))()
            result = run()
            figures[name] = {
                "median_s": round(statistics.median(times), 3),
                "runs_s": [round(t, 3) for t in times],
                "statements": statements[0],
                "summary": result.summary[:160],
            }
            print(f"{name:20s} {figures[name]['median_s']:8.3f} s  {statements[0]:3d} statements")
        results.dispose()
    engine.dispose()
    ratio = figures["full"]["median_s"] / figures["incremental_second"]["median_s"]
    print(f"full rescan / incremental second run: {ratio:.1f}x")
    out = ROOT / "benchmarks" / "results" / f"incremental-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(
        json.dumps(
            {
                "rows_in_window": 7 * per_day,
                "rows_in_table": 8 * per_day,
                "columns": {"numeric": len(NUMERIC), "categorical": len(CATEGORICAL)},
                "load_s": round(load_s, 1),
                "figures": figures,
                "full_over_incremental_second": round(ratio, 2),
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "measured_at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
