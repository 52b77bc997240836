"""``python -m airflow_mlobs silence add|list|expire``: silences of alerts, stored in the results
history (``mlobs_silences``) that every notifier reads before sending (:mod:`airflow_mlobs.notifiers`).

``add`` takes ``--for`` (a duration such as ``7d``) or ``--until`` (an ISO 8601 moment); ``list``
shows the silences holding now (``--all``: also ended ones); ``expire`` ends one by its id.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.notify import Silence
from airflow_mlobs.core.timeutil import parse_duration, parse_moment


def add_silence_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``silence`` subcommand (``add``, ``list``, ``expire``) on ``subparsers``."""
    command: argparse.ArgumentParser = subparsers.add_parser("silence", help="silence alerts of a check")
    actions = command.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="silence a check's alerts on a dataset until a time")
    add.add_argument(
        "--dataset", required=True, help="the dataset as results name it (shell patterns allowed)"
    )
    add.add_argument("--check", required=True, help="the check (freshness, drift, ...; '*' for every check)")
    add.add_argument("--column", help="only breaches of this column alone")
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", help="how long, a duration such as 7d or 12h")
    until.add_argument("--until", help="until when (ISO 8601; naive is UTC)")
    add.add_argument("--reason", required=True, help="why (shown in the logs and the list)")
    add.add_argument("--by", help="who silences (default: the login name)")
    listing = actions.add_parser("list", help="list the silences holding now")
    listing.add_argument("--all", action="store_true", help="also silences that ended")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=int, help="the silence's id (from list)")
    for sub in (add, listing, expire):
        sub.add_argument("--url", help="SQLAlchemy URL of the results history (default: as the operators)")
    return command


def _engine(url: str | None) -> sa.Engine:
    if url:
        return sa.create_engine(url)
    from airflow_mlobs.connections import results_engine

    return results_engine(None)


def _row(silence: Silence, now: datetime) -> dict[str, Any]:
    ended = silence.expired_at if silence.expired_at is not None else silence.until
    return {
        "id": silence.id,
        "dataset": silence.dataset,
        "check": silence.check,
        "column": silence.column,
        "until": silence.until.isoformat(timespec="seconds"),
        "active": silence.active(now),
        "ended": None if silence.active(now) else ended.isoformat(timespec="seconds"),
        "reason": silence.reason,
        "created_by": silence.created_by,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["id", "dataset", "check", "column", "until", "state", "by", "reason"]
    lines = [
        [
            str(r["id"]),
            r["dataset"],
            r["check"],
            r["column"] or "-",
            r["until"],
            "active" if r["active"] else f"ended {r['ended']}",
            r["created_by"],
            r["reason"],
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(7)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(line[:7], widths, strict=True)), line[7]])
        for line in [header, *lines]
    )


def silence_command(args: argparse.Namespace) -> int:
    """Run ``silence add|list|expire``; returns the exit code (2 bad input, 1 no such silence)."""
    from airflow_mlobs.store import ResultsStore

    now = datetime.now(UTC)
    try:
        engine = _engine(args.url)
        if args.action == "add":
            if args.duration:
                until = now + parse_duration(args.duration, name="--for")
            else:
                moment = parse_moment(args.until, "--until")
                if moment is None:
                    raise MlobsInputError("--until needs a moment (ISO 8601)")
                until = moment
            if until <= now:
                raise MlobsInputError(f"--until {args.until!r} is not in the future")
            if not args.reason.strip():
                raise MlobsInputError("--reason must say why")
    except (MlobsInputError, ValueError, sa.exc.ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store = ResultsStore(engine)
        if args.action == "add":
            silence = store.add_silence(
                dataset=args.dataset,
                check=args.check,
                column=args.column,
                until=until,
                reason=args.reason.strip(),
                created_by=args.by or getpass.getuser(),
            )
            print(
                f"silence #{silence.id}: {silence.check} on {silence.dataset} until {_row(silence, now)['until']}"
            )
            return 0
        if args.action == "expire":
            if not store.expire_silence(args.id, now):
                print(f"error: no silence #{args.id} holds now", file=sys.stderr)
                return 1
            print(f"silence #{args.id} expired")
            return 0
        found = store.silences(active_at=None if args.all else now)
        rows = [_row(s, now) for s in found]
        print(json.dumps(rows, indent=2) if args.json else _table(rows) if rows else "no silences")
        return 0
    except sa.exc.SQLAlchemyError as exc:
        print(
            f"error: cannot use the results history: {str(getattr(exc, 'orig', exc)).splitlines()[0]}",
            file=sys.stderr,
        )
        return 2
    finally:
        engine.dispose()
