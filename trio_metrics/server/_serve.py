"""The metrics server: one trio task per TCP connection, all in one nursery.

:func:`serve` runs the server inside a caller's nursery
(``info = await nursery.start(serve, config)`` tells the real port). What
happens on each connection is
:class:`~trio_metrics.server.ConnectionHandler`'s business; blocking entry
points and signals are in :mod:`trio_metrics.server._run`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from typing import Unpack, overload

import attrs
import trio

from ..ingest import serve_graphite
from ..storage import (
    REDIS_RETENTION_LIMIT,
    CopyBudget,
    MemoryStorage,
    OpenedStorage,
    RedisStorage,
    Store,
    open_storage,
)
from ..transport import (
    Authenticator,
    Limits,
    ServerStats,
    TlsServer,
    accept_forever,
    sole_exception,
    take_listening_sockets,
)
from ._answer_cache import AnswerCache
from ._config import DEFAULT_HOST, DEFAULT_PORT, ServeOptions, ServerConfig
from ._connection import ConnectionHandler
from ._protection import check_protected_mode, describe_protection

__all__ = ["ListenError", "ServerInfo", "serve"]

logger = logging.getLogger("trio_metrics.server")


class ListenError(OSError):
    """The main protocol's address could not be bound (``errno`` as the cause's)."""


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
    #: The settings the server runs with.
    config: ServerConfig = attrs.field(factory=ServerConfig, repr=False)
    #: The TLS context of every listener (``reload()`` after rotating the
    #: certificate), or ``None`` for plaintext.
    tls: TlsServer | None = attrs.field(default=None, repr=False)
    #: The token checks of every listener (``reload()`` after editing the
    #: token file), or ``None`` without authentication.
    auth: Authenticator | None = attrs.field(default=None, repr=False)
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

    def reload_credentials(self) -> None:
        """Read the TLS certificate, key and CA files and the token file again.

        New connections use them; open ones keep the session and the
        authentication they have. A file that cannot be used raises
        (:exc:`~trio_metrics.TlsFilesError`, :exc:`~trio_metrics.TokenFileError`)
        and leaves what was in use in place. SIGHUP calls this for
        :func:`~trio_metrics.run_server` and the CLI.
        """
        if self.tls is not None:
            self.tls.reload()
        if self.auth is not None:
            self.auth.reload()

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`shutdown` has been called."""
        return self._stop_requested.is_set()


@overload
async def serve(
    config: ServerConfig, /, *, task_status: trio.TaskStatus[ServerInfo] = ...
) -> None: ...


@overload
async def serve(
    host: str | None = ...,
    port: int = ...,
    *,
    task_status: trio.TaskStatus[ServerInfo] = ...,
    **options: Unpack[ServeOptions],
) -> None: ...


async def serve(
    host: ServerConfig | str | None = DEFAULT_HOST,
    port: int | None = None,
    *,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
    **options: Unpack[ServeOptions],
) -> None:
    """Serve the metrics protocol as ``config`` says, until stopped.

    ``serve(config)`` takes a whole :class:`~trio_metrics.ServerConfig`;
    ``serve(host, port, **options)`` is the same with the keywords of
    :meth:`ServerConfig.from_options <trio_metrics.ServerConfig.from_options>`
    (``store``, ``data_dir``, ``fsync``, the limits, ``graphite_port``,
    ``http_port`` ...). Start it with ``info = await nursery.start(serve,
    config)`` to learn the real ports (``info.port``, ``info.graphite_port``,
    ``info.http_port``; with ``host=None`` and port 0 each address may get
    its own port: ``info.addresses``).

    A data directory is locked and recovered before the server listens.
    Every connection is handled by its own task. A connection that fails
    (reset, vanished peer, a limit, even a bug in its handling) is closed
    and logged; it never stops the server or touches another connection.

    :meth:`ServerInfo.shutdown` stops the server gracefully and makes this
    function return. Cancelling it instead closes the listeners and every
    connection at once; a data directory's log is still written and
    fsynced on the way out. Raises :exc:`ValueError` for a bad option,
    :exc:`~trio_metrics.ListenError` (an :exc:`OSError`) if the main address
    cannot be bound (:exc:`~trio_metrics.GraphiteListenError` or
    :exc:`~trio_metrics.HttpListenError` for the other ports), and
    :exc:`~trio_metrics.DataDirError` if the data directory is locked by
    another server or damaged, :exc:`~trio_metrics.ProtectedModeError` for a
    non-loopback address without tokens or client certificates (unless
    ``config.insecure_open``), :exc:`~trio_metrics.TlsFilesError` or
    :exc:`~trio_metrics.TokenFileError` for a file that cannot be used.
    """
    if isinstance(host, ServerConfig):
        if port is not None or options:
            raise TypeError("serve(config) takes no other settings: put them in the config")
        config = host
    else:
        config = ServerConfig.from_options(host, DEFAULT_PORT if port is None else port, **options)
    async with open_storage(config.storage, config.retention) as storage:
        try:
            await _serve_storage(config, storage, task_status)
        except BaseExceptionGroup as group:
            # A listener that could not start (a taken Graphite or HTTP
            # port) ends the nurseries with that one error in a group;
            # callers expect the OSError itself, as for the main port.
            error = sole_exception(group)
            if isinstance(error, OSError):
                raise error from None
            raise


