"""The trio client: :class:`AsyncClient`, :func:`open_client` and :class:`ThreadClient`.

:class:`AsyncClient` drives a :class:`~trio_metrics.wire.ClientConnection`
over a trio stream; it has the methods of the blocking
:class:`~trio_metrics.Client`, awaitable, with the same arguments, results and
:class:`~trio_metrics.ClientError`\\ s. :class:`ThreadClient` lets sync code in
a worker thread use a trio program's :class:`AsyncClient` through
:mod:`trio.from_thread`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import SupportsInt, TypeVar, TypeVarTuple

import trio

from ..transport import RECEIVE_SIZE
from ..wire import (
    NEED_DATA,
    AuthRequest,
    ClientConnection,
    ClientState,
    DeleteRequest,
    GetRequest,
    KeysRequest,
    Metrics,
    PingRequest,
    PointBatch,
    PutRequest,
    RangeRequest,
    Request,
    StatsRequest,
    StreamedPoint,
)
from ._environment import resolve_address
from ._errors import ClientError, map_exceptions
from ._sync import check_timeout, default_timestamp, refused_token_message
from ._tls import SslOption, client_context

__all__ = ["AsyncClient", "ThreadClient", "open_client"]

ResultT = TypeVar("ResultT")
ArgsT = TypeVarTuple("ArgsT")


@asynccontextmanager
async def open_client(
    host: str | None = None,
    port: int | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - the signature of Client(host, port, timeout)
    *,
    ssl: SslOption = None,
    token: str | None = None,
) -> AsyncIterator[AsyncClient]:
    """Connect to a server; yield an :class:`AsyncClient`; close it on exit.

    ``timeout`` (seconds, more than 0) bounds the connect (TLS handshake
    included) and each later request. ``ssl`` speaks TLS, and ``token``
    authenticates, as for :class:`~trio_metrics.Client`. A ``host`` or ``port`` left out comes
    from the environment, as for :class:`~trio_metrics.Client`. Raises
    :class:`ClientError` if the connection cannot be made or
    ``TRIO_METRICS_PORT`` is not a port, :exc:`ValueError` for a timeout
    that is not a positive number.
    """
    check_timeout(timeout)
    context = client_context(ssl)
    host, port = resolve_address(host, port)
    address = f"{host}:{port}"
    with map_exceptions(address, connecting=True), trio.fail_after(_seconds(timeout)):
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        if context is not None:
            tls_stream = trio.SSLStream(
                stream, context, server_hostname=host, https_compatible=True
            )
            try:
                await tls_stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            stream = tls_stream
    async with AsyncClient(stream, timeout=timeout, address=address) as client:
        if token is not None:
            try:
                await client._round_trip(AuthRequest(token))
            except ClientError as exc:
                raise ClientError(refused_token_message(address, exc)) from exc.__cause__
        yield client


def _seconds(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


class AsyncClient:
    """A trio connection to a trio-metrics server, safe to share between tasks.

    Requests from several tasks take turns on the one connection (a
    :class:`trio.Lock`), so each gets its own answer. ``timeout`` bounds
    each request's send and receive, not the wait for its turn. Every
    failure raises :class:`ClientError`. If a request fails, times out or is
    cancelled after it was sent, the connection can no longer match answers
    to requests: it is closed at once, and every later call raises
    :class:`ClientError`. A request cancelled while it waits for its turn
    leaves the connection as it was.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        timeout: float | None = None,
        address: str = "server",
    ) -> None:
        check_timeout(timeout)
        self._stream = stream
        self._timeout = _seconds(timeout)
        self._given_timeout = timeout
        self._address = address
        self._conn = ClientConnection()
        self._lock = trio.Lock()

    async def put(self, key: str, value: object, timestamp: SupportsInt | None = None) -> None:
        """Store ``value`` for ``key`` at ``timestamp`` (default: now); see ``Client.put``."""
        await self._round_trip(PutRequest(key, value, default_timestamp(timestamp)))

    async def get(self, key: str) -> Metrics:
        """Return ``{key: [(timestamp, value), ...]}``; see ``Client.get``."""
        return await self._round_trip(GetRequest(key))

    async def iter_get(self, key: str) -> AsyncGenerator[StreamedPoint, None]:
        """Yield ``(key, timestamp, value)`` as lines arrive; see ``Client.iter_get``.

        ``timeout`` bounds the send and each receive, not the whole answer.
        The connection is this iterator's until the answer ends; stopping
        early closes the connection. Close the iterator before leaving a
        partly read one (``contextlib.aclosing``), so that it gives the
        connection back in the task that took it.
        """
        request = GetRequest(key)
        with map_exceptions(self._address, connection=self._conn, timeout=self._given_timeout):
            async with self._lock:
                data = self._conn.send(request)
                try:
                    with trio.fail_after(self._timeout):
                        await self._stream.send_all(data)
                    while not (batch := await self._next_points(request)).last:
                        for point in batch.points:
                            yield point
                    for point in batch.points:
                        yield point
                except BaseException:
                    self._conn.request_failed()
                    raise
                finally:
                    if self._conn.state is ClientState.BROKEN:
                        await trio.aclose_forcefully(self._stream)

    async def _next_points(self, request: GetRequest) -> PointBatch:
        while (batch := self._conn.next_points(request)) is NEED_DATA:
            with trio.fail_after(self._timeout):
                self._conn.receive_data(await self._stream.receive_some(RECEIVE_SIZE))
        return batch

    async def stats(self) -> dict[str, int]:
        """The server's counters; see ``Client.stats``."""
        return await self._round_trip(StatsRequest())

    async def ping(self) -> None:
        """``ok`` from the server, or :class:`ClientError`; see ``Client.ping``."""
        await self._round_trip(PingRequest())

    async def keys(self, pattern: str) -> list[str]:
        """The stored keys matching a glob, sorted; see ``Client.keys``."""
        return await self._round_trip(KeysRequest(pattern))

    async def range(self, key: str, start: SupportsInt, end: SupportsInt) -> Metrics:
        """The points from ``start`` to ``end``, both included; see ``Client.range``."""
        return await self._round_trip(RangeRequest(key, start, end))

    async def delete(self, pattern: str) -> int:
        """Remove the matching keys; return how many; see ``Client.delete``."""
        return await self._round_trip(DeleteRequest(pattern))

    def for_thread(self) -> ThreadClient:
        """A blocking, :class:`~trio_metrics.Client`-shaped view for worker threads.

        Call it from inside the trio run that owns this client.
        """
        return ThreadClient(self, trio.lowlevel.current_trio_token())

    async def aclose(self) -> None:
        """Close the connection. Calling it again does nothing.

        A request in flight in another task fails with :class:`ClientError`.
        """
        self._conn.close()
        await self._stream.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _round_trip(self, request: Request[ResultT]) -> ResultT:
        with map_exceptions(self._address, connection=self._conn, timeout=self._given_timeout):
            async with self._lock:
                data = self._conn.send(request)
                try:
                    with trio.fail_after(self._timeout):
                        await self._stream.send_all(data)
                        return await self._receive_result(request)
                except BaseException:
                    self._conn.request_failed()
                    raise
                finally:
                    if self._conn.state is ClientState.BROKEN:
                        # Out of step for good: free the socket now, not at aclose.
                        await trio.aclose_forcefully(self._stream)

    async def _receive_result(self, request: Request[ResultT]) -> ResultT:
        while (result := self._conn.next_result(request)) is NEED_DATA:
            self._conn.receive_data(await self._stream.receive_some(RECEIVE_SIZE))
        return result


