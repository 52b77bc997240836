"""Durations and timestamps: parsing ``"6h"``, and reading timestamps that may lack a zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_mlobs.core.errors import MlobsInputError

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")


def parse_duration(value: timedelta | str | int | float, *, name: str = "duration") -> timedelta:
    """Read a duration: a ``timedelta``, seconds as a number, or text such as ``"6h"``, ``"1d12h"``,
    ``"90m"``, ``"2w"`` (units w, d, h, m, s; parts may be separated by spaces).

    Raises ``ValueError`` naming ``name`` when the text is not a duration or is negative.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"{name}: expected a duration such as '6h', got {value!r}")
    elif isinstance(value, int | float):
        result = timedelta(seconds=float(value))
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(
                f"{name}: {value!r} is not a duration; use a timedelta or text like '6h', '30m', "
                "'1d12h' (units w, d, h, m, s)"
            )
        result = timedelta(seconds=seconds)
    else:
        raise ValueError(f"{name}: expected a duration such as '6h', got {type(value).__name__}")
    if result < timedelta(0):
        raise ValueError(f"{name}: must not be negative, got {value!r}")
    return result


def format_duration(delta: timedelta) -> str:
    """Short human form: ``2d 3h``, ``5h 12m``, ``42s``; negative deltas get a leading ``-``."""
    total = round(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not parts:
        parts.append(f"{seconds}s")
    return sign + " ".join(parts)


def get_zone(name: str | tzinfo) -> tzinfo:
    """A ``tzinfo`` from an IANA name (``"Europe/Berlin"``) or ``"UTC"``; errors say what was wrong."""
    if isinstance(name, tzinfo):
        return name
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'") from exc


def to_aware(value: datetime | date | str, naive_zone: tzinfo) -> datetime:
    """An aware UTC ``datetime`` from a database or file timestamp.

    A naive value is read as wall-clock time in ``naive_zone`` (never compared naively); a ``date``
    is the start of that day in ``naive_zone``; text is parsed as ISO 8601. Raises ``ValueError`` for
    text that is not a timestamp.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            value = value.replace(tzinfo=naive_zone)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=naive_zone).astimezone(UTC)
    raise ValueError(f"{value!r} ({type(value).__name__}) is not a timestamp")


def to_naive_in(value: datetime, zone: tzinfo) -> datetime:
    """The wall-clock time of aware ``value`` in ``zone``, without zone (to bind against naive columns)."""
    return value.astimezone(zone).replace(tzinfo=None)


def parse_moment(value: datetime | date | str | None, name: str) -> datetime | None:
    """An aware UTC moment from a datetime, a date or ISO 8601 text, the one reading of a moment
    argument for operators, specs and the command line alike.

    A value without a zone (``"2026-01-05"``, ``"{{ ds }}"``) is UTC, like a run's data interval, never
    the machine's local zone; empty text and ``None`` mean ``None``. The result is a plain
    ``datetime`` in UTC, not Airflow's pendulum subclass (pendulum 3 drops the zone of a stdlib-UTC
    datetime minus a timedelta, which made window starts naive). ``MlobsInputError`` naming ``name``
    for anything that is not a timestamp.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, datetime | date | str):
        raise MlobsInputError(f"{name}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    try:
        utc = to_aware(value, UTC)
    except ValueError as exc:
        raise MlobsInputError(f"{name}: {exc}") from exc
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )
