"""Tests for trio_metrics.wire: the sans-IO wire format of PROTOCOL.md.

Every expected value is written out literally or built by an independent model
(f-strings over ``repr(float)``), never taken from the code under test.
"""

from __future__ import annotations

import math
import random
import struct
from array import array
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.wire import (
    ALL_KEYS,
    ERROR_ANSWER,
    MAX_TIMESTAMP,
    OK_ANSWER,
    ErrorAnswer,
    Get,
    OkAnswer,
    ProtocolError,
    Put,
    ResponseParser,
    encode_get_answer,
    encode_get_request,
    encode_point_lines,
    encode_put_request,
    is_valid_key,
    parse_command,
    parse_timestamp,
    parse_value,
)


def same_float(a: float, b: float) -> bool:
    """Bit-for-bit float equality (tells -0.0 from 0.0)."""
    return struct.pack("<d", a) == struct.pack("<d", b)


# --- constants ---------------------------------------------------------------


def test_ok_answer_is_exact_bytes() -> None:
    assert OK_ANSWER == b"ok\n\n"


def test_error_answer_is_exact_bytes() -> None:
    assert ERROR_ANSWER == b"error\nwrong command\n\n"


def test_max_timestamp_and_all_keys_constants() -> None:
    assert MAX_TIMESTAMP == 9223372036854775807
    assert ALL_KEYS == "*"


# --- parse_command: the commands -------------------------------------------


def test_parse_put_from_example_session() -> None:
    command = parse_command(b"put palm.cpu 10.6 1501864247")
    assert isinstance(command, Put)
    assert command.key == "palm.cpu"
    assert command.value == 10.6
    assert command.timestamp == 1501864247
    assert type(command.value) is float
    assert type(command.timestamp) is int


def test_parse_put_integer_value_is_stored_as_float() -> None:
    command = parse_command(b"put palm.cpu 2 1501864248")
    assert isinstance(command, Put)
    assert command.value == 2.0
    assert type(command.value) is float


def test_parse_get_single_key() -> None:
    command = parse_command(b"get palm.cpu")
    assert isinstance(command, Get)
    assert command.key == "palm.cpu"
    assert command.selects_all is False


def test_parse_get_star_selects_all() -> None:
    command = parse_command(b"get *")
    assert isinstance(command, Get)
    assert command.key == "*"
    assert command.selects_all is True


def test_parse_get_double_star_is_an_ordinary_key() -> None:
    command = parse_command(b"get **")
    assert command == Get("**")
    assert isinstance(command, Get)
    assert command.selects_all is False


def test_keys_are_case_sensitive() -> None:
    assert parse_command(b"get Palm.CPU") == Get("Palm.CPU")
    assert parse_command(b"get Palm.CPU") != parse_command(b"get palm.cpu")


# --- parse_command: whitespace --------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"put k 1.5 7",
        b"put  k   1.5    7",
        b"put\tk\t1.5\t7",
        b"put \t k\t\t 1.5 \t7",
        b"  put k 1.5 7",
        b"\tput k 1.5 7",
        b"put k 1.5 7  ",
        b"put k 1.5 7\t",
        b" \t put k 1.5 7 \t ",
        b"put k 1.5 7\r",
        b"put k 1.5 7 \r",
        b"put k 1.5 7\n",
        b"put k 1.5 7\r\n",
    ],
)
def test_put_tokens_separated_by_runs_of_spaces_and_tabs(line: bytes) -> None:
    command = parse_command(line)
    assert isinstance(command, Put)
    assert (command.key, command.value, command.timestamp) == ("k", 1.5, 7)


@pytest.mark.parametrize(
    "line",
    [
        b"get key ",
        b"get  key",
        b"\tget\tkey\t",
        b"  get key  ",
        b"get key\r",
        b"get key\r\n",
        b"get \tkey \r\n",
        b"\x0cget key\x0b",
        b"\rget key",
    ],
)
def test_get_with_surrounding_whitespace(line: bytes) -> None:
    assert parse_command(line) == Get("key")


@pytest.mark.parametrize("line", [b"", b" ", b"\t", b" \t  \t", b"\r", b"\n", b"\r\n", b"  \r\n"])
def test_blank_line_is_not_a_command(line: bytes) -> None:
    assert parse_command(line) is None


