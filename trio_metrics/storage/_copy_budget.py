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

__all__ = ["BYTES_PER_POINT", "DEFAULT_COPY_BUDGET_BYTES", "CopyBudget", "NeedRoom", "Taken"]

#: What one copied point costs: an 8-byte timestamp and an 8-byte value.
BYTES_PER_POINT: Final = 16
#: The default budget: 256 MiB, about 16.7 million copied points at once.
DEFAULT_COPY_BUDGET_BYTES: Final = 256 * 1024 * 1024


@attrs.frozen
class Taken:
    """Bytes taken from a :class:`CopyBudget`, to be handed back as they are."""

    nbytes: int
    from_reserve: bool


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
    so two reads cannot wait for each other. An eighth of the budget more
    is kept for small copies (at most that eighth each), so that a held
    huge copy does not hold up reads of small keys: the copies held stay
    within the budget (or one copy larger than it) plus that reserve.
    Used from one trio thread.
    """

    def __init__(self, total: int = DEFAULT_COPY_BUDGET_BYTES) -> None:
        if total < 1:
            raise ValueError(f"the copy budget must be at least 1 byte, not {total!r}")
        self.total = total
        #: The reserve for small copies, and the most a small copy may be.
        self.reserve = max(1, total // 8)
        #: Bytes held now, in the main budget and in the reserve.
        self.used = 0
        self.reserve_used = 0
        #: The most bytes held at once.
        self.peak = 0
        #: How many times a read had to wait for room.
        self.waits = 0
        self._room = trio.Event()

    def try_take(self, nbytes: int) -> Taken | None:
        """Take ``nbytes`` if they fit; what was taken (hand it back), or ``None``."""
        if not self.used or self.used + nbytes <= self.total:
            self.used += nbytes
            taken = Taken(nbytes, from_reserve=False)
        elif nbytes <= self.reserve and self.reserve_used + nbytes <= self.reserve:
            self.reserve_used += nbytes
            taken = Taken(nbytes, from_reserve=True)
        else:
            return None
        self.peak = max(self.peak, self.used + self.reserve_used)
        return taken

    def give_back(self, taken: Taken) -> None:
        """Hand back what :meth:`try_take` took; wakes the reads that wait."""
        if taken.from_reserve:
            self.reserve_used -= taken.nbytes
        else:
            self.used -= taken.nbytes
        self._room.set()

    def fits(self, nbytes: int) -> bool:
        """Whether :meth:`try_take` would take ``nbytes`` now."""
        if not self.used or self.used + nbytes <= self.total:
            return True
        return nbytes <= self.reserve and self.reserve_used + nbytes <= self.reserve

    async def wait_for_room(self, nbytes: int) -> None:
        """Wait until ``nbytes`` would fit; takes nothing (call :meth:`try_take`).

        Cancellable, holding nothing: a cancelled wait leaves the budget as it was.
        """
        self.waits += 1
        while not self.fits(nbytes):
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()
