"""A socket stream with one scheduler pass per request-response round trip.

:class:`trio.SocketStream` yields to the scheduler after every successful
receive and every successful send, so a request-response exchange costs
its connection task two or three passes through trio's run loop, which is
most of the server's CPU per small request. :class:`LeanSocketStream`
waits only when the socket is not ready:

- ``receive_some`` tries the socket first when the last receive filled its
  buffer (more is likely waiting: a pipelining client); if nothing has
  arrived, or the last receive emptied the socket (a request-response
  client, whose next request comes after our answer), it waits for
  readability first (a checkpoint) and then takes what came, so a
  request costs one ``recv`` call, not a failed one and a good one. If
  data was already there, it still yields once, so a client that floods
  the server cannot keep its task from letting others run. Cancellation
  is checked before any byte is taken from the socket, so a cancelled
  receive loses nothing.
- ``send_all`` raises at once in a cancelled scope, then sends and waits
  only while the socket buffer is full. A send that completes immediately
  does *not* yield to other tasks: the server's connection loop always
  passes through ``receive_some`` between two sends, and yields there.

It is meant for the server's own connection loop, not as a general stream.
"""

from __future__ import annotations

import errno
import socket

import trio

from ._lines import RECEIVE_SIZE

__all__ = ["LeanSocketStream"]


class _ConflictDetector:
    """Raises :exc:`trio.BusyResourceError` when two tasks use one side of a stream at once.

    trio's streams use the same idea; a plain class, not a generator-based
    context manager, because it is entered on every receive and send. The
    two hottest paths (:meth:`LeanSocketStream.receive_some` and
    ``send_all``) do the same with ``held`` written out, which saves the
    two method calls per use.
    """

    __slots__ = ("held", "message")

    def __init__(self, message: str) -> None:
        self.message = message
        self.held = False

    def __enter__(self) -> None:
        if self.held:
            raise trio.BusyResourceError(self.message)
        self.held = True

    def __exit__(self, *exc_info: object) -> None:
        self.held = False


class _SocketErrors:
    """Turns a socket's :exc:`OSError` into the stream errors trio's callers expect.

    :exc:`trio.BrokenResourceError` for a failing socket, and
    :exc:`trio.ClosedResourceError` when the stream was closed under a
    waiting task (the socket then reports EBADF). Like trio's
    ``_translate_socket_errors_to_stream_errors``, in one place.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: LeanSocketStream) -> None:
        self._stream = stream

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, OSError):
            raise self.translated(exc) from exc

    def translated(self, exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
        """The stream error that stands for ``exc``."""
        if self._stream._closed:
            return trio.ClosedResourceError("the stream is closed")
        return trio.BrokenResourceError(f"socket error: {exc}")


class LeanSocketStream(trio.abc.HalfCloseableStream):
    """A :class:`trio.abc.HalfCloseableStream` over a connected TCP socket.

    Takes ownership of ``sock`` (a stdlib socket, made non-blocking here).
    Socket errors become :exc:`trio.BrokenResourceError`; use after
    :meth:`aclose` raises :exc:`trio.ClosedResourceError`; two tasks
    receiving (or sending) at once get :exc:`trio.BusyResourceError`.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        self._eof_sent = False
        #: Whether the last receive took less than it asked for (the socket
        #: was emptied); the next one then waits before it tries.
        self._drained = False
        self._receive_conflict = _ConflictDetector("another task is receiving on this stream")
        self._send_conflict = _ConflictDetector("another task is sending on this stream")
        self._socket_errors = _SocketErrors(self)

    @classmethod
    def from_socket_stream(cls, stream: trio.SocketStream) -> LeanSocketStream:
        """Take over the socket of a :class:`trio.SocketStream` (which is left closed)."""
        trio_socket = stream.socket
        family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
        fd = trio_socket.detach()
        return cls(socket.socket(family, kind, proto, fileno=fd))

    @property
    def socket(self) -> socket.socket:
        """The underlying socket."""
        return self._sock

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to ``max_bytes`` (default 64 KiB); ``b""`` at end of stream."""
        self._check_open()
        if max_bytes is None:
            max_bytes = RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        # The conflict check and the error translation, written out (see
        # _ConflictDetector): this runs once per request.
        conflict = self._receive_conflict
        if conflict.held:
            raise trio.BusyResourceError(conflict.message)
        conflict.held = True
        try:
            return await self._receive(max_bytes)
        except OSError as exc:
            raise self._socket_errors.translated(exc) from exc
        finally:
            conflict.held = False

    async def _receive(self, max_bytes: int) -> bytes:
        # Cancellation is checked before bytes leave the socket, and the
        # yield after is shielded, so a cancelled receive never loses data.
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._drained:
            # The last receive emptied the socket: in a request-response
            # exchange nothing has come since, and trying first would cost a
            # failed recv call per request. Wait, then take what came.
            return await self._wait_and_receive(max_bytes)
        try:
            data = self._sock.recv(max_bytes)
        except BlockingIOError:
            return await self._wait_and_receive(max_bytes)
        # A full read suggests more is waiting (a pipelining client).
        self._drained = len(data) < max_bytes
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def _wait_and_receive(self, max_bytes: int) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                continue
            self._drained = len(data) < max_bytes
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting only while the socket buffer is full."""
        self._check_open()
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof was called on this stream")
        await trio.lowlevel.checkpoint_if_cancelled()
        conflict = self._send_conflict  # written out, as in receive_some
        if conflict.held:
            raise trio.BusyResourceError(conflict.message)
        conflict.held = True
        try:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                # The socket buffer is full: the rest waits for room.
                await self._send_rest(data, sent)
        except OSError as exc:
            raise self._socket_errors.translated(exc) from exc
        finally:
            conflict.held = False

    async def _send_rest(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        with memoryview(data) as view:
            total = len(view)
            while sent < total:
                try:
                    sent += self._sock.send(view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self._sock)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket can take more data."""
        self._check_open()
        with self._send_conflict, self._socket_errors:  # closed while waiting
            await trio.lowlevel.wait_writable(self._sock)

    async def send_eof(self) -> None:
        """Close the sending side (TCP FIN); receiving goes on."""
        self._check_open()
        with self._send_conflict:
            await trio.lowlevel.checkpoint()
            if self._eof_sent:
                return
            self._eof_sent = True
            with self._socket_errors:
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    if exc.errno != errno.ENOTCONN:
                        raise

    async def aclose(self) -> None:
        """Close the socket; tasks waiting on it get :exc:`trio.ClosedResourceError`."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
