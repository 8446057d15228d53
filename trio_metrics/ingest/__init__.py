"""Listeners that take points in other formats: the Graphite plaintext listener."""

from __future__ import annotations

from ._graphite import (
    NOW,
    GraphiteBatch,
    GraphiteHandler,
    GraphiteLineError,
    GraphiteListenError,
    GraphitePoint,
    NotANumber,
    parse_graphite_line,
    parse_graphite_lines,
    parse_graphite_timestamp,
    serve_graphite,
)

__all__ = [
    "NOW",
    "GraphiteBatch",
    "GraphiteHandler",
    "GraphiteLineError",
    "GraphiteListenError",
    "GraphitePoint",
    "NotANumber",
    "parse_graphite_line",
    "parse_graphite_lines",
    "parse_graphite_timestamp",
    "serve_graphite",
]
