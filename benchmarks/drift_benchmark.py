"""Drift profiling benchmark: in memory (pandas) and pushed down to PostgreSQL.

    .venv/bin/python benchmarks/drift_benchmark.py [--sizes 1000000 10000000] [--skip-pg]
        [--memory-rows 1000000] [--memory-runs 3] [--baseline-rows 10000000]

Measures (see benchmarks/README.md for the targets):

* in memory: 1M reference + 1M current rows x 20 numeric + 5 categorical columns (3 drifted):
  time to build the baseline with the kinds declared and with the kinds inferred (the default:
  no ``kinds=``), time of one comparison run against the stored baseline (load the saved JSON +
  ``profile_frame`` + ``compare``), and the peak RSS of the process with the frames loaded;
* with ``--baseline-rows N``: the baseline build of N rows (kinds inferred) against one comparison
  of the same N rows (``profile_frame`` + ``compare``, the reference profiled again as current),
  in a child of its own; target: the build under 3x the comparison;
* pushed down: ``profile_sql`` against PostgreSQL tables of each size (schema ``mlobs_bench``, reused
  when already loaded with the right row count), its wall time against a bare
  ``SELECT count(c1), count(c2), ...`` scan of the same columns over the same window, and the
  worker's RSS growth during the call. When ``profile_sql`` is more than 2x the scan, EXPLAIN ANALYZE
  of the statements and a few alternative formulations are recorded to show where the time goes.

Each measurement runs 3 times (after one warm-up) and the median is reported. Every part runs in its
own child process so that peak RSS figures are not polluted by the other parts. Results go to
``benchmarks/results/drift-<date>.json``; a summary table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from airflow_mlobs.core.drift import compare  # noqa: E402
from airflow_mlobs.core.profile import ColumnSpec, load_baseline  # noqa: E402
from airflow_mlobs.core.types import TableRef  # noqa: E402
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame  # noqa: E402
from airflow_mlobs.sources.drift_sql import profile_sql  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
BENCH_SCHEMA = "mlobs_bench"
RUNS = 3
NUMERIC = [f"n{i:02d}" for i in range(1, 21)]
CATEGORICAL = [f"c{i}" for i in range(1, 6)]
COLUMNS = NUMERIC + CATEGORICAL
#: Drifted in the in-memory current data: a 0.3-sigma mean shift, a 1.5x scale, a category mix change.
DRIFTED = ("n01", "n02", "c1")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
COMPARISON_TARGET_S = 1.0
MEMORY_PEAK_TARGET_MB = 1024.0
PUSHDOWN_RATIO_TARGET = 2.0
PUSHDOWN_RSS_TARGET_MB = 300.0
#: Issue 17: building a baseline of N rows at most 3x one comparison of N rows.
BASELINE_RATIO_TARGET = 3.0


# --- measuring -------------------------------------------------------------------------------------


def current_rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples RSS every few milliseconds in a thread; ``growth_mb`` is peak minus the start value.

    ru_maxrss alone cannot show the growth of one call once the process has been bigger before, so
    the current RSS is sampled (the database driver releases the GIL while it waits for results).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


def timed(func: Callable[[], Any], runs: int = RUNS) -> tuple[list[float], Any]:
    """Wall times of ``runs`` calls, and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(runs):
        began = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - began)
    return times, result


# --- in memory -------------------------------------------------------------------------------------


