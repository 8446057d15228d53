"""Model-based fuzzing: random command streams against a real server and a dict.

A hypothesis state machine drives one real connection to a real server (in
a thread, over 127.0.0.1) with random valid and invalid commands, pipelined
in random batches and cut into random pieces on the wire, and checks every
answer byte for byte against a plain reference model. A second machine does
the same for the clients' ResponseParser with random valid and malformed
answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from conftest import server_in_thread
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from net import NETWORK_TIMEOUT, recv_until

from trio_metrics import ServerInfo
from trio_metrics.wire import ErrorAnswer, OkAnswer, ProtocolError, ResponseParser

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"

KEYS = ["cpu", "mem", "disk.io", "Cpu", "café"]
keys = st.sampled_from(KEYS)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(10**6), 10**6).map(float),
)
timestamps = st.one_of(st.integers(0, 20), st.integers(0, 2**63 - 1))
spaces = st.sampled_from([b" ", b"  ", b"\t", b" \t "])
line_ends = st.sampled_from([b"\n", b"\r\n"])


class Reference:
    """The protocol's store, as simply as it can be said."""

    def __init__(self) -> None:
        self.series: dict[str, dict[int, float]] = {}

    def put(self, key: str, value: float, ts: int) -> bytes:
        self.series.setdefault(key, {})[ts] = value
        return OK

    def get(self, key: str) -> bytes:
        selected = self.series.items() if key == "*" else [(key, self.series.get(key, {}))]
        lines = [
            f"{k} {points[ts]!r} {ts}\n".encode() for k, points in selected for ts in sorted(points)
        ]
        return b"ok\n" + b"".join(lines) + b"\n" if lines else OK


@st.composite
def commands(draw: st.DrawFn) -> tuple[bytes, str, tuple[object, ...]]:
    """One command line (with its ending) and what the model should do with it."""
    sep = draw(spaces)
    end = draw(line_ends)
    kind = draw(st.sampled_from(["put", "put", "get", "get*", "blank", "bad"]))
    if kind == "put":
        key, value, ts = draw(keys), draw(values), draw(timestamps)
        value_text = draw(st.sampled_from([repr(value), f"{value:.17g}"]))
        line = sep.join([b"put", key.encode(), value_text.encode(), str(ts).encode()])
        return draw(st.sampled_from([b"", b" "])) + line + end, "put", (key, value, ts)
    if kind == "get":
        key = draw(keys)
        return b"get" + sep + key.encode() + end, "get", (key,)
    if kind == "get*":
        return b"get" + sep + b"*" + end, "get", ("*",)
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t \t"])) + end, "blank", ()
    bad = draw(
        st.sampled_from(
            [
                b"got cpu",
                b"GET cpu",
                b"get",
                b"get a b",
                b"put cpu 1",
                b"put cpu nan 1",
                b"put cpu 1e999 1",
                b"put cpu 1 -1",
                b"put cpu 1 1.0",
                b"put * 1 1",
                b"put cpu 1 9223372036854775808",
                b"get \xc3\x28",
                b"put k\x00 1 1",
                b"\x00\x01\x02",
                b"put cpu\x0b1 1",
            ]
        )
    )
    return bad + end, "bad", ()


