"""Accepting connections: every waiting connection at once, each to its own task.

trio's ``serve_listeners`` accepts one connection per pass of the run loop,
so while hundreds of busy connections each take their turn, new clients
wait in the kernel's backlog for seconds (or are dropped when it fills).
:func:`accept_forever` takes every connection already waiting (up to a
bound, to stay fair to the busy ones) whenever a listening socket becomes
readable, and hands each to its own task in the server's nursery as a
:class:`~trio_metrics.transport.LeanSocketStream`.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn

import trio

from ._lean_stream import LeanSocketStream
from ._throttled_log import ThrottledLogger

__all__ = ["accept_forever", "take_listening_sockets"]

logger = logging.getLogger("trio_metrics.server")

#: Connections taken from one listening socket per pass of the run loop.
ACCEPT_BATCH: Final = 256
# Out of descriptors or memory: accepting more now would only fail again,
# so wait a little (as trio's own serve_listeners does) and try again.
_RESOURCE_ERRORS: Final = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_RESOURCE_PAUSE: Final = 0.1
# The connection failed between arriving and being accepted (Linux hands
# such errors to accept()): skip it. The same list as trio's own listener.
_GONE_BEFORE_ACCEPT: Final = {
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPERM",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
        "ETIMEDOUT",
        "ECONNRESET",
    )
    if hasattr(errno, name)
}


def take_listening_sockets(listeners: list[trio.SocketListener]) -> list[socket.socket]:
    """Take the sockets of trio listeners as non-blocking stdlib sockets."""
    sockets = []
    for listener in listeners:
        trio_socket = listener.socket
        family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
        sock = socket.socket(family, kind, proto, fileno=trio_socket.detach())
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


async def accept_forever(
    sockets: list[socket.socket],
    handle: Callable[[LeanSocketStream], Awaitable[None]],
    handler_nursery: trio.Nursery | None = None,
) -> NoReturn:
    """Accept connections on ``sockets`` until cancelled, each handled by ``handle``.

    Every handler task runs in ``handler_nursery``, or else in this
    function's own nursery, so that cancelling it cancels them all (with a
    nursery of the caller's, the connections outlive the accepting, which
    a graceful stop needs). ``handle`` must not raise (an exception would
    end the server, as in any nursery). The sockets are closed on the way out.
    """
    warnings = ThrottledLogger(logger)
    try:
        async with trio.open_nursery() as nursery:
            for sock in sockets:
                nursery.start_soon(_accept_on, sock, handle, handler_nursery or nursery, warnings)
    finally:
        for sock in sockets:
            trio.lowlevel.notify_closing(sock)
            sock.close()
    raise AssertionError("unreachable: the accept loops never return")  # pragma: no cover


async def _accept_on(
    sock: socket.socket,
    handle: Callable[[LeanSocketStream], Awaitable[None]],
    nursery: trio.Nursery,
    warnings: ThrottledLogger,
) -> None:
    while True:
        await trio.lowlevel.wait_readable(sock)
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _address = sock.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _GONE_BEFORE_ACCEPT:
                    continue
                if exc.errno in _RESOURCE_ERRORS:
                    warnings.warning("accept", "cannot accept connections: %s; retrying", exc)
                    await trio.sleep(_RESOURCE_PAUSE)
                    break
                raise
            try:
                if conn.family in (socket.AF_INET, socket.AF_INET6):
                    # Answers are small and go out whole: never hold them back.
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                stream = LeanSocketStream(conn)
            except OSError:
                conn.close()  # reset before it could be set up: nothing to serve
                continue
            nursery.start_soon(handle, stream)
        # Let the connections just accepted, and everyone else, have a turn.
        await trio.lowlevel.checkpoint()
