"""Request bodies: read within a size limit, a deadline, and one budget for all connections.

Each body is charged to a :class:`BodyBudget` shared by every connection
before it is held: its whole ``Content-Length`` at once, or a chunked body
piece by piece. A body that does not fit is refused at once with a 503, so
a thousand clients each trickling a 1 MiB body hold at most the budget,
not a gigabyte. A body not complete within the body timeout gets a 408.
Both close the connection, as a 413 does: the rest of the body is not read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ._limits import HttpLimits
from ._messages import Response
from ._sending import Receive, Scope
from ._stats import HttpStats

__all__ = ["BodyBudget", "BodyReader", "Disconnected"]


class Disconnected(Exception):
    """The client went away before its whole request was read."""


@attrs.define
class BodyBudget:
    """Bytes of request bodies held at once, over every connection, against ``total``."""

    total: int
    held: int = 0

    def take(self, size: int) -> bool:
        """Charge ``size`` bytes if they fit; False (nothing charged) if not."""
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        """Return ``size`` bytes taken before."""
        self.held -= size


class _Charge:
    """What one request took from the budget, given back once."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.taken = 0

    def take(self, size: int) -> bool:
        if not self._budget.take(size):
            return False
        self.taken += size
        return True

    def give_back(self) -> None:
        self._budget.give_back(self.taken)
        self.taken = 0


@attrs.frozen
class BodyReader:
    """Reads each request's body within ``limits``, charging ``budget``."""

    limits: HttpLimits
    budget: BodyBudget
    stats: HttpStats

    @asynccontextmanager
    async def read(self, scope: Scope, receive: Receive) -> AsyncIterator[bytes | Response]:
        """Yield the whole body, or the response that refuses it (413, 503 or 408).

        The body's bytes stay charged to the budget until the block ends.
        Raises :exc:`Disconnected` if the client leaves (or is dropped)
        before the body is complete. Cancellation propagates.
        """
        declared = _content_length(scope)
        charge = _Charge(self.budget)
        try:
            if declared is not None and declared > self.limits.max_body_bytes:
                yield self._too_large()
            elif declared and not charge.take(declared):
                yield self._over_budget()
            else:
                with trio.move_on_after(self.limits.body_timeout) as deadline:
                    body = await self._receive(receive, charge, per_piece=declared is None)
                if deadline.cancelled_caught:
                    timeout = self.limits.body_timeout
                    yield _closing(408, f"request body not complete within {timeout:g} s")
                else:
                    yield body
        finally:
            charge.give_back()

    async def _receive(
        self, receive: Receive, charge: _Charge, *, per_piece: bool
    ) -> bytes | Response:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise Disconnected
            piece: bytes = message.get("body", b"")
            if len(body) + len(piece) > self.limits.max_body_bytes:
                return self._too_large()
            if per_piece and piece and not charge.take(len(piece)):
                return self._over_budget()
            body += piece
            if not message.get("more_body", False):
                return bytes(body)

    def _too_large(self) -> Response:
        self.stats.bodies_too_large += 1
        return _closing(413, f"request body over the limit of {self.limits.max_body_bytes} bytes")

    def _over_budget(self) -> Response:
        self.stats.bodies_over_budget += 1
        response = _closing(503, "the server holds too many request bodies now; try again later")
        return attrs.evolve(response, headers=(*response.headers, ("retry-after", "1")))


def _closing(status: int, message: str) -> Response:
    # The rest of the body is not read: the connection cannot be reused.
    return attrs.evolve(Response.error(status, message), headers=(("connection", "close"),))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses such a request before it gets here
    return None
