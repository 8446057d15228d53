# mypy: disable-error-code="func-returns-value"
# (the tests check that put() returns None, as the client contract says)
"""The three clients (Client, AsyncClient, ThreadClient) against real peers on 127.0.0.1.

Each is a thin driver of the sans-IO ClientConnection (tests/test_client_connection.py);
here they meet real sockets, and trio's in-memory streams where those let a
test say exactly when bytes move.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from conftest import both_stores, server_in_thread
from net import NETWORK_TIMEOUT, recv_until

from trio_metrics import (
    AsyncClient,
    Client,
    ClientError,
    ServerInfo,
    ThreadClient,
    open_client,
    serve,
)
from trio_metrics.client import map_exceptions
from trio_metrics.wire import (
    ConnectionStateError,
    MalformedAnswerError,
    OutOfStepError,
    ProtocolError,
    ServerClosedError,
    ServerRefusedError,
)


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Reply:
    """What a scripted peer does for one request line."""

    data: bytes = b""
    then: str = "stay"  # or "close" (a FIN), or "reset" (an RST)


@contextmanager
def script_peer(replies: list[Reply]) -> Iterator[int]:
    """A real TCP peer that answers the n-th request line with ``replies[n]``.

    After the last reply it reads until the client goes. It stands in for
    the servers ours cannot be made to be: wrong, late or vanishing.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(NETWORK_TIMEOUT)

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(NETWORK_TIMEOUT)
            with contextlib.suppress(OSError):
                follow_script(conn, list(replies))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(NETWORK_TIMEOUT)


def follow_script(conn: socket.socket, replies: list[Reply]) -> None:
    received = b""
    while data := conn.recv(65536):
        received += data
        while replies and b"\n" in received:
            _, received = received.split(b"\n", 1)
            reply = replies.pop(0)
            conn.sendall(reply.data)
            if reply.then == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if reply.then != "stay":
                return


# --- blocking Client ------------------------------------------------------


@both_stores
def test_client_round_trip(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port, timeout=NETWORK_TIMEOUT) as client:
        assert client.put("palm.cpu", 10.6, 1501864247) is None
        client.put("palm.cpu", 2, 1501864248)
        client.put("eardrum.cpu", 3, 1501864250)
        client.put("palm.cpu", 0.5, 1501864246)
        assert client.get("palm.cpu") == {
            "palm.cpu": [(1501864246, 0.5), (1501864247, 10.6), (1501864248, 2.0)]
        }
        assert client.get("*") == {
            "palm.cpu": [(1501864246, 0.5), (1501864247, 10.6), (1501864248, 2.0)],
            "eardrum.cpu": [(1501864250, 3.0)],
        }
        assert client.get("nothing.here") == {}