@pytest.mark.parametrize(
    "line",
    [
        # Only spaces and tabs separate tokens: other ASCII whitespace inside a
        # line is part of a token, which then is not a valid command word/key/
        # timestamp.
        b"get\x0bkey",
        b"get\x0ckey",
        b"put\x0bkey 1 2",
        b"put key\x0c 1 2",
        b"put key 1\r2",
        b"put key\r1 2",
    ],
)
def test_other_ascii_whitespace_does_not_separate_tokens(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_command(line)


# --- parse_command: wrong commands --------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"PUT k 1 2",
        b"Put k 1 2",
        b"pUt k 1 2",
        b"puts k 1 2",
        b"pu k 1 2",
        b"GET k",
        b"Get k",
        b"gets k",
        b"got palm.cpu",
        b"getk",
        b"get*",
        b"drop k",
        b"k",
        b"*",
        b"ok",
        b"error",
    ],
)
def test_unknown_or_misspelt_command_word_is_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_command(line)


@pytest.mark.parametrize(
    "line",
    [
        b"get",
        b"get ",
        b"get a b",
        b"get * *",
        b"get * x",
        b"put",
        b"put a",
        b"put a 1",
        b"put a 1 2 3",
        b"put a 1 2 3 4",
    ],
)
def test_wrong_number_of_tokens_is_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_command(line)


def test_wrong_command_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_command(b"got key")


# --- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("put café 1 2", "café"),
        ("put 温度.сервер 1 2", "温度.сервер"),
        ("put ключ 1 2", "ключ"),
        ("put a/b:c-d_e 1 2", "a/b:c-d_e"),
        ("put ** 1 2", "**"),
        ("put *a 1 2", "*a"),
        ("put 🌡 1 2", "🌡"),
    ],
)
def test_put_accepts_printable_keys_including_non_ascii(line: str, key: str) -> None:
    command = parse_command(line.encode("utf-8"))
    assert isinstance(command, Put)
    assert command.key == key


def test_get_accepts_non_ascii_key() -> None:
    assert parse_command("get café".encode()) == Get("café")


@pytest.mark.parametrize(
    "line",
    [
        b"put * 1 2",
        b"put \xff 1 2",
        b"put caf\xe9 1 2",
        b"put \xc3 1 2",
        b"get \xff\xfe",
        b"get caf\xe9",
        b"put a\x00b 1 2",
        b"put \x00 1 2",
        b"get a\x00",
        b"get \x00",
        b"put a\x1bb 1 2",
        b"put a\x7f 1 2",
        b"get a\x01",
        b"get a\x1c",
        "put a\u00a0b 1 2".encode(),
        "put a\u2028b 1 2".encode(),
        "get a\u3000b".encode(),
        "get a\u200bb".encode(),
        "get a\u0085".encode(),
    ],
)
def test_invalid_keys_are_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_command(line)


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("palm.cpu", True),
        ("café", True),
        ("**", True),
        ("*", False),
        ("", False),
        ("a b", False),
        ("a\tb", False),
        ("a\nb", False),
        ("a\rb", False),
        ("a\x00b", False),
        ("a\x7f", False),
        ("a\u00a0b", False),
        ("a\u2029", False),
    ],
)
def test_is_valid_key(key: str, valid: bool) -> None:
    assert is_valid_key(key) is valid


def test_put_and_get_objects_validate_their_fields() -> None:
    with pytest.raises(ProtocolError):
        Put("*", 1.0, 1)
    with pytest.raises(ProtocolError):
        Put("a b", 1.0, 1)
    with pytest.raises(ProtocolError):
        Put("k", math.nan, 1)
    with pytest.raises(ProtocolError):
        Put("k", math.inf, 1)
    with pytest.raises(ProtocolError):
        Put("k", 1.0, -1)
    with pytest.raises(ProtocolError):
        Put("k", 1.0, 2**63)
    with pytest.raises(ProtocolError):
        Get("a b")
    with pytest.raises(ProtocolError):
        Get("")
    assert Get("*").selects_all