def make_frame(rows: int, *, seed: int, drifted: bool) -> pd.DataFrame:
    """20 numeric columns (some with NULLs, two integer-valued, one skewed) and 5 categorical ones."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for index, name in enumerate(NUMERIC):
        if index % 5 == 0:
            values = rng.lognormal(mean=1.0, sigma=0.75, size=rows)
        elif index % 5 == 1:
            values = rng.integers(0, 1000, size=rows).astype("float64")
        else:
            values = rng.normal(loc=index, scale=1.0 + index / 10, size=rows)
        if drifted and name == "n01":  # lognormal: shift by 0.3 of its standard deviation
            values = values + 0.3 * values.std()
        if drifted and name == "n02":  # integers: 1.5x wider
            values = values * 1.5
        if index % 4 == 3:
            values[rng.random(rows) < 0.05] = np.nan
        data[name] = values
    for index, name in enumerate(CATEGORICAL):
        levels = np.array([f"{name}_v{i:02d}" for i in range(5 + 5 * index)], dtype=object)
        weights = np.linspace(1.0, 2.0, len(levels))
        if drifted and name == "c1":
            weights = weights[::-1] ** 2
        codes = rng.choice(len(levels), size=rows, p=weights / weights.sum())
        values = levels[codes]
        if index % 2 == 1:
            values[rng.random(rows) < 0.02] = None
        data[name] = values
    return pd.DataFrame(data)


KINDS = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}


def bench_memory(rows: int, runs: int = RUNS) -> dict[str, Any]:
    reference = make_frame(rows, seed=1, drifted=False)
    current = make_frame(rows, seed=2, drifted=True)
    with tempfile.TemporaryDirectory(prefix="mlobs-bench-") as folder:
        # Declared and inferred kinds interleaved (the machine may be shared).
        build_times: list[float] = []
        inferred_times: list[float] = []
        baseline: Any = None
        for _ in range(runs):
            times, baseline = timed(
                lambda: build_baseline(reference, name="bench", version="v1", kinds=KINDS),  # type: ignore[arg-type]
                runs=1,
            )
            build_times += times
            times, inferred = timed(lambda: build_baseline(reference, name="bench", version="v1"), runs=1)
            inferred_times += times
        inferred_kinds = {c: spec.kind for c, spec in inferred.columns.items()}
        path = baseline.save(folder)

        def comparison() -> Any:
            stored = load_baseline(folder, "bench", "v1")
            profile = profile_frame(current, stored.columns.values())
            return compare(stored, profile)

        comparison()  # warm-up (imports, scipy)
        parts: dict[str, list[float]] = {"load": [], "profile": [], "compare": []}
        compare_times: list[float] = []
        result: Any = None
        for _ in range(runs):
            began = time.perf_counter()
            stored = load_baseline(folder, "bench", "v1")
            loaded = time.perf_counter()
            profile = profile_frame(current, stored.columns.values())
            profiled = time.perf_counter()
            result = compare(stored, profile)
            done = time.perf_counter()
            compare_times.append(done - began)
            parts["load"].append(loaded - began)
            parts["profile"].append(profiled - loaded)
            parts["compare"].append(done - profiled)
        baseline_bytes = path.stat().st_size
    drifted = sorted(d["column"] for d in result.metrics["drifted_columns"])
    return {
        "rows_reference": rows,
        "rows_current": rows,
        "columns": {"numeric": len(NUMERIC), "categorical": len(CATEGORICAL)},
        "frames_mb": round(
            (reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum()) / 2**20, 1
        ),
        "build_baseline_s": {"median": statistics.median(build_times), "runs": build_times},
        "build_baseline_inferred_s": {"median": statistics.median(inferred_times), "runs": inferred_times},
        "inferred_kinds_as_declared": inferred_kinds == KINDS,
        "comparison_s": {"median": statistics.median(compare_times), "runs": compare_times},
        "comparison_parts_median_s": {k: statistics.median(v) for k, v in parts.items()},
        "baseline_json_bytes": baseline_bytes,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "expected_drifted": sorted(DRIFTED),
        "drifted_columns": drifted,
        "status": str(result.status.value),
        "targets": {
            "comparison_under_1s": statistics.median(compare_times) < COMPARISON_TARGET_S,
            "peak_rss_under_1gb": peak_rss_mb() < MEMORY_PEAK_TARGET_MB,
        },
    }


def bench_baseline(rows: int, runs: int) -> dict[str, Any]:
    """The baseline build of ``rows`` rows with inferred kinds against one comparison of as many rows.

    The reference frame is profiled again as the current one: the comparison's work depends on the
    row count and the columns, not on the values, and one frame of 10M x 25 (about 2 GB) fits where
    two might not."""
    began = time.perf_counter()
    reference = make_frame(rows, seed=1, drifted=False)
    made = time.perf_counter() - began
    build_times: list[float] = []
    compare_times: list[float] = []
    baseline: Any = None
    for _ in range(runs):  # interleaved: build, then one comparison against what it built
        times, baseline = timed(lambda: build_baseline(reference, name="bench", version="v1"), runs=1)
        build_times += times
        times, _ = timed(lambda b=baseline: compare(b, profile_frame(reference, b.columns.values())), runs=1)
        compare_times += times
    build, comparison = statistics.median(build_times), statistics.median(compare_times)
    return {
        "rows": rows,
        "frame_seconds": made,
        "build_baseline_inferred_s": {"median": build, "runs": build_times},
        "comparison_s": {"median": comparison, "runs": compare_times},
        "ratio": build / comparison,
        "inferred_kinds_as_declared": {c: spec.kind for c, spec in baseline.columns.items()} == KINDS,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"build_under_3x_comparison": build < BASELINE_RATIO_TARGET * comparison},
    }


# --- PostgreSQL ------------------------------------------------------------------------------------


def pg_url() -> str:
    return os.environ.get("MLOBS_TEST_DATABASE_URL", DEFAULT_PG_URL)


def table_name(rows: int) -> str:
    return f"drift_{rows}"


def load_table(engine: sa.Engine, rows: int) -> dict[str, Any]:
    """Create ``mlobs_bench.drift_<rows>`` with generate_series + random(), unless already loaded."""
    name = table_name(rows)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA}"))
        exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f"{BENCH_SCHEMA}.{name}"}).scalar()
        if exists is not None:
            have = conn.execute(sa.text(f"SELECT count(*) FROM {BENCH_SCHEMA}.{name}")).scalar()
            if have == rows:
                return {"reused": True, "load_s": None}
            conn.execute(sa.text(f"DROP TABLE {BENCH_SCHEMA}.{name}"))
    numeric_defs, numeric_exprs = [], []
    for index, col in enumerate(NUMERIC):
        numeric_defs.append(f"{col} double precision")
        if index % 5 == 0:
            expr = "exp(1.0 + 0.75 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"
        elif index % 5 == 1:
            expr = "floor(random() * 1000)"
        else:
            expr = f"{index} + {1.0 + index / 10} * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
        if index % 4 == 3:
            expr = f"CASE WHEN random() < 0.05 THEN NULL ELSE {expr} END"
        numeric_exprs.append(expr)
    cat_defs, cat_exprs = [], []
    for index, col in enumerate(CATEGORICAL):
        cat_defs.append(f"{col} text")
        expr = f"'{col}_v' || lpad(floor(power(random(), 0.8) * {5 + 5 * index})::int::text, 2, '0')"
        if index % 2 == 1:
            expr = f"CASE WHEN random() < 0.02 THEN NULL ELSE {expr} END"
        cat_exprs.append(expr)
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {BENCH_SCHEMA}.{name} (id bigint, ts timestamptz, "
                + ", ".join(numeric_defs + cat_defs)
                + ")"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {BENCH_SCHEMA}.{name} "
                f"SELECT g, timestamptz '{T0.isoformat()}' + g * interval '1 second', "
                + ", ".join(numeric_exprs + cat_exprs)
                + f" FROM generate_series(1, {rows}) AS g"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {BENCH_SCHEMA}.{name}"))
    return {"reused": False, "load_s": time.perf_counter() - began}


@contextmanager
def captured_statements(engine: sa.Engine) -> Iterator[list[tuple[str, Any, int]]]:
    """Statements (with parameters and the rows the cursor reported) sent through ``engine``."""
    seen: list[tuple[str, Any, int]] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters, cursor.rowcount))

    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)


def explain(engine: sa.Engine, statement: str, parameters: Any, settings: str = "") -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement on the raw DBAPI connection (runs it once)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if settings:
            cursor.execute(settings)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        text = "\n".join(r[0] for r in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()
    execution = re.search(r"Execution Time: ([\d.]+) ms", text)
    jit = re.search(r"Timing: Generation [\d.]+ ms, Inlining [\d.]+ ms, .*Total ([\d.]+) ms", text)
    return {
        "execution_s": round(float(execution.group(1)) / 1000, 3) if execution else None,
        "workers_launched": [int(w) for w in re.findall(r"Workers Launched: (\d+)", text)],
        "jit_total_s_leader": round(float(jit.group(1)) / 1000, 3) if jit else None,
        "plan_text": text,
    }


def run_sql_timed(engine: sa.Engine, statement: str, params: Any = None, settings: str = "") -> float:
    """Median wall time of a raw statement (3 runs, after a warm-up)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if settings:
            cursor.execute(settings)
        cursor.execute(statement, params)
        cursor.fetchall()
        times = []
        for _ in range(RUNS):
            began = time.perf_counter()
            cursor.execute(statement, params)
            cursor.fetchall()
            times.append(time.perf_counter() - began)
        raw.rollback()
    finally:
        raw.close()
    return statistics.median(times)


