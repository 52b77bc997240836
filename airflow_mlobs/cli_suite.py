"""``python -m airflow_mlobs suite``: write a starter expectation suite from a stored drift baseline.

Uses :func:`airflow_mlobs.core.quality.suite_from_baseline`; does not import Airflow or Great
Expectations. An existing output file is never overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.core.quality import suite_from_baseline


def add_suite_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``suite`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        "suite", help="write a starter data-quality suite from a drift baseline"
    )
    command.add_argument("--baseline-dir", required=True, type=Path, help="baseline directory")
    command.add_argument("--name", required=True, help="baseline name")
    command.add_argument("--version", help="baseline version (default: the newest)")
    command.add_argument(
        "--rows-per-window",
        type=int,
        help="expected rows per checked window: adds a row-count band of +-50%%",
    )
    command.add_argument(
        "--out", required=True, type=Path, help="suite JSON to write, e.g. expectations/x.quality.json"
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return command


def suite_command(args: argparse.Namespace) -> int:
    """Write the suite; prints one line saying what was done. Returns the exit code (2 for bad input)."""
    try:
        out: Path = args.out
        if out.exists() and not args.overwrite:
            raise MlobsInputError(f"{out} already exists; not overwritten (use --overwrite)")
        baseline = load_baseline(args.baseline_dir, args.name, args.version)
        suite = suite_from_baseline(baseline, rows_per_window=args.rows_per_window)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    except (MlobsInputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(suite['expectations'])} expectations from baseline {baseline.name} "
        f"{baseline.version} to {out}; review them before relying on the suite"
    )
    return 0