# --- values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"10", 10.0),
        (b"10.6", 10.6),
        (b"-3", -3.0),
        (b"1e3", 1000.0),
        (b"1E3", 1000.0),
        (b"1_000", 1000.0),
        (b".5", 0.5),
        (b"5.", 5.0),
        (b"+1", 1.0),
        (b"0", 0.0),
        (b"00010", 10.0),
        (b"-2.5e-3", -0.0025),
        (b"4200000", 4200000.0),
        (b"1e+20", 1e20),
        (b"5e-324", 5e-324),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        ("\u0661\u0662".encode(), 12.0),  # Arabic-Indic digits one, two
        ("\uff11\uff12".encode(), 12.0),  # fullwidth digits
    ],
)
def test_valid_values(token: bytes, expected: float) -> None:
    value = parse_value(token)
    assert type(value) is float
    assert value == expected
    command = parse_command(b"put k " + token + b" 1")
    assert isinstance(command, Put)
    assert command.value == expected


def test_negative_zero_value_keeps_its_sign() -> None:
    value = parse_value(b"-0")
    assert value == 0.0
    assert math.copysign(1.0, value) == -1.0


@pytest.mark.parametrize(
    "token",
    [
        b"nan",
        b"NaN",
        b"-nan",
        b"+nan",
        b"inf",
        b"-inf",
        b"+inf",
        b"INF",
        b"infinity",
        b"Infinity",
        b"-Infinity",
        b"1e999",
        b"-1e999",
        b"1e309",
        b"abc",
        b"",
        b"0x10",
        b"1,5",
        b"1.2.3",
        b"--1",
        b"1__000",
        b"_1",
        b"1_",
        b"1e",
        b"e3",
        b"\xff",
        "²".encode(),
        b"1\x00",
    ],
)
def test_invalid_values(token: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_value(token)
    if token:
        with pytest.raises(ProtocolError):
            parse_command(b"put k " + token + b" 1")


# --- timestamps -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"0", 0),
        (b"1", 1),
        (b"1501864247", 1501864247),
        (b"9223372036854775807", 2**63 - 1),
        (b"0001", 1),
        (b"000", 0),
        (b"09223372036854775807", 2**63 - 1),
        (b"0" * 40 + b"5", 5),
    ],
)
def test_valid_timestamps(token: bytes, expected: int) -> None:
    timestamp = parse_timestamp(token)
    assert type(timestamp) is int
    assert timestamp == expected
    command = parse_command(b"put k 1 " + token)
    assert isinstance(command, Put)
    assert command.timestamp == expected


def test_timestamp_with_thousands_of_leading_zeros_is_valid() -> None:
    # Decimal digits only, value 1 <= 2**63-1: valid per PROTOCOL.md, and the
    # line (5009 bytes) is well under the default 64 KiB line limit.
    token = b"0" * 5000 + b"1"
    assert parse_timestamp(token) == 1
    assert parse_command(b"put k 1 " + token) == Put("k", 1.0, 1)


