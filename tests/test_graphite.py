"""The Graphite plaintext listener over real TCP on 127.0.0.1, read back with the protocol."""

from __future__ import annotations

import functools
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import trio
import trio.testing
from net import NETWORK_TIMEOUT, receive_until_eof

from trio_metrics import MetricStore, ServerInfo, ServerStats, open_client, serve
from trio_metrics.ingest._graphite import GraphiteHandler, GraphiteListenError, serve_graphite
from trio_metrics.server import ServerConfig, serve_until_signal
from trio_metrics.transport._limits import Limits

Start = Callable[..., Awaitable[ServerInfo]]


@pytest.fixture
async def start(nursery: trio.Nursery) -> AsyncIterator[Start]:
    """Start servers with a Graphite listener on a free port."""

    async def start_server(**options: Any) -> ServerInfo:
        info: ServerInfo = await nursery.start(
            functools.partial(serve, "127.0.0.1", 0, graphite_port=0, **options)
        )
        return info

    yield start_server


@pytest.fixture
async def graphite_streams() -> AsyncIterator[Callable[[ServerInfo], Awaitable[trio.SocketStream]]]:
    """Connections to a server's Graphite port, all closed when the test ends."""
    streams: list[trio.SocketStream] = []

    async def connect(info: ServerInfo) -> trio.SocketStream:
        assert info.graphite_port is not None
        with trio.fail_after(NETWORK_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
        streams.append(stream)
        return stream

    yield connect
    for stream in streams:
        await trio.aclose_forcefully(stream)


GraphiteConnect = Callable[[ServerInfo], Awaitable[trio.SocketStream]]


async def wait_for(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds (points have no answer to wait for)."""
    with trio.fail_after(NETWORK_TIMEOUT):
        # Polling is the point here: nothing signals a stored Graphite point.
        while not await check():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def points_of(info: ServerInfo, key: str) -> list[tuple[int, float]]:
    async with open_client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
        return (await client.get(key)).get(key, [])


async def wait_for_points(info: ServerInfo, key: str, count: int) -> list[tuple[int, float]]:
    async def enough() -> bool:
        return len(await points_of(info, key)) >= count

    await wait_for(enough)
    return await points_of(info, key)


async def wait_for_counter(info: ServerInfo, name: str, value: int) -> None:
    async def reached() -> bool:
        reached_value: int = getattr(info.stats, name)
        return reached_value >= value

    await wait_for(reached)
    assert getattr(info.stats, name) == value


async def assert_silent_then_closed(stream: trio.SocketStream) -> None:
    """The listener wrote nothing, and closes after our end of stream."""
    await stream.send_eof()
    assert await receive_until_eof(stream) == b""


# --- the listener in the server ----------------------------------------------


async def test_graphite_port_is_off_by_default(server: ServerInfo) -> None:
    assert server.graphite_port is None


async def test_points_arrive_and_are_read_back(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start()
    assert info.graphite_port not in (None, 0, info.port)
    stream = await graphite_streams(info)
    await stream.send_all(
        b"palm.cpu 10.6 1501864247\n"
        b"palm.cpu\t2\t1501864248\r\n"
        b"  palm.mem   512.5  1501864247.75 \r\n"
        b"palm.cpu 3 1501864248\n"  # same second: the later value wins
    )
    assert await wait_for_points(info, "palm.mem", 1) == [(1501864247, 512.5)]
    assert await points_of(info, "palm.cpu") == [(1501864247, 10.6), (1501864248, 3.0)]
    assert info.stats.graphite_points == 4
    assert info.stats.graphite_bad_lines == 0
    await assert_silent_then_closed(stream)


async def test_missing_or_minus_one_timestamp_is_now(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start()
    stream = await graphite_streams(info)
    before = int(time.time())
    await stream.send_all(b"no.ts 1\nminus.one 2 -1\r\n")
    no_ts = await wait_for_points(info, "no.ts", 1)
    minus_one = await wait_for_points(info, "minus.one", 1)
    after = int(time.time())
    assert no_ts[0][1] == 1.0 and minus_one[0][1] == 2.0
    assert before <= no_ts[0][0] <= after
    assert before <= minus_one[0][0] <= after


async def test_bad_lines_are_counted_and_the_connection_goes_on(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start()
    stream = await graphite_streams(info)
    await stream.send_all(b"garbage\nk 1 2 3\nk nan 5\nk inf 5\n* 1 5\nk 1 5\n")
    await wait_for_counter(info, "graphite_bad_lines", 4)
    assert await wait_for_points(info, "k", 1) == [(5, 1.0)]
    assert info.stats.graphite_nan_values == 1
    # Later good lines on the same connection still land.
    await stream.send_all(b"\xff\xfe 1 5\nk 2 6\n")
    assert await wait_for_points(info, "k", 2) == [(5, 1.0), (6, 2.0)]
    assert info.stats.graphite_bad_lines == 5
    assert info.stats.graphite_connections_open == 1
    await assert_silent_then_closed(stream)


async def test_over_long_line_is_skipped_up_to_its_newline(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start(max_line_length=40)
    stream = await graphite_streams(info)
    await stream.send_all(b"long." + b"x" * 100)
    await trio.sleep(0.05)
    await stream.send_all(b"y" * 100 + b" 1 5\nafter.long 7 5\n")
    assert await wait_for_points(info, "after.long", 1) == [(5, 7.0)]
    assert info.stats.graphite_lines_too_long == 1
    assert info.stats.graphite_bad_lines == 1
    async with open_client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
        assert list(await client.get("*")) == ["after.long"]
    await assert_silent_then_closed(stream)


async def test_max_connections_closes_one_more(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start(max_connections=2)
    first = await graphite_streams(info)
    second = await graphite_streams(info)
    await wait_for_counter(info, "graphite_connections_open", 2)
    third = await graphite_streams(info)
    assert await receive_until_eof(third) == b""
    assert info.stats.graphite_connections_refused == 1
    # The main protocol's connections are counted apart.
    assert await points_of(info, "none") == []
    await first.send_all(b"from.first 1 5\n")
    await second.send_all(b"from.second 2 5\n")
    assert await wait_for_points(info, "from.first", 1) == [(5, 1.0)]
    assert await wait_for_points(info, "from.second", 1) == [(5, 2.0)]


async def test_many_lines_in_one_send_and_a_line_split_across_sends(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start()
    stream = await graphite_streams(info)
    count = 20_000
    await stream.send_all(b"".join(b"many %d %d\n" % (i, i) for i in range(count)))
    for piece in [b"spl", b"it.ke", b"y 4", b"2 10", b"0\r", b"\n"]:
        await stream.send_all(piece)
        await trio.sleep(0.01)
    assert await wait_for_points(info, "split.key", 1) == [(100, 42.0)]
    assert await wait_for_points(info, "many", count) == [(i, float(i)) for i in range(count)]
    assert info.stats.graphite_points == count + 1


@pytest.mark.parametrize("reset", [False, True])
async def test_peer_vanishing_mid_line(start: Start, reset: bool) -> None:
    info = await start()
    assert info.graphite_port is not None
    with trio.socket.socket() as sock:
        await sock.connect(("127.0.0.1", info.graphite_port))
        await sock.send(b"whole 1 5\ncut.off 2 1501")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await wait_for_counter(info, "graphite_bad_lines", 1)
    assert await points_of(info, "whole") == [(5, 1.0)]
    assert await points_of(info, "cut.off") == []
    await wait_for_counter(info, "graphite_connections_open", 0)
    # The listener goes on.
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
    async with stream:
        await stream.send_all(b"later 3 5\n")
        assert await wait_for_points(info, "later", 1) == [(5, 3.0)]


async def test_idle_timeout_closes_a_quiet_connection(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start(idle_timeout=0.2)
    stream = await graphite_streams(info)
    await stream.send_all(b"before.idle 1 5\n")
    assert await receive_until_eof(stream) == b""
    assert info.stats.graphite_connections_idle_closed == 1
    assert await points_of(info, "before.idle") == [(5, 1.0)]


async def test_stats_command_shows_the_counters(
    start: Start, graphite_streams: GraphiteConnect
) -> None:
    info = await start()
    stream = await graphite_streams(info)
    await stream.send_all(b"a 1 5\nb 2 5\nbad\nc nan 5\n")
    await wait_for_counter(info, "graphite_nan_values", 1)
    async with open_client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
        counters = await client.stats()
    expected = {
        "graphite_connections_open": 1,
        "graphite_connections_total": 1,
        "graphite_connections_refused": 0,
        "graphite_connections_idle_closed": 0,
        "graphite_connection_failures": 0,
        "graphite_points": 2,
        "graphite_bad_lines": 1,
        "graphite_lines_too_long": 0,
        "graphite_nan_values": 1,
    }
    assert {name: counters[name] for name in expected} == expected
    assert counters["points"] == 2


async def test_bad_lines_are_logged_shortened_and_rate_limited(
    start: Start, graphite_streams: GraphiteConnect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_metrics.graphite")
    info = await start()
    stream = await graphite_streams(info)
    long_bad = b"A" * 99 + b"BCDEF" + b"Z" * 196
    await stream.send_all(long_bad + b"\n" + b"bad\n" * 5)
    await wait_for_counter(info, "graphite_bad_lines", 6)
    messages = [r.getMessage() for r in caplog.records if r.name == "trio_metrics.graphite"]
    assert len(messages) == 1
    assert "got 1 fields" in messages[0]
    # The first 100 bytes, repr'd, then the length: never the 101st byte.
    assert messages[0].endswith(repr(b"A" * 99 + b"B") + "... (300 bytes)")


async def test_cancelling_closes_the_listener_and_its_connections() -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            functools.partial(serve, "127.0.0.1", 0, graphite_port=0)
        )
        assert info.graphite_port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
        await stream.send_all(b"k 1 5\n")
        await wait_for_counter(info, "graphite_points", 1)
        nursery.cancel_scope.cancel()
    async with stream:
        assert await receive_until_eof(stream) == b""
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
    assert info.stats.graphite_connections_open == 0


async def test_a_busy_graphite_port_is_a_graphite_listen_error() -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GraphiteListenError) as caught:
            await serve_until_signal(ServerConfig(host="127.0.0.1", port=0, graphite_port=port))
    assert caught.value.strerror == "Address already in use"


async def test_serve_refuses_a_graphite_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="Graphite port 65536"):
        await serve("127.0.0.1", 0, graphite_port=65536)


# --- the handler, over memory streams and unusual stores ---------------------


class RecordingStore(MetricStore):
    """A store that records every put_batch call."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        self.batches.append(list(keys))
        await super().put_batch(keys, values, timestamps)


async def test_good_lines_of_one_read_reach_the_store_in_one_call() -> None:
    store = RecordingStore()
    handler = GraphiteHandler(store, clock=lambda: 1234.9)
    client, server_side = trio.testing.memory_stream_pair()
    lines = b"".join(b"k%d %d 5\n" % (i, i) for i in range(1000))
    await client.send_all(lines + b"bad\nlast 1\n")
    await client.aclose()
    await handler.handle(server_side)
    assert len(store.batches) == 1
    assert store.batches[0] == [f"k{i}" for i in range(1000)] + ["last"]
    [series] = store.series("last")
    assert (list(series.timestamps), list(series.values)) == ([1234], [1.0])
    assert handler.stats.graphite_bad_lines == 1


class FailingStore(MetricStore):
    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        raise ConnectionError("the disk is gone")


async def test_a_failing_store_ends_that_connection_only(nursery: trio.Nursery) -> None:
    stats = ServerStats()
    addresses = await nursery.start(
        functools.partial(
            serve_graphite, "127.0.0.1", 0, store=FailingStore(), stats=stats, limits=Limits()
        )
    )
    port = addresses[0][1]
    for attempt in (1, 2):
        with trio.fail_after(NETWORK_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"k 1 5\n")
            assert await receive_until_eof(stream) == b""
        assert stats.graphite_connection_failures == attempt
    assert stats.graphite_connections_total == 2
    assert stats.graphite_points == 0
