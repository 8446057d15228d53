"""A lean TLS stream: :class:`LeanSocketStream` over a non-blocking :class:`ssl.SSLSocket`.

trio's :class:`trio.SSLStream` runs TLS through memory buffers with a few
Python-level steps and scheduler passes per read and write, which costs
about as much CPU as a whole plaintext request. Here the standard library's
``SSLSocket`` reads and writes the records on the socket itself, in C, and
:class:`LeanTlsStream` keeps the lean stream's one-pass request-response
rhythm: a TLS request costs its crypto and little else.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import trio

from ._lean_stream import LeanSocketStream

__all__ = ["LeanTlsStream", "NonBlockingTlsSocket", "lean_tls_handshake"]


class NonBlockingTlsSocket(ssl.SSLSocket):
    """An SSL socket whose "would block" is :exc:`BlockingIOError`, as a plain socket's.

    So :class:`LeanSocketStream`'s waits work unchanged. A read that needs
    to write (a TLS 1.3 key update while the send buffer is full) waits for
    readability like any other; the peer's next bytes or its close end that.
    """

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None


class LeanTlsStream(LeanSocketStream):
    """A :class:`LeanSocketStream` whose socket is a handshaken :class:`NonBlockingTlsSocket`.

    ``send_eof`` ends the TCP stream without a TLS ``close_notify`` (a
    shutdown of the ``SSLSocket`` itself would drop its TLS state).
    """

    @property
    def ssl_socket(self) -> ssl.SSLSocket:
        """The TLS socket (its peer certificate, version, cipher)."""
        sock = self.socket
        assert isinstance(sock, ssl.SSLSocket)
        return sock

    async def _receive(self, max_bytes: int) -> bytes:
        # Bytes already decrypted wait in the TLS layer, not in the kernel:
        # take them before any wait for readability.
        if self.ssl_socket.pending():
            self._drained = False
        return await super()._receive(max_bytes)

    async def send_eof(self) -> None:
        """Close the sending side with a TCP FIN; receiving goes on."""
        self._check_open()
        if self._eof_sent:
            await trio.lowlevel.checkpoint()
            return
        self._eof_sent = True
        await trio.lowlevel.checkpoint()
        try:
            socket.socket.shutdown(self._sock, socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket error: {exc}") from exc


async def lean_tls_handshake(stream: LeanSocketStream, context: ssl.SSLContext) -> LeanTlsStream:
    """Run the server side of a TLS handshake on ``stream``'s socket; return the TLS stream.

    ``stream`` gives up its socket (it is left closed). Raises
    :exc:`ssl.SSLError` or :exc:`OSError` for a failed handshake (the
    socket is closed then); cancellation closes it too.
    """
    # wrap_socket detaches the plain socket: the TLS socket owns the descriptor.
    tls_socket = context.wrap_socket(stream.socket, server_side=True, do_handshake_on_connect=False)
    stream._closed = True  # nothing left for it to close
    try:
        tls_socket.setblocking(False)
        while True:
            try:
                tls_socket.do_handshake()
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls_socket)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls_socket)
            else:
                break
    except BaseException:
        trio.lowlevel.notify_closing(tls_socket)
        tls_socket.close()
        raise
    return LeanTlsStream(tls_socket)
