"""The trio TCP plumbing every listener shares: accepting, the lean socket
stream, the line reader, limits, counters and throttled logging.

It knows nothing of the protocol's text or of storage.
"""

from __future__ import annotations

from ._accept import (
    accept_forever,
    take_listening_sockets,
)
from ._auth import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_MAX_UNAUTHENTICATED,
    MIN_TOKEN_LENGTH,
    Authenticator,
    AuthSettings,
    FailureDelay,
    TokenFileError,
    is_valid_token,
    load_tokens,
)
from ._groups import (
    sole_exception,
)
from ._guard import (
    PEER_GONE_ERRORS,
    ListenerCounters,
    guarded_connection,
)
from ._lean_stream import (
    LeanSocketStream,
)
from ._limits import (
    DEFAULT_MAX_BUFFERED_ANSWER,
    DEFAULT_MAX_CONNECTIONS,
    Limits,
)
from ._lines import (
    DEFAULT_MAX_LINE_LENGTH,
    LINE_TOO_LONG,
    RECEIVE_SIZE,
    Block,
    Line,
    LineBuffer,
    LineReader,
    LineTooLong,
    lines_of,
)
from ._stats import (
    ServerStats,
)
from ._throttled_log import (
    ThrottledLogger,
)
from ._tls import (
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    TlsFilesError,
    TlsServer,
    TlsSettings,
    server_context,
    stream_socket,
)

__all__ = [
    "DEFAULT_AUTH_TIMEOUT",
    "DEFAULT_MAX_BUFFERED_ANSWER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "LINE_TOO_LONG",
    "MIN_TOKEN_LENGTH",
    "PEER_GONE_ERRORS",
    "RECEIVE_SIZE",
    "AuthSettings",
    "Authenticator",
    "Block",
    "FailureDelay",
    "LeanSocketStream",
    "Limits",
    "Line",
    "LineBuffer",
    "LineReader",
    "LineTooLong",
    "ListenerCounters",
    "ServerStats",
    "ThrottledLogger",
    "TlsFilesError",
    "TlsServer",
    "TlsSettings",
    "TokenFileError",
    "accept_forever",
    "guarded_connection",
    "is_valid_token",
    "lines_of",
    "load_tokens",
    "server_context",
    "sole_exception",
    "stream_socket",
    "take_listening_sockets",
]
