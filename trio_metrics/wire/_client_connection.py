"""The client's side of the protocol, sans-IO: :class:`ClientConnection`.

A :class:`ClientConnection` turns requests into bytes, takes the bytes the
server sends back, pairs each answer with its request and turns it into that
request's result, and knows when the connection can no longer be trusted.
It never touches a socket, a clock or trio: the blocking ``Client``, the
trio ``AsyncClient`` and any other driver move the bytes and call it, so the
rules live here once and are tested without I/O.

The pieces it is built from are public too: the request encoders
(:func:`encode_put_request`, :func:`encode_get_request`,
:data:`STATS_REQUEST`), :class:`ResponseParser` and the parsed answers.
"""

from __future__ import annotations

import enum
import math
from typing import Final, Protocol, SupportsInt, TypeAlias, TypeVar

import attrs

from ._arguments import check_key, check_put_line, check_timestamp, check_value
from ._protocol import (
    DELETED_NAME,
    MAX_TIMESTAMP,
    STATS_PREFIX,
    Auth,
    Delete,
    Keys,
    Point,
    ProtocolError,
    Range,
)

__all__ = [
    "NEED_DATA",
    "PING_REQUEST",
    "STATS_REQUEST",
    "Answer",
    "AuthRequest",
    "ClientConnection",
    "ClientState",
    "ConnectionStateError",
    "DeleteRequest",
    "ErrorAnswer",
    "ForeignAnswerError",
    "GetRequest",
    "KeysRequest",
    "MalformedAnswerError",
    "Metrics",
    "NeedData",
    "OkAnswer",
    "OutOfStepError",
    "PingRequest",
    "PointBatch",
    "PutRequest",
    "RangeRequest",
    "Request",
    "ResponseParser",
    "ServerClosedError",
    "ServerRefusedError",
    "StatsRequest",
    "StreamedPoint",
    "deleted_from_answer",
    "encode_delete_request",
    "encode_get_request",
    "encode_keys_request",
    "encode_put_request",
    "encode_range_request",
    "keys_from_answer",
    "metrics_from_answer",
    "stats_from_answer",
]

_ANSWER_END: Final = b"\n\n"

ResultT = TypeVar("ResultT")
ResultT_co = TypeVar("ResultT_co", covariant=True)


# --- what can go wrong ----------------------------------------------------------


class MalformedAnswerError(ProtocolError):
    """An answer that does not follow the protocol.

    It was read up to its closing blank line, so the next answer still
    belongs to the next request: the connection stays usable.
    """


class ServerRefusedError(ProtocolError):
    """The server answered ``error``: it took the request for a wrong command.

    The message is the answer's second line. The connection stays usable.
    """


class OutOfStepError(ProtocolError):
    """The server sent bytes beyond the one answer to a request.

    Which answer belongs to which request can no longer be told, so the
    connection is broken.
    """


class ServerClosedError(ProtocolError):
    """The server closed the connection before the answer was complete.

    The connection is broken.
    """


class ForeignAnswerError(ServerClosedError):
    """The server answered in another protocol: its answer starts with ``HTTP/1.``.

    It is not a trio-metrics server's main port; the connection is broken.
    """


class ConnectionStateError(ProtocolError):
    """A call the connection's state does not allow.

    A request while another awaits its answer, or once the connection is
    broken or closed. The message says what the connection is:
    ``"closed"``, ``"out of step with its answers"``, ...
    """


# --- requests and answers on the wire -----------------------------------------


def encode_put_request(key: str, value: object, timestamp: object) -> bytes:
    """Encode ``put <key> <str(value)> <int(timestamp)>\\n``.

    The value is sent as the caller wrote it (``str(301)`` is ``301``), as
    the client contract requires. Raises :class:`ProtocolError`, naming the
    rule, for an argument a server would refuse: see
    :func:`check_key`, :func:`check_value`, :func:`check_timestamp` and
    :func:`check_put_line`.
    """
    line = f"put {check_key(key)} {check_value(value)} {check_timestamp(timestamp)}\n"
    return check_put_line(line.encode())


STATS_REQUEST: Final = b"stats\n"


