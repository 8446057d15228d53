"""Load generator for the benchmarks: standard library only (socket, selectors, multiprocessing).

Each connection follows a plan of requests whose answers are known in advance
(every ``put`` is answered ``ok\\n\\n``), so the generator checks each answer
byte for byte at almost no cost. One process drives many connections with
``selectors``; ``processes > 1`` splits the connections over worker processes
for when one generator process would be the bottleneck. Every result carries
the generator's own CPU time, so a saturated generator is visible.

The points are deterministic (:func:`put_line`), so the final content of the
store is known (:func:`expected_get_answer`) without keeping what was sent.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import multiprocessing.context as mp_context
import os
import queue
import resource
import selectors
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

OK = b"ok\n\n"
ANSWER_END = b"\n\n"
#: The first timestamp the benchmarks write (2017-07-14, an ordinary unix time).
T0 = 1_500_000_000


class LoadError(Exception):
    """The server answered wrongly, closed a connection, or did not answer in time."""


class Deadline:
    """A point in time that every wait of one benchmark run is bounded by."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; raises :class:`LoadError` once the deadline has passed."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise LoadError("timed out (per-scenario timeout)")
        return left


# --- the data ---------------------------------------------------------------


def value_text(i: int) -> str:
    """The value of the ``i``-th put of a series, as sent (``123.4``)."""
    return f"{i * 7 % 1000}.{i % 10}"


def timestamp(i: int, overwrite: bool) -> int:
    """The timestamp of the ``i``-th put of a series.

    With ``overwrite``, every tenth put reuses the timestamp of the put before
    it, so last-write-wins is exercised (and verified) along the way.
    """
    if overwrite and i % 10 == 9:
        return T0 + i - 1
    return T0 + i


def put_line(key: str, i: int, overwrite: bool = True) -> bytes:
    """The ``i``-th put request of ``key``'s series."""
    return f"put {key} {value_text(i)} {timestamp(i, overwrite)}\n".encode()


def expected_points(count: int, overwrite: bool = True) -> dict[int, str]:
    """``{timestamp: value text}`` that ``count`` puts of one series leave behind."""
    points: dict[int, str] = {}
    for i in range(count):
        points[timestamp(i, overwrite)] = value_text(i)
    return points


def expected_lines(key: str, count: int, overwrite: bool = True) -> Iterator[str]:
    """The data lines of ``key`` in a ``get`` answer after ``count`` puts."""
    points = expected_points(count, overwrite)
    for ts in sorted(points):
        yield f"{key} {float(points[ts])!r} {ts}\n"


def expected_get_answer(series: Sequence[tuple[str, int]], overwrite: bool = True) -> bytes:
    """The exact answer to a ``get`` selecting ``series`` (``(key, puts)``, in key order)."""
    lines = [line for key, count in series for line in expected_lines(key, count, overwrite)]
    if not lines:
        return OK
    return b"ok\n" + "".join(lines).encode() + b"\n"


# --- plans and results ------------------------------------------------------


@dataclass(frozen=True)
class ConnectionPlan:
    """One connection's work: ``puts_per_key`` puts of each key's series, ``batch`` per request.

    With several keys the puts go round-robin over them (``k0 k1 k0 k1 ...``),
    as points from many sources arrive, and the keys are first stored in order.
    """

    keys: tuple[str, ...]
    puts_per_key: int
    batch: int = 1
    overwrite: bool = True

    @property
    def puts(self) -> int:
        return self.puts_per_key * len(self.keys)

    def requests(self) -> list[tuple[bytes, bytes]]:
        """``(request, expected answer)`` pairs, built before any timing starts."""
        return _requests(self)

    def expected_answer(self) -> bytes:
        """The answer to ``get *`` on a server that got only this plan."""
        return _expected_answer(self)


@functools.lru_cache(maxsize=4)
def _expected_answer(plan: ConnectionPlan) -> bytes:
    return expected_get_answer([(k, plan.puts_per_key) for k in plan.keys], plan.overwrite)


@functools.lru_cache(maxsize=16)
def _requests(plan: ConnectionPlan) -> list[tuple[bytes, bytes]]:
    # Cached: the big loads are sent to a fresh server several times per run.
    lines = [
        put_line(key, i, plan.overwrite) for i in range(plan.puts_per_key) for key in plan.keys
    ]
    pairs = []
    for start in range(0, len(lines), plan.batch):
        chunk = lines[start : start + plan.batch]
        pairs.append((b"".join(chunk), OK * len(chunk)))
    return pairs