def bench_pg(rows: int, diagnose_here: bool) -> dict[str, Any]:
    engine = sa.create_engine(pg_url())
    load = load_table(engine, rows)
    name = table_name(rows)
    table = TableRef(name, schema=BENCH_SCHEMA)
    qualified = f"{BENCH_SCHEMA}.{name}"
    with engine.connect() as conn:
        server_version = conn.execute(sa.text("SHOW server_version")).scalar()
        table_mb = (
            conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": qualified}).scalar() / 2**20
        )
        workers = conn.execute(sa.text("SHOW max_parallel_workers_per_gather")).scalar()
        sample = pd.read_sql(
            sa.text(f"SELECT {', '.join(COLUMNS)} FROM {qualified} WHERE id <= 100000"), conn
        )
    kinds = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
    baseline = build_baseline(sample, name="bench_pg", version="v1", kinds=kinds)  # type: ignore[arg-type]
    specs = list(baseline.columns.values())
    del sample
    # The window covers every row: both statements scan the whole table.
    start, end = T0, T0 + timedelta(seconds=rows + 1)
    count_sql = (
        f"SELECT count(*), {', '.join(f'count({c})' for c in COLUMNS)} FROM {qualified} "
        "WHERE ts >= %(start)s AND ts < %(end)s"
    )
    window = {"start": start, "end": end}

    def profile() -> Any:
        return profile_sql(
            engine, specs, table=table, timestamp_column="ts", window_start=start, window_end=end
        )

    # Warm the cache once (the bare scan reads every page of the table), then measure.
    run_sql_timed(engine, count_sql, window)
    profile_times, rss_growth, ru_growth = [], [], []
    statements: list[tuple[str, Any, int]] = []
    for run in range(RUNS):
        ru_before = peak_rss_mb()
        with captured_statements(engine) as seen, RssSampler() as sampler:
            began = time.perf_counter()
            prof, stats = profile()
            profile_times.append(time.perf_counter() - began)
        rss_growth.append(sampler.growth_mb)
        ru_growth.append(peak_rss_mb() - ru_before)
        assert prof.row_count == rows, (prof.row_count, rows)
        if run == 0:
            statements = [s for s in seen if "pg_catalog" not in s[0]]
    scan_s = run_sql_timed(engine, count_sql, window)
    profile_s = statistics.median(profile_times)
    ratio = profile_s / scan_s
    out: dict[str, Any] = {
        "rows": rows,
        "table": qualified,
        "table_mb": round(table_mb, 1),
        "load": load,
        "postgresql": server_version,
        "max_parallel_workers_per_gather": workers,
        "statements": stats.statements,
        "rows_fetched": stats.rows_fetched,
        "cursor_rowcounts": [s[2] for s in statements],
        "profile_statements": [s[0][:200] for s in statements if not s[0].lstrip().upper().startswith("SET")],
        "profile_sql_s": {"median": profile_s, "runs": profile_times},
        "count_scan_s": {"median": scan_s},
        "ratio": round(ratio, 2),
        "rss_growth_mb": {"median": round(statistics.median(rss_growth), 2), "runs": rss_growth},
        "ru_maxrss_growth_mb": {"max": round(max(ru_growth), 2)},
        "targets": {
            "ratio_at_most_2x": ratio <= PUSHDOWN_RATIO_TARGET,
            "rss_growth_under_300mb": max(rss_growth) < PUSHDOWN_RSS_TARGET_MB,
        },
    }
    if ratio > PUSHDOWN_RATIO_TARGET and diagnose_here:
        out["diagnosis"] = diagnose(engine, statements, count_sql, window)
    engine.dispose()
    return out


