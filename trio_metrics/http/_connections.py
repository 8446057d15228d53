"""HTTP connections: counted against a limit, each served as HTTP/1.1 by hypercorn.

hypercorn's own trio worker accepts with trio's ``serve_listeners`` (one
connection per pass of the run loop, behind a listen backlog of 100), has
no limit on connections, and switches a connection to HTTP/2 when it opens
with the HTTP/2 preface or asks for an ``h2c`` upgrade. Here the server's
own accept loop (:func:`~trio_metrics.transport.accept_forever`) hands
each connection to :meth:`HttpConnections.handle`, which answers 503 past
the limit and otherwise runs hypercorn's connection loop with its HTTP/1.1
protocol only: HTTP/2 is not offered.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.task_group import TaskGroup, _handle
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveEvent,
    ASGISendEvent,
    ConnectionState,
    Scope,
)
from hypercorn.utils import parse_socket_addr

from ..transport import LeanSocketStream, ServerStats, ThrottledLogger, TlsServer, stream_socket
from ._stats import HttpStats
from ._trust import CONNECTION_TRUST, ConnectionTrust

__all__ = ["HttpConnections"]

logger = logging.getLogger("trio_metrics.http")

_BUSY_TEMPLATE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s"
)
_BUSY_BODY: Final = b'{"error":"too many HTTP connections; try again later"}'
_BUSY: Final = _BUSY_TEMPLATE % (len(_BUSY_BODY), _BUSY_BODY)
_BUSY_UNAUTHENTICATED_BODY: Final = (
    b'{"error":"too many HTTP connections without a token; try again later"}'
)
_BUSY_UNAUTHENTICATED: Final = _BUSY_TEMPLATE % (
    len(_BUSY_UNAUTHENTICATED_BODY),
    _BUSY_UNAUTHENTICATED_BODY,
)

# A refused client gets this long, and this many bytes, to take the 503 and
# close; reading what it sent meanwhile keeps the close from resetting the
# connection before the answer is read.
_REFUSAL_SECONDS: Final = 1.0
_REFUSAL_DRAIN_BYTES: Final = 64 * 1024


class HttpConnections:
    """Serves each HTTP connection, at most ``limit`` at once; more get a 503.

    ``app`` is the ASGI application as hypercorn wraps it; ``config`` is
    hypercorn's (timeouts, header size). With ``tls``, each connection's
    handshake comes first, counted under the limit and in ``tls_stats``.
    With ``max_unauthenticated`` (auth on), at most that many connections
    may be open that have not yet sent a request with a known token; more
    get a 503 at once, so that a flood of them cannot take every place
    under ``limit``. Each connection's :class:`ConnectionTrust` is in its
    ASGI ``state`` under :data:`CONNECTION_TRUST`, for the application to
    mark it authenticated.
    """

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        limit: int,
        stats: HttpStats,
        *,
        tls: TlsServer | None = None,
        tls_stats: ServerStats | None = None,
        max_unauthenticated: int | None = None,
    ) -> None:
        self._app = app
        self._max_unauthenticated = max_unauthenticated
        self._config = config
        self._limit = limit
        self._stats = stats
        self._tls = tls
        self._tls_stats = ServerStats() if tls_stats is None else tls_stats
        self._context = WorkerContext(None)
        self._warnings = ThrottledLogger(logger)

    async def handle(self, stream: LeanSocketStream) -> None:
        """Serve one connection until it ends, and close it.

        Never raises but for cancellation: an unexpected error ends this
        connection only, and is logged with its traceback.
        """
        stats = self._stats
        if stats.connections_open >= self._limit:
            stats.connections_refused += 1
            self._warnings.warning(
                "max-connections",
                "%d HTTP connections are open (the limit): answered 503 to a new one",
                stats.connections_open,
            )
            await self._refuse(stream, _BUSY)
            return
        if (
            self._max_unauthenticated is not None
            and stats.connections_unauthenticated >= self._max_unauthenticated
        ):
            stats.connections_refused_unauthenticated += 1
            self._warnings.warning(
                "max-unauthenticated",
                "%d HTTP connections without a token are open (the limit): answered 503",
                stats.connections_unauthenticated,
            )
            await self._refuse(stream, _BUSY_UNAUTHENTICATED)
            return
        stats.connections_open += 1
        stats.connections_total += 1
        trust = None if self._max_unauthenticated is None else ConnectionTrust(stats)
        state = {} if trust is None else {CONNECTION_TRUST: trust}
        conversation: trio.abc.Stream | None = stream
        try:
            if self._tls is not None:
                conversation = await self._tls.handshake(stream, self._tls_stats, self._warnings)
            if conversation is not None:
                # hypercorn's type says a TLS stream; any trio stream over a socket serves.
                server = _Http11Server(
                    self._app, self._config, self._context, state, cast(Any, conversation)
                )
                server.over_tls = self._tls is not None
                await server.run()
        except Exception:
            logger.exception("HTTP connection closed after an unexpected error")
        finally:
            stats.connections_open -= 1
            if trust is not None:
                trust.end()
            await trio.aclose_forcefully(stream if conversation is None else conversation)

    async def _refuse(self, stream: LeanSocketStream, answer: bytes) -> None:
        if self._tls is None:
            await _refuse(stream, answer)
        else:
            # A plaintext 503 means nothing to a TLS client: it sees the close.
            await trio.aclose_forcefully(stream)


async def _refuse(stream: LeanSocketStream, answer: bytes) -> None:
    with trio.move_on_after(_REFUSAL_SECONDS):
        try:
            await stream.send_all(answer)
            await stream.send_eof()
            drained = 0
            while drained < _REFUSAL_DRAIN_BYTES and (data := await stream.receive_some()):
                drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client is gone already
    await trio.aclose_forcefully(stream)


class _NotHttp11(Exception):
    """A request of another HTTP version was answered 505: the connection ends."""


_NOT_HTTP11_BODY: Final = b'{"error":"this server speaks HTTP/1.1 only"}'


class _Http11Only(H11Protocol):
    """hypercorn's HTTP/1.1 protocol without its switches to HTTP/2.

    A response's head is held until its first body bytes or its end, and
    leaves with them in one send: hypercorn sends each h11 event on its own,
    two or three system calls (and passes of the run loop) per response. A
    response whose application fails between its head and its body then
    ends with the connection closed and no head, rather than a head and no
    body: either way the client sees the answer cut short.
    """

    _held_head = b""

    async def _send_h11_event(self, event: Any) -> None:
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        if data is None:
            return
        if type(event) is h11.Response:
            self._held_head = data
            return
        if self._held_head:
            data = self._held_head + data
            self._held_head = b""
        if data:
            await self.send(RawData(data=data))

    async def _check_protocol(self, event: h11.Request) -> None:
        # An h2c upgrade is ignored: the request is served as HTTP/1.1, as
        # RFC 9110 allows. The HTTP/2 preface ("PRI * HTTP/2.0") is a 505.
        if event.http_version in (b"1.0", b"1.1"):
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(_NOT_HTTP11_BODY)),
            (b"connection", b"close"),
        ]
        await self._send_h11_event(h11.Response(status_code=505, headers=headers))
        await self._send_h11_event(h11.Data(data=_NOT_HTTP11_BODY))
        await self._send_h11_event(h11.EndOfMessage())
        raise _NotHttp11


class _Http11Server(TCPServer):
    """hypercorn's connection loop (timeouts, sending) over :class:`_Http11Only`.

    Its ``run`` is hypercorn's, with the TLS handshake done before (by
    :class:`~trio_metrics.transport.TlsServer`, as on the other ports) and
    the protocol chosen here rather than by ALPN and the first request.
    """

    #: Whether the stream is TLS (the ASGI scope's scheme is then https).
    over_tls = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._idle_timer = _IdleTimer(self.config.keep_alive_timeout, self._close_idle)
        self.idle_task = cast(Any, self._idle_timer)

    async def protocol_send(self, event: Event) -> None:
        if type(event) is RawData and not self.send_lock.locked():
            # hypercorn's send under its lock, without the lock's pass of the
            # run loop when nobody holds it (a lean stream's send_all does
            # not yield when the socket takes everything).
            self.send_lock.acquire_nowait()
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
            finally:
                self.send_lock.release()
            return
        await super().protocol_send(event)

    async def _close_idle(self) -> None:
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    async def run(self) -> None:
        sock = stream_socket(self.stream)
        assert sock is not None, "an HTTP connection runs over a socket"
        try:
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
            async with _EagerTaskGroup() as task_group:
                self._task_group = task_group
                protocol = _Http11Only(
                    self.app,
                    self.config,
                    self.context,
                    task_group,
                    ConnectionState(self.state.copy()),
                    self.over_tls,
                    client,
                    server,
                    self.protocol_send,
                )
                # Used only through handle() and initiate(), which both have.
                self.protocol = cast(ProtocolWrapper, protocol)
                await self.idle_task.restart(task_group, self._idle_timeout)
                await self._read_data()
                # The client closed: the idle timer would otherwise keep the
                # connection (and its place under the limit) for its full run.
                self._idle_timer.end()
        except (OSError, _NotHttp11):
            pass  # the peer reset the connection, or was answered and is done
        finally:
            await self._close()


class _IdleTimer:
    """hypercorn's idle timer, for one task per connection instead of one per request.

    hypercorn starts a task (``nursery.start``: several passes of the run
    loop) each time a connection goes idle, and cancels it when the next
    request begins. Here one task sleeps under a cancel scope whose deadline
    moves: ``timeout`` from now when the connection goes idle
    (:meth:`restart`), never while a request is served (:meth:`stop`). At
    the deadline it runs ``close``. :meth:`end` stops the task for good.
    """

    def __init__(self, timeout: float, close: Callable[[], Awaitable[None]]) -> None:
        self._timeout = timeout
        self._close = close
        self._scope = trio.CancelScope()
        self._started = False
        self._ended = False

    async def restart(self, task_group: TaskGroup, action: object) -> None:
        """Close the connection after ``timeout`` unless :meth:`stop` comes first.

        ``action`` is hypercorn's own timer task, not used.
        """
        self._scope.deadline = trio.current_time() + self._timeout
        if not self._started:
            self._started = True
            task_group.spawn(self._watch)

    async def stop(self) -> None:
        """No close while a request is served."""
        self._scope.deadline = math.inf

    def end(self) -> None:
        """The connection is over: the task returns without closing anything."""
        self._ended = True
        self._scope.cancel()

    async def _watch(self) -> None:
        with self._scope:
            await trio.sleep_forever()
        if not self._ended:
            await self._close()


class _EagerTaskGroup(TaskGroup):
    """hypercorn's task group, whose application messages skip a pass of the run loop.

    hypercorn hands each request's messages (its body, the disconnect) to
    the application through a memory channel whose ``send`` and ``receive``
    each yield to the scheduler even when the message fits or is there. Here
    they are tried without waiting first, and wait only when they must.
    Cancellation reaches the application at its other checkpoints.
    """

    async def spawn_app(
        self,
        app: AppWrapper,
        config: Config,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        to_app, from_server = trio.open_memory_channel[ASGIReceiveEvent](config.max_app_queue_size)

        async def put(message: ASGIReceiveEvent) -> None:
            try:
                to_app.send_nowait(message)
            except trio.WouldBlock:
                await to_app.send(message)

        async def receive() -> ASGIReceiveEvent:
            try:
                return from_server.receive_nowait()
            except trio.WouldBlock:
                return await from_server.receive()

        assert self._nursery is not None, "spawn_app runs inside the group"
        self._nursery.start_soon(
            _handle,
            app,
            config,
            scope,
            receive,
            send,
            trio.to_thread.run_sync,
            trio.from_thread.run,
        )
        return put
