"""Graphite's tag endpoints under ``/graphite/tags``, in graphite-web 1.1.8's JSON shapes.

- ``/tags``: ``[{"tag": name}, ...]``, sorted (``filter``: a regular
  expression anchored at the start; ``limit``);
- ``/tags/<tag>``: ``{"tag", "values": [{"value", "count"}, ...]}``, or
  ``null`` for a tag no key has (``filter``, ``limit`` on the values);
- ``/tags/findSeries?expr=...``: the tagged keys all the expressions match;
- ``/tags/autoComplete/tags?tagPrefix=&expr=&limit=`` and
  ``/tags/autoComplete/values?tag=&valuePrefix=&expr=&limit=``: sorted
  names or values (at most ``limit``, 100 by default), those of the series
  the expressions match, or of every tagged key without any (Grafana's
  tag editor asks these).

``expr`` may repeat, or come as ``expr[]``. The keys are read as
:mod:`trio_metrics.query`'s tag layer reads them (``find_tagged``,
``tagged_keys``): a query without a ``name=`` expression, and every listing,
reads every key, within the request's bound (400 past it); other tasks run
between pages.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import partial
from typing import Final

from ..storage import Store
from ._graphite_params import GraphiteInputError, GraphiteParams, load_query_package, off_the_loop
from ._messages import Response

__all__ = [
    "AUTOCOMPLETE_LIMIT",
    "autocomplete_tags",
    "autocomplete_values",
    "find_series",
    "tag_details",
    "tag_list",
]

#: How many completions are given when ``limit`` is not (graphite-web's
#: ``TAGDB_AUTOCOMPLETE_LIMIT``).
AUTOCOMPLETE_LIMIT: Final = 100


def _expressions(params: GraphiteParams) -> list[str]:
    return params.all("expr") or params.all("expr[]")


def _filter(text: str | None) -> re.Pattern[str] | None:
    """graphite-web's ``filter``: a regular expression anchored at the start."""
    if not text:
        return None
    try:
        return re.compile(text if text.startswith("^") else f"^({text})")
    except re.error as error:
        raise GraphiteInputError(f"Invalid filter {text!r}: {error}") from None


async def _matching(store: Store, expressions: list[str]) -> list[str]:
    await load_query_package()
    from ..query import TagExpressionError, TagQuery, TagScanLimitError, find_tagged

    try:
        return await find_tagged(store, TagQuery.parse(expressions))
    except (TagExpressionError, TagScanLimitError) as error:
        raise GraphiteInputError(str(error)) from None


async def _tag_values(store: Store, tag: str) -> Counter[str] | None:
    """How many tagged keys hold each value of ``tag``; None if none has it."""
    await load_query_package()
    from ..query import TagScanLimitError, tagged_keys

    counts: Counter[str] = Counter()
    try:
        async for _key, tags in tagged_keys(store, having=tag):
            counts[tags[tag]] += 1
    except TagScanLimitError as error:
        raise GraphiteInputError(str(error)) from None
    return counts or None


async def _tag_names(store: Store) -> list[str]:
    await load_query_package()
    from ..query import TagScanLimitError, tagged_keys

    names: set[str] = set()
    try:
        async for _key, tags in tagged_keys(store):
            names.update(tags)
    except TagScanLimitError as error:
        raise GraphiteInputError(str(error)) from None
    return sorted(names)


def _limited(items: list[str], limit: int | None) -> list[str]:
    return items if limit is None else items[:limit]


def _limit(params: GraphiteParams) -> int | None:
    limit = params.whole("limit", 0)
    return limit or None


async def tag_list(store: Store, params: GraphiteParams) -> Response:
    """``/tags``: every tag name, ``[{"tag": name}]``."""
    pattern = _filter(params.get("filter"))
    names = [name for name in await _tag_names(store) if pattern is None or pattern.search(name)]
    return Response.json(200, [{"tag": name} for name in _limited(names, _limit(params))])


async def tag_details(store: Store, tag: str, params: GraphiteParams) -> Response:
    """``/tags/<tag>``: the tag's values and how many series hold each, or ``null``."""
    pattern = _filter(params.get("filter"))
    counts = await _tag_values(store, tag)
    if counts is None:
        return Response.json(200, None)
    values = [value for value in sorted(counts) if pattern is None or pattern.search(value)]
    return Response.json(
        200,
        {
            "tag": tag,
            "values": [
                {"value": value, "count": counts[value]}
                for value in _limited(values, _limit(params))
            ],
        },
    )


async def find_series(store: Store, params: GraphiteParams) -> Response:
    """``/tags/findSeries``: the tagged keys every ``expr`` matches, sorted."""
    expressions = _expressions(params)
    if not expressions:
        raise GraphiteInputError("no tag expressions specified")
    keys = await _matching(store, expressions)
    # Up to a million keys: the JSON of a long list is written in a worker thread.
    return await off_the_loop(len(keys), partial(Response.json, 200, keys))


async def autocomplete_tags(store: Store, params: GraphiteParams) -> Response:
    """``/tags/autoComplete/tags``: tag names, of the matches of ``expr`` if given."""
    expressions = _expressions(params)
    prefix = params.get("tagPrefix") or ""
    limit = params.whole("limit", AUTOCOMPLETE_LIMIT)
    if not expressions:
        names = [name for name in await _tag_names(store) if name.startswith(prefix)]
        return Response.json(200, names[:limit])
    matches = await _matching(store, expressions)
    from ..query import TagExpression, key_tags

    searched = {TagExpression.parse(text).tag for text in expressions}
    found: set[str] = set()
    for key in matches:
        found.update(
            tag for tag in key_tags(key) or {} if tag not in searched and tag.startswith(prefix)
        )
    return Response.json(200, sorted(found)[:limit])


async def autocomplete_values(store: Store, params: GraphiteParams) -> Response:
    """``/tags/autoComplete/values``: the values of ``tag``, of the matches of ``expr`` if given."""
    tag = params.get("tag")
    if not tag:
        raise GraphiteInputError("no tag specified")
    expressions = _expressions(params)
    prefix = params.get("valuePrefix") or ""
    limit = params.whole("limit", AUTOCOMPLETE_LIMIT)
    if not expressions:
        counts = await _tag_values(store, tag) or Counter()
        values = sorted(value for value in counts if value.startswith(prefix))
        return Response.json(200, values[:limit])
    matches = await _matching(store, [*expressions, tag + "!="])
    from ..query import key_tags

    found: set[str] = set()
    for key in matches:
        value = (key_tags(key) or {}).get(tag)
        if value is not None and value.startswith(prefix):
            found.add(value)
    return Response.json(200, sorted(found)[:limit])
