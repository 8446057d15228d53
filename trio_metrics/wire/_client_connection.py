"""The client's side of the wire format, sans-IO: requests out, answers in.

Both clients encode their requests with :func:`encode_put_request`,
:func:`encode_get_request` and :data:`STATS_REQUEST`, and read the server's
answers with :class:`ResponseParser`. Nothing here touches sockets or trio.
"""

from __future__ import annotations

import math
from typing import Final, SupportsInt, TypeAlias

import attrs

from ._protocol import MAX_TIMESTAMP, STATS_PREFIX, Point, ProtocolError

__all__ = [
    "STATS_REQUEST",
    "Answer",
    "ErrorAnswer",
    "OkAnswer",
    "ResponseParser",
    "encode_get_request",
    "encode_put_request",
    "stats_from_answer",
]

_ANSWER_END: Final = b"\n\n"


def _request_token(text: str, what: str) -> str:
    # A token with whitespace in it would change the command, and one with a
    # newline would smuggle in a second command and put the connection out
    # of step with its answers, so it is refused before anything is sent.
    if not text or len(text.split()) != 1 or text.strip() != text:
        raise ProtocolError(f"{what} {text!r} must be one token without whitespace")
    return text


def encode_put_request(key: str, value: object, timestamp: SupportsInt) -> bytes:
    """Encode ``put <key> <str(value)> <int(timestamp)>\\n``.

    The value is sent as the caller wrote it (``str(301)`` is ``301``), as
    the client contract requires. Raises :class:`ProtocolError` for a key or
    value that is not a single whitespace-free token.
    """
    _request_token(key, "key")
    value_text = _request_token(str(value), "value")
    try:
        timestamp_text = str(int(timestamp))
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(f"timestamp {timestamp!r} is not an integer") from None
    return f"put {key} {value_text} {timestamp_text}\n".encode()


STATS_REQUEST: Final = b"stats\n"


def stats_from_answer(answer: OkAnswer) -> dict[str, int]:
    """The counters of a ``stats`` answer, by name (without the prefix)."""
    return {
        key.removeprefix(STATS_PREFIX): int(value)
        for key, value, _timestamp in answer.points
        if key.startswith(STATS_PREFIX)
    }


def encode_get_request(key: str) -> bytes:
    """Encode ``get <key>\\n``. Raises :class:`ProtocolError` for a bad key."""
    return f"get {_request_token(key, 'key')}\n".encode()


@attrs.frozen
class OkAnswer:
    """An ``ok`` answer with the points it carried (none for a ``put``)."""

    points: tuple[Point, ...] = ()


@attrs.frozen
class ErrorAnswer:
    """An ``error`` answer; ``message`` is its second line (``wrong command``)."""

    message: str


#: A parsed answer.
Answer: TypeAlias = OkAnswer | ErrorAnswer


class ResponseParser:
    """Incremental parser for the server's answers, used by both clients.

    Feed it byte chunks as they arrive with :meth:`feed`, then call
    :meth:`next_answer` until it returns ``None`` (more bytes needed). A
    malformed answer is consumed whole and reported by :exc:`ProtocolError`,
    so parsing can go on with the next one.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # Where to resume the search for "\n\n", so that an answer arriving
        # in many small chunks is not rescanned from the start each time.
        self._scanned = 0

    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned answer."""
        return len(self._buffer)

    def next_answer(self) -> Answer | None:
        """Return the next complete answer, or ``None`` if it has not all arrived.

        Raises :exc:`ProtocolError` for a complete answer that breaks the
        protocol (no ``ok``/``error``, a bad data line).
        """
        # The answer ends at the first "\n\n"; an answer whose first line is
        # empty is malformed, and is found the same way.
        end = self._buffer.find(_ANSWER_END, max(self._scanned - 1, 0))
        if end < 0:
            self._scanned = len(self._buffer)
            return None
        block = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        self._scanned = 0
        return _parse_answer(block)


def _parse_answer(block: bytes) -> Answer:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("answer is not UTF-8") from None
    status, _, rest = text.partition("\n")
    if status == "ok":
        if not rest:
            return OkAnswer()
        return OkAnswer(tuple(_parse_point_line(line) for line in rest.split("\n")))
    if status == "error":
        return ErrorAnswer(rest)
    raise ProtocolError(f"answer starts with {status[:40]!r}, not 'ok' or 'error'")


def _parse_point_line(line: str) -> Point:
    tokens = line.split()
    if len(tokens) != 3:
        raise ProtocolError(f"data line {line[:80]!r} does not have 3 fields")
    key, value_text, ts_text = tokens
    try:
        value = float(value_text)
    except ValueError:
        raise ProtocolError(f"value {value_text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ProtocolError(f"value {value_text[:40]!r} is not a finite number")
    try:
        # int() accepts signs, "_" and spaces; the protocol sends digits only.
        if not ts_text.isascii() or not ts_text.isdigit():
            raise ValueError
        timestamp = int(ts_text)
    except ValueError:  # also int()'s limit of 4300 digits
        raise ProtocolError(f"timestamp {ts_text[:40]!r} is not an integer") from None
    if timestamp > MAX_TIMESTAMP:
        raise ProtocolError(f"timestamp {ts_text[:40]!r} is larger than 2**63-1")
    return key, value, timestamp