@pytest.mark.parametrize(
    "token",
    [
        b"9223372036854775808",
        b"18446744073709551616",
        b"99999999999999999999",
        b"1" * 5000,
        b"1e3",
        b"-1",
        b"-0",
        b"+1",
        b"1.0",
        b"1.",
        b".1",
        b"1_000",
        b"0x10",
        b"abc",
        b"",
        b" 1",
        b"1 ",
        "²".encode(),
        "\u0661\u0662".encode(),  # Arabic-Indic digits
        "\uff11".encode(),  # fullwidth digit one
        b"\xff",
    ],
)
def test_invalid_timestamps(token: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_timestamp(token)
    if token and b" " not in token:
        with pytest.raises(ProtocolError):
            parse_command(b"put k 1 " + token)


# --- encode_get_answer ------------------------------------------------------------


def test_encode_get_answer_several_keys_and_points() -> None:
    answer = encode_get_answer(
        [
            ("palm.cpu", [1501864247, 1501864248], [10.6, 2.0]),
            ("eardrum.memory", [1, 2, 3], [4200000.0, 1e20, -0.0]),
            ("café", [0, 9223372036854775807], [10.0, 0.1]),
        ]
    )
    assert answer == (
        b"ok\n"
        b"palm.cpu 10.6 1501864247\n"
        b"palm.cpu 2.0 1501864248\n"
        b"eardrum.memory 4200000.0 1\n"
        b"eardrum.memory 1e+20 2\n"
        b"eardrum.memory -0.0 3\n"
        b"caf\xc3\xa9 10.0 0\n"
        b"caf\xc3\xa9 0.1 9223372036854775807\n"
        b"\n"
    )


def test_encode_get_answer_from_typed_arrays() -> None:
    answer = encode_get_answer([("k", array("q", [5, 6]), array("d", [1e-7, 5e-324]))])
    assert answer == b"ok\nk 1e-07 5\nk 5e-324 6\n\n"


def reference_lines(key: str, timestamps: list[int], values: list[float]) -> bytes:
    """PROTOCOL.md's data lines, written the obvious way: repr of each value."""
    return "".join(f"{key} {v!r} {t}\n" for t, v in zip(timestamps, values, strict=True)).encode()


any_finite = st.floats(allow_nan=False, allow_infinity=False)
# Values near where repr switches to an exponent (1e-4 and 1e16), and the
# decimal-looking numbers metrics mostly are.
edge_values = st.sampled_from(
    [1e-4, 9.999999999999999e-05, 1e-5, 0.00012, 1e16, 9999999999999998.0, 1e15, -0.0, 0.0]
)
decimal_values = st.builds(
    lambda whole, digits: whole / 10**digits,
    st.integers(-(10**17), 10**17),
    st.integers(0, 20),
)


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(
            st.integers(0, MAX_TIMESTAMP), st.one_of(any_finite, edge_values, decimal_values)
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_encoded_lines_are_exactly_repr(points: list[tuple[int, float]], typed: bool) -> None:
    timestamps = [t for t, _ in points]
    values = [v for _, v in points]
    expected = reference_lines("k.\u00e9", timestamps, values)
    if typed:
        assert (
            encode_point_lines("k.\u00e9", array("q", timestamps), array("d", values)) == expected
        )
    else:
        assert encode_point_lines("k.\u00e9", timestamps, values) == expected


def test_encoded_lines_of_random_doubles_are_exactly_repr() -> None:
    # 20,000 doubles from random bit patterns: every exponent, every digit count.
    rng = random.Random(20261201)
    values: list[float] = []
    while len(values) < 20_000:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            values.append(value)
    timestamps = list(range(len(values)))
    for start in range(0, len(values), 1000):
        piece = slice(start, start + 1000)
        assert encode_point_lines("k", timestamps[piece], values[piece]) == reference_lines(
            "k", timestamps[piece], values[piece]
        )


def test_encoding_refuses_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError):
        encode_point_lines("k", [1, 2], [1.0])


def test_encode_get_answer_integer_value_is_shown_as_float() -> None:
    # PROTOCOL.md: a value is printed as repr(float(value)); 10 is shown as 10.0.
    assert encode_get_answer([("k", [1], [10])]) == b"ok\nk 10.0 1\n\n"


@pytest.mark.parametrize(
    "series",
    [[], [("k", [], [])], [("a", [], []), ("b", [], [])]],
)
def test_encode_get_answer_without_points_is_plain_ok(
    series: list[tuple[str, list[int], list[float]]],
) -> None:
    assert encode_get_answer(series) == b"ok\n\n"


# --- request encoders ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "timestamp", "expected"),
    [
        ("load", 301, 3, b"put load 301 3\n"),
        ("load", 301.0, 3, b"put load 301.0 3\n"),
        ("palm.cpu", 10.6, 1501864247, b"put palm.cpu 10.6 1501864247\n"),
        ("k", "1e3", 0, b"put k 1e3 0\n"),
        ("k", -0.5, 2**63 - 1, b"put k -0.5 9223372036854775807\n"),
        ("k", 1, 3.0, b"put k 1 3\n"),
        ("k", 1, "17", b"put k 1 17\n"),
        ("café", 1.5, 2, b"put caf\xc3\xa9 1.5 2\n"),
    ],
)
def test_encode_put_request(key: str, value: object, timestamp: object, expected: bytes) -> None:
    assert encode_put_request(key, value, timestamp) == expected


@pytest.mark.parametrize(
    "key",
    [
        "a b",
        "a\tb",
        "a\nb",
        "a\n",
        "\nput x 1 2",
        "a\r\nget *",
        " a",
        "a ",
        "",
        "a\x0bb",
        "a\u2028b",
    ],
)
def test_encode_put_request_refuses_key_with_whitespace(key: str) -> None:
    with pytest.raises(ProtocolError):
        encode_put_request(key, 1, 1)


@pytest.mark.parametrize("value", ["1 2", "1\n", "1\nput x 1 2", "\t1", "", " ", "1\u0085"])
def test_encode_put_request_refuses_value_with_whitespace(value: str) -> None:
    with pytest.raises(ProtocolError):
        encode_put_request("k", value, 1)