class ThreadClient:
    """A blocking view of an :class:`AsyncClient` for sync code in worker threads.

    ``put``, ``get`` and ``stats`` take the arguments of ``Client.put``,
    ``Client.get`` and ``Client.stats`` and run the async client's call in
    its trio run with :func:`trio.from_thread.run`, so many threads can
    share one connection. Call them from a thread other than the trio run's
    own (for example one started with :func:`trio.to_thread.run_sync`; on
    the trio thread itself they raise :exc:`RuntimeError`, as
    :func:`trio.from_thread.run` does); if that run has ended, they raise
    :class:`ClientError`. Each call runs as a system task of the trio run,
    so cancelling the :func:`trio.to_thread.run_sync` that started the
    thread does not reach it; if the run ends while a call is in flight,
    the call raises :exc:`trio.Cancelled`. ``close()`` and ``with`` end
    this view only, not the shared connection.
    """

    def __init__(self, client: AsyncClient, trio_token: trio.lowlevel.TrioToken) -> None:
        self._client = client
        self._address = client._address
        self._token = trio_token
        self._closed = False

    def put(self, key: str, value: object, timestamp: SupportsInt | None = None) -> None:
        """Blocking :meth:`AsyncClient.put`."""
        self._run(self._client.put, key, value, timestamp)

    def get(self, key: str) -> Metrics:
        """Blocking :meth:`AsyncClient.get`."""
        return self._run(self._client.get, key)

    def stats(self) -> dict[str, int]:
        """Blocking :meth:`AsyncClient.stats`."""
        return self._run(self._client.stats)

    def ping(self) -> None:
        """Blocking :meth:`AsyncClient.ping`."""
        self._run(self._client.ping)

    def keys(self, pattern: str) -> list[str]:
        """Blocking :meth:`AsyncClient.keys`."""
        return self._run(self._client.keys, pattern)

    def range(self, key: str, start: SupportsInt, end: SupportsInt) -> Metrics:
        """Blocking :meth:`AsyncClient.range`."""
        return self._run(self._client.range, key, start, end)

    def delete(self, pattern: str) -> int:
        """Blocking :meth:`AsyncClient.delete`."""
        return self._run(self._client.delete, pattern)

    def close(self) -> None:
        """Stop using this view; the shared :class:`AsyncClient` stays open.

        The trio program owns the connection and closes it; later calls on
        this view raise :class:`ClientError`.
        """
        self._closed = True

    def __enter__(self) -> ThreadClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(
        self,
        method: Callable[[*ArgsT], Awaitable[ResultT]],
        *args: *ArgsT,
    ) -> ResultT:
        if self._closed:
            raise ClientError("this ThreadClient was closed")
        with map_exceptions(self._address):
            return trio.from_thread.run(method, *args, trio_token=self._token)
