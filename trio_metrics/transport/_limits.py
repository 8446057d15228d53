"""The server's protective limits, as one validated value."""

from __future__ import annotations

import math
from typing import Final

import attrs

from ._lines import DEFAULT_MAX_LINE_LENGTH

__all__ = [
    "DEFAULT_MAX_BUFFERED_ANSWER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_LINE_LENGTH",
    "Limits",
]

#: Connections served at once by default; more are closed at once.
DEFAULT_MAX_CONNECTIONS: Final = 1000
#: Answer bytes held for one connection before they must be written out.
DEFAULT_MAX_BUFFERED_ANSWER: Final = 256 * 1024


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of at least 1, not {value!r}")


def _positive_seconds_or_none(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds or None, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds or None")


@attrs.frozen
class Limits:
    """What one server lets each connection, and all of them, use.

    - ``max_line_length``: bytes in one command line (its ``\\r\\n`` not
      counted); a longer line gets the error answer and is skipped.
    - ``max_connections``: connections served at once; one more is closed
      as soon as it is accepted (and a warning is logged, rate-limited).
    - ``idle_timeout``: seconds a connection may go without sending a
      complete command, or without taking any of an answer being written to
      it, before it is closed; ``None`` (the default) never closes it.
    - ``max_buffered_answer``: answer bytes the server holds for one
      connection; past this it writes them out and reads no more of that
      connection's commands until the client has taken them (backpressure),
      so a client that never reads costs a bounded amount of memory.
    """

    max_line_length: int = attrs.field(default=DEFAULT_MAX_LINE_LENGTH, validator=_at_least_one)
    max_connections: int = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_at_least_one)
    idle_timeout: float | None = attrs.field(default=None, validator=_positive_seconds_or_none)
    max_buffered_answer: int = attrs.field(
        default=DEFAULT_MAX_BUFFERED_ANSWER, validator=_at_least_one
    )

    def describe(self) -> str:
        """One line for the start-up log."""
        idle = "off" if self.idle_timeout is None else f"{self.idle_timeout:g}s"
        return (
            f"max line {self.max_line_length} B, max connections {self.max_connections}, "
            f"idle timeout {idle}, answer buffer {self.max_buffered_answer} B"
        )
