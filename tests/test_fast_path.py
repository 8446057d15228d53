"""The fast path for batches of plain puts agrees with the line-by-line parser."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.wire._protocol import ProtocolError, Put, parse_command, parse_put_block


def line_by_line(lines: list[bytes]) -> tuple[list[str], list[float], list[int]] | None:
    """The reference: every line must parse as a put on its own."""
    keys: list[str] = []
    values: list[float] = []
    timestamps: list[int] = []
    for line in lines:
        try:
            command = parse_command(line)
        except ProtocolError:
            return None
        if not isinstance(command, Put):
            return None
        keys.append(command.key)
        values.append(command.value)
        timestamps.append(command.timestamp)
    return keys, values, timestamps


def test_plain_puts_are_parsed_in_one_pass() -> None:
    lines = [b"put palm.cpu 10.6 1501864247", b"put load 301 3", b"put x -1e3 0"]
    assert parse_put_block(lines) == (
        ["palm.cpu", "load", "x"],
        [10.6, 301.0, -1000.0],
        [1501864247, 3, 0],
    )


@pytest.mark.parametrize(
    "odd_line",
    [
        b"put k 1 2 extra",  # five tokens
        b"put k 1",  # three tokens
        b"put  k 1 2",  # plain form only: double space goes the slow way
        b"put\tk 1 2",
        b" put k 1 2",
        b"put k 1 2 ",
        b"",  # blank line
        b"get k",
        b"put * 1 2",
        b"put k nan 2",
        b"put k inf 2",
        b"put k 1e999 2",
        b"put k 0x10 2",
        b"put k 1 9223372036854775808",
        b"put k 1 00000000000000000001",  # 20 digits: valid, but not plain
        b"put caf\xc3\xa9 1 2",  # non-ASCII key: valid, but not plain
    ],
)
def test_anything_unusual_falls_back_to_line_by_line(odd_line: bytes) -> None:
    assert parse_put_block([b"put a 1 1", odd_line, b"put b 2 2"]) is None
    # Alone, as a request-response client sends it (a path of its own).
    assert parse_put_block([odd_line]) is None
    assert parse_put_block(odd_line) is None


def test_a_lone_plain_put_takes_the_fast_path() -> None:
    assert parse_put_block(b"put palm.cpu -0 1501864247") == (["palm.cpu"], [-0.0], [1501864247])
    assert str(parse_put_block(b"put k -0 1")) == "(['k'], [-0.0], [1])"


def test_a_sum_that_overflows_only_falls_back() -> None:
    lines = [b"put a 1e308 1", b"put a 1e308 2"]
    assert parse_put_block(lines) is None
    assert line_by_line(lines) == (["a", "a"], [1e308, 1e308], [1, 2])


tokens = st.sampled_from(
    [
        b"put",
        b"get",
        b"k",
        b"a.b",
        b"*",
        b"1",
        b"-2.5",
        b"1e3",
        b"nan",
        b"inf",
        b"1_0",
        b"0",
        b"9223372036854775807",
        b"9223372036854775808",
        b"\xff",
        b"",
        b"x\ty",
    ]
)
lines = st.lists(tokens, min_size=0, max_size=5).map(b" ".join)


@settings(max_examples=500)
@given(st.lists(lines, min_size=1, max_size=6))
def test_fast_path_never_disagrees_with_the_line_parser(batch: list[bytes]) -> None:
    fast = parse_put_block(batch)
    if fast is not None:
        assert fast == line_by_line(batch)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.from_regex(rb"[!-)+-~][!-~]{0,8}", fullmatch=True),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
            st.integers(0, 2**63 - 1),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_every_plain_put_batch_takes_the_fast_path(points: list[tuple[bytes, float, int]]) -> None:
    batch = [b"put %s %r %d" % (key, value, ts) for key, value, ts in points]
    fast = parse_put_block(batch)
    assert fast is not None
    assert fast == line_by_line(batch)


# Eight plain puts: with them, a batch is large enough to be read as JSON.
PLAIN_BATCH = [b"put a %d.5 %d" % (i, i) for i in range(8)]


def exactly(result: tuple[list[str], list[float], list[int]] | None) -> object:
    """A result with each value as its bits, so that -0.0 differs from 0.0."""
    if result is None:
        return None
    keys, values, timestamps = result
    return keys, [struct.pack("<d", value) for value in values], timestamps


# Tokens float() reads and JSON does not (or reads otherwise), and tokens
# that are several JSON values, or none: the batch reader must read each
# exactly as float() does, or send the batch the slow way.
number_like = st.sampled_from(
    [
        b"-0",
        b"-0.0",
        b"0",
        b"-00",
        b"007",
        b"1.",
        b".5",
        b"+1",
        b"1_0",
        b"1E5",
        b"-1e-400",
        b"1e400",
        b"4.9e-324",
        b"123456789012345678901234567890",
        b"0.1000000000000000055511151231257827",
        b"1,2",
        b"[1]",
        b"[1",
        b"1]",
        b"true",
        b"null",
        b'"1"',
        b"{}",
        b"Infinity",
        b"NaN",
        b"-",
        b"e5",
    ]
)


@settings(max_examples=500)
@given(
    st.lists(
        st.one_of(number_like, st.from_regex(rb"[-+0-9_.eE]{1,12}", fullmatch=True)),
        min_size=1,
        max_size=30,
    )
)
def test_values_are_read_exactly_as_float_reads_them(values: list[bytes]) -> None:
    # At least PLAIN_BATCH lines: a batch that large is read as JSON.
    batch = PLAIN_BATCH + [b"put k%d %s %d" % (i, value, i) for i, value in enumerate(values)]
    fast = parse_put_block(batch)
    if fast is not None:
        assert exactly(fast) == exactly(line_by_line(batch))


@pytest.mark.parametrize("token", [b"-0", b"-0.0", b"1.", b".5", b"+1", b"1_0", b"007"])
def test_a_value_float_reads_and_json_does_not_still_takes_the_fast_path(token: bytes) -> None:
    batch = [*PLAIN_BATCH, b"put b %s 2" % token]
    fast = parse_put_block(batch)
    assert fast is not None
    assert exactly(fast) == exactly(line_by_line(batch))


@pytest.mark.parametrize("token", [b"1,2", b"[1]", b"true", b'"1"', b"Infinity"])
def test_a_value_that_is_json_but_not_a_float_is_refused(token: bytes) -> None:
    assert parse_put_block([*PLAIN_BATCH, b"put b %s 2" % token]) is None


def test_a_timestamp_with_leading_zeros_in_a_large_batch() -> None:
    # JSON has no leading zeros; int() reads them.
    batch = [*PLAIN_BATCH, b"put b 1.5 0042"]
    fast = parse_put_block(batch)
    assert fast is not None
    assert fast[2][-1] == 42
    assert fast == line_by_line(batch)


# Blocks of many puts, as a read brings them: mostly plain (so that the batch
# path reads values and timestamps as JSON), with tokens only an exact
# reader gets right and a few odd lines among them.
_KEYS = st.integers(0, 40).map(lambda n: b"host%d.cpu" % n) | st.sampled_from(
    [b"a,b", b'"q"', b"[1]", b"put"]
)
# (Within 1e300: forty of them cannot add up to an infinity, which sends a
# batch the slow way to find out which value is not finite.)
_JSON_VALUES = st.floats(min_value=-1e300, max_value=1e300).map(
    lambda v: repr(v).encode()
) | st.sampled_from([b"1", b"-0", b"-0.0", b"1E5", b"4.9e-324", b"-1e-400"])
_VALUES = _JSON_VALUES | st.sampled_from([b"1.", b".5", b"+1", b"1_0", b"007"])
_STAMPS = st.integers(0, 2**63 - 1).map(lambda n: b"%d" % n) | st.sampled_from(
    [b"0", b"0042", b"9223372036854775807"]
)
_ODD = st.sampled_from(
    [b"*", b"", b"caf\xc3\xa9", b"nan", b"inf", b"1e999", b"1,2", b"true", b"get", b"x",
     b"9223372036854775808", b"99999999999999999999", b"00000000000000000001", b"-1", b"1.5"]
)  # fmt: skip
_JSON_PUTS = st.tuples(st.just(b"put"), _KEYS, _JSON_VALUES, _STAMPS).map(b" ".join)
_PUTS = st.tuples(st.just(b"put"), _KEYS, _VALUES, _STAMPS).map(b" ".join)
_ODD_PUTS = st.tuples(st.just(b"put") | _ODD, _KEYS | _ODD, _VALUES | _ODD, _STAMPS | _ODD).map(
    b" ".join
) | st.tuples(
    st.lists(_KEYS | _VALUES | _STAMPS | _ODD, max_size=5),
    st.sampled_from([b" ", b"  ", b"\t", b" \r", b"\r"]),
).map(lambda parts: parts[1].join(parts[0]))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_JSON_PUTS, min_size=8, max_size=40) | st.lists(_PUTS, min_size=8, max_size=40),
    st.lists(st.tuples(st.integers(0, 40), _ODD_PUTS), max_size=2),
)
def test_a_block_of_many_puts_reads_as_line_by_line(
    plain: list[bytes], odd: list[tuple[int, bytes]]
) -> None:
    lines = list(plain)
    for where, line in odd:
        lines.insert(where, line)
    fast = parse_put_block(b"\n".join(lines))
    expected = line_by_line(lines)
    if not odd:
        assert fast is not None  # plain puts all take the batch path
    if fast is not None:
        assert exactly(fast) == exactly(expected)


@pytest.mark.parametrize(
    "odd_block",
    [
        b"put a 1\nput 2 3 4 5",  # three fields and five: as many separators as two puts
        b"put a 1 2\n put 1 2",  # a leading space
        b"put a 1 2\nput 1 2 ",  # a trailing space
        b"put a 1 2\nput 1  2",  # a doubled space
        b"put a 1 2\nget a 1 2",
        b"put a 1 2\nput * 1 2",
    ],
)
def test_near_plain_put_blocks_are_refused(odd_block: bytes) -> None:
    assert parse_put_block(odd_block) is None
