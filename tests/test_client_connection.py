"""ClientConnection, the client's side of the protocol, without any I/O.

Every expected value is written out literally or built by an independent
model (a dict, ``sorted``), never taken from the code under test.
"""

from __future__ import annotations

import contextlib
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_metrics.wire import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    ConnectionStateError,
    ForeignAnswerError,
    GetRequest,
    MalformedAnswerError,
    OutOfStepError,
    ProtocolError,
    PutRequest,
    Request,
    ServerClosedError,
    ServerRefusedError,
    StatsRequest,
)

GET_ANSWER = b"ok\npalm.cpu 2.0 1501864248\neardrum.cpu 3.0 1\npalm.cpu 10.6 1501864247\n\n"
GET_RESULT = {
    "palm.cpu": [(1501864247, 10.6), (1501864248, 2.0)],
    "eardrum.cpu": [(1, 3.0)],
}
STATS_ANSWER = b"ok\ntrio_metrics.connections 3.0 9\nother 1.0 9\ntrio_metrics.keys 0.0 9\n\n"
ERROR = b"error\nwrong command\n\n"
MALFORMED = [
    b"\n\n",
    b"oops\n\n",
    b"OK\n\n",
    b"ok\nkey 1.0\n\n",
    b"ok\nkey 1.0 2 extra\n\n",
    b"ok\nkey 1.0 1.5\n\n",
    b"ok\nkey one 1\n\n",
    b"ok\nk nan 1\n\n",
    b"ok\nk 1.0 9223372036854775808\n\n",
    b"ok\n\xff 1.0 2\n\n",
]


def take_result(conn: ClientConnection, request: Request[object], *chunks: bytes) -> object:
    """Feed ``chunks`` one by one; the answer must be complete only after the last."""
    for index, chunk in enumerate(chunks):
        conn.receive_data(chunk)
        if index < len(chunks) - 1:
            assert conn.next_result(request) is NEED_DATA
    return conn.next_result(request)


def sent(conn: ClientConnection, request: Request[object]) -> bytes:
    data = conn.send(request)
    assert conn.state is ClientState.AWAITING_ANSWER
    return data


# --- requests out, results in ---------------------------------------------------


def test_a_new_connection_is_idle() -> None:
    conn = ClientConnection()
    assert conn.state is ClientState.IDLE
    assert conn.broken_reason is None


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (PutRequest("palm.cpu", 10.6, 1501864247), b"put palm.cpu 10.6 1501864247\n"),
        (PutRequest("load", 301, 3), b"put load 301 3\n"),
        (PutRequest("text", "1e3", 0), b"put text 1e3 0\n"),
        (GetRequest("palm.cpu"), b"get palm.cpu\n"),
        (GetRequest("*"), b"get *\n"),
        (StatsRequest(), b"stats\n"),
    ],
)
def test_send_gives_the_exact_bytes(request_: Request[object], expected: bytes) -> None:
    assert sent(ClientConnection(), request_) == expected


@pytest.mark.parametrize(
    ("request_", "answer", "expected"),
    [
        (PutRequest("k", 1, 1), b"ok\n\n", None),
        (GetRequest("palm.cpu"), GET_ANSWER, GET_RESULT),
        (GetRequest("nothing"), b"ok\n\n", {}),
        (StatsRequest(), STATS_ANSWER, {"connections": 3, "keys": 0}),
        (StatsRequest(), b"ok\n\n", {}),
    ],
)
def test_each_request_gets_its_result(
    request_: Request[object], answer: bytes, expected: object
) -> None:
    conn = ClientConnection()
    sent(conn, request_)
    assert take_result(conn, request_, answer) == expected
    assert conn.state is ClientState.IDLE


def test_nothing_received_needs_data() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    assert conn.next_result(request) is NEED_DATA
    assert conn.state is ClientState.AWAITING_ANSWER


@pytest.mark.parametrize("split", range(1, len(GET_ANSWER)))
def test_a_get_answer_split_at_every_byte(split: int) -> None:
    conn = ClientConnection()
    request = GetRequest("palm.cpu")
    sent(conn, request)
    assert take_result(conn, request, GET_ANSWER[:split], GET_ANSWER[split:]) == GET_RESULT
    assert conn.state is ClientState.IDLE


@pytest.mark.parametrize("answer", [b"ok\n\n", ERROR, GET_ANSWER, MALFORMED[3]])
def test_answers_one_byte_at_a_time(answer: bytes) -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    chunks = [answer[i : i + 1] for i in range(len(answer))]
    with contextlib.suppress(ServerRefusedError, MalformedAnswerError):
        take_result(conn, request, *chunks)
    assert conn.state is ClientState.IDLE


def test_many_requests_in_turn_on_one_connection() -> None:
    conn = ClientConnection()
    for n in range(3):
        put = PutRequest(f"k{n}", n, n)
        assert sent(conn, put) == f"put k{n} {n} {n}\n".encode()
        assert take_result(conn, put, b"ok\n\n") is None
        get = GetRequest(f"k{n}")
        sent(conn, get)
        answer = f"ok\nk{n} {float(n)!r} {n}\n\n".encode()
        assert take_result(conn, get, answer) == {f"k{n}": [(n, float(n))]}


# --- answers that are errors ----------------------------------------------------


@pytest.mark.parametrize("request_", [PutRequest("k", 1, 1), GetRequest("k"), StatsRequest()])
def test_an_error_answer_raises_and_stays_in_step(request_: Request[object]) -> None:
    conn = ClientConnection()
    sent(conn, request_)
    with pytest.raises(ServerRefusedError, match=r"^wrong command$"):
        take_result(conn, request_, b"err", b"or\nwrong command\n", b"\n")
    assert conn.state is ClientState.IDLE
    get = GetRequest("k")
    sent(conn, get)
    assert take_result(conn, get, b"ok\nk 1.0 1\n\n") == {"k": [(1, 1.0)]}


@pytest.mark.parametrize("answer", MALFORMED)
@pytest.mark.parametrize("request_", [PutRequest("k", 1, 1), GetRequest("k"), StatsRequest()])
def test_a_malformed_answer_raises_and_stays_in_step(
    request_: Request[object], answer: bytes
) -> None:
    conn = ClientConnection()
    sent(conn, request_)
    with pytest.raises(MalformedAnswerError):
        take_result(conn, request_, answer)
    assert conn.state is ClientState.IDLE
    put = PutRequest("k", 1, 1)
    sent(conn, put)
    assert take_result(conn, put, b"ok\n\n") is None


def test_a_put_answered_with_data_lines_is_malformed() -> None:
    conn = ClientConnection()
    put = PutRequest("k", 1, 1)
    sent(conn, put)
    with pytest.raises(MalformedAnswerError, match="server answered a put with data lines"):
        take_result(conn, put, b"ok\nk 1.0 1\n\n")
    assert conn.state is ClientState.IDLE


# --- out of step ------------------------------------------------------------------


@pytest.mark.parametrize("extra", [b"o", b"ok\n\n", b"\n", b"error\nwrong command\n\n"])
@pytest.mark.parametrize("answer", [b"ok\n\n", GET_ANSWER, ERROR])
def test_bytes_beyond_the_answer_break_the_connection(answer: bytes, extra: bytes) -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    with pytest.raises(OutOfStepError, match="more than one answer"):
        take_result(conn, request, answer + extra)
    assert conn.state is ClientState.BROKEN
    assert conn.broken_reason == "out of step with its answers"
    with pytest.raises(ConnectionStateError, match=r"^out of step with its answers$"):
        conn.send(GetRequest("k"))


def test_a_malformed_answer_with_bytes_beyond_it_is_out_of_step() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    with pytest.raises(OutOfStepError) as caught:
        take_result(conn, request, b"oops\n\nok\n\n")
    assert isinstance(caught.value.__cause__, MalformedAnswerError)
    assert conn.state is ClientState.BROKEN


def test_bytes_with_no_request_in_flight_break_the_connection() -> None:
    conn = ClientConnection()
    conn.receive_data(b"ok\n\n")
    assert conn.state is ClientState.BROKEN
    assert conn.broken_reason == "out of step with its answers"


def test_a_late_answer_after_a_complete_one_breaks_the_connection() -> None:
    conn = ClientConnection()
    put = PutRequest("k", 1, 1)
    sent(conn, put)
    assert take_result(conn, put, b"ok\n\n") is None
    conn.receive_data(b"ok\n\n")
    assert conn.state is ClientState.BROKEN
    with pytest.raises(ConnectionStateError, match="out of step"):
        conn.send(put)


# --- the server closing ----------------------------------------------------------


@pytest.mark.parametrize("split", range(len(GET_ANSWER)))
def test_the_server_closing_mid_answer_breaks_the_connection(split: int) -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    if split:  # b"" would be the close itself
        conn.receive_data(GET_ANSWER[:split])
    assert conn.next_result(request) is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ServerClosedError, match=r"^server closed the connection$"):
        conn.next_result(request)
    assert conn.state is ClientState.BROKEN
    assert conn.broken_reason == "broken: the server closed it"
    with pytest.raises(ConnectionStateError, match=r"^broken: the server closed it$"):
        conn.send(request)


def test_the_server_closing_while_idle_breaks_the_connection() -> None:
    conn = ClientConnection()
    conn.receive_data(b"")
    assert conn.state is ClientState.BROKEN
    with pytest.raises(ConnectionStateError, match="the server closed it"):
        conn.send(StatsRequest())


def test_an_answer_complete_before_the_close_is_still_a_result() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    conn.receive_data(b"ok\nk 1.0 1\n\n")
    conn.receive_data(b"")
    assert conn.next_result(request) == {"k": [(1, 1.0)]}
    assert conn.state is ClientState.BROKEN
    assert conn.broken_reason == "broken: the server closed it"


# --- requests the state refuses ---------------------------------------------------


def test_a_request_while_another_awaits_its_answer_is_refused() -> None:
    conn = ClientConnection()
    first = GetRequest("k")
    sent(conn, first)
    conn.receive_data(b"ok\nk 1.0")
    with pytest.raises(ConnectionStateError, match=r"^awaiting the answer to another request$"):
        conn.send(PutRequest("k", 2, 2))
    with pytest.raises(ConnectionStateError, match="awaiting the answer to another request"):
        conn.next_result(GetRequest("k"))
    # The refused request changed nothing: the first one still gets its answer.
    assert take_result(conn, first, b" 1\n\n") == {"k": [(1, 1.0)]}


def test_asking_for_a_result_with_no_request_in_flight_is_refused() -> None:
    conn = ClientConnection()
    with pytest.raises(ConnectionStateError, match=r"^idle$"):
        conn.next_result(GetRequest("k"))


@pytest.mark.parametrize(
    "request_",
    [
        PutRequest("two words", 1, 1),
        PutRequest("new\nline", 1, 1),
        PutRequest("", 1, 1),
        PutRequest("k", "1 2", 1),
        PutRequest("k", "1\nget *", 1),
        PutRequest("k", 1, "soon"),  # type: ignore[arg-type]
        GetRequest("a b"),
        GetRequest(""),
    ],
)
def test_a_request_that_cannot_be_sent_changes_nothing(request_: Request[object]) -> None:
    conn = ClientConnection()
    with pytest.raises(ProtocolError) as caught:
        conn.send(request_)
    assert not isinstance(caught.value, ConnectionStateError)
    assert conn.state is ClientState.IDLE
    assert sent(conn, GetRequest("k")) == b"get k\n"


def test_message_of_a_request_that_cannot_be_sent() -> None:
    with pytest.raises(
        ProtocolError, match=r"^key 'a b' must be one word of printable characters, not '\*'$"
    ):
        ClientConnection().send(GetRequest("a b"))


def test_a_failed_request_breaks_the_connection() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    sent(conn, request)
    conn.receive_data(b"ok\n")
    conn.request_failed()
    assert conn.state is ClientState.BROKEN
    assert conn.broken_reason == "broken by an interrupted request"
    # The rest of the lost answer arrives later: it is not taken for anything.
    conn.receive_data(b"\n")
    with pytest.raises(ConnectionStateError, match=r"^broken by an interrupted request$"):
        conn.send(request)
    with pytest.raises(ConnectionStateError, match=r"^broken by an interrupted request$"):
        conn.next_result(request)


def test_request_failed_with_nothing_in_flight_does_nothing() -> None:
    conn = ClientConnection()
    conn.request_failed()
    assert conn.state is ClientState.IDLE


def test_request_failed_after_close_leaves_it_closed() -> None:
    conn = ClientConnection()
    sent(conn, StatsRequest())
    conn.close()
    conn.request_failed()
    assert conn.state is ClientState.CLOSED


@pytest.mark.parametrize("before", ["idle", "awaiting", "broken", "closed"])
def test_a_closed_connection_refuses_everything(before: str) -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    if before == "awaiting":
        sent(conn, request)
    elif before == "broken":
        conn.receive_data(b"")
    elif before == "closed":
        conn.close()
    conn.close()
    assert conn.state is ClientState.CLOSED
    assert conn.broken_reason is None
    conn.receive_data(b"ok\n\n")
    with pytest.raises(ConnectionStateError, match=r"^closed$"):
        conn.send(request)
    with pytest.raises(ConnectionStateError, match=r"^closed$"):
        conn.next_result(request)
    assert conn.state is ClientState.CLOSED


# --- hypothesis: random answers, random pieces, against a model ---------------------

keys = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=8
).filter(lambda key: key != "*")
values = st.floats(allow_nan=False, allow_infinity=False)
timestamps = st.integers(0, 2**63 - 1)


def model_metrics(points: list[tuple[str, float, int]]) -> dict[str, list[tuple[int, float]]]:
    """What a get must give: keys in first-seen order, each list sorted by timestamp."""
    order = list(dict.fromkeys(key for key, _, _ in points))
    return {
        key: sorted(((t, v) for k, v, t in points if k == key), key=lambda p: p[0]) for key in order
    }


@settings(max_examples=200)
@given(points=st.lists(st.tuples(keys, values, timestamps), max_size=6), data=st.data())
def test_get_answers_in_random_pieces_match_a_model(
    points: list[tuple[str, float, int]], data: st.DataObject
) -> None:
    answer = ("ok\n" + "".join(f"{k} {v!r} {t}\n" for k, v, t in points) + "\n").encode()
    cuts = sorted(data.draw(st.sets(st.integers(1, len(answer) - 1), max_size=6)))
    chunks = [answer[a:b] for a, b in pairwise([0, *cuts, len(answer)])]
    conn = ClientConnection()
    request = GetRequest("*")
    sent(conn, request)
    assert take_result(conn, request, *chunks) == model_metrics(points)
    assert conn.state is ClientState.IDLE


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[Request[object], bytes, object]:
    """A request, an answer to it, and the result or exception class it must give."""
    kind = draw(st.sampled_from(["put", "get", "stats"]))
    outcome = draw(st.sampled_from(["ok", "error", "malformed"]))
    request: Request[object]
    if kind == "put":
        request = PutRequest("k", 1, 1)
    elif kind == "get":
        request = GetRequest("*")
    else:
        request = StatsRequest()
    if outcome == "error":
        return request, ERROR, ServerRefusedError
    if outcome == "malformed":
        return request, draw(st.sampled_from(MALFORMED)), MalformedAnswerError
    if kind == "put":
        return request, b"ok\n\n", None
    if kind == "get":
        points = draw(st.lists(st.tuples(keys, values, timestamps), max_size=3))
        text = "ok\n" + "".join(f"{k} {v!r} {t}\n" for k, v, t in points) + "\n"
        return request, text.encode(), model_metrics(points)
    counters = draw(st.dictionaries(st.sampled_from(["a", "b.c", "keys"]), st.integers(0, 99)))
    text = "ok\n" + "".join(f"trio_metrics.{n} {float(c)!r} 5\n" for n, c in counters.items())
    return request, (text + "\n").encode(), counters