def encode_get_request(key: str) -> bytes:
    """Encode ``get <key>\\n``.

    Raises :class:`ProtocolError` for a bad key (see :func:`check_key`).
    """
    return f"get {check_key(key, allow_all=True)}\n".encode()


PING_REQUEST: Final = b"ping\n"


def encode_keys_request(pattern: str) -> bytes:
    """Encode ``keys <glob>\n``.

    Raises :class:`ProtocolError` for a pattern the server would refuse
    (whitespace, not printable, a malformed glob): the server's own
    command checks it, so what is sent is what the server parses.
    """
    return f"keys {Keys(pattern).pattern}\n".encode()


def encode_range_request(pattern: str, start: SupportsInt, end: SupportsInt) -> bytes:
    """Encode ``range <key|glob> <from> <until>\n``.

    Raises :class:`ProtocolError` for a bad pattern, a timestamp that is
    not an integer in 0..2**63-1, or ``start`` after ``end``.
    """
    command = Range(pattern, _integer(start, "from"), _integer(end, "until"))
    return f"range {command.pattern} {command.start} {command.end}\n".encode()


def encode_delete_request(pattern: str) -> bytes:
    """Encode ``delete <key|glob>\n``. Raises :class:`ProtocolError` for a bad pattern."""
    return f"delete {Delete(pattern).pattern}\n".encode()


def _integer(number: SupportsInt, what: str) -> int:
    try:
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(f"{what} {number!r} is not an integer") from None


@attrs.frozen
class OkAnswer:
    """An ``ok`` answer with the points it carried (none for a ``put``)."""

    points: tuple[Point, ...] = ()


@attrs.frozen
class ErrorAnswer:
    """An ``error`` answer; ``message`` is its second line (``wrong command``)."""

    message: str


#: A parsed answer.
Answer: TypeAlias = OkAnswer | ErrorAnswer