def bench_pg_categorical(rows: int) -> dict[str, Any]:
    """``--categorical``: ``profile_sql`` of one categorical column with ``rows`` distinct values
    (``id``, ranked as text: the top-categories statement) against a bare ``count(id::text)``."""
    engine = sa.create_engine(pg_url())
    load_table(engine, rows)
    qualified = f"{BENCH_SCHEMA}.{table_name(rows)}"
    specs = [ColumnSpec("id", "categorical")]
    count_sql = f"SELECT count(*), count(id::text) FROM {qualified}"
    run_sql_timed(engine, count_sql)
    profile_times, scan_times = [], []
    for _ in range(RUNS):  # interleaved
        scan_times.append(run_sql_timed(engine, count_sql))
        began = time.perf_counter()
        prof, stats = profile_sql(engine, specs, table=TableRef(table_name(rows), schema=BENCH_SCHEMA))
        profile_times.append(time.perf_counter() - began)
        assert prof.row_count == rows
    profile_s, scan_s = statistics.median(profile_times), statistics.median(scan_times)
    engine.dispose()
    return {
        "rows": rows,
        "distinct": rows,
        "profile_sql_s": {"median": profile_s, "runs": profile_times},
        "count_scan_s": {"median": scan_s, "runs": scan_times},
        "ratio": round(profile_s / scan_s, 2),
        "statements": stats.statements,
        "rows_fetched": stats.rows_fetched,
    }


