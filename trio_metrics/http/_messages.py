"""What the HTTP handlers take and give: :class:`Request`, :class:`Response`, :exc:`BadRequest`.

A response is whole (``body``) or streamed (``chunks``, an async generator of
byte strings made while they are sent), so that an answer of any size costs
the server one chunk of memory at a time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Final

import attrs

__all__ = ["CHUNK_BYTES", "JSON", "BadRequest", "Request", "Response"]

JSON: Final = "application/json"
#: Streamed answers are sent in pieces of about this many bytes.
CHUNK_BYTES: Final = 64 * 1024


class BadRequest(Exception):
    """Raised by a handler to answer 400 with this message."""


@attrs.frozen
class Request:
    """An HTTP request with its whole body."""

    method: str
    path: str
    #: Query parameters as :func:`urllib.parse.parse_qs` gives them.
    query: Mapping[str, Sequence[str]] = attrs.field(factory=dict)
    body: bytes = b""
    #: Header names (lower case) and values, as sent.
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or None; the first if sent twice."""
        return next((value for each, value in self.headers if each == name), None)

    def param(self, name: str) -> str | None:
        """The query parameter ``name``, or None; raises :exc:`BadRequest` if it is
        given twice or empty."""
        values = self.query.get(name, [])
        if len(values) > 1:
            raise BadRequest(f"give the {name} parameter at most once")
        if values and not values[0]:
            raise BadRequest(f"the {name} parameter is empty")
        return values[0] if values else None


@attrs.frozen
class Response:
    """What a handler answers: a whole ``body``, or ``chunks`` streamed after the headers.

    A streamed response has no ``content-length`` (HTTP/1.1 sends it chunked);
    whoever sends it closes ``chunks`` when done, sent or not.
    """

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    chunks: AsyncGenerator[bytes, None] | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def json(cls, status: int, document: object) -> Response:
        """A JSON response of ``document``."""
        return cls(status, json.dumps(document, separators=(",", ":")).encode())

    @classmethod
    def error(cls, status: int, message: str, **fields: object) -> Response:
        """An error response: ``{"error": message, **fields}``."""
        return cls.json(status, {"error": message, **fields})

    @classmethod
    def streamed(cls, chunks: AsyncGenerator[bytes, None], status: int = 200) -> Response:
        """A JSON response whose body is ``chunks``."""
        return cls(status, b"", chunks=chunks)
