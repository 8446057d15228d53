"""Line splitting over any :class:`trio.abc.ReceiveStream`.

:class:`LineBuffer` is the sans-IO core (bytes in, lines out);
:class:`LineReader` drives it from a stream. Both hand out every complete
line that has arrived in one go, so a pipelined batch is handled in one pass.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias, cast

import trio

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "LINE_TOO_LONG",
    "RECEIVE_SIZE",
    "Line",
    "LineBuffer",
    "LineReader",
    "LineTooLong",
]

#: The longest line accepted by default, in bytes, not counting ``\r\n``.
DEFAULT_MAX_LINE_LENGTH: Final = 64 * 1024
#: How many bytes one receive asks the stream for.
RECEIVE_SIZE: Final = 64 * 1024


class LineTooLong(enum.Enum):
    """Marks, in a list of lines, a line that was over the length limit.

    Its bytes are dropped (up to its newline), but its place in the order
    of lines is kept so that it gets its error answer in turn.
    """

    LINE_TOO_LONG = "line too long"


#: The marker of an over-long line; compare with ``is``.
LINE_TOO_LONG: Final = LineTooLong.LINE_TOO_LONG

#: One line without its ending, or the marker of an over-long one.
Line: TypeAlias = bytes | Literal[LineTooLong.LINE_TOO_LONG]


class LineBuffer:
    """Sans-IO line splitter with a maximum line length.

    Lines end with ``\\n``; a ``\\r`` before it is removed too. A line longer
    than ``max_line_length`` bytes (not counting its ending) is reported as
    :data:`LINE_TOO_LONG` as soon as it is known to be too long, and the rest
    of it is discarded up to its ``\\n``, so memory stays bounded by the limit
    whatever the peer sends.
    """

    def __init__(self, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        if max_line_length < 1:
            raise ValueError("max_line_length must be at least 1")
        self.max_line_length: Final = max_line_length
        # A bytearray, so that a long line arriving in many small pieces is
        # appended in amortised O(1) instead of being copied each time.
        self._partial = bytearray()
        self._discarding = False

    @property
    def pending(self) -> bytes:
        """The start of a line that has not ended yet."""
        return bytes(self._partial)

    def feed(self, data: bytes) -> list[Line]:
        """Add received bytes; return every line they complete, in order."""
        if (
            not self._partial
            and not self._discarding
            and data.endswith(b"\n")
            and len(data) <= self.max_line_length
            and b"\r" not in data
        ):
            # The usual read: whole short lines, nothing left over.
            return cast(list[Line], data[:-1].split(b"\n"))
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            self._discarding = False
            data = data[newline + 1 :]
        last_newline = data.rfind(b"\n")
        if last_newline < 0:
            self._partial += data
            return self._check_partial_length([])
        if self._partial:
            self._partial += data[:last_newline]
            block = bytes(self._partial)
        else:
            block = data[:last_newline]
        self._partial = bytearray(data[last_newline + 1 :])
        raw = block.split(b"\n")
        if b"\r" in block:
            raw = [_strip_cr(line) for line in raw]
        limit = self.max_line_length
        # Only a block longer than the limit can hold a line that is too long,
        # so the per-line check is skipped for the usual batch of short lines.
        if len(block) > limit and max(map(len, raw)) > limit:
            lines = [LINE_TOO_LONG if len(line) > limit else line for line in raw]
        else:
            lines = cast(list[Line], raw)
        return self._check_partial_length(lines)

    def _check_partial_length(self, lines: list[Line]) -> list[Line]:
        partial = self._partial
        limit = self.max_line_length
        # One byte over is still fine if it is the "\r" of a "\r\n" ending.
        if len(partial) > limit + partial.endswith(b"\r"):
            lines.append(LINE_TOO_LONG)
            self._partial = bytearray()
            self._discarding = True
        return lines


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


class LineReader:
    """Reads lines from a :class:`trio.abc.ReceiveStream`.

    Errors from the stream (:exc:`trio.BrokenResourceError` and the like)
    and cancellation pass through unchanged.
    """

    def __init__(
        self,
        stream: trio.abc.ReceiveStream,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        *,
        receive_size: int = RECEIVE_SIZE,
    ) -> None:
        self._stream = stream
        self._buffer = LineBuffer(max_line_length)
        self._receive_size = receive_size

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line, kept until its ``\\n`` arrives."""
        return self._buffer.pending

    async def receive_lines(self) -> list[Line]:
        """Wait for at least one complete line and return all that have arrived.

        Returns an empty list at end of stream. An unfinished line left at
        end of stream is not returned: it was cut off, and acting on part of
        a command could store a wrong point (``put k 1 15`` of ``... 1501``).
        """
        while True:
            data = await self._stream.receive_some(self._receive_size)
            if not data:
                return []
            # Lines are handed out as bytes whatever the stream gives.
            lines = self._buffer.feed(bytes(data) if isinstance(data, bytearray) else data)
            if lines:
                return lines
