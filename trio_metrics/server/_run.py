"""Blocking entry points: :func:`run_server`, serving until SIGINT or SIGTERM; SIGHUP reloads."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Unpack, overload

import trio

from ..transport import sole_exception
from ._config import DEFAULT_HOST, DEFAULT_PORT, LogLevel, ServeOptions, ServerConfig
from ._serve import ServerInfo, serve

__all__ = ["configure_logging", "run_server", "serve_until_signal"]

logger = logging.getLogger("trio_metrics.server")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: LogLevel) -> None:
    """Log to stderr at ``level``, with times, unless the program set up logging itself."""
    logging.basicConfig(level=level.upper(), format=_LOG_FORMAT)


@overload
def run_server(config: ServerConfig, /) -> None: ...


@overload
def run_server(
    host: str | None = ..., port: int = ..., **options: Unpack[ServeOptions]
) -> None: ...


def run_server(
    host: ServerConfig | str | None = DEFAULT_HOST,
    port: int | None = None,
    **options: Unpack[ServeOptions],
) -> None:
    """Run the server until Ctrl-C or SIGTERM, then return normally.

    Takes a :class:`~trio_metrics.ServerConfig`, or ``host``, ``port`` and
    the keyword options of :func:`~trio_metrics.serve`. Blocks the calling
    thread. Signals are caught only when called from the main thread
    (elsewhere Python does not deliver them); there, cancel by ending the
    thread's program. Raises the bare error when the server cannot start:
    :exc:`OSError` if the address cannot be bound,
    :exc:`~trio_metrics.DataDirError`, :exc:`ValueError` for a bad option
    and :exc:`TypeError` for an unknown one.
    """
    if isinstance(host, ServerConfig):
        if port is not None or options:
            raise TypeError("run_server(config) takes no other settings: put them in the config")
        config = host
    else:
        config = ServerConfig.from_options(host, DEFAULT_PORT if port is None else port, **options)
    if config.log_level is not None:
        configure_logging(config.log_level)
    trio.run(serve_until_signal, config)


async def serve_until_signal(
    config: ServerConfig, ready: Callable[[ServerInfo], None] | None = None
) -> None:
    """Run :func:`~trio_metrics.serve` until SIGINT or SIGTERM; call ``ready`` once listening.

    The first signal stops the server gracefully (:meth:`ServerInfo.shutdown`);
    a second one, or one before the server listens, stops it at once.
    SIGHUP reloads the TLS and token files (:meth:`ServerInfo.reload_credentials`).
    Raises the bare error when the server cannot start, as :func:`run_server`.
    """
    try:
        async with trio.open_nursery() as nursery:
            server: list[ServerInfo] = []
            if threading.current_thread() is threading.main_thread():
                await nursery.start(_stop_on_signal, nursery.cancel_scope, server)
            info = await nursery.start(_serve_then_cancel, config, nursery.cancel_scope)
            server.append(info)
            if ready is not None:
                ready(info)
    except ExceptionGroup as group:
        error = sole_exception(group)
        if isinstance(error, Exception):
            raise error from None
        raise


async def _serve_then_cancel(
    config: ServerConfig,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(config, task_status=task_status)
    # Stopped gracefully: the signal watcher has nothing left to do.
    scope.cancel()


def _reload(server: list[ServerInfo]) -> None:
    """SIGHUP: new certificates and tokens for new connections; open ones go on."""
    if not server:
        logger.warning("received SIGHUP before the server listens: nothing to reload")
        return
    try:
        server[0].reload_credentials()
    except OSError as exc:  # TlsFilesError and TokenFileError included
        logger.error("received SIGHUP; reloading failed, so the old files stay in use: %s", exc)
        return
    logger.info("received SIGHUP: reloaded the TLS files and tokens for new connections")


async def _stop_on_signal(
    scope: trio.CancelScope,
    server: list[ServerInfo],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # The receiver is installed before the server starts, so no early
    # signal can kill the process the default way.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                _reload(server)
                continue
            if server and not server[0].stop_requested:
                logger.info("received %s, shutting down (again to stop at once)", name)
                server[0].shutdown()
            else:
                logger.info("received %s, stopping at once", name)
                scope.cancel()
                return
