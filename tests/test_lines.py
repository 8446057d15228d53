"""Tests for trio_metrics.transport._lines: the sans-IO LineBuffer and the trio LineReader.

Expected lines are written out literally or computed by a small reference
splitter (``model_lines``), never taken from the code under test.
"""

from __future__ import annotations

from itertools import accumulate, pairwise

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.transport._lines import (
    DEFAULT_MAX_LINE_LENGTH,
    LINE_TOO_LONG,
    LineBuffer,
    LineReader,
    LineTooLong,
    lines_of,
)


def model_lines(data: bytes, limit: int) -> tuple[list[object], bytes]:
    """Reference splitter: (lines handed out, pending bytes) after all of ``data``."""
    *complete, tail = data.split(b"\n")
    lines: list[object] = []
    for line in complete:
        content = line[:-1] if line.endswith(b"\r") else line
        lines.append(LINE_TOO_LONG if len(content) > limit else content)
    # An unfinished line is reported as soon as it cannot fit any more: over the
    # limit, or one byte over that is not the "\r" of a coming "\r\n".
    if len(tail) > limit + (1 if tail.endswith(b"\r") else 0):
        lines.append(LINE_TOO_LONG)
        tail = b""
    return lines, tail


def feed_all(buffer: LineBuffer, chunks: list[bytes]) -> list[object]:
    lines: list[object] = []
    for chunk in chunks:
        lines += buffer.feed(chunk)
    return lines


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


# --- LineBuffer: splitting ---------------------------------------------------------


def test_marker_is_the_enum_member() -> None:
    assert LINE_TOO_LONG is LineTooLong.LINE_TOO_LONG


def test_lines_end_with_newline() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"put a 1 2\nget a\n") == [b"put a 1 2", b"get a"]
    assert buffer.pending == b""


def test_crlf_ending_is_stripped() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"put a 1 2\r\nget a\r\n") == [b"put a 1 2", b"get a"]


def test_mixed_endings_and_empty_lines() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"a\n\r\nb\r\n\nc\n") == [b"a", b"", b"b", b"", b"c"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\rb\n", [b"a\rb"]),
        (b"\rx\n", [b"\rx"]),
        (b"a\r\r\n", [b"a\r"]),
        (b"\r\r\n", [b"\r"]),
        (b"a\r b\r\n", [b"a\r b"]),
        (b"\r\n", [b""]),
    ],
)
def test_cr_is_only_stripped_at_line_end(data: bytes, expected: list[bytes]) -> None:
    assert LineBuffer().feed(data) == expected


def test_cr_without_newline_stays_pending() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"a\r") == []
    assert buffer.pending == b"a\r"
    assert buffer.feed(b"b\n") == [b"a\rb"]


def test_crlf_split_across_feeds() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"get key\r") == []
    assert buffer.feed(b"\n") == [b"get key"]
    assert buffer.pending == b""


def test_all_complete_lines_of_one_feed_come_together() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"1\n2\n3\n4") == [b"1", b"2", b"3"]
    assert buffer.pending == b"4"
    assert buffer.feed(b"4\n5") == [b"44"]
    assert buffer.pending == b"5"


def test_line_assembled_from_many_feeds() -> None:
    buffer = LineBuffer()
    for piece in (b"p", b"ut ", b"k", b" 1 ", b"2"):
        assert buffer.feed(piece) == []
    assert buffer.pending == b"put k 1 2"
    assert buffer.feed(b"\nget") == [b"put k 1 2"]
    assert buffer.pending == b"get"


def test_empty_feed_returns_nothing() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"") == []
    buffer.feed(b"ab")
    assert buffer.feed(b"") == []
    assert buffer.pending == b"ab"


def test_lines_are_bytes() -> None:
    lines = LineBuffer().feed(b"a\r\nb\n")
    assert all(type(line) is bytes for line in lines)


# --- LineBuffer: length limit ----------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_max_line_length_below_one_is_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        LineBuffer(bad)


def test_limit_of_one() -> None:
    buffer = LineBuffer(1)
    assert buffer.max_line_length == 1
    assert buffer.feed(b"a\n\r\nab\nb\r\n") == [b"a", b"", LINE_TOO_LONG, b"b"]


