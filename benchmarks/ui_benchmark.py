"""Dashboard benchmark: the overview and dataset pages over a PostgreSQL history of 100 monitors x
365 days (36,500 results), server time and query plans.

    .venv/bin/python benchmarks/ui_benchmark.py [--days 365] [--datasets 25] [--runs 5] [--keep]

PostgreSQL from ``MLOBS_TEST_DATABASE_URL`` (default the local test server). The history is written
once into the schema ``mlobs_bench_ui`` (rebuilt when its size differs; ``--keep`` reuses it as is):
``--datasets`` datasets x 4 checks (freshness, quality, drift with 20 column findings, performance),
one result a day each, the newest ending today, through the store's own tables and indexes
(schema version 3), then ``VACUUM ANALYZE``. Measured, median of ``--runs`` after one warm-up: the
page functions the plugin's routes call (``overview_page`` for 30 and 90 days, ``dataset_page`` of
a drift dataset for 30 and 90 days: queries plus HTML), and EXPLAIN ANALYZE of each query they run.
Results go to ``benchmarks/results/ui-<date>.json``; a summary is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlobs.core.result import CheckResult, Finding, Status  # noqa: E402
from airflow_mlobs.history import History  # noqa: E402
from airflow_mlobs.store import ResultsStore, results_table  # noqa: E402
from airflow_mlobs.ui import pages  # noqa: E402

SCHEMA = "mlobs_bench_ui"
CHECKS = ("freshness", "quality", "drift", "performance")
TARGET_MS = 300.0


def _url() -> str:
    return os.environ.get("MLOBS_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _result(check: str, dataset: str, day: datetime, rng: random.Random) -> CheckResult:
    status = Status.FAIL if rng.random() < 0.05 else Status.WARN if rng.random() < 0.05 else Status.PASS
    metrics: dict[str, Any]
    findings: list[Finding] = []
    if check == "freshness":
        age = rng.uniform(600, 30000)
        metrics = {"age_seconds": age, "max_age_seconds": 21600.0, "warn_after_seconds": 7200.0}
        findings = [Finding("table", "age_seconds", status, age, 21600.0, "age")]
    elif check == "drift":
        findings = [
            Finding(
                f"feature_{c:02d}", "psi", status if c == 0 else Status.PASS, rng.uniform(0, 0.3), 0.2, "psi"
            )
            for c in range(20)
        ]
        metrics = {"drift_share": 0.05, "baseline": "bench/v1", "rows": 100000, "columns_judged": 20}
    elif check == "performance":
        value = rng.uniform(0.8, 0.92)
        metrics = {
            "metric": "accuracy",
            "value": value,
            "se": 0.01,
            "baseline_value": 0.9,
            "label_coverage": 0.9,
        }
    else:
        metrics = {"expectations": 14, "failed": 0}
        findings = [Finding(f"rule_{r}", "expectation", Status.PASS, None, None, "") for r in range(14)]
    return CheckResult(
        check=check,
        dataset=dataset,
        status=status,
        summary=f"{check} of {dataset}: {status.value}",
        window_start=day - timedelta(days=1),
        window_end=day,
        metrics=metrics,
        findings=tuple(findings),
    )


def build(engine: sa.Engine, datasets: int, days: int, keep: bool) -> int:
    """Write the history (unless it is there with the right size); returns its row count."""
    store = ResultsStore(engine)
    store.ensure_table()
    expected = datasets * len(CHECKS) * days
    with engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(results_table)).scalar_one()
    if have == expected or (keep and have):
        return int(have)
    with engine.begin() as conn:
        conn.execute(sa.delete(results_table))
    rng = random.Random(7)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(sa.insert(results_table), rows)
        rows.clear()

    for d in range(datasets):
        dataset = f"warehouse:table_{d:02d}"
        for check in CHECKS:
            for back in range(days):
                day = today - timedelta(days=back)
                result = _result(check, dataset, day, rng)
                rows.append(
                    {
                        "result_key": f"bench|{check}_{d}|-1|{dataset}|{day.isoformat()}",
                        "dag_id": f"monitor_{d % 5}",
                        "task_id": f"{check}_{d}",
                        "map_index": -1,
                        "run_id": f"scheduled__{day.isoformat()}",
                        "check_name": check,
                        "dataset": dataset,
                        "status": result.status.value,
                        "summary": result.summary,
                        "window_start": result.window_start,
                        "window_end": result.window_end,
                        "result_json": result.to_json(),
                        "recorded_at": now,
                    }
                )
                if len(rows) >= 5000:
                    flush()
    if rows:
        flush()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE mlobs_check_results"))
    return expected


def _median_ms(fn: Any, runs: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def _explain_page(engine: sa.Engine, render: Any) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of every query on the results tables one page render runs (captured as the
    driver received them, parameters included): its time, the indexes the plan uses, the plan."""
    captured: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "mlobs_" in statement:
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        render()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    found = []
    with engine.connect() as conn:
        for statement, parameters in captured:
            if "mlobs_schema_version" in statement:
                continue
            plan = "\n".join(
                r[0] for r in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            )
            words = plan.replace("(", " ").split()
            found.append(
                {
                    "query": " ".join(statement.split())[:300],
                    "indexes": sorted({w for w in words if w.startswith("ix_mlobs_") or w.endswith("_pkey")}),
                    "seq_scan_on_results": "Seq Scan on mlobs_check_results" in plan,
                    "execution_ms": next(
                        (
                            float(line.split()[2])
                            for line in plan.splitlines()
                            if line.startswith("Execution Time")
                        ),
                        None,
                    ),
                    "plan": plan,
                }
            )
    return found


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--days", type=int, default=365)
    options.add_argument("--datasets", type=int, default=25)
    options.add_argument("--runs", type=int, default=5)
    options.add_argument("--keep", action="store_true", help="reuse the stored history whatever its size")
    args = options.parse_args()
    admin = sa.create_engine(_url())
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    admin.dispose()
    engine = sa.create_engine(_url(), connect_args={"options": f"-csearch_path={SCHEMA}"})
    started = time.perf_counter()
    count = build(engine, args.datasets, args.days, args.keep)
    built = time.perf_counter() - started
    history = History(engine)
    links = pages.Links(base="/mlobs")
    drift_dataset = "warehouse:table_03"
    measured: dict[str, Any] = {}
    for days in (30, 90):
        ms, times = _median_ms(lambda days=days: pages.overview_page(history, links, days=days), args.runs)
        measured[f"overview_{days}d_ms"] = {"median": round(ms, 1), "runs": [round(t, 1) for t in times]}
        ms, times = _median_ms(
            lambda days=days: pages.dataset_page(history, links, drift_dataset, days=days), args.runs
        )
        measured[f"dataset_{days}d_ms"] = {"median": round(ms, 1), "runs": [round(t, 1) for t in times]}
    page = pages.overview_page(history, links, days=30)
    rows = page.count("<tr data-dataset=")
    plans = {
        "overview_30d": _explain_page(engine, lambda: pages.overview_page(history, links, days=30)),
        "dataset_30d": _explain_page(
            engine, lambda: pages.dataset_page(history, links, drift_dataset, days=30)
        ),
    }
    engine.dispose()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "history_rows": count,
        "monitors": args.datasets * len(CHECKS),
        "days": args.days,
        "build_seconds": round(built, 1),
        "overview_rows_30d": rows,
        "target_ms": TARGET_MS,
        "measured": measured,
        "plans": plans,
    }
    out = ROOT / "benchmarks" / "results" / f"ui-{datetime.now(UTC).date()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"history: {count} results ({args.datasets * len(CHECKS)} monitors x {args.days} days), built in {built:.0f}s"
    )
    for name, value in measured.items():
        flag = "ok" if value["median"] < TARGET_MS else "OVER TARGET"
        print(f"  {name:20s} median {value['median']:7.1f} ms  (target < {TARGET_MS:.0f} ms: {flag})")
    for name, queries in plans.items():
        for q in queries:
            print(
                f"  {name:14s} {q['execution_ms']:7.2f} ms in PostgreSQL  indexes: {', '.join(q['indexes']) or 'none'}"
                f"{'  (seq scan)' if q['seq_scan_on_results'] else ''}  {q['query'][:70]}"
            )
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
