"""Open-loop load for the benchmarks: puts sent at a fixed total rate, each on its schedule.

A closed loop (:func:`loadgen.request_response`) sends the next request when
the last answer arrives, so the server sets the pace and its figures depend
on the rhythm it falls into. Here the pace is set beforehand: ``rate``
requests per second over all connections, connection ``c``'s ``k``-th request
due at ``t0 + (k * connections + c) / rate``, sent then whether or not the
earlier ones were answered (a connection may have several in flight).
Latency is taken from each request's due time, not from when it was sent,
so a generator or server that falls behind shows as latency rather than
hiding it (no coordinated omission). The result says whether the generator
sent on time and whether the server kept up.

The sockets are watched with epoll, but waited for with ``select()`` on the
epoll descriptor alone: epoll's timeout rounds up to whole milliseconds,
which would send the requests in bursts, while ``select()`` takes
microseconds and, given one descriptor, costs the same however many
connections there are. Standard library only; worker processes as in
:mod:`loadgen`.
"""

from __future__ import annotations

import array
import math
import os
import select
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import loadgen
from loadgen import OK, ConnectionPlan, Deadline, LoadError

#: The window opens this long after the workers are told to go, plus the
#: warm-up, so that every worker is past its start when the schedule begins.
START_MARGIN = 0.05
#: Sent or answered at less than this share of the rate: the generator, or
#: the server, fell behind.
KEEP_UP = 0.95
#: Sent later than this at the 99th percentile while keeping the rate: the
#: generator was held up now and then (by the CPUs being busy, as a rule),
#: and the latency percentiles include its delays.
GENERATOR_LATE_MS = 1.0
#: Requests per second that one generator process is given at most by default.
RATE_PER_PROCESS = 10_000


@dataclass(frozen=True)
class Schedule:
    """``rate`` requests/s over ``connections``: ``warm`` then ``timed`` requests each."""

    rate: float
    connections: int
    warm: int
    timed: int

    @property
    def requests(self) -> int:
        """Requests per connection."""
        return self.warm + self.timed

    @property
    def warm_seconds(self) -> float:
        return self.warm * self.connections / self.rate

    def due(self, t0: float, connection: int, k: int) -> float:
        """When request ``k`` of connection number ``connection`` is due."""
        return t0 + (k * self.connections + connection) / self.rate


def schedule_for(rate: float, connections: int, warmup: float, seconds: float) -> Schedule:
    """A schedule of ``warmup`` then ``seconds`` at ``rate`` (at least one timed request each)."""
    per_connection = rate / connections
    return Schedule(
        rate=rate,
        connections=connections,
        warm=round(warmup * per_connection),
        timed=max(1, round(seconds * per_connection)),
    )


def warm_up_plan(plan: ConnectionPlan, schedule: Schedule) -> ConnectionPlan:
    """The puts a connection sends before its timed ones: own keys, as many as scheduled."""
    return ConnectionPlan(
        tuple(key + loadgen.WARM_SUFFIX for key in plan.keys), schedule.warm, batch=1
    )


