"""What every listener does around one connection: admit, count, contain failures, close.

The main protocol's handler and the Graphite listener's both run their
conversation inside :func:`guarded_connection`, so the connection limit, the
counters, the rule that one failing connection never ends its listener, and
the closing are written once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio

from ._stats import ServerStats
from ._throttled_log import ThrottledLogger
from ._tls import TlsServer

__all__ = ["PEER_GONE_ERRORS", "ListenerCounters", "guarded_connection"]

#: The errors a stream raises when its peer resets, vanishes or closes: they
#: end that connection only, and are no failure of the server's.
PEER_GONE_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)


@attrs.frozen
class ListenerCounters:
    """One listener's connection counters inside a :class:`ServerStats`.

    ``prefix`` is ``""`` for the main protocol's ``connections_open`` ...
    and ``"graphite_"`` for ``graphite_connections_open`` ...; the field
    names are checked once, here.
    """

    stats: ServerStats
    prefix: str = attrs.field()

    @prefix.validator
    def _check_prefix(self, attribute: attrs.Attribute[str], prefix: str) -> None:
        for name in ("connections_open", "connections_total", "connections_refused"):
            if not hasattr(self.stats, prefix + name):
                raise ValueError(f"ServerStats has no counter {prefix + name!r}")

    @property
    def open(self) -> int:
        """Connections of this listener open now."""
        value: int = getattr(self.stats, self.prefix + "connections_open")
        return value

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to this listener's counter ``name`` (without the prefix)."""
        field = self.prefix + name
        setattr(self.stats, field, getattr(self.stats, field) + amount)


@asynccontextmanager
async def guarded_connection(
    stream: trio.abc.Stream,
    counters: ListenerCounters,
    *,
    max_connections: int,
    warnings: ThrottledLogger,
    logger: logging.Logger,
    what: str,
    quiet_failures: tuple[type[Exception], ...] = (),
    tls: TlsServer | None = None,
) -> AsyncIterator[trio.abc.Stream | None]:
    """Run one connection's conversation in the block; close ``stream`` after it.

    Yields ``None`` (and closes the stream at once) when ``max_connections``
    of this listener are open already: the caller skips the conversation.
    With ``tls``, the connection is counted open from its handshake on, and
    a failed or timed-out handshake yields ``None`` too (see
    :meth:`TlsServer.handshake`). Otherwise yields the stream to converse
    on (``stream``, or the TLS stream over it), counts the connection open until the block
    ends, and contains its failures: an exception of ``quiet_failures`` (a
    failing store) is a rate-limited warning, any other :exc:`Exception` (a
    bug) is logged with its traceback; either counts as a
    ``connection_failures`` and never reaches the listener's nursery.
    Cancellation propagates, and the stream is closed on the way out.
    ``what`` names the connection in log messages (``"connection"``,
    ``"Graphite connection"``).
    """
    if counters.open >= max_connections:
        counters.add("connections_refused")
        warnings.warning(
            "max-connections",
            f"%d {what}s are open (the limit): closed a new one",
            counters.open,
        )
        await trio.aclose_forcefully(stream)
        yield None
        return
    counters.add("connections_open")
    counters.add("connections_total")
    conversation: trio.abc.Stream | None = stream
    try:
        if tls is not None:
            conversation = await tls.handshake(stream, counters.stats, warnings)
        yield conversation
    except quiet_failures as exc:
        # No ok for points that could not be kept: closing tells the client,
        # and every sender would log the same traceback.
        counters.add("connection_failures")
        warnings.warning("store", f"closed a {what}: %s", exc)
    except Exception:
        # A handler that raised would end the listener's nursery, and so
        # the server; one broken conversation must not take the others down.
        counters.add("connection_failures")
        logger.exception(f"{what} closed after an unexpected error")
    finally:
        counters.add("connections_open", -1)
        # Closing a TLS stream closes the socket under it.
        await trio.aclose_forcefully(stream if conversation is None else conversation)
