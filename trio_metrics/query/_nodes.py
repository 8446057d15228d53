"""Picking nodes (dot-separated parts) or tags of a series name, as graphite's aggKey."""

from __future__ import annotations

from collections.abc import Sequence

from ._grammar import first_path_expression
from ._series import TimeSeries

__all__ = ["node_key"]


def _node_or_tag(series: TimeSeries, node: int | float | str, path: str | None) -> str:
    try:
        if isinstance(node, int | float) and node == int(node):
            # Tags (";k=v") are not nodes.
            return (path or series.name).split(";", 2)[0].split(".")[int(node)]
    except (ValueError, IndexError, OverflowError):
        pass
    return series.tags.get(str(node), "")


def node_key(series: TimeSeries, nodes: Sequence[int | float | str]) -> str:
    """The chosen nodes joined by dots; a name that ends in ``)`` is read for its
    first path expression; a node that is no number (``"2"`` is a string) or out of
    range names a tag (``""`` if absent)."""
    path = first_path_expression(series.name) if series.name.endswith(")") else None
    return ".".join(_node_or_tag(series, node, path) for node in nodes)
