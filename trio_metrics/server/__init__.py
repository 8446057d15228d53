"""The metrics server: one trio task per connection, :func:`serve` and
:func:`run_server`, the answer cache and the graceful stop.
"""

from __future__ import annotations

from ._answer_cache import (
    DEFAULT_ANSWER_CACHE_BYTES,
    AnswerCache,
)
from ._connection import (
    ConnectionHandler,
)
from ._serve import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerInfo,
    run_server,
    serve,
    serve_until_signal,
)

__all__ = [
    "DEFAULT_ANSWER_CACHE_BYTES",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AnswerCache",
    "ConnectionHandler",
    "ServerInfo",
    "run_server",
    "serve",
    "serve_until_signal",
]
