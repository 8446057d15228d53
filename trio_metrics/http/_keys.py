"""``GET /api/v1/keys``: the stored keys that match a glob, sorted, streamed page by page.

The keys come from the store's sorted index (``Store.keys_with_prefix``)
from the glob's literal prefix on, so ``web.*`` reads only the keys that
start with ``web.``. Each page is filtered in a worker thread (a hostile
glob costs that thread, not the event loop) and encoded as it goes out, so
the answer costs a page and a chunk of memory, whatever the number of keys.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Final

import trio

from ..storage import KeyPages, Store
from ..wire import Glob, GlobError, compile_glob, is_valid_pattern
from ._messages import CHUNK_BYTES, BadRequest, Response

__all__ = ["KEYS_PAGE", "delete_response", "keys_response"]

#: Keys read from the store per step; other tasks run between steps.
KEYS_PAGE: Final = 2048


async def keys_response(store: Store, pattern: str | None) -> Response:
    """The sorted keys matching ``pattern`` (all keys for None), as a streamed response.

    Raises :exc:`BadRequest` for a malformed or over-long glob. The first
    page is read before answering, so a failing store fails the request
    (500) rather than cutting the answer short.
    """
    try:
        glob = None if pattern is None else compile_glob(pattern)
    except GlobError as exc:
        raise BadRequest(f"bad match glob: {exc}") from None
    pages = _Pages(store, glob)
    first = await pages.next()
    return Response.streamed(_encode(pages, first))


class _Pages:
    """The matching keys, one store page at a time."""

    def __init__(self, store: Store, glob: Glob | None) -> None:
        self._store = store
        self._glob = glob
        self._prefix = "" if glob is None else glob.prefix
        self._after = ""
        self.done = False

    async def next(self) -> list[str]:
        """The matches among the next page of keys (maybe none); sets ``done`` at the end."""
        page = await self._store.keys_with_prefix(self._prefix, self._after, KEYS_PAGE)
        if len(page) < KEYS_PAGE:
            self.done = True
        else:
            self._after = page[-1]
        glob = self._glob
        if glob is None or not page:
            return page
        return await trio.to_thread.run_sync(_filter, glob, page, abandon_on_cancel=True)


def _filter(glob: Glob, keys: list[str]) -> list[str]:
    return [key for key in keys if glob.matches(key)]


async def _encode(pages: _Pages, keys: list[str]) -> AsyncGenerator[bytes, None]:
    """``{"keys":[...]}`` in chunks of about :data:`CHUNK_BYTES`."""
    buffer = bytearray(b'{"keys":[')
    separator = b""
    while True:
        for key in keys:
            buffer += separator
            buffer += json.dumps(key).encode()
            separator = b","
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
        if pages.done:
            break
        # A store that never suspends would otherwise hold the loop for all pages.
        await trio.lowlevel.checkpoint()
        keys = await pages.next()
    buffer += b"]}"
    yield bytes(buffer)


async def delete_response(store: Store, pattern: str | None) -> Response:
    """``DELETE /api/v1/series?key=``: remove the key, or the keys a glob matches.

    Answers ``{"deleted": n}``. Raises :exc:`BadRequest` for a missing key
    or one that is not a valid key or glob (the protocol's ``delete``
    rules); a store that fails propagates (a 503 for a failed log). The
    keys are removed a page at a time, as the protocol's ``delete`` does.
    """
    if pattern is None:
        raise BadRequest("the key parameter is required")
    if not is_valid_pattern(pattern):
        raise BadRequest(f"bad key or glob: {pattern[:80]!r}")
    glob = compile_glob(pattern)
    pages = KeyPages(store, glob.prefix, glob.matches, exact=glob.prefix == glob.pattern)
    removed = 0
    while (keys := await pages.next()) is not None:
        if keys:
            removed += await store.delete(keys)
    return Response.json(200, {"deleted": removed})
