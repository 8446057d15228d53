"""Run :class:`~trio_metrics.http.HttpApi` under trio with hypercorn.

Hypercorn's trio worker parses HTTP/1.1 with h11 (and HTTP/2 with h2), and
keeps every connection in trio's structured concurrency, so cancelling
:func:`serve_http` closes the listener and every HTTP connection.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, cast

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import Framework

from ..storage import Store
from ..transport import ServerStats
from ._api import HttpApi
from ._limits import HttpLimits
from ._prometheus import Figure

__all__ = ["HTTP_READ_TIMEOUT", "HttpInfo", "HttpListenError", "serve_http"]

logger = logging.getLogger("trio_metrics.http")

#: Seconds an HTTP client may stay silent while its request is incomplete.
HTTP_READ_TIMEOUT = 60


@attrs.frozen
class HttpInfo:
    """What :func:`serve_http` hands to ``nursery.start`` once it is listening."""

    host: str
    port: int
    api: HttpApi = attrs.field(repr=False)


class HttpListenError(OSError):
    """The HTTP server's address could not be bound (``errno`` as the cause's)."""


async def serve_http(
    host: str,
    port: int,
    *,
    store: Store,
    stats: ServerStats,
    limits: HttpLimits | None = None,
    extra_figures: Callable[[], Mapping[str, Figure]] | None = None,
    task_status: trio.TaskStatus[HttpInfo] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve the HTTP API and dashboard on ``host:port`` until cancelled.

    ``port=0`` picks a free port: ``info = await nursery.start(serve_http,
    ...)`` tells it (``info.port``). ``store`` and ``stats`` are the metrics
    server's; ``limits`` (:class:`~trio_metrics.http.HttpLimits`, the
    defaults if None) bound what clients may use; ``extra_figures`` is
    :class:`~trio_metrics.http.HttpApi`'s.
    Cancelling the surrounding scope closes the listener and every open
    HTTP connection at once (requests in flight are not finished). Raises
    :exc:`OSError` if the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    api = HttpApi(store, stats, limits=limits, extra_figures=extra_figures)
    # Bound here rather than by hypercorn: a bind error is then a bare
    # OSError with nothing left open, and the real port is known at once.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    bound_port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's socket owns the descriptor now
    config.accesslog = None
    config.errorlog = logger
    config.include_server_header = False
    # A client silent this long in the middle of a request is dropped (idle
    # keep-alive connections already close after keep_alive_timeout, 5 s).
    config.read_timeout = HTTP_READ_TIMEOUT
    async with trio.open_nursery() as nursery:
        await nursery.start(_hypercorn, cast(Framework, api), config, name="trio_metrics.http")
        task_status.started(HttpInfo(host, bound_port, api))
    raise AssertionError("the HTTP server stopped by itself")


async def _hypercorn(
    app: Framework,
    config: Config,
    *,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    await hypercorn_serve(app, config, task_status=task_status)
