"""Graphite's from/until times and intervals (attime.py's rules), computed by hand."""

from __future__ import annotations

import pytest

from trio_metrics.query import TimeFormatError, parse_interval, parse_time, time_range

# 2023-11-14 22:13:20 UTC, a Tuesday.
NOW = 1_700_000_000
MIDNIGHT = 1_699_920_000  # 2023-11-14 00:00 UTC
HOUR, DAY = 3600, 86400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("", NOW),
        ("-30s", NOW - 30),
        ("-30sec", NOW - 30),
        ("-5min", NOW - 300),
        ("-5minutes", NOW - 300),
        ("-1h", NOW - HOUR),
        ("-7d", NOW - 7 * DAY),
        ("-2w", NOW - 14 * DAY),
        ("-1mon", NOW - 30 * DAY),
        ("-1y", NOW - 365 * DAY),
        ("-1h30min", NOW - HOUR - 1800),
        ("now-1d", NOW - DAY),
        ("+1h", NOW + HOUR),
        ("1700000000", 1_700_000_000),
        ("0", 0),
        ("midnight", MIDNIGHT),
        ("noon", MIDNIGHT + 12 * HOUR),
        ("teatime", MIDNIGHT + 16 * HOUR),
        ("midnight+2h", MIDNIGHT + 2 * HOUR),
        ("yesterday", MIDNIGHT - DAY),
        ("tomorrow", MIDNIGHT + DAY),
        ("3pm", MIDNIGHT + 15 * HOUR),
        ("20240101", 1_704_067_200),
        ("20241301", 20_241_301),  # no month 13: unix seconds, as in graphite-web
        ("12:00_20240101", 1_704_067_200 + 12 * HOUR),
        ("11/14/23", MIDNIGHT),
        ("nov 3", MIDNIGHT - 11 * DAY),
        ("monday", MIDNIGHT - DAY),
        ("tuesday", MIDNIGHT),
    ],
)
def test_time_forms(text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1m", "Invalid offset unit 'm'"),  # graphite: m is neither min nor mon
        ("-5q", "Invalid offset unit 'q'"),
        ("+5", "Invalid offset unit ''"),
        ("x", "Unknown day reference"),
        ("20240230", "Invalid time"),  # read as YYYYMMDD: 30 February
        ("99999999999999999", "out of range"),
        ("feb", "day of month required"),
    ],
)
def test_bad_times_are_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(TimeFormatError, match=message):
        parse_time(text, NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5min", 300), ("-7d", -7 * DAY), ("+1h30min", 5400), ("1mon", 30 * DAY), ("", 0), ("-", 0)],
)
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["1m", "abc", "h", "5min5"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_interval(text)


def test_time_range_defaults_swaps_and_refuses_empty() -> None:
    assert time_range(None, None, NOW) == (NOW - DAY, NOW)
    assert time_range("-1h", "now", NOW) == (NOW - HOUR, NOW)
    assert time_range("now", "-1h", NOW) == (NOW - HOUR, NOW)  # reversed: swapped
    with pytest.raises(TimeFormatError, match="empty time range"):
        time_range("now", "now", NOW)
    assert issubclass(TimeFormatError, ValueError)
