"""The OpenAPI 3 description of the HTTP API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPENAPI"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


_TIMESTAMP: Final = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_BAD: Final = _error("A parameter is missing or malformed.")

#: The OpenAPI document, as a JSON-ready dict.
OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.0.3",
    "info": {
        "title": "trio-metrics HTTP API",
        "version": "1",
        "description": "Read and write the points of a trio-metrics server, and watch it."
        " Errors are JSON objects with an `error` message.",
    },
    "paths": {
        "/": {
            "get": {
                "summary": "The dashboard: live charts of chosen keys.",
                "responses": {"200": _text("text/html", "The dashboard page.")},
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "A file of the dashboard (script, style sheet, chart library).",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _text("text/javascript", "The file."),
                    "404": _error("No such file."),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Whether the server answers.",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"type": "string"}}},
                        'Always `{"status": "ok"}`.',
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "The server's counters in Prometheus' text format 0.0.4.",
                "responses": {"200": _text("text/plain", "Prometheus text exposition.")},
            }
        },
        "/api/v1/keys": {
            "get": {
                "summary": "The stored keys, sorted, optionally filtered by a glob.",
                "parameters": [
                    {
                        "name": "match",
                        "in": "query",
                        "required": False,
                        "description": "Graphite-style glob matched node by node (`*` and `?`"
                        " never cross a `.`; `[a-z]`, `[!a-z]`, `{a,b}`), case-sensitive, at"
                        " most 1024 bytes; without it every key is listed.",
                        "schema": {"type": "string", "maxLength": 1024},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
                        },
                        "The matching keys.",
                    ),
                    "400": _BAD,
                },
            }
        },
        "/api/v1/series": {
            "get": {
                "summary": "The points of one or more keys within a time range.",
                "parameters": [
                    {
                        "name": "key",
                        "in": "query",
                        "required": True,
                        "description": "A key; repeat the parameter for several (at most 100).",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "description": "First timestamp included (default 0).",
                        "schema": _TIMESTAMP,
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "required": False,
                        "description": "Last timestamp included (default 2**63-1).",
                        "schema": _TIMESTAMP,
                    },
                    {
                        "name": "max_points",
                        "in": "query",
                        "required": False,
                        "description": "Reduce each series to at most this many points for a"
                        " chart: equal runs keep their lowest and highest point, and the last"
                        " point is kept. Default: every point.",
                        "schema": {"type": "integer", "minimum": 3},
                    },
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/SeriesAnswer"}, "The points."),
                    "400": _BAD,
                },
            }
        },
        "/api/v1/points": {
            "post": {
                "summary": "Store a batch of points: all of them, or none if one is invalid.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Point"},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"stored": {"type": "integer"}}},
                        "Every point is stored.",
                    ),
                    "400": _error("Not JSON, or an invalid point (`index` names it)."),
                    "408": _error("The body was not complete within the body timeout."),
                    "413": _error("The body is over the limit (1 MiB by default)."),
                    "503": _error(
                        "The store cannot take points now (a failed log), or the body would"
                        " pass the budget of bodies held at once (`Retry-After`)."
                    ),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This description.",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "index": {"type": "integer", "description": "The invalid point."},
                    "allowed": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Point": {
                "type": "object",
                "required": ["key", "value"],
                "additionalProperties": False,
                "properties": {
                    "key": {
                        "type": "string",
                        "description": "One word of printable characters, not `*`.",
                    },
                    "value": {"type": "number", "description": "A finite number."},
                    "timestamp": {**_TIMESTAMP, "description": "Unix seconds; default: now."},
                },
            },
            "SeriesAnswer": {
                "type": "object",
                "properties": {
                    "from": _TIMESTAMP,
                    "until": _TIMESTAMP,
                    "series": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "key": {"type": "string"},
                                "step": {
                                    "type": "integer",
                                    "description": "Seconds per point of the retention tier"
                                    " that answered; 0: the points as put.",
                                },
                                "total": {
                                    "type": "integer",
                                    "description": "Points in the range, before max_points.",
                                },
                                "points": {
                                    "type": "array",
                                    "description": "`[timestamp, value]` pairs, oldest first.",
                                    "items": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 2,
                                        "maxItems": 2,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}

OPENAPI["paths"]["/api/v1/series"]["delete"] = {
    "summary": "Remove a key, or every key a glob matches, with all their points.",
    "description": "The glob is matched node by node as in `/api/v1/keys` (`*` alone: the"
    " keys without a dot); a key without glob characters removes just itself. With a data"
    " directory the answer comes once the write-ahead log holds the delete.",
    "parameters": [
        {
            "name": "key",
            "in": "query",
            "required": True,
            "description": "A key or a glob.",
            "schema": {"type": "string"},
        }
    ],
    "responses": {
        "200": _json(
            {"type": "object", "properties": {"deleted": {"type": "integer", "minimum": 0}}},
            "How many keys were removed.",
        ),
        "400": _error("The key is missing, given twice, or not a valid key or glob."),
        "503": _error("The store cannot take writes (its log failed)."),
    },
}

# Every route that reads or writes the store fails alike when the store does.
for _path in ("/metrics", "/api/v1/keys", "/api/v1/series", "/api/v1/points"):
    for _operation in OPENAPI["paths"][_path].values():
        _operation["responses"]["500"] = _error("The store failed; the server's log says why.")

# Prometheus' remote storage (docs/prometheus.md): protobuf bodies in snappy blocks.
_SNAPPY_PROTOBUF: Final = {
    "required": True,
    "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}},
}
OPENAPI["paths"]["/api/v1/write"] = {
    "post": {
        "summary": "Prometheus remote write 1.0: a snappy-compressed protobuf WriteRequest"
        " (`Content-Encoding: snappy`).",
        "requestBody": _SNAPPY_PROTOBUF,
        "responses": {
            "204": {"description": "Every point is stored (as durably as --fsync promises)."},
            "400": _error("The body is not a snappy WriteRequest, or a series cannot be a key."),
            "413": _error("The body is over the limit (1 MiB by default)."),
            "415": _error("`Content-Encoding` is not snappy."),
            "500": _error("The store failed; the server's log says why."),
            "503": _error("The store cannot take points now (a failed log): Prometheus retries."),
        },
    }
}
OPENAPI["paths"]["/api/v1/read"] = {
    "post": {
        "summary": "Prometheus remote read, SAMPLES response type: a snappy-compressed"
        " protobuf ReadRequest in, a snappy-compressed ReadResponse out.",
        "requestBody": _SNAPPY_PROTOBUF,
        "responses": {
            "200": _text(
                "application/x-protobuf", "The ReadResponse (`Content-Encoding: snappy`)."
            ),
            "400": _error(
                "The body is not a snappy ReadRequest, a regular expression does not compile,"
                " or the answer would pass --http-max-points samples."
            ),
            "413": _error("The body is over the limit (1 MiB by default)."),
            "415": _error("`Content-Encoding` is not snappy."),
            "500": _error("The store failed; the server's log says why."),
        },
    }
}


_GRAPHITE_PARAMETERS: Final = {
    "/graphite/render": [
        ("target", True, "A target: a path expression (a glob). Repeat for more."),
        (
            "from",
            False,
            "Start: `now`, `-1h`-style offsets (`s`, `min`, `h`, `d`, `w`, `mon`,"
            " `y`) or unix seconds; `-1d` when absent.",
        ),
        ("until", False, "End, in the same forms; `now` when absent."),
        ("now", False, "The time `now` stands for (unix seconds); the server's clock when absent."),
        ("format", True, "`json`, or `pickle` (graphite-web's cluster protocol)."),
        ("maxDataPoints", False, "The most points per series Grafana wants."),
        ("noNullPoints", False, "Leave out empty slots (and series left empty)."),
    ],
    "/graphite/metrics/find": [
        ("query", True, "A glob, node by node: `*`, `?`, `[a-z]`, `{a,b}`."),
        ("format", False, "`treejson` (default), `json`, `nodelist` or `pickle`."),
        ("leavesOnly", False, "`1`: leaves only."),
        ("wildcards", False, "`1`: a `*` entry first when there are several matches."),
    ],
    "/graphite/metrics/expand": [
        ("query", True, "A glob. Repeat for more."),
        ("leavesOnly", False, "`1`: leaves only."),
        ("groupByExpr", False, "`1`: the paths of each query apart."),
    ],
    "/graphite/version": [],
    "/graphite/functions": [],
    "/graphite/tags": [
        ("filter", False, "A regular expression the tag names start with."),
        ("limit", False, "The most tags to list."),
    ],
    "/graphite/tags/{name}": [
        ("filter", False, "A regular expression the values start with."),
        ("limit", False, "The most values to list."),
    ],
    "/graphite/tags/findSeries": [
        ("expr", True, "A tag expression (`tag=value`, `!=`, `=~`, `!=~`). Repeat for more."),
    ],
    "/graphite/tags/autoComplete/tags": [
        ("tagPrefix", False, "The start of the tag names."),
        ("expr", False, "Only tags of the series these tag expressions match. Repeatable."),
        ("limit", False, "The most names (100 by default)."),
    ],
    "/graphite/tags/autoComplete/values": [
        ("tag", True, "The tag whose values to list."),
        ("valuePrefix", False, "The start of the values."),
        ("expr", False, "Only values of the series these tag expressions match. Repeatable."),
        ("limit", False, "The most values (100 by default)."),
    ],
}
# graphite-web answers these to GET only, and without a trailing-slash variant of a tag.
_GRAPHITE_GET_ONLY: Final = frozenset({"/graphite/tags", "/graphite/tags/{name}"})
_GRAPHITE_SUMMARIES: Final = {
    "/graphite/render": "The series of Graphite targets over a time range (JSON or pickle).",
    "/graphite/metrics/find": "The nodes a glob matches, as graphite-web's tree JSON or pickle.",
    "/graphite/metrics/expand": "The paths that globs match.",
    "/graphite/version": "The graphite-web version whose API is served (plain text).",
    "/graphite/functions": "The target functions served, in graphite-web's shape.",
    "/graphite/tags": "The tag names of the keys in Graphite's tag syntax.",
    "/graphite/tags/{name}": "A tag's values and how many series hold each (null: no such tag).",
    "/graphite/tags/findSeries": "The tagged keys that all the tag expressions match.",
    "/graphite/tags/autoComplete/tags": "Tag names for completion (Grafana's tag editor).",
    "/graphite/tags/autoComplete/values": "A tag's values for completion (Grafana's tag editor).",
}


def _graphite_path_parameters(path: str) -> list[dict[str, Any]]:
    if not path.endswith("{name}"):
        return []
    return [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "The tag.",
            "schema": {"type": "string"},
        }
    ]


def _graphite_operation(path: str) -> dict[str, Any]:
    return {
        "summary": _GRAPHITE_SUMMARIES[path],
        "description": "graphite-web's API: parameters in the query string or a form-encoded"
        " POST body. Bad input is a 400 with a plain-text message.",
        "parameters": _graphite_path_parameters(path)
        + [
            {
                "name": name,
                "in": "query",
                "required": required,
                "description": description,
                "schema": {"type": "string"},
            }
            for name, required, description in _GRAPHITE_PARAMETERS[path]
        ],
        "responses": {
            "200": _json({}, "graphite-web's answer (a pickle for `format=pickle`)."),
            "400": _text("text/plain", "The input is malformed or over a limit."),
            "500": _error("The store failed; the server's log says why."),
        },
    }


# Graphite's clients ask with and without a trailing slash; both are served.
for _graphite_path in _GRAPHITE_PARAMETERS:
    _variants = [_graphite_path]
    if not _graphite_path.endswith("}"):
        _variants.append(_graphite_path + "/")
    for _variant in _variants:
        OPENAPI["paths"][_variant] = {"get": _graphite_operation(_graphite_path)}
        if _graphite_path not in _GRAPHITE_GET_ONLY:
            OPENAPI["paths"][_variant]["post"] = _graphite_operation(_graphite_path)

# With --auth-token-file, every route but /healthz (and /metrics under
# --metrics-open) wants a bearer token; without it, none does.
OPENAPI["components"]["securitySchemes"] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the tokens of the server's --auth-token-file, needed only"
        " when the server runs with one (docs/security.md).",
    }
}
# An empty requirement beside the token: a server without tokens takes requests without one.
OPENAPI["security"] = [{}, {"bearerAuth": []}]
for _path, _item in OPENAPI["paths"].items():
    for _operation in _item.values():
        if _path == "/healthz":
            _operation["security"] = []
            continue
        _operation["responses"]["401"] = _error(
            "With --auth-token-file: no bearer token, or one the server does not know"
            " (`WWW-Authenticate: Bearer`)."
        )
