"""Graceful stop: ServerInfo.shutdown() drains connections, then serve() returns."""

from __future__ import annotations

import functools

import trio
from net import NETWORK_TIMEOUT, receive_exactly, receive_until_eof

from trio_metrics import MetricStore, ServerInfo, serve


async def test_shutdown_answers_what_was_read_then_closes_and_returns() -> None:
    puts = 2000
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        await stream.send_all(b"".join(b"put k 1 %d\n" % i for i in range(puts)) + b"get k\n")
        with trio.fail_after(NETWORK_TIMEOUT):
            while info.stats.gets == 0:  # noqa: ASYNC110 - polls a plain counter
                await trio.sleep(0.01)
        info.shutdown()
        answers = await receive_until_eof(stream)
        await stream.aclose()
    # The nursery ended: serve() returned by itself after the drain.
    assert answers.startswith(b"ok\n\n" * puts)
    get_answer = answers[len(b"ok\n\n") * puts :]
    assert get_answer.count(b"\n") == puts + 2
    assert get_answer.startswith(b"ok\nk 1.0 0\n")
    assert info.stats.connections_closed_at_stop == 0


async def test_a_client_that_never_reads_is_closed_after_the_grace() -> None:
    store = MetricStore()
    store.put_columns(["big"] * 1_000_000, [1.0] * 1_000_000, range(1_000_000))
    with trio.fail_after(NETWORK_TIMEOUT):
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(
                functools.partial(serve, "127.0.0.1", 0, store=store, shutdown_grace=0.3)
            )
            stream = await trio.open_tcp_stream("127.0.0.1", info.port)
            await stream.send_all(b"get big\n")
            await receive_exactly(stream, 10)  # the answer has started, and is stuck
            started = trio.current_time()
            info.shutdown()
        stopped = trio.current_time() - started
        await stream.aclose()
    assert 0.3 <= stopped < 3
    assert info.stats.connections_closed_at_stop == 1


async def test_no_connection_is_taken_after_shutdown() -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
        info.shutdown()
    with trio.fail_after(NETWORK_TIMEOUT):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        except OSError:
            return  # refused: the listener is closed
        # Accepted by the kernel before the close: it must not be served.
        async with stream:
            await stream.send_all(b"stats\n")
            assert await receive_until_eof(stream) == b""