@dataclass
class LoadResult:
    """What one load phase did and cost."""

    requests: int
    puts: int
    elapsed: float
    generator_cpu: float
    processes: int
    connections: int
    warmup_s: float = 0.0
    warm_requests: int = 0
    #: Connections whose warm-up plan ran out before the warm-up time did.
    warm_ran_out: int = 0
    #: What the warm-up stored (one-key plans), for the verification.
    warm_stored: list[ConnectionPlan] = field(default_factory=list)

    @property
    def puts_per_second(self) -> float:
        return self.puts / self.elapsed if self.elapsed > 0 else float("nan")

    @property
    def generator_load(self) -> float:
        """Generator CPU as a fraction of the cores its processes could use (1.0: saturated)."""
        if self.elapsed <= 0:
            return float("nan")
        return self.generator_cpu / (self.elapsed * self.processes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "puts": self.puts,
            "elapsed_s": self.elapsed,
            "generator_cpu_s": self.generator_cpu,
            "generator_load": self.generator_load,
            "processes": self.processes,
            "connections": self.connections,
            "warmup_s": self.warmup_s,
            "warm_requests": self.warm_requests,
            "warm_ran_out": self.warm_ran_out,
        }


def own_cpu_seconds() -> float:
    """User + system CPU of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def connect(
    host: str, port: int, deadline: Deadline, tls: ssl.SSLContext | None = None
) -> socket.socket:
    """A connection to the server; with ``tls`` (see :func:`tls_context`), handshaken."""
    sock = socket.create_connection((host, port), timeout=min(10.0, deadline.left()))
    # Small requests must leave at once, not wait for Nagle's algorithm.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=host)
    return sock


class TlsLoadSocket(ssl.SSLSocket):
    """An SSL socket whose "would block" is :exc:`BlockingIOError`, as a plain socket's,
    so the load loops drive TLS and plaintext connections alike."""

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None


def tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting ``ca_file``, whose sockets are :class:`TlsLoadSocket`."""
    context = ssl.create_default_context(cafile=ca_file)
    context.sslsocket_class = TlsLoadSocket
    return context


# --- blocking helpers -------------------------------------------------------


def read_answer(sock: socket.socket, buffer: bytearray, deadline: Deadline) -> bytes:
    """Read one whole answer (up to and with its ``\\n\\n``); extra bytes stay in ``buffer``."""
    scanned = 0
    while True:
        # An answer has no blank line inside, so the first "\n\n" ends it.
        end = buffer.find(ANSWER_END, max(scanned - 1, 0))
        if end >= 0:
            answer = bytes(buffer[: end + 2])
            del buffer[: end + 2]
            return answer
        scanned = len(buffer)
        sock.settimeout(min(10.0, deadline.left()))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            raise LoadError(f"no complete answer in time; got {bytes(buffer[-200:])!r}") from None
        if not chunk:
            raise LoadError(f"server closed the connection; got {bytes(buffer[-200:])!r}")
        buffer += chunk


def ask(sock: socket.socket, request: bytes, deadline: Deadline) -> bytes:
    """Send one request and return its answer (the connection must be idle)."""
    sock.settimeout(min(10.0, deadline.left()))
    sock.sendall(request)
    return read_answer(sock, bytearray(), deadline)


def timed_get(sock: socket.socket, key: str, deadline: Deadline) -> tuple[float, bytes]:
    """``get key`` on an idle connection: (seconds from send to last byte, answer)."""
    request = f"get {key}\n".encode()
    sock.settimeout(min(10.0, deadline.left()))
    buffer = bytearray()
    start = time.perf_counter()
    sock.sendall(request)
    while not buffer.endswith(ANSWER_END):
        sock.settimeout(min(10.0, deadline.left()))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            raise LoadError(f"get {key}: no complete answer in time") from None
        if not chunk:
            raise LoadError(f"get {key}: server closed the connection")
        buffer += chunk
    return time.perf_counter() - start, bytes(buffer)