class ConnectionAgainstModel(RuleBasedStateMachine):
    """Requests, answers in random pieces (some with bytes too many), closes and failures."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = ClientConnection()
        self.state = ClientState.IDLE
        self.reason: str | None = None
        self.request: Request[object] = StatsRequest()
        self.wire = b""
        self.answer_length = 0
        self.expected: object = None

    def refusal(self) -> str:
        if self.state is ClientState.AWAITING_ANSWER:
            return "awaiting the answer to another request"
        if self.state is ClientState.BROKEN:
            assert self.reason is not None
            return self.reason
        return "closed"

    def break_(self, reason: str) -> None:
        self.state, self.reason = ClientState.BROKEN, reason

    @rule(exchange=exchanges(), extra=st.sampled_from([b"", b"", b"ok\n\n", b"x"]))
    def send(self, exchange: tuple[Request[object], bytes, object], extra: bytes) -> None:
        request, answer, expected = exchange
        if self.state is not ClientState.IDLE:
            with pytest.raises(ConnectionStateError, match=f"^{self.refusal()}$"):
                self.conn.send(request)
            return
        assert self.conn.send(request) == request.encode()
        self.state = ClientState.AWAITING_ANSWER
        self.request, self.expected = request, expected
        self.wire, self.answer_length = answer + extra, len(answer)

    @precondition(lambda self: self.wire)
    @rule(size=st.one_of(st.integers(1, 40), st.none()))
    def receive_some(self, size: int | None) -> None:
        if size is None:  # up to the end of the answer, or what follows it
            size = self.answer_length if self.answer_length > 0 else len(self.wire)
        chunk, self.wire = self.wire[:size], self.wire[size:]
        self.answer_length -= len(chunk)
        self.conn.receive_data(chunk)
        if self.state is ClientState.IDLE:
            self.break_("out of step with its answers")
        if self.state is not ClientState.AWAITING_ANSWER:
            return
        if self.answer_length > 0:
            assert self.conn.next_result(self.request) is NEED_DATA
        elif self.answer_length < 0:
            with pytest.raises(OutOfStepError):
                self.conn.next_result(self.request)
            self.break_("out of step with its answers")
        else:
            self.check_outcome()

    def check_outcome(self) -> None:
        self.state = ClientState.IDLE
        if isinstance(self.expected, type):
            with pytest.raises(self.expected):
                self.conn.next_result(self.request)
        else:
            assert self.conn.next_result(self.request) == self.expected

    @rule()
    def server_closes(self) -> None:
        self.wire = b""
        self.conn.receive_data(b"")
        if self.state is ClientState.AWAITING_ANSWER:
            with pytest.raises(ServerClosedError):
                self.conn.next_result(self.request)
        if self.state in (ClientState.AWAITING_ANSWER, ClientState.IDLE):
            self.break_("broken: the server closed it")

    @rule()
    def request_fails(self) -> None:
        self.conn.request_failed()
        if self.state is ClientState.AWAITING_ANSWER:
            self.break_("broken by an interrupted request")

    @rule()
    def close(self) -> None:
        self.conn.close()
        self.state, self.reason = ClientState.CLOSED, None

    @invariant()
    def state_matches_the_model(self) -> None:
        assert self.conn.state is self.state
        assert self.conn.broken_reason == (
            self.reason if self.state is ClientState.BROKEN else None
        )


TestConnectionAgainstModel = ConnectionAgainstModel.TestCase
TestConnectionAgainstModel.settings = settings(max_examples=300, stateful_step_count=30)


def test_an_http_answer_is_told_by_its_start() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    conn.send(request)
    conn.receive_data(b"HTTP/1.1 400 Bad")
    with pytest.raises(ForeignAnswerError, match=r"^server answered HTTP$"):
        conn.next_result(request)
    assert conn.state is ClientState.BROKEN
    assert conn.heard_from_server
