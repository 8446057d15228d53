"""The protocol's wire format, sans-IO: bytes in, commands out; answers in, bytes out.

Nothing here touches sockets, trio or storage; the server, the clients, the
CLI and the HTTP API all use these rules.
"""

from __future__ import annotations

from ._client_connection import (
    STATS_REQUEST,
    Answer,
    ErrorAnswer,
    OkAnswer,
    ResponseParser,
    encode_get_request,
    encode_put_request,
    stats_from_answer,
)
from ._protocol import (
    ALL_KEYS,
    ERROR_ANSWER,
    MAX_TIMESTAMP,
    OK_ANSWER,
    PIECE_BYTES,
    STATS_PREFIX,
    Command,
    Get,
    LineEncoder,
    Point,
    ProtocolError,
    Put,
    Stats,
    encode_get_answer,
    encode_point_lines,
    encode_stats_answer,
    is_valid_key,
    iter_get_answer,
    iter_point_lines,
    parse_command,
    parse_put_block,
    parse_timestamp,
    parse_value,
    points_per_piece,
)

__all__ = [
    "ALL_KEYS",
    "ERROR_ANSWER",
    "MAX_TIMESTAMP",
    "OK_ANSWER",
    "PIECE_BYTES",
    "STATS_PREFIX",
    "STATS_REQUEST",
    "Answer",
    "Command",
    "ErrorAnswer",
    "Get",
    "LineEncoder",
    "OkAnswer",
    "Point",
    "ProtocolError",
    "Put",
    "ResponseParser",
    "Stats",
    "encode_get_answer",
    "encode_get_request",
    "encode_point_lines",
    "encode_put_request",
    "encode_stats_answer",
    "is_valid_key",
    "iter_get_answer",
    "iter_point_lines",
    "parse_command",
    "parse_put_block",
    "parse_timestamp",
    "parse_value",
    "points_per_piece",
    "stats_from_answer",
]
