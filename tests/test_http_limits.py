"""The HTTP side's limits over real sockets: connections, backlog, HTTP/2, timeouts, bodies."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from http_requests import get_json, request
from net import NETWORK_TIMEOUT, receive_until_eof

from trio_metrics.http import HttpInfo, HttpLimits, serve_http
from trio_metrics.storage import MetricStore
from trio_metrics.transport import LeanSocketStream, ServerStats

StartHttp = Callable[..., Awaitable[HttpInfo]]


@pytest.fixture
def start_http(nursery: trio.Nursery) -> StartHttp:
    """Start serve_http on a free port of 127.0.0.1 with the given limits."""

    async def start(**limits: Any) -> HttpInfo:
        info: HttpInfo = await nursery.start(
            lambda task_status: serve_http(
                "127.0.0.1",
                0,
                store=MetricStore(),
                stats=ServerStats(),
                limits=HttpLimits(**limits),
                task_status=task_status,
            )
        )
        return info

    return start


async def _answer_of(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            return await receive_until_eof(stream)


# --- connections --------------------------------------------------------------


async def test_connections_past_the_limit_get_a_503_at_once(start_http: StartHttp) -> None:
    """HTTP connections were not limited at all (--max-connections is the main port's)."""
    info = await start_http(max_connections=3)
    held = [await trio.open_tcp_stream("127.0.0.1", info.port) for _ in range(3)]
    await trio.sleep(0.1)  # accepted and counted
    started = trio.current_time()
    answer = await _answer_of(info.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    assert trio.current_time() - started < 1.0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nretry-after: 1" in head and b"\r\nconnection: close" in head
    assert json.loads(body) == {"error": "too many HTTP connections; try again later"}
    assert info.api.http_stats.connections_refused == 1
    # One closes: a new connection is served again.
    await held.pop().aclose()
    await trio.sleep(0.1)
    assert await get_json(info.port, "/healthz") == {"status": "ok"}
    await trio.sleep(0.1)  # that connection is closed and uncounted
    _, _, metrics = await request(info.port, "GET", "/metrics")
    assert b"\ntrio_metrics_http_connections_refused_total 1\n" in metrics
    assert b"\ntrio_metrics_http_connections_open 3\n" in metrics  # two held and this one
    for stream in held:
        await stream.aclose()


def _connect_many(port: int, count: int) -> list[socket.socket]:
    connected = []
    try:
        for _ in range(count):
            # A SYN dropped by a full backlog is retried after 1 s: over this.
            connected.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
    except BaseException:
        for sock in connected:
            sock.close()
        raise
    return connected


async def test_a_burst_of_connections_waits_in_the_backlog(start_http: StartHttp) -> None:
    """The listen backlog was hypercorn's 100: 1,000 quick connects took 9.2 s of SYN retries.

    The event loop is kept busy (here: blocked) while 300 clients connect,
    as a loaded server would be; each connect must complete in the backlog.
    """
    info = await start_http()
    connected = _connect_many(info.port, 300)
    try:
        await trio.sleep(0.2)
        assert await get_json(info.port, "/healthz") == {"status": "ok"}
    finally:
        for sock in connected:
            sock.close()


# --- HTTP/2 -------------------------------------------------------------------

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def test_http2_with_prior_knowledge_is_not_offered(start_http: StartHttp) -> None:
    """Cleartext HTTP/2 was accepted: 100 streams of 1 MiB per connection."""
    info = await start_http()
    answer = await _answer_of(info.port, _H2_PREFACE + _H2_SETTINGS)
    assert answer.startswith(b"HTTP/1.1 505 "), answer[:60]
    assert b"this server speaks HTTP/1.1 only" in answer
    assert b"\x00\x00\x06\x04" not in answer  # no SETTINGS frame of a server


async def test_an_h2c_upgrade_is_served_as_http11(start_http: StartHttp) -> None:
    info = await start_http()
    answer = await _answer_of(
        info.port,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings, close\r\n"
        b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:60]
    assert answer.endswith(b'{"status":"ok"}')


# --- timeouts -----------------------------------------------------------------


async def _trickle(stream: trio.SocketStream, first: bytes, then: bytes) -> None:
    """Send ``first``, then ``then`` every 50 ms, until the server closes."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(first)
        while True:
            await trio.sleep(0.05)
            await stream.send_all(then)


async def _seconds_until_closed(port: int, first: bytes, then: bytes) -> tuple[float, bytes]:
    """How long the server keeps a trickling client, and what it answers."""
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, trio.open_nursery() as nursery:
            started = trio.current_time()
            nursery.start_soon(_trickle, stream, first, then)
            try:
                answer = await receive_until_eof(stream)
            except trio.BrokenResourceError:
                # Closed with a byte of ours unread: the kernel resets rather than ends.
                answer = b""
            nursery.cancel_scope.cancel()
            return trio.current_time() - started, answer


async def test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout(
    start_http: StartHttp,
) -> None:
    info = await start_http(header_timeout=0.5)
    seconds, answer = await _seconds_until_closed(
        info.port, b"GET /healthz HTTP/1.1\r\nx-slow: ", b"a"
    )
    assert answer == b""
    assert 0.4 < seconds < 2.0


async def test_a_kept_alive_connection_left_idle_is_closed_at_the_header_timeout(
    start_http: StartHttp,
) -> None:
    info = await start_http(header_timeout=0.5)
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            for _ in range(2):  # the timer is set again after each answer
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                    answer += await stream.receive_some()
                assert answer.startswith(b"HTTP/1.1 200 ")
                await trio.sleep(0.3)
            started = trio.current_time()
            assert await receive_until_eof(stream) == b""
            assert 0.1 < trio.current_time() - started < 1.5


async def test_a_request_served_longer_than_the_header_timeout_is_not_cut(
    start_http: StartHttp,
) -> None:
    # The header timeout runs while a connection waits for a request, not
    # while its body arrives (that has the body timeout).
    info = await start_http(header_timeout=0.3, body_timeout=5)
    body = b'[{"key": "slow.body", "value": 1.5, "timestamp": 1500000000}]'
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            await stream.send_all(_post_head(len(body)))
            for byte in body[:-1]:
                await stream.send_all(bytes([byte]))
                await trio.sleep(1.0 / len(body))
            await stream.send_all(body[-1:])
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 2"), answer


async def test_an_answer_leaves_in_one_send(
    start_http: StartHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Head and body in one system call, not one per h11 event; a streamed
    # answer's head goes with its first chunk.
    sent: list[bytes] = []
    send_all = LeanSocketStream.send_all

    async def recording(self: LeanSocketStream, data: bytes) -> None:
        sent.append(bytes(data))
        await send_all(self, data)

    monkeypatch.setattr(LeanSocketStream, "send_all", recording)
    info = await start_http()
    await get_json(info.port, "/healthz")
    assert len(sent) == 1, sent
    assert sent[0].startswith(b"HTTP/1.1 200 ") and sent[0].endswith(b"}")
    sent.clear()
    await get_json(info.port, "/api/v1/keys")  # streamed, chunk by chunk
    assert sent[0].startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked\r\n" in sent[0]
    assert not sent[0].endswith(b"\r\n\r\n"), sent  # a chunk came with the head
    assert sent[-1].endswith(b"0\r\n\r\n")


class _IoWaits(trio.abc.Instrument):
    """Counts the run loop's waits for I/O: one per pass that had nothing to run."""

    def __init__(self) -> None:
        self.count = 0

    def before_io_wait(self, timeout: float) -> None:
        self.count += 1


async def test_a_request_costs_two_passes_of_the_run_loop(start_http: StartHttp) -> None:
    # hypercorn's own path took five: a task started per idle period, a
    # scheduler pass for each message through its memory channels and for
    # its send lock. The client runs in a thread, outside the loop counted.
    info = await start_http()
    requests = 200
    waits = _IoWaits()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT)
        try:
            for _ in range(20):  # the connection and its first answers
                connection.request("GET", "/healthz")
                connection.getresponse().read()
            trio.from_thread.run_sync(trio.lowlevel.add_instrument, waits)
            for _ in range(requests):
                connection.request("GET", "/healthz")
                assert connection.getresponse().read().endswith(b"}")
            trio.from_thread.run_sync(trio.lowlevel.remove_instrument, waits)
        finally:
            connection.close()

    await trio.to_thread.run_sync(client)
    assert waits.count <= 2.5 * requests, waits.count / requests


async def test_a_body_of_many_chunks_in_one_write_reaches_the_application_whole(
    start_http: StartHttp,
) -> None:
    # Its pieces pass the application's queue (10 messages) faster than the
    # application takes them: the server then waits for room.
    info = await start_http()
    body = json.dumps(
        [{"key": f"chunks.k{i}", "value": i + 0.5, "timestamp": 1500000000} for i in range(40)]
    ).encode()
    pieces = [body[i : i + 16] for i in range(0, len(body), 16)]
    assert len(pieces) > 40
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    answer = await _answer_of(
        info.port,
        b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + chunked,
    )
    head, _, answer_body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert json.loads(answer_body) == {"stored": 40}


# --- bodies -------------------------------------------------------------------


def _post_head(length: int) -> bytes:
    return b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % length


async def _answer_within(stream: trio.SocketStream, seconds: float) -> bytes:
    """What the server answers on ``stream`` before it closes, within ``seconds``."""
    answer = b""
    with trio.fail_after(seconds):
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


async def test_bodies_past_the_budget_get_a_503_at_once(start_http: StartHttp) -> None:
    """1,000 stalled 1 MiB bodies held 1.1 GiB: nothing bounded bodies over all connections."""
    info = await start_http(max_body_bytes=1000, body_budget_bytes=2500, body_timeout=30)
    stalled = []
    for _ in range(2):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        await stream.send_all(_post_head(1000) + b'[{"key":')  # and then nothing
        stalled.append(stream)
    await trio.sleep(0.1)
    assert info.api._bodies.budget.held == 2000
    refused = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with refused:
        await refused.send_all(_post_head(1000))
        answer = await _answer_within(refused, 1.0)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nretry-after: 1" in head and b"\r\nconnection: close" in head
    assert "too many request bodies" in json.loads(body)["error"]
    # A small body still fits beside the stalled ones.
    small = json.dumps([{"key": "k", "value": 1}]).encode()
    code, _, reply = await request(info.port, "POST", "/api/v1/points", small)
    assert (code, json.loads(reply)) == (200, {"stored": 1})
    _, _, metrics = await request(info.port, "GET", "/metrics")
    assert b"\ntrio_metrics_http_body_bytes_held 2000\n" in metrics
    assert b"\ntrio_metrics_http_bodies_over_budget_total 1\n" in metrics
    # The stalled clients leave: their share is given back.
    for stream in stalled:
        await stream.aclose()
    await trio.sleep(0.1)
    assert info.api._bodies.budget.held == 0


async def test_a_chunked_body_past_the_budget_is_cut_with_a_503(start_http: StartHttp) -> None:
    info = await start_http(max_body_bytes=1000, body_budget_bytes=1000)
    stalled = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with stalled:
        await stalled.send_all(_post_head(900))
        await trio.sleep(0.1)
        answer = await _answer_of(
            info.port,
            b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"40\r\n" + b" " * 64 + b"\r\n" + b"40\r\n" + b" " * 64 + b"\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:60]


async def test_a_body_trickled_past_the_body_timeout_gets_a_408(start_http: StartHttp) -> None:
    """A client sending a byte now and then kept its body (and the read timeout) alive."""
    info = await start_http(body_timeout=0.5)
    seconds, answer = await _seconds_until_closed(info.port, _post_head(1000) + b"[", b" ")
    assert 0.4 < seconds < 2.0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "request body not complete within 0.5 s"}
    assert info.api.http_stats.requests[("/api/v1/points", 408)] == 1
