"""The server under limits, slow or silent clients, floods and hostile input.

Everything runs over real TCP on 127.0.0.1 against a server started in the
test's own trio run.
"""

from __future__ import annotations

import logging
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
from conftest import both_stores
from net import NETWORK_TIMEOUT, receive_exactly, receive_until_eof

from trio_metrics import MetricStore, ServerConfig, ServerInfo, open_client, serve
from trio_metrics.storage import Storage

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"

StartServer = Callable[..., Awaitable[ServerInfo]]


@pytest.fixture
async def start_server(nursery: trio.Nursery, server_storage: Storage) -> StartServer:
    """Start a server with the given ``serve`` options (on ``server_storage`` unless
    they name a store); it stops with the test."""

    async def start(**options: Any) -> ServerInfo:
        config = ServerConfig.from_options("127.0.0.1", 0, **options)
        if "store" not in options:
            config = attrs.evolve(config, storage=server_storage)

        async def run(*, task_status: trio.TaskStatus[ServerInfo]) -> None:
            await serve(config, task_status=task_status)

        info: ServerInfo = await nursery.start(run)
        return info

    return start


@pytest.fixture
async def streams() -> AsyncIterator[list[trio.SocketStream]]:
    """Connections to close when the test ends."""
    opened: list[trio.SocketStream] = []
    yield opened
    for stream in opened:
        await trio.aclose_forcefully(stream)


async def connect(info: ServerInfo, opened: list[trio.SocketStream]) -> trio.SocketStream:
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
    opened.append(stream)
    return stream


async def ask(stream: trio.SocketStream, request: bytes, expected: bytes) -> None:
    await stream.send_all(request)
    assert await receive_exactly(stream, len(expected)) == expected


