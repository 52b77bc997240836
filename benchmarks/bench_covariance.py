"""Cost of the joint-drift covariance statement vs a bare scan (count(*)) at 1M rows x 10 columns.

Command: ``cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/bench_covariance.py`` (needs the
test PostgreSQL at 127.0.0.1:5432; SQLite runs in a temp file). Timings interleaved, best of 3."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

from airflow_mlobs.sources.covariance_sql import gather_covariance

N, K = 1_000_000, 10
COLS = tuple(f"x{i}" for i in range(K))


def main() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(N, K)), columns=list(COLS))
    engines = {
        "postgresql": sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test"),
        "sqlite": sa.create_engine(f"sqlite:///{tempfile.mkdtemp()}/b.db"),
    }
    for name, engine in engines.items():
        frame.to_sql("bench_cov", engine, index=False, if_exists="replace", chunksize=50_000, method="multi")
        bare, cov = [], []
        for _ in range(3):
            t = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT count(*), sum(x0) FROM bench_cov")).fetchall()
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            gather_covariance(engine, "bench_cov", COLS, [0.0] * K)
            cov.append(time.perf_counter() - t)
        print(
            f"{name}: bare scan {min(bare):.3f} s, covariance ({2 + K + K * (K + 1) // 2} aggregates) "
            f"{min(cov):.3f} s, ratio {min(cov) / min(bare):.1f}x"
        )
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE bench_cov"))


if __name__ == "__main__":
    main()
