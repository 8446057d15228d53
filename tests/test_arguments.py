"""One set of rules for a put's arguments: clients, CLI and HTTP API say the same."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import run_cli

from trio_metrics import Client, ClientError, ServerInfo
from trio_metrics.transport import DEFAULT_MAX_LINE_LENGTH, LineBuffer
from trio_metrics.wire import (
    MAX_KEY_BYTES,
    MAX_PUT_LINE_BYTES,
    ProtocolError,
    Put,
    encode_put_request,
    parse_command,
)

# (key, value, timestamp) and the message a client raises for it.
REFUSED = [
    (("k", math.nan, 1), "value nan is not a finite number"),
    (("k", math.inf, 1), "value inf is not a finite number"),
    (("k", 10**400, 1), "value 1000000000000000000000000000000000000000... (401 digits)"),
    (("k", True, 1), "value True is a bool, not a number"),
    (("k", " 5", 1), "value ' 5' must be one word without whitespace"),
    (
        ("k", "x" * 70_000, 1),
        "value 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (70000 characters)",
    ),
    (("k", 1, -1), "timestamp -1 is outside 0..2**63-1"),
    (("k", 1, 2**63), "timestamp 9223372036854775808 is outside 0..2**63-1"),
    (("k", 1, 1.5), "timestamp 1.5 is not a whole number of seconds"),
    (("k", 1, math.nan), "timestamp nan is not a whole number of seconds"),
    (("k", 1, True), "timestamp True is a bool, not a number"),
    (("k", 1, "1.5"), "timestamp '1.5' is not decimal digits in 0..2**63-1"),
    (("k" * 70_000, 1, 1), f"key of 70000 bytes is longer than the limit of {MAX_KEY_BYTES}"),
    (("a b", 1, 1), "key 'a b' must be one word of printable characters, not '*'"),
    (("*", 1, 1), "key '*' must be one word of printable characters, not '*'"),
    ((7, 1, 1), "key must be a str, not int"),
]


def test_the_line_limit_is_the_servers_default() -> None:
    assert MAX_PUT_LINE_BYTES == DEFAULT_MAX_LINE_LENGTH


@pytest.mark.parametrize(("arguments", "message"), REFUSED)
def test_the_client_names_the_rule(
    threaded_server: ServerInfo, arguments: tuple[object, object, object], message: str
) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        with pytest.raises(ClientError) as refused:
            client.put(*arguments)  # type: ignore[arg-type]
        assert message in str(refused.value)
        assert len(str(refused.value)) < 200  # a long argument is not echoed in full
        client.put("k", 1, 1)  # refused before sending: still in step


def test_whole_float_timestamps_are_taken(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        client.put("k", 1, 7.0)
        assert client.get("k") == {"k": [(7, 1.0)]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "ws.v", " 5"], "value ' 5' must be one word without whitespace"),
        (["put", "k", "nan"], "value 'nan' is not a finite number"),
        (
            ["put", "k" * 65_473, "1"],
            f"key of 65473 bytes is longer than the limit of {MAX_KEY_BYTES}",
        ),
        (["put", "k", "1", "--timestamp", "1.5"], "timestamp '1.5' must be whole unix seconds"),
    ],
)
def test_the_cli_refuses_with_the_same_words_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(*args, "--port", "1")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("trio-metrics put: error: ")
    assert message in line
    assert len(line) < 300


def test_the_cli_refuses_a_line_too_long_for_the_server() -> None:
    done = run_cli("put", "k" * MAX_KEY_BYTES, "1" * 60, "--port", "1")
    assert done.returncode == 2
    assert "put line of 65539 bytes is longer than the limit of 65536" in done.stderr


def _server_takes(line: bytes) -> Put:
    """What the server does with ``line``: its line limit, then its parser."""
    lines = LineBuffer(DEFAULT_MAX_LINE_LENGTH).feed(line)
    if len(lines) != 1 or not isinstance(lines[0], bytes):
        raise ProtocolError("more than one line, or a line too long")
    command = parse_command(lines[0])
    assert isinstance(command, Put)
    return command


# Rules stricter than the server's parser, each for a reason of its own: a
# bool is not meant as 1, a fraction would be cut, and a longer key could
# not be read back with a get line or posted over HTTP.
_OWN_RULES = ("is a bool", "not a whole number", f"limit of {MAX_KEY_BYTES}")


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
)
_values = st.one_of(_numbers, _numbers.map(str), st.text(max_size=30))
_timestamps = st.one_of(
    st.integers(min_value=-10, max_value=2**64),
    st.floats(),
    st.booleans(),
    st.text(alphabet="0123456789.- ", max_size=22),
)
_keys = st.one_of(
    st.text(min_size=1, max_size=20),
    st.integers(min_value=MAX_KEY_BYTES - 2, max_value=MAX_KEY_BYTES + 2).map("k".__mul__),
)


@settings(max_examples=400, deadline=None)
@given(key=_keys, value=_values, timestamp=_timestamps)
def test_what_the_client_takes_the_server_takes(key: str, value: object, timestamp: object) -> None:
    try:
        line = encode_put_request(key, value, timestamp)
    except ProtocolError as exc:
        # Refused: the server would refuse it too, or one of our own rules says why.
        naive = f"put {key} {value} {timestamp}\n".encode("utf-8", "surrogatepass")
        try:
            _server_takes(naive)
        except (ProtocolError, AssertionError):
            return
        if any(ch.isspace() for ch in f"{key}{value}{timestamp}"):
            # Whitespace splits or pads tokens: the server would read another
            # point, or an argument the CLI refuses too (`put k ' 5'`).
            return
        assert any(rule in str(exc) for rule in _OWN_RULES), str(exc)
        return
    put = _server_takes(line)
    assert put.key == key
    assert put.value == float(str(value))
    assert put.timestamp == int(timestamp)  # type: ignore[call-overload]
