"""The extension words ping, keys, range and delete, sans-IO: parsing, encoding, answers.

Expected bytes and values are written out literally; the hypothesis
property checks that the client's encoder and the server's parser agree.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.wire import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    Delete,
    DeleteRequest,
    Keys,
    KeysRequest,
    MalformedAnswerError,
    Ping,
    PingRequest,
    ProtocolError,
    Range,
    RangeRequest,
    Request,
    ServerRefusedError,
    encode_delete_request,
    encode_deleted_answer,
    encode_key_lines,
    encode_keys_request,
    encode_range_request,
    is_valid_pattern,
    parse_command,
)

# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"ping", Ping()),
        (b"  ping \r", Ping()),
        (b"keys *", Keys("*")),
        (b"keys web.{a,b}[0-9].?*", Keys("web.{a,b}[0-9].?*")),
        (b"keys\tpalm.cpu", Keys("palm.cpu")),
        (b"range palm.cpu 1 2", Range("palm.cpu", 1, 2)),
        (b"range web.* 007 7", Range("web.*", 7, 7)),
        (b"range k 0 9223372036854775807", Range("k", 0, 2**63 - 1)),
        (b"delete palm.cpu", Delete("palm.cpu")),
        (b"delete *.cpu", Delete("*.cpu")),
        ("keys café.*".encode(), Keys("café.*")),
    ],
)
def test_extension_words_parse(line: bytes, command: object) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    "line",
    [
        b"ping x",
        b"PING",
        b"keys",
        b"keys a b",
        b"keys web.[a-",
        b"keys {a,b",
        b"keys a}",
        b"keys [z-a]",
        b"keys \xff",
        b"keys a\x0bb",
        b"range k 1",
        b"range k 1 2 3",
        b"range k 2 1",
        b"range k -1 2",
        b"range k 1.5 2",
        b"range k 1 1e3",
        b"range k 1 9223372036854775808",
        b"range [ 1 2",
        b"delete",
        b"delete a b",
        b"delete {",
        b"Delete k",
        b"keys " + b"a" * 1025,
    ],
)
def test_wrong_uses_of_extension_words_are_wrong_commands(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_command(line)


def test_commands_validate_their_fields() -> None:
    with pytest.raises(ProtocolError):
        Keys("a b")
    with pytest.raises(ProtocolError):
        Range("k", 3, 2)
    with pytest.raises(ProtocolError):
        Range("k", -1, 2)
    with pytest.raises(ProtocolError):
        Delete("")
    assert Keys("web.*").glob().matches("web.cpu")
    assert not Keys("*").glob().matches("web.cpu")
    assert Range("a.b", 1, 2).glob().matches("a.b")
    assert Delete("{a,b}").glob().matches("b")
    assert is_valid_pattern("*") and not is_valid_pattern("a\tb")


# --- answers ---------------------------------------------------------------------------


def test_deleted_answer_is_in_the_get_format() -> None:
    assert encode_deleted_answer(3, 1700000000) == b"ok\ntrio_metrics.deleted 3.0 1700000000\n\n"
    assert encode_deleted_answer(0, 5) == b"ok\ntrio_metrics.deleted 0.0 5\n\n"


def test_key_lines_are_get_lines() -> None:
    assert encode_key_lines(["a", "web.cpu"]) == b"a 0.0 0\nweb.cpu 0.0 0\n"
    assert encode_key_lines([]) == b""


# --- requests --------------------------------------------------------------------------


def test_request_bytes() -> None:
    assert PingRequest().encode() == b"ping\n"
    assert encode_keys_request("web.*") == b"keys web.*\n"
    assert encode_range_request("palm.cpu", 10, 20) == b"range palm.cpu 10 20\n"
    assert encode_range_request("k", True, 2.9) == b"range k 1 2\n"
    assert encode_delete_request("*.cpu") == b"delete *.cpu\n"


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode_keys_request("a b"),
        lambda: encode_keys_request("a\nping"),
        lambda: encode_keys_request("web.[a-"),
        lambda: encode_range_request("k", 2, 1),
        lambda: encode_range_request("k", -1, 1),
        lambda: encode_range_request("k", "x", 1),  # type: ignore[arg-type]
        lambda: encode_range_request("k", 0, 2**63),
        lambda: encode_delete_request(""),
        lambda: encode_delete_request("a\tb"),
    ],
)
def test_requests_the_server_would_refuse_are_refused_before_sending(make: object) -> None:
    with pytest.raises(ProtocolError):
        make()  # type: ignore[operator]


def run(request: Request[object], answer: bytes) -> object:
    conn = ClientConnection()
    conn.send(request)
    conn.receive_data(answer[:3])
    assert conn.next_result(request) is NEED_DATA
    conn.receive_data(answer[3:])
    result = conn.next_result(request)
    assert conn.state is ClientState.IDLE
    return result


def test_connection_results_of_the_new_requests() -> None:
    assert run(PingRequest(), b"ok\n\n") is None
    assert run(KeysRequest("*"), b"ok\nb 0.0 0\na 0.0 0\n\n") == ["b", "a"]
    assert run(KeysRequest("*"), b"ok\n\n") == []
    assert run(RangeRequest("k", 1, 3), b"ok\nk 2.0 3\nk 1.0 1\nj 5.0 2\n\n") == {
        "k": [(1, 1.0), (3, 2.0)],
        "j": [(2, 5.0)],
    }
    assert run(DeleteRequest("k"), b"ok\ntrio_metrics.deleted 4.0 17\n\n") == 4


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (PingRequest(), b"ok\nk 1.0 1\n\n"),
        (DeleteRequest("k"), b"ok\n\n"),
        (DeleteRequest("k"), b"ok\nother 1.0 1\n\n"),
        (DeleteRequest("k"), b"ok\ntrio_metrics.deleted 1.5 1\n\n"),
        (DeleteRequest("k"), b"ok\ntrio_metrics.deleted -1.0 1\n\n"),
        (DeleteRequest("k"), b"ok\ntrio_metrics.deleted 1.0 1\ntrio_metrics.deleted 1.0 1\n\n"),
    ],
)
def test_malformed_answers_to_new_requests_leave_the_connection_usable(
    request_: Request[object], answer: bytes
) -> None:
    conn = ClientConnection()
    conn.send(request_)
    conn.receive_data(answer)
    with pytest.raises(MalformedAnswerError):
        conn.next_result(request_)
    assert conn.state is ClientState.IDLE


def test_an_old_server_refuses_the_new_words() -> None:
    conn = ClientConnection()
    request = KeysRequest("*")
    conn.send(request)
    conn.receive_data(b"error\nwrong command\n\n")
    with pytest.raises(ServerRefusedError):
        conn.next_result(request)
    assert conn.state is ClientState.IDLE


def test_a_refused_request_sends_nothing_and_changes_nothing() -> None:
    conn = ClientConnection()
    with pytest.raises(ProtocolError):
        conn.send(RangeRequest("k", 5, 1))
    assert conn.state is ClientState.IDLE


# --- the encoder and the parser agree ------------------------------------------------------

# Any text at all (glob characters included), so that both sides' refusals are tested too.
patterns = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="ab.*?[]{},!-", min_size=1, max_size=12),
)
stamps = st.one_of(st.integers(min_value=-5, max_value=2**63 + 5), st.integers(0, 100))


def encoded_or_none(encode: object, *args: object) -> bytes | None:
    try:
        return encode(*args)  # type: ignore[operator, no-any-return]
    except ProtocolError:
        return None


@settings(max_examples=300)
@given(pattern=patterns)
def test_keys_and_delete_encoder_and_parser_agree(pattern: str) -> None:
    for encode, command in ((encode_keys_request, Keys), (encode_delete_request, Delete)):
        line = encoded_or_none(encode, pattern)
        if line is None:
            with pytest.raises(ProtocolError):
                command(pattern)
            if pattern.split() == [pattern]:
                # One token as the server reads it: the server refuses it too.
                with pytest.raises(ProtocolError):
                    parse_command(f"{command.__name__.lower()} {pattern}".encode())
        else:
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            assert parse_command(line) == command(pattern)


@settings(max_examples=300)
@given(pattern=patterns, start=stamps, end=stamps)
def test_range_encoder_and_parser_agree(pattern: str, start: int, end: int) -> None:
    line = encoded_or_none(encode_range_request, pattern, start, end)
    if line is None:
        with pytest.raises(ProtocolError):
            Range(pattern, start, end)
    else:
        assert parse_command(line) == Range(pattern, start, end)
