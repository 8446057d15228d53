"""One budget, across all readers, for the copies of points that reads hold.

A read copies each key's columns (16 bytes per point) when its turn comes,
so that the answer shows one consistent moment of that key while it is
written out. A client that asks for a huge key and then reads nothing keeps
its copy alive for as long as it likes. :class:`CopyBudget` bounds the sum of
those copies over every connection: a read that would go past it waits until
another read hands its copy back.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

__all__ = ["BYTES_PER_POINT", "DEFAULT_COPY_BUDGET_BYTES", "CopyBudget", "NeedRoom"]

#: What one copied point costs: an 8-byte timestamp and an 8-byte value.
BYTES_PER_POINT: Final = 16
#: The default budget: 256 MiB, about 16.7 million copied points at once.
DEFAULT_COPY_BUDGET_BYTES: Final = 256 * 1024 * 1024


@attrs.frozen
class NeedRoom:
    """Yielded by a budgeted read in place of a series: wait for room, then go on.

    The reader awaits :meth:`CopyBudget.wait_for_room` with ``nbytes`` and
    asks the read for its next item, which tries again.
    """

    budget: CopyBudget
    nbytes: int


class CopyBudget:
    """Bytes of copied points that all reads may hold at once.

    :meth:`try_take` never waits; :meth:`wait_for_room` does. A copy larger
    than the whole budget is let through when no other copy is held, so
    every read makes progress; a read never waits while it holds a copy,
    so two reads cannot wait for each other. Used from one trio thread.
    """

    def __init__(self, total: int = DEFAULT_COPY_BUDGET_BYTES) -> None:
        if total < 1:
            raise ValueError(f"the copy budget must be at least 1 byte, not {total!r}")
        self.total = total
        #: Bytes held now.
        self.used = 0
        #: The most bytes held at once.
        self.peak = 0
        #: How many times a read had to wait for room.
        self.waits = 0
        self._room = trio.Event()

    def try_take(self, nbytes: int) -> bool:
        """Take ``nbytes`` if they fit (or nothing is held); whether they were taken."""
        if self.used and self.used + nbytes > self.total:
            return False
        self.used += nbytes
        self.peak = max(self.peak, self.used)
        return True

    def give_back(self, nbytes: int) -> None:
        """Hand back bytes taken with :meth:`try_take`; wakes the reads that wait."""
        self.used -= nbytes
        self._room.set()

    async def wait_for_room(self, nbytes: int) -> None:
        """Wait until ``nbytes`` would fit; takes nothing (call :meth:`try_take`).

        Cancellable, holding nothing: a cancelled wait leaves the budget as it was.
        """
        self.waits += 1
        while self.used and self.used + nbytes > self.total:
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()
