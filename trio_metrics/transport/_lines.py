"""Line splitting over any :class:`trio.abc.ReceiveStream`.

:class:`LineBuffer` is the sans-IO core (bytes in, lines out);
:class:`LineReader` drives it from a stream. Both hand out every complete
line that has arrived in one go, so a pipelined batch is handled in one pass.
A reader that parses whole batches at once can take the usual read as one
:data:`Block` of bytes instead, and split it only when it must.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias, cast

import trio

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "LINE_TOO_LONG",
    "RECEIVE_SIZE",
    "Block",
    "Line",
    "LineBuffer",
    "LineReader",
    "LineTooLong",
    "lines_of",
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

#: What :meth:`LineBuffer.feed_block` hands out: the complete lines of a read
#: as one ``bytes`` (joined by ``\n``, endings removed, none over the limit),
#: or, for anything unusual, the list :meth:`LineBuffer.feed` would give.
Block: TypeAlias = bytes | list[Line]


def lines_of(block: Block) -> list[Line]:
    """The lines of a :data:`Block`, as :meth:`LineBuffer.feed` gives them."""
    if isinstance(block, bytes):
        return cast(list[Line], block.split(b"\n"))
    return block


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
        return lines_of(self.feed_block(data))

    def feed_block(self, data: bytes) -> Block:
        """Like :meth:`feed`, but the lines of the usual read come as one block.

        When the complete lines hold no ``\\r`` and cannot hold a line over
        the limit, they are returned as one ``bytes``: the lines joined by
        ``\\n``, without their endings (``b""`` is one empty line). Otherwise,
        and when no line is complete (``[]``), the list :meth:`feed` returns.
        A batch parser looks at the block in one pass, with no object per line.
        """
        partial = self._partial
        limit = self.max_line_length
        # Every line but the first lies within ``data``; the first goes on
        # from what was pending. Short enough both, and no "\r" to strip
        # anywhere: the block is the complete lines as they came.
        if not self._discarding and len(data) <= limit and b"\r" not in data:
            first_newline = data.find(b"\n")
            if 0 <= first_newline <= limit - len(partial) and b"\r" not in partial:
                last_newline = data.rfind(b"\n")
                if partial:
                    partial += data[:last_newline]
                    block = bytes(partial)
                    self._partial = bytearray(data[last_newline + 1 :])
                    return block
                if last_newline == len(data) - 1:
                    # The usual read: whole short lines, nothing left over.
                    return data[:-1]
                self._partial = bytearray(data[last_newline + 1 :])
                return data[:last_newline]
        return self._feed_lines(data)

    def _feed_lines(self, data: bytes) -> list[Line]:
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
        return lines_of(await self.receive_block())

    async def receive_block(self) -> Block:
        """Like :meth:`receive_lines`, as a :data:`Block` (:meth:`LineBuffer.feed_block`).

        Returns ``[]`` at end of stream (never ``b""``, which is one empty line).
        """
        while True:
            data = await self._stream.receive_some(self._receive_size)
            if not data:
                return []
            # Lines are handed out as bytes whatever the stream gives.
            block = self._buffer.feed_block(bytes(data) if isinstance(data, bytearray) else data)
            if isinstance(block, bytes) or block:
                return block
