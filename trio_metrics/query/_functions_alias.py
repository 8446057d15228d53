"""Renaming functions: alias, aliasSub, aliasByNode, aliasByTags. Values and paths stay."""

from __future__ import annotations

import re

import attrs

from ._context import CallContext, SeriesList
from ._grammar import TargetError
from ._nodes import node_key

__all__ = ["alias", "aliasByNode", "aliasByTags", "aliasSub"]


def alias(call: CallContext, seriesList: SeriesList, newName: str) -> SeriesList:
    """Every series named ``newName``."""
    return [attrs.evolve(series, name=newName) for series in seriesList]


def aliasSub(call: CallContext, seriesList: SeriesList, search: str, replace: str) -> SeriesList:
    """Names through Python's ``re.sub(search, replace, name)`` (``\\1`` is group 1)."""
    try:
        pattern = re.compile(search)
        return [
            attrs.evolve(series, name=pattern.sub(replace, series.name)) for series in seriesList
        ]
    except (re.error, IndexError) as error:
        raise TargetError(f"aliasSub: invalid regular expression or replacement: {error}") from None


def aliasByNode(call: CallContext, seriesList: SeriesList, *nodes: int | float | str) -> SeriesList:
    """Names made of the chosen nodes (0-based; negative from the end) or tags."""
    return [attrs.evolve(series, name=node_key(series, nodes)) for series in seriesList]


def aliasByTags(call: CallContext, seriesList: SeriesList, *tags: int | float | str) -> SeriesList:
    """graphite's alias of :func:`aliasByNode`: names made of the chosen tags (or nodes)."""
    return aliasByNode(call, seriesList, *tags)
