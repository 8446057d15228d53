"""The server over real TCP on 127.0.0.1 (and over memory streams where sharper)."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

import pytest
import trio
import trio.testing
from conftest import both_stores
from net import NETWORK_TIMEOUT, receive_exactly, receive_until_eof

from trio_metrics import Limits, MetricStore, Series, ServerInfo, ServerStats, open_client, serve
from trio_metrics.server._connection import ConnectionHandler

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"


Connect = Callable[[ServerInfo], Awaitable[trio.SocketStream]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open connections to a server; all are closed when the test ends."""
    streams: list[trio.SocketStream] = []

    async def open_connection(info: ServerInfo) -> trio.SocketStream:
        with trio.fail_after(NETWORK_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        streams.append(stream)
        return stream

    yield open_connection
    for stream in streams:
        await trio.aclose_forcefully(stream)


async def exchange(stream: trio.SocketStream, request: bytes, answer_size: int) -> bytes:
    await stream.send_all(request)
    return await receive_exactly(stream, answer_size)


async def ask(stream: trio.SocketStream, request: bytes, expected: bytes) -> None:
    """Send ``request`` and check that exactly ``expected`` comes back."""
    assert await exchange(stream, request, len(expected)) == expected


@pytest.mark.parametrize("port", [-1, 65536, 70000])
async def test_serve_refuses_a_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        await serve("127.0.0.1", port)


async def test_port_zero_reports_the_real_port(server: ServerInfo, connect: Connect) -> None:
    assert server.port != 0
    assert server.host == "127.0.0.1"
    stream = await connect(server)
    await stream.aclose()


@both_stores
async def test_spec_example_session_byte_for_byte(server: ServerInfo, connect: Connect) -> None:
    steps = [
        (b"put palm.cpu 10.6 1501864247\n", b"ok\n\n"),
        (b"put palm.cpu 2 1501864248\n", b"ok\n\n"),
        (b"got palm.cpu\n", b"error\nwrong command\n\n"),
        (
            b"get palm.cpu\n",
            b"ok\npalm.cpu 10.6 1501864247\npalm.cpu 2.0 1501864248\n\n",
        ),
        (b"get nothing.here\n", b"ok\n\n"),
    ]
    stream = await connect(server)
    for request, expected in steps:
        assert await exchange(stream, request, len(expected)) == expected


@both_stores
async def test_pipelined_commands_are_answered_in_order(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    request = b"get k\nput k 1 10\nput k 3 30\nbad\nput k 2 20\nget k\nput k 9 20\nget k\n"
    expected = (
        OK
        + OK
        + OK
        + ERROR
        + OK
        + b"ok\nk 1.0 10\nk 2.0 20\nk 3.0 30\n\n"
        + OK
        + b"ok\nk 1.0 10\nk 9.0 20\nk 3.0 30\n\n"
    )
    assert await exchange(stream, request, len(expected)) == expected


@both_stores
async def test_get_star_lists_keys_in_first_stored_order(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    request = b"put zeta 1 5\nput alpha 2 4\nput zeta 3 1\nput mid 4e20 7\nget *\n"
    expected = OK * 4 + b"ok\nzeta 3.0 1\nzeta 1.0 5\nalpha 2.0 4\nmid 4e+20 7\n\n"
    assert await exchange(stream, request, len(expected)) == expected


@both_stores
async def test_values_are_shown_as_python_repr_of_float(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    request = b"put v 10 1\nput v 4200000 2\nput v 1e+20 3\nput v -0.5 4\nput v 1_5 5\nget v\n"
    expected = OK * 5 + (b"ok\nv 10.0 1\nv 4200000.0 2\nv 1e+20 3\nv -0.5 4\nv 15.0 5\n\n")
    assert await exchange(stream, request, len(expected)) == expected


@both_stores
async def test_blank_lines_get_no_answer(server: ServerInfo, connect: Connect) -> None:
    stream = await connect(server)
    request = b"\n   \n\t\nput k 1 1\n\n\nget k\n\n"
    expected = OK + b"ok\nk 1.0 1\n\n"
    assert await exchange(stream, request, len(expected)) == expected
    # Nothing else is on its way: the next command's answer comes next.
    assert await exchange(stream, b"get nope\n", len(OK)) == OK


@both_stores
async def test_crlf_endings_and_surrounding_whitespace(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    request = b"put k 1 1\r\n  get   k \t\r\n"
    expected = OK + b"ok\nk 1.0 1\n\n"
    assert await exchange(stream, request, len(expected)) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"got key",
        b"GET key",
        b"get",
        b"get a b",
        b"put a 1",
        b"put a 1 2 3",
        b"put a nan 1",
        b"put a inf 1",
        b"put a 1 -1",
        b"put a 1 1.5",
        b"put * 1 1",
        b"get \xff\xfe",
        b"put k\x00ey 1 1",
    ],
)
@both_stores
async def test_wrong_commands_get_the_error_and_the_connection_goes_on(
    server: ServerInfo, line: bytes, connect: Connect
) -> None:
    stream = await connect(server)
    expected = ERROR + OK + b"ok\nafter 1.0 1\n\n"
    request = line + b"\nput after 1 1\nget after\n"
    assert await exchange(stream, request, len(expected)) == expected


@both_stores
async def test_commands_split_across_many_sends(server: ServerInfo, connect: Connect) -> None:
    stream = await connect(server)
    request = b"put split.key 12.5 1501864247\nget split.key\n"
    expected = OK + b"ok\nsplit.key 12.5 1501864247\n\n"
    for index in range(len(request)):
        await stream.send_all(request[index : index + 1])
    assert await receive_exactly(stream, len(expected)) == expected


async def test_one_byte_at_a_time_over_memory_streams() -> None:
    # Memory streams deliver each send as its own receive, which TCP cannot
    # promise: this pins down the server's handling of the smallest pieces.
    store = MetricStore()
    handler = ConnectionHandler(store, ServerStats(), Limits(max_line_length=1024))
    client, server_end = trio.testing.memory_stream_pair()
    request = b"put a 1 1\r\nput a 2 1\nget a\n"
    expected = OK + OK + b"ok\na 2.0 1\n\n"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handler.handle, server_end)
        for index in range(len(request)):
            await client.send_all(request[index : index + 1])
        assert await receive_exactly(client, len(expected)) == expected
        await client.send_eof()
        assert await receive_until_eof(client) == b""


async def test_over_long_line_gets_an_error_and_the_connection_goes_on(
    nursery: trio.Nursery, connect: Connect
) -> None:
    info: ServerInfo = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, max_line_length=32, task_status=task_status)
    )
    stream = await connect(info)
    long_key = b"k" * 100
    request = b"put " + long_key + b" 1 1\nput short 1 1\nget *\n"
    expected = ERROR + OK + b"ok\nshort 1.0 1\n\n"
    assert await exchange(stream, request, len(expected)) == expected
    # A line that is too long before its newline arrives is answered at once.
    await stream.send_all(b"x" * 64)
    assert await receive_exactly(stream, len(ERROR)) == ERROR
    expected = b"ok\nshort 1.0 1\n\n"
    assert await exchange(stream, b"rest of it\nget short\n", len(expected)) == expected