async def wait_until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(NETWORK_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - polls plain counters
            await trio.sleep(0.01)


# --- limits -----------------------------------------------------------------


async def test_connections_past_the_limit_are_closed_at_once(
    start_server: StartServer,
    streams: list[trio.SocketStream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    info = await start_server(max_connections=3)
    kept = [await connect(info, streams) for _ in range(3)]
    for stream in kept:
        await ask(stream, b"put k 1 1\n", OK)
    with caplog.at_level(logging.WARNING, logger="trio_metrics.server"):
        for _ in range(5):
            extra = await connect(info, streams)
            assert await receive_until_eof(extra) == b""
    assert info.stats.connections_refused == 5
    # Rate-limited: five refusals in a burst make one warning.
    warnings = [r for r in caplog.records if "closed a new one" in r.getMessage()]
    assert len(warnings) == 1
    # The kept connections are untouched, and a freed slot can be used.
    await ask(kept[0], b"get k\n", b"ok\nk 1.0 1\n\n")
    await kept[1].aclose()
    await wait_until(lambda: info.stats.connections_open == 2)
    newcomer = await connect(info, streams)
    await ask(newcomer, b"get k\n", b"ok\nk 1.0 1\n\n")


async def test_idle_connection_is_closed_and_a_busy_one_is_not(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server(idle_timeout=0.3)
    idle = await connect(info, streams)
    busy = await connect(info, streams)
    # The busy one sends a command every 0.05 s for over three idle timeouts.
    for ts in range(20):
        await ask(busy, b"put busy 1 %d\n" % ts, OK)
        await trio.sleep(0.05)
    assert await receive_until_eof(idle) == b""
    assert info.stats.connections_idle_closed == 1
    await ask(busy, b"get nothing\n", OK)


async def test_dribbling_a_line_slower_than_the_idle_timeout_is_cut_off(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    # A slow-loris client that never completes a command holds no slot.
    info = await start_server(idle_timeout=0.3)
    loris = await connect(info, streams)
    with pytest.raises(trio.BrokenResourceError):
        with trio.fail_after(NETWORK_TIMEOUT):
            while True:
                await loris.send_all(b"x")
                await trio.sleep(0.05)
    assert info.stats.connections_idle_closed == 1


async def test_client_that_does_not_read_is_closed_after_the_idle_timeout(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    store = MetricStore()
    store.put_many((f"key.{i % 10}", 1.5, i) for i in range(20000))
    info = await start_server(store=store, idle_timeout=0.3)
    silent = await connect(info, streams)
    await silent.send_all(b"get *\n" * 50)  # ~20 MB of answers, never read
    await wait_until(lambda: info.stats.connections_idle_closed == 1)
    assert info.stats.connections_open == 0


async def test_answers_for_a_client_that_does_not_read_stay_bounded(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    store = MetricStore()
    store.put_many((f"series.{i % 4}", i / 3, i) for i in range(400))
    one_answer = b"".join(
        [b"ok\n"]
        + [b"series.%d %r %d\n" % (k, i / 3, i) for k in range(4) for i in range(400) if i % 4 == k]
        + [b"\n"]
    )
    info = await start_server(store=store, max_buffered_answer=64 * 1024)
    requests = 3000  # ~20 MB of answers from one 18 KB read
    silent = await connect(info, streams)
    tracemalloc.start()
    try:
        await silent.send_all(b"get *\n" * requests)
        # Let the server work until it blocks on the full socket buffers.
        await trio.sleep(0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"server held {peak} bytes for a client that does not read"
    # Once the client reads, every answer arrives, complete and in order.
    received = await receive_exactly(silent, len(one_answer) * requests)
    assert received == one_answer * requests


async def test_many_small_answers_for_a_client_that_does_not_read_stay_bounded(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    # ~500-byte stats answers to 6-byte requests: one 64 KiB read asks for
    # over 5 MB, which must go out in pieces, not be collected whole.
    info = await start_server(max_buffered_answer=64 * 1024)
    requests = 10_000
    silent = await connect(info, streams)
    tracemalloc.start()
    try:
        await silent.send_all(b"stats\n" * requests)
        await trio.sleep(0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024, f"server held {peak} bytes for a client that does not read"
    received = bytearray()
    with trio.fail_after(NETWORK_TIMEOUT):
        while received.count(b"\n\n") < requests:
            received += await silent.receive_some(1 << 20)
    assert received.count(b"\n\n") == requests
    assert info.stats.stats_requests == requests


# --- big answers and floods ---------------------------------------------------


async def test_big_answer_streams_while_others_are_served(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    store = MetricStore()
    points = 300_000
    store.put_many((f"k{i % 100:03d}", 0.5, i) for i in range(points))
    info = await start_server(store=store)
    slow = await connect(info, streams)
    tracemalloc.start()
    try:
        await slow.send_all(b"get *\n")
        first = await slow.receive_some(1024)
        await trio.sleep(0.3)  # the server fills the socket buffers and waits
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.startswith(b"ok\nk000 0.5 0\n")
    # The answer is ~5 MB of text; it is written as it is encoded, so the
    # server holds the 16-byte-per-point snapshot (4.8 MB) and little more.
    assert peak < 8 * 1024 * 1024, f"server held {peak} bytes while streaming"
    # While the big answer waits for its slow reader, others are served.
    other = await connect(info, streams)
    for ts in range(5):
        await ask(other, b"put other 1 %d\n" % ts, OK)
    await ask(
        other, b"get other\n", b"ok\n" + b"".join(b"other 1.0 %d\n" % t for t in range(5)) + b"\n"
    )
    rest = bytearray(first)
    with trio.fail_after(NETWORK_TIMEOUT * 3):
        while not rest.endswith(b"\n\n"):
            rest += await slow.receive_some(1 << 20)
    lines = bytes(rest).split(b"\n")
    assert lines[0] == b"ok"
    assert len(lines) == points + 3  # "ok", the points, the empty line, and after its "\n"
    # Keys in first-stored order, each key's points in time order.
    assert lines[1 + 2999] == b"k000 0.5 299900"
    assert lines[1 + 3000] == b"k001 0.5 1"
    assert lines[points] == b"k099 0.5 299999"


async def test_a_million_pipelined_commands_in_one_burst(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server()
    stream = await connect(info, streams)
    count = 1_000_000
    burst = b"".join(b"put flood.%d %d %d\n" % (i % 16, i, i) for i in range(count))
    received = bytearray()

    async def read_all() -> None:
        # The client must read while it sends: the server stops reading a
        # client that does not take its answers.
        while len(received) < len(OK) * count:
            received.extend(await stream.receive_some(1 << 20))

    with trio.fail_after(NETWORK_TIMEOUT * 6):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await stream.send_all(burst)
    assert received == OK * count
    assert len(info.store) == count  # type: ignore[arg-type]


@both_stores
async def test_a_ten_megabyte_line_without_newline(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server()
    stream = await connect(info, streams)
    with trio.fail_after(NETWORK_TIMEOUT * 3):
        await stream.send_all(b"put " + b"k" * (10 * 1024 * 1024))
        assert await receive_exactly(stream, len(ERROR)) == ERROR
        await ask(stream, b" 1 1\nput fine 1 1\nget *\n", OK + b"ok\nfine 1.0 1\n\n")
    assert info.stats.lines_too_long == 1


def drop(sock: socket.socket, with_reset: bool) -> None:
    if with_reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@both_stores
async def test_thousands_of_connections_opened_and_dropped(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server()
    total, at_once = 2000, 100

    async def open_and_drop(n: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        if n % 3 == 0:
            await stream.send_all(b"put dropped.%d 1 " % n)  # cut off mid-command
        elif n % 3 == 1:
            await stream.send_all(b"put kept.%d 1 1\n" % n)
            assert await receive_exactly(stream, len(OK)) == OK
        drop(stream.socket, with_reset=n % 2 == 0)  # type: ignore[arg-type]

    with trio.fail_after(NETWORK_TIMEOUT * 6):
        for start in range(0, total, at_once):
            async with trio.open_nursery() as nursery:
                for n in range(start, start + at_once):
                    nursery.start_soon(open_and_drop, n)
    await wait_until(lambda: info.stats.connections_open == 0)
    assert info.stats.connections_total == total
    assert info.stats.connection_failures == 0
    kept = sum(1 for n in range(total) if n % 3 == 1)
    async with open_client("127.0.0.1", info.port) as client:
        everything = await client.get("*")
        counters = await client.stats()
    assert sorted(everything) == sorted(f"kept.{n}" for n in range(total) if n % 3 == 1)
    assert counters["points"] == kept


async def test_stats_command_reports_the_counters(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server(max_line_length=16)
    stream = await connect(info, streams)
    await ask(
        stream,
        b"put a 1 1\nput b 2 2\nput a 3 3\nget a\nnonsense\n" + b"x" * 20 + b"\n",
        OK * 3 + b"ok\na 1.0 1\na 3.0 3\n\n" + ERROR + ERROR,
    )
    async with open_client("127.0.0.1", info.port) as client:
        counters = await client.stats()
    assert counters["puts"] == 3
    assert counters["gets"] == 1
    assert counters["errors"] == 2
    assert counters["lines_too_long"] == 1
    assert counters["stats_requests"] == 1
    assert counters["commands"] == 7
    assert counters["keys"] == 2
    assert counters["points"] == 3
    assert counters["connections_open"] == 2
    assert counters["connections_total"] == 2


@both_stores
async def test_stats_takes_no_arguments(
    start_server: StartServer, streams: list[trio.SocketStream]
) -> None:
    info = await start_server()
    stream = await connect(info, streams)
    await ask(stream, b"stats now\nSTATS\n", ERROR + ERROR)
