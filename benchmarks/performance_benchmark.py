"""Delayed-label performance benchmark: the pushed-down join against a bare join on PostgreSQL.

    .venv/bin/python benchmarks/performance_benchmark.py [--sizes 1000000 10000000] [--runs 3]
        [--in-worker 1000000] [--skip-sql] [--output DIR]

For each size N: a prediction log of N rows (``prediction_id`` primary key, one day of prediction
times, a uniform score, 4 segments) and a label table with a label for 90% of them (label
probability ``0.1 + 0.8 * score``, arriving 3 days later) plus 1% duplicate corrections and 1,000
labels for unknown ids; tables ``mlobs_bench.perf_predictions_<N>`` / ``perf_labels_<N>``, made
with ``generate_series`` and reused when their row count is right. PostgreSQL comes from
``MLOBS_TEST_DATABASE_URL`` (default the local test server).

Measured, each the median of ``--runs`` runs after one warm-up, the bare join and the summary
interleaved (the machine may be shared):

* ``performance_summary_sql`` (classification, 1000 score bins, per segment, orphan labels
  counted): wall time and rows fetched;
* the bare join ``SELECT count(*) FROM predictions p JOIN labels l USING (prediction_id) WHERE
  <prediction window>``: wall time. Target: the pushed-down summary at most 1.5x the bare join;
* the worker's RSS: peak (``ru_maxrss``) and growth during the call (a thread samples
  ``/proc/self/statm``). Target: flat, under 300 MB.

With ``--in-worker N [N ...]``: at those sizes also the in-memory join across connections,
``performance_summary_join`` (labels streamed and reduced, predictions streamed in chunks, both read
from PostgreSQL through their own connections), against the same bare join, interleaved; its summary
must equal the pushed-down one (checked, ``in_worker_equal``). ``--skip-sql`` leaves the pushed-down
summary out (then the in-worker summary is checked against one pushed-down run).

Results go to ``benchmarks/results/performance-<date>.json`` (with the plans of both statements:
``EXPLAIN`` of the summary under the ``SET LOCAL`` settings it runs with); a summary table is
printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from airflow_mlobs.core.performance.judge import judge_performance  # noqa: E402
from airflow_mlobs.core.performance.metrics import classification_metrics  # noqa: E402
from airflow_mlobs.core.performance.window import evaluation_window  # noqa: E402
from airflow_mlobs.core.performance_settings import PerformanceSettings  # noqa: E402
from airflow_mlobs.core.types import TableRef  # noqa: E402
from airflow_mlobs.sources.dialect import dialect_for  # noqa: E402
from airflow_mlobs.sources.performance_frame import performance_summary_join  # noqa: E402
from airflow_mlobs.sources.performance_sql import (  # noqa: E402
    PerformanceQuery,
    PerformanceSource,
    performance_statement,
    performance_summary_sql,
    session_purpose,
)

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SCHEMA = "mlobs_bench"
INTERVAL = (datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))
DELAY = timedelta(days=7)
RATIO_TARGET = 1.5
RSS_TARGET_MB = 300.0


def rss_mb() -> float:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples RSS every 10 ms in a thread; ``growth_mb`` is the peak over the starting RSS."""

    def __enter__(self) -> RssSampler:
        self.start = rss_mb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.start


def ensure_tables(engine: sa.Engine, rows: int) -> tuple[str, str, float]:
    """Create (or reuse) the prediction and label tables of ``rows`` predictions; returns their
    names and the load time (0 when reused)."""
    preds, labels = f"perf_predictions_{rows}", f"perf_labels_{rows}"
    window = evaluation_window(*INTERVAL, DELAY)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        exists = conn.execute(
            sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": SCHEMA, "t": labels},
        ).scalar()
        if exists:
            count = conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.{preds}")).scalar()
            if count == rows:
                return preds, labels, 0.0
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {SCHEMA}.{preds}, {SCHEMA}.{labels}"))
        conn.execute(sa.text("SELECT setseed(0.5)"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.{preds} AS SELECT g::bigint AS prediction_id, "
                "CAST(:start AS timestamptz) + (g::float8 / :n) * INTERVAL '1 day' AS predicted_at, "
                "random() AS score, (g % 4)::text AS segment FROM generate_series(1, :n) g"
            ),
            {"start": window.prediction_start, "n": rows},
        )
        conn.execute(sa.text(f"ALTER TABLE {SCHEMA}.{preds} ADD PRIMARY KEY (prediction_id)"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.{labels} AS SELECT prediction_id, "
                "CASE WHEN random() < 0.1 + 0.8 * score THEN 1 ELSE 0 END AS label, "
                "predicted_at + INTERVAL '3 days' AS labelled_at "
                f"FROM {SCHEMA}.{preds} WHERE prediction_id % 10 <> 0"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.{labels} SELECT prediction_id, 1 - label, labelled_at + INTERVAL '1 hour' "
                f"FROM {SCHEMA}.{labels} WHERE prediction_id % 100 = 1"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.{labels} SELECT :n + g, 1, CAST(:at AS timestamptz) + g * INTERVAL '1 second' "
                "FROM generate_series(1, 1000) g"
            ),
            {"n": rows, "at": INTERVAL[0]},
        )
        conn.execute(sa.text(f"CREATE INDEX ON {SCHEMA}.{labels} (prediction_id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {SCHEMA}.{preds}"))
        conn.execute(sa.text(f"VACUUM ANALYZE {SCHEMA}.{labels}"))
    return preds, labels, time.perf_counter() - started