class _PacedConnection:
    """One connection: requests go out when due; answers are matched in order."""

    def __init__(self, sock: socket.socket, number: int, requests: list[bytes], warm: int) -> None:
        self.sock = sock
        self.number = number  # among all connections, for its place in the schedule
        self.requests = requests
        self.warm = warm
        self.outgoing = bytearray()
        self.incoming = bytearray()
        self.due: deque[float] = deque()
        self.answered = 0
        self.latencies = array.array("d")
        self.lateness = array.array("d")
        self.last_send = self.last_answer = 0.0

    def send(self, index: int, due: float, now: float) -> None:
        self.outgoing += self.requests[index]
        self.due.append(due)
        if index >= self.warm:
            self.lateness.append(now - due)
            self.last_send = now
        self.flush()

    def flush(self) -> None:
        """Send what the kernel takes now; the rest waits for the socket to be writable."""
        if self.outgoing:
            try:
                sent = self.sock.send(self.outgoing)
            except BlockingIOError:
                return
            del self.outgoing[:sent]

    def receive(self) -> int:
        """Read what has arrived; return how many answers it completed."""
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return 0
        now = time.monotonic()
        if not chunk:
            raise LoadError("server closed the connection")
        self.incoming += chunk
        count = len(self.incoming) // len(OK)
        if count > len(self.due) or self.incoming[: count * len(OK)] != OK * count:
            raise LoadError(f"unexpected answer {bytes(self.incoming[:200])!r}")
        del self.incoming[: count * len(OK)]
        for _ in range(count):
            due = self.due.popleft()
            if self.answered >= self.warm:
                self.latencies.append(now - due)
                self.last_answer = now
            self.answered += 1
        return count


@dataclass
class _GroupReport:
    """What one process's connections did in the timed window."""

    requests: int  # timed requests sent and answered
    answers_in_window: int  # every answer received after the window opened
    opened: float
    finished: float
    cpu: float
    last_send: float
    last_answer: float
    latencies: bytes  # array("d") of seconds
    lateness: bytes


class _Driver:
    """The schedule of one process's connections, their sockets and the timed window."""

    def __init__(self, connections: list[_PacedConnection], schedule: Schedule) -> None:
        self.connections = connections
        self.schedule = schedule
        self.selector = selectors.EpollSelector()
        self.writing: set[_PacedConnection] = set()
        for conn in connections:
            conn.sock.setblocking(False)
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        self.slot = 0  # the next request due, over this process's connections
        self.slots = schedule.requests * len(connections)
        self.opened = 0.0
        self.cpu = 0.0
        self.answers_in_window = 0

    def next_due(self, t0: float) -> float:
        k, j = divmod(self.slot, len(self.connections))
        return self.schedule.due(t0, self.connections[j].number, k)

    def send_due(self, t0: float, now: float) -> None:
        """Send every request due by ``now``; late ones go at once, each with its due time."""
        while self.slot < self.slots:
            due = self.next_due(t0)
            if due > now:
                return
            k, j = divmod(self.slot, len(self.connections))
            conn = self.connections[j]
            conn.send(k, due, now)
            self.watch(conn)
            self.slot += 1

    def watch(self, conn: _PacedConnection) -> None:
        wants_write = bool(conn.outgoing)
        if wants_write != (conn in self.writing):
            mask = selectors.EVENT_READ
            if wants_write:
                mask |= selectors.EVENT_WRITE
                self.writing.add(conn)
            else:
                self.writing.discard(conn)
            self.selector.modify(conn.sock, mask, conn)

    def open_window(self, on_switch: Callable[[], None] | None) -> None:
        if on_switch is not None:
            on_switch()
        self.cpu = loadgen.own_cpu_seconds()
        self.opened = time.monotonic()

    def wait(self, timeout: float) -> list[tuple[selectors.SelectorKey, int]]:
        """The ready sockets, waiting at most ``timeout`` seconds (to the microsecond)."""
        if timeout > 0:
            ready, _, _ = select.select([self.selector.fileno()], [], [], timeout)
            if not ready:
                return []
        return self.selector.select(0)

    def handle(self, events: list[tuple[selectors.SelectorKey, int]]) -> int:
        """Serve the ready sockets; return how many answers arrived."""
        answers = 0
        for key, mask in events:
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                conn.flush()
                self.watch(conn)
            if mask & selectors.EVENT_READ:
                answers += conn.receive()
        if self.opened:
            self.answers_in_window += answers
        return answers