def test_default_limit_is_64_kib() -> None:
    assert DEFAULT_MAX_LINE_LENGTH == 65536
    buffer = LineBuffer()
    assert buffer.max_line_length == 65536
    assert buffer.feed(b"x" * 65536 + b"\r\n") == [b"x" * 65536]
    assert buffer.feed(b"y" * 65537 + b"\n") == [LINE_TOO_LONG]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"x" * 8 + b"\n"],
        [b"x" * 8 + b"\r\n"],
        [b"x" * 8, b"\n"],
        [b"x" * 8, b"\r\n"],
        [b"x" * 8 + b"\r", b"\n"],
        [b"x" * 8, b"\r", b"\n"],
        [b"xxxx", b"xxxx\r", b"\n"],
        [b"x", b"x", b"x", b"x", b"x", b"x", b"x", b"x", b"\r", b"\n"],
    ],
)
def test_line_of_exactly_the_limit_is_accepted(chunks: list[bytes]) -> None:
    buffer = LineBuffer(8)
    assert feed_all(buffer, chunks) == [b"x" * 8]
    assert buffer.pending == b""


def test_line_of_the_limit_with_cr_waits_for_newline() -> None:
    buffer = LineBuffer(8)
    assert buffer.feed(b"x" * 8 + b"\r") == []
    assert buffer.pending == b"x" * 8 + b"\r"
    assert buffer.feed(b"\nnext\n") == [b"x" * 8, b"next"]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"x" * 9 + b"\n"],
        [b"x" * 9 + b"\r\n"],
        [b"x" * 9, b"\n"],
        [b"x" * 9, b"\r\n"],
        [b"x" * 8 + b"\r", b"y\n"],
        [b"x" * 8 + b"\r", b"\r\n"],
        [b"x" * 4, b"x" * 5, b"\r", b"\n"],
    ],
)
def test_line_one_over_the_limit_is_too_long(chunks: list[bytes]) -> None:
    buffer = LineBuffer(8)
    assert feed_all(buffer, chunks) == [LINE_TOO_LONG]
    assert buffer.pending == b""


def test_too_long_line_reported_before_its_newline() -> None:
    buffer = LineBuffer(8)
    lines = buffer.feed(b"x" * 9)
    assert len(lines) == 1
    assert lines[0] is LINE_TOO_LONG
    assert buffer.pending == b""


def test_too_long_line_is_discarded_up_to_its_newline() -> None:
    buffer = LineBuffer(8)
    assert buffer.feed(b"x" * 20) == [LINE_TOO_LONG]
    assert buffer.feed(b"still the same line") == []
    assert buffer.pending == b""
    assert buffer.feed(b" end\r\nget a\nput") == [b"get a"]
    assert buffer.pending == b"put"
    assert buffer.feed(b" b 1\n") == [b"put b 1"]


def test_marker_keeps_its_position_in_one_feed() -> None:
    buffer = LineBuffer(8)
    data = b"a\n" + b"x" * 20 + b"\nb\n" + b"y" * 9 + b"\r\nc\n"
    assert buffer.feed(data) == [b"a", LINE_TOO_LONG, b"b", LINE_TOO_LONG, b"c"]


def test_marker_keeps_its_position_across_feeds() -> None:
    buffer = LineBuffer(8)
    assert buffer.feed(b"a\n" + b"x" * 5) == [b"a"]
    assert buffer.feed(b"x" * 10) == [LINE_TOO_LONG]
    assert buffer.feed(b"x\nb\nc") == [b"b"]
    assert buffer.pending == b"c"
    assert buffer.feed(b"\n" + b"z" * 30 + b"\nd\n") == [b"c", LINE_TOO_LONG, b"d"]


def test_two_too_long_lines_in_a_row() -> None:
    buffer = LineBuffer(4)
    assert buffer.feed(b"aaaaaa") == [LINE_TOO_LONG]
    assert buffer.feed(b"a\nbbbbbb") == [LINE_TOO_LONG]
    assert buffer.feed(b"b\nok\n") == [b"ok"]


