"""The HTTP API and dashboard as a small ASGI application.

:class:`HttpApi` answers a :class:`Request` with a :class:`Response`
(:meth:`HttpApi.handle`: no sockets, no HTTP parsing); its ``__call__`` is
the thin ASGI layer that reads the body within its size limit and writes
the response. :func:`trio_metrics.http.serve_http` runs it under trio.

Every error is JSON, ``{"error": "..."}``, with its status code: 400 for a
bad request, 404 for an unknown path, 405 for a method the path does not
take, 408, 413 and 503 for a body too slow, too large or over the budget
(:mod:`._bodies`), 503 when the store cannot take points (a failed
write-ahead log: a throttled warning), 500 when the store fails otherwise
(logged with its traceback; the server goes on).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Final
from urllib.parse import parse_qs

import attrs

from .. import wire
from ..storage import Store, StoreUnavailableError
from ..transport import Authenticator, ServerStats, ThrottledLogger
from ..wire import ProtocolError, check_key, check_timestamp, check_value, echo
from ._bodies import BodyBudget, BodyReader, Disconnected
from ._graphite import GraphiteApi
from ._keys import delete_response, keys_response
from ._limits import HttpLimits
from ._messages import BadRequest, Request, Response
from ._openapi import OPENAPI
from ._prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._prometheus import Figure, render_metrics
from ._remote import RemoteStorage
from ._sending import Receive, Scope, Send, send_response
from ._series import SeriesQuery, series_response
from ._stats import HttpStats
from ._trust import CONNECTION_TRUST

__all__ = ["MAX_KEY_BYTES", "HttpApi"]

logger = logging.getLogger("trio_metrics.http")

_STATIC_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_POINT_FIELDS: Final = frozenset({"key", "value", "timestamp"})


#: The longest key accepted, the same for every client (see
#: :data:`trio_metrics.wire.MAX_KEY_BYTES`).
MAX_KEY_BYTES: Final = wire.MAX_KEY_BYTES


Handler = Callable[[Request], Awaitable[Response]]


class HttpApi:
    """The ASGI application: JSON API, ``/metrics``, ``/healthz``, the dashboard, and the
    Graphite API under ``/graphite`` (:class:`~trio_metrics.http._graphite.GraphiteApi`).

    ``store`` and ``stats`` are the metrics server's own. ``extra_figures``,
    if given, is called on each ``/metrics`` request for more figures to
    show (see :func:`~trio_metrics.http.render_metrics`). ``clock``
    gives the timestamp of a posted point that has none. ``limits`` bound
    bodies and answers (:class:`~trio_metrics.http.HttpLimits`).
    """

    def __init__(
        self,
        store: Store,
        stats: ServerStats,
        *,
        limits: HttpLimits | None = None,
        extra_figures: Callable[[], Mapping[str, Figure]] | None = None,
        clock: Callable[[], float] = time.time,
        auth: Authenticator | None = None,
    ) -> None:
        self.store = store
        #: Require ``Authorization: Bearer <token>`` (but on ``/healthz``), or ``None``.
        self.auth = auth
        self.stats = stats
        self.http_stats = HttpStats()
        self.limits = HttpLimits() if limits is None else limits
        self._extra_figures = extra_figures
        self._clock = clock
        self._warnings = ThrottledLogger(logger)
        self.remote = RemoteStorage(store, self.limits)
        self._bodies = BodyReader(
            self.limits, BodyBudget(self.limits.body_budget_bytes), self.http_stats
        )
        #: Path template -> method -> handler; ``{name}`` matches one path segment.
        self.routes: dict[str, dict[str, Handler]] = {
            "/": {"GET": self._dashboard},
            "/static/{name}": {"GET": self._static},
            "/healthz": {"GET": self._healthz},
            "/metrics": {"GET": self._metrics},
            "/api/v1/keys": {"GET": self._keys},
            "/api/v1/series": {"GET": self._series, "DELETE": self._delete_series},
            "/api/v1/points": {"POST": self._points},
            "/api/v1/openapi.json": {"GET": self._openapi},
            "/api/v1/write": {"POST": self.remote.write},
            "/api/v1/read": {"POST": self.remote.read},
        }
        self.routes.update(GraphiteApi(store, self.limits, clock).routes())

    # --- routing --------------------------------------------------------------

    def route_of(self, path: str) -> str | None:
        """The route template that serves ``path``, or None."""
        if path in self.routes:
            return path
        head, _, name = path.rpartition("/")
        template = head + "/{name}"
        if name and template in self.routes:
            return template
        return None

    async def handle(self, request: Request) -> Response:
        """Answer ``request``; never raises for a bad request, only for a failing store."""
        route = self.route_of(request.path)
        if route is None:
            response = Response.error(404, f"no such path: {request.path}")
        else:
            methods = self.routes[route]
            # RFC 9110: HEAD wherever GET is; the ASGI layer sends the headers only.
            allowed = sorted({*methods, "HEAD"} if "GET" in methods else methods)
            handler = methods.get("GET" if request.method == "HEAD" else request.method)
            if handler is None or request.method not in allowed:
                response = Response.error(
                    405, f"{request.method} is not allowed on {route}", allowed=allowed
                )
                response = attrs.evolve(response, headers=(("allow", ", ".join(allowed)),))
            else:
                try:
                    response = await handler(request)
                except BadRequest as exc:
                    response = Response.error(400, str(exc))
        self.http_stats.count(route or "other", response.status)
        return response

    # --- ASGI -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (``http`` and ``lifespan`` scopes)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope {scope['type']!r}")
        if self.auth is not None:
            # Before the body is read: a client without a token costs no body budget.
            refusal = await self._bearer_refusal(scope, self.auth)
            if refusal is not None:
                self.http_stats.count(self.route_of(scope["path"]) or "other", refusal.status)
                await send_response(send, receive, refusal, head=scope["method"] == "HEAD")
                return
        try:
            async with self._bodies.read(scope, receive) as body:
                if isinstance(body, Response):
                    self.http_stats.count(self.route_of(scope["path"]) or "other", body.status)
                    response = body
                else:
                    response = await self._answer(scope, body)
        except Disconnected:
            return  # nobody to answer, and half a request is not run
        await send_response(send, receive, response, head=scope["method"] == "HEAD")

    async def _bearer_refusal(self, scope: Scope, auth: Authenticator) -> Response | None:
        """The 401 for a request without a known bearer token, or ``None`` to serve it."""
        path = scope["path"]
        if path == "/healthz" or (path == "/metrics" and auth.settings.metrics_open):
            return None
        header = next(
            (value for name, value in scope["headers"] if name.lower() == b"authorization"), b""
        )
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            client = scope.get("client")
            address = str(client[0]) if client else "unknown"
            if await auth.authenticate(token.strip(), address) is not None:
                trust = scope.get("state", {}).get(CONNECTION_TRUST)
                if trust is not None:
                    trust.authenticated()
                return None
            self._warnings.warning(
                "auth-failed", "an HTTP request from %s gave a wrong token", address
            )
            message, challenge = "wrong token", 'Bearer realm="trio-metrics", error="invalid_token"'
        else:
            message, challenge = (
                "a token is needed: Authorization: Bearer <token>",
                ('Bearer realm="trio-metrics"'),
            )
        return attrs.evolve(
            Response.error(401, message), headers=(("www-authenticate", challenge),)
        )

    async def _answer(self, scope: Scope, body: bytes) -> Response:
        """The response to a request read whole; a failure of the store is a 500."""
        try:
            # Strict: a key that is not UTF-8 is refused, not turned into U+FFFD.
            query = parse_qs(
                scope["query_string"].decode("latin-1"), keep_blank_values=True, errors="strict"
            )
        except UnicodeDecodeError:
            self.http_stats.count(self.route_of(scope["path"]) or "other", 400)
            return Response.error(400, "the query string is not UTF-8")
        headers = tuple(
            (n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in scope["headers"]
        )
        request = Request(scope["method"], scope["path"], query, body, headers)
        try:
            return await self.handle(request)
        except StoreUnavailableError as exc:
            # As on the other ports: one warning now and then, not a traceback each.
            self._warnings.warning("store", "refused %s %s: %s", request.method, request.path, exc)
            self.http_stats.count(self.route_of(request.path) or "other", 503)
            return Response.error(
                503, "the store cannot take points now; the server's log says why"
            )
        except Exception:
            # A failing store (or a bug): this request fails, the server goes on.
            logger.exception("%s %s failed", request.method, request.path)
            self.http_stats.count(self.route_of(request.path) or "other", 500)
            return Response.error(500, "internal error; the server's log has the details")

    # --- handlers -------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return Response.json(200, {"status": "ok"})

    async def _openapi(self, request: Request) -> Response:
        return Response.json(200, OPENAPI)

    async def _metrics(self, request: Request) -> Response:
        keys, points = await self.store.counts()
        extra = self.http_stats.figures()
        extra["http_body_bytes_held"] = Figure.single(
            "gauge",
            "Bytes of HTTP request bodies held now (charged to --http-body-budget-bytes).",
            self._bodies.budget.held,
        )
        extra.update(self.remote.figures())
        if self._extra_figures is not None:
            extra.update(self._extra_figures())
        text = render_metrics(self.stats.as_dict(), keys, points, extra)
        return Response(200, text.encode(), METRICS_CONTENT_TYPE)

    async def _keys(self, request: Request) -> Response:
        return await keys_response(self.store, request.param("match"))

    async def _series(self, request: Request) -> Response:
        query = SeriesQuery.from_request(request)
        return await series_response(self.store, query, self.limits.max_points)

    async def _delete_series(self, request: Request) -> Response:
        return await delete_response(self.store, request.param("key"))

    async def _points(self, request: Request) -> Response:
        try:
            document = json.loads(
                request.body, parse_constant=_refuse_constant, object_pairs_hook=_unique_fields
            )
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"body is not JSON: {exc}") from None
        if not isinstance(document, list):
            raise BadRequest("body must be a JSON array of points")
        now = int(self._clock())
        keys: list[str] = []
        values: list[float] = []
        timestamps: list[int] = []
        for index, item in enumerate(document):
            try:
                key, value, timestamp = _point(item, now)
            except BadRequest as exc:
                return Response.error(400, f"item {index}: {exc}", index=index)
            keys.append(key)
            values.append(value)
            timestamps.append(timestamp)
        if keys:
            await self.store.put_batch(keys, values, timestamps)
        return Response.json(200, {"stored": len(keys)})

    async def _dashboard(self, request: Request) -> Response:
        return _static_file("index.html")

    async def _static(self, request: Request) -> Response:
        return _static_file(request.path.rpartition("/")[2])


def _static_file(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = _STATIC_TYPES.get(suffix)
    if content_type is not None and name.isprintable() and "/" not in name:
        resource = resources.files(__package__).joinpath("static", name)
        if resource.is_file():
            return Response(200, resource.read_bytes(), content_type)
    return Response.error(404, f"no such file: {name}")


def _point(item: object, now: int) -> tuple[str, float, int]:
    """Check one posted point against the protocol's rules."""
    if not isinstance(item, dict):
        raise BadRequest("a point must be an object with key, value and optional timestamp")
    unknown = item.keys() - _POINT_FIELDS
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    if "key" not in item or "value" not in item:
        raise BadRequest("a point needs a key and a value")
    try:
        key = check_key(item["key"])
        value = item["value"]
        if not isinstance(value, int | float):
            raise ProtocolError(f"value {echo(value)} is not a number")
        number = float(check_value(value))
        timestamp = item.get("timestamp", now)
        if isinstance(timestamp, str):  # JSON has numbers for numbers
            raise ProtocolError(f"timestamp {echo(timestamp)} is a string, not a number")
        timestamp = check_timestamp(timestamp)
    except ProtocolError as exc:
        raise BadRequest(str(exc)) from None
    return key, number, timestamp


def _unique_fields(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # A field given twice would otherwise be taken silently from its last copy.
    fields: dict[str, object] = {}
    for name, value in pairs:
        if name in fields:
            raise ValueError(f"field {name!r} given twice")
        fields[name] = value
    return fields


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a finite number")


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up or tear down, but answering keeps the server from
    # logging that the application does not speak the lifespan protocol.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