def _pace(
    driver: _Driver,
    t0: float,
    window_at: float,
    deadline: Deadline,
    on_switch: Callable[[], None] | None,
) -> None:
    """Send on schedule and read answers until every request is answered."""
    expected = driver.slots
    answered = 0
    while answered < expected:
        now = time.monotonic()
        if not driver.opened and now >= window_at:
            driver.open_window(on_switch)
        driver.send_due(t0, now)
        wait = 1.0
        if driver.slot < driver.slots:
            wait = driver.next_due(t0) - time.monotonic()
        if not driver.opened:
            wait = min(wait, window_at - time.monotonic())
        answered += driver.handle(driver.wait(min(wait, deadline.left())))
    if not driver.opened:
        driver.open_window(on_switch)


def _run_paced_group(
    host: str,
    port: int,
    schedule: Schedule,
    members: Sequence[tuple[int, ConnectionPlan]],
    tls_ca: str | None,
    deadline: Deadline,
    start: Callable[[], float],
    on_switch: Callable[[], None] | None,
) -> _GroupReport:
    """Connect ``members`` (number in the schedule, timed plan), then run the schedule.

    ``start`` returns when the timed window opens; the schedule starts the
    warm-up's length before it. With ``tls_ca`` (a CA file) the connections
    speak TLS.
    """
    requests = [
        [r for r, _ in warm_up_plan(plan, schedule).requests()] + [r for r, _ in plan.requests()]
        for _, plan in members
    ]
    sockets: list[socket.socket] = []
    tls = None if tls_ca is None else loadgen.tls_context(tls_ca)
    try:
        for _ in members:
            sockets.append(loadgen.connect(host, port, deadline, tls))
        loadgen.first_exchange(sockets, deadline)
        connections = [
            _PacedConnection(sock, number, reqs, schedule.warm)
            for sock, (number, _), reqs in zip(sockets, members, requests, strict=True)
        ]
        driver = _Driver(connections, schedule)
        window_at = start()
        try:
            _pace(driver, window_at - schedule.warm_seconds, window_at, deadline, on_switch)
        finally:
            driver.selector.close()
        return _group_report(driver, time.monotonic())
    finally:
        for sock in sockets:
            sock.close()


def _group_report(driver: _Driver, finished: float) -> _GroupReport:
    connections = driver.connections
    latencies = array.array("d")
    lateness = array.array("d")
    for conn in connections:
        latencies.extend(conn.latencies)
        lateness.extend(conn.lateness)
    return _GroupReport(
        requests=len(latencies),
        answers_in_window=driver.answers_in_window,
        opened=driver.opened,
        finished=finished,
        cpu=loadgen.own_cpu_seconds() - driver.cpu,
        last_send=max(conn.last_send for conn in connections),
        last_answer=max(conn.last_answer for conn in connections),
        latencies=latencies.tobytes(),
        lateness=lateness.tobytes(),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))]


@dataclass
class RateResult:
    """What one fixed-rate phase did, and whether the generator and the server kept up."""

    rate: float
    connections: int
    processes: int
    requests: int  # timed requests, all answered
    answers_in_window: int  # including warm-up requests answered in the window
    window_s: float  # from the window's opening to the last answer
    generator_cpu: float
    achieved_per_s: float  # timed requests answered per second
    sent_per_s: float  # timed requests sent per second
    latency_ms: dict[str, float] = field(default_factory=dict)
    send_late_ms: dict[str, float] = field(default_factory=dict)
    warm_stored: list[ConnectionPlan] = field(default_factory=list)

    @property
    def generator_load(self) -> float:
        """Generator CPU as a fraction of the cores its processes could use."""
        if self.window_s <= 0:
            return float("nan")
        return self.generator_cpu / (self.window_s * self.processes)

    @property
    def status(self) -> str:
        """``kept up``, or which side fell behind the schedule."""
        if self.sent_per_s < KEEP_UP * self.rate:
            return "generator fell behind"
        if self.achieved_per_s < KEEP_UP * self.rate:
            return "server fell behind"
        if self.send_late_ms["p99"] > GENERATOR_LATE_MS:
            return "kept up, sends late"
        return "kept up"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "connections": self.connections,
            "processes": self.processes,
            "requests": self.requests,
            "answers_in_window": self.answers_in_window,
            "window_s": self.window_s,
            "generator_cpu_s": self.generator_cpu,
            "generator_load": self.generator_load,
            "achieved_per_s": self.achieved_per_s,
            "sent_per_s": self.sent_per_s,
            "latency_ms": self.latency_ms,
            "send_late_ms": self.send_late_ms,
            "status": self.status,
        }


