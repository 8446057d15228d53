"""What the HTTP side may use, as one validated value: :class:`HttpLimits`."""

from __future__ import annotations

from typing import Any, Final

import attrs

from ._series import DEFAULT_MAX_POINTS

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_POINTS", "HttpLimits"]

#: The largest request body accepted by default; a larger one gets 413.
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20


def _whole(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be a whole number of at least {minimum}")

    return check


@attrs.frozen(kw_only=True)
class HttpLimits:
    """The HTTP server's limits; each is a ``serve --http-...`` flag.

    - ``max_body_bytes``: the largest request body (a 413 past it).
    - ``max_points``: the most points one ``/api/v1/series`` answer may hold
      (a 400 past it: ask for ``max_points`` or a narrower range).

    Raises :exc:`ValueError` for a value out of range.
    """

    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_whole(0))
    max_points: int = attrs.field(default=DEFAULT_MAX_POINTS, validator=_whole(1))

    def describe(self) -> str:
        """One line for the start-up log."""
        return f"max body {self.max_body_bytes} B, max points {self.max_points}"
