"""The trio client: :class:`AsyncClient`, :func:`open_client` and :class:`ThreadClient`.

:class:`AsyncClient` has the methods of the blocking :class:`~trio_metrics.Client`,
awaitable, with the same arguments, results and :class:`~trio_metrics.ClientError`.
:class:`ThreadClient` lets sync code in a worker thread use a trio program's
:class:`AsyncClient` through :mod:`trio.from_thread`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import SupportsInt

import trio

from ..wire import (
    STATS_REQUEST,
    Answer,
    ProtocolError,
    ResponseParser,
    encode_get_request,
    encode_put_request,
    stats_from_answer,
)
from ._sync import (
    RECEIVE_SIZE,
    ClientError,
    Metrics,
    answer_to_metrics,
    check_ok,
    check_put_answer,
    check_timeout,
    default_timestamp,
)

__all__ = ["AsyncClient", "ThreadClient", "open_client"]


@asynccontextmanager
async def open_client(
    host: str,
    port: int,
    timeout: float | None = None,  # noqa: ASYNC109 - the signature of Client(host, port, timeout)
) -> AsyncIterator[AsyncClient]:
    """Connect to a server; yield an :class:`AsyncClient`; close it on exit.

    ``timeout`` (seconds, more than 0) bounds the connect and each later
    request. Raises :class:`ClientError` if the connection cannot be made,
    :exc:`ValueError` for a timeout that is not a positive number.
    """
    check_timeout(timeout)
    address = f"{host}:{port}"
    try:
        with trio.fail_after(math.inf if timeout is None else timeout):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise ClientError(f"cannot connect to {address}: {exc!r}") from exc
    async with AsyncClient(stream, timeout=timeout, address=address) as client:
        yield client


class AsyncClient:
    """A trio connection to a trio-metrics server, safe to share between tasks.

    Requests from several tasks take turns on the one connection (a
    :class:`trio.Lock`), so each gets its own answer. ``timeout`` bounds
    each request's send and receive, not the wait for its turn. If a request
    fails, times out or is cancelled after it was sent, the connection can no
    longer match answers to requests: it is marked broken and every later
    call raises :class:`ClientError`.
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
        self._timeout = math.inf if timeout is None else timeout
        self._address = address
        self._parser = ResponseParser()
        self._lock = trio.Lock()
        self._broken: str | None = None

    async def put(self, key: str, value: object, timestamp: SupportsInt | None = None) -> None:
        """Store ``value`` for ``key`` at ``timestamp`` (default: now); see ``Client.put``."""
        try:
            request = encode_put_request(key, value, default_timestamp(timestamp))
        except ProtocolError as exc:
            raise ClientError(str(exc)) from None
        check_put_answer(await self._request(request))

    async def get(self, key: str) -> Metrics:
        """Return ``{key: [(timestamp, value), ...]}``; see ``Client.get``."""
        try:
            request = encode_get_request(key)
        except ProtocolError as exc:
            raise ClientError(str(exc)) from None
        return answer_to_metrics(await self._request(request))

    async def stats(self) -> dict[str, int]:
        """The server's counters; see ``Client.stats``."""
        return stats_from_answer(check_ok(await self._request(STATS_REQUEST)))

    def for_thread(self) -> ThreadClient:
        """A blocking, :class:`~trio_metrics.Client`-shaped view for worker threads.

        Call it from inside the trio run that owns this client.
        """
        return ThreadClient(self, trio.lowlevel.current_trio_token())

    async def aclose(self) -> None:
        """Close the connection. Calling it again does nothing."""
        self._broken = "closed"
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

    async def _request(self, request: bytes) -> Answer:
        async with self._lock:
            if self._broken is not None:
                raise ClientError(f"connection to {self._address} is {self._broken}")
            # Until the answer is in, an interruption (error, timeout,
            # cancellation) leaves an answer in flight that the next request
            # would take for its own.
            self._broken = "broken by an interrupted request"
            try:
                with trio.move_on_after(self._timeout):
                    await self._stream.send_all(request)
                    answer = await self._receive_answer()
                    if self._parser.buffered:
                        raise ClientError(f"{self._address} sent more than one answer")
                    self._broken = None
                    return answer
                raise ClientError(f"request to {self._address} timed out")
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise ClientError(f"connection to {self._address} failed: {exc!r}") from exc
            except ProtocolError as exc:
                # Consumed up to its closing blank line: still in step.
                self._broken = None
                raise ClientError(f"malformed answer from {self._address}: {exc}") from exc
            finally:
                if self._broken is not None:
                    # Out of step for good: free the socket now, not at aclose.
                    await trio.aclose_forcefully(self._stream)

    async def _receive_answer(self) -> Answer:
        parser = self._parser
        while True:
            answer = parser.next_answer()
            if answer is not None:
                return answer
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError("server closed the connection")
            parser.feed(data)


class ThreadClient:
    """A blocking view of an :class:`AsyncClient` for sync code in worker threads.

    ``put`` and ``get`` take the arguments of ``Client.put`` and
    ``Client.get`` and run the async client's call in its trio run with
    :func:`trio.from_thread.run`, so many threads can share one connection.
    Call them from a thread other than the trio run's own (for example one
    started with :func:`trio.to_thread.run_sync`; on the trio thread itself
    they raise :exc:`RuntimeError`, as :func:`trio.from_thread.run` does);
    if that run has ended, they raise :class:`ClientError`. ``close()`` and
    ``with`` end this view only, not the shared connection.
    """

    def __init__(self, client: AsyncClient, trio_token: trio.lowlevel.TrioToken) -> None:
        self._client = client
        self._token = trio_token
        self._closed = False

    def put(self, key: str, value: object, timestamp: SupportsInt | None = None) -> None:
        """Blocking :meth:`AsyncClient.put`."""
        self._check_open()
        try:
            trio.from_thread.run(self._client.put, key, value, timestamp, trio_token=self._token)
        except trio.RunFinishedError:
            raise ClientError("the trio run that owns the client has ended") from None

    def get(self, key: str) -> Metrics:
        """Blocking :meth:`AsyncClient.get`."""
        self._check_open()
        try:
            return trio.from_thread.run(self._client.get, key, trio_token=self._token)
        except trio.RunFinishedError:
            raise ClientError("the trio run that owns the client has ended") from None

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

    def _check_open(self) -> None:
        if self._closed:
            raise ClientError("this ThreadClient was closed")
