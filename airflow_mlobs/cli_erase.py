"""``python -m airflow_mlobs erase``: remove people's rows from a prediction log and its labels.

The same :func:`airflow_mlobs.erasure.erase` as ``ErasureOperator``: ids are given as arguments,
or one per line (or comma/space separated) in ``--ids-file`` (``-`` reads stdin, so ids need not
appear in the shell history). The database is ``--url`` (a SQLAlchemy URL) or ``--conn-id`` (an
Airflow connection; that path imports Airflow); the audit record goes to the results history
(``--results-url``, else ``--results-conn-id``, else as the operators do). The key for pseudonymised
columns comes from ``--key-conn-id`` (its password) or ``$MLOBS_PSEUDONYM_KEY``. What is printed
names tables and counts only, never an id.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.privacy import PseudonymKey


def add_erase_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``erase`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        "erase", help="delete people's rows from a prediction log and its labels (audited)"
    )
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--conn-id", help="Airflow connection of the prediction log")
    where.add_argument("--url", help="SQLAlchemy URL of the prediction log's database")
    command.add_argument("--table", required=True, help="the prediction log table (schema.table allowed)")
    command.add_argument("--column", required=True, help="its column identifying a person, e.g. customer_id")
    command.add_argument(
        "--pseudonymized",
        action="store_true",
        help="the id columns hold keyed pseudonyms (raw ids are hashed)",
    )
    command.add_argument(
        "--labels-table", help="the label table; its rows of the people's predictions go too"
    )
    command.add_argument(
        "--labels-prediction-column",
        default="prediction_id",
        help="the labels' column holding the prediction id (default prediction_id)",
    )
    command.add_argument(
        "--prediction-id-column", help="the prediction log's prediction id column (default: the same name)"
    )
    command.add_argument(
        "--labels-subject-column", help="delete labels by their own id column instead of through predictions"
    )
    command.add_argument("--key-conn-id", help="Airflow connection whose password is the pseudonym key")
    command.add_argument("--results-url", help="SQLAlchemy URL of the results history (for the audit record)")
    command.add_argument("--results-conn-id", help="Airflow connection of the results history")
    command.add_argument("--reason", help="why: a ticket or request reference, stored in the audit record")
    command.add_argument("--requested-by", help="who asked (default: the current user)")
    command.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    command.add_argument("--ids-file", help="read ids from this file, one per line ('-': standard input)")
    command.add_argument("ids", nargs="*", metavar="ID", help="raw ids or pseudonyms (ps_...)")
    return command


def _read_ids(args: argparse.Namespace) -> list[str]:
    ids = list(args.ids)
    if args.ids_file:
        if args.ids_file == "-":
            text = sys.stdin.read()
        else:
            try:
                with open(args.ids_file, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise MlobsInputError(f"--ids-file {args.ids_file}: {exc.strerror or exc}") from None
        ids += text.replace(",", " ").split()
    return ids


@contextmanager
def _engine(url: str | None, conn_id: str | None) -> Iterator[sa.Engine]:
    if url:
        engine = sa.create_engine(url)
    else:
        from airflow_mlobs.connections import engine_for_connection, results_engine

        engine = engine_for_connection(conn_id) if conn_id else results_engine(None)
    try:
        yield engine
    finally:
        engine.dispose()


def erase_command(args: argparse.Namespace) -> int:
    """Run ``erase``; prints the result (tables and counts) and returns the exit code (2: bad input)."""
    from airflow_mlobs.connections import pseudonym_key
    from airflow_mlobs.erasure import erase
    from airflow_mlobs.render.text import findings_table
    from airflow_mlobs.sources.retention_sql import ErasureTarget
    from airflow_mlobs.store import ResultsStore

    target = ErasureTarget(
        table=args.table,
        subject_column=args.column,
        pseudonymized=bool(args.pseudonymized),
        labels_table=args.labels_table,
        labels_prediction_column=args.labels_prediction_column,
        prediction_id_column=args.prediction_id_column,
        labels_subject_column=args.labels_subject_column,
    )

    def key() -> PseudonymKey:
        return pseudonym_key(conn_id=args.key_conn_id)

    try:
        ids = _read_ids(args)
        with (
            _engine(args.url, args.conn_id) as engine,
            _engine(args.results_url, args.results_conn_id) as results,
        ):
            audit, result = erase(
                ids,
                engine=engine,
                target=target,
                store=ResultsStore(results),
                key=key,
                requested_by=args.requested_by or _user(),
                reason=args.reason,
                dry_run=bool(args.dry_run),
            )
    except MlobsInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary)
    if result.findings:
        print(findings_table(result))
    if audit.key_id:
        print(f"pseudonym key: {audit.key_id}")
    return 0


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without a passwd entry)
        return None
