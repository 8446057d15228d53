"""TLS for every listener: the settings, the server context, and a bounded handshake.

:class:`TlsSettings` names the files; :class:`TlsServer` holds the
:class:`ssl.SSLContext` built from them (rebuilt by :meth:`TlsServer.reload`,
so that a rotated certificate serves new connections while open ones keep
theirs) and runs each connection's handshake within a time limit, inside
:func:`~trio_metrics.transport.guarded_connection`, so that handshakes count
against the connection limit and a slow one never holds up other clients.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
from pathlib import Path
from typing import Final

import attrs
import trio

from ._lean_stream import LeanSocketStream
from ._lines import RECEIVE_SIZE
from ._stats import ServerStats
from ._throttled_log import ThrottledLogger
from ._tls_stream import LeanTlsStream, lean_tls_handshake

__all__ = [
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "TlsFilesError",
    "TlsServer",
    "TlsSettings",
    "server_context",
    "stream_socket",
]

#: Seconds a new connection has to finish its TLS handshake.
DEFAULT_TLS_HANDSHAKE_TIMEOUT: Final = 10.0
# Every TLS connection starts with a handshake record (content type 22); a
# first byte that is anything else is a plaintext client on a TLS port.
_HANDSHAKE_RECORD: Final = 0x16


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


@attrs.frozen
class TlsSettings:
    """Where a server's TLS certificate and key are, and whom it asks for one.

    - ``cert``, ``key``: PEM files of the server's certificate (chain) and
      private key;
    - ``client_ca``: PEM file of the certificate authorities whose client
      certificates are accepted; given, every client must present one
      (mutual TLS), else none is asked for;
    - ``handshake_timeout``: seconds a new connection has to finish its
      handshake before it is closed.

    The files are read when the server starts (and again on
    :meth:`TlsServer.reload`), not here.
    """

    cert: Path = attrs.field(converter=Path)
    key: Path = attrs.field(converter=Path)
    client_ca: Path | None = attrs.field(default=None, converter=_path)
    handshake_timeout: float = attrs.field(
        default=DEFAULT_TLS_HANDSHAKE_TIMEOUT, validator=_positive_seconds
    )

    def describe(self) -> str:
        """A few words for the start-up log."""
        clients = "client certificates required" if self.client_ca else "no client certificates"
        return f"TLS ({self.cert.name}; {clients})"


class TlsFilesError(OSError):
    """A TLS certificate, key or CA file is missing, unreadable or not what it should be."""


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The standard library's secure server context, TLS 1.2 at least, with the files loaded.

    Raises :exc:`TlsFilesError` (an :exc:`OSError`) naming the file for a
    missing or bad one.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Renegotiation is a TLS 1.2 feature nobody here needs, and a write that
    # must first read would spin the lean stream's send loop.
    context.options |= ssl.OP_NO_RENEGOTIATION
    # Most clients end without a close_notify, and a graceful stop shuts the
    # read side: either is an end of stream, not an error answered with an
    # alert (a cut-off last line is dropped by the line reader anyway).
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    for path in (settings.cert, settings.key, settings.client_ca):
        if path is not None and not os.access(path, os.R_OK):
            raise TlsFilesError(f"cannot read TLS file {path}")
    try:
        context.load_cert_chain(settings.cert, settings.key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsFilesError(
            f"cannot use TLS certificate {settings.cert} with key {settings.key}: {exc}"
        ) from exc
    if settings.client_ca is not None:
        try:
            context.load_verify_locations(cafile=settings.client_ca)
        except (OSError, ValueError) as exc:
            raise TlsFilesError(f"cannot use client CA file {settings.client_ca}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def stream_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """The stdlib socket under ``stream`` (through a TLS layer), or ``None`` if it has none.

    For a :class:`LeanTlsStream` it is the plain socket the TLS records travel on.
    """
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    sock = getattr(stream, "socket", None)
    return sock if isinstance(sock, socket.socket) else None


class TlsServer:
    """The TLS side of one server: its current context and the handshake of each connection.

    Shared by every listener of the server. Raises :exc:`TlsFilesError`
    when the files cannot be loaded.
    """

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._context = server_context(settings)

    @property
    def context(self) -> ssl.SSLContext:
        """The context new connections use."""
        return self._context

    def reload(self) -> None:
        """Load the files again, for connections from now on; open ones keep their session.

        On a failure (:exc:`TlsFilesError`) the context in use is kept and
        the error raised.
        """
        self._context = server_context(self.settings)

    async def handshake(
        self, stream: trio.abc.Stream, stats: ServerStats, warnings: ThrottledLogger
    ) -> trio.abc.Stream | None:
        """The TLS stream over ``stream`` once its handshake is done, or ``None``.

        A :class:`LeanSocketStream` becomes a :class:`LeanTlsStream` (records
        through the standard library's ``SSLObject``, one ``recv`` and one
        ``send`` a request); any other stream (a test's
        memory stream) a :class:`trio.SSLStream`.

        ``None`` (the caller closes the connection) for a plaintext client,
        a failed handshake or one that takes longer than the timeout; each
        is counted in ``stats`` and logged as a rate-limited warning.
        """
        timeout = self.settings.handshake_timeout
        with trio.move_on_after(timeout):
            return await self._handshake(stream, stats, warnings)
        stats.tls_handshake_timeouts += 1
        warnings.warning(
            "tls-timeout",
            "closed a connection that did not finish its TLS handshake in %gs",
            timeout,
        )
        return None

    async def _handshake(
        self, stream: trio.abc.Stream, stats: ServerStats, warnings: ThrottledLogger
    ) -> trio.abc.Stream | None:
        lean = (
            stream
            if isinstance(stream, LeanSocketStream) and not isinstance(stream, LeanTlsStream)
            else None
        )
        tls_stream: trio.abc.Stream
        try:
            # A lean stream's first bytes are read, not peeked at, and handed
            # to the handshake: one wait and one system call less.
            first = await (_first_bytes(lean) if lean is not None else _peek_first_byte(stream))
            if first == b"":
                return None  # gone before it said anything (a port scan, a health check)
            if first is not None and first[0] != _HANDSHAKE_RECORD:
                stats.tls_plaintext_refused += 1
                warnings.warning(
                    "tls-plaintext",
                    "closed a plaintext connection to a TLS port (it began %r)",
                    first[:1],
                )
                return None
            if lean is not None and first is not None:
                tls_stream = await lean_tls_handshake(lean, self._context, first)
            else:
                # https_compatible: a peer may end without close_notify (most
                # do); a cut-off last line is dropped by the line reader anyway.
                tls_stream = trio.SSLStream(
                    stream, self._context, server_side=True, https_compatible=True
                )
                await tls_stream.do_handshake()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            stats.tls_handshake_failures += 1
            reason = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
            warnings.warning("tls-failed", "a TLS handshake failed: %s", reason)
            return None
        stats.tls_handshakes += 1
        return tls_stream


async def _first_bytes(stream: LeanSocketStream) -> bytes:
    """What the peer sent first (taken from the socket); ``b""`` if it closed first.

    Raises :exc:`OSError` if the connection was reset.
    """
    sock = stream.socket
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(RECEIVE_SIZE)
        except BlockingIOError:
            continue


async def _peek_first_byte(stream: trio.abc.Stream) -> bytes | None:
    """The first byte the peer sent, left in the socket; ``b""`` if it closed first.

    ``None`` when there is no socket to peek at, or it was reset.
    """
    sock = stream_socket(stream)
    if sock is None:
        return None  # not a socket (a test's memory stream): the handshake decides
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return None  # reset: the handshake will say so
        return data
