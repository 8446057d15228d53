"""The HTTP server's counters (:class:`HttpStats`), shown by ``/metrics``."""

from __future__ import annotations

import attrs

from ._prometheus import Figure

__all__ = ["HttpStats"]


@attrs.define
class HttpStats:
    """Requests by route and status code, refusals, and connections."""

    #: ``(route, status) -> count``; the route is the path template
    #: (``/static/{name}``), or ``other`` for an unknown path.
    requests: dict[tuple[str, int], int] = attrs.field(factory=dict)
    bodies_too_large: int = 0
    bodies_over_budget: int = 0
    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    #: With auth on: connections that have not yet sent a request with a
    #: known token, and those closed at once because too many were open.
    connections_unauthenticated: int = 0
    connections_refused_unauthenticated: int = 0

    def count(self, route: str, status: int) -> None:
        """Count one answered request."""
        self.requests[route, status] = self.requests.get((route, status), 0) + 1

    def figures(self) -> dict[str, Figure]:
        """The counters as ``/metrics`` figures."""
        samples = tuple(
            ((("route", route), ("code", str(status))), float(count))
            for (route, status), count in sorted(self.requests.items())
        )
        return {
            "http_requests": Figure(
                "counter", "HTTP requests answered, by route and status code.", samples
            ),
            "http_bodies_too_large": Figure.single(
                "counter", "HTTP requests refused with 413.", self.bodies_too_large
            ),
            "http_bodies_over_budget": Figure.single(
                "counter",
                "HTTP requests refused with 503: their body would pass --http-body-budget-bytes.",
                self.bodies_over_budget,
            ),
            "http_connections_open": Figure.single(
                "gauge", "HTTP connections open now.", self.connections_open
            ),
            "http_connections": Figure.single(
                "counter", "HTTP connections accepted and served.", self.connections_total
            ),
            "http_connections_refused": Figure.single(
                "counter",
                "HTTP connections answered 503 at once, past --http-max-connections.",
                self.connections_refused,
            ),
            "http_connections_unauthenticated": Figure.single(
                "gauge",
                "HTTP connections open now that have sent no request with a known token yet.",
                self.connections_unauthenticated,
            ),
            "http_connections_refused_unauthenticated": Figure.single(
                "counter",
                "HTTP connections answered 503 at once: --max-unauthenticated-connections"
                " were open without a token.",
                self.connections_refused_unauthenticated,
            ),
        }
