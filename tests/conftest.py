"""Shared fixtures: real servers on 127.0.0.1, in the test's trio run or in a thread."""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest
import trio
from browser import chromium, missing_chromium
from collectd_daemon import COLLECTD_MISSING, find_collectd
from net import NETWORK_TIMEOUT
from playwright.sync_api import ConsoleMessage, Error, Page
from redis_cluster import LocalCluster, local_cluster, redis_programs_missing

from trio_metrics import MemoryStorage, ServerConfig, ServerInfo, serve
from trio_metrics.storage import RedisStorage, Storage


def skip_or_fail(reason: str) -> NoReturn:
    """Stop a test that lacks a system program: fail in CI, which installs them all, else skip.

    A test that needs collectd or Chromium must not turn green in CI by
    skipping: there a missing program is a broken setup.
    """
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason)
    pytest.skip(reason)


#: Runs a test once over the memory store and once over a real Redis Cluster
#: (the ``server``, ``threaded_server`` and ``start_server`` fixtures use it).
both_stores = pytest.mark.parametrize("server_storage", ["memory", "redis-cluster"], indirect=True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Six ``redis-server`` processes on 127.0.0.1 made one cluster, once a session."""
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def server_storage(request: pytest.FixtureRequest) -> Storage:
    """The store of the test's server: memory unless parametrised with ``both_stores``;
    over Redis, the cluster is emptied first."""
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        return MemoryStorage()
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    cluster.wait_ok()
    cluster.flush()
    return RedisStorage(cluster.url)


@pytest.fixture
async def server(nursery: trio.Nursery, server_storage: Storage) -> AsyncIterator[ServerInfo]:
    """A server on a free port of 127.0.0.1, in the test's own trio run."""
    config = ServerConfig(host="127.0.0.1", port=0, storage=server_storage)
    info: ServerInfo = await nursery.start(serve, config)
    yield info


@contextmanager
def server_in_thread(config: ServerConfig | None = None, **options: Any) -> Iterator[ServerInfo]:
    """Run a real server in its own thread and trio run, for blocking clients.

    Made from ``config`` when given, else from ``serve``'s keyword ``options``.
    """
    started: queue.Queue[Any] = queue.Queue()
    start = (
        functools.partial(serve, "127.0.0.1", 0, **options)
        if config is None
        else functools.partial(serve, config)
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(start)
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
def threaded_server(server_storage: Storage) -> Iterator[ServerInfo]:
    """A server in a background thread, for tests that use blocking sockets."""
    with server_in_thread(ServerConfig(host="127.0.0.1", port=0, storage=server_storage)) as info:
        yield info


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    """A headless Chromium page and the console errors and warnings it logs."""
    reason = missing_chromium()
    if reason is not None:
        skip_or_fail(reason)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(NETWORK_TIMEOUT * 1000)
        errors: list[str] = []

        def console(message: ConsoleMessage) -> None:
            if message.type in {"error", "warning"}:
                errors.append(f"console {message.type}: {message.text}")

        def page_error(error: Error) -> None:
            errors.append(f"page error: {error}")

        page.on("console", console)
        page.on("pageerror", page_error)
        yield page, errors
        context.close()


@pytest.fixture
def collectd_program() -> str:
    """The path of the collectd program, for tests that run it as a Graphite sender."""
    program = find_collectd()
    if program is None:
        skip_or_fail(COLLECTD_MISSING)
    return program