async def test_half_close_answers_everything_sent_then_closes(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    await stream.send_all(b"put h 1 1\nput h 2 2\nget h\nput h 3 3")  # last one cut off
    await stream.send_eof()
    answers = await receive_until_eof(stream)
    assert answers == OK + OK + b"ok\nh 1.0 1\nh 2.0 2\n\n"
    # The cut-off command was not run.
    other = await connect(server)
    await ask(other, b"get h\n", b"ok\nh 1.0 1\nh 2.0 2\n\n")


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_reset_mid_command_affects_no_one_else(server: ServerInfo, connect: Connect) -> None:
    bystander = await connect(server)
    await ask(bystander, b"put b 1 1\n", OK)
    victim = await connect(server)
    await victim.send_all(b"put cut 1 150")
    reset(victim.socket)  # type: ignore[arg-type]
    await ask(bystander, b"get *\n", b"ok\nb 1.0 1\n\n")
    # The server still accepts new connections.
    newcomer = await connect(server)
    await ask(newcomer, b"get cut\n", OK)


async def test_reset_while_a_big_answer_is_written(server: ServerInfo, connect: Connect) -> None:
    writer = await connect(server)
    puts = b"".join(b"put big.%d 1.5 %d\n" % (i % 10, i) for i in range(20000))
    await writer.send_all(puts)
    assert await receive_exactly(writer, 4 * 20000) == OK * 20000
    reader = await connect(server)
    await reader.send_all(b"get *\n")
    assert await receive_exactly(reader, 20) == b"ok\nbig.0 1.5 0\nbig.0"
    reset(reader.socket)  # type: ignore[arg-type]
    await ask(writer, b"put after 1 1\n", OK)
    assert server.stats.connection_failures == 0


class ExplodingStore(MetricStore):
    """A store that fails on demand (no real part does): ``get boom`` hits a
    bug, ``get remote`` a backend that refuses connections."""

    async def query(self, key: str) -> Iterable[Series]:
        if key == "boom":
            raise RuntimeError("bug in the store")
        if key == "remote":
            raise ConnectionRefusedError("backend down")
        return await super().query(key)


async def test_unexpected_error_closes_only_that_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, connect: Connect
) -> None:
    store = ExplodingStore()
    info: ServerInfo = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, store=store, task_status=task_status)
    )
    calm = await connect(info)
    await ask(calm, b"put c 1 1\n", OK)
    doomed = await connect(info)
    with caplog.at_level(logging.ERROR, logger="trio_metrics.server"):
        await doomed.send_all(b"get boom\n")
        assert await receive_until_eof(doomed) == b""
    assert "unexpected error" in caplog.text
    assert info.stats.connection_failures == 1
    # A store's own connection error is a failure too, not a client gone.
    doomed = await connect(info)
    await doomed.send_all(b"get remote\n")
    assert await receive_until_eof(doomed) == b""
    assert info.stats.connection_failures == 2
    await ask(calm, b"get c\n", b"ok\nc 1.0 1\n\n")


