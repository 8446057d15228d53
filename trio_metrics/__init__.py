"""trio-metrics: a metrics server and its clients, built on trio.

``from trio_metrics import Client, ClientError, run_server`` gives the names
that existing users of the protocol import; trio programs use
:func:`open_client` / :class:`AsyncClient` and :func:`serve`.

The subpackages show the architecture (docs/architecture.md): ``wire`` (the
protocol, sans-IO), ``transport`` (trio TCP plumbing), ``server``, ``ingest``
(Graphite), ``storage``, ``http``, ``client`` and ``cli``. Everything a user
needs, every public exception included, is importable from here.
"""

from .client import AsyncClient, Client, ClientError, ThreadClient, open_client
from .http import HttpLimits, HttpListenError
from .ingest import GraphiteLineError, GraphiteListenError, NotANumber
from .server import (
    ListenError,
    ProtectedModeError,
    ServerConfig,
    ServerInfo,
    run_server,
    serve,
)
from .storage import (
    DamagedFileError,
    DataDirError,
    DataDirLockedError,
    DataDirStorage,
    ExistingStore,
    FormatError,
    FsyncPolicy,
    MemoryStorage,
    MetricStore,
    RetentionError,
    Series,
    Store,
    StoreUnavailableError,
)
from .transport import (
    AuthSettings,
    Limits,
    ServerStats,
    TlsFilesError,
    TlsSettings,
    TokenFileError,
)
from .wire import (
    ConnectionStateError,
    ForeignAnswerError,
    GlobError,
    MalformedAnswerError,
    OutOfStepError,
    ProtocolError,
    ServerClosedError,
    ServerRefusedError,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AuthSettings",
    "Client",
    "ClientError",
    "ConnectionStateError",
    "DamagedFileError",
    "DataDirError",
    "DataDirLockedError",
    "DataDirStorage",
    "ExistingStore",
    "ForeignAnswerError",
    "FormatError",
    "FsyncPolicy",
    "GlobError",
    "GraphiteLineError",
    "GraphiteListenError",
    "HttpLimits",
    "HttpListenError",
    "Limits",
    "ListenError",
    "MalformedAnswerError",
    "MemoryStorage",
    "MetricStore",
    "NotANumber",
    "OutOfStepError",
    "ProtectedModeError",
    "ProtocolError",
    "RetentionError",
    "Series",
    "ServerClosedError",
    "ServerConfig",
    "ServerInfo",
    "ServerRefusedError",
    "ServerStats",
    "Store",
    "StoreUnavailableError",
    "ThreadClient",
    "TlsFilesError",
    "TlsSettings",
    "TokenFileError",
    "__version__",
    "open_client",
    "run_server",
    "serve",
]
