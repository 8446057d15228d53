"""The stored keys in sorted order, cheap to extend: :class:`SortedKeys`.

A single sorted list would move every later key on each insertion (a
million new keys in random order: about an hour of memmove). Blocks of at
most ``2 * _BLOCK`` sorted keys, with each block's last key kept aside for
bisection, make an insertion a bisection plus one short insertion, and a
page of keys from any point a bisection plus a slice.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Final

__all__ = ["SortedKeys"]

# Keys per block after a split; a block splits when it passes twice this.
_BLOCK: Final = 1000


class SortedKeys:
    """Distinct keys in code point order (``str`` comparison), added one by one."""

    def __init__(self) -> None:
        self._blocks: list[list[str]] = []
        # The last key of each block, for bisection.
        self._lasts: list[str] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str) -> None:
        """Add ``key``, which must not be here yet (the store knows it is new)."""
        self._count += 1
        if not self._blocks:
            self._blocks.append([key])
            self._lasts.append(key)
            return
        index = bisect_left(self._lasts, key)
        if index == len(self._lasts):
            index -= 1
            block = self._blocks[index]
            block.append(key)
            self._lasts[index] = key
        else:
            block = self._blocks[index]
            insort(block, key)
        if len(block) > 2 * _BLOCK:
            self._blocks[index : index + 1] = [block[:_BLOCK], block[_BLOCK:]]
            self._lasts[index : index + 1] = [block[_BLOCK - 1], block[-1]]

    def remove(self, key: str) -> None:
        """Remove ``key``, which must be here (the store knows it is)."""
        index = bisect_left(self._lasts, key)
        block = self._blocks[index]
        del block[bisect_left(block, key)]
        self._count -= 1
        if block:
            self._lasts[index] = block[-1]
        else:
            del self._blocks[index]
            del self._lasts[index]

    def clear(self) -> None:
        """Forget every key."""
        self._blocks.clear()
        self._lasts.clear()
        self._count = 0

    def page(self, prefix: str = "", after: str = "", limit: int = 1024) -> list[str]:
        """Up to ``limit`` keys that start with ``prefix`` and sort after ``after``, in order.

        Costs a bisection and the slice: paging on with ``after`` set to the
        last key of a page lists any number of keys in bounded steps, and
        keys added between two pages are included when they sort after it.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if after >= prefix:
            index = bisect_right(self._lasts, after)
            start = bisect_right(self._blocks[index], after) if index < len(self._blocks) else 0
        else:
            index = bisect_left(self._lasts, prefix)
            start = bisect_left(self._blocks[index], prefix) if index < len(self._blocks) else 0
        found: list[str] = []
        while index < len(self._blocks) and len(found) < limit:
            chunk = self._blocks[index][start : start + limit - len(found)]
            if prefix and not chunk[-1].startswith(prefix):
                # Keys with the prefix are contiguous: the rest of the chunk and
                # every later block are past them.
                cut = bisect_left(chunk, True, key=lambda key: not key.startswith(prefix))
                found += chunk[:cut]
                break
            found += chunk
            index += 1
            start = 0
        return found
