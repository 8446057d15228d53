"""Graphite plaintext ingest: ``path value timestamp`` lines into the same store.

Senders that speak carbon's plaintext protocol (collectd's ``write_graphite``,
Telegraf's ``outputs.graphite``, statsd's graphite backend, ``nc``) can feed
the store directly. :func:`parse_graphite_line` and
:func:`parse_graphite_lines` are the sans-IO rules (bytes in, points out);
:func:`serve_graphite` is the listener. It never writes to a connection:
the plaintext protocol has no answers, so a bad line is counted in
:class:`~trio_metrics.ServerStats`, logged (rate-limited) and skipped.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Final, NoReturn

import attrs
import trio

from ..storage import Store, StoreUnavailableError
from ..transport import (
    LINE_TOO_LONG,
    PEER_GONE_ERRORS,
    Block,
    Limits,
    Line,
    LineReader,
    ListenerCounters,
    ServerStats,
    ThrottledLogger,
    TlsServer,
    accept_forever,
    guarded_connection,
    stream_socket,
    take_listening_sockets,
)
from ..wire import (
    MAX_TIMESTAMP,
    MAX_TIMESTAMP_DIGITS,
    SPACES_OR_TABS,
    ProtocolError,
    is_valid_key,
    parse_value,
    plain_line_tokens,
    plain_point_columns,
)

__all__ = [
    "NOW",
    "GraphiteBatch",
    "GraphiteHandler",
    "GraphiteLineError",
    "GraphiteListenError",
    "GraphitePoint",
    "NotANumber",
    "parse_graphite_line",
    "parse_graphite_lines",
    "parse_graphite_timestamp",
    "serve_graphite",
]

logger = logging.getLogger("trio_metrics.graphite")

#: The timestamp that means "now", as in carbon.
NOW: Final = -1
#: How much of a bad line goes into the log.
LOGGED_LINE_BYTES: Final = 100

# A decimal number: what senders write for a timestamp. Carbon takes
# anything Python's float() takes; this is that minus "nan", "inf",
# underscores, non-ASCII digits and surrounding whitespace.
_TIMESTAMP: Final = re.compile(
    rb"(?P<sign>[+-]?)(?:(?P<whole>[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)(?P<exponent>[eE][+-]?[0-9]+)?"
)


class GraphiteListenError(OSError):
    """The Graphite listener's address could not be bound (``errno`` as the cause's)."""


class GraphiteLineError(ValueError):
    """A line that is not ``path value [timestamp]``; the message says why."""


class NotANumber(GraphiteLineError):
    """A well-formed line whose value is ``nan``.

    Carbon drops such points without a word, and collectd sends one for
    the first reading of every counter, so they are counted but not logged.
    """


@attrs.frozen
class GraphitePoint:
    """One point of a Graphite line."""

    key: str
    value: float
    timestamp: int


@attrs.define
class GraphiteBatch:
    """What the lines of one read hold: points as columns, and the rest counted."""

    keys: list[str] = attrs.Factory(list)
    values: list[float] = attrs.Factory(list)
    timestamps: list[int] = attrs.Factory(list)
    #: Refused lines as ``(line, reason)``; an over-long line as ``LINE_TOO_LONG``.
    bad: list[tuple[Line, str]] = attrs.Factory(list)
    lines_too_long: int = 0
    nan_values: int = 0


def _split_fields(line: bytes) -> list[bytes]:
    # The main protocol's rule: leading and trailing whitespace is ignored,
    # fields are separated by runs of spaces and tabs. bytes.split() would
    # also split on "\r", "\v" and "\f", so lines holding one are split the
    # strict way.
    fields = line.split()
    if len(fields) > 1 and (b"\r" in line or b"\x0b" in line or b"\x0c" in line):
        fields = SPACES_OR_TABS.split(line.strip())
    return fields


def parse_graphite_timestamp(token: bytes, now: int) -> int:
    """Parse a Graphite timestamp; ``-1`` (and what truncates to it) means ``now``.

    Takes a decimal number with an optional sign, fraction and exponent, and
    truncates it toward zero as carbon does (``1501864247.5`` is
    ``1501864247``, ``-1.5`` is ``-1``). The result must be ``-1`` or lie in
    ``0..2**63-1``. Raises :class:`GraphiteLineError` otherwise.
    """
    if token.isdigit() and len(token) < MAX_TIMESTAMP_DIGITS:
        return int(token)  # what senders write, always in range: no pattern needed
    match = _TIMESTAMP.fullmatch(token)
    if match is None:
        raise GraphiteLineError(f"timestamp {token[:40]!r} is not a number")
    if match["exponent"] is None:
        # Exact, unlike carbon's float(), which rounds a long fraction up.
        whole = (match["whole"] or b"0").lstrip(b"0")
        if len(whole) > MAX_TIMESTAMP_DIGITS:
            raise GraphiteLineError(f"timestamp {token[:40]!r} is out of range")
        timestamp = int(whole or b"0")
        if match["sign"] == b"-":
            timestamp = -timestamp
    else:
        number = float(token)
        if not math.isfinite(number):
            raise GraphiteLineError(f"timestamp {token[:40]!r} is out of range")
        timestamp = int(number)
    if timestamp == NOW:
        return now
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise GraphiteLineError(f"timestamp {token[:40]!r} is out of range")
    return timestamp


def parse_graphite_line(line: bytes, now: int) -> GraphitePoint | None:
    """Parse one line (without its ``\\n``; a trailing ``\\r`` is ignored).

    ``path value timestamp`` or ``path value``: the path must be a valid key
    (:func:`~trio_metrics.wire.is_valid_key`, UTF-8), the value a finite
    number by the main protocol's rules
    (:func:`~trio_metrics.wire.parse_value`), and the timestamp what
    :func:`parse_graphite_timestamp` takes; a missing one means ``now``.
    Returns ``None`` for a blank line. Raises :class:`NotANumber` for a
    ``nan`` value and :class:`GraphiteLineError` for anything else wrong.
    """
    fields = _split_fields(line)
    if not fields:
        return None
    if len(fields) not in (2, 3):
        raise GraphiteLineError(f"expected 'path value timestamp', got {len(fields)} fields")
    try:
        key = fields[0].decode("utf-8")
    except UnicodeDecodeError:
        raise GraphiteLineError("path is not UTF-8") from None
    if not is_valid_key(key):
        raise GraphiteLineError(f"invalid path {key[:40]!r}")
    try:
        value = parse_value(fields[1])
    except ProtocolError:
        if fields[1].lstrip(b"+-").lower() == b"nan":
            raise NotANumber("value is nan") from None
        raise GraphiteLineError(f"value {fields[1][:40]!r} is not a finite number") from None
    timestamp = now if len(fields) == 2 else parse_graphite_timestamp(fields[2], now)
    return GraphitePoint(key, value, timestamp)


def parse_graphite_lines(lines: bytes | Iterable[Line], now: int) -> GraphiteBatch:
    """Parse the lines of one read, in order, into one :class:`GraphiteBatch`.

    ``lines`` is a list of lines or a block: the lines joined by ``\\n`` as
    one ``bytes``, as a line reader hands out the usual read. Never raises:
    every line is a point, blank, or counted in the batch. A read of nothing
    but plain lines (what senders write: single spaces, an ASCII path, a
    whole timestamp) is parsed in one pass over the block, with no object
    per line; anything else goes line by line.
    """
    plain = _parse_plain_block(lines)
    if plain is not None:
        keys, values, timestamps = plain
        return GraphiteBatch(keys, values, timestamps)
    if isinstance(lines, bytes):
        lines = lines.split(b"\n")
    batch = GraphiteBatch()
    keys, values, timestamps = batch.keys, batch.values, batch.timestamps
    for line in lines:
        if line is LINE_TOO_LONG:
            batch.lines_too_long += 1
            batch.bad.append((line, "line too long"))
            continue
        try:
            point = parse_graphite_line(line, now)
        except NotANumber:
            batch.nan_values += 1
            continue
        except GraphiteLineError as exc:
            batch.bad.append((line, str(exc)))
            continue
        if point is not None:
            keys.append(point.key)
            values.append(point.value)
            timestamps.append(point.timestamp)
    return batch


def _parse_plain_block(
    lines: bytes | Iterable[Line],
) -> tuple[list[str], list[float], list[int]] | None:
    """The columns of a read of plain lines, or ``None`` for the line-by-line path.

    Plain is what nearly every sender writes: ``path value timestamp``,
    single spaces, a printable ASCII path, a timestamp of at most 19
    digits. It accepts exactly what :func:`parse_graphite_line` would turn
    into points, and nothing it would refuse or drop (a ``nan`` goes the
    slow way, where it is counted).
    """
    if isinstance(lines, bytes):
        block = lines
    else:
        try:
            block = b"\n".join(lines)  # type: ignore[arg-type]
        except TypeError:  # the marker of an over-long line
            return None
    # Three tokens per line: the flat list is sliced into columns.
    tokens = plain_line_tokens(block, 3)
    if tokens is None:
        return None
    return plain_point_columns(tokens[0::3], tokens[1::3], tokens[2::3])


def _shorten(line: bytes) -> str:
    if len(line) <= LOGGED_LINE_BYTES:
        return repr(line)
    return f"{line[:LOGGED_LINE_BYTES]!r}... ({len(line)} bytes)"


def _peer_name(stream: trio.abc.Stream) -> str:
    sock = stream_socket(stream)
    if sock is not None:
        try:
            host, port = sock.getpeername()[:2]
        except OSError:
            return "a vanished peer"
        return f"{host}:{port}"
    return type(stream).__name__


async def _receive(reader: LineReader) -> Block:
    # Only the stream's own errors mean the peer went away; an error from
    # the store is a failure, never mistaken for a closed connection.
    try:
        return await reader.receive_block()
    except PEER_GONE_ERRORS as exc:
        logger.debug("Graphite connection lost: %r", exc)
        return []


@attrs.define
class GraphiteHandler:
    """Reads Graphite lines from one stream after another, into ``store``.

    Usable on any :class:`trio.abc.Stream`; ``clock`` gives "now" in unix
    seconds for points without a timestamp.
    """

    store: Store
    stats: ServerStats = attrs.field(factory=ServerStats)
    limits: Limits = attrs.field(factory=Limits)
    clock: Callable[[], float] = time.time
    warnings: ThrottledLogger = attrs.field(factory=lambda: ThrottledLogger(logger))
    #: Speak TLS (each connection's handshake first), or plaintext for ``None``.
    tls: TlsServer | None = None

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Read points from one connection until its peer closes it, then close it.

        Never raises except for cancellation (which closes the connection):
        a lost peer, the idle timeout, or a failing store ends this
        connection only, and is logged.
        """
        async with guarded_connection(
            stream,
            ListenerCounters(self.stats, "graphite_"),
            max_connections=self.limits.max_connections,
            warnings=self.warnings,
            logger=logger,
            what="Graphite connection",
            quiet_failures=(StoreUnavailableError,),
            tls=self.tls,
        ) as conversation:
            if conversation is not None:
                await self._read_points(conversation)

    async def _read_points(self, stream: trio.abc.Stream) -> None:
        reader = LineReader(stream, self.limits.max_line_length)
        timeout = self.limits.idle_timeout
        peer = _peer_name(stream)
        while True:
            if timeout is None:
                lines = await _receive(reader)
            else:
                with trio.move_on_after(timeout) as idle:
                    lines = await _receive(reader)
                if idle.cancelled_caught:
                    self.stats.graphite_connections_idle_closed += 1
                    logger.debug("closed a Graphite connection idle for %gs", timeout)
                    return
            if lines == []:  # the end of the stream (b"" is an empty line)
                break
            await self._store_lines(lines, peer)
        cut_off = reader.pending
        if cut_off:
            # As in carbon, a line without its newline is not stored: the
            # end of "palm.cpu 1 1501864247" could be missing.
            self._bad_line(peer, cut_off, "cut off by the end of the connection")

    async def _store_lines(self, lines: Block, peer: str) -> None:
        batch = parse_graphite_lines(lines, int(self.clock()))
        if batch.keys:
            # One call per read: a durable store pays one log write per batch.
            await self.store.put_batch(batch.keys, batch.values, batch.timestamps)
        stats = self.stats
        stats.graphite_points += len(batch.keys)
        stats.graphite_nan_values += batch.nan_values
        stats.graphite_lines_too_long += batch.lines_too_long
        for line, reason in batch.bad:
            if line is LINE_TOO_LONG:
                stats.graphite_bad_lines += 1
                self.warnings.warning(
                    "graphite-line-too-long",
                    "Graphite line from %s longer than %d bytes: skipped",
                    peer,
                    self.limits.max_line_length,
                )
            else:
                self._bad_line(peer, line, reason)

    def _bad_line(self, peer: str, line: bytes, reason: str) -> None:
        self.stats.graphite_bad_lines += 1
        self.warnings.warning(
            "graphite-bad-line", "bad Graphite line from %s (%s): %s", peer, reason, _shorten(line)
        )


