"""Shared fixtures: real servers on 127.0.0.1, in the test's trio run or in a thread."""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from net import NETWORK_TIMEOUT

from trio_metrics import ServerInfo, serve


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ServerInfo]:
    """A server on a free port of 127.0.0.1, in the test's own trio run."""
    info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
    yield info


@contextmanager
def server_in_thread(**options: Any) -> Iterator[ServerInfo]:
    """Run a real server in its own thread and trio run, for blocking clients."""
    started: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(functools.partial(serve, "127.0.0.1", 0, **options))
            started.put((info, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            started.put(exc)

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    item = started.get(timeout=NETWORK_TIMEOUT)
    if isinstance(item, BaseException):
        raise item
    info, token, scope = item
    try:
        yield info
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(NETWORK_TIMEOUT)
        assert not thread.is_alive(), "server thread did not stop"


@pytest.fixture
def threaded_server() -> Iterator[ServerInfo]:
    """A server in a background thread, for tests that use blocking sockets."""
    with server_in_thread() as info:
        yield info
