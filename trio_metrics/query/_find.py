"""Graphite's ``find``: the nodes a glob matches, walked node by node over the key index.

A key ``a.b.c`` stands for the branches ``a`` and ``a.b`` and the leaf
``a.b.c``, as a whisper file ``a/b/c.wsp`` does. :func:`find_nodes` walks
the pattern one dot-separated node at a time: a literal node (or a
``{x,y}`` of literals) is looked up directly; any other node lists the
distinct next nodes under the path matched so far with a skip scan of the
store's sorted key index (:meth:`Store.keys_with_prefix`): after a branch
``p.n`` it jumps past every key under ``p.n.`` in one bisection. So
``servers.*.cpu`` costs about one lookup per server, whatever each server
holds, and no request reads every key.

The work is bounded: a walk that visits more than ``max_nodes`` nodes is
refused with :exc:`FindLimitError`, and other tasks run every thousand keys
or lookups or so.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final, NamedTuple

import trio

from ..storage import Store
from ..wire import Glob, compile_glob

__all__ = ["DEFAULT_MAX_FIND_NODES", "FindLimitError", "Node", "find_nodes"]

#: The most nodes one find may visit (at every level together), by default.
DEFAULT_MAX_FIND_NODES: Final = 1_000_000
# Keys read per lookup of the skip scan: enough for a run of leaves, few to
# skip when a branch follows.
_PAGE: Final = 128
# Work (a lookup, or a key read from a page) between two chances for other
# tasks to run: about a millisecond of it.
_WORK_PER_CHECKPOINT: Final = 1024
# No key holds this character (keys are printable), so ``p + "." + _BEYOND``
# sorts after every key under ``p.``.
_BEYOND: Final = "\U0010ffff"
_WILDCARDS: Final = "*?["
# More nodes than this are sorted in a worker thread.
_INLINE_SORT: Final = 20_000


class FindLimitError(ValueError):
    """A glob that would visit more nodes than allowed; the message says the limit."""


# What a name under a base is, as bits: a leaf (a stored key), a branch (a prefix).
_LEAF: Final = 1
_BRANCH: Final = 2


class Node(NamedTuple):
    """A matched path: a leaf (a stored key) or a branch (a prefix of keys, up to a dot).

    A path may be both, when ``a.b`` and ``a.b.c`` are both stored: it is
    then found twice, once of each kind. Nodes sort by path, branch first.
    (A tuple: a find may make a million of them.)
    """

    path: str
    is_leaf: bool
    #: The last node of the path (graphite's ``node.name``).
    name: str

    @classmethod
    def of(cls, path: str, is_leaf: bool) -> Node:
        """The node at ``path``, its name taken from it."""
        return cls(path, is_leaf, path.rpartition(".")[2])


async def find_nodes(
    store: Store,
    pattern: str,
    *,
    leaves_only: bool = False,
    max_nodes: int = DEFAULT_MAX_FIND_NODES,
) -> list[Node]:
    """The nodes ``pattern`` matches, sorted by path (leaves only with ``leaves_only``).

    Raises :exc:`~trio_metrics.wire.GlobError` for a malformed pattern and
    :exc:`FindLimitError` past ``max_nodes`` visited nodes.
    """
    compile_glob(pattern)  # the whole pattern's checks and bounds, before any lookup
    walk = _Walk(store, max_nodes)
    node_patterns = pattern.split(".")
    bases = [""]
    found: list[Node] = []
    for depth, node_pattern in enumerate(node_patterns):
        last = depth == len(node_patterns) - 1
        literals = _literal_alternatives(node_pattern)
        glob = None if literals is not None else compile_glob(node_pattern)
        next_bases: list[str] = []
        for base in bases:
            if glob is None:
                children = await walk.exact_children(base, literals or [], last)
            else:
                children = await walk.matching_children(base, glob)
            for name, kinds in children.items():
                if not last:
                    if kinds & _BRANCH:
                        next_bases.append(base + name + ".")
                    continue
                path = base + name
                if kinds & _BRANCH and not leaves_only:
                    found.append(Node(path, False, name))
                if kinds & _LEAF:
                    found.append(Node(path, True, name))
        bases = next_bases
        if not bases and not last:
            break
    if len(found) <= _INLINE_SORT:
        found.sort()
        return found
    # In a worker thread the sort hands the GIL back to the event loop every few ms.
    return await trio.to_thread.run_sync(sorted, found, abandon_on_cancel=True)


class _Walk:
    """The lookups of one find, counted against its bounds."""

    def __init__(self, store: Store, max_nodes: int) -> None:
        self._store = store
        self._max_nodes = max_nodes
        self._visited = 0
        self._work = 0

    async def _page(self, prefix: str, after: str, limit: int) -> list[str]:
        if self._work >= _WORK_PER_CHECKPOINT:
            self._work = 0
            await trio.lowlevel.checkpoint()
        page = await self._store.keys_with_prefix(prefix, after, limit)
        self._work += 1 + len(page)
        return page

    def _visit(self, count: int = 1) -> None:
        self._visited += count
        if self._visited > self._max_nodes:
            raise FindLimitError(
                f"the query visits over {self._max_nodes} nodes, the limit per request: narrow it"
            )

    async def exact_children(self, base: str, names: list[str], last: bool) -> dict[str, int]:
        """What each of ``names`` under ``base`` is (:data:`_LEAF`, :data:`_BRANCH` bits),
        for those that exist; for a node that is not the last, only branches matter."""
        children: dict[str, int] = {}
        for name in names:
            kinds = await self._exact(base, name, last)
            if kinds:
                children[name] = kinds
        return children

    async def matching_children(self, base: str, glob: Glob) -> dict[str, int]:
        """What each node under ``base`` that ``glob`` matches is."""
        matches = glob.matches
        scanned = await self._scan(base, glob.prefix)
        return {name: kinds for name, kinds in scanned.items() if matches(name)}

    async def _exact(self, base: str, name: str, last: bool) -> int:
        path = base + name
        self._visit()
        if not last:
            # Whether the branch exists shows at the next level, for free.
            return _BRANCH
        # The first keys from ``path`` on usually tell both: ``path`` itself, then
        # either a key under ``path.`` or one past them all. Only a key like
        # ``path-x`` (a character before "." follows) leaves it open.
        first = await self._page(path, "", 2)
        is_leaf = bool(first) and first[0] == path
        rest = first[1:] if is_leaf else first
        if not rest:
            is_branch = False
        elif rest[0][len(path)] >= ".":
            is_branch = rest[0][len(path)] == "."
        else:
            is_branch = bool(await self._page(path + ".", "", 1))
        return (_LEAF if is_leaf else 0) | (_BRANCH if is_branch else 0)

    async def _scan(self, base: str, name_prefix: str) -> dict[str, int]:
        """The distinct nodes under ``base`` that start with ``name_prefix``, and what each is."""
        prefix = base + name_prefix
        found: dict[str, int] = {}
        after = ""
        start = len(base)
        while True:
            page = await self._page(prefix, after, _PAGE)
            index = 0
            while index < len(page):
                key = page[index]
                dot = key.find(".", start)
                name = key[start:] if dot < 0 else key[start:dot]
                kinds = found.get(name)
                if kinds is None:
                    self._visit()
                    kinds = 0
                if dot >= 0:
                    found[name] = kinds | _BRANCH
                    # Every key under this branch sorts before this bound.
                    after = key[: dot + 1] + _BEYOND
                    index = bisect_right(page, after, index)
                else:
                    found[name] = kinds | _LEAF
                    after = key
                    index += 1
            if len(page) < _PAGE:
                return found


def _literal_alternatives(node_pattern: str) -> list[str] | None:
    """The node's names when it has no wildcard (``{a,b}c`` -> ``ac``, ``bc``), else None.

    The whole pattern passed :func:`compile_glob`, so braces are well formed,
    not nested, and multiply out to a bounded number of names.
    """
    if any(char in node_pattern for char in _WILDCARDS):
        return None
    names = [""]
    rest = node_pattern
    while rest:
        opening = rest.find("{")
        if opening < 0:
            names = [name + rest for name in names]
            break
        closing = rest.index("}", opening)
        head = rest[:opening]
        choices = rest[opening + 1 : closing].split(",")
        names = [name + head + choice for name in names for choice in choices]
        rest = rest[closing + 1 :]
    return list(dict.fromkeys(names))