@both_stores
def test_client_sends_the_value_as_given_and_timestamp_zero(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        client.put("load", 301, 0)
        client.put("text", "1e3", 1)
        assert client.get("load") == {"load": [(0, 301.0)]}
        assert client.get("text") == {"text": [(1, 1000.0)]}


def test_client_timestamp_defaults_to_now(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        before = int(time.time())
        client.put("now", 1.0)
        after = int(time.time())
        [(timestamp, value)] = client.get("now")["now"]
    assert before <= timestamp <= after
    assert value == 1.0


@both_stores
def test_client_reads_a_big_answer_arriving_in_many_pieces(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        for ts in range(3000):
            client.put("many", ts * 0.25, ts)
        points = client.get("many")["many"]
    assert points == [(ts, ts * 0.25) for ts in range(3000)]


@both_stores
def test_client_error_answer_raises_and_connection_stays_usable(
    threaded_server: ServerInfo,
) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        # Refused before sending, in the rule's words; the connection stays in step.
        with pytest.raises(ClientError, match=r"^value 'nan' is not a finite number$"):
            client.put("k", "nan", 1)
        with pytest.raises(ClientError, match="must be one word of printable characters"):
            client.get("bad\x00key")
        client.put("k", 1, 1)
        assert client.get("k") == {"k": [(1, 1.0)]}


@pytest.mark.parametrize(
    ("key", "value"),
    [("two words", 1), ("new\nline", 1), ("k", "1 2"), ("k", "1\nget *"), ("", 1)],
)
def test_client_refuses_requests_that_would_change_the_command(
    threaded_server: ServerInfo, key: str, value: object
) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        with pytest.raises(ClientError):
            client.put(key, value, 1)
        # Nothing was sent, so the connection is still in step.
        assert client.get("*") == {}


def test_client_cannot_connect_raises_client_error() -> None:
    port = free_port()
    with pytest.raises(ClientError) as refused:
        Client("127.0.0.1", port, timeout=NETWORK_TIMEOUT)
    assert str(refused.value) == (
        f"no trio-metrics server at 127.0.0.1:{port} (connection refused); is it running?"
        f" `trio-metrics serve --port {port}`"
    )


def test_client_against_a_stopped_server_raises_client_error() -> None:
    with server_in_thread() as info:
        client = Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT)
        client.put("k", 1, 1)
    with pytest.raises(ClientError):
        client.put("k", 2, 2)
    with pytest.raises(ClientError, match="broken"):
        client.get("k")
    client.close()


def test_client_timeout_raises_client_error_and_breaks_connection() -> None:
    with script_peer([Reply()]) as port:
        client = Client("127.0.0.1", port, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(ClientError, match=r"sent nothing in 0\.2 s: is that the main port\?$"):
            client.get("k")
        assert time.monotonic() - started < NETWORK_TIMEOUT
        with pytest.raises(ClientError, match="broken"):
            client.get("k")
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"oops\n\n",
        b"ok\nkey 1.0\n\n",
        b"ok\nkey 1.0 2 extra\n\n",
        b"ok\nkey 1.0 1.5\n\n",
        b"ok\nkey one 1\n\n",
    ],
)
def test_client_malformed_answer_raises_client_error(answer: bytes) -> None:
    with (
        script_peer([Reply(answer)]) as port,
        Client("127.0.0.1", port, timeout=NETWORK_TIMEOUT) as c,
    ):
        with pytest.raises(ClientError, match="malformed"):
            c.get("key")


def test_client_put_answered_with_data_raises() -> None:
    with script_peer([Reply(b"ok\nk 1.0 1\n\n")]) as port, Client("127.0.0.1", port) as client:
        with pytest.raises(ClientError, match="data lines"):
            client.put("k", 1, 1)


def test_client_extra_answer_means_out_of_step() -> None:
    with script_peer([Reply(b"ok\n\nok\n\n")]) as port, Client("127.0.0.1", port) as client:
        with pytest.raises(ClientError, match="more than one answer"):
            client.put("k", 1, 1)
        with pytest.raises(ClientError, match="out of step"):
            client.put("k", 1, 1)


# --- AsyncClient ----------------------------------------------------------


@pytest.fixture
async def async_client(server: ServerInfo) -> AsyncIterator[AsyncClient]:
    async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
        yield client


@both_stores
async def test_async_client_round_trip(async_client: AsyncClient) -> None:
    assert await async_client.put("palm.cpu", 10.6, 1501864247) is None
    await async_client.put("palm.cpu", 2, 1501864248)
    await async_client.put("load", 301, 0)
    assert await async_client.get("palm.cpu") == {
        "palm.cpu": [(1501864247, 10.6), (1501864248, 2.0)]
    }
    assert await async_client.get("*") == {
        "palm.cpu": [(1501864247, 10.6), (1501864248, 2.0)],
        "load": [(0, 301.0)],
    }
    assert await async_client.get("missing") == {}


@both_stores
async def test_async_client_errors_match_the_sync_client(async_client: AsyncClient) -> None:
    with pytest.raises(ClientError, match=r"^value 'inf' is not a finite number$"):
        await async_client.put("k", "inf", 1)
    with pytest.raises(ClientError):
        await async_client.put("two words", 1, 1)
    await async_client.put("k", 1.5)
    [(timestamp, value)] = (await async_client.get("k"))["k"]
    assert abs(timestamp - time.time()) < 60
    assert value == 1.5


@both_stores
async def test_async_client_shared_by_many_tasks(async_client: AsyncClient) -> None:
    results: dict[int, dict[str, list[tuple[int, float]]]] = {}

    async def worker(n: int) -> None:
        for ts in range(20):
            await async_client.put(f"task.{n}", n * 100 + ts, ts)
        results[n] = await async_client.get(f"task.{n}")

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(worker, n)
    for n in range(20):
        assert results[n] == {f"task.{n}": [(ts, float(n * 100 + ts)) for ts in range(20)]}


async def test_open_client_cannot_connect_raises_client_error() -> None:
    with pytest.raises(ClientError, match=r"^no trio-metrics server at 127\.0\.0\.1:\d+ \("):
        async with open_client("127.0.0.1", free_port()):
            pass  # pragma: no cover - never reached


async def test_async_client_timeout_breaks_the_connection() -> None:
    with script_peer([Reply()]) as port:
        async with open_client("127.0.0.1", port, timeout=0.2) as client:
            with pytest.raises(ClientError, match=r"sent nothing in 0\.2 s"):
                await client.get("k")
            with pytest.raises(ClientError, match="broken"):
                await client.get("k")


async def test_async_client_cancelled_mid_request_is_marked_broken() -> None:
    with script_peer([Reply()]) as port:
        async with open_client("127.0.0.1", port) as client:
            with trio.move_on_after(0.1) as scope:
                await client.get("k")
            assert scope.cancelled_caught
            with pytest.raises(ClientError, match="broken"):
                await client.get("k")


async def test_async_client_malformed_answer_keeps_connection_in_step() -> None:
    with script_peer([Reply(b"ok\nkey x 1\n\n")] * 2) as port:
        async with open_client("127.0.0.1", port) as client:
            for _ in range(2):
                with pytest.raises(ClientError, match="malformed"):
                    await client.get("key")


async def test_async_client_after_server_stops_raises_client_error() -> None:
    server_scope = trio.CancelScope()

    async def run_server(*, task_status: trio.TaskStatus[ServerInfo]) -> None:
        with server_scope:
            await serve("127.0.0.1", 0, task_status=task_status)

    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(run_server)
        async with open_client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put("k", 1, 1)
            server_scope.cancel()
            with pytest.raises(ClientError, match="failed"):
                await client.put("k", 2, 2)
            with pytest.raises(ClientError, match="broken"):
                await client.get("k")


# --- ThreadClient: sync code in worker threads through the trio client ----


@both_stores
async def test_thread_client_from_worker_threads(async_client: AsyncClient) -> None:
    bridge = async_client.for_thread()

    def sync_reporter(n: int) -> dict[str, list[tuple[int, float]]]:
        for ts in range(10):
            bridge.put(f"thread.{n}", n + ts / 10, ts)
        return bridge.get(f"thread.{n}")

    results: dict[int, dict[str, list[tuple[int, float]]]] = {}

    async def run(n: int) -> None:
        results[n] = await trio.to_thread.run_sync(sync_reporter, n)

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(run, n)
    for n in range(8):
        assert results[n] == {f"thread.{n}": [(ts, n + ts / 10) for ts in range(10)]}
    assert len(await async_client.get("*")) == 8


async def test_thread_client_raises_client_error_like_client(async_client: AsyncClient) -> None:
    bridge = async_client.for_thread()

    def bad_put() -> None:
        bridge.put("k", "nan", 1)

    with pytest.raises(ClientError, match=r"^value 'nan' is not a finite number$"):
        await trio.to_thread.run_sync(bad_put)


def test_thread_client_after_the_trio_run_ended_raises_client_error() -> None:
    with server_in_thread() as info:

        async def make_bridge() -> ThreadClient:
            async with open_client("127.0.0.1", info.port) as client:
                return client.for_thread()

        bridge = trio.run(make_bridge)
    with pytest.raises(ClientError, match="has ended"):
        bridge.put("k", 1, 1)


def test_thread_client_has_the_client_signatures() -> None:
    def params(method: Callable[..., object]) -> list[tuple[str, object]]:
        signature = inspect.signature(method)
        return [(p.name, p.default) for p in signature.parameters.values()]

    for name in ("put", "get", "stats"):
        assert params(getattr(ThreadClient, name)) == params(getattr(Client, name))
        assert params(getattr(AsyncClient, name)) == params(getattr(Client, name))


# --- review fixes: timeouts, closing, strict answers --------------------------


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
async def test_bad_timeouts_are_refused(timeout: float) -> None:  # noqa: ASYNC109
    with pytest.raises(ValueError, match="timeout"):
        Client("127.0.0.1", free_port(), timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        async with open_client("127.0.0.1", free_port(), timeout=timeout):
            pass  # pragma: no cover - never reached


async def test_async_client_frees_its_socket_when_a_request_times_out() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    async with open_client("127.0.0.1", listener.getsockname()[1], timeout=0.2) as client:
        peer, _ = await listener.accept()
        with pytest.raises(ClientError, match=r"sent nothing in 0\.2 s"):
            await client.get("k")
        # The client closed its end at once, not at the end of the block.
        with trio.fail_after(NETWORK_TIMEOUT):
            assert await peer.recv(100) == b"get k\n"
            assert await peer.recv(100) == b""
    peer.close()
    listener.close()


async def test_thread_client_close_ends_the_view_only(async_client: AsyncClient) -> None:
    view = async_client.for_thread()

    def use_and_close() -> None:
        with view:
            view.put("k", 1, 1)
        with pytest.raises(ClientError, match="closed"):
            view.get("k")

    await trio.to_thread.run_sync(use_and_close)
    assert await async_client.get("k") == {"k": [(1, 1.0)]}


@pytest.mark.parametrize(
    "answer",
    [b"ok\nk nan 1\n\n", b"ok\nk inf 1\n\n", b"ok\nk 1.0 9223372036854775808\n\n"],
)
def test_client_refuses_answers_the_server_could_never_send(answer: bytes) -> None:
    with script_peer([Reply(answer)]) as port, Client("127.0.0.1", port) as client:
        with pytest.raises(ClientError, match="malformed"):
            client.get("k")


async def test_thread_client_from_a_thread_trio_did_not_start(async_client: AsyncClient) -> None:
    # The view carries its trio run's token, so any thread can use it.
    view = async_client.for_thread()
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()
    outcome: list[object] = []

    def plain_thread() -> None:
        try:
            view.put("plain.thread", 2.5, 7)
            outcome.append(view.get("plain.thread"))
        except BaseException as exc:  # reported to the test below
            outcome.append(exc)
        finally:
            trio.from_thread.run_sync(done.set, trio_token=token)

    thread = threading.Thread(target=plain_thread)
    thread.start()
    with trio.fail_after(NETWORK_TIMEOUT):
        await done.wait()
    thread.join(NETWORK_TIMEOUT)
    assert outcome == [{"plain.thread": [(7, 2.5)]}]


async def test_thread_client_stats(async_client: AsyncClient) -> None:
    view = async_client.for_thread()

    def put_then_stats() -> dict[str, int]:
        view.put("a", 1, 1)
        view.put("b", 2, 2)
        return view.stats()

    counters = await trio.to_thread.run_sync(put_then_stats)
    assert counters["puts"] == 2
    assert counters["keys"] == 2
    assert counters["points"] == 2
    assert counters["stats_requests"] == 1
    assert counters["connections_open"] == 1


def test_client_frees_its_socket_when_a_request_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(NETWORK_TIMEOUT)
        client = Client("127.0.0.1", listener.getsockname()[1], timeout=0.2)
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(NETWORK_TIMEOUT)
            with pytest.raises(ClientError, match=r"sent nothing in 0\.2 s"):
                client.get("k")
            # The client closed its end at once, not at close().
            assert recv_until(peer, b"\n") == b"get k\n"
            assert peer.recv(100) == b""
        client.close()


# --- one error translation: every client, the same messages -------------------------


Call = tuple[str, tuple[object, ...]]
OK = Reply(b"ok\n\n")


def outcomes_of(client: Client | ThreadClient, calls: list[Call]) -> list[object]:
    outcomes: list[object] = []
    for name, args in calls:
        try:
            outcomes.append(getattr(client, name)(*args))
        except ClientError as exc:
            outcomes.append(f"ClientError: {exc}")
    return outcomes


def with_client(port: int, calls: list[Call], timeout: float) -> list[object]:
    with Client("127.0.0.1", port, timeout=timeout) as client:
        return outcomes_of(client, calls)


def with_async_client(port: int, calls: list[Call], timeout: float) -> list[object]:
    async def main() -> list[object]:
        outcomes: list[object] = []
        async with open_client("127.0.0.1", port, timeout=timeout) as client:
            for name, args in calls:
                try:
                    outcomes.append(await getattr(client, name)(*args))
                except ClientError as exc:
                    outcomes.append(f"ClientError: {exc}")
        return outcomes

    return trio.run(main)


def with_thread_client(port: int, calls: list[Call], timeout: float) -> list[object]:
    async def main() -> list[object]:
        async with open_client("127.0.0.1", port, timeout=timeout) as client:
            return await trio.to_thread.run_sync(outcomes_of, client.for_thread(), calls)

    return trio.run(main)


DRIVERS = {
    "Client": with_client,
    "AsyncClient": with_async_client,
    "ThreadClient": with_thread_client,
}
GET_K: Call = ("get", ("k",))
PUT_K: Call = ("put", ("k", 1, 1))

SCENARIOS = [
    pytest.param(
        [Reply(b"ok\nk 2.0 2\nk 1.0 1\n\n"), OK, Reply(b"ok\ntrio_metrics.keys 1.0 5\n\n")],
        [GET_K, PUT_K, ("stats", ())],
        [{"k": [(1, 1.0), (2, 2.0)]}, None, {"keys": 1}],
        id="answers",
    ),
    pytest.param(
        [Reply(b"error\nwrong command\n\n"), OK],
        [GET_K, PUT_K],
        ["ClientError: server answered error: wrong command", None],
        id="error-answer",
    ),
    pytest.param(
        [Reply(b"ok\nk x 1\n\n"), Reply(b"ok\nk 1.0 1\n\n"), OK],
        [GET_K, PUT_K, PUT_K],
        [
            "ClientError: malformed answer from ADDR: value 'x' is not a number",
            "ClientError: malformed answer from ADDR: server answered a put with data lines",
            None,
        ],
        id="malformed-answers",
    ),
    pytest.param(
        [OK],
        [("put", ("two words", 1, 1)), ("get", ("a\nb",)), GET_K],
        [
            "ClientError: key 'two words' must be one word of printable characters, not '*'",
            "ClientError: key 'a\\nb' must be one word of printable characters, not '*'",
            {},
        ],
        id="request-that-cannot-be-sent",
    ),
    pytest.param(
        [Reply(b"ok\n\nok\n\n")],
        [PUT_K, PUT_K],
        [
            "ClientError: ADDR sent more than one answer to a request",
            "ClientError: connection to ADDR is out of step with its answers",
        ],
        id="extra-answer",
    ),
    pytest.param(
        [Reply(b"ok\nk 1.0", then="close")],
        [GET_K, GET_K],
        [
            "ClientError: connection to ADDR failed: server closed the connection",
            "ClientError: connection to ADDR is broken: the server closed it",
        ],
        id="closed-mid-answer",
    ),
    pytest.param(
        [Reply(then="reset")],
        [GET_K, GET_K],
        [
            "ClientError: connection to ADDR failed: ...",
            "ClientError: connection to ADDR is broken by an interrupted request",
        ],
        id="reset",
    ),
    pytest.param(
        [Reply(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")],
        [GET_K, GET_K],
        [
            "ClientError: ADDR answered HTTP: is that the main port?",
            "ClientError: connection to ADDR is broken: the server answered HTTP",
        ],
        id="an-http-server",
    ),
    pytest.param(
        [Reply(then="close")],
        [GET_K],
        [
            "ClientError: ADDR closed the connection without answering"
            " (too many connections, or not the main port?)",
        ],
        id="closed-without-a-word",
    ),
    pytest.param(
        [Reply()],
        [GET_K, GET_K],
        [
            "ClientError: ADDR sent nothing in 0.3 s: is that the main port?",
            "ClientError: connection to ADDR is broken by an interrupted request",
        ],
        id="timeout",
    ),
]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(("replies", "calls", "expected"), SCENARIOS)
def test_every_client_maps_a_peer_the_same_way(
    driver: str, replies: list[Reply], calls: list[Call], expected: list[object]
) -> None:
    timeout = 0.3 if replies == [Reply()] else NETWORK_TIMEOUT
    with script_peer(replies) as port:
        outcomes = DRIVERS[driver](port, calls, timeout)
    assert [shown(o, e, port) for o, e in zip(outcomes, expected, strict=True)] == expected


def shown(outcome: object, expected: object, port: int) -> object:
    """``outcome`` with its address as ADDR; cut like ``expected`` if that ends in "..."."""
    if not isinstance(outcome, str):
        return outcome
    outcome = outcome.replace(f"127.0.0.1:{port}", "ADDR")
    # "..." ends a message whose details name the operating system's error.
    if isinstance(expected, str) and expected.endswith("...") and len(outcome) > len(expected):
        return outcome[: len(expected) - 3] + "..."
    return outcome


@pytest.mark.parametrize("driver", ["Client", "AsyncClient"])
def test_every_client_says_cannot_connect_the_same_way(driver: str) -> None:
    port = free_port()
    with pytest.raises(ClientError) as caught:
        DRIVERS[driver](port, [], NETWORK_TIMEOUT)
    cause = caught.value.__cause__
    assert isinstance(cause, OSError)
    assert str(caught.value) == (
        f"no trio-metrics server at 127.0.0.1:{port} (connection refused); is it running?"
        f" `trio-metrics serve --port {port}`"
    )


@pytest.mark.parametrize(
    ("error", "connecting", "message"),
    [
        (TimeoutError("timed out"), False, "request to h:1 timed out"),
        (trio.TooSlowError(), False, "request to h:1 timed out"),
        (TimeoutError("timed out"), True, "cannot connect to h:1: timed out"),
        (trio.TooSlowError(), True, "cannot connect to h:1: timed out"),
        (
            ConnectionRefusedError(111, "refused"),
            True,
            "no trio-metrics server at h:1 (connection refused); is it running?"
            " `trio-metrics serve --port 1`",
        ),
        (
            ConnectionResetError(104, "reset"),
            False,
            "connection to h:1 failed: reset",
        ),
        (
            trio.BrokenResourceError("gone"),
            False,
            "connection to h:1 failed: gone",
        ),
        (
            trio.ClosedResourceError("shut"),
            False,
            "connection to h:1 failed: the connection was closed",
        ),
        (trio.RunFinishedError(), False, "the trio run that owns the client has ended"),
        (ProtocolError("key 'a b' must be one token"), False, "key 'a b' must be one token"),
        (ServerRefusedError("wrong command"), False, "server answered error: wrong command"),
        (MalformedAnswerError("bad"), False, "malformed answer from h:1: bad"),
        (OutOfStepError("two"), False, "h:1 sent more than one answer to a request"),
        (ServerClosedError("closed"), False, "connection to h:1 failed: closed"),
        (ConnectionStateError("closed"), False, "connection to h:1 is closed"),
    ],
)
def test_map_exceptions(error: Exception, connecting: bool, message: str) -> None:
    with pytest.raises(ClientError) as caught, map_exceptions("h:1", connecting=connecting):
        raise error
    assert str(caught.value) == message
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("x"), RuntimeError("y")])
def test_map_exceptions_lets_other_exceptions_through(error: BaseException) -> None:
    with pytest.raises(type(error)), map_exceptions("h:1"):
        raise error


async def test_map_exceptions_lets_cancellation_through() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        with map_exceptions("h:1"):
            await trio.sleep(NETWORK_TIMEOUT)
    assert scope.cancelled_caught


# --- AsyncClient over trio's in-memory streams ------------------------------------


async def heard(theirs: trio.abc.ReceiveStream) -> bytes:
    """The next bytes the client sent (``b""`` once it closed), within the bound."""
    with trio.fail_after(NETWORK_TIMEOUT):
        return bytes(await theirs.receive_some())


async def test_async_client_over_a_memory_stream() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    async with AsyncClient(ours) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.put, "k", 301, 7)
            assert await heard(theirs) == b"put k 301 7\n"
            # The answer in pieces, with the client waiting between them.
            await theirs.send_all(b"o")
            await trio.testing.wait_all_tasks_blocked()
            await theirs.send_all(b"k\n\n")
        got = await client_reply(client, theirs, b"get k\n", b"ok\nk 301.0 7\n\n")
    assert got == {"k": [(7, 301.0)]}


async def client_reply(
    client: AsyncClient, theirs: trio.abc.Stream, asked: bytes, answer: bytes
) -> object:
    async with trio.open_nursery() as nursery:
        result: list[object] = []

        async def get() -> None:
            result.append(await client.get("k"))

        nursery.start_soon(get)
        assert await heard(theirs) == asked
        await theirs.send_all(answer)
    return result[0]


async def test_async_client_cancelled_after_sending_is_broken_and_closed() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    client = AsyncClient(ours)
    with trio.move_on_after(NETWORK_TIMEOUT) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "k")
            assert await heard(theirs) == b"get k\n"
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    with pytest.raises(ClientError, match=r"^connection to server is broken by an interrupted"):
        await client.get("k")
    # Closed at once: the late answer could never be taken for the next request's.
    assert await heard(theirs) == b""