@pytest.mark.parametrize(
    "timestamp", ["abc", "1.5", "", None, object(), math.nan, math.inf, 3.9, -1, True, b"1"]
)
def test_encode_put_request_refuses_non_integer_timestamp(timestamp: object) -> None:
    with pytest.raises(ProtocolError):
        encode_put_request("k", 1, timestamp)


@pytest.mark.parametrize(
    ("key", "expected"),
    [("palm.cpu", b"get palm.cpu\n"), ("*", b"get *\n"), ("café", b"get caf\xc3\xa9\n")],
)
def test_encode_get_request(key: str, expected: bytes) -> None:
    assert encode_get_request(key) == expected


@pytest.mark.parametrize("key", ["a b", "a\n", "\tk", "k\r\nput x 1 2", ""])
def test_encode_get_request_refuses_key_with_whitespace(key: str) -> None:
    with pytest.raises(ProtocolError):
        encode_get_request(key)


# --- ResponseParser -------------------------------------------------------------------

STREAM = (
    b"ok\n\n"
    b"error\nwrong command\n\n"
    b"ok\npalm.cpu 10.6 1501864247\npalm.cpu 2.0 1501864248\neardrum.memory 4200000.0 3\n\n"
    b"ok\n\n"
    b"ok\ncaf\xc3\xa9 -0.0 0\n\n"
)
STREAM_ANSWERS = [
    OkAnswer(()),
    ErrorAnswer("wrong command"),
    OkAnswer(
        (
            ("palm.cpu", 10.6, 1501864247),
            ("palm.cpu", 2.0, 1501864248),
            ("eardrum.memory", 4200000.0, 3),
        )
    ),
    OkAnswer(()),
    OkAnswer((("café", -0.0, 0),)),
]


def drain(parser: ResponseParser) -> list[object]:
    answers: list[object] = []
    while (answer := parser.next_answer()) is not None:
        answers.append(answer)
    return answers


def feed_chunks(chunks: list[bytes]) -> list[object]:
    parser = ResponseParser()
    answers: list[object] = []
    for chunk in chunks:
        parser.feed(chunk)
        answers += drain(parser)
    assert parser.buffered == 0
    return answers


def test_parser_ok_answer() -> None:
    parser = ResponseParser()
    parser.feed(b"ok\n\n")
    assert parser.next_answer() == OkAnswer(())
    assert parser.next_answer() is None


def test_parser_error_answer() -> None:
    parser = ResponseParser()
    parser.feed(b"error\nwrong command\n\n")
    answer = parser.next_answer()
    assert answer == ErrorAnswer("wrong command")
    assert parser.next_answer() is None


def test_parser_get_answer_with_points() -> None:
    parser = ResponseParser()
    parser.feed(b"ok\npalm.cpu 10.6 1501864247\npalm.cpu 2.0 1501864248\n\n")
    answer = parser.next_answer()
    assert answer == OkAnswer((("palm.cpu", 10.6, 1501864247), ("palm.cpu", 2.0, 1501864248)))
    assert isinstance(answer, OkAnswer)
    assert all(type(v) is float and type(t) is int for _, v, t in answer.points)


def test_parser_whole_stream_in_one_feed() -> None:
    assert feed_chunks([STREAM]) == STREAM_ANSWERS


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_parser_stream_split_at_every_position(split: int) -> None:
    assert feed_chunks([STREAM[:split], STREAM[split:]]) == STREAM_ANSWERS


def test_parser_stream_one_byte_at_a_time() -> None:
    assert feed_chunks([STREAM[i : i + 1] for i in range(len(STREAM))]) == STREAM_ANSWERS


def test_parser_returns_none_until_answer_complete() -> None:
    parser = ResponseParser()
    for chunk in (b"o", b"k", b"\n", b"k 1.0 2", b"\n"):
        parser.feed(chunk)
        assert parser.next_answer() is None
    parser.feed(b"\n")
    assert parser.next_answer() == OkAnswer((("k", 1.0, 2),))


def test_parser_accepts_bytearray() -> None:
    parser = ResponseParser()
    parser.feed(bytearray(b"ok\n\n"))
    assert parser.next_answer() == OkAnswer(())


