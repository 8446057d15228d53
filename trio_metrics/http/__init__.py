"""The HTTP side: the JSON API, Prometheus' ``/metrics``, the dashboard's
static files, the OpenAPI document, and the hypercorn runner.

It knows nothing of the main protocol's wire format beyond its key rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import (
    HttpApi,
)
from ._chart import (
    iter_chart_indexes,
    reduce_for_chart,
)
from ._errors import HttpListenError
from ._limits import (
    DEFAULT_BODY_BUDGET_BYTES,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HTTP_MAX_CONNECTIONS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_POINTS,
    HttpLimits,
)
from ._messages import (
    Request,
    Response,
)
from ._openapi import (
    OPENAPI,
)
from ._prometheus import (
    CONTENT_TYPE,
    PREFIX,
    Figure,
    durability_figures,
    render,
    render_metrics,
    server_figures,
)
from ._series import (
    MAX_SERIES_KEYS,
)
from ._stats import (
    HttpStats,
)

if TYPE_CHECKING:
    from ._server import HTTP_READ_TIMEOUT, HttpInfo, serve_http

# The HTTP server itself (hypercorn, h11) is loaded on first use: programs
# that only use the clients, or a server without --http-port, never load it.
_LAZY = frozenset({"HTTP_READ_TIMEOUT", "HttpInfo", "serve_http"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BODY_BUDGET_BYTES",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_HTTP_MAX_CONNECTIONS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_POINTS",
    "HTTP_READ_TIMEOUT",
    "MAX_SERIES_KEYS",
    "OPENAPI",
    "PREFIX",
    "Figure",
    "HttpApi",
    "HttpInfo",
    "HttpLimits",
    "HttpListenError",
    "HttpStats",
    "Request",
    "Response",
    "durability_figures",
    "iter_chart_indexes",
    "reduce_for_chart",
    "render",
    "render_metrics",
    "serve_http",
    "server_figures",
]
