"""The clients: the blocking :class:`Client`, the trio :class:`AsyncClient`
and :class:`ThreadClient` for worker threads.

All three drive the same sans-IO :class:`~trio_metrics.wire.ClientConnection`
and raise the same :class:`ClientError`\\ s, translated in one place
(:func:`map_exceptions`).
"""

from __future__ import annotations

from ..wire import Metrics
from ._async import (
    AsyncClient,
    ThreadClient,
    open_client,
)
from ._errors import ClientError, map_exceptions
from ._sync import (
    Client,
    check_timeout,
    default_timestamp,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "Metrics",
    "ThreadClient",
    "check_timeout",
    "default_timestamp",
    "map_exceptions",
    "open_client",
]