def test_parser_buffered_counts_unreturned_bytes() -> None:
    parser = ResponseParser()
    assert parser.buffered == 0
    parser.feed(b"ok\n\nerr")
    assert parser.buffered == 7
    assert parser.next_answer() == OkAnswer(())
    assert parser.buffered == 3
    assert parser.next_answer() is None
    assert parser.buffered == 3
    parser.feed(b"or\nwrong command\n\n")
    assert parser.buffered == 21
    assert parser.next_answer() == ErrorAnswer("wrong command")
    assert parser.buffered == 0


@pytest.mark.parametrize(
    "bad",
    [
        b"\n\n",
        b"k 1.0 2\n\n",
        b"hello\n\n",
        b"OK\n\n",
        b"ok \n\n",
        b"ok\nk 1.0\n\n",
        b"ok\nk\n\n",
        b"ok\nk 1.0 2 3\n\n",
        b"ok\nk 1.0 2\nk 2.0\n\n",
        b"ok\nk 1.0 1.5\n\n",
        b"ok\nk 1.0 -1\n\n",
        b"ok\nk 1.0 abc\n\n",
        "ok\nk 1.0 \u0661\n\n".encode(),
        b"ok\nk abc 2\n\n",
        b"ok\nk 1,5 2\n\n",
        b"ok\n\xff 1.0 2\n\n",
        b"ok\nk 1.0 " + b"1" * 5000 + b"\n\n",
    ],
)
def test_parser_malformed_answer_raises_and_is_consumed(bad: bytes) -> None:
    parser = ResponseParser()
    parser.feed(bad + b"ok\nk 1.5 3\n\n")
    with pytest.raises(ProtocolError):
        parser.next_answer()
    assert parser.buffered == len(b"ok\nk 1.5 3\n\n")
    assert parser.next_answer() == OkAnswer((("k", 1.5, 3),))
    assert parser.next_answer() is None
    assert parser.buffered == 0


# --- hypothesis -------------------------------------------------------------------------

# Printable non-whitespace characters: letters, marks, numbers, punctuation, symbols.
keys = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S"]), min_size=1, max_size=12
).filter(lambda key: key != "*")
finite_floats = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
timestamps = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=300)
@given(key=keys, value=finite_floats, timestamp=timestamps)
def test_round_trip_put_then_get_answer(key: str, value: float, timestamp: int) -> None:
    assert is_valid_key(key)
    request = encode_put_request(key, repr(value), timestamp)
    assert request == f"put {key} {value!r} {timestamp}\n".encode()

    command = parse_command(request)
    assert isinstance(command, Put)
    assert command.key == key
    assert command.value == value
    assert math.copysign(1.0, command.value) == math.copysign(1.0, value)
    assert same_float(command.value, value)
    assert command.timestamp == timestamp

    answer = encode_get_answer([(key, [timestamp], [value])])
    assert answer == f"ok\n{key} {value!r} {timestamp}\n\n".encode()
    parser = ResponseParser()
    parser.feed(answer)
    parsed = parser.next_answer()
    assert isinstance(parsed, OkAnswer)
    [(got_key, got_value, got_timestamp)] = parsed.points
    assert got_key == key
    assert got_value == value
    assert same_float(got_value, value)
    assert type(got_timestamp) is int
    assert got_timestamp == timestamp
    assert parser.buffered == 0


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, object]:
    """One answer as bytes, with the parsed answer a model expects."""
    kind = draw(st.sampled_from(["put", "error", "get"]))
    if kind == "put":
        return b"ok\n\n", OkAnswer(())
    if kind == "error":
        return b"error\nwrong command\n\n", ErrorAnswer("wrong command")
    points = draw(st.lists(st.tuples(keys, finite_floats, timestamps), max_size=4))
    text = "ok\n" + "".join(f"{k} {v!r} {t}\n" for k, v, t in points) + "\n"
    return text.encode(), OkAnswer(tuple(points))


@settings(max_examples=200)
@given(items=st.lists(answers(), max_size=6), data=st.data())
def test_parser_chunking_does_not_change_answers(
    items: list[tuple[bytes, object]], data: st.DataObject
) -> None:
    stream = b"".join(raw for raw, _ in items)
    expected = [answer for _, answer in items]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in pairwise(bounds)]
    assert b"".join(chunks) == stream
    assert feed_chunks(chunks) == expected