class ResponseParser:
    """Incremental parser for the server's answers; :class:`ClientConnection` uses one.

    Feed it byte chunks as they arrive with :meth:`feed`, then call
    :meth:`next_answer` until it returns ``None`` (more bytes needed). A
    malformed answer is consumed whole and reported by
    :exc:`MalformedAnswerError`, so parsing can go on with the next one.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # Where to resume the search for "\n\n", so that an answer arriving
        # in many small chunks is not rescanned from the start each time.
        self._scanned = 0

    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    def take_lines(self) -> bytes:
        """Take every complete line received so far (up to the last ``\\n``); ``b""`` if none."""
        end = self._buffer.rfind(b"\n")
        if end < 0:
            return b""
        block = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        self._scanned = 0
        return block

    def give_back(self, data: bytes) -> None:
        """Put ``data`` back in front of the bytes not yet parsed."""
        self._buffer[0:0] = data

    def discard(self, size: int) -> None:
        """Drop the first ``size`` bytes not yet parsed."""
        del self._buffer[:size]
        self._scanned = 0

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes not yet parsed (fewer if fewer have come)."""
        return bytes(self._buffer[:size])

    def starts_with(self, prefix: bytes) -> bool:
        """Whether the bytes not yet parsed start with ``prefix``."""
        return self._buffer.startswith(prefix)

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned answer."""
        return len(self._buffer)

    def next_answer(self) -> Answer | None:
        """Return the next complete answer, or ``None`` if it has not all arrived.

        Raises :exc:`MalformedAnswerError` for a complete answer that breaks
        the protocol (no ``ok``/``error``, a bad data line).
        """
        # The answer ends at the first "\n\n"; an answer whose first line is
        # empty is malformed, and is found the same way.
        end = self._buffer.find(_ANSWER_END, max(self._scanned - 1, 0))
        if end < 0:
            self._scanned = len(self._buffer)
            return None
        block = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        self._scanned = 0
        return _parse_answer(block)


def _parse_answer(block: bytes) -> Answer:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedAnswerError("answer is not UTF-8") from None
    status, _, rest = text.partition("\n")
    if status == "ok":
        if not rest:
            return OkAnswer()
        return OkAnswer(tuple(_parse_point_line(line) for line in rest.split("\n")))
    if status == "error":
        return ErrorAnswer(rest)
    raise MalformedAnswerError(f"answer starts with {status[:40]!r}, not 'ok' or 'error'")


def _parse_point_line(line: str) -> Point:
    tokens = line.split()
    if len(tokens) != 3:
        raise MalformedAnswerError(f"data line {line[:80]!r} does not have 3 fields")
    key, value_text, ts_text = tokens
    try:
        value = float(value_text)
    except ValueError:
        raise MalformedAnswerError(f"value {value_text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise MalformedAnswerError(f"value {value_text[:40]!r} is not a finite number")
    try:
        # int() accepts signs, "_" and spaces; the protocol sends digits only.
        if not ts_text.isascii() or not ts_text.isdigit():
            raise ValueError
        timestamp = int(ts_text)
    except ValueError:  # also int()'s limit of 4300 digits
        raise MalformedAnswerError(f"timestamp {ts_text[:40]!r} is not an integer") from None
    if timestamp > MAX_TIMESTAMP:
        raise MalformedAnswerError(f"timestamp {ts_text[:40]!r} is larger than 2**63-1")
    return key, value, timestamp


# --- results -----------------------------------------------------------------------

#: What a ``get`` gives: ``{key: [(timestamp, value), ...]}``.
Metrics: TypeAlias = dict[str, list[tuple[int, float]]]


#: A point as :meth:`ClientConnection.next_points` hands it out: ``(key, timestamp, value)``.
StreamedPoint: TypeAlias = tuple[str, int, float]


@attrs.frozen
class PointBatch:
    """Data lines of a streamed ``get`` answer, parsed as they arrived.

    ``last`` is true for the batch that ends the answer (its ``points`` may
    be empty); the connection is then ready for the next request.
    """

    points: list[StreamedPoint]
    last: bool


def metrics_from_answer(answer: OkAnswer) -> Metrics:
    """Turn a ``get`` answer into ``{key: [(timestamp, value), ...]}``.

    Keys keep the server's order; each list is sorted by timestamp.
    """
    metrics: Metrics = {}
    for key, value, timestamp in answer.points:
        metrics.setdefault(key, []).append((timestamp, value))
    for points in metrics.values():
        points.sort(key=_timestamp_of)
    return metrics


def _timestamp_of(point: tuple[int, float]) -> int:
    return point[0]


def stats_from_answer(answer: OkAnswer) -> dict[str, int]:
    """The counters of a ``stats`` answer, by name (without the prefix)."""
    return {
        key.removeprefix(STATS_PREFIX): int(value)
        for key, value, _timestamp in answer.points
        if key.startswith(STATS_PREFIX)
    }


def keys_from_answer(answer: OkAnswer) -> list[str]:
    """The keys of a ``keys`` answer, in the server's (sorted) order."""
    return [key for key, _value, _timestamp in answer.points]


def deleted_from_answer(answer: OkAnswer) -> int:
    """The count of a ``delete`` answer. Raises :exc:`MalformedAnswerError` without one."""
    counts = [value for key, value, _timestamp in answer.points if key == DELETED_NAME]
    if len(answer.points) != 1 or len(counts) != 1:
        raise MalformedAnswerError(f"a delete answer needs exactly one {DELETED_NAME} line")
    count = counts[0]
    if count < 0 or not count.is_integer():
        raise MalformedAnswerError(f"deleted count {count!r} is not a whole number")
    return int(count)


# --- requests ----------------------------------------------------------------------


class Request(Protocol[ResultT_co]):
    """A request: the bytes that ask it, and what its ``ok`` answer means."""

    def encode(self) -> bytes:
        """The request's line. Raises :exc:`ProtocolError` if it cannot be sent."""
        ...

    def result(self, answer: OkAnswer) -> ResultT_co:
        """The caller's result. Raises :exc:`MalformedAnswerError` for a wrong answer."""
        ...


@attrs.frozen
class PutRequest:
    """``put``: store ``value`` for ``key`` at ``timestamp``; the result is ``None``."""

    key: str
    value: object
    timestamp: SupportsInt

    def encode(self) -> bytes:
        """See :func:`encode_put_request`."""
        return encode_put_request(self.key, self.value, self.timestamp)

    def result(self, answer: OkAnswer) -> None:
        """``None``; a put answered with data lines is a malformed answer."""
        if answer.points:
            raise MalformedAnswerError("server answered a put with data lines")


