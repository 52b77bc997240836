"""``python -m airflow_mlobs history``: a dataset's stored results from the command line.

Reads the results history through ``--url`` (a SQLAlchemy URL), else as the operators do
(``[mlobs] results_conn_id``, else the SQLite file under ``AIRFLOW_HOME``; that path imports
Airflow to read the connection). Prints a table, newest first, or ``--json`` (one object per
result: the run key, window, status, summary and, with ``--full``, findings and metrics).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.timeutil import parse_duration
from airflow_mlobs.history import History
from airflow_mlobs.store import StoredResult


def add_history_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``history`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        "history", help="list a dataset's stored check results"
    )
    command.add_argument("--dataset", required=True, help="the dataset, as results name it")
    command.add_argument("--check", help="one check (freshness, schema, quality, drift, performance, ...)")
    command.add_argument(
        "--since", default="30d", help="how far back, a duration such as 30d or 12h (default 30d)"
    )
    command.add_argument("--limit", type=int, default=None, help="at most this many results (the newest)")
    command.add_argument("--url", help="SQLAlchemy URL of the results history (default: as the operators)")
    command.add_argument("--json", action="store_true", help="print JSON instead of a table")
    command.add_argument("--full", action="store_true", help="with --json: include findings and metrics")
    return command


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _as_json(stored: StoredResult, full: bool) -> dict[str, Any]:
    result = stored.result
    row: dict[str, Any] = {
        "id": stored.id,
        "dataset": result.dataset,
        "check": result.check,
        "status": result.status.value,
        "summary": result.summary,
        "window_start": _iso(result.window_start),
        "window_end": _iso(result.window_end),
        "dag_id": stored.run.dag_id,
        "task_id": stored.run.task_id,
        "run_id": stored.run.run_id,
        "map_index": stored.run.map_index,
        "recorded_at": _iso(stored.recorded_at),
    }
    if full:
        data = result.to_dict()
        row["metrics"] = data["metrics"]
        row["findings"] = data["findings"]
    return row


def _table(results: list[StoredResult]) -> str:
    header = ("window end (UTC)", "check", "status", "task", "summary")
    rows = [
        (
            (s.result.window_end or s.recorded_at).strftime("%Y-%m-%d %H:%M"),
            s.result.check,
            s.result.status.value,
            f"{s.run.dag_id or '-'}.{s.run.task_id or '-'}"
            + (f"[{s.run.map_index}]" if s.run.map_index >= 0 else ""),
            s.result.summary.replace("\n", " "),
        )
        for s in results
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join([*(str(c).ljust(w) for c, w in zip(r[:4], widths, strict=True)), str(r[4])])
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def _engine(url: str | None) -> sa.Engine:
    if url:
        return sa.create_engine(url)
    from airflow_mlobs.connections import results_engine

    return results_engine(None)


def history_command(args: argparse.Namespace) -> int:
    """Print the results; returns the exit code (2 for bad input, 1 when nothing is stored)."""
    try:
        since = datetime.now(UTC) - parse_duration(args.since, name="--since")
        engine = _engine(args.url)
    except (MlobsInputError, ValueError, sa.exc.ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        found = History(engine).results(args.dataset, since=since, check=args.check, limit=args.limit)
    except sa.exc.SQLAlchemyError as exc:
        print(
            f"error: cannot read the results history: {str(getattr(exc, 'orig', exc)).splitlines()[0]}",
            file=sys.stderr,
        )
        return 2
    finally:
        engine.dispose()
    newest_first = list(reversed(found))
    if args.json:
        print(json.dumps([_as_json(s, args.full) for s in newest_first], indent=2))
    elif newest_first:
        print(_table(newest_first))
    if not newest_first:
        what = f"{args.check} results" if args.check else "results"
        print(f"no {what} of dataset {args.dataset!r} in the last {args.since}", file=sys.stderr)
        return 1
    return 0
