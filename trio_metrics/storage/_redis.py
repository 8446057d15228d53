"""Points in Redis (a cluster or one server), so that several servers share them.

The data model (docs/redis.md):

- each key's points are hashes ``ts:{<key>}:<bucket>``, one per
  :data:`BUCKET_SECONDS` window: field = the timestamp in decimal, value =
  ``repr`` of the float (which reads back exactly). 128 fields stay within
  Redis' compact listpack encoding at one point a second;
- ``buckets:{<key>}``, a sorted set of the key's bucket numbers (scored by
  themselves), tells a read which hashes to fetch;
- the key registry, :data:`REGISTRY_SHARDS` sorted sets ``keys:{r<n>}``
  (a key goes to shard ``crc32(key) % 16``), holds every key scored by a
  cluster-wide sequence (``INCRBY`` on ``keyseq:{r0}``, taken when a server
  first sees a key, added with ``ZADD NX`` so that the first score stays):
  ``get *`` lists keys by that score, so every server answers it alike.

The ``{...}`` hash tag puts all of a key's hashes and its bucket index in one
slot. In the key's part of a Redis name, ``%``, ``{`` and ``}`` are written
``%25``, ``%7B`` and ``%7D``, so that the tag is always the whole key.

With retention rules, each bucket hash a put writes gets an ``EXPIREAT`` at
the end of its window plus its key's longest span, so that Redis itself
deletes it once its newest possible point is that old (no downsampling:
points stay at full precision until then).

Every Redis operation is bounded by ``timeout`` seconds in all, retries
included; one that fails raises :exc:`StoreUnavailableError`: the server
then answers each of the batch's puts with the error answer (none is
acknowledged), or ends the connection of a read that failed.
"""

from __future__ import annotations

import heapq
import logging
import math
import secrets
import time
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs
import trio

from ._retention import RetentionRules
from ._store import Series, StoreUnavailableError

if TYPE_CHECKING:
    import coredis

__all__ = [
    "BUCKET_SECONDS",
    "REGISTRY_SHARDS",
    "RedisFigures",
    "RedisStore",
    "bucket_expiry",
    "bucket_hash_name",
    "bucket_index_name",
    "escape_key",
    "open_redis_store",
    "registry_name",
    "registry_shard",
]

logger = logging.getLogger("trio_metrics.storage.redis")

#: Seconds of one hash: 128 points at one a second stay listpack-encoded.
BUCKET_SECONDS: Final = 128
#: Sorted sets the key registry is spread over (slots, so masters).
REGISTRY_SHARDS: Final = 16
#: The counter that orders keys by when they were first stored.
SEQUENCE_KEY: Final = "keyseq:{r0}"
#: A token replaced by every delete (and gone after a flush), so that every
#: server forgets what it knew registered and indexed.
DELETIONS_KEY: Final = "deletions:{r0}"
#: The number of points in the store, kept by every server's puts and deletes.
POINTS_KEY: Final = "points:{r0}"
#: Commands per pipeline when reading many hashes (bounds one answer's size).
_READ_PIPELINE: Final = 2000
#: Waits between attempts of a failing operation (then the last one repeats).
_BACKOFF: Final = (0.05, 0.1, 0.2, 0.4, 0.8)
#: A bucket this close to its expiry gets its EXPIREAT at every write: a
#: server whose clock lags Redis' by up to this much may write into a bucket
#: Redis has just deleted, and must not leave the new hash without one.
_EXPIRY_RESEND_SECONDS: Final = 3600
#: Under retention rules a key's bucket index is trimmed when a batch opens a
#: bucket in another group of this many than the key's newest: once every
#: 8 windows (17 min) in a steady stream, so an index holds at most about
#: 8 expired buckets besides the live ones.
_TRIM_EVERY_BUCKETS: Final = 8
#: Seconds between two warnings of one kind.
_WARN_INTERVAL: Final = 10.0

_T = TypeVar("_T")


