"""The stored keys that match a test, a page at a time: :class:`KeyPages`.

Used by every reader of many keys (``keys``, ``range`` and ``delete`` of
the protocol, the HTTP API's delete): each page is a bisection and a slice
of the store's sorted key index (:meth:`Store.keys_with_prefix`), and
other tasks run between pages, so no number of keys holds up the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ._store import KEY_PAGE, Store

__all__ = ["KeyPages"]


class KeyPages:
    """The stored keys that start with ``prefix`` and pass ``matches``, sorted, page by page.

    With ``exact``, ``prefix`` is the whole key: one lookup, no scan.
    Keys removed from a page already read do not disturb the next page
    (it starts after the page's last key), so a caller may delete as it goes.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        matches: Callable[[str], bool],
        *,
        exact: bool = False,
        limit: int = KEY_PAGE,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._matches = matches
        self._exact = exact
        self._limit = 1 if exact else limit
        self._after = ""
        self._started = False
        self._done = False

    async def next(self) -> list[str] | None:
        """The matches of the next page (maybe none), or None once every page was read.

        Yields to other tasks before every page but the first; errors of
        the store propagate.
        """
        if self._done:
            return None
        if self._started:
            await trio.lowlevel.checkpoint()
        self._started = True
        page = await self._store.keys_with_prefix(self._prefix, self._after, self._limit)
        if self._exact or len(page) < self._limit:
            self._done = True
        else:
            self._after = page[-1]
        if self._exact:
            return [key for key in page if key == self._prefix]
        return [key for key in page if self._matches(key)]
