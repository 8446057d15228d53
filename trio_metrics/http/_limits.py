"""What the HTTP side may use, as one validated value: :class:`HttpLimits`."""

from __future__ import annotations

import math
from typing import Any, Final

import attrs

from ._series import DEFAULT_MAX_POINTS

__all__ = [
    "DEFAULT_BODY_BUDGET_BYTES",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_HTTP_MAX_CONNECTIONS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_POINTS",
    "HttpLimits",
]

#: The largest request body accepted by default; a larger one gets 413.
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
#: HTTP connections served at once by default; more get a 503.
DEFAULT_HTTP_MAX_CONNECTIONS: Final = 1000
#: Seconds a connection has to send a request's headers, by default.
DEFAULT_HEADER_TIMEOUT: Final = 5.0
#: Bytes of request bodies held at once over all connections, by default.
DEFAULT_BODY_BUDGET_BYTES: Final = 64 << 20
#: Seconds a request has to send its whole body, by default.
DEFAULT_BODY_TIMEOUT: Final = 30.0


def _whole(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be a whole number of at least {minimum}")

    return check


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{attribute.name} must be a positive number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds")


@attrs.frozen(kw_only=True)
class HttpLimits:
    """The HTTP server's limits; each is a ``serve --http-...`` flag.

    - ``max_connections``: connections served at once; one more is answered
      503 at once and closed.
    - ``header_timeout``: seconds a connection has, from when it opens or
      from its previous answer, to send a request's headers; then it is
      closed (this also closes idle keep-alive connections).
    - ``max_body_bytes``: the largest request body (a 413 past it).
    - ``body_budget_bytes``: bytes of request bodies held at once over all
      connections (at least ``max_body_bytes``); a body that would pass it
      is refused at once with a 503. A body with a ``Content-Length`` is
      charged all of it when its headers arrive.
    - ``body_timeout``: seconds a request has, once its headers are in, to
      send its whole body; then it gets a 408 and the connection closes.
    - ``max_points``: the most points one ``/api/v1/series`` answer may hold
      (a 400 past it: ask for ``max_points`` or a narrower range).

    Raises :exc:`ValueError` for a value out of range.
    """

    max_connections: int = attrs.field(default=DEFAULT_HTTP_MAX_CONNECTIONS, validator=_whole(1))
    header_timeout: float = attrs.field(default=DEFAULT_HEADER_TIMEOUT, validator=_positive_seconds)
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_whole(0))
    body_budget_bytes: int = attrs.field(default=DEFAULT_BODY_BUDGET_BYTES, validator=_whole(0))
    body_timeout: float = attrs.field(default=DEFAULT_BODY_TIMEOUT, validator=_positive_seconds)
    max_points: int = attrs.field(default=DEFAULT_MAX_POINTS, validator=_whole(1))

    @body_budget_bytes.validator
    def _budget_holds_a_body(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value < self.max_body_bytes:
            raise ValueError(
                f"body_budget_bytes ({value}) must be at least max_body_bytes"
                f" ({self.max_body_bytes}): no body of that size could be taken"
            )

    def describe(self) -> str:
        """One line for the start-up log."""
        return (
            f"max connections {self.max_connections}, header timeout {self.header_timeout:g}s,"
            f" max body {self.max_body_bytes} B, body budget {self.body_budget_bytes} B,"
            f" body timeout {self.body_timeout:g}s, max points {self.max_points}"
        )
