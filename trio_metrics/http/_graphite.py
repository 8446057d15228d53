"""The Graphite API under ``/graphite``: what Grafana's Graphite datasource and
graphite-web's cluster protocol ask of a graphite-web.

- ``/graphite/metrics/find``: the nodes a glob matches, as graphite's tree
  JSON (Grafana's metric browser), ``format=json``, or ``format=pickle``
  (graphite-web's remote finder: a list of ``{'path', 'is_leaf', 'intervals'}``);
- ``/graphite/metrics/expand``: the paths of one or more globs;
- ``/graphite/render``: the series of targets (:mod:`._graphite_render`);
- ``/graphite/version``;
- ``/graphite/tags`` and below: the tags of keys in Graphite's tag syntax
  (:mod:`._graphite_tags`).

Each path is served with and without a trailing slash (graphite-web's
clients ask for ``/render/`` and ``/metrics/find/``), by GET, and by POST
with a form-encoded body. The query package (numpy) is loaded on the first
request that needs it, not with the server.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_plus

from ..storage import Store
from ..wire import GlobError
from ._graphite_params import (
    PICKLE_CONTENT_TYPE,
    GraphiteInputError,
    graphite_params,
    load_query_package,
    off_the_loop,
    plain_pickle,
    text_error,
)
from ._graphite_render import render_response
from ._graphite_tags import (
    autocomplete_tags,
    autocomplete_values,
    find_series,
    tag_details,
    tag_list,
)
from ._limits import HttpLimits
from ._messages import Request, Response

if TYPE_CHECKING:
    from ..query import Node

__all__ = ["GRAPHITE_PREFIX", "GRAPHITE_VERSION", "GraphiteApi"]

#: Where the Graphite API lives on the HTTP server.
GRAPHITE_PREFIX: Final = "/graphite"
#: The graphite-web version whose API this follows (Grafana picks its features by it).
GRAPHITE_VERSION: Final = "1.1.8"

Handler = Callable[[Request], Awaitable[Response]]


class GraphiteApi:
    """The handlers of the Graphite API over ``store``, within ``limits``."""

    def __init__(self, store: Store, limits: HttpLimits, clock: Callable[[], float]) -> None:
        self.store = store
        self.limits = limits
        self._clock = clock

    def routes(self) -> dict[str, dict[str, Handler]]:
        """Path template -> method -> handler, each path with and without a trailing slash."""
        handlers: dict[str, Handler] = {
            "/render": self._render,
            "/metrics/find": self._find,
            "/metrics/expand": self._expand,
            "/version": self._version,
            "/functions": self._functions,
            "/tags/findSeries": self._find_series,
            "/tags/autoComplete/tags": self._autocomplete_tags,
            "/tags/autoComplete/values": self._autocomplete_values,
        }
        routes: dict[str, dict[str, Handler]] = {}
        for path, handler in handlers.items():
            guarded = _answering_bad_input(handler)
            methods = {"GET": guarded, "POST": guarded}
            routes[GRAPHITE_PREFIX + path] = methods
            routes[GRAPHITE_PREFIX + path + "/"] = methods
        # graphite-web answers these two to GET only.
        tag_list = {"GET": _answering_bad_input(self._tag_list)}
        routes[GRAPHITE_PREFIX + "/tags"] = tag_list
        routes[GRAPHITE_PREFIX + "/tags/"] = tag_list
        routes[GRAPHITE_PREFIX + "/tags/{name}"] = {"GET": _answering_bad_input(self._tag)}
        return routes

    async def _version(self, request: Request) -> Response:
        return Response(200, GRAPHITE_VERSION.encode(), "text/plain; charset=utf-8")

    async def _functions(self, request: Request) -> Response:
        """The functions a target may use, in graphite-web's ``/functions`` shape."""
        await load_query_package()
        from ..query import function_index

        # JSON has no infinity; graphite-web writes a default of inf as 1e9999.
        text = json.dumps(_marking_infinities(function_index()))
        text = text.replace(f'"-{_INFINITY}"', "-1e9999").replace(f'"{_INFINITY}"', "1e9999")
        return Response(200, text.encode(), "application/json")

    async def _tag_list(self, request: Request) -> Response:
        return await tag_list(self.store, graphite_params(request))

    async def _tag(self, request: Request) -> Response:
        tag = request.path.rpartition("/")[2]
        return await tag_details(self.store, tag, graphite_params(request))

    async def _find_series(self, request: Request) -> Response:
        return await find_series(self.store, graphite_params(request))

    async def _autocomplete_tags(self, request: Request) -> Response:
        return await autocomplete_tags(self.store, graphite_params(request))

    async def _autocomplete_values(self, request: Request) -> Response:
        return await autocomplete_values(self.store, graphite_params(request))

    async def _render(self, request: Request) -> Response:
        return await render_response(
            self.store, graphite_params(request), self.limits, int(self._clock())
        )

    async def _find(self, request: Request) -> Response:
        params = graphite_params(request)
        query = params.get("query")
        if query is None:
            raise GraphiteInputError("Missing required parameter 'query'")
        if query == "":
            raise GraphiteInputError("Required parameter 'query' is empty")
        answer_format = params.get("format") or "treejson"
        if answer_format not in _FIND_FORMATS:
            raise GraphiteInputError("Invalid value for 'format' parameter")
        leaves_only = params.whole("leavesOnly", 0) != 0
        position = params.whole("position", -1, minimum=-(1 << 30))
        wildcards = params.whole("wildcards", 0) != 0
        nodes = await _find(self.store, query, leaves_only=leaves_only)
        base = query.rsplit(".", 1)[0] + "." if "." in query else ""
        return await off_the_loop(
            len(nodes), partial(_find_answer, nodes, answer_format, base, position, wildcards)
        )

    async def _expand(self, request: Request) -> Response:
        params = graphite_params(request)
        queries = params.all("query")
        leaves_only = params.whole("leavesOnly", 0) != 0
        found: dict[str, list[str]] = {}
        for query in queries:
            nodes = await _find(self.store, query, leaves_only=leaves_only)
            found[query] = sorted({node.path for node in nodes})
        if params.whole("groupByExpr", 0):
            return Response.json(200, {"results": found})
        union = sorted({path for paths in found.values() for path in paths})
        return Response.json(200, {"results": union})


