"""What every Graphite endpoint shares: its parameters, its errors, its time forms, pickles.

graphite-web reads a request's parameters from the query string and a
form-encoded POST body together (Grafana posts its renders), the last
value of a repeated single parameter winning; :func:`graphite_params` does
the same. Its errors are plain text with status 400, as graphite-web's
``InputParameterError`` answers are: :exc:`GraphiteInputError`.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar
from urllib.parse import parse_qs

import trio

from ._messages import Request, Response

_T = TypeVar("_T")

__all__ = [
    "PICKLE_CONTENT_TYPE",
    "GraphiteInputError",
    "GraphiteParams",
    "graphite_params",
    "load_query_package",
    "off_the_loop",
    "plain_pickle",
    "text_error",
]

#: The content type of graphite-web's pickled answers.
PICKLE_CONTENT_TYPE: Final = "application/pickle"
# Plain types only need protocol 2, which every Python 3 (and graphite-web's
# safe unpickler) reads.
_PICKLE_PROTOCOL: Final = 2

#: Work on more items than this (nodes, slots) is done in a worker thread.
INLINE_ITEMS: Final = 20_000


class GraphiteInputError(ValueError):
    """A request graphite-web would refuse as bad input: a 400 with this message."""


async def load_query_package() -> None:
    """Import :mod:`trio_metrics.query` (numpy, pyparsing) in a worker thread the first
    time: the import takes a few hundred milliseconds that the event loop goes on
    running through."""
    if "trio_metrics.query" not in sys.modules:
        await trio.to_thread.run_sync(importlib.import_module, "trio_metrics.query")


async def off_the_loop(items: int, function: Callable[[], _T]) -> _T:
    """``function()``, in a worker thread when it handles over :data:`INLINE_ITEMS` items.

    Encoding a million slots takes the GIL for about a second; in a thread,
    the interpreter hands the GIL back every few milliseconds, so the
    event loop (the main port's connections among them) keeps running.
    """
    if items <= INLINE_ITEMS:
        return function()
    return await trio.to_thread.run_sync(function, abandon_on_cancel=True)


def plain_pickle(document: object) -> bytes:
    """``document`` (plain lists, dicts, str, numbers, None) pickled for graphite-web."""
    return pickle.dumps(document, protocol=_PICKLE_PROTOCOL)


def text_error(message: str) -> Response:
    """graphite-web's answer to bad input: 400 and the message as plain text."""
    return Response(400, message.encode(), "text/plain; charset=utf-8")


class GraphiteParams:
    """A request's parameters, from its query string and its form-encoded body together."""

    def __init__(self, values: Mapping[str, Sequence[str]]) -> None:
        self._values = values

    def all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (``target``, ``query``)."""
        return list(self._values.get(name, ()))

    def get(self, name: str) -> str | None:
        """The last value of ``name`` (graphite-web's ``QueryDict.get``), or None."""
        values = self._values.get(name, ())
        return values[-1] if values else None

    def has(self, name: str) -> bool:
        """Whether ``name`` is given at all (graphite tests ``noNullPoints`` so)."""
        return name in self._values

    def whole(self, name: str, default: int, minimum: int = 0) -> int:
        """``name`` as a whole number of at least ``minimum``, or ``default``."""
        text = self.get(name)
        if text is None or text == "":
            return default
        if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 18):
            raise GraphiteInputError(f"Invalid int value {text!r} for param {name}")
        number = int(text)
        if number < minimum:
            raise GraphiteInputError(f"Invalid value {text!r} for param {name}: below {minimum}")
        return number


def graphite_params(request: Request) -> GraphiteParams:
    """The parameters of ``request``: its query string, then its form body's (a POST)."""
    merged: dict[str, list[str]] = {name: list(values) for name, values in request.query.items()}
    if request.method == "POST" and request.body:
        try:
            form = parse_qs(request.body.decode("latin-1"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise GraphiteInputError("the form body is not UTF-8") from None
        for name, values in form.items():
            merged.setdefault(name, []).extend(values)
    return GraphiteParams(merged)
