"""The clients: the blocking :class:`Client`, the trio :class:`AsyncClient`
and :class:`ThreadClient` for worker threads.
"""

from __future__ import annotations

from ._async import (
    AsyncClient,
    ThreadClient,
    open_client,
)
from ._sync import (
    RECEIVE_SIZE,
    Client,
    ClientError,
    Metrics,
    answer_to_metrics,
    check_ok,
    check_put_answer,
    check_timeout,
    default_timestamp,
)

__all__ = [
    "RECEIVE_SIZE",
    "AsyncClient",
    "Client",
    "ClientError",
    "Metrics",
    "ThreadClient",
    "answer_to_metrics",
    "check_ok",
    "check_put_answer",
    "check_timeout",
    "default_timestamp",
    "open_client",
]
