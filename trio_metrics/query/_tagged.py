"""Tagged series in the store: the keys a tag query matches, and the tags and values in use.

The store has no index of tags: a key ``node_load1;job=node`` is found
through the sorted key index (:meth:`Store.keys_with_prefix`), by one of two
reads:

- a query with a ``name=value`` expression reads only the keys that start
  with ``value;`` (every tagged key of that metric sorts there), plus the
  rare keys that start with ``~`` (graphite drops leading ``~`` from a
  metric name): its cost is the number of series of that metric;
- any other query, and the tag listings, read every key in the store, page
  by page: its cost is the number of keys stored.

Either read is bounded: past ``max_keys`` keys read it stops with
:exc:`TagScanLimitError` (the HTTP API answers 400 and says to add a
``name=`` expression), and other tasks run between pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import trio

from ..storage import Store
from ._tag_expressions import TagQuery, key_tags

__all__ = [
    "DEFAULT_MAX_TAG_SCAN",
    "TagScanLimitError",
    "find_tagged",
    "tagged_keys",
]

#: The most keys one tag query or listing reads from the key index, by default.
DEFAULT_MAX_TAG_SCAN: Final = 1_000_000
_PAGE: Final = 1024


class TagScanLimitError(ValueError):
    """A tag query or listing that would read more keys than allowed; the message says the limit."""


class _Reader:
    def __init__(self, store: Store, max_keys: int | None) -> None:
        self._store = store
        # Read when the request starts (not when this module is imported): a test may lower it.
        self._max_keys = DEFAULT_MAX_TAG_SCAN if max_keys is None else max_keys
        self._read = 0

    async def keys(self, prefix: str) -> AsyncIterator[str]:
        after = ""
        while True:
            page = await self._store.keys_with_prefix(prefix, after, _PAGE)
            self._read += len(page)
            if self._read > self._max_keys:
                raise TagScanLimitError(
                    f"the tag query reads over {self._max_keys} keys, the limit per request:"
                    " add a name= expression"
                )
            for key in page:
                yield key
            if len(page) < _PAGE:
                return
            after = page[-1]
            await trio.lowlevel.checkpoint()


async def find_tagged(store: Store, query: TagQuery, *, max_keys: int | None = None) -> list[str]:
    """The stored tagged keys ``query`` matches, sorted (see the module for the cost);
    ``max_keys`` defaults to :data:`DEFAULT_MAX_TAG_SCAN`."""
    reader = _Reader(store, max_keys)
    name = query.metric_name()
    prefixes = [""] if name is None else [name + ";", "~"]
    found: set[str] = set()
    for prefix in prefixes:
        async for key in reader.keys(prefix):
            if query.matches_key(key):
                found.add(key)
    return sorted(found)


async def tagged_keys(
    store: Store, *, having: str | None = None, max_keys: int | None = None
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Every stored tagged key with its tags, sorted by key (reads every key); with
    ``having``, only the keys that have that tag."""
    reader = _Reader(store, max_keys)
    # A key with the tag holds ";tag=": the others are passed over without being parsed.
    needle = f";{having}=" if having is not None and having != "name" else ";"
    async for key in reader.keys(""):
        if needle not in key:
            continue
        tags = key_tags(key)
        if having is not None and tags is not None and having not in tags:
            continue
        if tags is not None:
            yield key, tags
