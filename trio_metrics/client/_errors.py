"""One error translation for every client: :class:`ClientError` and :func:`map_exceptions`.

Whatever a request runs into — the socket or stream failing or timing out,
the trio run being gone, or what :class:`~trio_metrics.wire.ClientConnection`
refuses or finds wrong — the caller sees one :class:`ClientError`, with the
same message from every client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import trio

from ..wire import (
    ClientConnection,
    ConnectionStateError,
    ForeignAnswerError,
    MalformedAnswerError,
    OutOfStepError,
    ProtocolError,
    ServerClosedError,
    ServerRefusedError,
)

__all__ = ["ClientError", "map_exceptions"]


class ClientError(Exception):
    """Every failure of a client: an error answer, a lost or timed-out
    connection, or an answer that does not follow the protocol."""


# What the caller reads for each of ClientConnection's errors; a plain
# ProtocolError is a request that cannot be sent, and says so itself.
_PROTOCOL_MESSAGES: Final[dict[type[ProtocolError], str]] = {
    ServerRefusedError: "server answered error: {error}",
    MalformedAnswerError: "malformed answer from {address}: {error}",
    OutOfStepError: "{address} sent more than one answer to a request",
    ConnectionStateError: "connection to {address} is {error}",
}


@contextmanager
def map_exceptions(
    address: str,
    *,
    connecting: bool = False,
    connection: ClientConnection | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Raise :class:`ClientError` for a failure of the work inside, to or at ``address``.

    Maps timeouts (:exc:`TimeoutError`, :exc:`trio.TooSlowError`), other
    :exc:`OSError`\\ s, :exc:`trio.BrokenResourceError`,
    :exc:`trio.ClosedResourceError`, :exc:`trio.RunFinishedError` and every
    :exc:`~trio_metrics.wire.ProtocolError`; anything else, cancellation
    included, passes through. With ``connecting=True`` a timeout or an
    :exc:`OSError` reads "cannot connect to ...". Given the request's
    ``connection`` and ``timeout``, a server that never sent a byte is
    named as perhaps not the main port. Messages show an OS error's text,
    never a Python repr.
    """
    try:
        yield
    except (TimeoutError, trio.TooSlowError) as exc:
        raise ClientError(_timeout_message(address, connecting, connection, timeout)) from exc
    except OSError as exc:  # refusals, resets, unknown hosts
        if connecting and _refused(exc):
            raise ClientError(_refused_message(address)) from exc
        if connecting:
            raise ClientError(f"cannot connect to {address}: {_os_text(exc)}") from exc
        raise ClientError(_failed(address, exc)) from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ClientError(_failed(address, exc)) from exc
    except trio.RunFinishedError as exc:
        raise ClientError("the trio run that owns the client has ended") from exc
    except ServerClosedError as exc:
        raise ClientError(_closed_message(address, exc, connection)) from exc
    except ProtocolError as exc:
        message = _PROTOCOL_MESSAGES.get(type(exc), "{error}")
        raise ClientError(message.format(address=address, error=exc)) from exc


def _timeout_message(
    address: str, connecting: bool, connection: ClientConnection | None, timeout: float | None
) -> str:
    if connecting:
        return f"cannot connect to {address}: timed out"
    if connection is not None and not connection.heard_from_server and timeout is not None:
        # An HTTP or Graphite port reads the request and waits for more.
        return f"{address} sent nothing in {timeout:g} s: is that the main port?"
    return f"request to {address} timed out"


def _refused(exc: OSError) -> bool:
    # trio tries each address of the host and reports them in a group.
    if isinstance(exc, ConnectionRefusedError):
        return True
    group = exc.__cause__
    return isinstance(group, BaseExceptionGroup) and all(
        isinstance(error, ConnectionRefusedError) for error in group.exceptions
    )


def _refused_message(address: str) -> str:
    port = address.rpartition(":")[2]
    return (
        f"no trio-metrics server at {address} (connection refused); is it running?"
        f" `trio-metrics serve --port {port}`"
    )


def _closed_message(
    address: str, exc: ServerClosedError, connection: ClientConnection | None
) -> str:
    if isinstance(exc, ForeignAnswerError):
        return f"{address} answered HTTP: is that the main port?"
    if connection is not None and not connection.heard_from_server:
        return (
            f"{address} closed the connection without answering"
            " (too many connections, or not the main port?)"
        )
    return f"connection to {address} failed: {exc}"


def _failed(address: str, exc: BaseException) -> str:
    return f"connection to {address} failed: {_os_text(exc)}"


def _os_text(exc: BaseException) -> str:
    # trio wraps the socket's OSError; its text ("Connection reset by peer")
    # is what a user can act on, not the exception's repr.
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    if isinstance(exc, trio.ClosedResourceError):
        return "the connection was closed"
    return str(exc) or "the connection broke"
