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
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import attrs
import trio

from .accept import accept_forever, take_listening_sockets
from .answer_cache import DEFAULT_ANSWER_CACHE_BYTES, AnswerCache
from .connection import ConnectionHandler
from .limits import DEFAULT_MAX_BUFFERED_ANSWER, DEFAULT_MAX_CONNECTIONS, Limits
from .lines import DEFAULT_MAX_LINE_LENGTH
from .stats import ServerStats
from .store import MetricStore, Store

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


async def serve(
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    store: Store | None = None,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float | None = None,
    max_buffered_answer: int = DEFAULT_MAX_BUFFERED_ANSWER,
    answer_cache_bytes: int = DEFAULT_ANSWER_CACHE_BYTES,
    http_port: int | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve the metrics protocol on ``host:port`` until cancelled.

    ``port=0`` picks a free port; start the server with
    ``info = await nursery.start(serve, host, 0)`` to learn it
    (``info.port``). ``host=None`` listens on every local address (with
    port 0 each address may get its own port: see ``info.addresses``).
    ``store`` defaults to a new in-memory :class:`MetricStore`. The limits
    (``max_line_length``, ``max_connections``, ``idle_timeout``,
    ``max_buffered_answer``) are described in :class:`~trio_metrics.Limits`.
    ``answer_cache_bytes`` bounds the cache of encoded ``get`` answer lines
    (:mod:`trio_metrics.answer_cache`; used with a :class:`MetricStore`,
    0 turns it off). ``http_port``, if given, also serves the HTTP API and
    dashboard (:mod:`trio_metrics.http_api`) on the first listening address
    (0 picks a free port: ``info.http_port``); it stops with the server.

    Every connection is handled by its own task in the server's nursery. A
    connection that fails (reset, vanished peer, a limit, even a bug in its
    handling) is closed and logged; it never stops the server or touches
    another connection. Cancelling the surrounding scope closes the
    listeners and every open connection. Raises :exc:`ValueError` for a bad
    limit and :exc:`OSError` if the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    limits = Limits(
        max_line_length=max_line_length,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        max_buffered_answer=max_buffered_answer,
    )
    if answer_cache_bytes < 0:
        raise ValueError("answer_cache_bytes must not be negative")
    if store is None:
        store = MetricStore()
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
    cache = None
    watched: MetricStore | None = None
    if isinstance(store, MetricStore) and answer_cache_bytes:
        cache = AnswerCache(answer_cache_bytes)
        watched = store
        watched.add_change_listener(cache.invalidate)
    handler = ConnectionHandler(store, info.stats, limits, cache)
    logger.info(
        "listening on %s port %d (%s; store: %s; answer cache %s)",
        ", ".join(host for host, _ in addresses),
        info.port,
        limits.describe(),
        type(store).__name__,
        "off" if cache is None else f"{cache.budget} B",
    )
    started = time.monotonic()
    try:
        # The sockets are bound and listening already: a client that
        # connects now waits in the backlog until it is accepted.
        try:
            async with trio.open_nursery() as nursery:
                if http_port is not None:
                    info = await _start_http(nursery, info, http_port, sockets)
                task_status.started(info)
                await accept_forever(sockets, handler.handle)
        except ExceptionGroup as group:
            # The nursery (there for the HTTP server) wraps what used to be
            # raised bare, such as an OSError from binding the HTTP port.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    finally:
        if watched is not None and cache is not None:
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
    nursery: trio.Nursery, info: ServerInfo, port: int, sockets: list[socket.socket]
) -> ServerInfo:
    # Imported here: programs that only use the clients need not load an HTTP stack.
    from .http_server import serve_http

    try:
        http = await nursery.start(
            functools.partial(serve_http, info.host, port, store=info.store, stats=info.stats)
        )
    except BaseException as exc:
        for sock in sockets:  # accept_forever, which closes them, never ran
            sock.close()
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"HTTP port {port}: {exc.strerror or exc}") from exc
        raise
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

    Raises the bare :exc:`OSError` when the address cannot be bound.
    """
    try:
        async with trio.open_nursery() as nursery:
            if threading.current_thread() is threading.main_thread():
                await nursery.start(_cancel_on_signal, nursery.cancel_scope)
            info = await nursery.start(_serve_with_options, host, port, options)
            if ready is not None:
                ready(info)
    except ExceptionGroup as group:
        # A failed start ends the nursery with that one error in a group;
        # callers of a blocking entry point expect the error itself.
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], OSError):
            raise group.exceptions[0] from None
        raise


async def _serve_with_options(
    host: str | None,
    port: int,
    options: dict[str, Any],
    *,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(host, port, task_status=task_status, **options)


async def _cancel_on_signal(
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # The receiver is installed before the server starts, so no early
    # signal can kill the process the default way.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