async def test_async_client_cancelled_in_the_middle_of_sending_is_broken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, theirs = trio.testing.lockstep_stream_pair()
    client = AsyncClient(ours)
    with trio.move_on_after(1) as scope:
        # Nobody reads the other end, so the request never gets out whole.
        await client.put("k", 1, 1)
    assert scope.cancelled_caught
    with pytest.raises(ClientError, match="broken by an interrupted request"):
        await client.put("k", 1, 1)
    await theirs.aclose()


async def test_async_client_cancelled_waiting_for_its_turn_leaves_the_connection() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    client = AsyncClient(ours)
    results: list[object] = []

    async def first() -> None:
        results.append(await client.get("k"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        assert await heard(theirs) == b"get k\n"
        with trio.CancelScope() as waiting:
            waiting.cancel()
            await client.get("other")  # waits for the lock, then is cancelled
        await theirs.send_all(b"ok\nk 1.0 1\n\n")
    assert results == [{"k": [(1, 1.0)]}]
    assert await client_reply(client, theirs, b"get k\n", b"ok\n\n") == {}


async def test_async_client_timeout(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    client = AsyncClient(ours, timeout=5)
    started = trio.current_time()
    with pytest.raises(ClientError, match=r"^server sent nothing in 5 s: is that the main port\?$"):
        await client.stats()
    assert trio.current_time() - started == pytest.approx(5)
    assert await heard(theirs) == b"stats\n"
    assert await heard(theirs) == b""
    with pytest.raises(ClientError, match=r"^connection to server is broken by an interrupted"):
        await client.stats()


async def test_async_client_peer_closing_mid_answer() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    client = AsyncClient(ours, address="peer")

    async def get_fails() -> None:
        with pytest.raises(ClientError, match=r"^connection to peer failed: server closed the"):
            await client.get("k")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(get_fails)
        assert await heard(theirs) == b"get k\n"
        await theirs.send_all(b"ok\nk 1.0")
        await theirs.send_eof()
    with pytest.raises(ClientError, match=r"^connection to peer is broken: the server closed it$"):
        await client.get("k")


async def test_async_client_stream_failing_on_send() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    await theirs.aclose()
    client = AsyncClient(ours)
    with pytest.raises(
        ClientError, match=r"^connection to server failed: MemoryReceiveStream was closed$"
    ):
        await client.put("k", 1, 1)
    with pytest.raises(ClientError, match="broken by an interrupted request"):
        await client.put("k", 1, 1)


async def test_async_client_closed_while_a_request_waits() -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    client = AsyncClient(ours)
    async with trio.open_nursery() as nursery:

        async def waiting_get() -> None:
            with pytest.raises(
                ClientError, match=r"^connection to server failed: the connection was closed$"
            ):
                await client.get("k")

        nursery.start_soon(waiting_get)
        await trio.testing.wait_all_tasks_blocked()
        await client.aclose()
    with pytest.raises(ClientError, match=r"^connection to server is closed$"):
        await client.get("k")