async def test_cancelling_the_server_closes_open_connections(connect: Connect) -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
        stream = await connect(info)
        await ask(stream, b"put k 1 1\n", OK)
        nursery.cancel_scope.cancel()
    assert await receive_until_eof(stream) == b""
    assert info.stats.connections_closed_at_stop == 1
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", info.port)


async def test_stats_count_connections_commands_and_errors(
    server: ServerInfo, connect: Connect
) -> None:
    stream = await connect(server)
    await ask(stream, b"put a 1 1\nnope\n\nget a\n", OK + ERROR + b"ok\na 1.0 1\n\n")
    assert server.stats.commands == 3
    assert server.stats.errors == 1
    assert server.stats.connections_open == 1
    assert server.stats.connections_total == 1
    await stream.aclose()
    with trio.fail_after(NETWORK_TIMEOUT):
        while server.stats.connections_open:  # noqa: ASYNC110 - polls a plain counter
            await trio.sleep(0.01)


async def test_fifty_clients_putting_at_once_lose_nothing(server: ServerInfo) -> None:
    clients, per_client = 50, 200

    async def report(client_id: int) -> None:
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            for ts in range(per_client):
                # Each point is written twice: the second value must win.
                await client.put(f"client.{client_id}", -1.0, ts)
                await client.put(f"client.{client_id}", client_id + ts / 1000, ts)

    async with trio.open_nursery() as nursery:
        for client_id in range(clients):
            nursery.start_soon(report, client_id)

    async with open_client("127.0.0.1", server.port) as reader:
        everything = await reader.get("*")
    assert len(everything) == clients
    for client_id in range(clients):
        expected: Sequence[tuple[int, float]] = [
            (ts, client_id + ts / 1000) for ts in range(per_client)
        ]
        assert everything[f"client.{client_id}"] == expected


def test_run_server_raises_a_bad_option_bare() -> None:
    from trio_metrics import run_server

    with pytest.raises(ValueError, match="max_connections"):
        run_server("127.0.0.1", 0, max_connections=0)
    with pytest.raises(TypeError, match="bogus"):
        run_server("127.0.0.1", 0, bogus=1)  # type: ignore[call-overload]
