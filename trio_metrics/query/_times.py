"""Graphite's ``from``/``until`` times and intervals, as graphite-web's attime.py reads them.

Pure: the caller passes ``now`` (unix seconds) and the time zone (UTC unless
told, graphite-web's default), so the same text always gives the same time.

- ``now``, unix seconds (``1700000000``), relative offsets (``-1h``,
  ``-5min``, ``-7d``, ``-2w``, ``-1mon`` = 30 days, ``-1y`` = 365 days,
  ``-30s``; combined as ``-1h30min``), a reference plus an offset
  (``now-1d``, ``midnight+2h``);
- references: ``HH:MM``, ``Xam``/``Xpm``, ``noon``, ``midnight``,
  ``teatime``, ``yesterday``/``today``/``tomorrow``, ``YYYYMMDD``,
  ``MM/DD/YY[YY]``, ``monthname DD``, weekday names, combined as
  ``HH:MM_YYYYMMDD``.

A unit is read by its start: ``s…`` seconds, ``min…`` minutes, ``h…``
hours, ``d…`` days, ``w…`` weeks, ``mon…`` months, ``y…`` years, so a bare
``m`` is an error, as in graphite-web.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

__all__ = ["TimeFormatError", "parse_interval", "parse_time", "time_range"]

_UTC: Final = dt.UTC
#: The years 1 to 9999, as Python's datetime holds them.
_EARLIEST: Final = -62135596800
_LATEST: Final = 253402300799
_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_UNIT_SECONDS: Final = (
    # Checked in this order, by prefix, as graphite-web's getUnitString does.
    ("s", 1),
    ("min", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 7 * 86400),
    ("mon", 30 * 86400),
    ("y", 365 * 86400),
)


class TimeFormatError(ValueError):
    """A ``from``/``until`` time or an interval that graphite's rules do not read."""


def parse_interval(text: str) -> int:
    """Seconds of an offset such as ``5min``, ``-7d``, ``+1h30min`` (no sign means +)."""
    if not text:
        return 0
    sign = 1
    rest = text
    if not rest[0].isascii() or not rest[0].isdigit():
        if rest[0] not in "+-":
            raise TimeFormatError(f"Invalid offset: {text!r}")
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    total = 0
    while rest:
        digits = _leading(rest, _is_ascii_digit)
        if not digits:
            raise TimeFormatError(f"Invalid offset: {text!r}: a number must come before a unit")
        rest = rest[len(digits) :]
        unit = _leading(rest, str.isalpha)
        rest = rest[len(unit) :]
        total += sign * int(digits) * _unit_seconds(unit)
    return total


def _unit_seconds(unit: str) -> int:
    for prefix, seconds in _UNIT_SECONDS:
        if unit.startswith(prefix):
            return seconds
    raise TimeFormatError(f"Invalid offset unit {unit!r} (use s, min, h, d, w, mon or y)")


def _is_ascii_digit(char: str) -> bool:
    return char.isascii() and char.isdigit()


def _leading(text: str, accept: Callable[[str], bool]) -> str:
    end = 0
    while end < len(text) and accept(text[end]):
        end += 1
    return text[:end]


def parse_time(text: str, now: int, tz: dt.tzinfo = _UTC) -> int:
    """Unix seconds of a graphite time (``-1h``, ``now``, ``1700000000``, ``midnight``…)."""
    s = text.strip().lower().replace("_", "").replace(",", "").replace(" ", "")
    if s and all(map(_is_ascii_digit, s)):
        looks_like_date = len(s) == 8 and int(s[:4]) > 1900 and int(s[4:6]) < 13 and int(s[6:]) < 32
        if not looks_like_date:
            return _checked(int(s), text)
    if "+" in s:
        ref, offset = s.split("+", 1)
        offset = "+" + offset
    elif "-" in s:
        ref, offset = s.split("-", 1)
        offset = "-" + offset
    else:
        ref, offset = s, ""
    try:
        return _checked(_reference(ref, now, tz) + parse_interval(offset), text)
    except TimeFormatError:
        raise
    except (ValueError, OverflowError, OSError) as error:
        raise TimeFormatError(f"Invalid time {text!r}: {error}") from None


def _checked(seconds: int, text: str) -> int:
    """Refuse what no calendar holds (graphite-web fails on it too)."""
    if not _EARLIEST <= seconds <= _LATEST:
        raise TimeFormatError(f"Invalid time {text!r}: out of range")
    return seconds


def _reference(ref: str, now: int, tz: dt.tzinfo) -> int:
    if not ref or ref == "now":
        return now
    raw = ref
    local_now = dt.datetime.fromtimestamp(now, tz)
    hour = minute = 0
    colon = ref.find(":")
    if 0 < colon < 3:
        hour = int(ref[:colon])
        minute = int(ref[colon + 1 : colon + 3])
        ref = ref[colon + 3 :]
        if ref[:2] == "am":
            ref = ref[2:]
        elif ref[:2] == "pm":
            hour = (hour + 12) % 24
            ref = ref[2:]
    at = ref.find("am")
    if 0 < at < 3:
        hour = int(ref[:at])
        ref = ref[at + 2 :]
    at = ref.find("pm")
    if 0 < at < 3:
        hour = (int(ref[:at]) + 12) % 24
        ref = ref[at + 2 :]
    for name, named_hour in (("noon", 12), ("midnight", 0), ("teatime", 16)):
        if ref.startswith(name):
            hour, minute = named_hour, 0
            ref = ref[len(name) :]
            break
    day = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None)
    if ref in ("yesterday", "today", "tomorrow"):
        day += dt.timedelta(days={"yesterday": -1, "today": 0, "tomorrow": 1}[ref])
    elif ref.count("/") == 2:
        month, mday, year = map(int, ref.split("/"))
        if year < 1900:
            year += 1900
        if year < 1970:
            year += 100
        day = dt.datetime(year, month, mday, hour, minute)
    elif len(ref) == 8 and all(map(_is_ascii_digit, ref)):
        day = dt.datetime(int(ref[:4]), int(ref[4:6]), int(ref[6:8]), hour, minute)
    elif ref[:3] in _MONTHS:
        if ref[-2:].isdigit():
            mday = int(ref[-2:])
        elif ref[-1:].isdigit():
            mday = int(ref[-1:])
        else:
            raise TimeFormatError(f"Invalid time {raw!r}: day of month required after month name")
        day = dt.datetime(day.year, _MONTHS.index(ref[:3]) + 1, mday, hour, minute)
    elif ref[:3] in _WEEKDAYS:
        today = _WEEKDAYS.index(day.strftime("%a").lower()[:3])
        back = today - _WEEKDAYS.index(ref[:3])
        if back < 0:
            back += 7
        day -= dt.timedelta(days=back)
    elif ref:
        raise TimeFormatError(f"Unknown day reference: {raw!r}")
    return int(day.replace(tzinfo=tz).timestamp())


def time_range(
    from_text: str | None, until_text: str | None, now: int, tz: dt.tzinfo = _UTC
) -> tuple[int, int]:
    """``(start, end)`` of a render request: from defaults to ``-1d``, until to ``now``;
    the two are swapped when reversed, and an empty range is an error, as in graphite-web."""
    until = parse_time(until_text, now, tz) if until_text is not None else now
    start = parse_time(from_text if from_text is not None else "-1d", now, tz)
    start, end = min(start, until), max(start, until)
    if start == end:
        raise TimeFormatError("Invalid empty time range")
    return start, end