@attrs.frozen
class GetRequest:
    """``get``: the points of ``key`` (or of every key for ``"*"``), as :data:`Metrics`."""

    key: str

    def encode(self) -> bytes:
        """See :func:`encode_get_request`."""
        return encode_get_request(self.key)

    def result(self, answer: OkAnswer) -> Metrics:
        """See :func:`metrics_from_answer`."""
        return metrics_from_answer(answer)


@attrs.frozen
class StatsRequest:
    """``stats``: the server's counters, by name."""

    def encode(self) -> bytes:
        """:data:`STATS_REQUEST`."""
        return STATS_REQUEST

    def result(self, answer: OkAnswer) -> dict[str, int]:
        """See :func:`stats_from_answer`."""
        return stats_from_answer(answer)


@attrs.frozen
class PingRequest:
    """``ping`` (an extension word): the result is ``None``."""

    def encode(self) -> bytes:
        """:data:`PING_REQUEST`."""
        return PING_REQUEST

    def result(self, answer: OkAnswer) -> None:
        """``None``; a ping answered with data lines is a malformed answer."""
        if answer.points:
            raise MalformedAnswerError("server answered a ping with data lines")


@attrs.frozen
class AuthRequest:
    """``auth <token>`` (an extension word): the result is ``None``.

    The token never shows in a ``repr``.
    """

    token: str = attrs.field(repr=False)

    def encode(self) -> bytes:
        """``auth <token>\n``; :exc:`ProtocolError` for a token that is not one word."""
        return f"auth {Auth(self.token).token}\n".encode()

    def result(self, answer: OkAnswer) -> None:
        """``None``; an auth answered with data lines is a malformed answer."""
        if answer.points:
            raise MalformedAnswerError("server answered auth with data lines")


@attrs.frozen
class KeysRequest:
    """``keys <glob>`` (an extension word): the matching keys, sorted."""

    pattern: str

    def encode(self) -> bytes:
        """See :func:`encode_keys_request`."""
        return encode_keys_request(self.pattern)

    def result(self, answer: OkAnswer) -> list[str]:
        """See :func:`keys_from_answer`."""
        return keys_from_answer(answer)


@attrs.frozen
class RangeRequest:
    """``range`` (an extension word): the points from ``start`` to ``end``, as :data:`Metrics`."""

    pattern: str
    start: SupportsInt
    end: SupportsInt

    def encode(self) -> bytes:
        """See :func:`encode_range_request`."""
        return encode_range_request(self.pattern, self.start, self.end)

    def result(self, answer: OkAnswer) -> Metrics:
        """See :func:`metrics_from_answer`."""
        return metrics_from_answer(answer)


@attrs.frozen
class DeleteRequest:
    """``delete <key|glob>`` (an extension word): how many keys were removed."""

    pattern: str

    def encode(self) -> bytes:
        """See :func:`encode_delete_request`."""
        return encode_delete_request(self.pattern)

    def result(self, answer: OkAnswer) -> int:
        """See :func:`deleted_from_answer`."""
        return deleted_from_answer(answer)


# --- the connection ------------------------------------------------------------------


class ClientState(enum.Enum):
    """Where a :class:`ClientConnection` is."""

    #: Ready for a request.
    IDLE = "idle"
    #: A request was sent; its answer has not all arrived.
    AWAITING_ANSWER = "awaiting an answer"
    #: Out of step with its answers for good (see ``broken_reason``).
    BROKEN = "broken"
    #: Closed by this side.
    CLOSED = "closed"


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = "need data"


#: What :meth:`ClientConnection.next_result` returns until the answer is complete.
NEED_DATA: Final = NeedData.NEED_DATA

# Why a connection broke; ConnectionStateError says "connection ... is <reason>".
_INTERRUPTED: Final = "broken by an interrupted request"
_SERVER_CLOSED: Final = "broken: the server closed it"
_OUT_OF_STEP: Final = "out of step with its answers"
_FOREIGN: Final = "broken: the server answered HTTP"
_HTTP_START: Final = b"HTTP/1."


