"""Durations and time zones: parsing ``"6h"``, and reading timestamps with and without a zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from airflow_mlobs.core.timeutil import format_duration, get_zone, parse_duration, to_aware, to_naive_in

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 6 h ", timedelta(hours=6)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("6H", timedelta(hours=6)),
        ("45s", timedelta(seconds=45)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_text(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3600, timedelta(hours=1)),
        (90.5, timedelta(seconds=90.5)),
        (0, timedelta(0)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_parse_duration_numbers_and_timedeltas(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", "6x", "h6", "-1h", "6", "6h garbage", "six hours", ".5h"])
def test_parse_duration_rejects_bad_text_naming_the_argument(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text, name="max_age")
    message = str(info.value)
    assert message.startswith("max_age:")
    assert repr(text) in message


@pytest.mark.parametrize("value", [timedelta(hours=-1), -5, -0.5])
def test_parse_duration_rejects_negative(value: object) -> None:
    with pytest.raises(ValueError, match=r"^warn_after: must not be negative"):
        parse_duration(value, name="warn_after")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bool(value: bool) -> None:
    with pytest.raises(ValueError, match=r"^max_age: expected a duration"):
        parse_duration(value, name="max_age")


def test_parse_duration_rejects_other_types() -> None:
    with pytest.raises(ValueError, match=r"^max_age: expected a duration such as '6h', got list"):
        parse_duration(["6h"], name="max_age")  # type: ignore[arg-type]


def test_parse_duration_default_name() -> None:
    with pytest.raises(ValueError, match=r"^duration:"):
        parse_duration("6x")


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=2, hours=3), "2d 3h"),
        (timedelta(hours=5, minutes=12), "5h 12m"),
        (timedelta(seconds=42), "42s"),
        (timedelta(0), "0s"),
        (timedelta(hours=6), "6h"),
        (timedelta(minutes=90), "1h 30m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=1, minutes=30), "1d"),
        (timedelta(minutes=1, seconds=30), "1m"),
        (timedelta(hours=-25, minutes=-30), "-1d 1h"),
        (timedelta(seconds=-42), "-42s"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


def test_get_zone() -> None:
    assert get_zone("UTC") is UTC
    assert get_zone("utc") is UTC
    assert get_zone("Europe/Berlin") == BERLIN
    zone = timezone(timedelta(hours=3))
    assert get_zone(zone) is zone


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Europe/Berlinn", "", "../etc/passwd"])
def test_get_zone_unknown_name(name: str) -> None:
    with pytest.raises(ValueError) as info:
        get_zone(name)
    assert f"unknown time zone {name!r}" in str(info.value)
    assert "IANA" in str(info.value)


def test_to_aware_naive_read_in_zone_on_dst_day() -> None:
    # 2026-03-29 is the day Berlin moves from CET (+1) to CEST (+2) at 02:00 local time.
    before = to_aware(datetime(2026, 3, 29, 1, 30), BERLIN)
    after = to_aware(datetime(2026, 3, 29, 3, 30), BERLIN)
    assert before == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert after == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert before.tzinfo is UTC and after.tzinfo is UTC
    assert after - before == timedelta(hours=1)


def test_to_aware_naive_in_summer_and_utc() -> None:
    assert to_aware(datetime(2026, 7, 1, 12, 0), BERLIN) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert to_aware(datetime(2026, 7, 1, 12, 0), UTC) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_to_aware_aware_value_is_converted_not_reinterpreted() -> None:
    value = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    result = to_aware(value, BERLIN)
    assert result == datetime(2026, 7, 1, 17, 0, tzinfo=UTC)
    assert result.tzinfo is UTC
    assert result.hour == 17


def test_to_aware_date_is_start_of_day_in_zone() -> None:
    assert to_aware(date(2026, 7, 1), BERLIN) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert to_aware(date(2026, 1, 1), BERLIN) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert to_aware(date(2026, 1, 1), UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert to_aware(date(2026, 1, 1), UTC).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-01T12:00:00+02:00", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        ("2026-07-01T12:00:00Z", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
        ("2026-07-01 12:00:00", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        (" 2026-07-01T12:00 ", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        ("2026-07-01", datetime(2026, 6, 30, 22, 0, tzinfo=UTC)),
    ],
)
def test_to_aware_iso_text(text: str, expected: datetime) -> None:
    result = to_aware(text, BERLIN)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01", "12:00"])
def test_to_aware_rejects_non_timestamp_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 timestamp"):
        to_aware(text, UTC)


def test_to_aware_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="is not a timestamp"):
        to_aware(1234567890, UTC)  # type: ignore[arg-type]


def test_to_naive_in() -> None:
    value = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    naive = to_naive_in(value, BERLIN)
    assert naive == datetime(2026, 7, 1, 12, 0)
    assert naive.tzinfo is None
    assert to_naive_in(datetime(2026, 1, 1, 10, 0, tzinfo=UTC), BERLIN) == datetime(2026, 1, 1, 11, 0)
    assert to_naive_in(value, UTC) == datetime(2026, 7, 1, 10, 0)
    # round trip with to_aware
    assert to_aware(naive, BERLIN) == value
