"""Run :class:`~trio_metrics.http.HttpApi` under trio with hypercorn's HTTP/1.1 machinery.

The listening socket is the server's own (trio's default backlog, as the
main port's: the kernel's maximum), accepted by
:func:`~trio_metrics.transport.accept_forever`, and each connection is
served by :class:`~trio_metrics.http._connections.HttpConnections`
(counted, HTTP/1.1 only). Everything lives in trio's structured
concurrency, so cancelling :func:`serve_http` closes the listener and every
HTTP connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NoReturn, cast

import attrs
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

from ..storage import Store
from ..transport import (
    Authenticator,
    ServerStats,
    TlsServer,
    accept_forever,
    take_listening_sockets,
)
from ._api import HttpApi
from ._connections import HttpConnections
from ._limits import HttpLimits
from ._prometheus import Figure

__all__ = ["HTTP_READ_TIMEOUT", "HttpInfo", "serve_http"]

logger = logging.getLogger("trio_metrics.http")

#: Seconds an HTTP connection may stay silent while it is read from (a
#: client that takes no answer for this long, sending nothing, is dropped).
HTTP_READ_TIMEOUT = 60


@attrs.frozen
class HttpInfo:
    """What :func:`serve_http` hands to ``nursery.start`` once it is listening."""

    host: str
    port: int
    api: HttpApi = attrs.field(repr=False)


async def serve_http(
    host: str,
    port: int,
    *,
    store: Store,
    stats: ServerStats,
    limits: HttpLimits | None = None,
    extra_figures: Callable[[], Mapping[str, Figure]] | None = None,
    auth: Authenticator | None = None,
    tls: TlsServer | None = None,
    task_status: trio.TaskStatus[HttpInfo] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve the HTTP API and dashboard on ``host:port`` until cancelled.

    ``port=0`` picks a free port: ``info = await nursery.start(serve_http,
    ...)`` tells it (``info.port``). ``store`` and ``stats`` are the metrics
    server's; ``limits`` (:class:`~trio_metrics.http.HttpLimits`, the
    defaults if None) bound what clients may use; ``extra_figures`` is
    :class:`~trio_metrics.http.HttpApi`'s; ``auth`` requires a bearer token
    on every path but ``/healthz``; ``tls`` speaks HTTPS (its handshake
    counted as on the other ports, in ``stats``). Cancelling the surrounding scope
    closes the listener and every open HTTP connection at once (requests in
    flight are not finished). Raises :exc:`OSError` if the address cannot
    be bound (nothing is left open then).
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    limits = HttpLimits() if limits is None else limits
    api = HttpApi(store, stats, limits=limits, extra_figures=extra_figures, auth=auth)
    # Bound here, with trio's default backlog (as the main port): hypercorn's
    # 100 made a burst of 1,000 connects wait seconds for SYN retries.
    sockets = take_listening_sockets(await trio.open_tcp_listeners(port, host=host))
    bound_port = sockets[0].getsockname()[1]
    connections = HttpConnections(
        # HttpApi speaks ASGI with plain dicts, where hypercorn's types are TypedDicts.
        ASGIWrapper(cast(ASGIFramework, api)),
        _hypercorn_config(limits),
        limits.max_connections,
        api.http_stats,
        tls=tls,
        tls_stats=stats,
        max_unauthenticated=None if auth is None else auth.settings.max_unauthenticated,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_forever, sockets, connections.handle)
        task_status.started(HttpInfo(host, bound_port, api))
    raise AssertionError("the HTTP server stopped by itself")


def _hypercorn_config(limits: HttpLimits) -> Config:
    config = Config()
    config.accesslog = None
    config.errorlog = logger
    config.include_server_header = False
    # hypercorn's idle timer runs from a connection's start (and from each
    # answer) until a request's headers are complete: the header deadline,
    # which also closes idle keep-alive connections.
    config.keep_alive_timeout = limits.header_timeout
    config.read_timeout = HTTP_READ_TIMEOUT
    return config
