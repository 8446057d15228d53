"""The metrics server: one trio task per TCP connection, all in one nursery.

:func:`serve` runs the server inside a caller's nursery
(``info = await nursery.start(serve, host, 0)`` tells the real port);
:func:`run_server` is the blocking entry point that also stops cleanly on
Ctrl-C and SIGTERM. What happens on each connection is
:class:`~trio_metrics.connection.ConnectionHandler`'s business.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from ..ingest._graphite import serve_graphite
from ..storage._durable import (
    DEFAULT_COMPACT_MIN_BYTES,
    DurableStore,
    FsyncPolicy,
    open_durable_store,
)
from ..storage._store import MetricStore, Store
from ..transport._accept import accept_forever, take_listening_sockets
from ..transport._limits import DEFAULT_MAX_BUFFERED_ANSWER, DEFAULT_MAX_CONNECTIONS, Limits
from ..transport._lines import DEFAULT_MAX_LINE_LENGTH
from ..transport._stats import ServerStats
from ._answer_cache import DEFAULT_ANSWER_CACHE_BYTES, AnswerCache
from ._connection import ConnectionHandler

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerInfo",
    "run_server",
    "serve",
    "serve_until_signal",
]

logger = logging.getLogger("trio_metrics.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
#: Seconds a stopping server gives its connections to finish what they read.
DEFAULT_SHUTDOWN_GRACE = 5.0


@attrs.frozen
class ServerInfo:
    """What :func:`serve` hands to ``nursery.start`` once it is listening."""

    host: str
    port: int
    store: Store
    stats: ServerStats
    limits: Limits
    #: Every address the server listens on, as ``(host, port)``.
    addresses: list[tuple[str, int]] = attrs.field(repr=False)
    #: The port of the HTTP API and dashboard, or None if it is off.
    http_port: int | None = None
    #: The Graphite plaintext listener's port, or ``None`` when it is off.
    graphite_port: int | None = None
    _stop_requested: trio.Event = attrs.field(factory=trio.Event, repr=False, init=False)

    def shutdown(self) -> None:
        """Stop the server gracefully; :func:`serve` then returns.

        It stops accepting, lets every connection finish the commands it
        has read and write their answers (for up to ``shutdown_grace``
        seconds, then closes the rest), then closes the store, which
        for a data directory writes and fsyncs the log. Calling it again
        does nothing. Must be called from the server's trio thread.
        """
        self._stop_requested.set()


async def serve(
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    store: Store | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    fsync: FsyncPolicy | str = FsyncPolicy.EVERYSEC,
    repair: bool = False,
    compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float | None = None,
    max_buffered_answer: int = DEFAULT_MAX_BUFFERED_ANSWER,
    answer_cache_bytes: int = DEFAULT_ANSWER_CACHE_BYTES,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    graphite_port: int | None = None,
    http_port: int | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the metrics protocol on ``host:port`` until stopped.

    ``port=0`` picks a free port; start the server with
    ``info = await nursery.start(serve, host, 0)`` to learn it
    (``info.port``). ``host=None`` listens on every local address (with
    port 0 each address may get its own port: see ``info.addresses``).

    Storage: ``data_dir`` keeps the points in that directory (a write-ahead
    log fsynced by the ``fsync`` policy, ``always``, ``everysec`` or
    ``never``; snapshots once the log is over ``compact_min_bytes`` and
    twice the snapshot; see docs/durability.md). It is locked and recovered
    before the server listens; ``repair`` lets recovery cut a damaged file.
    Otherwise ``store`` is used, by default a new in-memory
    :class:`MetricStore` (the points are lost when the server stops). The
    limits (``max_line_length``, ``max_connections``, ``idle_timeout``,
    ``max_buffered_answer``) are described in :class:`~trio_metrics.Limits`.
    ``answer_cache_bytes`` bounds the cache of encoded ``get`` answer lines
    (:mod:`trio_metrics.answer_cache`; used with a :class:`MetricStore`,
    0 turns it off). ``graphite_port`` also takes Graphite plaintext lines
    on that port of the same host into the same store
    (:func:`~trio_metrics.graphite.serve_graphite`; off when ``None``; with
    0, ``info.graphite_port`` tells the real port). ``http_port``, if
    given, also serves the HTTP API, ``/metrics`` and the dashboard
    (:mod:`trio_metrics.http_api`) on the first listening address (0 picks a
    free port: ``info.http_port``).

    Every connection is handled by its own task. A connection that fails
    (reset, vanished peer, a limit, even a bug in its handling) is closed
    and logged; it never stops the server or touches another connection.

    :meth:`ServerInfo.shutdown` stops the server gracefully and makes this
    function return. Cancelling it instead closes the listeners and every
    connection at once; a data directory's log is still written and
    fsynced on the way out. Raises :exc:`ValueError` for a bad option,
    :exc:`OSError` if an address (main, Graphite or HTTP) cannot be bound, and
    :exc:`~trio_metrics.data_dir.DataDirError` if the data directory is
    locked by another server or damaged.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    if graphite_port is not None and not 0 <= graphite_port <= 65535:
        raise ValueError(f"Graphite port {graphite_port} is outside 0..65535")
    limits = Limits(
        max_line_length=max_line_length,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        max_buffered_answer=max_buffered_answer,
    )
    if answer_cache_bytes < 0:
        raise ValueError("answer_cache_bytes must not be negative")
    if shutdown_grace < 0:
        raise ValueError("shutdown_grace must not be negative")
    if data_dir is not None and store is not None:
        raise ValueError("give either store or data_dir, not both")
    policy = FsyncPolicy(fsync)
    async with AsyncExitStack() as resources:
        durable: DurableStore | None = None
        if data_dir is not None:
            durable = await resources.enter_async_context(
                open_durable_store(
                    data_dir, fsync=policy, repair=repair, compact_min_bytes=compact_min_bytes
                )
            )
            store = durable
        elif store is None:
            store = MetricStore()
            logger.warning(
                "no data directory: points are kept in memory only and lost when the "
                "server stops (--data-dir DIR keeps them)"
            )
        await _serve_store(
            host,
            port,
            store,
            durable,
            limits,
            answer_cache_bytes,
            shutdown_grace,
            graphite_port,
            http_port,
            task_status,
        )


async def _serve_store(
    host: str | None,
    port: int,
    store: Store,
    durable: DurableStore | None,
    limits: Limits,
    answer_cache_bytes: int,
    shutdown_grace: float,
    graphite_port: int | None,
    http_port: int | None,
    task_status: trio.TaskStatus[ServerInfo],
) -> None:
    sockets = take_listening_sockets(await trio.open_tcp_listeners(port, host=host))
    addresses = [sock.getsockname()[:2] for sock in sockets]
    info = ServerInfo(
        host=addresses[0][0],
        port=addresses[0][1],
        store=store,
        stats=ServerStats(),
        limits=limits,
        addresses=addresses,
    )
    watched = durable.memory if durable is not None else store
    cache = None
    if isinstance(watched, MetricStore) and answer_cache_bytes:
        cache = AnswerCache(answer_cache_bytes)
        watched.add_change_listener(cache.invalidate)
    handler = ConnectionHandler(
        store,
        info.stats,
        limits,
        cache,
        extra_counters=None if durable is None else durable.figures_as_dict,
    )
    started = time.monotonic()
    try:
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                if graphite_port is not None:
                    graphite = await accepting.start(
                        functools.partial(
                            serve_graphite,
                            host,
                            graphite_port,
                            store=store,
                            stats=info.stats,
                            limits=limits,
                        )
                    )
                    info = attrs.evolve(info, graphite_port=graphite[0][1])
                if http_port is not None:
                    info = await _start_http(accepting, info, http_port, durable)
                logger.info(
                    "listening on %s port %d (%s; store: %s; answer cache %s; graphite %s;"
                    " http %s)",
                    ", ".join(host for host, _ in addresses),
                    info.port,
                    limits.describe(),
                    type(store).__name__
                    if durable is None
                    else f"{durable.directory}, fsync {durable.policy.value}",
                    "off" if cache is None else f"{cache.budget} B",
                    "off" if info.graphite_port is None else f"port {info.graphite_port}",
                    "off" if info.http_port is None else f"port {info.http_port}",
                )
                # The sockets are bound and listening already: a client that
                # connects now waits in the backlog until it is accepted.
                accepting.start_soon(accept_forever, sockets, handler.handle, connections)
                task_status.started(info)
                await info._stop_requested.wait()
                # Stops the Graphite listener too (it answers nothing, so
                # there is nothing of its to drain) and the HTTP server.
                accepting.cancel_scope.cancel()
            logger.info("stopping: no new connections; open ones finish what they read")
            handler.drain()
            with trio.move_on_after(shutdown_grace):
                await handler.wait_closed()
            connections.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A listener that could not start (a taken Graphite or HTTP port)
        # ends the nurseries with that one error in a group, or a group in a
        # group; callers expect the OSError itself, as for the main port.
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if isinstance(error, OSError):
            raise error from None
        raise
    finally:
        for sock in sockets:
            sock.close()  # not yet handed to accept_forever if a start failed
        if isinstance(watched, MetricStore) and cache is not None:
            watched.remove_change_listener(cache.invalidate)
        stats = info.stats
        logger.info(
            "stopped after %.0fs: %d connections served, %d commands, %d wrong, "
            "%d refused at the limit, %d open ones closed",
            time.monotonic() - started,
            stats.connections_total,
            stats.commands,
            stats.errors,
            stats.connections_refused,
            stats.connections_closed_at_stop,
        )


async def _start_http(
    nursery: trio.Nursery, info: ServerInfo, port: int, durable: DurableStore | None
) -> ServerInfo:
    # Imported here: programs that only use the clients need not load an HTTP stack.
    from ..http._prometheus import durability_figures
    from ..http._server import HttpListenError, serve_http

    extra = None if durable is None else lambda: durability_figures(durable.figures_as_dict())
    try:
        http = await nursery.start(
            functools.partial(
                serve_http, info.host, port, store=info.store, stats=info.stats, extra_figures=extra
            )
        )
    except HttpListenError:
        raise
    except OSError as exc:
        # Its own type, so that callers can tell which port failed.
        raise HttpListenError(exc.errno, exc.strerror or str(exc)) from exc
    return attrs.evolve(info, http_port=http.port)


def run_server(
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    **options: Any,
) -> None:
    """Run the server until Ctrl-C or SIGTERM, then return normally.

    Blocks the calling thread. Takes the keyword options of :func:`serve`.
    Signals are caught only when called from the main thread (elsewhere
    Python does not deliver them); there, cancel by ending the thread's
    program. Raises :exc:`OSError` if the address cannot be bound.
    """
    trio.run(serve_until_signal, host, port, None, options)


async def serve_until_signal(
    host: str | None,
    port: int,
    ready: Callable[[ServerInfo], None] | None,
    options: dict[str, Any],
) -> None:
    """Run :func:`serve` until SIGINT or SIGTERM; call ``ready`` once listening.

    The first signal stops the server gracefully (:meth:`ServerInfo.shutdown`);
    a second one, or one before the server listens, stops it at once.
    Raises the bare error when the server cannot start: :exc:`OSError`,
    :exc:`DataDirError`, :exc:`ValueError` for a bad option, :exc:`TypeError`
    for an unknown one.
    """
    try:
        async with trio.open_nursery() as nursery:
            server: list[ServerInfo] = []
            if threading.current_thread() is threading.main_thread():
                await nursery.start(_stop_on_signal, nursery.cancel_scope, server)
            info = await nursery.start(
                _serve_with_options, host, port, options, nursery.cancel_scope
            )
            server.append(info)
            if ready is not None:
                ready(info)
    except ExceptionGroup as group:
        # A failed start ends the nursery with that one error in a group (a
        # group in a group when a listener inside serve failed); callers of
        # a blocking entry point expect the error itself.
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if isinstance(error, Exception):
            raise error from None
        raise


async def _serve_with_options(
    host: str | None,
    port: int,
    options: dict[str, Any],
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(host, port, task_status=task_status, **options)
    # Stopped gracefully: the signal watcher has nothing left to do.
    scope.cancel()


async def _stop_on_signal(
    scope: trio.CancelScope,
    server: list[ServerInfo],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # The receiver is installed before the server starts, so no early
    # signal can kill the process the default way.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if server and not server[0]._stop_requested.is_set():
                logger.info("received %s, shutting down (again to stop at once)", name)
                server[0].shutdown()
            else:
                logger.info("received %s, stopping at once", name)
                scope.cancel()
                return
