"""trio-metrics: a metrics server and its clients, built on trio.

``from trio_metrics import Client, ClientError, run_server`` gives the names
that existing users of the protocol import; trio programs use
:func:`open_client` / :class:`AsyncClient` and :func:`serve`.
"""

from .async_client import AsyncClient, ThreadClient, open_client
from .client import Client, ClientError
from .server import ServerInfo, ServerStats, run_server, serve
from .store import MetricStore, Series, Store

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "MetricStore",
    "Series",
    "ServerInfo",
    "ServerStats",
    "Store",
    "ThreadClient",
    "__version__",
    "open_client",
    "run_server",
    "serve",
]