def load(
    host: str,
    port: int,
    plan: ConnectionPlan,
    deadline: Deadline,
    window: int = 4,
) -> LoadResult:
    """Send ``plan`` over one connection, ``window`` requests in flight (untimed loading)."""
    pairs = plan.requests()
    cpu0 = own_cpu_seconds()
    start = time.perf_counter()
    with connect(host, port, deadline) as sock:
        buffer = bytearray()
        sent = received = 0
        while received < len(pairs):
            while sent < len(pairs) and sent - received < window:
                sock.settimeout(min(10.0, deadline.left()))
                sock.sendall(pairs[sent][0])
                sent += 1
            expected = pairs[received][1]
            while len(buffer) < len(expected):
                sock.settimeout(min(10.0, deadline.left()))
                try:
                    chunk = sock.recv(1 << 20)
                except TimeoutError:
                    raise LoadError("loading: no answer in time") from None
                if not chunk:
                    raise LoadError("loading: server closed the connection")
                buffer += chunk
            if buffer[: len(expected)] != expected:
                raise LoadError(f"loading: unexpected answer {bytes(buffer[:200])!r}")
            del buffer[: len(expected)]
            received += 1
    return LoadResult(
        requests=len(pairs),
        puts=plan.puts,
        elapsed=time.perf_counter() - start,
        generator_cpu=own_cpu_seconds() - cpu0,
        processes=1,
        connections=1,
    )


def wait_until_answering(host: str, port: int, deadline: Deadline) -> float:
    """Retry connecting until ``get x`` is answered; return ``time.perf_counter()`` then."""
    while True:
        try:
            sock = connect(host, port, deadline)
        except ConnectionRefusedError:
            time.sleep(0.002)
            continue
        with sock:
            answer = ask(sock, b"get x\n", deadline)
            done = time.perf_counter()
        if answer != OK:
            raise LoadError(f"get x answered {answer[:200]!r}")
        return done


# --- warm-up ----------------------------------------------------------------

#: Warm-up keys are the timed keys with this suffix, so that the timed plan
#: stays what it is without a warm-up and both can be verified.
WARM_SUFFIX = ".warm"
#: Puts per second (over all connections) that the warm-up requests are
#: built for in advance: more than the stores here take. Past them (the
#: floor stores nothing and goes faster) each request is built as it is
#: sent, up to :data:`WARM_LIMIT` times as many; a connection that runs out
#: even so starts its timed plan early (counted in ``warm_ran_out``).
WARM_CEILING_REQUEST_RESPONSE = 60_000
WARM_CEILING_BATCHED = 1_200_000
WARM_LIMIT = 20


def warm_up_plans(plans: Sequence[ConnectionPlan], seconds: float) -> list[ConnectionPlan]:
    """One warm-up plan per plan: its keys with :data:`WARM_SUFFIX`, sized for ``seconds``."""
    if seconds <= 0:
        return []
    warm = []
    for plan in plans:
        ceiling = WARM_CEILING_BATCHED if plan.batch > 1 else WARM_CEILING_REQUEST_RESPONSE
        requests = math.ceil(seconds * ceiling / len(plans) / len(plan.keys) / plan.batch)
        warm.append(
            ConnectionPlan(
                tuple(key + WARM_SUFFIX for key in plan.keys),
                # Whole batches only, so that the requests built later follow on.
                requests * plan.batch,
                batch=plan.batch,
                overwrite=plan.overwrite,
            )
        )
    return warm


