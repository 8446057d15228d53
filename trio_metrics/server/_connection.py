"""Serving one connection: read lines, run commands in batches, write answers."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Generator, Iterable

import attrs
import trio

from ..storage import (
    CopyBudget,
    KeyPages,
    MetricStore,
    NeedRoom,
    Series,
    Store,
    StoreUnavailableError,
)
from ..transport import (
    LINE_TOO_LONG,
    PEER_GONE_ERRORS,
    Authenticator,
    Block,
    Limits,
    Line,
    LineReader,
    ListenerCounters,
    ServerStats,
    ThrottledLogger,
    TlsServer,
    guarded_connection,
    lines_of,
    stream_socket,
)
from ..wire import (
    ALL_KEYS,
    ERROR_ANSWER,
    GET_ANSWER_END,
    GET_ANSWER_START,
    OK_ANSWER,
    Auth,
    Delete,
    Get,
    Keys,
    LineEncoder,
    Ping,
    ProtocolError,
    Put,
    Range,
    Stats,
    encode_deleted_answer,
    encode_key_lines,
    encode_stats_answer,
    iter_point_lines,
    parse_command,
    parse_put_block,
)
from ._answer_cache import AnswerCache

__all__ = ["ConnectionHandler"]

logger = logging.getLogger("trio_metrics.server")

# With an idle timeout, answers are written in pieces of this size, each of
# which the client must take within the timeout.
_TIMED_PIECE = 64 * 1024


class _PeerGone(Exception):
    """The peer reset, vanished or closed: raised only for the stream's own errors,
    so that a failing store is never mistaken for a client that went away."""


class _PeerStalled(Exception):
    """The peer took none of an answer for the whole idle timeout."""


class _Session:
    """One connection's authentication, when the server requires it.

    Counted in ``connections_unauthenticated`` from its start until it
    authenticates or ends; ``login`` is the cancel scope of its deadline.
    """

    __slots__ = ("login", "name", "peer", "stats")

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.name: str | None = None
        self.peer = "unknown"
        self.login: trio.CancelScope | None = None
        stats.connections_unauthenticated += 1

    def authenticated(self, name: str) -> None:
        if self.name is None:
            self.stats.connections_unauthenticated -= 1
            if self.login is not None:
                self.login.deadline = math.inf
        self.name = name

    def end(self) -> None:
        if self.name is None:
            self.stats.connections_unauthenticated -= 1
            self.name = ""  # counted out once


def _peer_address(stream: trio.abc.Stream) -> str:
    sock = stream_socket(stream)
    if sock is None:
        return "local"
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "unknown"


@attrs.define
class ConnectionHandler:
    """Serves the protocol on one stream after another, for :func:`~trio_metrics.serve`.

    Usable on any :class:`trio.abc.Stream` (tests use trio's memory streams).
    """

    store: Store
    stats: ServerStats = attrs.field(factory=ServerStats)
    limits: Limits = attrs.field(factory=Limits)
    #: Encoded answer lines to reuse; only for a store that reports changes.
    answer_cache: AnswerCache | None = None
    warnings: ThrottledLogger = attrs.field(factory=lambda: ThrottledLogger(logger))
    #: More counters for the ``stats`` answer (a durable store's log figures).
    extra_counters: Callable[[], dict[str, int]] | None = None
    #: Bounds the copies of points held by all connections' reads at once;
    #: reads then come from ``reads``, the in-memory store behind ``store``.
    copy_budget: CopyBudget | None = None
    reads: MetricStore | None = None
    #: Speak TLS (each connection's handshake first), or plaintext for ``None``.
    tls: TlsServer | None = None
    #: Require ``auth <token>`` before any other command, or ``None`` for no auth.
    auth: Authenticator | None = None
    _streams: set[trio.abc.Stream] = attrs.field(factory=set, init=False)
    _draining: bool = attrs.field(default=False, init=False)
    _all_closed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def drain(self) -> None:
        """Stop reading: every connection answers what it has read, then closes.

        A socket connection gets end-of-file on its next read (its read
        side is shut down), so it finishes the commands it has already
        read, writes their answers and closes; connections handed over
        later are closed at once. Wait with :meth:`wait_closed`.
        """
        self._draining = True
        for stream in self._streams:
            sock = stream_socket(stream)
            if sock is not None:
                # An OSError means already reset or closed: its handler is ending.
                with contextlib.suppress(OSError):
                    # The plain socket under any TLS: its TLS state stays as it is.
                    socket.socket.shutdown(sock, socket.SHUT_RD)
        if not self._streams:
            self._all_closed.set()

    async def wait_closed(self) -> None:
        """Wait until :meth:`drain` has been called and every connection is closed."""
        await self._all_closed.wait()

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until its peer closes it, then close it.

        Never raises except for cancellation: a lost peer, a limit or an
        unexpected error ends this connection only, and is logged.
        """
        if self._draining:
            await trio.aclose_forcefully(stream)
            return
        session = None
        if self.auth is not None:
            if self.stats.connections_unauthenticated >= self.auth.settings.max_unauthenticated:
                self.stats.connections_refused_unauthenticated += 1
                self.warnings.warning(
                    "max-unauthenticated",
                    "%d connections have not authenticated yet (the limit): closed a new one",
                    self.stats.connections_unauthenticated,
                )
                await trio.aclose_forcefully(stream)
                return
            session = _Session(self.stats)
        try:
            async with guarded_connection(
                stream,
                ListenerCounters(self.stats, ""),
                max_connections=self.limits.max_connections,
                warnings=self.warnings,
                logger=logger,
                what="connection",
                quiet_failures=(StoreUnavailableError,),
                tls=self.tls,
            ) as conversation:
                if conversation is not None:
                    await self._converse_tracked(conversation, session)
        finally:
            if session is not None:
                session.end()

    async def _converse_tracked(self, stream: trio.abc.Stream, session: _Session | None) -> None:
        # Known to drain() while open; the endings that are no failure end here.
        self._streams.add(stream)
        try:
            if session is None:
                await self._converse(stream, None)
            else:
                await self._converse_logging_in(stream, session)
        except _PeerGone as exc:
            logger.debug("connection lost: %r", exc.__cause__)
        except trio.Cancelled:
            # The server is stopping: this connection is closed with it.
            self.stats.connections_closed_at_stop += 1
            raise
        except _PeerStalled:
            self.stats.connections_idle_closed += 1
            logger.debug("closed a connection that took no answer bytes for the idle timeout")
        finally:
            self._streams.discard(stream)
            if self._draining and not self._streams:
                self._all_closed.set()

    async def _converse_logging_in(self, stream: trio.abc.Stream, session: _Session) -> None:
        """Converse, closing the connection unless it authenticates within the auth timeout."""
        assert self.auth is not None
        session.peer = _peer_address(stream)
        with trio.move_on_after(self.auth.settings.auth_timeout) as session.login:
            await self._converse(stream, session)
        if session.login.cancelled_caught:
            self.stats.auth_timeouts += 1
            self.warnings.warning(
                "auth-timeout",
                "closed a connection from %s that did not authenticate in %gs",
                session.peer,
                self.auth.settings.auth_timeout,
            )

    async def _converse(self, stream: trio.abc.Stream, session: _Session | None) -> None:
        limits = self.limits
        reader = LineReader(stream, limits.max_line_length)
        writer = _AnswerWriter(stream, limits)
        idle_timeout = math.inf if limits.idle_timeout is None else limits.idle_timeout
        while True:
            if idle_timeout == math.inf:
                # No cancel scope per read when there is no timeout: on a
                # request-response connection it costs a fifth of the CPU.
                # (And _receive written out: one coroutine less per request.)
                try:
                    block = await reader.receive_block()
                except PEER_GONE_ERRORS as exc:
                    raise _PeerGone from exc
            else:
                with trio.move_on_after(idle_timeout) as idle:
                    block = await self._receive(reader)
                if idle.cancelled_caught:
                    self.stats.connections_idle_closed += 1
                    logger.debug("closed a connection idle for %gs", idle_timeout)
                    return
            if block == []:
                # End of stream: everything complete was answered already;
                # an unfinished last line is dropped as cut off. (A block
                # b"" is one empty line, not the end.)
                return
            await self._run_batch(block, writer, session)

    @staticmethod
    async def _receive(reader: LineReader) -> Block:
        try:
            return await reader.receive_block()
        except PEER_GONE_ERRORS as exc:
            raise _PeerGone from exc

    async def _run_batch(
        self, block: Block, writer: _AnswerWriter, session: _Session | None
    ) -> None:
        """Run the lines of one read and write their answers, in order.

        Consecutive puts reach the store as one batch, before a later
        ``get`` of the batch reads it and before their ``ok``s are written.
        Answers are written as they pass ``max_buffered_answer`` bytes.
        """
        if session is not None and session.name is None:
            await self._run_unauthenticated(lines_of(block), writer, session)
            return
        # parse_put_block turns down a list holding the over-long marker.
        plain_puts = parse_put_block(block)  # type: ignore[arg-type]
        if plain_puts is not None:
            # The usual batch, from one put to thousands: one pass, one
            # store call, one answer string.
            keys, values, timestamps = plain_puts
            try:
                await self.store.put_batch(keys, values, timestamps)
            except StoreUnavailableError as exc:
                writer.add(_refused_puts(self.stats, self.warnings, len(keys), exc))
            else:
                self.stats.puts += len(keys)
                writer.add(OK_ANSWER * len(keys))
            await writer.flush()
            return
        await self._run_lines(lines_of(block), writer, session)

    async def _run_unauthenticated(
        self, lines: list[Line], writer: _AnswerWriter, session: _Session
    ) -> None:
        """Until an ``auth`` succeeds, every command gets the error answer, and runs not."""
        stats = self.stats
        limit = self.limits.max_buffered_answer
        for index, line in enumerate(lines):
            if writer.size >= limit:
                await writer.flush(more_to_come=True)
            if line is LINE_TOO_LONG:
                stats.lines_too_long += 1
                stats.errors += 1
                writer.add(ERROR_ANSWER)
                continue
            try:
                command = parse_command(line)
            except ProtocolError:
                stats.errors += 1
                writer.add(ERROR_ANSWER)
                continue
            if command is None:
                continue
            if not isinstance(command, Auth):
                stats.auth_refused_commands += 1
                stats.errors += 1
                writer.add(ERROR_ANSWER)
                continue
            # The answers so far go out before a failed attempt's delay.
            await writer.flush()
            writer.add(await self._answer_auth(command, session))
            if session.name is not None:
                await self._run_lines(lines[index + 1 :], writer, session)
                return
        await writer.flush()

    async def _answer_auth(self, command: Auth, session: _Session | None) -> bytes:
        """``ok`` for a known token; else (after the failure delay) the error answer.

        A failed ``auth`` on an authenticated connection leaves it authenticated as before.
        """
        stats = self.stats
        if self.auth is None or session is None:
            stats.errors += 1  # no tokens here: as on a server without the word
            return ERROR_ANSWER
        name = await self.auth.authenticate(command.token, session.peer)
        if name is None:
            stats.auth_failures += 1
            stats.errors += 1
            self.warnings.warning(
                "auth-failed", "a connection from %s gave a wrong token", session.peer
            )
            return ERROR_ANSWER
        stats.auth_successes += 1
        session.authenticated(name)
        logger.debug("a connection from %s authenticated as %s", session.peer, name)
        return OK_ANSWER

    async def _run_lines(
        self, lines: list[Line], writer: _AnswerWriter, session: _Session | None = None
    ) -> None:
        stats = self.stats
        limit = self.limits.max_buffered_answer
        puts = _PendingPuts(self.store, writer, stats, self.warnings)
        for line in lines:
            if line is LINE_TOO_LONG:
                await puts.store()
                stats.lines_too_long += 1
                stats.errors += 1
                writer.add(ERROR_ANSWER)
                self.warnings.warning("line-too-long", "a command line was too long")
                continue
            try:
                command = parse_command(line)
            except ProtocolError:
                await puts.store()
                stats.errors += 1
                writer.add(ERROR_ANSWER)
                continue
            if command is None:
                continue
            if isinstance(command, Put):
                puts.add(command)
            else:
                await puts.store()
                answered = writer.checkpoint()
                try:
                    if isinstance(command, Get):
                        stats.gets += 1
                        await self._answer_get(command.key, writer)
                    elif isinstance(command, Stats):
                        stats.stats_requests += 1
                        writer.add(await self._stats_answer())
                    elif isinstance(command, Auth):
                        await writer.flush()
                        writer.add(await self._answer_auth(command, session))
                    else:
                        await self._answer_extension(command, writer)
                except StoreUnavailableError:
                    # A read or delete the store failed ends the connection
                    # (it has no answer); the answers before it go out first.
                    await writer.flush_to(answered)
                    raise
            if writer.size >= limit:
                await puts.store()
                await writer.flush(more_to_come=True)
        await puts.store()
        await writer.flush()

    async def _answer_get(self, key: str, writer: _AnswerWriter) -> None:
        """Encode and write the answer to ``get key``, one key's copy at a time.

        With a copy budget, the copies come from the in-memory store within
        it: when the budget is spent, this waits (holding no copy) until
        another connection hands one back.
        """
        limit = self.limits.max_buffered_answer
        lines_of = self._lines_of
        budget = self.copy_budget
        found: Iterable[Series | NeedRoom]
        if budget is not None and self.reads is not None:
            found = self.reads.iter_series_within(key, budget)
        else:
            found = await self.store.query(key)
        started = False
        items = iter(found)
        try:
            for item in items:
                if isinstance(item, NeedRoom):
                    self.stats.answer_copy_waits += 1
                    await item.budget.wait_for_room(item.nbytes)
                    continue
                if not len(item.timestamps):
                    continue
                if not started:
                    started = True
                    writer.add(GET_ANSWER_START)
                for piece in lines_of(item.key, item.timestamps, item.values):
                    writer.add(piece)
                    if writer.size >= limit:
                        await writer.flush(more_to_come=True)
                del item  # done with this copy before the next one is taken
        finally:
            if isinstance(items, Generator):
                items.close()  # hands back a copy still held (a cancelled write)
        writer.add(GET_ANSWER_END if started else OK_ANSWER)

    async def _answer_extension(
        self, command: Ping | Keys | Range | Delete, writer: _AnswerWriter
    ) -> None:
        """Answer ``ping``, ``keys``, ``range`` or ``delete`` (a store failure propagates)."""
        self._count_extension(command)
        if isinstance(command, Ping):
            writer.add(OK_ANSWER)
            return
        if isinstance(command, Range) and command.pattern == ALL_KEYS:
            # As in `get *`: every key, so `get '*' --from ... --until ...`
            # reads what `get '*'` reads, in a range.
            pages = KeyPages(self.store, "", _every_key)
        else:
            glob = command.glob()
            pages = KeyPages(
                self.store, glob.prefix, glob.matches, exact=glob.prefix == glob.pattern
            )
        if isinstance(command, Keys):
            await self._answer_keys(pages, writer)
        elif isinstance(command, Range):
            await self._answer_range(pages, command.start, command.end, writer)
        else:
            removed = 0
            while (keys := await pages.next()) is not None:
                # One delete (one log record) per page of matches.
                if keys:
                    removed += await self.store.delete(keys)
            writer.add(encode_deleted_answer(removed, int(time.time())))

    def _count_extension(self, command: Ping | Keys | Range | Delete) -> None:
        stats = self.stats
        if isinstance(command, Ping):
            stats.pings += 1
        elif isinstance(command, Keys):
            stats.keys_requests += 1
        elif isinstance(command, Range):
            stats.ranges += 1
        else:
            stats.deletes += 1

    async def _answer_keys(self, pages: KeyPages, writer: _AnswerWriter) -> None:
        """``ok``, a ``<key> 0.0 0`` line per matching key, a blank line; written as it grows."""
        started = False
        while (keys := await pages.next()) is not None:
            if keys and not started:
                started = True
                writer.add(GET_ANSWER_START)
            writer.add(encode_key_lines(keys))
            if writer.size >= self.limits.max_buffered_answer:
                await writer.flush(more_to_come=True)
        writer.add(GET_ANSWER_END if started else OK_ANSWER)

    async def _answer_range(
        self, pages: KeyPages, start: int, end: int, writer: _AnswerWriter
    ) -> None:
        """The matching keys' points in ``start..end``, in the ``get`` format, key by key.

        Only the range of one key is copied at a time; the answer is
        written out whenever it passes the connection's buffer bound.
        """
        started = False
        limit = self.limits.max_buffered_answer
        while (keys := await pages.next()) is not None:
            for key in keys:
                for item in await self.store.query_range(key, start, end):
                    if not started:
                        started = True
                        writer.add(GET_ANSWER_START)
                    for piece in iter_point_lines(item.key, item.timestamps, item.values):
                        writer.add(piece)
                        if writer.size >= limit:
                            await writer.flush(more_to_come=True)
        writer.add(GET_ANSWER_END if started else OK_ANSWER)

    @property
    def _lines_of(self) -> LineEncoder:
        cache = self.answer_cache
        return iter_point_lines if cache is None else cache.lines_of

    async def _stats_answer(self) -> bytes:
        keys, points = await self.store.counts()
        counters = self.stats.as_dict()
        counters["keys"] = keys
        counters["points"] = points
        if self.extra_counters is not None:
            counters.update(self.extra_counters())
        return encode_stats_answer(counters, int(time.time()))


def _every_key(key: str) -> bool:
    return True


def _refused_puts(
    stats: ServerStats, warnings: ThrottledLogger, count: int, error: StoreUnavailableError
) -> bytes:
    """The answers to ``count`` puts the store refused: the error answer each,
    counted, and a rate-limited warning."""
    stats.puts_refused += count
    stats.errors += count
    warnings.warning("store", "refused %d puts (the error answer to each): %s", count, error)
    return ERROR_ANSWER * count


class _PendingPuts:
    """Puts read but not yet stored: stored, and answered, before any answer after them.

    Their ``ok``s are written only once the store took them; a batch the
    store refuses (:exc:`StoreUnavailableError`) gets the error answer for
    each of its puts instead, so no put is acknowledged that was not kept.
    """

    def __init__(
        self, store: Store, writer: _AnswerWriter, stats: ServerStats, warnings: ThrottledLogger
    ) -> None:
        self._store = store
        self._writer = writer
        self._stats = stats
        self._warnings = warnings
        #: Why the store refused a batch of this read: the later puts of the
        #: read are refused at once, rather than each waiting for the store
        #: to fail again (a Redis timeout per group of puts).
        self._refused: StoreUnavailableError | None = None
        self._keys: list[str] = []
        self._values: list[float] = []
        self._timestamps: list[int] = []

    def add(self, put: Put) -> None:
        self._keys.append(put.key)
        self._values.append(put.value)
        self._timestamps.append(put.timestamp)

    async def store(self) -> None:
        if not self._keys:
            return
        count = len(self._keys)
        try:
            if self._refused is not None:
                raise self._refused
            await self._store.put_batch(self._keys, self._values, self._timestamps)
        except StoreUnavailableError as exc:
            self._refused = exc
            self._writer.add(_refused_puts(self._stats, self._warnings, count, exc))
        else:
            self._stats.puts += count
            self._writer.add(OK_ANSWER * count)
        self._keys, self._values, self._timestamps = [], [], []


class _AnswerWriter:
    """Collects answer bytes for one connection and writes them out in one go."""

    def __init__(self, stream: trio.abc.SendStream, limits: Limits) -> None:
        self._stream = stream
        self._pieces: list[bytes] = []
        self.size = 0
        self._flushes = 0
        self._idle_timeout = math.inf if limits.idle_timeout is None else limits.idle_timeout

    def add(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self.size += len(piece)

    def checkpoint(self) -> tuple[int, int]:
        """Where the answers collected so far end, for :meth:`flush_to`."""
        return self._flushes, len(self._pieces)

    async def flush_to(self, checkpoint: tuple[int, int]) -> None:
        """Write the answers collected up to ``checkpoint``, dropping any after it.

        If part of a later answer went out already (a long answer is written
        as it grows), everything collected is written: it is cut short anyway.
        """
        flushes, pieces = checkpoint
        if flushes == self._flushes:
            del self._pieces[pieces:]
        await self.flush()

    async def flush(self, *, more_to_come: bool = False) -> None:
        """Write everything collected; blocks while the client does not read.

        ``more_to_come``: the batch is not done, so yield to other tasks
        after writing (the stream's ``send_all`` need not, and a huge answer
        to a fast reader must not hold the run loop until it is all out).

        Raises :exc:`_PeerStalled` if the client took no piece of it within
        the idle timeout.
        """
        if not self._pieces:
            return
        data = b"".join(self._pieces) if len(self._pieces) > 1 else self._pieces[0]
        self._pieces = []
        self.size = 0
        self._flushes += 1
        try:
            if self._idle_timeout == math.inf:
                await self._stream.send_all(data)
            else:
                await self._send_in_time(data)
        except PEER_GONE_ERRORS as exc:
            raise _PeerGone from exc
        if more_to_come:
            await trio.lowlevel.checkpoint()

    async def _send_in_time(self, data: bytes) -> None:
        # With an idle timeout, each piece must be taken within it: a slow
        # reader that keeps taking data is served, a stalled one is not.
        view = memoryview(data)
        for start in range(0, len(view), _TIMED_PIECE):
            with trio.move_on_after(self._idle_timeout):
                await self._stream.send_all(view[start : start + _TIMED_PIECE])
                continue
            raise _PeerStalled
