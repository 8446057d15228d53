"""trio-metrics: a metrics server and its clients, built on trio.

``from trio_metrics import Client, ClientError, run_server`` gives the names
that existing users of the protocol import; trio programs use
:func:`open_client` / :class:`AsyncClient` and :func:`serve`.
"""

from .async_client import AsyncClient, ThreadClient, open_client
from .client import Client, ClientError
from .limits import Limits
from .server import ServerInfo, run_server, serve
from .stats import ServerStats
from .store import MetricStore, Series, Store

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "Limits",
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