def request_at(plan: ConnectionPlan, index: int) -> tuple[bytes, bytes]:
    """Request ``index`` of ``plan`` as if the plan went on for ever (whole batches)."""
    width = len(plan.keys)
    lines = range(index * plan.batch, (index + 1) * plan.batch)
    return (
        b"".join(put_line(plan.keys[n % width], n // width, plan.overwrite) for n in lines),
        OK * plan.batch,
    )


class _Pairs(Protocol):
    """``(request, expected answer)`` pairs, taken by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> tuple[bytes, bytes]: ...


class _WarmPairs:
    """A warm-up plan's requests: those built in advance, then each built when it is due."""

    def __init__(self, plan: ConnectionPlan) -> None:
        self.plan = plan
        self.built = plan.requests()
        self.last: tuple[int, tuple[bytes, bytes]] | None = None

    def __len__(self) -> int:
        return len(self.built) * WARM_LIMIT

    def __getitem__(self, index: int) -> tuple[bytes, bytes]:
        if index < len(self.built):
            return self.built[index]
        if self.last is None or self.last[0] != index:
            # Each request is asked for twice (to send, then to check its answer).
            self.last = (index, request_at(self.plan, index))
        return self.last[1]


def stored_by(plan: ConnectionPlan, requests: int) -> list[ConnectionPlan]:
    """What the first ``requests`` requests of ``plan`` (gone on for ever) stored, per key."""
    lines = requests * plan.batch
    width = len(plan.keys)
    # Line n of a plan puts to key n % width (round-robin).
    return [
        ConnectionPlan((key,), max(0, (lines - j + width - 1) // width), overwrite=plan.overwrite)
        for j, key in enumerate(plan.keys)
    ]


# --- the request-response engine --------------------------------------------


class _Connection:
    """A non-blocking connection: its warm-up pairs, if any, then its timed pairs."""

    def __init__(
        self,
        sock: socket.socket,
        pairs: _Pairs,
        warm_pairs: _Pairs | None = None,
    ) -> None:
        self.sock = sock
        self.timed_pairs = pairs
        self.warming = bool(warm_pairs)
        self.pairs = warm_pairs if warm_pairs else pairs
        self.index = 0
        self.outgoing = memoryview(b"")
        self.incoming = bytearray()
        self.switch_asked = False
        self.warm_answered = 0
        self.warm_ran_out = False
        self.answered_puts = 0  # of the request answered last

    @property
    def done(self) -> bool:
        return not self.warming and self.index >= len(self.pairs)

    def switch(self) -> None:
        """Go on with the timed pairs once the request in flight is answered."""
        self.switch_asked = True

    def start_request(self) -> None:
        self.outgoing = memoryview(self.pairs[self.index][0])
        self.flush()

    def flush(self) -> None:
        """Send what the kernel takes now; the rest waits for the socket to be writable."""
        if self.outgoing:
            try:
                sent = self.sock.send(self.outgoing)
            except BlockingIOError:
                return
            self.outgoing = self.outgoing[sent:]

    def receive(self) -> bool:
        """Read what has arrived; return whether the current request is answered."""
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            raise LoadError(f"server closed the connection after {bytes(self.incoming)[-200:]!r}")
        self.incoming += chunk
        expected = self.pairs[self.index][1]
        if len(self.incoming) < len(expected):
            # A short prefix that is already wrong is reported now, not at the timeout.
            if not expected.startswith(self.incoming[:64]):
                raise LoadError(f"unexpected answer {bytes(self.incoming[:200])!r}")
            return False
        if self.incoming != expected:
            raise LoadError(
                f"unexpected answer to request {self.index}: {bytes(self.incoming[:200])!r}"
            )
        self.incoming.clear()
        self.answered_puts = len(expected) // len(OK)
        self._advance()
        return True

    def _advance(self) -> None:
        self.index += 1
        if self.warming and (self.switch_asked or self.index >= len(self.pairs)):
            self.warm_ran_out = not self.switch_asked
            self.warm_answered = self.index
            self.warming = False
            self.pairs = self.timed_pairs
            self.index = 0


class _Window:
    """The timed phase of one process: what was answered in it, when, at what CPU cost."""

    def __init__(self) -> None:
        self.open = False
        self.started = self.finished = 0.0
        self.cpu = 0.0
        self.requests = self.puts = 0

    def begin(
        self, connections: Sequence[_Connection], on_switch: Callable[[], None] | None
    ) -> None:
        if on_switch is not None:
            on_switch()
        self.open = True
        self.cpu = own_cpu_seconds()
        self.started = time.monotonic()
        for conn in connections:
            conn.switch()

    def count(self, puts: int) -> None:
        # Requests in flight when the window opened are answered in it, and counted.
        if self.open:
            self.requests += 1
            self.puts += puts

    def end(self) -> None:
        self.finished = time.monotonic()
        self.cpu = own_cpu_seconds() - self.cpu


class _Watcher:
    """A selector over connections; write events only while a request is stuck in the kernel."""

    def __init__(self, connections: Sequence[_Connection]) -> None:
        self.selector = selectors.DefaultSelector()
        self.writing: set[_Connection] = set()
        for conn in connections:
            conn.sock.setblocking(False)
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def watch(self, conn: _Connection) -> None:
        wants_write = bool(conn.outgoing)
        if wants_write != (conn in self.writing):
            mask = selectors.EVENT_READ
            if wants_write:
                mask |= selectors.EVENT_WRITE
                self.writing.add(conn)
            else:
                self.writing.discard(conn)
            self.selector.modify(conn.sock, mask, conn)


def _drive(
    connections: list[_Connection],
    deadline: Deadline,
    switch_at: float,
    on_switch: Callable[[], None] | None,
) -> _Window:
    """Run every connection to the end of its timed pairs, one request in flight each.

    The timed window opens at ``switch_at`` (``time.monotonic()``) while the
    load goes on, so whatever rhythm the server and the generator settled
    into during the warm-up is what the window measures.
    """
    watcher = _Watcher(connections)
    window = _Window()
    try:
        if time.monotonic() >= switch_at:
            window.begin(connections, on_switch)
        for conn in connections:
            conn.start_request()
            watcher.watch(conn)
        active = len(connections)
        while active:
            wait = 1.0
            if not window.open:
                wait = switch_at - time.monotonic()
                if wait <= 0:
                    window.begin(connections, on_switch)
                    wait = 1.0
            for key, mask in watcher.selector.select(timeout=min(wait, deadline.left())):
                conn = key.data
                if mask & selectors.EVENT_WRITE:
                    conn.flush()
                if mask & selectors.EVENT_READ and conn.receive():
                    window.count(conn.answered_puts)
                    if conn.done:
                        watcher.selector.unregister(conn.sock)
                        active -= 1
                        continue
                    conn.start_request()
                watcher.watch(conn)
        if not window.open:  # every plan ended before the warm-up did
            window.begin(connections, on_switch)
        window.end()
        return window
    finally:
        watcher.selector.close()


def first_exchange(sockets: list[socket.socket], deadline: Deadline) -> None:
    """One ``get`` on each connection, answered ``ok`` (by any server here, the floor too)."""
    # Before any load, so that accepting the connection and starting its
    # handler are not part of the measurement.
    for sock in sockets:
        answer = ask(sock, b"get bench.warmup\n", deadline)
        if answer != OK:
            raise LoadError(f"first get answered {answer[:200]!r}")


@dataclass
class _WorkerReport:
    puts: int
    requests: int
    started: float
    finished: float
    cpu: float
    warm_requests: int = 0
    warm_ran_out: int = 0
    warm_stored: list[ConnectionPlan] = field(default_factory=list)


@dataclass
class WorkerFailure:
    """What a worker process sends back instead of its report when it failed."""

    error: str


def _run_group(
    host: str,
    port: int,
    plans: Sequence[ConnectionPlan],
    warm_plans: Sequence[ConnectionPlan],
    deadline: Deadline,
    start: Callable[[], float],
    on_switch: Callable[[], None] | None,
) -> _WorkerReport:
    """Connect, exchange once, then warm up and run ``plans``: in this process or a worker.

    ``start`` is called once every connection is ready, and returns when the
    timed window opens (``time.monotonic()``); ``on_switch`` runs just then.
    """
    pairs = [plan.requests() for plan in plans]
    warm_pairs: list[_WarmPairs | None] = [None] * len(plans)
    if warm_plans:
        warm_pairs = [_WarmPairs(plan) for plan in warm_plans]
    sockets: list[socket.socket] = []
    try:
        for _ in plans:
            sockets.append(connect(host, port, deadline))
        first_exchange(sockets, deadline)
        switch_at = start()
        connections = [
            _Connection(s, p, w) for s, p, w in zip(sockets, pairs, warm_pairs, strict=True)
        ]
        window = _drive(connections, deadline, switch_at, on_switch)
        return _WorkerReport(
            puts=window.puts,
            requests=window.requests,
            started=window.started,
            finished=window.finished,
            cpu=window.cpu,
            warm_requests=sum(c.warm_answered for c in connections),
            warm_ran_out=sum(c.warm_ran_out for c in connections),
            warm_stored=[
                entry
                for plan, conn in zip(warm_plans, connections, strict=False)
                for entry in stored_by(plan, conn.warm_answered)
            ],
        )
    finally:
        for sock in sockets:
            sock.close()


def request_response(
    host: str,
    port: int,
    plans: Sequence[ConnectionPlan],
    timeout: float,
    processes: int = 1,
    on_start: Callable[[], None] | None = None,
    warmup: float = 0.0,
) -> LoadResult:
    """Run ``plans`` (one connection each) concurrently, one request in flight per connection.

    Every connection is opened and has had one exchange before any load.
    With ``warmup`` seconds, each connection first works through a warm-up
    plan (:func:`warm_up_plans`) at full speed; then, without a pause, the
    timed window opens and each goes on with its plan. ``on_start`` is
    called as the window opens (to read the server's CPU). With
    ``processes > 1`` the connections are split over that many worker
    processes, started together once all of them are connected. The result
    counts what was answered in the window, from its opening to the last
    connection's end; ``warm_stored`` says what the warm-up stored.
    """
    processes = max(1, min(processes, len(plans)))
    warm_plans = warm_up_plans(plans, warmup)
    deadline = Deadline(timeout)
    if processes == 1:
        reports = [
            _run_group(
                host,
                port,
                plans,
                warm_plans,
                deadline,
                lambda: time.monotonic() + warmup,
                on_start,
            )
        ]
    else:
        groups = [
            (host, port, list(plans[i::processes]), list(warm_plans[i::processes]))
            for i in range(processes)
        ]
        reports = run_in_workers(_run_group, groups, deadline, warmup, on_start)
    return _combine(reports, processes, len(plans), warmup)


def _combine(
    reports: Sequence[_WorkerReport], processes: int, connections: int, warmup: float
) -> LoadResult:
    return LoadResult(
        requests=sum(r.requests for r in reports),
        puts=sum(r.puts for r in reports),
        elapsed=max(r.finished for r in reports) - min(r.started for r in reports),
        generator_cpu=sum(r.cpu for r in reports),
        processes=processes,
        connections=connections,
        warmup_s=warmup,
        warm_requests=sum(r.warm_requests for r in reports),
        warm_ran_out=sum(r.warm_ran_out for r in reports),
        warm_stored=[entry for r in reports for entry in r.warm_stored],
    )


# --- worker processes ---------------------------------------------------------

#: A worker's job: called as ``target(*args, deadline, start, None)``; ``start``
#: tells the parent the worker is ready, waits for the go, and returns when
#: the timed window opens.
WorkerTarget = Callable[..., Any]


def _worker(
    target: WorkerTarget,
    args: tuple[Any, ...],
    timeout: float,
    ready: Any,
    go: Any,
    window_at: Any,
    results: Any,
) -> None:
    deadline = Deadline(timeout)
    said_ready = False

    def wait_for_go() -> float:
        nonlocal said_ready
        ready.put(None)
        said_ready = True
        if not go.wait(deadline.left()):
            raise LoadError("worker was not started in time")
        return float(window_at.value)

    try:
        report = target(*args, deadline, wait_for_go, None)
    except BaseException as exc:
        # The parent must hear about a failure, not wait for a report until its timeout.
        if not said_ready:
            ready.put(None)
        report = WorkerFailure(f"{type(exc).__name__}: {exc}")
    results.put(report)


def run_in_workers(
    target: WorkerTarget,
    groups: Sequence[tuple[Any, ...]],
    deadline: Deadline,
    lead: float,
    on_start: Callable[[], None] | None,
) -> list[Any]:
    """Run ``target`` once per group of arguments, each in a worker process; return the reports.

    Once every worker is ready they are started together, and the timed
    window opens ``lead`` seconds later; ``on_start`` is called then (a few
    milliseconds late at worst: this process sleeps meanwhile).
    """
    # fork starts workers fast and needs no importable __main__; elsewhere spawn.
    if sys.platform.startswith("linux"):
        context: mp_context.ForkContext | mp_context.SpawnContext
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    results = context.Queue()
    go = context.Event()
    window_at = context.Value("d", 0.0)
    workers = [
        context.Process(
            target=_worker,
            args=(target, group, deadline.left(), ready, go, window_at, results),
            daemon=True,
        )
        for group in groups
    ]
    try:
        for worker in workers:
            worker.start()
        try:
            for _ in workers:
                ready.get(timeout=deadline.left())
            _start_workers(go, window_at, lead, on_start)
            reports = [results.get(timeout=deadline.left()) for _ in workers]
        except queue.Empty:
            raise LoadError("load generator workers did not report in time") from None
    finally:
        for worker in workers:
            worker.join(timeout=2)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=2)
    errors = [r.error for r in reports if isinstance(r, WorkerFailure)]
    if errors:
        raise LoadError("; ".join(errors))
    return reports


def _start_workers(
    go: Any, window_at: Any, lead: float, on_start: Callable[[], None] | None
) -> None:
    opens = time.monotonic() + max(0.0, lead)
    window_at.value = opens
    if lead <= 0 and on_start is not None:
        on_start()
    go.set()
    if lead > 0:
        time.sleep(max(0.0, opens - time.monotonic()))
        if on_start is not None:
            on_start()


def default_processes() -> int:
    """Generator processes for many connections: half the cores (the server needs the rest)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))