def test_ten_megabyte_line_keeps_memory_bounded() -> None:
    limit = DEFAULT_MAX_LINE_LENGTH
    buffer = LineBuffer(limit)
    chunk = b"x" * (64 * 1024)
    lines: list[object] = []
    for _ in range(10 * 1024 * 1024 // len(chunk)):
        lines += buffer.feed(chunk)
        assert len(buffer.pending) <= limit + 1
    assert lines == [LINE_TOO_LONG]
    assert buffer.feed(b"x\r\nput k 1 2\n") == [b"put k 1 2"]
    assert buffer.pending == b""


def test_small_chunks_of_long_line_keep_memory_bounded() -> None:
    buffer = LineBuffer(100)
    lines: list[object] = []
    for _ in range(1000):
        lines += buffer.feed(b"0123456789abc")
        assert len(buffer.pending) <= 101
    assert lines == [LINE_TOO_LONG]
    assert buffer.feed(b"\nok\n") == [b"ok"]


# --- LineBuffer: properties -------------------------------------------------------------

line_bytes = st.binary().map(lambda b: bytes(b"ab \r\n\t"[x % 6] for x in b))


@settings(max_examples=300)
@given(data=line_bytes, cuts=st.lists(st.integers(0, 200), max_size=20))
def test_chunking_gives_same_lines_as_whole_feed(data: bytes, cuts: list[int]) -> None:
    limit = len(data) + 1  # no line can exceed it
    chunks = split_at(data, [min(c, len(data)) for c in cuts])
    whole = LineBuffer(limit)
    chunked = LineBuffer(limit)
    expected, tail = model_lines(data, limit)
    assert whole.feed(data) == expected
    assert feed_all(chunked, chunks) == expected
    assert whole.pending == chunked.pending == tail


@settings(max_examples=400)
@given(
    data=line_bytes,
    cuts=st.lists(st.integers(0, 200), max_size=20),
    limit=st.integers(1, 6),
)
def test_chunking_with_small_limit_matches_model(data: bytes, cuts: list[int], limit: int) -> None:
    chunks = split_at(data, [min(c, len(data)) for c in cuts])
    expected, tail = model_lines(data, limit)
    buffer = LineBuffer(limit)
    lines: list[object] = []
    for chunk in chunks:
        lines += buffer.feed(chunk)
        assert len(buffer.pending) <= limit + 1
    assert lines == expected
    assert buffer.pending == tail


no_cr_bytes = st.binary().map(lambda b: bytes(b"ab \n"[x % 4] for x in b))


@settings(max_examples=500)
@given(
    data=st.one_of(line_bytes, no_cr_bytes),
    sizes=st.lists(st.integers(1, 14), max_size=40),
    limit=st.integers(1, 12),
)
def test_blocks_hold_the_same_lines_as_feed(data: bytes, sizes: list[int], limit: int) -> None:
    # Reads about as long as the limit, so that they go both ways: as one
    # block, and as a list of lines (a "\r", a line too long, one cut off).
    cuts = list(accumulate(sizes))
    chunks = split_at(data, [min(c, len(data)) for c in cuts])
    expected, tail = model_lines(data, limit)
    buffer = LineBuffer(limit)
    lines: list[object] = []
    for chunk in chunks:
        lines += lines_of(buffer.feed_block(chunk))
        assert len(buffer.pending) <= limit + 1
    assert lines == expected
    assert buffer.pending == tail


def test_a_line_begun_in_one_read_and_too_long_in_the_next() -> None:
    buffer = LineBuffer(3)
    assert buffer.feed_block(b"aaa") == []
    assert buffer.feed_block(b"a\n") == [LINE_TOO_LONG]
    assert buffer.feed_block(b"b\n") == b"b"


def test_plain_reads_come_as_blocks_even_when_cut_mid_line() -> None:
    stream = b"".join(b"put k%d %d.5 %d\n" % (i % 7, i, 1000 + i) for i in range(2000))
    buffer = LineBuffer()
    lines: list[object] = []
    for start in range(0, len(stream), 4093):  # reads that end inside a line
        block = buffer.feed_block(stream[start : start + 4093])
        assert isinstance(block, bytes)
        lines += lines_of(block)
    assert lines == stream[:-1].split(b"\n")
    assert buffer.pending == b""


@pytest.mark.parametrize(
    "data",
    [b"a\r\nb\n", b"\r", b"x" * 11 + b"\n", b"no newline yet"],
    ids=["cr", "lone-cr", "over-the-limit", "incomplete"],
)
def test_unusual_reads_come_as_lists(data: bytes) -> None:
    assert isinstance(LineBuffer(10).feed_block(data), list)


def test_an_empty_line_is_a_block_of_no_bytes() -> None:
    assert LineBuffer().feed_block(b"\n") == b""


# --- LineReader over trio streams -------------------------------------------------------

# Bounds every wait, so that a missing line fails the test instead of hanging it.
TIMEOUT = 5.0


async def receive(reader: LineReader) -> list[object]:
    with trio.fail_after(TIMEOUT):
        return list(await reader.receive_lines())


async def test_reader_returns_all_complete_lines_of_one_receive() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(b"put a 1 2\nget a\r\nget *\nunfin")
    reader = LineReader(stream)
    lines = await receive(reader)
    assert lines == [b"put a 1 2", b"get a", b"get *"]
    assert all(type(line) is bytes for line in lines)
    assert reader.pending == b"unfin"
    stream.put_data(b"ished\n")
    assert await receive(reader) == [b"unfinished"]


async def test_reader_returns_empty_list_at_eof() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(b"a\n")
    stream.put_eof()
    reader = LineReader(stream)
    assert await receive(reader) == [b"a"]
    assert await receive(reader) == []


async def test_reader_drops_unfinished_last_line_at_eof() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(b"put k 1 15")
    stream.put_eof()
    reader = LineReader(stream)
    assert await receive(reader) == []
    assert reader.pending == b"put k 1 15"


async def test_reader_keeps_receiving_until_a_line_completes() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(b"hello world\nx")
    reader = LineReader(stream, receive_size=4)
    # "hell", "o wo", "rld\n": one call, three receives.
    assert await receive(reader) == [b"hello world"]
    stream.put_eof()
    assert await receive(reader) == []


async def test_reader_applies_line_length_limit() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(b"ok1\n" + b"x" * 10 + b"\nabcd\r\n")
    stream.put_eof()
    reader = LineReader(stream, 4)
    assert await receive(reader) == [b"ok1", LINE_TOO_LONG, b"abcd"]
    assert await receive(reader) == []


async def test_reader_reports_too_long_line_while_it_is_still_arriving() -> None:
    stream = trio.testing.MemoryReceiveStream()
    reader = LineReader(stream, 4, receive_size=3)
    stream.put_data(b"xxxxxx")
    assert await receive(reader) == [LINE_TOO_LONG]
    stream.put_data(b"xx\nok\n")
    assert await receive(reader) == [b"ok"]


def test_reader_refuses_limit_below_one() -> None:
    with pytest.raises(ValueError):
        LineReader(trio.testing.MemoryReceiveStream(), 0)


async def test_reader_over_memory_stream_pair() -> None:
    send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive_stream)
    await send_stream.send_all(b"get a\nget b\r\nget")
    assert await receive(reader) == [b"get a", b"get b"]
    await send_stream.send_all(b" c\n")
    assert await receive(reader) == [b"get c"]
    await send_stream.aclose()
    assert await receive(reader) == []


