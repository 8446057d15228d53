"""The pieces every listener shares: guarded_connection, ListenerCounters, sole_exception."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

import pytest
import trio
import trio.testing

from trio_metrics.transport import (
    ListenerCounters,
    ServerStats,
    ThrottledLogger,
    guarded_connection,
    sole_exception,
)

logger = logging.getLogger("test.guard")


class _Quiet(Exception):
    pass


def _guard(
    stream: trio.abc.Stream, stats: ServerStats, prefix: str = "graphite_"
) -> AbstractAsyncContextManager[trio.abc.Stream | None]:
    return guarded_connection(
        stream,
        ListenerCounters(stats, prefix),
        max_connections=1,
        warnings=ThrottledLogger(logger),
        logger=logger,
        what="test connection",
        quiet_failures=(_Quiet,),
    )


def test_counters_refuse_an_unknown_prefix() -> None:
    with pytest.raises(ValueError, match="no counter 'http_connections_open'"):
        ListenerCounters(ServerStats(), "http_")


async def test_a_connection_is_counted_open_then_closed() -> None:
    stats = ServerStats()
    stream, peer = trio.testing.memory_stream_pair()
    async with _guard(stream, stats) as admitted:
        assert admitted
        assert (stats.graphite_connections_open, stats.graphite_connections_total) == (1, 1)
        assert stats.connections_open == 0  # the other listener's counter
    assert (stats.graphite_connections_open, stats.graphite_connections_total) == (0, 1)
    assert await peer.receive_some(10) == b""  # closed


async def test_one_past_the_limit_is_refused_and_closed(caplog: pytest.LogCaptureFixture) -> None:
    stats = ServerStats()
    first, _ = trio.testing.memory_stream_pair()
    second, second_peer = trio.testing.memory_stream_pair()
    async with _guard(first, stats) as admitted:
        assert admitted
        async with _guard(second, stats) as admitted_too:
            assert not admitted_too
        assert await second_peer.receive_some(10) == b""
    assert stats.graphite_connections_refused == 1
    assert stats.graphite_connections_total == 1
    assert "1 test connections are open (the limit)" in caplog.text


@pytest.mark.parametrize(
    ("error", "logged"),
    [(_Quiet("disk full"), "closed a test connection: disk full"), (KeyError("bug"), "Traceback")],
)
async def test_a_failure_ends_this_connection_only(
    error: Exception, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    stats = ServerStats()
    stream, peer = trio.testing.memory_stream_pair()
    async with _guard(stream, stats, prefix=""):
        raise error
    assert (stats.connection_failures, stats.connections_open) == (1, 0)
    assert await peer.receive_some(10) == b""
    assert logged in caplog.text


async def test_cancellation_passes_through_and_closes() -> None:
    stats = ServerStats()
    stream, peer = trio.testing.memory_stream_pair()
    with trio.CancelScope() as scope:
        async with _guard(stream, stats):
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert (stats.graphite_connection_failures, stats.graphite_connections_open) == (0, 0)
    assert await peer.receive_some(10) == b""


def test_sole_exception_unwraps_groups_of_one() -> None:
    inner = OSError(98, "taken")
    assert sole_exception(ExceptionGroup("a", [ExceptionGroup("b", [inner])])) is inner
    two = ExceptionGroup("c", [inner, ValueError()])
    assert sole_exception(two) is two
    plain = ValueError()
    assert sole_exception(plain) is plain
