"""Whether an HTTP connection has shown a token yet (for the budget of those that have not)."""

from __future__ import annotations

from typing import Final

from ._stats import HttpStats

__all__ = ["CONNECTION_TRUST", "ConnectionTrust"]

#: The key, in each connection's ASGI ``state``, of its :class:`ConnectionTrust`.
CONNECTION_TRUST: Final = "trio_metrics.connection_trust"


class ConnectionTrust:
    """Whether an HTTP connection has sent a request with a known token yet.

    Counted in ``stats.connections_unauthenticated`` from its start until it
    has (:meth:`authenticated`) or until it ends (:meth:`end`).
    """

    def __init__(self, stats: HttpStats) -> None:
        self._stats = stats
        self._counted = True
        stats.connections_unauthenticated += 1

    def authenticated(self) -> None:
        """A request of this connection gave a known token."""
        self._uncount()

    def end(self) -> None:
        """The connection is closed."""
        self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self._stats.connections_unauthenticated -= 1
