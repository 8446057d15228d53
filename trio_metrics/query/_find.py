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
refused with :exc:`FindLimitError`, and other tasks run every few lookups.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

import attrs
import trio

from ..storage import Store
from ..wire import Glob, compile_glob

__all__ = ["DEFAULT_MAX_FIND_NODES", "FindLimitError", "Node", "find_nodes"]

#: The most nodes one find may visit (at every level together), by default.
DEFAULT_MAX_FIND_NODES: Final = 1_000_000
# Keys read per lookup of the skip scan: enough for a run of leaves, few to
# skip when a branch follows.
_PAGE: Final = 128
# Lookups between two chances for other tasks to run.
_LOOKUPS_PER_CHECKPOINT: Final = 64
# No key holds this character (keys are printable), so ``p + "." + _BEYOND``
# sorts after every key under ``p.``.
_BEYOND: Final = "\U0010ffff"
_WILDCARDS: Final = "*?["


class FindLimitError(ValueError):
    """A glob that would visit more nodes than allowed; the message says the limit."""


@attrs.frozen(order=True)
class Node:
    """A matched path: a leaf (a stored key) or a branch (a prefix of keys, up to a dot).

    A path may be both, when ``a.b`` and ``a.b.c`` are both stored: it is
    then found twice, once of each kind.
    """

    path: str
    is_leaf: bool
    #: The last node of the path (graphite's ``node.name``).
    name: str = attrs.field(
        default=attrs.Factory(lambda node: node.path.rpartition(".")[2], takes_self=True),
        eq=False,
        order=False,
    )


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
            if literals is not None:
                children = await walk.exact_children(base, literals, last)
            else:
                assert glob is not None
                children = await walk.matching_children(base, glob)
            for name, is_leaf, is_branch in children:
                path = base + name
                if not last:
                    if is_branch:
                        next_bases.append(path + ".")
                    continue
                if is_branch and not leaves_only:
                    found.append(Node(path, is_leaf=False))
                if is_leaf:
                    found.append(Node(path, is_leaf=True))
        bases = next_bases
        if not bases and not last:
            break
    # A key, not attrs' ordering: the comparison of many nodes would cost more than the walk.
    found.sort(key=_path_then_kind)
    return found


def _path_then_kind(node: Node) -> tuple[str, bool]:
    return node.path, node.is_leaf


class _Walk:
    """The lookups of one find, counted against its bounds."""

    def __init__(self, store: Store, max_nodes: int) -> None:
        self._store = store
        self._max_nodes = max_nodes
        self._visited = 0
        self._lookups = 0

    async def _page(self, prefix: str, after: str, limit: int) -> list[str]:
        self._lookups += 1
        if self._lookups % _LOOKUPS_PER_CHECKPOINT == 0:
            await trio.lowlevel.checkpoint()
        return await self._store.keys_with_prefix(prefix, after, limit)

    def _visit(self, count: int = 1) -> None:
        self._visited += count
        if self._visited > self._max_nodes:
            raise FindLimitError(
                f"the query visits over {self._max_nodes} nodes, the limit per request: narrow it"
            )

    async def exact_children(
        self, base: str, names: list[str], last: bool
    ) -> list[tuple[str, bool, bool]]:
        """``(name, is_leaf, is_branch)`` of each of ``names`` under ``base`` that exists;
        for a node that is not the last, only its branches matter."""
        return [
            entry for name in names if (entry := await self._exact(base, name, last)) is not None
        ]

    async def matching_children(self, base: str, glob: Glob) -> list[tuple[str, bool, bool]]:
        """``(name, is_leaf, is_branch)`` of each node under ``base`` that ``glob`` matches."""
        return [
            (name, is_leaf, is_branch)
            for name, (is_leaf, is_branch) in (await self._scan(base, glob.prefix)).items()
            if glob.matches(name)
        ]

    async def _exact(self, base: str, name: str, last: bool) -> tuple[str, bool, bool] | None:
        path = base + name
        self._visit()
        if not last:
            # Whether the branch exists shows at the next level, for free.
            return name, False, True
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
        return (name, is_leaf, is_branch) if is_leaf or is_branch else None

    async def _scan(self, base: str, name_prefix: str) -> dict[str, tuple[bool, bool]]:
        """The distinct nodes under ``base`` that start with ``name_prefix``."""
        prefix = base + name_prefix
        found: dict[str, tuple[bool, bool]] = {}
        after = ""
        while True:
            page = await self._page(prefix, after, _PAGE)
            index = 0
            while index < len(page):
                key = page[index]
                name, dot, _ = key[len(base) :].partition(".")
                is_leaf, is_branch = found.get(name, (False, False))
                if name not in found:
                    self._visit()
                if dot:
                    found[name] = (is_leaf, True)
                    # Every key under this branch sorts before this bound.
                    after = base + name + "." + _BEYOND
                    index = bisect_right(page, after, index)
                else:
                    found[name] = (True, is_branch)
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