def _source(preds: str, labels: str) -> PerformanceSource:
    return PerformanceSource(
        predictions=TableRef(preds, SCHEMA),
        labels=TableRef(labels, SCHEMA),
        id_column="prediction_id",
        prediction_time_column="predicted_at",
        label_column="label",
        label_time_column="labelled_at",
        score_column="score",
        segment_column="segment",
    )


def _bare(preds: str, labels: str) -> sa.TextClause:
    """The floor: the bare join of the window's predictions with their labels, counted."""
    return sa.text(
        f"SELECT count(*) FROM {SCHEMA}.{preds} p JOIN {SCHEMA}.{labels} l USING (prediction_id) "
        "WHERE p.predicted_at >= :s AND p.predicted_at < :e"
    )


def _same(got: Any, want: Any) -> bool:
    """Summaries equal field by field, floats to 1e-9 (as tests/integration/test_performance_join.py)."""
    if type(got) is not type(want):
        return False
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if isinstance(b, float) and isinstance(a, float):
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) and not (math.isnan(a) and math.isnan(b)):
                return False
        elif a != b:
            return False
    return True


def measure(engine: sa.Engine, rows: int, runs: int) -> dict[str, Any]:
    """Time the pushed-down summary and the bare join at one size."""
    preds, labels, load_s = ensure_tables(engine, rows)
    window = evaluation_window(*INTERVAL, DELAY)
    source = _source(preds, labels)
    bare = _bare(preds, labels)

    def run_bare() -> float:
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(bare, {"s": window.prediction_start, "e": window.prediction_end}).scalar()
        return time.perf_counter() - started

    # Interleaved (bare, summary, bare, summary, ...) after one warm-up of each, so that load from
    # other processes on the machine falls on both alike.
    bare_times, summary_times, growths = [], [], []
    result: Any = None
    for attempt in range(runs + 1):
        bare_s = run_bare()
        with RssSampler() as sampler:
            started = time.perf_counter()
            result = performance_summary_sql(engine, PerformanceQuery(source, window))
            elapsed = time.perf_counter() - started
        if attempt:  # the first of each is the warm-up
            bare_times.append(bare_s)
            summary_times.append(elapsed)
            growths.append(sampler.growth_mb)
    overall, segments, stats = result
    metrics = classification_metrics(overall)
    judged = judge_performance(
        overall,
        PerformanceSettings(metric="roc_auc", baseline={"roc_auc": 0.76}),
        dataset=preds,
        window=window,
    )
    with engine.connect() as conn:
        plan = [
            r[0]
            for r in conn.execute(
                sa.text("EXPLAIN " + bare.text), {"s": window.prediction_start, "e": window.prediction_end}
            )
        ]
    settings = dialect_for(engine).session_settings(session_purpose("classification"))
    statement = performance_statement(engine, PerformanceQuery(source, window))
    with engine.begin() as conn:
        dialect_for(engine).prepare_session(conn, session_purpose("classification"))
        summary_plan = [r[0] for r in conn.execute(sa.text("EXPLAIN " + _literal_sql(engine, statement)))]
    summary_s, bare_s = statistics.median(summary_times), statistics.median(bare_times)
    return {
        "rows": rows,
        "labels": overall.coverage.labelled + overall.coverage.duplicate,
        "load_seconds": round(load_s, 1),
        "summary_seconds": round(summary_s, 3),
        "summary_runs": [round(t, 3) for t in summary_times],
        "bare_join_seconds": round(bare_s, 3),
        "bare_join_runs": [round(t, 3) for t in bare_times],
        "ratio": round(summary_s / bare_s, 2),
        "ratio_target": RATIO_TARGET,
        "rows_fetched": stats.rows_fetched,
        "statements": stats.statements,
        "rss_growth_mb": round(max(growths), 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "rss_target_mb": RSS_TARGET_MB,
        "coverage": overall.coverage.to_dict(),
        "segments": len(segments),
        "roc_auc": metrics["roc_auc"].value,
        "accuracy": metrics["accuracy"].value,
        "status": judged.status.value,
        "bare_join_plan": plan,
        "summary_settings": list(settings),
        "summary_plan": summary_plan,
    }


def measure_in_worker(engine: sa.Engine, rows: int, runs: int) -> dict[str, Any]:
    """Time the in-memory join across connections against the bare join at one size, and check that
    its summary equals the pushed-down one."""
    preds, labels, _ = ensure_tables(engine, rows)
    window = evaluation_window(*INTERVAL, DELAY)
    query = PerformanceQuery(_source(preds, labels), window)
    bare = _bare(preds, labels)

    def run_bare() -> float:
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(bare, {"s": window.prediction_start, "e": window.prediction_end}).scalar()
        return time.perf_counter() - started

    bare_times, join_times, growths = [], [], []
    result: Any = None
    for attempt in range(runs + 1):  # interleaved after one warm-up of each, as in measure()
        bare_s = run_bare()
        with RssSampler() as sampler:
            started = time.perf_counter()
            result = performance_summary_join(engine, engine, query)
            elapsed = time.perf_counter() - started
        if attempt:
            bare_times.append(bare_s)
            join_times.append(elapsed)
            growths.append(sampler.growth_mb)
    overall, segments, stats = result
    pushed, pushed_segments, _ = performance_summary_sql(engine, query)
    join_s, bare_s = statistics.median(join_times), statistics.median(bare_times)
    return {
        "rows": rows,
        "in_worker_seconds": round(join_s, 3),
        "in_worker_runs": [round(t, 3) for t in join_times],
        "bare_join_seconds": round(bare_s, 3),
        "bare_join_runs": [round(t, 3) for t in bare_times],
        "ratio": round(join_s / bare_s, 2),
        "label_rows_read": stats.label_rows,
        "prediction_rows_read": stats.prediction_rows,
        "rss_growth_mb": round(max(growths), 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "in_worker_equal": _same(overall, pushed)
        and set(segments) == set(pushed_segments)
        and all(_same(segments[k], pushed_segments[k]) for k in segments),
        "coverage": overall.coverage.to_dict(),
    }


def measure_reduced(engine: sa.Engine, rows: int, runs: int) -> dict[str, Any]:
    """The label-table case at one size: build the reduced label table
    (:func:`~airflow_mlobs.sources.label_table.rebuild_label_table`), then time, interleaved, the
    bare join, today's statement over the label table, the plain join over the reduced table
    (``performance_summary_sql(..., reduced=...)``) and the check that it answers the cut-off
    (:func:`~airflow_mlobs.sources.label_join.choose_label_path`, which the check runs first); the
    reduced summary must equal today's (checked, ``reduced_equal``)."""
    from airflow_mlobs.sources.label_join import choose_label_path
    from airflow_mlobs.sources.label_table import LabelTableSpec, rebuild_label_table

    preds, labels, _ = ensure_tables(engine, rows)
    window = evaluation_window(*INTERVAL, DELAY)
    spec = LabelTableSpec(labels, "prediction_id", "label", "labelled_at", labels + "_reduced", SCHEMA)
    started = time.perf_counter()
    rebuild_label_table(engine, spec)
    build_s = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {SCHEMA}.{spec.reduced}"))
    query = PerformanceQuery(_source(preds, labels), window)
    path = choose_label_path(engine, query, spec.reduced)
    bare = _bare(preds, labels)

    def timed(call: Any) -> tuple[float, Any]:
        t = time.perf_counter()
        out = call()
        return time.perf_counter() - t, out

    def run_bare() -> None:
        with engine.connect() as conn:
            conn.execute(bare, {"s": window.prediction_start, "e": window.prediction_end}).scalar()

    cases = {
        "bare": run_bare,
        "full": lambda: performance_summary_sql(engine, query),
        "reduced": lambda: performance_summary_sql(engine, query, reduced=path.reduced),
        "state": lambda: choose_label_path(engine, query, spec.reduced),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, Any] = {}
    for attempt in range(runs + 1):  # interleaved after one warm-up of each
        for name, call in cases.items():
            seconds, outputs[name] = timed(call)
            if attempt:
                times[name].append(seconds)
    med = {name: statistics.median(values) for name, values in times.items()}
    full, full_segments, _ = outputs["full"]
    reduced, reduced_segments, stats = outputs["reduced"]
    statement = performance_statement(engine, query, reduced=path.reduced)
    with engine.begin() as conn:
        dialect_for(engine).prepare_session(conn, "performance_reduced")
        plan = [r[0] for r in conn.execute(sa.text("EXPLAIN " + _literal_sql(engine, statement)))]
    # the ratio of each run to the bare join of the same round (the machine is shared)
    per_round = {
        name: [round(t / b, 2) for t, b in zip(times[name], times["bare"], strict=True)]
        for name in ("full", "reduced", "state")
    }
    return {
        "rows": rows,
        "build_seconds": round(build_s, 3),
        "bare_join_seconds": round(med["bare"], 3),
        "full_seconds": round(med["full"], 3),
        "reduced_seconds": round(med["reduced"], 3),
        "state_seconds": round(med["state"], 3),
        "runs": {name: [round(t, 3) for t in values] for name, values in times.items()},
        "ratio_full": round(med["full"] / med["bare"], 2),
        "ratio": round(med["reduced"] / med["bare"], 2),
        "ratio_with_state": round((med["reduced"] + med["state"]) / med["bare"], 2),
        "ratio_build": round(build_s / med["bare"], 2),
        "ratios_per_round": per_round,
        "rows_fetched": stats.rows_fetched,
        "reduced_equal": _same(reduced, full)
        and set(reduced_segments) == set(full_segments)
        and all(_same(reduced_segments[k], full_segments[k]) for k in full_segments),
        "state": path.reason,
        "settings": list(dialect_for(engine).session_settings("performance_reduced")),
        "plan": plan,
    }


def _literal_sql(engine: sa.Engine, statement: Any) -> str:
    """The statement with its parameters inlined (for EXPLAIN)."""
    return str(statement.compile(engine, compile_kwargs={"literal_binds": True}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--in-worker",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also time the in-memory join across connections (performance_summary_join) at these sizes",
    )
    parser.add_argument(
        "--reduced",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also the label-table case at these sizes: the plain join over the reduced label table "
        "(sources/label_table.py, sources/label_join.py) against today's statement and the bare join",
    )
    parser.add_argument("--skip-sql", action="store_true", help="leave out the pushed-down summary")
    args = parser.parse_args()
    load_start = os.getloadavg()  # the machine may be shared
    engine = sa.create_engine(os.environ.get("MLOBS_TEST_DATABASE_URL", DEFAULT_PG_URL))
    with engine.connect() as conn:
        server = conn.execute(sa.text("SELECT version()")).scalar()
        settings = {
            name: conn.execute(sa.text(f"SHOW {name}")).scalar()
            for name in ("work_mem", "shared_buffers", "max_parallel_workers_per_gather", "jit")
        }
    results = []
    for rows in [] if args.skip_sql else args.sizes:
        print(f"measuring {rows:,} predictions ...", flush=True)
        results.append(measure(engine, rows, args.runs))
        r = results[-1]
        print(
            f"  summary {r['summary_seconds']:.2f}s  bare join {r['bare_join_seconds']:.2f}s  ratio {r['ratio']}x "
            f"(target <= {RATIO_TARGET}x)  rows fetched {r['rows_fetched']}  RSS growth {r['rss_growth_mb']} MB  "
            f"peak {r['peak_rss_mb']} MB",
            flush=True,
        )
    in_worker = []
    for rows in args.in_worker:
        print(f"in-worker join, {rows:,} predictions ...", flush=True)
        in_worker.append(measure_in_worker(engine, rows, args.runs))
        r = in_worker[-1]
        print(
            f"  in-worker join {r['in_worker_seconds']:.2f}s  bare join {r['bare_join_seconds']:.2f}s  "
            f"ratio {r['ratio']}x  equal to pushed-down: {r['in_worker_equal']}  "
            f"RSS growth {r['rss_growth_mb']} MB  peak {r['peak_rss_mb']} MB",
            flush=True,
        )
    reduced = []
    for rows in args.reduced:
        print(f"reduced label table, {rows:,} predictions ...", flush=True)
        reduced.append(measure_reduced(engine, rows, args.runs))
        r = reduced[-1]
        print(
            f"  bare join {r['bare_join_seconds']:.2f}s  today's statement {r['full_seconds']:.2f}s "
            f"({r['ratio_full']}x)  reduced join {r['reduced_seconds']:.2f}s ({r['ratio']}x; "
            f"{r['ratio_with_state']}x with the state check {r['state_seconds']:.2f}s)  "
            f"build {r['build_seconds']:.2f}s ({r['ratio_build']}x)  equal: {r['reduced_equal']}  "
            f"state: {r['state']}",
            flush=True,
        )
    out = {
        "benchmark": "performance",
        "date": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": load_start,
        },
        "postgres": {"version": server, **settings},
        "command": "python benchmarks/performance_benchmark.py " + " ".join(sys.argv[1:]),
        "results": results,
        "in_worker": in_worker,
        "reduced": reduced,
        "load_average_end": os.getloadavg(),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / f"performance-{datetime.now(UTC):%Y-%m-%d}.json"
    target.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"written {target}")


if __name__ == "__main__":
    main()
