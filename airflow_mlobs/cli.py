"""Command line: build a drift baseline outside Airflow (``python -m airflow_mlobs baseline ...``),
write a starter suite (``suite``), list a dataset's stored results (``history``), erase people's
rows from a prediction log and its labels (``erase``, audited: :mod:`airflow_mlobs.cli_erase`),
silence alerts (``silence add|list|expire``: :mod:`airflow_mlobs.cli_silence`).

The same :class:`~airflow_mlobs.specs.drift.BaselineSpec` as ``BaselineOperator``: a table or query
is profiled in the database through a SQLAlchemy URL, a file is read in memory. Does not import
Airflow (but ``history`` without ``--url``, which reads the results connection as operators do).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_mlobs.cli_erase import add_erase_command, erase_command
from airflow_mlobs.cli_history import add_history_command, history_command
from airflow_mlobs.cli_silence import add_silence_command, silence_command
from airflow_mlobs.cli_suite import add_suite_command, suite_command
from airflow_mlobs.connections import PSEUDONYM_KEY_ENV, pseudonym_key
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.profile import DEFAULT_BINS, ColumnKind
from airflow_mlobs.core.timeutil import parse_moment
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.drift import BaselineSpec


def _kinds(values: Sequence[str]) -> dict[str, ColumnKind]:
    kinds: dict[str, ColumnKind] = {}
    for item in values:
        name, _, kind = item.partition("=")
        if kind not in ("numeric", "categorical"):
            raise MlobsInputError(f"--kind {item!r}: write column=numeric or column=categorical")
        kinds[name] = kind  # type: ignore[assignment]
    return kinds


def _optional_key() -> PseudonymKey | None:
    """The pseudonym key from ``MLOBS_PSEUDONYM_KEY`` when it is set; without it a sensitive
    categorical column is the spec's error saying how to set it (numeric ones need no key)."""
    return pseudonym_key() if os.environ.get(PSEUDONYM_KEY_ENV) else None


def build_baseline_command(args: argparse.Namespace) -> str:
    """Build and save a baseline (:meth:`BaselineSpec.ensure`, as ``BaselineOperator`` does);
    returns what was done, in one line."""
    spec = BaselineSpec(
        conn_id=args.url,
        table=args.table,
        sql=args.sql,
        path=args.path,
        where=args.where,
        timestamp_column=args.timestamp_column,
        timestamp_timezone=args.timezone,
        baseline=args.name,
        version=args.version,
        reference_start=parse_moment(args.start, "--start"),
        reference_end=parse_moment(args.end, "--end"),
        columns=tuple(args.columns.split(",")) if args.columns else None,
        kinds=_kinds(args.kind or []),
        bins=args.bins,
        sensitive_columns=tuple(args.sensitive_column),
        pseudonym_key=_optional_key() if args.sensitive_column else None,
        sample=args.sample,
        sample_rows=args.sample_rows,
        sample_key=args.sample_key,
        sample_seed=args.sample_seed,
    )
    result = spec.ensure(args.dir, overwrite=args.overwrite, connect=url_connected)
    if not result.metrics["created"]:
        return result.summary.replace("(overwrite=False)", "(use --overwrite to rebuild)")
    kinds = [
        *(f"{n} (numeric)" for n in result.metrics["numeric_columns"]),
        *(f"{n} (categorical)" for n in result.metrics["categorical_columns"]),
    ]
    return f"{result.summary}: " + ", ".join(kinds)


def parser() -> argparse.ArgumentParser:
    """The argument parser (``python -m airflow_mlobs --help``)."""
    root = argparse.ArgumentParser(prog="python -m airflow_mlobs", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    build = commands.add_parser("baseline", help="build and store a drift baseline")
    build.add_argument("--name", required=True, help="baseline name")
    build.add_argument("--version", required=True, help="baseline version, e.g. v1")
    build.add_argument(
        "--dir", required=True, type=Path, help="baseline directory (<dir>/<name>/<version>.json)"
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--path", help="a Parquet, Feather/Arrow or CSV file or dataset directory")
    source.add_argument("--table", help="a table (with --url), schema.table allowed")
    source.add_argument("--sql", help="a query (with --url); needs --columns and --kind for each")
    build.add_argument("--url", help="SQLAlchemy database URL for --table / --sql")
    build.add_argument("--columns", help="comma-separated columns (default: all numeric and text columns)")
    build.add_argument("--kind", action="append", help="column=numeric|categorical (repeatable)")
    build.add_argument("--timestamp-column", help="timestamp column bounding the reference window")
    build.add_argument("--start", help="reference window start (ISO 8601)")
    build.add_argument("--end", help="reference window end (ISO 8601, exclusive)")
    build.add_argument("--where", help="SQL condition on the reference rows")
    build.add_argument("--timezone", default="UTC", help="zone of naive timestamps (default UTC)")
    build.add_argument("--bins", type=int, default=DEFAULT_BINS, help="quantile bins (default 20)")
    build.add_argument("--overwrite", action="store_true", help="rebuild an existing version")
    build.add_argument(
        "--sensitive-column",
        action="append",
        default=[],
        metavar="COLUMN",
        help=f"a column whose values must not be stored (repeatable; categorical ones need {PSEUDONYM_KEY_ENV})",
    )
    build.add_argument("--sample", help="build from a sample: a rate like 1%% or 0.01")
    build.add_argument("--sample-rows", type=int, help="build from a sample of about this many rows")
    build.add_argument(
        "--sample-key",
        help="integer key column hashed to pick the sampled rows (needed without block sampling, and for --sql)",
    )
    build.add_argument("--sample-seed", type=int, default=0, help="seed of a repeatable sample (default 0)")
    add_suite_command(commands)
    add_history_command(commands)
    add_erase_command(commands)
    add_silence_command(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with the reason on stderr)."""
    args = parser().parse_args(argv)
    if args.command == "suite":
        return suite_command(args)
    if args.command == "history":
        return history_command(args)
    if args.command == "erase":
        return erase_command(args)
    if args.command == "silence":
        return silence_command(args)
    if args.command == "baseline" and not args.path and not args.url:
        print("error: --table and --sql need --url", file=sys.stderr)
        return 2
    try:
        print(build_baseline_command(args))
    except (MlobsInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
