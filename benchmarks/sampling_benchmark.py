"""Sampled drift profile vs the full profile vs the bare scan on PostgreSQL.

Command (the table ``mlobs_bench.drift_<rows>`` is built by drift_benchmark.py's ``load_table``,
reused here; building 10M rows takes minutes the first time)::

    cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/sampling_benchmark.py --rows 10000000 --sample 1%

Timings are interleaved (bare count, full profile, sampled profile, repeated) so a loaded machine
affects each alike; the figure is the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drift_benchmark import (
    BENCH_SCHEMA,
    CATEGORICAL,
    COLUMNS,
    NUMERIC,
    T0,
    load_table,
    pg_url,
    table_name,
)

from airflow_mlobs.core.sampling import parse_sample
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.drift_frame import build_baseline
from airflow_mlobs.sources.drift_sql import profile_sql


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sample", default="1%")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    engine = sa.create_engine(pg_url())
    load_table(engine, args.rows)
    name = table_name(args.rows)
    qualified = f"{BENCH_SCHEMA}.{name}"
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT {', '.join(COLUMNS)} FROM {qualified} WHERE id <= 100000"), conn)
    kinds = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
    baseline = build_baseline(frame, name="bench_sample", version="v1", kinds=kinds)  # type: ignore[arg-type]
    specs = list(baseline.columns.values())
    table = TableRef(name, schema=BENCH_SCHEMA)
    start, end = T0, T0 + timedelta(seconds=args.rows + 1)
    request = parse_sample(args.sample, None, seed=1)

    def bare() -> None:
        with engine.connect() as conn:
            conn.execute(
                sa.text(f"SELECT count(*) FROM {qualified} WHERE ts >= :s AND ts < :e"),
                {"s": start, "e": end},
            )

    def full() -> None:
        profile_sql(engine, specs, table=table, timestamp_column="ts", window_start=start, window_end=end)

    def sampled() -> None:
        profile_sql(
            engine,
            specs,
            table=table,
            timestamp_column="ts",
            window_start=start,
            window_end=end,
            sampling=request,
        )

    bare()
    times: dict[str, list[float]] = {"bare_scan": [], "full_profile": [], "sampled_profile": []}
    for _ in range(args.runs):
        for label, func in (("bare_scan", bare), ("full_profile", full), ("sampled_profile", sampled)):
            began = time.perf_counter()
            func()
            times[label].append(time.perf_counter() - began)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "rows": args.rows,
                "sample": args.sample,
                "median_s": med,
                "sampled_over_bare": med["sampled_profile"] / med["bare_scan"],
                "sampled_over_full": med["sampled_profile"] / med["full_profile"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
