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
    ConnectionStateError,
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
    ServerClosedError: "connection to {address} failed: {error}",
    ConnectionStateError: "connection to {address} is {error}",
}


@contextmanager
def map_exceptions(address: str, *, connecting: bool = False) -> Iterator[None]:
    """Raise :class:`ClientError` for a failure of the work inside, to or at ``address``.

    Maps timeouts (:exc:`TimeoutError`, :exc:`trio.TooSlowError`), other
    :exc:`OSError`\\ s, :exc:`trio.BrokenResourceError`,
    :exc:`trio.ClosedResourceError`, :exc:`trio.RunFinishedError` and every
    :exc:`~trio_metrics.wire.ProtocolError`; anything else, cancellation
    included, passes through. With ``connecting=True`` a timeout or an
    :exc:`OSError` reads "cannot connect to ...".
    """
    try:
        yield
    except (TimeoutError, trio.TooSlowError) as exc:
        if connecting:
            raise ClientError(f"cannot connect to {address}: timed out") from exc
        raise ClientError(f"request to {address} timed out") from exc
    except OSError as exc:  # resets, refusals, unknown hosts
        if connecting:
            raise ClientError(f"cannot connect to {address}: {exc}") from exc
        raise ClientError(f"connection to {address} failed: {exc!r}") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ClientError(f"connection to {address} failed: {exc!r}") from exc
    except trio.RunFinishedError as exc:
        raise ClientError("the trio run that owns the client has ended") from exc
    except ProtocolError as exc:
        message = _PROTOCOL_MESSAGES.get(type(exc), "{error}")
        raise ClientError(message.format(address=address, error=exc)) from exc