def diagnose(
    engine: sa.Engine,
    statements: list[tuple[str, Any, int]],
    count_sql: str,
    window: dict[str, Any],
) -> dict[str, Any]:
    """Where the time goes: EXPLAIN ANALYZE of the bare scan and of each profile query (run once
    each, warm cache; the profile session's ``jit = off`` applied)."""
    found: dict[str, Any] = {"count_scan": explain(engine, count_sql, window)}
    queries = [
        (sql, params) for sql, params, _ in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    for index, (sql, params) in enumerate(queries):
        print(f"  explain profile statement {index} ...", file=sys.stderr, flush=True)
        found[f"profile_statement_{index}"] = explain(engine, sql, params, "SET jit = off")
    return found


# --- driver ----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "sqlalchemy": sa.__version__,
        # The machine may be shared: the 1, 5 and 15 minute load averages when the run started.
        "load_average": os.getloadavg(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    try:
        with open("/proc/meminfo") as handle:
            total_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
        info["ram_gb"] = round(total_kb / 2**20, 1)
        with open("/proc/cpuinfo") as handle:
            info["cpu_model"] = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None
            )
    except (OSError, StopIteration):
        pass
    return info


def child(part: str, rows: int, diagnose: bool = False, runs: int = RUNS) -> dict[str, Any]:
    """Run one part in a fresh interpreter (clean peak RSS) and read its JSON result."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", part, "--rows", str(rows), "--memory-runs", str(runs)]
        + (["--diagnose"] if diagnose else []),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": f"child exited with {done.returncode} (see its traceback above)"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(results: dict[str, Any]) -> str:
    lines = [f"{'measurement':<58} {'value':>12}  target"]

    def add(label: str, value: str, target: str = "") -> None:
        lines.append(f"{label:<58} {value:>12}  {target}")

    mem = results.get("in_memory")
    if mem and "error" not in mem:
        add("in memory: build baseline, kinds declared, median s", f"{mem['build_baseline_s']['median']:.3f}")
        add(
            "in memory: build baseline, kinds inferred, median s",
            f"{mem['build_baseline_inferred_s']['median']:.3f}",
            f"kinds as declared: {mem['inferred_kinds_as_declared']}",
        )
        add(
            "in memory: comparison (load + profile_frame + compare), s",
            f"{mem['comparison_s']['median']:.3f}",
            f"< 1 s: {'met' if mem['targets']['comparison_under_1s'] else 'MISSED'}",
        )
        add(
            "in memory: peak RSS of the process, MB",
            f"{mem['peak_rss_mb']:.0f}",
            f"< 1024 MB: {'met' if mem['targets']['peak_rss_under_1gb'] else 'MISSED'}",
        )
        add("in memory: drifted columns found", ",".join(mem["drifted_columns"]))
    elif mem:
        add("in memory", "error", mem["error"])
    base = results.get("baseline")
    if base and "error" not in base:
        add(
            f"baseline {base['rows']}: build, kinds inferred, median s",
            f"{base['build_baseline_inferred_s']['median']:.2f}",
        )
        add(f"baseline {base['rows']}: one comparison, median s", f"{base['comparison_s']['median']:.2f}")
        add(
            f"baseline {base['rows']}: ratio build / comparison",
            f"{base['ratio']:.2f}x",
            f"< 3x: {'met' if base['targets']['build_under_3x_comparison'] else 'MISSED'}",
        )
    elif base:
        add("baseline", "error", base["error"])
    for size, pg in results.get("postgresql", {}).items():
        if "error" in pg:
            add(f"postgres {size}", "error", pg["error"])
            continue
        add(f"postgres {size}: profile_sql, median s", f"{pg['profile_sql_s']['median']:.3f}")
        add(f"postgres {size}: bare count() scan, median s", f"{pg['count_scan_s']['median']:.3f}")
        add(
            f"postgres {size}: ratio profile_sql / scan",
            f"{pg['ratio']:.2f}x",
            f"<= 2x: {'met' if pg['targets']['ratio_at_most_2x'] else 'MISSED'}",
        )
        add(
            f"postgres {size}: worker RSS growth, median MB",
            f"{pg['rss_growth_mb']['median']:.1f}",
            f"< 300 MB: {'met' if pg['targets']['rss_growth_under_300mb'] else 'MISSED'}",
        )
        add(f"postgres {size}: statements / rows fetched", f"{pg['statements']} / {pg['rows_fetched']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--skip-pg", action="store_true", help="only the in-memory benchmark")
    parser.add_argument("--skip-memory", action="store_true", help="only the PostgreSQL benchmark")
    parser.add_argument(
        "--categorical",
        action="store_true",
        help="also time the top-categories statement on a column with one distinct value per row",
    )
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    parser.add_argument("--memory-runs", type=int, default=RUNS, help="runs of each in-memory measurement")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        help="also time a baseline build of this many rows against one comparison of as many",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--child", choices=["memory", "baseline", "pg", "pgcat"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--diagnose", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "memory":
        print(json.dumps(bench_memory(args.rows, args.memory_runs), default=str))
        return 0
    if args.child == "baseline":
        print(json.dumps(bench_baseline(args.rows, args.memory_runs), default=str))
        return 0
    if args.child == "pgcat":
        print(json.dumps(bench_pg_categorical(args.rows), default=str))
        return 0
    if args.child == "pg":
        print(json.dumps(bench_pg(args.rows, args.diagnose), default=str))
        return 0

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "benchmarks/drift_benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
    }
    if not args.skip_memory:
        print(f"in memory: {args.memory_rows} + {args.memory_rows} rows ...", flush=True)
        results["in_memory"] = child("memory", args.memory_rows, runs=args.memory_runs)
        if args.baseline_rows:
            print(f"baseline: {args.baseline_rows} rows ...", flush=True)
            results["baseline"] = child("baseline", args.baseline_rows, runs=args.memory_runs)
    if not args.skip_pg:
        results["postgresql"] = {}
        for size in args.sizes:
            print(f"postgresql: {size} rows ...", flush=True)
            # EXPLAIN ANALYZE and the alternatives run at the smallest size only (they cost minutes).
            results["postgresql"][str(size)] = child("pg", size, diagnose=size == min(args.sizes))
            if args.categorical:
                print(f"postgresql categorical: {size} distinct values ...", flush=True)
                cat = child("pgcat", size)
                results.setdefault("postgresql_categorical", {})[str(size)] = cat
                print(f"  top categories / bare count: {cat.get('ratio')}x", flush=True)
        try:
            engine = sa.create_engine(pg_url())
            with engine.connect() as conn:
                results["machine"]["postgresql"] = conn.execute(sa.text("SELECT version()")).scalar()
            engine.dispose()
        except sa.exc.SQLAlchemyError as exc:
            results["machine"]["postgresql"] = f"unavailable: {exc}"
    results["machine"]["load_average_end"] = os.getloadavg()
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"drift-{datetime.now(UTC):%Y-%m-%d}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print(summary(results))
    print(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