class ServerAgainstModel(RuleBasedStateMachine):
    """One connection, random pipelined batches, every answer checked."""

    port: int

    def __init__(self) -> None:
        super().__init__()
        self.model = Reference()
        self.sock: socket.socket | None = None

    @initialize()
    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), NETWORK_TIMEOUT)
        # The pieces of a cut command go out at once, not held back by Nagle.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Each run starts from an empty server: the previous run's points
        # are still there, so they are read back into the model first.
        self.sock.sendall(b"get *\n")
        answer = recv_until(self.sock, b"\n\n")
        for line in answer.decode().split("\n")[1:-2]:
            key, value, ts = line.split(" ")
            self.model.put(key, float(value), int(ts))

    @rule(batch=st.lists(commands(), min_size=1, max_size=12), data=st.data())
    def send_batch(
        self, batch: list[tuple[bytes, str, tuple[object, ...]]], data: st.DataObject
    ) -> None:
        assert self.sock is not None
        expected = b""
        for _, kind, args in batch:
            if kind == "put":
                key, value, ts = args
                expected += self.model.put(str(key), float(str(value)), int(str(ts)))
            elif kind == "get":
                expected += self.model.get(str(args[0]))
            elif kind == "bad":
                expected += ERROR
        wire = b"".join(line for line, _, _ in batch)
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=4)))
        for start, stop in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            self.sock.sendall(wire[start:stop])
        if expected:
            received = b""
            while len(received) < len(expected):
                chunk = self.sock.recv(65536)
                assert chunk, "server closed the connection"
                received += chunk
            assert received == expected

    @invariant()
    def still_in_step(self) -> None:
        # A blank-only batch got no answer; a probe shows nothing is pending.
        if self.sock is not None:
            self.sock.sendall(b"get no.such.key\n")
            assert recv_until(self.sock, b"\n\n") == OK

    def teardown(self) -> None:
        if self.sock is not None:
            self.sock.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerInfo]:
    with server_in_thread() as info:
        yield info


def test_server_matches_the_reference_model(fuzz_server: ServerInfo) -> None:
    ServerAgainstModel.port = fuzz_server.port
    run = ServerAgainstModel.TestCase
    run.settings = settings(
        max_examples=60,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()


# --- the clients' answer parser ---------------------------------------------

points = st.tuples(
    st.sampled_from(KEYS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 2**63 - 1),
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, object]:
    """An answer's bytes and what parsing it must give (or ProtocolError)."""
    kind = draw(st.sampled_from(["ok", "points", "error", "malformed"]))
    if kind == "ok":
        return OK, OkAnswer(())
    if kind == "points":
        pts = draw(st.lists(points, min_size=1, max_size=5))
        body = b"".join(f"{k} {v!r} {t}\n".encode() for k, v, t in pts)
        return b"ok\n" + body + b"\n", OkAnswer(tuple(pts))
    if kind == "error":
        message = draw(st.sampled_from(["wrong command", "something else"]))
        return f"error\n{message}\n\n".encode(), ErrorAnswer(message)
    bad = draw(
        st.sampled_from(
            [
                b"nope\n\n",
                b"ok\ncpu 1.0\n\n",
                b"ok\ncpu 1.0 2 3\n\n",
                b"ok\ncpu x 2\n\n",
                b"ok\ncpu 1.0 2.5\n\n",
                b"ok\ncpu 1.0 -2\n\n",
                b"\xff\n\n",
            ]
        )
    )
    return bad, ProtocolError


class ParserAgainstModel(RuleBasedStateMachine):
    """Random answers, fed in random pieces, parsed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.parser = ResponseParser()
        self.pending: list[object] = []

    @rule(answer=answers(), data=st.data(), eager=st.booleans())
    def feed(self, answer: tuple[bytes, object], data: st.DataObject, eager: bool) -> None:
        wire, expected = answer
        self.pending.append(expected)
        cuts = sorted(data.draw(st.sets(st.integers(1, len(wire) - 1), max_size=3)))
        for start, stop in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            self.parser.feed(wire[start:stop])
            if eager:
                # Asking between pieces exercises the resumed search.
                self.drain()

    @rule()
    def drain(self) -> None:
        while True:
            try:
                answer = self.parser.next_answer()
            except ProtocolError:
                assert self.pending.pop(0) is ProtocolError
                continue
            if answer is None:
                break
            assert answer == self.pending.pop(0)

    @invariant()
    def nothing_complete_is_left_unread(self) -> None:
        # Every fed answer is complete, so after a drain nothing is pending.
        self.drain()
        assert self.pending == []
        assert self.parser.buffered == 0


TestParserAgainstModel = ParserAgainstModel.TestCase
TestParserAgainstModel.settings = settings(max_examples=150, deadline=None)