async def _serve_storage(
    config: ServerConfig,
    storage: OpenedStorage,
    task_status: trio.TaskStatus[ServerInfo],
) -> None:
    # Refused before anything is bound when the address says it already
    # (every address, or a literal one); a host name is checked once resolved.
    check_protected_mode(config, [config.host or "0.0.0.0"], literal_only=True)
    # Loaded before listening: a bad certificate, key or token file stops the start.
    tls = None if config.tls is None else TlsServer(config.tls)
    auth = None if config.auth is None else Authenticator(config.auth)
    try:
        listeners = await trio.open_tcp_listeners(config.port, host=config.host)
    except OSError as exc:
        # Its own type: any other OSError at start-up is not about the port.
        raise ListenError(exc.errno, exc.strerror or str(exc)) from exc
    sockets = take_listening_sockets(listeners)
    addresses = [sock.getsockname()[:2] for sock in sockets]
    try:
        check_protected_mode(config, [host for host, _ in addresses])
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    info = ServerInfo(
        host=addresses[0][0],
        port=addresses[0][1],
        store=storage.store,
        stats=ServerStats(),
        limits=config.limits,
        addresses=addresses,
        config=config,
        tls=tls,
        auth=auth,
    )
    started = time.monotonic()
    # A start that fails (a taken Graphite or HTTP port) ran nothing to sum up.
    running = False
    try:
        with _answer_cache(config, storage) as cache:
            handler = ConnectionHandler(
                storage.store,
                info.stats,
                config.limits,
                cache,
                extra_counters=storage.figures,
                copy_budget=_copy_budget(config, storage),
                reads=storage.reads,
                tls=tls,
                auth=auth,
            )
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:
                    info = await _start_side_listeners(accepting, info, storage)
                    _warn_of_storage_limits(config)
                    logger.info("listening on %s", _describe(info, storage, cache))
                    logger.info("%s", describe_protection(config))
                    running = True
                    # The sockets are bound and listening already: a client
                    # that connects now waits in the backlog until accepted.
                    accepting.start_soon(accept_forever, sockets, handler.handle, connections)
                    task_status.started(info)
                    await info._stop_requested.wait()
                    # Stops the Graphite listener too (it answers nothing, so
                    # there is nothing of its to drain) and the HTTP server.
                    accepting.cancel_scope.cancel()
                await _drain(handler, config.shutdown_grace)
                connections.cancel_scope.cancel()
    finally:
        for sock in sockets:
            sock.close()  # not yet handed to accept_forever if a start failed
        if running:
            _log_stopped(info.stats, time.monotonic() - started)


@contextlib.contextmanager
def _answer_cache(config: ServerConfig, storage: OpenedStorage) -> Iterator[AnswerCache | None]:
    # Only a store that reports its changes can have its answers cached.
    watched = storage.watched
    if watched is None or not config.answer_cache_bytes:
        yield None
        return
    cache = AnswerCache(config.answer_cache_bytes)
    watched.add_change_listener(cache.invalidate)
    try:
        yield cache
    finally:
        watched.remove_change_listener(cache.invalidate)


