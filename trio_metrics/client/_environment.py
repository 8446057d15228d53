"""Where a client connects when it is not told: ``TRIO_METRICS_HOST`` and ``TRIO_METRICS_PORT``.

Read at each call, not at import, so that a variable set after the import
(or by a test) counts. An empty variable counts as unset.
"""

from __future__ import annotations

import os
from typing import Final

from ._errors import ClientError

__all__ = [
    "HOST_VARIABLE",
    "PORT_VARIABLE",
    "EnvironmentPortError",
    "default_host",
    "default_port",
    "resolve_address",
]

HOST_VARIABLE: Final = "TRIO_METRICS_HOST"
PORT_VARIABLE: Final = "TRIO_METRICS_PORT"

# The server's defaults (trio_metrics.server.DEFAULT_HOST/PORT), repeated
# here because the clients do not import the server (docs/architecture.md).
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8888


class EnvironmentPortError(ClientError):
    """``TRIO_METRICS_PORT`` is set to something that is not a port."""


def default_host() -> tuple[str, str | None]:
    """The host to use when none is given, and the variable it came from (or ``None``)."""
    host = os.environ.get(HOST_VARIABLE, "")
    return (host, HOST_VARIABLE) if host else (DEFAULT_HOST, None)


def default_port() -> tuple[int, str | None]:
    """The port to use when none is given, and its variable; :exc:`EnvironmentPortError` if bad."""
    text = os.environ.get(PORT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_PORT, None
    # Port 0 would mean "any free port": meaningless for a connection.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise EnvironmentPortError(f"{PORT_VARIABLE}={text!r} is not a port number in 1..65535")
    return int(text), PORT_VARIABLE


def resolve_address(host: str | None, port: int | None) -> tuple[str, int]:
    """``host`` and ``port``, each taken from the environment (or 127.0.0.1:8888) when ``None``."""
    if host is None:
        host, _ = default_host()
    if port is None:
        port, _ = default_port()
    return host, port
