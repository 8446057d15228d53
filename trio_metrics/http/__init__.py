"""The HTTP side: the JSON API, Prometheus' ``/metrics``, the dashboard's
static files, the OpenAPI document, and the hypercorn runner.

It knows nothing of the main protocol's wire format beyond its key rules.
"""

from __future__ import annotations

from ._api import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_SERIES_KEYS,
    HttpApi,
    HttpStats,
    reduce_for_chart,
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
from ._server import (
    HTTP_READ_TIMEOUT,
    HttpInfo,
    HttpListenError,
    serve_http,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_BODY_BYTES",
    "HTTP_READ_TIMEOUT",
    "MAX_SERIES_KEYS",
    "OPENAPI",
    "PREFIX",
    "Figure",
    "HttpApi",
    "HttpInfo",
    "HttpListenError",
    "HttpStats",
    "Request",
    "Response",
    "durability_figures",
    "reduce_for_chart",
    "render",
    "render_metrics",
    "serve_http",
    "server_figures",
]