def _copy_budget(config: ServerConfig, storage: OpenedStorage) -> CopyBudget | None:
    # Only reads of our own in-memory store are counted: a store of the
    # caller's own copies (or streams) as it likes.
    if storage.reads is None or not config.answer_copy_budget_bytes:
        return None
    return CopyBudget(config.answer_copy_budget_bytes)


async def _start_side_listeners(
    nursery: trio.Nursery, info: ServerInfo, storage: OpenedStorage
) -> ServerInfo:
    """Start the Graphite and HTTP listeners the config asks for; return ``info`` with ports."""
    config = info.config
    if config.graphite_port is not None:
        graphite = await nursery.start(
            functools.partial(
                serve_graphite,
                config.host,
                config.graphite_port,
                store=info.store,
                stats=info.stats,
                limits=config.limits,
                tls=info.tls,
            )
        )
        info = attrs.evolve(info, graphite_port=graphite[0][1])
    if config.http_port is not None:
        info = attrs.evolve(
            info, http_port=await _start_http(nursery, info, config.http_port, storage)
        )
    return info


async def _start_http(
    nursery: trio.Nursery, info: ServerInfo, port: int, storage: OpenedStorage
) -> int:
    # Imported here: programs that only use the clients need not load an HTTP stack.
    from ..http import HttpListenError, durability_figures, serve_http

    figures = storage.figures
    extra = None if figures is None else lambda: durability_figures(figures())
    try:
        http = await nursery.start(
            functools.partial(
                serve_http,
                info.host,
                port,
                store=info.store,
                stats=info.stats,
                limits=info.config.http_limits,
                extra_figures=extra,
                auth=info.auth,
                tls=info.tls,
            )
        )
    except HttpListenError:
        raise
    except OSError as exc:
        # Its own type, so that callers can tell which port failed.
        raise HttpListenError(exc.errno, exc.strerror or str(exc)) from exc
    port_: int = http.port
    return port_


async def _drain(handler: ConnectionHandler, grace: float) -> None:
    """The graceful stop: every connection answers what it read, for up to ``grace`` seconds."""
    logger.info("stopping: no new connections; open ones finish what they read")
    handler.drain()
    with trio.move_on_after(grace):
        await handler.wait_closed()


def _describe(info: ServerInfo, storage: OpenedStorage, cache: AnswerCache | None) -> str:
    """The start-up log line: where the server listens and with what settings."""
    config = info.config
    graphite = "off" if info.graphite_port is None else f"port {info.graphite_port}"
    http = (
        "off"
        if info.http_port is None
        else f"port {info.http_port} ({config.http_limits.describe()})"
    )
    return (
        f"{', '.join(host for host, _ in info.addresses)} port {info.port}"
        f" ({config.limits.describe()}; store: {storage.description};"
        f" answer cache {'off' if cache is None else f'{cache.budget} B'};"
        f" answer copy budget {config.answer_copy_budget_bytes or 'off'}"
        f"{' B' if config.answer_copy_budget_bytes else ''};"
        f" shutdown grace {config.shutdown_grace:g}s;"
        f" graphite {graphite}; http {http};"
        f" {'plaintext' if config.tls is None else config.tls.describe()})"
    )


def _warn_of_storage_limits(config: ServerConfig) -> None:
    """Say once, when the server listens, that its points die with it, or
    that retention rules over Redis do not downsample."""
    if isinstance(config.storage, MemoryStorage):
        logger.warning(
            "no data directory: points are kept in memory only and lost when the "
            "server stops (--data-dir DIR keeps them)"
        )
    elif isinstance(config.storage, RedisStorage) and not config.retention.keeps_everything:
        logger.warning("%s", REDIS_RETENTION_LIMIT)


def _log_stopped(stats: ServerStats, seconds: float) -> None:
    refused = f", {stats.puts_refused} puts the store refused" if stats.puts_refused else ""
    logger.info(
        "stopped after %.0fs: %d connections served, %d commands, %d wrong%s, "
        "%d refused at the limit, %d open ones closed",
        seconds,
        stats.connections_total,
        stats.commands,
        stats.errors - stats.puts_refused,
        refused,
        stats.connections_refused,
        stats.connections_closed_at_stop,
    )