async def serve_graphite(
    host: str | None,
    port: int,
    *,
    store: Store,
    stats: ServerStats,
    limits: Limits,
    tls: TlsServer | None = None,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Take Graphite plaintext lines on ``host:port`` into ``store`` until cancelled.

    Start it with ``addresses = await nursery.start(serve_graphite, ...)``:
    it reports every address it listens on as ``(host, port)`` (``port=0``
    picks a free port). Lines are parsed by :func:`parse_graphite_line`;
    the good lines of each read reach the store in one ``put_batch`` call.
    Nothing is ever written back. ``limits`` apply per connection as for
    the main protocol, with ``max_connections`` counted for Graphite
    connections alone. A connection that fails is closed and logged and
    never stops the listener; cancelling closes the listener and every
    connection. Raises :exc:`GraphiteListenError` (an :exc:`OSError`) if
    the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"Graphite port {port} is outside 0..65535")
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        # Its own type, so that a caller running both listeners can tell
        # which port failed.
        raise GraphiteListenError(exc.errno, exc.strerror or str(exc)) from exc
    sockets = take_listening_sockets(listeners)
    addresses: list[tuple[str, int]] = [sock.getsockname()[:2] for sock in sockets]
    handler = GraphiteHandler(store, stats, limits, tls=tls)
    logger.debug(
        "Graphite plaintext on %s port %d",
        ", ".join(address for address, _ in addresses),
        addresses[0][1],
    )
    task_status.started(addresses)
    await accept_forever(sockets, handler.handle)