class ClientConnection:
    """The client side of one connection: one request at a time, in step.

    ``data = conn.send(request)``, write ``data``; then call
    ``conn.next_result(request)`` until it returns something other than
    :data:`NEED_DATA`, giving it each received chunk with
    :meth:`receive_data` in between. The protocol allows pipelining, but
    one request at a time is what lets every answer be checked against the
    request it answers.

    The state (:attr:`state`) moves IDLE -> AWAITING_ANSWER -> IDLE per
    request. An error answer or a malformed one leaves it IDLE. Bytes beyond
    the answer, the server closing early, or :meth:`request_failed` make it
    BROKEN for good; :meth:`close` makes it CLOSED.
    """

    def __init__(self) -> None:
        self._parser = ResponseParser()
        self._state = ClientState.IDLE
        self._broken_reason: str | None = None
        self._in_flight: Request[object] | None = None
        self._server_closed = False
        self._heard = False
        # A streamed answer: whether its "ok" line was taken, and the first
        # malformed line, raised once the rest of the answer is read.
        self._streaming = False
        self._stream_error: MalformedAnswerError | None = None

    @property
    def heard_from_server(self) -> bool:
        """Whether the server has ever sent a byte on this connection."""
        return self._heard

    @property
    def state(self) -> ClientState:
        """Where the connection is now."""
        return self._state

    @property
    def broken_reason(self) -> str | None:
        """Why the connection is BROKEN (``"out of step with its answers"``, ...), else ``None``."""
        return self._broken_reason if self._state is ClientState.BROKEN else None

    def send(self, request: Request[object]) -> bytes:
        """Start ``request``; return the bytes to send for it.

        Raises :exc:`ConnectionStateError` unless the connection is IDLE, and
        :exc:`ProtocolError` for a request that cannot be sent (a key or
        value with whitespace in it); in both cases nothing changes.
        """
        if self._state is not ClientState.IDLE:
            raise self._state_error()
        data = request.encode()
        self._state = ClientState.AWAITING_ANSWER
        self._in_flight = request
        return data

    def receive_data(self, data: bytes | bytearray) -> None:
        """Take bytes received from the server; ``b""`` means it closed its end.

        Bytes while no request awaits its answer put the connection out of
        step (BROKEN). Ignored once BROKEN or CLOSED, and after ``b""``.
        """
        if self._state in (ClientState.BROKEN, ClientState.CLOSED) or self._server_closed:
            return
        if not data:
            self._server_closed = True
            if self._state is ClientState.IDLE:
                self._break(_SERVER_CLOSED)
            return
        self._heard = True
        self._parser.feed(data)
        if self._state is ClientState.IDLE:
            self._break(_OUT_OF_STEP)

    def next_result(self, request: Request[ResultT]) -> ResultT | NeedData:
        """The result of ``request``, the one in flight, or :data:`NEED_DATA`.

        Once the answer is complete the connection is IDLE again, and this
        returns the request's result or raises :exc:`ServerRefusedError`
        (an ``error`` answer) or :exc:`MalformedAnswerError`. It raises
        :exc:`OutOfStepError` for bytes beyond the answer and
        :exc:`ServerClosedError` if the server closed before the answer was
        complete; both leave the connection BROKEN. Raises
        :exc:`ConnectionStateError` if ``request`` is not in flight.
        """
        if self._in_flight is not request:
            raise self._state_error()
        answer = self._next_answer()
        if answer is NEED_DATA:
            return NEED_DATA
        if isinstance(answer, ErrorAnswer):
            raise ServerRefusedError(answer.message)
        return request.result(answer)

    def next_points(self, request: GetRequest) -> PointBatch | NeedData:
        """The data lines of ``request``'s answer that have arrived, or :data:`NEED_DATA`.

        The streaming counterpart of :meth:`next_result` for a ``get``: the
        points come out as their lines complete, so memory is bounded by
        what one receive brings. Call it until a batch with ``last`` comes.
        Raises what :meth:`next_result` raises; a malformed data line is
        raised once the answer's end has been read, so the connection
        stays in step (points handed out before it were well formed).
        """
        if self._in_flight is not request:
            raise self._state_error()
        if not self._streaming:
            started = self._start_stream()
            if started is not None:
                return started
        block = self._parser.take_lines()
        if not block:
            if self._server_closed:
                self._break(_SERVER_CLOSED)
                raise ServerClosedError("server closed the connection")
            return NEED_DATA
        return self._batch_of(block)

    def _start_stream(self) -> PointBatch | NeedData | None:
        # None: the "ok" line is taken, data lines follow.
        if self._parser.starts_with(b"ok\n"):
            self._parser.discard(3)
            self._streaming = True
            return None
        if b"ok\n".startswith(self._parser.peek(3)) and not self._server_closed:
            return NEED_DATA
        # Not an "ok": an error answer or a malformed one, read whole as ever.
        answer = self._next_answer()
        if answer is NEED_DATA:
            return NEED_DATA
        if isinstance(answer, ErrorAnswer):
            raise ServerRefusedError(answer.message)
        return PointBatch([], last=True)  # pragma: no cover - an ok starts with "ok\n"

    def _batch_of(self, block: bytes) -> PointBatch:
        # The blank line that ends the answer: first, or right after a data line.
        end = 0 if block.startswith(b"\n") else block.find(b"\n\n") + 1
        if end == 0 and not block.startswith(b"\n"):
            return PointBatch(self._parse_lines(block), last=False)
        self._parser.give_back(block[end + 1 :])
        return self._end_stream(self._parse_lines(block[:end]))

    def _parse_lines(self, block: bytes) -> list[StreamedPoint]:
        if self._stream_error is not None or not block:
            return []  # draining the rest of a malformed answer
        points: list[StreamedPoint] = []
        try:
            for line in block.decode("utf-8").split("\n")[:-1]:
                key, value, timestamp = _parse_point_line(line)
                points.append((key, timestamp, value))
        except UnicodeDecodeError:
            self._stream_error = MalformedAnswerError("answer is not UTF-8")
            return []
        except MalformedAnswerError as exc:
            self._stream_error = exc
        return points

    def _end_stream(self, points: list[StreamedPoint]) -> PointBatch:
        error, self._stream_error = self._stream_error, None
        self._streaming = False
        self._end_answer(cause=error)
        if error is not None:
            raise error
        return PointBatch(points, last=True)

    def request_failed(self) -> None:
        """Give up on the request in flight: the connection becomes BROKEN.

        For a driver whose send or receive failed, timed out or was
        cancelled: the answer may still come, and would be taken for the
        next request's. Does nothing unless a request awaits its answer.
        """
        if self._state is ClientState.AWAITING_ANSWER:
            self._break(_INTERRUPTED)

    def close(self) -> None:
        """Mark the connection CLOSED; later requests are refused. Idempotent."""
        self._state = ClientState.CLOSED
        self._in_flight = None
        self._streaming = False

    def _next_answer(self) -> Answer | NeedData:
        # An HTTP server never sends the blank line that ends an answer, so
        # its answer is told by its start, not waited for.
        if self._parser.starts_with(_HTTP_START):
            self._break(_FOREIGN)
            raise ForeignAnswerError("server answered HTTP")
        try:
            answer = self._parser.next_answer()
        except MalformedAnswerError as exc:
            self._end_answer(cause=exc)
            raise
        if answer is not None:
            self._end_answer()
            return answer
        if self._server_closed:
            self._break(_SERVER_CLOSED)
            raise ServerClosedError("server closed the connection")
        return NEED_DATA

    def _end_answer(self, cause: Exception | None = None) -> None:
        self._in_flight = None
        # One answer per request: whatever else came answers nothing we
        # asked, and would be taken for the next request's answer.
        if self._parser.buffered:
            self._break(_OUT_OF_STEP)
            raise OutOfStepError("server sent more than one answer to a request") from cause
        if self._server_closed:
            self._break(_SERVER_CLOSED)
        else:
            self._state = ClientState.IDLE

    def _break(self, reason: str) -> None:
        self._streaming = False
        self._stream_error = None
        self._state = ClientState.BROKEN
        self._broken_reason = reason
        self._in_flight = None

    def _state_error(self) -> ConnectionStateError:
        if self._state is ClientState.AWAITING_ANSWER:
            return ConnectionStateError("awaiting the answer to another request")
        return ConnectionStateError(self.broken_reason or self._state.value)
