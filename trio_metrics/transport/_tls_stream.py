"""A lean TLS stream: :class:`LeanSocketStream` with TLS records in memory buffers.

trio's :class:`trio.SSLStream` runs TLS through memory buffers with a few
Python-level steps and scheduler passes per read and write, which costs
about as much CPU as a whole plaintext request. :class:`LeanTlsStream`
keeps the lean stream's one-pass request-response rhythm instead: a receive
is one ``recv`` of whatever ciphertext the socket holds, handed to the
standard library's :class:`ssl.SSLObject` through a :class:`ssl.MemoryBIO`,
and a send is one ``SSL_write`` into memory and one ``send``. (An
``SSLSocket`` reading the socket itself takes two ``read`` calls per record,
its header and then its body.)
"""

from __future__ import annotations

import contextlib
import socket
import ssl

import trio

from ._lean_stream import LeanSocketStream
from ._lines import RECEIVE_SIZE

__all__ = ["LeanTlsStream", "lean_tls_handshake"]


class LeanTlsStream(LeanSocketStream):
    """A :class:`LeanSocketStream` speaking TLS over its socket, once handshaken.

    Records the peer sent beyond what a receive returned wait in memory and
    are returned by the next receive without a wait. What TLS itself writes
    while reading (an alert before a failed read raises, the refusal of a
    renegotiation, a key update's answer) is sent at once, unless a send is
    under way; what the socket does not take then goes out ahead of the
    next :meth:`send_all`. ``send_eof`` ends the TCP stream without a TLS
    ``close_notify``.
    """

    def __init__(
        self,
        sock: socket.socket,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        super().__init__(sock)
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        #: TLS output taken from ``outgoing`` that the socket did not take yet.
        self._unsent = b""

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The connection's TLS state (its peer certificate, version, cipher)."""
        return self._tls

    async def _receive(self, max_bytes: int) -> bytes:
        # Cancellation is checked before bytes leave the socket or the TLS
        # buffers, and the yield after is shielded, as in the plain stream.
        await trio.lowlevel.checkpoint_if_cancelled()
        tls = self._tls
        # Nothing held in memory (the usual case between requests): go to
        # the socket without a failed read first.
        if tls.pending() or self._incoming.pending:
            try:
                data = self._read(max_bytes)
            except ssl.SSLWantReadError:
                pass  # part of a record: its rest is still on the way
            else:  # (b"" after a close_notify: the end)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
        return await self._receive_records(max_bytes)

    def _read(self, max_bytes: int) -> bytes:
        """Decrypt up to ``max_bytes``; send what TLS wrote meanwhile (an alert too)."""
        try:
            return self._tls.read(max_bytes)
        finally:
            if self._outgoing.pending:
                self._send_tls_output()

    def _send_tls_output(self) -> None:
        # Best effort, without waiting: what the socket does not take now
        # goes first in the next send_all. Not while a send is under way,
        # whose records must not be cut by these (it sends them after its own).
        if self._send_conflict.held:
            return
        data = self._unsent + self._outgoing.read()
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = len(data)  # the peer is gone: the read says so next
        self._unsent = data[sent:]

    async def _receive_records(self, max_bytes: int) -> bytes:
        sock = self._sock
        incoming = self._incoming
        waited = False
        while True:
            if self._drained:
                await trio.lowlevel.wait_readable(sock)
                waited = True
            try:
                ciphertext = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                self._drained = True
                continue
            self._drained = len(ciphertext) < RECEIVE_SIZE
            if not ciphertext:
                # The peer ended the TCP stream (with or without a
                # close_notify, which most clients do not send): the end.
                break
            incoming.write(ciphertext)
            try:
                data = self._read(max_bytes)  # b"" after a close_notify: the end
            except ssl.SSLWantReadError:
                continue  # a record cut across reads: take more
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt all of ``data`` and send it, waiting only while the socket buffer is full."""
        self._check_open()
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof was called on this stream")
        await trio.lowlevel.checkpoint_if_cancelled()
        conflict = self._send_conflict
        if conflict.held:
            raise trio.BusyResourceError(conflict.message)
        conflict.held = True
        try:
            if data:
                try:
                    self._tls.write(data)
                except ssl.SSLError as exc:
                    raise trio.BrokenResourceError(f"TLS error: {exc}") from exc
            records = self._outgoing.read()
            if self._unsent:
                records, self._unsent = self._unsent + records, b""
            try:
                sent = self._sock.send(records)
            except BlockingIOError:
                sent = 0
            if sent < len(records):
                await self._send_rest(records, sent)
        except OSError as exc:
            raise self._socket_errors.translated(exc) from exc
        finally:
            conflict.held = False

    async def send_eof(self) -> None:
        """Close the sending side with a TCP FIN; receiving goes on."""
        self._check_open()
        if self._eof_sent:
            await trio.lowlevel.checkpoint()
            return
        self._eof_sent = True
        await trio.lowlevel.checkpoint()
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket error: {exc}") from exc


async def lean_tls_handshake(
    stream: LeanSocketStream, context: ssl.SSLContext, received: bytes = b""
) -> LeanTlsStream:
    """Run the server side of a TLS handshake on ``stream``'s socket; return the TLS stream.

    ``received``: bytes already taken from the socket (the start of the
    client's hello). ``stream`` gives up its socket to the TLS stream. Raises
    :exc:`ssl.SSLError` or :exc:`OSError` for a failed handshake (the
    socket is closed then; a peer that ends the stream mid-handshake is an
    :exc:`ssl.SSLEOFError`); cancellation closes it too.
    """
    sock = stream.socket
    stream._closed = True  # the TLS stream owns the socket now
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    incoming.write(received)
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    try:
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            else:
                done = True
            # The server's flight (and, once done, its session tickets);
            # also the alert of a failed handshake, before it raises.
            await _send_everything(sock, outgoing.read())
            if done:
                break
            await trio.lowlevel.wait_readable(sock)
            try:
                ciphertext = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                continue
            if not ciphertext:
                raise ssl.SSLEOFError("the peer closed the connection during the TLS handshake")
            incoming.write(ciphertext)
    except ssl.SSLError:
        # The alert the failure wrote (a refused certificate ...) goes out first.
        pending = outgoing.read()
        if pending:
            with contextlib.suppress(OSError):  # the peer may be gone already
                sock.send(pending)
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise
    except BaseException:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise
    return LeanTlsStream(sock, tls, incoming, outgoing)


async def _send_everything(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]