_FIND_FORMATS: Final = frozenset({"treejson", "json", "pickle", "nodelist"})


def _find_answer(
    nodes: list[Node], answer_format: str, base: str, position: int, wildcards: bool
) -> Response:
    """The answer to a find in ``answer_format``, as graphite-web gives it."""
    # graphite-web orders its matches by the last node's name.
    nodes = sorted(nodes, key=lambda node: node.name)
    if answer_format == "pickle":
        return Response(200, plain_pickle(_pickled_nodes(nodes)), PICKLE_CONTENT_TYPE)
    if answer_format == "json":
        return Response.json(200, _json_nodes(nodes))
    if answer_format == "nodelist":
        return Response.json(200, _node_list(nodes, position))
    return Response.json(200, _tree_json(nodes, base, wildcards))


async def _find(store: Store, pattern: str, *, leaves_only: bool) -> list[Node]:
    await load_query_package()
    from ..query import FindLimitError, find_nodes

    try:
        return await find_nodes(store, pattern, leaves_only=leaves_only)
    except GlobError as exc:
        raise GraphiteInputError(f"Invalid value {pattern!r} for param query: {exc}") from None
    except FindLimitError as exc:
        raise GraphiteInputError(str(exc)) from None


def _answering_bad_input(handler: Handler) -> Handler:
    """``handler``, with bad input answered as graphite-web does: a plain-text 400."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except GraphiteInputError as exc:
            return text_error(str(exc))

    return guarded


def _pickled_nodes(nodes: list[Node]) -> list[dict[str, object]]:
    """graphite-web's ``pickle_nodes``, with plain types: a list of ``(start, end)`` as
    the intervals (none: the store does not track a key's span; graphite-web uses them
    only to choose between servers that hold the same path)."""
    return [
        {"path": node.path, "is_leaf": node.is_leaf, "intervals": []}
        if node.is_leaf
        else {"path": node.path, "is_leaf": False}
        for node in nodes
    ]


def _json_nodes(nodes: list[Node]) -> list[dict[str, object]]:
    """graphite-web's ``json_nodes``: by path, a leaf with its (empty) intervals."""
    return [
        {"path": node.path, "is_leaf": True, "intervals": []}
        if node.is_leaf
        else {"path": node.path, "is_leaf": False}
        for node in sorted(nodes, key=lambda node: node.path)
    ]


def _node_list(nodes: list[Node], position: int) -> dict[str, list[str]]:
    """graphite-web's ``nodelist``: the distinct names at ``position`` of the paths."""
    found: set[str] = set()
    for node in nodes:
        parts = node.path.split(".")
        if not -len(parts) <= position < len(parts):
            raise GraphiteInputError(f"Invalid value {position!r} for param position")
        found.add(parts[position])
    return {"nodes": sorted(found)}


_BRANCH: Final = {"allowChildren": 1, "expandable": 1, "leaf": 0}
_LEAF: Final = {"allowChildren": 0, "expandable": 0, "leaf": 1}


def _tree_json(nodes: list[Node], base: str, wildcards: bool) -> list[dict[str, object]]:
    """graphite-web's ``tree_json``: branches, then leaves, one entry per name.

    A name that is both (``a.b`` and ``a.b.c`` both stored) is listed as a
    branch, so that the tree can still be opened below it.
    """
    branch_names = {node.name for node in nodes if not node.is_leaf}
    results: list[dict[str, object]] = []
    if len(nodes) > 1 and wildcards:
        results.append({"text": "*", "id": base + "*", **(_BRANCH if branch_names else _LEAF)})
    seen: set[str] = set()
    branches: list[dict[str, object]] = []
    leaves: list[dict[str, object]] = []
    for node in nodes:
        if node.name in seen or (node.is_leaf and node.name in branch_names):
            continue
        seen.add(node.name)
        # graphite-web shows names unquoted (a "+" as a space); the id keeps the path.
        text = unquote_plus(node.name) if "%" in node.name or "+" in node.name else node.name
        entry: dict[str, object] = {"text": text, "id": base + node.name}
        if node.is_leaf:
            leaves.append({**entry, **_LEAF})
        else:
            branches.append({**entry, **_BRANCH})
    return results + branches + leaves


# Stands for an infinite number until the JSON text is written (no key or text holds it).
_INFINITY: Final = "__trio_metrics_infinity__"


def _marking_infinities(document: object) -> object:
    if isinstance(document, float) and document in (float("inf"), float("-inf")):
        return _INFINITY if document > 0 else "-" + _INFINITY
    if isinstance(document, dict):
        return {key: _marking_infinities(value) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [_marking_infinities(value) for value in document]
    return document
