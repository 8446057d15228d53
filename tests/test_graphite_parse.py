"""The Graphite plaintext rules of trio_metrics.ingest._graphite, without any I/O.

Expected values are written out literally or built by an independent model
(carbon's own rule: ``metric, value, ts = line.strip().split()`` and
``float()`` of each), never taken from the code under test.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.ingest._graphite import (
    GraphiteBatch,
    GraphiteLineError,
    GraphitePoint,
    NotANumber,
    parse_graphite_line,
    parse_graphite_lines,
    parse_graphite_timestamp,
)
from trio_metrics.transport._lines import LINE_TOO_LONG, Line

NOW = 1_700_000_000
MAX = 2**63 - 1


# --- one line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"palm.cpu 10.6 1501864247", GraphitePoint("palm.cpu", 10.6, 1501864247)),
        (b"palm.cpu\t10.6\t1501864247", GraphitePoint("palm.cpu", 10.6, 1501864247)),
        (b"  palm.cpu  \t 10.6 \t 1501864247 \t", GraphitePoint("palm.cpu", 10.6, 1501864247)),
        (b"palm.cpu 10.6 1501864247\r", GraphitePoint("palm.cpu", 10.6, 1501864247)),
        # As in the main protocol, whitespace of any kind around the fields is ignored.
        (b"\x0cpalm.cpu 10.6 1501864247\r\r", GraphitePoint("palm.cpu", 10.6, 1501864247)),
        (b"a -3 0", GraphitePoint("a", -3.0, 0)),
        (b"a 1e3 5", GraphitePoint("a", 1000.0, 5)),
        (b"a 12210176 5", GraphitePoint("a", 12210176.0, 5)),
        (b"a 0.62451171875 5", GraphitePoint("a", 0.62451171875, 5)),
        (b"a 1 9223372036854775807", GraphitePoint("a", 1.0, MAX)),
        (b"a 1 0009223372036854775807", GraphitePoint("a", 1.0, MAX)),
        # Tags are not interpreted: the whole path is the key.
        (b"disk.used;host=a 7 5", GraphitePoint("disk.used;host=a", 7.0, 5)),
        ("h\u00f6st.cpu 1 5".encode(), GraphitePoint("h\u00f6st.cpu", 1.0, 5)),
    ],
)
def test_good_lines(line: bytes, expected: GraphitePoint) -> None:
    assert parse_graphite_line(line, NOW) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"1501864247", 1501864247),
        (b"1501864247.5", 1501864247),
        (b"1501864247.999999999999", 1501864247),
        (b"1501864247.", 1501864247),
        (b"+1501864247", 1501864247),
        (b"1.5e9", 1500000000),
        (b"1E3", 1000),
        (b".5", 0),
        (b"0", 0),
        (b"-0.5", 0),
        (b"-0", 0),
        (b"-1", NOW),
        (b"-1.0", NOW),
        (b"-1.9", NOW),
        (b"-1e0", NOW),
        (b"-10e-1", NOW),
        (b"9223372036854775807", MAX),
        (b"9223372036854775807.9", MAX),
    ],
)
def test_timestamps(token: bytes, expected: int) -> None:
    assert parse_graphite_timestamp(token, NOW) == expected


@pytest.mark.parametrize(
    "token",
    [
        b"-2",
        b"-2.5",
        b"-1e3",
        b"9223372036854775808",
        b"1" * 25,
        b"0" * 5000 + b"1" * 20,
        b"1e19",
        b"1e400",
        b"nan",
        b"inf",
        b"-inf",
        b"1_000",
        b"0x10",
        b"",
        b".",
        b"-",
        b"1.5.5",
        b"1e",
        b"\xd9\xa1",  # ARABIC-INDIC DIGIT ONE: float() takes it, senders never write it
        b" 1",
    ],
)
def test_bad_timestamps(token: bytes) -> None:
    with pytest.raises(GraphiteLineError):
        parse_graphite_timestamp(token, NOW)


def test_missing_timestamp_means_now() -> None:
    assert parse_graphite_line(b"palm.cpu 3", NOW) == GraphitePoint("palm.cpu", 3.0, NOW)
    assert parse_graphite_line(b"palm.cpu 3 -1\r", NOW) == GraphitePoint("palm.cpu", 3.0, NOW)


@pytest.mark.parametrize("line", [b"", b"   ", b"\t \t", b"\r", b" \r"])
def test_blank_lines_are_no_points(line: bytes) -> None:
    assert parse_graphite_line(line, NOW) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"palm.cpu", "got 1 fields"),
        (b"palm.cpu 1 2 3", "got 4 fields"),
        (b"put palm.cpu 1 2", "got 4 fields"),
        (b"* 1 2", "invalid path"),
        (b"pa\x00lm 1 2", "invalid path"),
        (b"pa\x0blm 1 2", "invalid path"),
        (b"pa\rlm 1 2", "invalid path"),
        (b"\xff\xfe 1 2", "not UTF-8"),
        (b"palm.cpu ten 2", "not a finite number"),
        (b"palm.cpu inf 2", "not a finite number"),
        (b"palm.cpu -Infinity 2", "not a finite number"),
        (b"palm.cpu 1e999 2", "not a finite number"),
        (b"palm.cpu 1 now", "not a number"),
        (b"palm.cpu 1 -2", "out of range"),
    ],
)
def test_bad_lines(line: bytes, reason: str) -> None:
    with pytest.raises(GraphiteLineError, match=reason) as caught:
        parse_graphite_line(line, NOW)
    assert not isinstance(caught.value, NotANumber)


@pytest.mark.parametrize("value", [b"nan", b"NaN", b"-nan", b"+nan"])
def test_nan_values_are_told_apart(value: bytes) -> None:
    with pytest.raises(NotANumber):
        parse_graphite_line(b"cpu-0.cpu-user " + value + b" 5", NOW)


# --- the lines of one read ---------------------------------------------------


def test_batch_keeps_order_and_counts_the_rest() -> None:
    lines: list[Line] = [
        b"a 1 10",
        b"",
        b"bad",
        LINE_TOO_LONG,
        b"b 2",
        b"c nan 10",
        b"a 3 10",
    ]
    batch = parse_graphite_lines(lines, NOW)
    assert batch == GraphiteBatch(
        keys=["a", "b", "a"],
        values=[1.0, 2.0, 3.0],
        timestamps=[10, NOW, 10],
        bad=[
            (b"bad", "expected 'path value timestamp', got 1 fields"),
            (LINE_TOO_LONG, "line too long"),
        ],
        lines_too_long=1,
        nan_values=1,
    )


def test_empty_batch() -> None:
    assert parse_graphite_lines([], NOW) == GraphiteBatch()


# --- properties --------------------------------------------------------------

keys = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Cf", "Co")),
    min_size=1,
    max_size=20,
).filter(lambda key: key != "*" and key.isprintable())
finite = st.floats(allow_nan=False, allow_infinity=False)
separators = st.sampled_from([" ", "\t", "  ", " \t "])


@settings(max_examples=300)
@given(
    key=keys,
    value=finite,
    timestamp=st.one_of(st.integers(0, MAX), st.just(-1), st.none()),
    fraction=st.sampled_from(["", ".", ".0", ".5", ".999"]),
    sep=separators,
    lead=st.sampled_from(["", " ", "\t"]),
    trail=st.sampled_from(["", " ", "\t", "\r"]),
)
def test_well_formed_lines_round_trip(
    key: str,
    value: float,
    timestamp: int | None,
    fraction: str,
    sep: str,
    lead: str,
    trail: str,
) -> None:
    fields = [key, repr(value)]
    if timestamp is not None:
        fields.append(f"{timestamp}{fraction}")
    line = (lead + sep.join(fields) + trail).encode()
    expected_ts = NOW if timestamp in (None, -1) else timestamp
    point = parse_graphite_line(line, NOW)
    assert point == GraphitePoint(key, value, expected_ts)
    assert math.copysign(1, point.value) == math.copysign(1, value)


def carbon_reading(line: str) -> tuple[str, float, int] | None:
    """What carbon's line receiver stores for ``line`` (``None``: dropped).

    Its rule, restated: three whitespace-separated fields, ``float()`` of the
    timestamp and value; a nan value is dropped; a timestamp that truncates
    to -1 means now.
    """
    try:
        metric, value_text, ts_text = line.strip().split()
        timestamp, value = float(ts_text), float(value_text)
    except ValueError:
        return None
    if value != value or not math.isfinite(timestamp):
        return None
    seconds = int(timestamp)
    return metric, value, NOW if seconds == -1 else seconds


tokens = st.sampled_from(
    [
        "palm.cpu",
        "a.b-c_d",
        "1",
        "-1",
        "-1.5",
        "-0.5",
        "0",
        "10.6",
        "1e3",
        "-2",
        "1501864247",
        "1501864247.5",
        "nan",
        "inf",
        "x",
        "*",
    ]
)


@settings(max_examples=500)
@given(st.lists(tokens, min_size=1, max_size=4), separators)
def test_agrees_with_carbon_on_three_field_lines(parts: list[str], sep: str) -> None:
    line = sep.join(parts)
    carbon = carbon_reading(line)
    try:
        point = parse_graphite_line(line.encode(), NOW)
    except GraphiteLineError:
        point = None
    if len(parts) == 2:
        return  # carbon refuses a missing timestamp; we take it as now
    if point is not None:
        # Whatever we store, carbon stores the same.
        assert carbon == (point.key, point.value, point.timestamp)
    elif carbon is not None:
        # Carbon stores more: infinite values, negative timestamps and "*".
        metric, value, seconds = carbon
        assert math.isinf(value) or seconds < 0 or metric == "*"


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_every_line_is_accounted_for(raw: list[bytes]) -> None:
    lines: list[Line] = [line.replace(b"\n", b"") for line in raw]
    batch = parse_graphite_lines(lines, NOW)
    blank = sum(1 for line in lines if isinstance(line, bytes) and not line.split())
    assert len(batch.keys) == len(batch.values) == len(batch.timestamps)
    assert len(batch.keys) + len(batch.bad) + batch.nan_values + blank == len(lines)
    for key, value, timestamp in zip(batch.keys, batch.values, batch.timestamps, strict=True):
        assert key and key != "*" and " " not in key
        assert math.isfinite(value)
        assert 0 <= timestamp <= MAX


# --- the block fast path ------------------------------------------------------

_TOKENS = st.sampled_from(
    [b"a.b", b"web-1.cpu", b"*", b"\xc3\xa9t\xc3\xa9", b"1", b"-2.5", b"1e3", b"1_0", b"nan",
     b"inf", b"-1", b"0", b"1501864247", b"9223372036854775807", b"9223372036854775808",
     b"99999999999999999999", b"1501864247.5", b"0x10", b"", b"x"]
)  # fmt: skip


# Each field drawn from its own kind, so that near-plain lines are common.
_KEYS = st.sampled_from([b"a.b", b"web-1.cpu", b"*", b"\xc3\xa9t\xc3\xa9", b"x"])
_VALUES = st.sampled_from([b"1", b"-2.5", b"1e3", b"1_0", b"nan", b"inf", b"1e999", b"0x10"])
_STAMPS = st.sampled_from(
    [b"0", b"1501864247", b"9223372036854775807", b"9223372036854775808", b"-1", b"1.5"]
)


def _line_by_line(lines: list[bytes], now: int) -> tuple[list[str], list[float], list[int]]:
    """The reference: parse_graphite_line on each line, nan and bad lines dropped."""
    keys: list[str] = []
    values: list[float] = []
    stamps: list[int] = []
    for line in lines:
        try:
            point = parse_graphite_line(line, now)
        except GraphiteLineError:
            continue
        if point is not None:
            keys.append(point.key)
            values.append(point.value)
            stamps.append(point.timestamp)
    return keys, values, stamps


@settings(max_examples=400)
@given(
    st.lists(
        st.lists(_TOKENS, min_size=0, max_size=4).map(b" ".join)
        | st.tuples(_KEYS, _VALUES, _STAMPS).map(b" ".join),
        min_size=1,
        max_size=6,
    )
)
def test_the_block_path_takes_exactly_what_the_line_path_takes(lines: list[bytes]) -> None:
    now = 1700000000
    batch = parse_graphite_lines(lines, now)
    expected = _line_by_line(lines, now)
    assert (batch.keys, batch.values, batch.timestamps) == expected
    bad = sum(1 for line in lines if _is_bad(line, now))
    assert len(batch.bad) == bad


def _is_bad(line: bytes, now: int) -> bool:
    try:
        parse_graphite_line(line, now)
    except NotANumber:
        return False
    except GraphiteLineError:
        return True
    return False


def test_a_read_of_plain_lines_takes_the_block_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import trio_metrics.ingest._graphite as graphite

    def no_line_by_line(line: bytes, now: int) -> None:
        raise AssertionError("the line-by-line path was taken")

    monkeypatch.setattr(graphite, "parse_graphite_line", no_line_by_line)
    lines = [b"host.cpu %d.25 %d" % (i, 1501864247 + i) for i in range(1000)]
    batch = parse_graphite_lines(lines, 0)
    assert batch.keys == ["host.cpu"] * 1000
    assert batch.values[:2] == [0.25, 1.25]
    assert batch.timestamps[-1] == 1501864247 + 999


# Blocks of many lines, as a read brings them: mostly plain lines (so that
# the block path is taken, with values and timestamps read as JSON), with
# tokens that only an exact reader gets right, and a few odd lines: a
# wrong token, a field too many or too few, a doubled or missing
# separator, a tab, a "\r".
_GOOD_KEYS = st.integers(0, 40).map(lambda n: b"host%d.cpu" % n) | st.sampled_from(
    [b"a.b", b"web-1.cpu", b"a,b", b'"q"', b"[1]"]
)
# Values JSON reads (one tricky: JSON's -0 is an integer), and values only
# float() reads, which send the column to float() token by token.
_JSON_VALUES = st.floats(allow_nan=False, allow_infinity=False).map(
    lambda v: repr(v).encode()
) | st.sampled_from([b"1", b"-0", b"-0.0", b"1E5", b"4.9e-324", b"-1e-400"])
_GOOD_VALUES = _JSON_VALUES | st.sampled_from(
    [b"1.", b".5", b"+1", b"1_0", b"007", b"0.1000000000000000055511151231257827"]
)
_GOOD_STAMPS = st.integers(0, 2**63 - 1).map(lambda n: b"%d" % n) | st.sampled_from(
    [b"0", b"0042", b"9223372036854775807"]
)
_ODD_TOKENS = st.sampled_from(
    [b"*", b"", b"\xc3\xa9t\xc3\xa9", b"00000000000000000001501864247", b"nan", b"inf",
     b"1e999", b"1,2", b"true", b"9223372036854775808", b"99999999999999999999",
     b"123456789012345678901234567890", b"-1", b"1.5", b"1e3", b"x"]
)  # fmt: skip
_ANY_TOKENS = _GOOD_KEYS | _GOOD_VALUES | _GOOD_STAMPS | _ODD_TOKENS
_PLAIN_LINES = st.tuples(_GOOD_KEYS, _GOOD_VALUES, _GOOD_STAMPS).map(b" ".join)
_JSON_LINES = st.tuples(_GOOD_KEYS, _JSON_VALUES, _GOOD_STAMPS).map(b" ".join)
_ODD_LINES = st.tuples(
    _GOOD_KEYS | _ODD_TOKENS, _GOOD_VALUES | _ODD_TOKENS, _GOOD_STAMPS | _ODD_TOKENS
).map(b" ".join) | st.tuples(
    st.lists(_ANY_TOKENS, min_size=0, max_size=5),
    st.sampled_from([b" ", b"  ", b"\t", b" \r", b"\r"]),
).map(lambda parts: parts[1].join(parts[0]))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_JSON_LINES, min_size=8, max_size=40)
    | st.lists(_PLAIN_LINES, min_size=8, max_size=40),
    st.lists(st.tuples(st.integers(0, 40), _ODD_LINES), max_size=2),
)
def test_a_block_of_many_lines_reads_as_line_by_line(
    plain: list[bytes], odd: list[tuple[int, bytes]]
) -> None:
    lines = list(plain)
    for where, line in odd:
        lines.insert(where, line)
    block = b"\n".join(lines)
    batch = parse_graphite_lines(block, NOW)
    keys, values, stamps = _line_by_line(lines, NOW)
    assert batch.keys == keys
    assert batch.timestamps == stamps
    # Each value exactly float() of its text, to the bit (-0 is -0.0).
    assert [v.hex() for v in batch.values] == [v.hex() for v in values]
    assert len(batch.bad) == sum(1 for line in lines if _is_bad(line, NOW))


@pytest.mark.parametrize(
    "line",
    [
        b"k -0 1501864247",  # JSON reads -0 as the integer 0
        b"k 1. 1501864247",  # not JSON
        b"k 1 0042",  # a leading zero: not JSON
        b"k 1 9223372036854775807",
    ],
)
def test_plain_blocks_with_numbers_json_reads_otherwise_take_the_block_path(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trio_metrics.ingest._graphite as graphite

    expected = parse_graphite_line(line, NOW)
    assert expected is not None

    def no_line_by_line(line: bytes, now: int) -> None:
        raise AssertionError("the line-by-line path was taken")

    monkeypatch.setattr(graphite, "parse_graphite_line", no_line_by_line)
    block = b"\n".join([b"host.cpu %d.5 %d" % (i, i) for i in range(10)] + [line])
    batch = parse_graphite_lines(block, NOW)
    assert batch.keys[-1] == expected.key
    assert batch.values[-1].hex() == expected.value.hex()
    assert batch.timestamps[-1] == expected.timestamp


@pytest.mark.parametrize(
    "odd_block",
    [
        b"a 1\nb 2 3 4",  # two fields and four: as many separators as two plain lines
        b"a 1\n5 3 4 5",  # the same, every token a good one where it would land
        b"a 1 2\n 1 2",  # a leading space: an empty key
        b"a 1 2\n1 2 ",  # a trailing space: an empty timestamp
        b"a 1 2\n1  2",  # an empty value
        b" a 1\nb 2 3",  # a leading space instead of a field
        b"a 1 2\nb 2 3 ",  # a trailing space
        b"a 1  2\nb 2 3",  # a doubled space
        b"a 1 2\n\nb 2",  # an empty line
        b"a 1 2\tb 2 3",
    ],
)
def test_near_plain_blocks_are_read_line_by_line(odd_block: bytes) -> None:
    lines = odd_block.split(b"\n")
    batch = parse_graphite_lines(odd_block, NOW)
    assert (batch.keys, batch.values, batch.timestamps) == _line_by_line(lines, NOW)
    assert len(batch.bad) == sum(1 for line in lines if _is_bad(line, NOW))
