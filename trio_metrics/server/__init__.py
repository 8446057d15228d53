"""The metrics server: one trio task per connection, :func:`serve` and
:func:`run_server`, its settings (:class:`ServerConfig`), the answer cache
and the graceful stop.
"""

from __future__ import annotations

from ._answer_cache import DEFAULT_ANSWER_CACHE_BYTES, AnswerCache
from ._config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    LogLevel,
    ServeOptions,
    ServerConfig,
)
from ._connection import ConnectionHandler
from ._protection import ProtectedModeError, describe_protection
from ._run import configure_logging, run_server, serve_until_signal
from ._serve import ListenError, ServerInfo, serve

__all__ = [
    "DEFAULT_ANSWER_CACHE_BYTES",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SHUTDOWN_GRACE",
    "AnswerCache",
    "ConnectionHandler",
    "ListenError",
    "LogLevel",
    "ProtectedModeError",
    "ServeOptions",
    "ServerConfig",
    "ServerInfo",
    "configure_logging",
    "describe_protection",
    "run_server",
    "serve",
    "serve_until_signal",
]
