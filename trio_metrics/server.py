"""The metrics server: one trio task per TCP connection, all in one nursery.

:func:`serve` runs the server inside a caller's nursery
(``info = await nursery.start(serve, host, 0)`` tells the real port);
:func:`run_server` is the blocking entry point that also stops cleanly on
Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import attrs
import trio

from .lines import DEFAULT_MAX_LINE_LENGTH, LINE_TOO_LONG, Line, LineReader
from .protocol import (
    ERROR_ANSWER,
    OK_ANSWER,
    Point,
    ProtocolError,
    Put,
    encode_get_answer,
    parse_command,
)
from .store import MetricStore, Store

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ConnectionHandler",
    "ServerInfo",
    "ServerStats",
    "run_server",
    "serve",
]

logger = logging.getLogger("trio_metrics.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888

# The errors a connection ends with when its peer resets, vanishes or closes
# while we write: they end that connection only.
_PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)


@attrs.define
class ServerStats:
    """Counters an operator can read while the server runs."""

    connections_open: int = 0
    connections_total: int = 0
    commands: int = 0
    errors: int = 0
    connection_failures: int = 0


@attrs.frozen
class ServerInfo:
    """What :func:`serve` hands to ``nursery.start`` once it is listening."""

    host: str
    port: int
    store: Store
    stats: ServerStats
    listeners: list[trio.SocketListener] = attrs.field(repr=False)


async def serve(
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    store: Store | None = None,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve the metrics protocol on ``host:port`` until cancelled.

    ``port=0`` picks a free port; start the server with
    ``info = await nursery.start(serve, host, 0)`` to learn it
    (``info.port``). ``host=None`` listens on every local address.
    ``store`` defaults to a new in-memory :class:`MetricStore`.
    ``max_line_length`` bounds one command line in bytes; a longer line is
    answered with the error answer and skipped, and the connection goes on.

    Every connection is handled by its own task in the server's nursery. A
    connection that fails (reset, vanished peer, even a bug in its handling)
    is closed and logged; it never stops the server or touches another
    connection. Cancelling the surrounding scope closes the listeners and
    every open connection. Raises :exc:`OSError` if the address cannot be
    bound.
    """
    if store is None:
        store = MetricStore()
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname = listeners[0].socket.getsockname()
    info = ServerInfo(
        host=sockname[0],
        port=sockname[1],
        store=store,
        stats=ServerStats(),
        listeners=listeners,
    )
    handler = ConnectionHandler(store, info.stats, max_line_length)
    logger.info(
        "listening on %s port %d (max line %d bytes)",
        ", ".join(str(listener.socket.getsockname()[0]) for listener in listeners),
        info.port,
        max_line_length,
    )
    try:
        # The listeners are bound and listening already: a client that
        # connects now waits in the backlog until serve_listeners accepts.
        task_status.started(info)
        await trio.serve_listeners(handler.handle, listeners)
    finally:
        logger.info("stopped; %d connections were open", info.stats.connections_open)


@attrs.define
class ConnectionHandler:
    """Serves the protocol on one stream after another, for :func:`serve`.

    Usable on any :class:`trio.abc.Stream` (tests use trio's memory streams).
    """

    store: Store
    stats: ServerStats
    max_line_length: int

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until its peer closes it, then close it.

        Never raises except for cancellation: a lost peer or an unexpected
        error ends this connection only, and is logged.
        """
        stats = self.stats
        stats.connections_open += 1
        stats.connections_total += 1
        try:
            await self._converse(stream)
        except _PEER_GONE as exc:
            logger.debug("connection lost: %r", exc)
        except Exception:
            # trio.serve_listeners would end the whole server if a handler
            # raised; one broken conversation must not take the others down.
            stats.connection_failures += 1
            logger.exception("connection closed after an unexpected error")
        finally:
            stats.connections_open -= 1
            await stream.aclose()

    async def _converse(self, stream: trio.abc.Stream) -> None:
        reader = LineReader(stream, self.max_line_length)
        while True:
            lines = await reader.receive_lines()
            if not lines:
                # End of stream: everything complete was answered already;
                # an unfinished last line is dropped as cut off.
                return
            answer = await self._answer(lines)
            if answer:
                await stream.send_all(answer)

    async def _answer(self, lines: list[Line]) -> bytes:
        """Run a batch of lines; return their answers, in order, as one string.

        Consecutive puts go to the store as one batch, before any later
        ``get`` of the batch reads it and before their ``ok``s are sent.
        """
        answers: list[bytes] = []
        puts: list[Point] = []
        commands = errors = 0
        for line in lines:
            if line is LINE_TOO_LONG:
                answers.append(ERROR_ANSWER)
                commands += 1
                errors += 1
                continue
            try:
                command = parse_command(line)
            except ProtocolError:
                answers.append(ERROR_ANSWER)
                commands += 1
                errors += 1
                continue
            if command is None:
                continue
            commands += 1
            if isinstance(command, Put):
                puts.append((command.key, command.value, command.timestamp))
                answers.append(OK_ANSWER)
            else:
                if puts:
                    await self.store.put_batch(puts)
                    puts = []
                answers.append(encode_get_answer(await self.store.query(command.key)))
        if puts:
            await self.store.put_batch(puts)
        self.stats.commands += commands
        self.stats.errors += errors
        return b"".join(answers)


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