class _QuietClientLog(logging.Filter):
    """Rate-limits the client library's own error records, without their tracebacks.

    The store logs each failed try itself (rate-limited); coredis also logs
    an error with a traceback of the whole cancelled task group when a
    deadline cuts off a connection it is opening: about 130 lines, once per
    pooled connection, while Redis is down.
    """

    def __init__(self, interval: float = _WARN_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = str(record.msg)
        now = time.monotonic()
        last = self._last.get(message)
        if last is not None and now - last < self._interval:
            return False
        self._last[message] = now
        if record.exc_info is not None:
            kind = record.exc_info[0]
            record.msg = f"{message} ({kind.__name__ if kind else 'error'}; traceback left out)"
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_client_log() -> None:
    """Install :class:`_QuietClientLog` on coredis' logger, once."""
    client_logger = logging.getLogger("coredis")
    if not any(isinstance(f, _QuietClientLog) for f in client_logger.filters):
        client_logger.addFilter(_QuietClientLog())


def escape_key(key: str) -> str:
    """``key`` as it appears inside a Redis name's hash tag (no ``{`` or ``}``)."""
    return key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def bucket_hash_name(key: str, bucket: int) -> str:
    """The hash holding ``key``'s points of one bucket."""
    return f"ts:{{{escape_key(key)}}}:{bucket}"


def bucket_index_name(key: str) -> str:
    """The sorted set of ``key``'s bucket numbers."""
    return f"buckets:{{{escape_key(key)}}}"


def bucket_expiry(bucket: int, longest: int) -> int:
    """The unix time at which a bucket's hash expires under a key's longest
    span: when the newest timestamp the bucket can hold is ``longest`` old."""
    return (bucket + 1) * BUCKET_SECONDS + longest


def registry_shard(key: str) -> int:
    """The registry shard that lists ``key``."""
    return zlib.crc32(key.encode()) % REGISTRY_SHARDS


def registry_name(shard: int) -> str:
    """The sorted set of registry shard ``shard``."""
    return f"keys:{{r{shard}}}"


@attrs.define
class RedisFigures:
    """What the store did with Redis, for ``stats`` and ``/metrics``."""

    round_trips: int = 0
    pipelines: int = 0
    pipeline_commands: int = 0
    pipeline_commands_max: int = 0
    errors: int = 0
    timeouts: int = 0
    retries: int = 0
    failures: int = 0
    wait_shortfalls: int = 0
    registry_reads: int = 0
    #: A batch's writes that a master redirected (``MOVED``, ``ASK``), sent
    #: again through the client's pipeline (whose own further redirections,
    #: and those of reads, the client follows uncounted).
    redirects: int = 0

    def pipeline(self, commands: int, nodes: int = 1) -> None:
        """Count one pipeline of ``commands`` commands, sent to ``nodes`` masters at once."""
        self.round_trips += nodes
        self.pipelines += 1
        self.pipeline_commands += commands
        self.pipeline_commands_max = max(self.pipeline_commands_max, commands)

    def as_dict(self) -> dict[str, int]:
        """The figures, each named ``redis_<figure>``."""
        return {f"redis_{name}": value for name, value in attrs.asdict(self).items()}


@attrs.frozen
class _Command:
    """One recorded pipeline command: a client method, its arguments, and the
    Redis key it goes to."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def routing(self) -> str:
        first = self.args[0]
        return str(first[0] if isinstance(first, list) else first)

    def apply(self, pipe: Any) -> None:
        getattr(pipe, self.method)(*self.args, **self.kwargs)


@attrs.frozen
class _Wired:
    """A command as a connection queues it (what its batch request reads)."""

    name: bytes
    serialized_arguments: tuple[Any, ...]
    #: The connection's own setting (bytes back).
    decode: None = None


def _wire_command(command: _Command) -> _Wired | None:
    """``command`` as the name and arguments Redis takes, for the writes of a
    batch; None for any other (sent through the client's pipeline)."""
    method, args, kwargs = command.method, command.args, command.kwargs
    if method == "hset":
        name, fields = args
        flat: list[Any] = [name]
        for field, value in fields.items():
            flat.append(field)
            flat.append(value)
        return _Wired(b"HSET", tuple(flat))
    if method == "zadd":
        name, members = args
        flat = [name]
        if kwargs:
            if kwargs != {"condition": _nx()}:
                return None
            flat.append(b"NX")
        for member, score in members.items():
            flat.append(score)
            flat.append(member)
        return _Wired(b"ZADD", tuple(flat))
    if kwargs:
        if method == "set" and kwargs == {"condition": _nx()}:
            return _Wired(b"SET", (*args, b"NX"))
        return None
    if method == "zremrangebyscore":
        name, low, high = args
        return _Wired(b"ZREMRANGEBYSCORE", (name, b"-inf" if low == -math.inf else low, high))
    simple = _SIMPLE_WRITES.get(method)
    return None if simple is None else _Wired(simple, args)


_SIMPLE_WRITES: Final = {"expireat": b"EXPIREAT", "incrby": b"INCRBY", "get": b"GET"}


def _nx() -> Any:
    from coredis import PureToken

    return PureToken.NX


class _Recorder:
    """Stands for a pipeline while it is filled: records each command, to be
    sent to its master's pipeline."""

    def __init__(self) -> None:
        self.commands: list[_Command] = []

    def __getattr__(self, method: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.commands.append(_Command(method, args, kwargs))

        return record


class ReplicasShortError(Exception):
    """Fewer replicas than asked acknowledged a batch's writes in time."""


class RedisStore:
    """A :class:`~trio_metrics.storage.Store` over Redis Cluster (or one Redis).

    ``wait_replicas``: after a batch's writes, ``WAIT`` until that many
    replicas of every master written to have them (at most ``timeout``);
    fewer is a failed put. The registry is re-read on every ``get *``,
    :meth:`list_keys` and first page of :meth:`keys_with_prefix`.

    ``retention``: a key with a policy gets its bucket hashes an ``EXPIREAT``
    at :func:`bucket_expiry` of its longest span (Redis deletes them by its
    own clock), and a put older than that span by ``clock`` is dropped and
    counted in :attr:`expired_points`, as the memory store does. Coarser
    archives are not kept: points stay at full precision until they expire.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes] | coredis.RedisCluster[bytes],
        *,
        wait_replicas: int = 0,
        timeout: float = 5.0,
        retention: RetentionRules | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._cluster = hasattr(client.connection_pool, "cluster_layout")
        self._wait_replicas = wait_replicas
        self._timeout = timeout
        self._rules = None if retention is None or retention.keeps_everything else retention
        self._clock = clock
        # No point newer than now minus this can be too old for any key.
        self._shortest_span = (
            min(
                [rule.retention.longest for rule in self._rules.schemas]
                + ([self._rules.default.longest] if self._rules.default else []),
                default=0,
            )
            if self._rules is not None
            else 0
        )
        # Each key's longest span (None: kept for ever), so that a batch
        # searches the rules' patterns once per key, not once per point.
        self._longest: dict[str, int | None] = {}
        #: Puts dropped because they were older than their key's longest span.
        self.expired_points = 0
        self.figures = RedisFigures()
        # kind -> when it was last logged: a failing cluster, hit by every
        # batch, must not flood the log (storage may not use transport's logger).
        self._last_warned: dict[str, float] = {}
        # Keys this server knows to be in the registry (no INCRBY for them).
        self._known: set[str] = set()
        # Each key's newest bucket this server put in its bucket index: a batch
        # within it sends no ZADD (a third of the commands of a steady stream).
        self._indexed: dict[str, int] = {}
        # Under retention rules, each key's newest bucket this server gave an
        # EXPIREAT: a batch within it sends none (half the commands of a
        # steady stream), unless the bucket is near its expiry (below).
        self._expiring: dict[str, int] = {}
        # Points this server added that POINTS_KEY does not count yet.
        self._pending_points = 0
        # The deletion token (DELETIONS_KEY) when the two were last checked.
        self._epoch: bytes | None = None
        # The registry as last read, sorted, for pages of keys_with_prefix.
        self._sorted: list[str] = []

    def figures_as_dict(self) -> dict[str, int]:
        """The Redis figures, and ``points_expired`` when there are retention rules."""
        figures = self.figures.as_dict()
        if self._rules is not None:
            figures["points_expired"] = self.expired_points
        return figures

    def _longest_span(self, key: str) -> int | None:
        """Seconds ``key`` keeps its points, or None for ever."""
        try:
            return self._longest[key]
        except KeyError:
            assert self._rules is not None
            policy = self._rules.policy_for(key)
            longest = None if policy is None else policy.retention.longest
            self._longest[key] = longest
            return longest

    def _admit(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> tuple[Sequence[str], Sequence[float], Sequence[int]]:
        """The points not older than their key's longest span by the clock; the
        others are counted in :attr:`expired_points`. (A put past its span
        would otherwise live until its whole bucket expires.)"""
        now = int(self._clock())
        if timestamps and min(timestamps) >= now - self._shortest_span:
            return keys, values, timestamps  # none can be too old
        kept_keys: list[str] = []
        kept_values: list[float] = []
        kept_stamps: list[int] = []
        for key, value, timestamp in zip(keys, values, timestamps, strict=True):
            longest = self._longest_span(key)
            if longest is not None and timestamp < now - longest:
                self.expired_points += 1
                continue
            kept_keys.append(key)
            kept_values.append(value)
            kept_stamps.append(timestamp)
        return kept_keys, kept_values, kept_stamps

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """Log a warning of ``kind`` at most every 10 s."""
        now = trio.current_time()
        if now - self._last_warned.get(kind, -math.inf) >= _WARN_INTERVAL:
            self._last_warned[kind] = now
            logger.warning(message, *args)

    # -- retries ---------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt`` until it succeeds, for at most ``timeout`` seconds in all."""
        from coredis.exceptions import RedisError

        deadline = trio.current_time() + self._timeout
        tries = 0
        while True:
            last: BaseException | None = None
            with trio.move_on_at(deadline) as scope:
                try:
                    return await attempt()
                except (RedisError, OSError, TimeoutError, ReplicasShortError) as exc:
                    last = exc
            self.figures.errors += 1
            # The client library may turn the deadline's cancellation into an
            # error of its own (a connection being opened): past the deadline,
            # any failure is the timeout.
            if scope.cancelled_caught or trio.current_time() >= deadline:
                self.figures.timeouts += 1
                break
            if isinstance(last, ReplicasShortError):
                # The writes are in: another try would only wait again.
                break
            self._report(last)
            pause = _BACKOFF[min(tries, len(_BACKOFF) - 1)]
            if trio.current_time() + pause >= deadline:
                break
            self._warn(
                "redis", "Redis %s failed (%s: %s); retrying", what, type(last).__name__, last
            )
            tries += 1
            self.figures.retries += 1
            await trio.sleep(pause)
        self.figures.failures += 1
        reason = "no answer in time" if last is None else f"{type(last).__name__}: {last}"
        self._warn("redis-failed", "Redis %s failed: %s", what, reason)
        raise StoreUnavailableError(
            f"Redis {what} failed within {self._timeout:g}s ({tries} retries): {reason}"
        )

    def _report(self, error: BaseException | None) -> None:
        """Tell the cluster client of a failure, so that it re-reads the slots'
        masters (after a failover) before the next try."""
        layout = getattr(self._client.connection_pool, "cluster_layout", None)
        if layout is not None and isinstance(error, Exception):
            # The client's own retry policy is off (ours is the one budget),
            # and it reports only the errors its policy saw.
            layout.report_errors(None, error)

    async def _pipeline(self, fill: Callable[[Any], None]) -> tuple[Any, ...]:
        """The commands ``fill`` gives, as one non-transactional pipeline per
        master, sent to all masters at once; their results, in order.

        (The client's own cluster pipeline visits the masters one after the
        other: a batch over three masters would wait three round trips.)
        """
        recorder = _Recorder()
        fill(recorder)
        commands = recorder.commands
        groups: dict[Any, list[int]] = {}
        nodes: dict[Any, Any] = {}
        for index, command in enumerate(commands):
            node = self._master_of(command.routing)
            name = None if node is None else node.name
            nodes[name] = node
            groups.setdefault(name, []).append(index)
        results: list[Any] = [None] * len(commands)
        failed: list[BaseException] = []

        async def send(name: Any, indexes: list[int]) -> None:
            try:
                group = [commands[index] for index in indexes]
                wire = [each for each in map(_wire_command, group) if each is not None]
                # Direct when every command is a write it knows and the master
                # is known (mid-failover, the client finds it).
                if len(wire) == len(group) and (name is not None or not self._cluster):
                    answers = await self._send_direct(nodes[name], group, wire)
                    for index, answer in zip(indexes, answers, strict=True):
                        results[index] = answer
                    return
                async with self._client.pipeline(transaction=False) as pipe:
                    for index in indexes:
                        commands[index].apply(pipe)
            except Exception as exc:
                # Raised alone after the nursery: a group would escape the retries.
                failed.append(exc)
                return
            for index, result in zip(indexes, pipe.results or (), strict=True):
                results[index] = result

        if len(groups) == 1:
            name, indexes = next(iter(groups.items()))
            await send(name, indexes)
        else:
            async with trio.open_nursery() as nursery:
                for name, indexes in groups.items():
                    nursery.start_soon(send, name, indexes)
        self.figures.pipeline(len(commands), len(groups))
        if failed:
            raise failed[0]
        return tuple(results)

    async def _read_many(self, requests: Sequence[tuple[str, str]]) -> list[Any]:
        """Results of ``(read, redis key)`` pairs, in pipelines of bounded size.

        A read is ``"index"`` (a whole sorted set), ``"hgetall"`` or ``"hlen"``.
        """
        results: list[Any] = []
        for start in range(0, len(requests), _READ_PIPELINE):
            chunk = requests[start : start + _READ_PIPELINE]

            def fill(pipe: Any, chunk: Sequence[tuple[str, str]] = chunk) -> None:
                for read, name in chunk:
                    if read == "index":
                        pipe.zrange(name, 0, -1)
                    else:
                        getattr(pipe, read)(name)

            results.extend(await self._pipeline(fill))
        return results

    async def ping(self) -> None:
        """Check that Redis answers, within the timeout."""

        async def attempt() -> None:
            await self._client.ping()
            self.figures.round_trips += 1

        await self._retrying("ping", attempt)

    # -- writes ----------------------------------------------------------

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store the batch in one pipeline; return once Redis acknowledged it
        (and, with ``wait_replicas``, that many replicas of each master).

        With retention rules, points older than their key's longest span are
        dropped first (acknowledged all the same, as by the memory store)."""
        if self._rules is not None:
            keys, values, timestamps = self._admit(keys, values, timestamps)
            if not keys:
                return
        columns: dict[tuple[str, int], dict[int, float]] = {}
        for key, value, timestamp in zip(keys, values, timestamps, strict=True):
            where = (key, timestamp // BUCKET_SECONDS)
            fields = columns.get(where)
            if fields is None:
                fields = columns[where] = {}
            # A dict keeps the last value of a repeated timestamp: last write wins.
            fields[timestamp] = value
        # Names and texts once per (key, bucket), not per point.
        hashes = {
            # The fields as ints: the client writes an int's digits itself,
            # cheaper than a str made here first.
            bucket_hash_name(key, bucket): {ts: repr(float(v)) for ts, v in fields.items()}
            for (key, bucket), fields in columns.items()
        }
        batch_keys = list(dict.fromkeys(key for key, _ in columns))

        async def attempt() -> None:
            # What this server believes registered and indexed holds while
            # the deletion token read in the same pipeline is the one it
            # saw last. Else (a delete anywhere, or a flush that removed the
            # token) the batch registers and indexes all its keys again.
            # The token this write's knowledge of the registry is valid for.
            epoch = self._epoch
            added, seen = await self._write(columns, hashes, batch_keys)
            # The HSETs' answers (new fields) are the points added: counted
            # into the shared total in this server's next pipeline.
            self._pending_points += added
            if seen is None or seen != epoch:
                if seen is None or seen != self._epoch:
                    # The first batch to see it: later batches start afresh
                    # (those already sent repair their own keys, not again).
                    self._forget(seen)
                _, self._epoch = await self._write(
                    columns, {}, batch_keys, everything=True, token=_new_token()
                )
            if self._wait_replicas:
                await self._wait_for_replicas(batch_keys)

        await self._retrying("put", attempt)
        for key, bucket in columns:
            self._indexed[key] = max(bucket, self._indexed.get(key, bucket))
            if self._rules is not None:
                self._expiring[key] = max(bucket, self._expiring.get(key, bucket))
        self._known.update(batch_keys)

    async def _write(
        self,
        columns: dict[tuple[str, int], dict[int, float]],
        hashes: dict[str, dict[int, str]],
        keys: Sequence[str],
        *,
        everything: bool = False,
        token: bytes | None = None,
    ) -> tuple[int, Any]:
        """One pipeline: the registry entries and bucket indexes this server does
        not know to be there (all of them with ``everything``), the ``hashes``
        (each with its expiry, under retention rules), the deletion ``token``
        if there is none yet, and a read of the token.

        Returns the fields the ``HSET``s added, and the token read.

        Under retention rules, each hash written gets its ``EXPIREAT`` unless
        it is the key's newest bucket this server gave one already and that
        expiry is more than an hour away (a server whose clock lags Redis'
        may write into a bucket Redis just deleted: within an hour of its
        expiry, a bucket is given it again at every write). ``everything`` gives
        every bucket of ``columns`` its expiry, hashes written or not (a
        delete elsewhere may have removed a hash, so the ``HSET`` made a new
        one). A bucket index that gets a bucket in a new group of
        :data:`_TRIM_EVERY_BUCKETS` also loses the buckets whose hashes have
        expired (``ZREMRANGEBYSCORE``), in the same pipeline, at no extra
        round trip."""
        known = set() if everything else self._known
        indexed = {} if everything else self._indexed
        new_keys = [key for key in keys if key not in known]
        buckets: dict[str, dict[str, int]] = {}
        for key, bucket in columns:
            if indexed.get(key) != bucket:
                buckets.setdefault(key, {})[str(bucket)] = bucket
        scores: dict[int, dict[str, int]] = {}
        if new_keys:
            last = await self._client.incrby(SEQUENCE_KEY, len(new_keys))
            self.figures.round_trips += 1
            for score, key in enumerate(new_keys, start=last - len(new_keys) + 1):
                scores.setdefault(registry_shard(key), {})[key] = score

        # Each written hash's expiry, and each indexed key's last expired bucket.
        expiries: dict[str, int] = {}
        trims: dict[str, int] = {}
        if self._rules is not None:
            now = int(self._clock())
            expiring = {} if everything else self._expiring
            for key, bucket in columns if hashes or everything else ():
                longest = self._longest_span(key)
                if longest is None:
                    continue
                expiry = bucket_expiry(bucket, longest)
                if expiring.get(key) != bucket or expiry <= now + _EXPIRY_RESEND_SECONDS:
                    expiries[bucket_hash_name(key, bucket)] = expiry
            for key, numbers in buckets.items():
                longest = self._longest_span(key)
                newest = indexed.get(key)
                if longest is not None and (
                    newest is None
                    or max(numbers.values()) // _TRIM_EVERY_BUCKETS != newest // _TRIM_EVERY_BUCKETS
                ):
                    # The buckets whose expiry is not after now.
                    trims[key] = (now - longest) // BUCKET_SECONDS - 1

        def fill(pipe: Any) -> None:
            from coredis import PureToken

            for shard, members in scores.items():
                pipe.zadd(registry_name(shard), members, condition=PureToken.NX)
            for key, numbers in buckets.items():
                pipe.zadd(bucket_index_name(key), numbers)
                if key in trims:
                    pipe.zremrangebyscore(bucket_index_name(key), -math.inf, trims[key])
            for name, fields in hashes.items():
                pipe.hset(name, fields)
                if name in expiries:
                    # After the HSET, in the same slot (so in order): EXPIREAT
                    # does nothing to a key that does not exist yet.
                    pipe.expireat(name, expiries[name])
            for name, expiry in expiries.items():
                if name not in hashes:
                    pipe.expireat(name, expiry)
            if token is not None:
                pipe.set(DELETIONS_KEY, token, condition=PureToken.NX)
            # Always two results: the points added before, and the token.
            pipe.incrby(POINTS_KEY, pending)
            pipe.get(DELETIONS_KEY)

        pending = self._take_pending_points()
        try:
            results = await self._pipeline(fill)
        except BaseException:
            self._pending_points += pending
            raise
        # The HSETs' answers, without those of the EXPIREATs among and after them.
        first = len(results) - 2 - len(hashes) - len(expiries) - (token is not None)
        answers = iter(results[first:])
        added = 0
        for name in hashes:
            added += int(next(answers))
            if name in expiries:
                next(answers)
        return added, results[-1]

    def _take_pending_points(self) -> int:
        """The points not yet counted, now owed by the caller's pipeline (given
        back if it fails): batches run at once must not send the same ones."""
        pending, self._pending_points = self._pending_points, 0
        return pending

    def _forget(self, epoch: bytes | None) -> None:
        """Forget which keys are registered and indexed (a delete or flush
        happened): from now on they are valid for deletion token ``epoch``."""
        self._epoch = epoch
        self._known.clear()
        self._indexed.clear()
        self._expiring.clear()

    async def _wait_for_replicas(self, written: Iterable[str]) -> None:
        """``WAIT`` on every master written to, through a fenced write.

        ``WAIT`` counts the replicas that have a connection's own writes;
        the pipeline's connections are the client's. So one write per master
        (a key of 1 s life in the slot of a key written there) is followed
        by ``WAIT`` on its connection: a replica past it has the batch too,
        since a master's replication stream is in order.
        """
        from coredis.exceptions import RedisError, ReplicationError

        fences: dict[Any, str] = {}
        for key in written:
            fences.setdefault(self._node_of(bucket_index_name(key)), key)
        # Half the operation's time: a shortfall is then reported as such,
        # before the operation's own deadline cuts it off.
        wait_ms = max(1, int(self._timeout * 500))
        short: list[str] = []
        failed: list[Exception] = []

        async def fence(key: str) -> None:
            try:
                with self._client.ensure_replication(self._wait_replicas, wait_ms):
                    await self._client.set(f"fence:{{{escape_key(key)}}}", b"1", px=1000)
            except ReplicationError as exc:
                short.append(str(exc))
            except (RedisError, OSError, TimeoutError) as exc:
                # Raised after the nursery, alone: an exception group would
                # escape the retries.
                failed.append(exc)
            self.figures.round_trips += 1

        async with trio.open_nursery() as nursery:
            for key in fences.values():
                nursery.start_soon(fence, key)
        if failed:
            raise failed[0]
        if short:
            self.figures.wait_shortfalls += 1
            raise ReplicasShortError(
                f"fewer than {self._wait_replicas} replicas acknowledged: {short[0]}"
            )

    async def _send_direct(
        self, node: Any, commands: Sequence[_Command], wire: Sequence[_Wired]
    ) -> list[Any]:
        """``wire`` (the ``commands`` as Redis takes them) queued at once on one
        connection to ``node`` (to the one Redis when None); their answers, in order.

        The client's pipeline builds a checked request object per command, which
        cost a batch more CPU than its points: here each command is queued as
        its name and arguments. A command redirected (``MOVED`` or ``ASK``
        while slots move) is sent again, alone with the others redirected,
        through the client's pipeline, which follows redirections; the layout
        learns of a ``MOVED`` at once. Any other error (``TRYAGAIN``,
        ``CLUSTERDOWN``, a timeout, a lost connection) is raised, for the
        store's retries.

        The answers are Redis' own (ints, bytes, None), where the pipeline
        converts some (``EXPIREAT`` and ``SET NX`` to bools); a redirected
        command's answer is the pipeline's. The callers read only the ints of
        ``HSET`` and the bytes of ``GET``, the same either way.
        """
        from coredis.exceptions import AskError

        pool = self._client.connection_pool
        acquiring = pool.acquire(node=node) if node is not None else pool.acquire()
        async with acquiring as connection:
            # One batch: the connection's writer takes it as one item (a
            # request each would cost it a scheduler pass each). A wait cut
            # off drops the connection, as the client's pipeline does: its
            # answers must not meet a later batch.
            # (It reads only each command's name, serialized_arguments and decode.)
            batch = connection.create_request_batch(cast(Any, wire))
            answers = list(await batch)
        redirected: list[int] = []
        layout = getattr(pool, "cluster_layout", None)
        for index, answer in enumerate(answers):
            if isinstance(answer, AskError):  # MovedError is an AskError
                redirected.append(index)
                self.figures.redirects += 1
                if layout is not None:
                    layout.report_errors(node, answer)
            elif isinstance(answer, BaseException):
                raise answer
        if redirected:
            self.figures.round_trips += 1
            async with self._client.pipeline(transaction=False) as pipe:
                for index in redirected:
                    commands[index].apply(pipe)
            for index, answer in zip(redirected, pipe.results or (), strict=True):
                answers[index] = answer
        return answers

    def _master_of(self, name: str) -> Any:
        """The master that holds ``name`` as the client knows (None for one Redis)."""
        layout = getattr(self._client.connection_pool, "cluster_layout", None)
        if layout is None:
            return None
        from coredis._utils import hash_slot

        try:
            return layout.node_for_slot(hash_slot(name.encode()), True)
        except (LookupError, AttributeError):
            # A slot without a known master (mid-failover): the client
            # routes the command itself, with whatever else has no master.
            return None

    def _node_of(self, name: str) -> str | None:
        """The name of :meth:`_master_of`."""
        node = self._master_of(name)
        return None if node is None else str(node.name)

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys``' registry entries, bucket indexes and hashes."""
        unique = list(dict.fromkeys(keys))

        async def attempt() -> tuple[int, int]:
            indexes = await self._read_many([("index", bucket_index_name(key)) for key in unique])

            def fill(pipe: Any) -> None:
                for key, numbers in zip(unique, indexes, strict=True):
                    pipe.zrem(registry_name(registry_shard(key)), [key])
                    for number in numbers:
                        # In one slot, so in order: the length, then the removal.
                        pipe.hlen(bucket_hash_name(key, int(number)))
                        pipe.delete([bucket_hash_name(key, int(number))])
                    pipe.delete([bucket_index_name(key)])

            results = await self._pipeline(fill)
            removed = points = 0
            position = 0
            for numbers in indexes:
                removed += int(results[position])
                points += sum(int(results[position + 1 + 2 * n]) for n in range(len(numbers)))
                position += 2 * len(numbers) + 2
            return removed, points

        async def new_token(points: int) -> None:
            def fill(pipe: Any) -> None:
                pipe.set(DELETIONS_KEY, _new_token())
                pipe.decrby(POINTS_KEY, points)

            await self._pipeline(fill)

        removed, points = await self._retrying("delete", attempt)
        # After the removal: a server that reads the new token re-registers.
        await self._retrying("delete", lambda: new_token(points))
        return removed

    # -- reads -----------------------------------------------------------

    async def _registry(self) -> list[str]:
        """Every key in first-stored order (a fresh read of every shard)."""

        async def attempt() -> list[str]:
            def fill(pipe: Any) -> None:
                for shard in range(REGISTRY_SHARDS):
                    pipe.zrange(registry_name(shard), 0, -1, withscores=True)

            shards = await self._pipeline(fill)
            return [
                member.decode()
                for member, _score in heapq.merge(*shards, key=lambda scored: scored[1])
            ]

        keys = await self._retrying("registry read", attempt)
        self.figures.registry_reads += 1
        self._known = set(keys)
        self._indexed.clear()
        self._expiring.clear()
        self._sorted = sorted(keys)
        return keys

    async def _series_of(
        self, keys: Sequence[str], start: int = 0, end: int | None = None
    ) -> list[Series]:
        """Each key's points within ``[start, end]``, for the keys that have any."""

        async def attempt() -> list[Series]:
            if end is None:
                indexes = await self._read_many([("index", bucket_index_name(key)) for key in keys])
            else:
                low, high = start // BUCKET_SECONDS, end // BUCKET_SECONDS

                def fill(pipe: Any) -> None:
                    for key in keys:
                        pipe.zrange(bucket_index_name(key), low, high, sortby=_by_score())

                indexes = list(await self._pipeline(fill))
            wanted = [
                (key, sorted(int(number) for number in numbers))
                for key, numbers in zip(keys, indexes, strict=True)
            ]
            contents = await self._read_many(
                [
                    ("hgetall", bucket_hash_name(key, number))
                    for key, numbers in wanted
                    for number in numbers
                ]
            )
            found: list[Series] = []
            position = 0
            for key, numbers in wanted:
                stamps: array[int] = array("q")
                values: array[float] = array("d")
                for _ in numbers:
                    fields = contents[position]
                    position += 1
                    for stamp, value in sorted(
                        (int(stamp), value) for stamp, value in fields.items()
                    ):
                        stamps.append(stamp)
                        values.append(float(value))
                if end is not None:
                    first = bisect_left(stamps, start)
                    stop = bisect_right(stamps, end, lo=first)
                    stamps, values = stamps[first:stop], values[first:stop]
                if stamps:
                    found.append(Series(key, stamps, values))
            return found

        return await self._retrying("read", attempt)

    async def query(self, key: str) -> list[Series]:
        """:class:`Store` interface: one key, or every key (registry re-read) for ``"*"``."""
        keys = await self._registry() if key == "*" else [key]
        return await self._series_of(keys)

    async def query_range(self, key: str, start: int, end: int) -> list[Series]:
        """:class:`Store` interface: only the buckets that overlap the range are read."""
        if start > end:
            return []
        return await self._series_of([key], start, end)

    async def counts(self) -> tuple[int, int]:
        """:class:`Store` interface: the registry's size (16 ``ZCARD``) and the
        shared count of points (after adding what this server has not yet)."""

        async def attempt() -> tuple[int, int]:
            def fill(pipe: Any) -> None:
                for shard in range(REGISTRY_SHARDS):
                    pipe.zcard(registry_name(shard))
                pipe.incrby(POINTS_KEY, pending)

            pending = self._take_pending_points()
            try:
                results = await self._pipeline(fill)
            except BaseException:
                self._pending_points += pending
                raise
            return sum(int(size) for size in results[:-1]), int(results[-1])

        return await self._retrying("count", attempt)

    async def list_keys(self) -> list[str]:
        """:class:`Store` interface: the registry, re-read."""
        return await self._registry()

    async def keys_with_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """:class:`Store` interface: the first page (``after`` empty) re-reads the
        registry; later pages page through that reading."""
        if not after:
            await self._registry()
        keys = self._sorted
        first = max(bisect_left(keys, prefix), bisect_right(keys, after) if after else 0)
        page: list[str] = []
        for key in keys[first:]:
            if not key.startswith(prefix) or len(page) >= limit:
                break
            page.append(key)
        return page


def _new_token() -> bytes:
    """A deletion token no other server has made."""
    return secrets.token_hex(8).encode()


def _by_score() -> Any:
    from coredis import PureToken

    return PureToken.BYSCORE


@asynccontextmanager
async def open_redis_store(
    nodes: Sequence[tuple[str, int]],
    *,
    cluster: bool,
    wait_replicas: int = 0,
    operation_timeout: float = 5.0,
    max_connections: int = 64,
    retention: RetentionRules | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[RedisStore]:
    """Connect to Redis (a cluster from ``nodes``, or the one server) for the block.

    ``max_connections``: the pool's size (per master, for a cluster); a
    request waits for a free connection within its ``operation_timeout``.
    ``retention`` and ``clock``: see :class:`RedisStore`.
    Raises :exc:`StoreUnavailableError` when no node answers within ``operation_timeout``.
    """
    import coredis
    from coredis.connection import TCPLocation
    from coredis.retry import NoRetryPolicy

    _quiet_client_log()

    client: coredis.Redis[bytes] | coredis.RedisCluster[bytes]
    if cluster:
        client = coredis.RedisCluster(
            startup_nodes=[TCPLocation(host, port) for host, port in nodes],
            stream_timeout=operation_timeout,
            connect_timeout=operation_timeout,
            pool_timeout=operation_timeout,
            max_connections=max_connections,
            # Every batch reads the deletion token on one master: a pool shared
            # by all nodes (64 / 6 each) made 50 clients queue for it.
            max_connections_per_node=True,
            # One retry budget, the store's own, bounded in time and counted.
            retry_policy=NoRetryPolicy(),
            decode_responses=False,
        )
    else:
        host, port = nodes[0]
        client = coredis.Redis(
            host,
            port,
            stream_timeout=operation_timeout,
            connect_timeout=operation_timeout,
            pool_timeout=operation_timeout,
            max_connections=max_connections,
            retry_policy=NoRetryPolicy(),
            decode_responses=False,
        )
    from coredis.exceptions import RedisError

    where = ", ".join(f"{host}:{port}" for host, port in nodes)
    store = RedisStore(
        client,
        wait_replicas=wait_replicas,
        timeout=operation_timeout,
        retention=retention,
        clock=clock,
    )
    entered = False
    try:
        # The client's own connect timeout bounds the start (a cancel scope
        # around entering it would end before the task group it opens).
        async with client:
            try:
                await store.ping()
            except StoreUnavailableError as exc:
                raise StoreUnavailableError(f"cannot reach Redis at {where}: {exc}") from None
            entered = True
            yield store
    except (OSError, TimeoutError, RedisError) as exc:
        if entered:
            raise
        raise StoreUnavailableError(f"cannot reach Redis at {where}: {exc}") from exc
