"""A bounded cache of encoded ``get`` answer lines, per key.

``repr(float)`` costs about half a microsecond per point, so answering
``get *`` over a million points by formatting them again on every read is
slow. :class:`AnswerCache` keeps the encoded data lines of each key in
chunks of :data:`~trio_metrics.protocol.POINTS_PER_PIECE` points and
reuses them while the points they show are unchanged.

Who owns what:

- The store holds numbers only. It tells its listeners which key changed,
  and from which index, whenever a point is overwritten or inserted before
  the end (:meth:`MetricStore.add_change_listener`); appends need no word.
- The protocol module does the encoding (:func:`encode_point_lines`).
- This cache owns the bytes and their invalidation: on a change at index
  ``i`` it drops the chunks from the one holding ``i`` onwards; on a read
  it encodes whatever the snapshot has beyond the chunks it kept. Its
  memory is bounded by ``budget`` bytes (least recently read keys go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Final

import attrs

from .protocol import POINTS_PER_PIECE, encode_point_lines

__all__ = ["DEFAULT_ANSWER_CACHE_BYTES", "AnswerCache"]

#: The default memory budget of the cache, in bytes of encoded text.
DEFAULT_ANSWER_CACHE_BYTES: Final = 64 * 1024 * 1024


@attrs.define
class _Entry:
    # Chunk j shows points [j * POINTS_PER_PIECE, (j + 1) * POINTS_PER_PIECE);
    # only full chunks are kept, so a growing series never needs a chunk
    # to be rebuilt, only new ones added.
    chunks: list[bytes] = attrs.Factory(list)
    nbytes: int = 0
    # Bumped by every invalidation, so that a read that was encoding from
    # an older snapshot does not store chunks of data that has since changed.
    epoch: int = 0


class AnswerCache:
    """Encoded data lines per key, reused across reads; see the module doc.

    Not thread-safe: used from the server's one trio thread.
    """

    def __init__(self, budget: int = DEFAULT_ANSWER_CACHE_BYTES) -> None:
        if budget < 0:
            raise ValueError("budget must not be negative")
        self.budget: Final = budget
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.nbytes = 0
        #: Points answered from cached chunks, and points encoded afresh.
        self.points_reused = 0
        self.points_encoded = 0

    def invalidate(self, key: str, index: int) -> None:
        """The points of ``key`` from ``index`` on changed (a store listener)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.epoch += 1
        keep = index // POINTS_PER_PIECE
        if keep < len(entry.chunks):
            dropped = sum(map(len, entry.chunks[keep:]))
            del entry.chunks[keep:]
            entry.nbytes -= dropped
            self.nbytes -= dropped

    def lines_of(
        self, key: str, timestamps: Sequence[int], values: Sequence[float]
    ) -> Iterator[bytes]:
        """Yield the data lines of a snapshot of ``key``'s series, in pieces.

        Uses the cached chunks that cover the snapshot's first points, and
        encodes (and, within the budget, caches) the rest.
        """
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        else:
            self._entries.move_to_end(key)
        count = len(timestamps)
        full_chunks = count // POINTS_PER_PIECE
        reused = min(len(entry.chunks), full_chunks)
        # A copy: the cached list may change while this generator waits.
        yield from entry.chunks[:reused]
        self.points_reused += reused * POINTS_PER_PIECE
        epoch = entry.epoch
        for start in range(reused * POINTS_PER_PIECE, count, POINTS_PER_PIECE):
            stop = start + POINTS_PER_PIECE
            piece = encode_point_lines(key, timestamps[start:stop], values[start:stop])
            self.points_encoded += min(stop, count) - start
            in_order = len(entry.chunks) * POINTS_PER_PIECE == start
            if stop <= count and entry.epoch == epoch and in_order:
                self._keep(key, entry, piece)
            yield piece

    def _keep(self, key: str, entry: _Entry, piece: bytes) -> None:
        size = len(piece)
        if size > self.budget:
            return
        while self.nbytes + size > self.budget:
            oldest_key, oldest = next(iter(self._entries.items()))
            if oldest is entry:
                # Only this key is left and it is over budget: keep no more.
                return
            del self._entries[oldest_key]
            self.nbytes -= oldest.nbytes
            oldest.chunks.clear()
            oldest.nbytes = 0
            oldest.epoch += 1
        entry.chunks.append(piece)
        entry.nbytes += size
        self.nbytes += size
