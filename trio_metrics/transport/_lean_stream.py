"""A socket stream with one scheduler pass per request-response round trip.

:class:`trio.SocketStream` yields to the scheduler after every successful
receive and every successful send, so a request-response exchange costs
its connection task two or three passes through trio's run loop, which is
most of the server's CPU per small request. :class:`LeanSocketStream`
waits only when the socket is not ready:

- ``receive_some`` tries the socket first; if nothing has arrived it waits
  for readability (a checkpoint). If data was already there, it still
  yields once, so a client that floods the server cannot keep its task
  from letting others run. Cancellation is checked before any byte is
  taken from the socket, so a cancelled receive loses nothing.
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

__all__ = ["LeanSocketStream"]

_DEFAULT_RECEIVE_SIZE = 64 * 1024


class LeanSocketStream(trio.abc.HalfCloseableStream):
    """A :class:`trio.abc.HalfCloseableStream` over a connected TCP socket.

    Takes ownership of ``sock`` (a stdlib socket, made non-blocking here).
    Socket errors become :exc:`trio.BrokenResourceError`; use after
    :meth:`aclose` raises :exc:`trio.ClosedResourceError`.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        self._receiving = False
        self._sending = False
        self._eof_sent = False

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
            max_bytes = _DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            return await self._receive(max_bytes)
        finally:
            self._receiving = False

    async def _receive(self, max_bytes: int) -> bytes:
        # Cancellation is checked before bytes leave the socket, and the
        # yield after is shielded, so a cancelled receive never loses data.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = self._sock.recv(max_bytes)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise self._broken(exc) from exc
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._broken(exc) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting only while the socket buffer is full."""
        self._check_open()
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof was called on this stream")
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            with memoryview(data) as view:
                sent = 0
                total = len(view)
                while sent < total:
                    try:
                        sent += self._sock.send(view[sent:])
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(self._sock)
                    except OSError as exc:
                        raise self._broken(exc) from exc
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket can take more data."""
        self._check_open()
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.wait_writable(self._sock)
        except OSError as exc:  # closed while waiting
            raise self._broken(exc) from exc
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        """Close the sending side (TCP FIN); receiving goes on."""
        self._check_open()
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        await trio.lowlevel.checkpoint()
        if self._eof_sent:
            return
        self._eof_sent = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise self._broken(exc) from exc

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

    def _broken(self, exc: OSError) -> Exception:
        # A socket closed under a waiting task (by aclose) reports EBADF.
        if self._closed:
            return trio.ClosedResourceError("the stream is closed")
        return trio.BrokenResourceError(f"socket error: {exc}")
