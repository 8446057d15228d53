"""The rules for a put's arguments, checked before anything is sent.

The clients (through :func:`~trio_metrics.wire.encode_put_request`), the
CLI and the HTTP API call these same checks, so an argument is refused in
the same words wherever it comes from, and whatever they accept a server
with default limits accepts too. Each check raises :class:`ProtocolError`
naming the rule; messages echo at most :data:`ECHO_CHARS` characters of the
argument.
"""

from __future__ import annotations

import math
from typing import Final, SupportsInt

from ._protocol import (
    ALL_KEYS,
    MAX_TIMESTAMP,
    ProtocolError,
    is_valid_key,
    parse_timestamp,
    parse_value,
)

__all__ = [
    "ECHO_CHARS",
    "MAX_KEY_BYTES",
    "MAX_PUT_LINE_BYTES",
    "check_key",
    "check_put_line",
    "check_timestamp",
    "check_value",
    "echo",
]

#: The longest command line a server takes by default (its
#: ``--max-line-length``; a test keeps the two equal).
MAX_PUT_LINE_BYTES: Final = 64 * 1024
#: The longest key, in UTF-8 bytes: a put line of the default maximum
#: length must still have room for it, a value and a timestamp.
MAX_KEY_BYTES: Final = MAX_PUT_LINE_BYTES - 64
#: How much of a refused argument a message shows.
ECHO_CHARS: Final = 40


def echo(argument: object) -> str:
    """``argument`` for a message (a str as its ``repr``), cut to :data:`ECHO_CHARS` characters."""
    if not isinstance(argument, str):
        text = str(argument)
        return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}... ({len(text)} digits)"
    if len(argument) <= ECHO_CHARS:
        return repr(argument)
    return f"{argument[:ECHO_CHARS]!r}... ({len(argument)} characters)"


def check_key(key: object, *, allow_all: bool = False) -> str:
    """Return ``key`` if a put may store it (or, with ``allow_all``, it is ``*``).

    Raises :class:`ProtocolError` for a key that is not a str, not one word
    of printable characters, ``*``, or longer than :data:`MAX_KEY_BYTES`.
    """
    if not isinstance(key, str):
        raise ProtocolError(f"key must be a str, not {type(key).__name__}")
    if allow_all and key == ALL_KEYS:
        return key
    if not is_valid_key(key):
        raise ProtocolError(f"key {echo(key)} must be one word of printable characters, not '*'")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise ProtocolError(f"key of {size} bytes is longer than the limit of {MAX_KEY_BYTES}")
    return key


def check_value(value: object) -> str:
    """Return the text a put sends for ``value``: ``str(value)``, checked.

    Raises :class:`ProtocolError` for a ``bool`` (not a number, though
    Python counts it as one), a number that is not finite, or a text that
    is not one word ``float()`` reads as a finite number.
    """
    if isinstance(value, bool):
        raise ProtocolError(f"value {value!r} is a bool, not a number")
    if isinstance(value, int | float) and not _finite(value):
        raise ProtocolError(f"value {echo(value)} is not a finite number")
    text = str(value)
    if not text or len(text.split()) != 1 or text.strip() != text:
        raise ProtocolError(f"value {echo(text)} must be one word without whitespace")
    try:
        parse_value(text.encode("utf-8", "surrogatepass"))
    except ProtocolError:
        raise ProtocolError(f"value {echo(text)} is not a finite number") from None
    return text


def _finite(number: int | float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int too big for a float
        return False


def check_timestamp(timestamp: object) -> int:
    """Return ``timestamp`` as an int: whole unix seconds in 0..2**63-1.

    A float or other number is taken if it is whole (``1.0`` is ``1``), a
    str if it is decimal digits, as on the wire (``"17"``). Raises
    :class:`ProtocolError` for a ``bool``, a fraction (``1.5``), a number
    out of range, or anything else.
    """
    if isinstance(timestamp, bool):
        raise ProtocolError(f"timestamp {timestamp!r} is a bool, not a number")
    if isinstance(timestamp, str):
        return _timestamp_text(timestamp)
    if not isinstance(timestamp, SupportsInt):
        raise ProtocolError(f"timestamp {echo(timestamp)} is not a number")
    try:
        whole = int(timestamp)
        fractional = whole != timestamp
    except (ValueError, OverflowError):  # nan, inf
        fractional = True
    if fractional:
        raise ProtocolError(f"timestamp {echo(timestamp)} is not a whole number of seconds")
    if not 0 <= whole <= MAX_TIMESTAMP:
        raise ProtocolError(f"timestamp {echo(whole)} is outside 0..2**63-1")
    return whole


def _timestamp_text(text: str) -> int:
    try:
        return parse_timestamp(text.encode("utf-8", "surrogatepass"))
    except ProtocolError:
        raise ProtocolError(f"timestamp {echo(text)} is not decimal digits in 0..2**63-1") from None


def check_put_line(line: bytes) -> bytes:
    """Return ``line`` if a server with default limits takes it (newline not counted).

    Raises :class:`ProtocolError` for a longer one.
    """
    size = len(line.rstrip(b"\n"))
    if size > MAX_PUT_LINE_BYTES:
        raise ProtocolError(
            f"put line of {size} bytes is longer than the limit of {MAX_PUT_LINE_BYTES}"
        )
    return line