def _summary_ms(raw: Sequence[bytes]) -> dict[str, float]:
    values = array.array("d")
    for chunk in raw:
        values.frombytes(chunk)
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 0.50) * 1000,
        "p99": percentile(ordered, 0.99) * 1000,
        "max": (ordered[-1] if ordered else float("nan")) * 1000,
    }


def default_processes(rate: float, connections: int) -> int:
    """Enough processes that none is asked for more than :data:`RATE_PER_PROCESS`."""
    wanted = max(loadgen.default_processes(), math.ceil(rate / RATE_PER_PROCESS))
    return max(1, min(wanted, os.cpu_count() or 1, connections))


def fixed_rate(
    host: str,
    port: int,
    plans: Sequence[ConnectionPlan],
    schedule: Schedule,
    timeout: float,
    processes: int = 1,
    on_start: Callable[[], None] | None = None,
    tls_ca: str | None = None,
) -> RateResult:
    """Send ``plans`` (one connection each, one put per request) on ``schedule``.

    Every connection is opened and has had one exchange before the schedule
    starts. The warm-up's puts (:func:`warm_up_plan`) come first, then the
    plans' puts, without a pause; ``on_start`` is called as the timed window
    opens, after the warm-up. With ``processes > 1`` the connections are
    split over worker processes that keep one schedule. With ``tls_ca`` (a
    CA file) the connections speak TLS.
    """
    for plan in plans:
        if plan.batch != 1 or len(plan.keys) != 1 or plan.puts_per_key != schedule.timed:
            raise ValueError("a fixed-rate plan is one key, one put per request, schedule.timed")
    if len(plans) != schedule.connections:
        raise ValueError("one plan per connection of the schedule")
    processes = max(1, min(processes, len(plans)))
    deadline = Deadline(timeout)
    members = list(enumerate(plans))
    lead = START_MARGIN + schedule.warm_seconds
    if processes == 1:
        reports = [
            _run_paced_group(
                host,
                port,
                schedule,
                members,
                tls_ca,
                deadline,
                lambda: time.monotonic() + lead,
                on_start,
            )
        ]
    else:
        groups = [(host, port, schedule, members[i::processes], tls_ca) for i in range(processes)]
        reports = loadgen.run_in_workers(_run_paced_group, groups, deadline, lead, on_start)
    result = _combine(reports, schedule, processes)
    result.warm_stored = [warm_up_plan(plan, schedule) for plan in plans]
    return result


def _combine(reports: Sequence[_GroupReport], schedule: Schedule, processes: int) -> RateResult:
    opened = min(r.opened for r in reports)
    requests = sum(r.requests for r in reports)
    # Never less than one request's share of the schedule: no division by zero.
    shortest = 1 / schedule.rate
    return RateResult(
        rate=schedule.rate,
        connections=schedule.connections,
        processes=processes,
        requests=requests,
        answers_in_window=sum(r.answers_in_window for r in reports),
        window_s=max(r.finished for r in reports) - opened,
        generator_cpu=sum(r.cpu for r in reports),
        achieved_per_s=requests / max(shortest, max(r.last_answer for r in reports) - opened),
        sent_per_s=requests / max(shortest, max(r.last_send for r in reports) - opened),
        latency_ms=_summary_ms([r.latencies for r in reports]),
        send_late_ms=_summary_ms([r.lateness for r in reports]),
    )