async def test_reader_waits_for_data_sent_in_pieces() -> None:
    send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive_stream)
    received: list[object] = []

    async def read() -> None:
        received.extend(await receive(reader))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for piece in (b"pu", b"t k 1", b" 2\r"):
                await send_stream.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()
                assert received == []
            await send_stream.send_all(b"\nge")
    assert received == [b"put k 1 2"]
    assert reader.pending == b"ge"


async def test_reader_passes_stream_errors_through() -> None:
    stream = trio.testing.MemoryReceiveStream()
    reader = LineReader(stream)
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await receive(reader)


class ChunkStream(trio.abc.ReceiveStream):
    """A receive stream that hands out exactly the given chunks, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = [chunk for chunk in chunks if chunk]

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self._chunks:
            return b""
        chunk = self._chunks.pop(0)
        assert max_bytes is None or len(chunk) <= max_bytes
        return chunk

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@settings(max_examples=100, deadline=None)
@given(data=line_bytes, cuts=st.lists(st.integers(0, 200), max_size=10))
def test_reader_chunking_matches_model(data: bytes, cuts: list[int]) -> None:
    limit = len(data) + 1
    chunks = split_at(data, [min(c, len(data)) for c in cuts])
    expected, _ = model_lines(data, limit)
    # Every receive that completes at least one line is one batch: all the
    # lines ended by the bytes received so far, and nothing else.
    expected_batches: list[list[object]] = []
    received = b""
    handed_out = 0
    for chunk in chunks:
        received += chunk
        complete = received.count(b"\n")
        if complete > handed_out:
            expected_batches.append(expected[handed_out:complete])
            handed_out = complete

    async def main() -> list[list[object]]:
        reader = LineReader(ChunkStream(chunks), limit)
        batches: list[list[object]] = []
        while batch := await receive(reader):
            batches.append(batch)
            assert len(batches) <= len(chunks)  # one batch per receive at most
        return batches

    assert trio.run(main) == expected_batches
