"""Load and soak test: many kinds of clients against a real ``trio-metrics serve`` process.

    python bench/soak.py [--duration 60] [--good 200] [--silent 20] [--garbage 20]
                         [--vanish 20] [--json PATH] [--server-arg=--idle-timeout=30 ...]

Starts the server on a free port of 127.0.0.1 and, for ``--duration`` seconds, runs from a
few worker processes: well-behaved request-response clients (puts and gets of their own
keys), clients that send but never read, clients that send garbage, and clients that
connect, send part of a command and vanish. Then it checks over a fresh connection that
every put the good clients saw acknowledged is stored with its last acknowledged value,
and that no wrong or cut-off command stored anything. Exit status 0 only if that holds and
the server is still alive. Standard library only; Linux (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import queue
import random
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from typing import IO, Any

HOST = "127.0.0.1"
OK = b"ok"
ANSWER_END = b"\n\n"
BASE_TIMESTAMP = 1_700_000_000
GOOD_PREFIX = "soak.good."
# Only wrong or cut-off commands name these keys: a stored point under one is a bug.
FORBIDDEN_PREFIXES = ("soak.garbage.", "soak.vanish.")
KEYS_PER_GOOD_CONNECTION = 4
# Answers still owed to good clients at the deadline are awaited this long; a put
# whose answer never comes may or may not be stored, and is checked as such.
DRAIN_SECONDS = 5.0
# Bytes one silent client sends at most: when the store is still small the server
# keeps reading (the answers are tiny), and an unbounded sender would only measure
# how fast the server swallows puts.
SILENT_BUDGET = 4 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
EXAMPLES = 5


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _note(examples: list[str], text: str) -> None:
    if len(examples) < EXAMPLES:
        examples.append(text)


def _connect(port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _random_value(rng: random.Random) -> str:
    """A value in one of the forms clients send; float() of it is what must be stored."""
    pick = rng.random()
    if pick < 0.4:
        return str(rng.randint(-1_000_000, 1_000_000))
    if pick < 0.7:
        return repr(rng.uniform(-1e9, 1e9))
    if pick < 0.9:
        return f"{rng.uniform(0, 100):.3f}"
    return f"{rng.randint(1, 9)}e{rng.randint(-30, 30)}"


# --- good clients -------------------------------------------------------------------------


@dataclass
class _Good:
    """One well-behaved connection: one request in flight at a time."""

    index: int
    keys: list[str]
    rng: random.Random
    # What the server acknowledged: key -> {timestamp: last acknowledged value}.
    points: dict[str, dict[int, float]]
    acked_timestamps: dict[str, list[int]]
    last_ts: dict[str, int]
    sock: socket.socket | None = None
    out: bytes = b""
    buf: bytearray = field(default_factory=bytearray)
    kind: str = ""  # "put", "get" or "" (nothing in flight)
    key: str = ""
    ts: int = 0
    value: float = 0.0
    sent_at: float = 0.0
    reconnect_at: float = 0.0


@dataclass
class _GoodTotals:
    requests: int = 0
    puts: int = 0
    gets: int = 0
    connections: int = 0
    connection_errors: int = 0
    protocol_errors: int = 0
    get_mismatches: int = 0
    examples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # The slowest requests: (latency ms, seconds into the load, what).
    slowest: list[tuple[float, float, str]] = field(default_factory=list)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    # Puts sent whose answer never came, unless a later put of the same point was
    # acknowledged: (key, ts) -> values; stored or not, both are fine.
    unanswered: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def lost(self, conn: _Good) -> None:
        self.unanswered.setdefault((conn.key, conn.ts), []).append(conn.value)


def _next_request(conn: _Good) -> bytes:
    rng = conn.rng
    key = rng.choice(conn.keys)
    conn.key = key
    known = conn.acked_timestamps[key]
    if known and rng.random() < 0.2:
        conn.kind = "get"
        return f"get {key}\n".encode()
    conn.kind = "put"
    pick = rng.random()
    if known and pick < 0.1:
        # Overwrite an acknowledged point: the check at the end sees whether the
        # last acknowledged value won.
        ts = rng.choice(known)
    elif pick < 0.15:
        # Out of order: fills a gap (an insert in the middle) or overwrites.
        ts = rng.randint(BASE_TIMESTAMP, conn.last_ts[key])
    else:
        ts = conn.last_ts[key] + rng.choice((1, 1, 1, 2, 3))
        conn.last_ts[key] = ts
    text = _random_value(rng)
    conn.ts = ts
    conn.value = float(text)
    return f"put {key} {text} {ts}\n".encode()


def _check_get(conn: _Good, block: bytes, totals: _GoodTotals) -> None:
    """A get of the connection's own key must show exactly what was acknowledged."""
    lines = block.split(b"\n")
    got: list[tuple[int, float]] = []
    problem = ""
    if lines[0] != OK:
        problem = "not ok"
    else:
        for line in lines[1:]:
            parts = line.split(b" ")
            if len(parts) != 3 or parts[0].decode("utf-8", "replace") != conn.key:
                problem = f"bad data line {line[:80]!r}"
                break
            got.append((int(parts[2]), float(parts[1])))
    if not problem and got != sorted(conn.points[conn.key].items()):
        problem = f"{len(got)} points, expected {len(conn.points[conn.key])}"
    if problem:
        totals.get_mismatches += 1
        _note(totals.examples, f"get {conn.key}: {problem}")


def _good_answer(conn: _Good, block: bytes, totals: _GoodTotals, now: float) -> None:
    totals.requests += 1
    latency = (now - conn.sent_at) * 1000.0
    totals.latencies_ms.append(latency)
    if latency > 200.0:
        # When the worst answers came shows what the server was busy with.
        totals.slowest.append((latency, conn.sent_at - totals.started, f"{conn.kind} {conn.key}"))
        if len(totals.slowest) > 100:
            totals.slowest.sort(reverse=True)
            del totals.slowest[EXAMPLES:]
    if conn.kind == "put":
        totals.puts += 1
        if block == OK:
            series = conn.points[conn.key]
            if conn.ts not in series:
                conn.acked_timestamps[conn.key].append(conn.ts)
            series[conn.ts] = conn.value
            totals.unanswered.pop((conn.key, conn.ts), None)
        else:
            totals.protocol_errors += 1
            _note(totals.examples, f"put {conn.key} answered {block[:80]!r}")
            totals.lost(conn)
    else:
        totals.gets += 1
        _check_get(conn, block, totals)
    conn.kind = ""


def _good_send(conn: _Good, sel: selectors.BaseSelector, data: bytes) -> None:
    assert conn.sock is not None
    sent = conn.sock.send(data)
    conn.out = data[sent:]
    if conn.out:
        sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)


def _good_broken(
    conn: _Good, sel: selectors.BaseSelector, totals: _GoodTotals, now: float, why: str
) -> None:
    totals.connection_errors += 1
    _note(totals.examples, f"connection {conn.index}: {why}")
    if conn.kind == "put":
        totals.lost(conn)
    conn.kind = ""
    if conn.sock is not None:
        sel.unregister(conn.sock)
        conn.sock.close()
        conn.sock = None
    conn.reconnect_at = now + 0.1


def _good_open(conn: _Good, sel: selectors.BaseSelector, port: int, totals: _GoodTotals) -> None:
    sock = _connect(port)
    sock.setblocking(False)
    conn.sock = sock
    conn.buf.clear()
    conn.out = b""
    totals.connections += 1
    sel.register(sock, selectors.EVENT_READ, conn)


def _good_warm_up(conn: _Good) -> None:
    """One round trip, so that the load starts on connections the server has accepted."""
    assert conn.sock is not None
    conn.sock.setblocking(True)
    conn.sock.settimeout(CONNECT_TIMEOUT)
    conn.sock.sendall(f"get {conn.keys[0]}\n".encode())
    answer = b""
    while not answer.endswith(ANSWER_END):
        chunk = conn.sock.recv(64)
        if not chunk:
            raise ConnectionError("closed by the server")
        answer += chunk
    if answer != b"ok\n\n":
        raise ConnectionError(f"warm-up answer {answer[:80]!r}")
    conn.sock.setblocking(False)


def _good_loop(
    conns: list[_Good],
    sel: selectors.BaseSelector,
    totals: _GoodTotals,
    port: int,
    deadline: float,
) -> None:
    for conn in conns:
        if conn.sock is not None:
            conn.sent_at = time.monotonic()
            _good_send(conn, sel, _next_request(conn))
    stop_at = deadline + DRAIN_SECONDS
    while True:
        now = time.monotonic()
        loading = now < deadline
        if not loading and (now >= stop_at or not any(c.kind for c in conns)):
            break
        if loading:
            for conn in conns:
                if conn.sock is None and now >= conn.reconnect_at:
                    try:
                        _good_open(conn, sel, port, totals)
                        conn.sent_at = time.monotonic()
                        _good_send(conn, sel, _next_request(conn))
                    except OSError as exc:
                        _good_broken(conn, sel, totals, now, f"reconnect: {exc}")
        wait = min(0.05, (deadline if loading else stop_at) - now)
        for key, mask in sel.select(max(wait, 0.0)):
            conn = key.data
            try:
                if mask & selectors.EVENT_WRITE and conn.out:
                    _good_send(conn, sel, conn.out)
                    if not conn.out:
                        sel.modify(key.fileobj, selectors.EVENT_READ, conn)
                if not mask & selectors.EVENT_READ:
                    continue
                data = conn.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                _good_broken(conn, sel, totals, time.monotonic(), repr(exc))
                continue
            now = time.monotonic()
            if not data:
                _good_broken(conn, sel, totals, now, "closed by the server")
                continue
            conn.buf += data
            end = conn.buf.find(ANSWER_END)
            if end < 0:
                continue
            if not conn.kind or end + 2 != len(conn.buf):
                # More bytes than one answer: we are out of step with the server.
                totals.protocol_errors += 1
                _good_broken(conn, sel, totals, now, f"unexpected bytes {bytes(conn.buf[:80])!r}")
                continue
            block = bytes(conn.buf[:end])
            conn.buf.clear()
            _good_answer(conn, block, totals, now)
            if now < deadline:
                conn.sent_at = time.monotonic()
                try:
                    _good_send(conn, sel, _next_request(conn))
                except OSError as exc:
                    _good_broken(conn, sel, totals, now, f"send: {exc!r}")
    for conn in conns:
        if conn.kind == "put":
            totals.lost(conn)
        if conn.sock is not None:
            conn.sock.close()
    sel.close()


def good_worker(
    name: str,
    first: int,
    count: int,
    port: int,
    seed: int,
    go: EventType,
    deadline: Any,
    results: Any,
) -> None:
    """Worker process: ``count`` good connections numbered from ``first``."""
    try:
        conns = []
        for index in range(first, first + count):
            keys = [f"{GOOD_PREFIX}{index}.{j}" for j in range(KEYS_PER_GOOD_CONNECTION)]
            conns.append(
                _Good(
                    index=index,
                    keys=keys,
                    rng=random.Random(seed * 1_000_003 + index),
                    points={k: {} for k in keys},
                    acked_timestamps={k: [] for k in keys},
                    last_ts={k: BASE_TIMESTAMP for k in keys},
                )
            )
        totals = _GoodTotals()
        sel = selectors.DefaultSelector()
        for conn in conns:
            try:
                _good_open(conn, sel, port, totals)
                _good_warm_up(conn)
            except OSError as exc:
                _good_broken(conn, sel, totals, time.monotonic(), f"connect: {exc!r}")
        results.put(("ready", name, None))
        if not go.wait(120):
            return
        cpu_at_start = _cpu_seconds()
        totals.started = time.monotonic()
        _good_loop(conns, sel, totals, port, deadline.value)
        acked = [
            (key, ts, value)
            for conn in conns
            for key, series in conn.points.items()
            for ts, value in series.items()
        ]
        result = {
            "requests": totals.requests,
            "puts": totals.puts,
            "gets": totals.gets,
            "connections": totals.connections,
            "connection_errors": totals.connection_errors,
            "protocol_errors": totals.protocol_errors,
            "get_mismatches": totals.get_mismatches,
            "examples": totals.examples,
            "slowest": sorted(totals.slowest, reverse=True)[:EXAMPLES],
            "latencies_ms": totals.latencies_ms.tobytes(),
            "acked": acked,
            "unanswered": [(k, ts, v) for (k, ts), vs in totals.unanswered.items() for v in vs],
            "cpu_s": _cpu_seconds() - cpu_at_start,
        }
        results.put(("result", name, result))
    except BaseException:
        results.put(("error", name, traceback.format_exc()))
        raise


# --- silent, garbage and vanishing clients ------------------------------------------------


def _silent_block(index: int, rng: random.Random) -> bytes:
    """About 64 KiB of commands; the puts reuse 100 points, so the store stays small."""
    lines = []
    size = 0
    while size < 64 * 1024:
        if rng.random() < 0.25:
            line = "get *\n"
        else:
            line = f"put soak.silent.{index} {_random_value(rng)} {rng.randrange(100)}\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def _silent_run(
    socks: list[socket.socket], seed: int, start: float, deadline: float, out: dict[str, Any]
) -> None:
    rng = random.Random(seed + 1)
    # Staggered starts: a later one meets a big store, and its "get *" answers
    # fill the socket buffers after a few commands.
    starts = [start + rng.uniform(0.05, 0.5) * (deadline - start) for _ in socks]
    blocks = [_silent_block(i, rng) for i in range(len(socks))]
    sent = [0] * len(socks)
    alive = [True] * len(socks)
    blocked_at: list[float | None] = [None] * len(socks)
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        for i, sock in enumerate(socks):
            if not alive[i] or now < starts[i] or sent[i] >= SILENT_BUDGET:
                continue
            # Keep the pipe full: send until the socket would block; later rounds
            # find out whether the server has read more (or closed the connection).
            view = memoryview(blocks[i])
            try:
                while sent[i] < SILENT_BUDGET and time.monotonic() < deadline:
                    offset = sent[i] % len(view)
                    sent[i] += sock.send(view[offset:])
            except BlockingIOError:
                if blocked_at[i] is None:
                    blocked_at[i] = time.monotonic() - starts[i]
            except OSError:
                alive[i] = False
                out["closed_by_server"] += 1
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    out["bytes_sent"] = sum(sent)
    out["blocked"] = sum(1 for b in blocked_at if b is not None)
    out["budget_reached"] = sum(1 for s in sent if s >= SILENT_BUDGET)


_WRONG_COMMANDS = [
    b"got soak.garbage.word 1 2\n",
    b"PUT soak.garbage.upper 1 2\n",
    b"put soak.garbage.nan nan 1\n",
    b"put soak.garbage.inf -inf 1\n",
    b"put soak.garbage.neg 1 -5\n",
    b"put soak.garbage.plus 1 +5\n",
    b"put soak.garbage.frac 1 2.5\n",
    b"put soak.garbage.big 1 9223372036854775808\n",
    b"put soak.garbage.args 1\n",
    b"put soak.garbage.args 1 2 3\n",
    b"put * 1 2\n",
    b"get a b\n",
    b"get\n",
    b"stats now\n",
    b"put soak.garbage.\xff\xfe 1 2\n",
    b"put soak.garbage.nul\x00 1 2\n",
    b"\x00\x00get *\x00\n",
    # A lone \r ends nothing: each of these is one wrong line, never two commands.
    b"get soak.garbage.cr\rput soak.garbage.cr 5 6\n",
    b"put soak.garbage.cr 1 2\rx\r\n",
    b"put soak.garbage.cr\r1 2\n",
]


def _garbage_chunk(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.5:
        return rng.randbytes(rng.randint(1, 4096))
    if pick < 0.53:
        # Longer than --max-line-length (64 KiB by default), and no newline.
        return rng.randbytes(rng.randint(70_000, 300_000)).replace(b"\n", b"x")
    if pick < 0.65:
        return b"\r" * rng.randint(1, 100) + rng.randbytes(rng.randint(1, 100))
    # A newline first, so that the wrong command is a line of its own.
    return b"\n" + b"".join(rng.choice(_WRONG_COMMANDS) for _ in range(rng.randint(1, 20)))


@dataclass
class _Garbage:
    sock: socket.socket | None = None
    out: bytes = b""
    next_at: float = 0.0


def _garbage_run(port: int, count: int, seed: int, deadline: float, out: dict[str, Any]) -> None:
    rng = random.Random(seed + 2)
    sel = selectors.DefaultSelector()
    clients = [_Garbage() for _ in range(count)]

    def open_client(client: _Garbage) -> None:
        try:
            sock = _connect(port)
        except OSError:
            out["connect_errors"] += 1
            client.next_at = time.monotonic() + 0.1
            return
        sock.setblocking(False)
        client.sock = sock
        client.out = b""
        out["connections"] += 1
        sel.register(sock, selectors.EVENT_READ, client)

    def drop(client: _Garbage) -> None:
        out["closed_by_server"] += 1
        assert client.sock is not None
        sel.unregister(client.sock)
        client.sock.close()
        client.sock = None
        client.next_at = time.monotonic() + 0.1

    for client in clients:
        open_client(client)
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        for client in clients:
            if client.sock is None and now >= client.next_at:
                open_client(client)
            elif client.sock is not None and not client.out and now >= client.next_at:
                client.out = _garbage_chunk(rng)
                # Paced, so that garbage is a steady share of the load, not all of it.
                client.next_at = now + rng.uniform(0.01, 0.05)
                # Asked for writability only while there is something to write:
                # a socket is nearly always writable, and the loop would spin.
                sel.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        for key, mask in sel.select(min(0.01, max(0.0, deadline - now))):
            client = key.data
            assert client.sock is not None
            try:
                if mask & selectors.EVENT_READ:
                    data = client.sock.recv(65536)
                    if not data:
                        drop(client)
                        continue
                    out["bytes_received"] += len(data)
                if mask & selectors.EVENT_WRITE and client.out:
                    sent = client.sock.send(client.out)
                    out["bytes_sent"] += sent
                    client.out = client.out[sent:]
                    if not client.out:
                        sel.modify(client.sock, selectors.EVENT_READ, client)
            except BlockingIOError:
                continue
            except OSError:
                drop(client)
    for client in clients:
        if client.sock is not None:
            client.sock.close()
    sel.close()


def _vanish_run(
    port: int, index: int, seed: int, deadline: float, out: dict[str, Any], lock: threading.Lock
) -> None:
    rng = random.Random(seed * 7919 + index)
    key = f"soak.vanish.{index}"
    # Each is a command cut off before its newline; none may ever be stored.
    parts = [
        b"pu",
        f"put {key}".encode(),
        f"put {key} 1".encode(),
        f"put {key} 1 1700000".encode(),
        f"put {key} 1 1700000000".encode(),
        f"put {key} 42.5 1700000000\r".encode(),
        b"get soak.good.0.",
        b"get *",
    ]
    reset = index % 2 == 0
    made = 0
    errors: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            sock = _connect(port, timeout=1.0)
        except OSError as exc:
            what = f"connect: {type(exc).__name__}"
            errors[what] = errors.get(what, 0) + 1
            time.sleep(0.1)
            continue
        made += 1
        try:
            sock.sendall(rng.choice(parts))
            if rng.random() < 0.5:
                # Give the server time to read the part before the peer is gone.
                time.sleep(rng.uniform(0.001, 0.01))
            if reset:
                # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as exc:
            what = f"send: {type(exc).__name__}"
            errors[what] = errors.get(what, 0) + 1
        finally:
            sock.close()
        time.sleep(rng.uniform(0.01, 0.04))
    with lock:
        out["connections"] += made
        out["rst" if reset else "fin"] += made
        for what, count in errors.items():
            out["errors"] += count
            out["error_kinds"][what] = out["error_kinds"].get(what, 0) + count


def misc_worker(
    name: str,
    port: int,
    counts: tuple[int, int, int],
    seed: int,
    go: EventType,
    deadline: Any,
    results: Any,
) -> None:
    """Worker process: the silent, garbage and vanishing clients, as threads."""
    try:
        silent, garbage, vanish = counts
        silent_socks = []
        for _ in range(silent):
            sock = _connect(port)
            sock.setblocking(False)
            silent_socks.append(sock)
        stats: dict[str, dict[str, Any]] = {
            "silent": {"connections": silent, "closed_by_server": 0},
            "garbage": dict.fromkeys(
                (
                    "clients",
                    "connections",
                    "connect_errors",
                    "closed_by_server",
                    "bytes_sent",
                    "bytes_received",
                ),
                0,
            ),
            "vanish": dict.fromkeys(("clients", "connections", "rst", "fin", "errors"), 0),
        }
        stats["vanish"]["error_kinds"] = {}
        stats["garbage"]["clients"] = garbage
        stats["vanish"]["clients"] = vanish
        results.put(("ready", name, None))
        if not go.wait(120):
            return
        cpu_at_start = _cpu_seconds()
        start = time.monotonic()
        end = deadline.value
        lock = threading.Lock()
        threads = [
            threading.Thread(
                target=_silent_run, args=(silent_socks, seed, start, end, stats["silent"])
            ),
            threading.Thread(
                target=_garbage_run, args=(port, garbage, seed, end, stats["garbage"])
            ),
        ]
        threads += [
            threading.Thread(target=_vanish_run, args=(port, i, seed, end, stats["vanish"], lock))
            for i in range(vanish)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for sock in silent_socks:
            sock.close()
        results.put(("result", name, {**stats, "cpu_s": _cpu_seconds() - cpu_at_start}))
    except BaseException:
        results.put(("error", name, traceback.format_exc()))
        raise


# --- the server process -------------------------------------------------------------------


class Server:
    """``python -m trio_metrics serve`` on a free port, with its stderr kept in a file."""

    def __init__(self, extra: Sequence[str], stderr: IO[bytes]) -> None:
        self.stderr = stderr
        command = [sys.executable, "-m", "trio_metrics", "serve", "--host", HOST, "--port", "0"]
        command += ["--log-level", "warning", *extra]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL
        )
        self.pid = self.process.pid
        self.port = self._read_port()
        # Anything it prints later must not fill the pipe and stall it.
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _read_port(self) -> int:
        stdout = self.process.stdout
        assert stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(stdout, selectors.EVENT_READ)
        give_up = time.monotonic() + 30
        seen = b""
        while time.monotonic() < give_up:
            if not sel.select(0.1):
                if self.process.poll() is not None:
                    break
                continue
            line = stdout.readline()
            if not line:
                break
            seen += line
            match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                sel.close()
                return int(match.group(1))
        sel.close()
        raise RuntimeError(f"server gave no banner; stdout {seen!r}, stderr {self.log()[-500:]!r}")

    def _drain_stdout(self) -> None:
        assert self.process.stdout is not None
        while self.process.stdout.read(65536):
            pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def cpu_seconds(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                # Fields after the ")" that closes the command name; utime, stime are 14, 15.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


class RssSampler(threading.Thread):
    """Samples the server's resident set every half second."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            rss = self.server.rss_kib()
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            if self.done.wait(0.5):
                return

    def peak(self, since: float = 0.0, until: float = math.inf) -> int:
        return max((kib for t, kib in self.samples if since <= t <= until), default=0)


# --- verification ---------------------------------------------------------------------------


def request(port: int, command: bytes, timeout: float = 60.0) -> bytes:
    """Send one command over a new connection and return its answer without the ``\\n\\n``."""
    with _connect(port, timeout) as sock:
        sock.sendall(command)
        buf = bytearray()
        give_up = time.monotonic() + timeout
        while True:
            # An answer ends at its first empty line; search only the new bytes.
            start = max(len(buf) - 1, 0)
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"server closed the connection after {len(buf)} bytes")
            buf += chunk
            end = buf.find(ANSWER_END, start)
            if end >= 0:
                return bytes(buf[:end])
            if time.monotonic() > give_up:
                raise TimeoutError(f"no complete answer to {command!r} in {timeout} s")


def parse_points(block: bytes) -> list[tuple[str, float, int]]:
    """The data lines of an ``ok`` answer, per PROTOCOL.md; raises ValueError otherwise."""
    lines = block.split(b"\n")
    if lines[0] != OK:
        raise ValueError(f"answer starts with {lines[0][:80]!r}")
    points = []
    for line in lines[1:]:
        parts = line.decode("utf-8").split(" ")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"bad data line {line[:80]!r}")
        points.append((parts[0], float(parts[1]), int(parts[2])))
    return points


def verify(
    port: int,
    acked: dict[tuple[str, int], float],
    unanswered: dict[tuple[str, int], set[float]],
) -> dict[str, Any]:
    """Every acknowledged (key, ts) must be stored with its last acknowledged value."""
    result: dict[str, Any] = {
        "passed": False,
        "acked_points": len(acked),
        "unanswered_puts": len(unanswered),
        "stored_points": 0,
        "missing": 0,
        "wrong_value": 0,
        "unexpected_points": 0,
        "forbidden_keys": 0,
        "order_errors": 0,
        "examples": [],
        "error": None,
    }
    examples: list[str] = result["examples"]
    try:
        started = time.monotonic()
        points = parse_points(request(port, b"get *\n", timeout=120.0))
        result["get_all_seconds"] = round(time.monotonic() - started, 3)
    except (OSError, ValueError) as exc:
        result["error"] = f"get * failed: {exc!r}"
        return result
    result["stored_points"] = len(points)
    stored: dict[tuple[str, int], float] = {}
    forbidden: set[str] = set()
    last: tuple[str, int] | None = None
    for key, value, ts in points:
        if last is not None and last[0] == key and ts <= last[1]:
            result["order_errors"] += 1
            _note(examples, f"{key}: timestamp {ts} after {last[1]}")
        last = (key, ts)
        if key.startswith(GOOD_PREFIX):
            stored[(key, ts)] = value
        elif key.startswith(FORBIDDEN_PREFIXES):
            forbidden.add(key)
    result["forbidden_keys"] = len(forbidden)
    for key in sorted(forbidden)[:EXAMPLES]:
        _note(examples, f"stored from a wrong or cut-off command: {key!r}")
    for point, value in acked.items():
        got = stored.get(point)
        allowed = unanswered.get(point, set()) | {value}
        if got is None:
            result["missing"] += 1
            _note(examples, f"missing {point[0]} {point[1]} (acknowledged {value!r})")
        elif got not in allowed:
            result["wrong_value"] += 1
            _note(examples, f"{point[0]} {point[1]} is {got!r}, last acknowledged {value!r}")
    for point, got in stored.items():
        if point not in acked and got not in unanswered.get(point, ()):
            result["unexpected_points"] += 1
            _note(examples, f"never acknowledged: {point[0]} {got!r} {point[1]}")
    result["passed"] = not (
        result["missing"]
        or result["wrong_value"]
        or result["unexpected_points"]
        or result["forbidden_keys"]
        or result["order_errors"]
    )
    return result


def fetch_stats(port: int) -> dict[str, int]:
    return {
        key.removeprefix("trio_metrics."): int(value)
        for key, value, _ts in parse_points(request(port, b"stats\n", timeout=30.0))
    }


# --- orchestration --------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _ensure_fd_limit(needed: int) -> str | None:
    """Raise the soft open-files limit (inherited by every process started later) if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"soak: need about {needed} open files per process, the hard limit is {hard}"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return f"raised the open-files limit from {soft} to {needed}"


def _start_workers(
    args: argparse.Namespace, port: int, seed: int
) -> tuple[list[multiprocessing.process.BaseProcess], Any, EventType, Any]:
    # spawn, not fork: this process runs threads (the sampler, the stdout reader).
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    deadline = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs: list[multiprocessing.process.BaseProcess] = []
    workers = max(1, min(args.workers, args.good)) if args.good else 0
    first = 0
    for w in range(workers):
        count = args.good // workers + (1 if w < args.good % workers else 0)
        procs.append(
            ctx.Process(
                target=good_worker,
                args=(f"good{w}", first, count, port, seed, go, deadline, results),
                name=f"soak-good{w}",
            )
        )
        first += count
    if args.silent or args.garbage or args.vanish:
        counts = (args.silent, args.garbage, args.vanish)
        procs.append(
            ctx.Process(
                target=misc_worker,
                args=("misc", port, counts, seed, go, deadline, results),
                name="soak-misc",
            )
        )
    for proc in procs:
        proc.start()
    return procs, results, go, deadline


def _collect(
    procs: Sequence[multiprocessing.process.BaseProcess],
    results: Any,
    kind: str,
    timeout: float,
) -> dict[str, Any]:
    """Wait for one ``kind`` message from every worker; raise if one fails or dies."""
    got: dict[str, Any] = {}
    give_up = time.monotonic() + timeout
    while len(got) < len(procs):
        try:
            what, name, payload = results.get(timeout=0.5)
        except queue.Empty:
            if time.monotonic() > give_up:
                raise RuntimeError(f"workers did not report {kind!r} in {timeout:.0f} s") from None
            dead = [p.name for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"worker process died: {', '.join(map(str, dead))}") from None
            continue
        if what == "error":
            raise RuntimeError(f"worker {name} failed:\n{payload}")
        if what == kind:
            got[name] = payload
    return got


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Run the soak; return the report and the list of reasons it failed (empty: passed)."""
    with tempfile.TemporaryFile() as server_log:
        return _run(args, server_log)


def _run(args: argparse.Namespace, server_log: IO[bytes]) -> tuple[dict[str, Any], list[str]]:
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    failures: list[str] = []
    notes: list[str] = []
    concurrent = args.good + args.silent + args.garbage + args.vanish
    fd_note = _ensure_fd_limit(concurrent + 200)
    if fd_note:
        notes.append(fd_note)
    cpu_main_start = _cpu_seconds()
    server = Server(args.server_arg, server_log)
    sampler = RssSampler(server)
    sampler.start()
    procs: list[multiprocessing.process.BaseProcess] = []
    report: dict[str, Any] = {"seed": seed, "server_pid": server.pid, "port": server.port}
    try:
        procs, results, go, deadline = _start_workers(args, server.port, seed)
        _collect(procs, results, "ready", 120)
        server_cpu_start = server.cpu_seconds() or 0.0
        load_start = time.monotonic()
        deadline.value = load_start + args.duration
        go.set()
        done = _collect(procs, results, "result", args.duration + DRAIN_SECONDS + 120)
        load_end = time.monotonic()
        for proc in procs:
            proc.join(30)
        server_cpu_end = server.cpu_seconds()
        server_cpu_load = None if server_cpu_end is None else server_cpu_end - server_cpu_start
        alive_after_load = server.alive()

        goods = [v for k, v in done.items() if k.startswith("good")]
        misc = done.get("misc", {})
        acked: dict[tuple[str, int], float] = {}
        unanswered: dict[tuple[str, int], set[float]] = {}
        latencies: list[float] = []
        for result in goods:
            acked.update(((key, ts), value) for key, ts, value in result["acked"])
            for key, ts, value in result["unanswered"]:
                unanswered.setdefault((key, ts), set()).add(value)
            latencies.extend(array("d", result["latencies_ms"]))
        latencies.sort()
        # New requests stop at the deadline; the few answers awaited after it
        # are counted, but not the time taken to hand the results back.
        elapsed = args.duration
        requests = sum(r["requests"] for r in goods)
        report["duration_s"] = elapsed
        report["wall_s"] = round(load_end - load_start, 2)
        report["good"] = {
            "connections": args.good,
            "connects": sum(r["connections"] for r in goods),
            "requests": requests,
            "puts": sum(r["puts"] for r in goods),
            "gets": sum(r["gets"] for r in goods),
            "throughput_rps": round(requests / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_ms": {
                "p50": round(_percentile(latencies, 0.50), 3),
                "p99": round(_percentile(latencies, 0.99), 3),
                "max": round(latencies[-1] if latencies else 0.0, 3),
            },
            "connection_errors": sum(r["connection_errors"] for r in goods),
            "protocol_errors": sum(r["protocol_errors"] for r in goods),
            "get_mismatches": sum(r["get_mismatches"] for r in goods),
            "examples": [e for r in goods for e in r["examples"]][:EXAMPLES],
            "slowest": [
                {"ms": round(ms, 1), "at_s": round(at, 2), "request": what}
                for ms, at, what in sorted(
                    (tuple(s) for r in goods for s in r["slowest"]), reverse=True
                )[:EXAMPLES]
            ],
        }
        for kind in ("silent", "garbage", "vanish"):
            if kind in misc:
                report[kind] = misc[kind]
        if alive_after_load:
            report["verification"] = verify(server.port, acked, unanswered)
            try:
                report["server_stats"] = fetch_stats(server.port)
            except (OSError, ValueError) as exc:
                report["server_stats"] = {}
                failures.append(f"stats failed: {exc!r}")
        else:
            report["verification"] = {"passed": False, "error": "server died during the load"}
            report["server_stats"] = {}
        alive = server.alive()
        sampler.done.set()
        sampler.join()
        generator_cpu = sum(r["cpu_s"] for r in done.values())
        report["generator"] = {
            "processes": len(procs),
            "cpu_s": round(generator_cpu + _cpu_seconds() - cpu_main_start, 2),
            "cpu_s_during_load": round(generator_cpu, 2),
            "cpu_s_by_worker": {name: round(r["cpu_s"], 2) for name, r in sorted(done.items())},
        }
        samples = sampler.samples
        load_stop = load_start + args.duration
        during = [kib for t, kib in samples if load_start <= t <= load_stop]
        report["server"] = {
            "alive": alive,
            "peak_rss_mib": round(sampler.peak() / 1024, 1),
            "peak_rss_during_load_mib": round(sampler.peak(load_start, load_stop) / 1024, 1),
            "rss_at_load_start_mib": round((during[0] if during else 0) / 1024, 1),
            "rss_at_load_end_mib": round((during[-1] if during else 0) / 1024, 1),
            "cpu_s_during_load": None if server_cpu_load is None else round(server_cpu_load, 2),
            # Every ~5 s, to tell a growing store from growth that would not stop.
            "rss_mib_every_5s": [round(kib / 1024, 1) for _t, kib in samples[::10]],
        }
        if not alive:
            failures.append(f"the server process exited with status {server.process.returncode}")
        if not report["verification"]["passed"]:
            failures.append("verification failed")
    finally:
        sampler.done.set()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        status = server.stop()
        log = server.log()
        log_lines = log.splitlines()
        report.setdefault("server", {})["exit_status_after_sigterm"] = status
        report["server"]["log_lines"] = len(log_lines)
        report["server"]["log_tracebacks"] = log.count("Traceback")
        report["server"]["log_tail"] = log_lines[-10:]
        report["notes"] = notes
    return report, failures


def print_report(report: dict[str, Any]) -> None:
    good = report["good"]
    lat = good["latency_ms"]
    server = report["server"]
    print(
        f"soak: {report['duration_s']} s, seed {report['seed']}, server pid {report['server_pid']}"
    )
    print(
        f"good:     {good['connections']} connections, {good['requests']} requests "
        f"({good['puts']} puts, {good['gets']} gets), {good['throughput_rps']} req/s"
    )
    print(f"latency:  p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    print(
        f"          {good['connection_errors']} connection errors, {good['protocol_errors']}"
        f" protocol errors, {good['get_mismatches']} wrong get answers"
    )
    for example in good["examples"]:
        print(f"          e.g. {example}")
    if good["slowest"]:
        print(
            "slowest:  "
            + ", ".join(
                f"{s['ms']:.0f} ms at {s['at_s']:.1f} s ({s['request']})" for s in good["slowest"]
            )
        )
    if "silent" in report:
        s = report["silent"]
        print(
            f"silent:   {s['connections']} connections, {s['bytes_sent'] / 2**20:.1f} MiB sent, "
            f"{s['blocked']} blocked the sender, {s['closed_by_server']} closed by the server"
        )
    if "garbage" in report:
        g = report["garbage"]
        print(
            f"garbage:  {g['clients']} clients, {g['connections']} connections made, "
            f"{g['bytes_sent'] / 2**20:.1f} MiB sent, {g['bytes_received'] / 2**20:.2f} MiB "
            f"received, {g['closed_by_server']} closed by the server"
        )
    if "vanish" in report:
        v = report["vanish"]
        print(
            f"vanish:   {v['clients']} clients, {v['connections']} connections made "
            f"({v['rst']} RST, {v['fin']} FIN), {v['errors']} errors"
            + "".join(f"; {what}: {n}" for what, n in sorted(v["error_kinds"].items()))
        )
    print(
        f"server:   {'alive' if server.get('alive') else 'DEAD'}, peak RSS "
        f"{server['peak_rss_mib']} MiB (during load {server['peak_rss_during_load_mib']}, "
        f"load start {server['rss_at_load_start_mib']}, load end {server['rss_at_load_end_mib']}),"
        f" CPU {server['cpu_s_during_load']} s during load"
    )
    gen = report["generator"]
    print(
        f"generator: {gen['processes']} processes, CPU {gen['cpu_s']} s "
        f"({gen['cpu_s_during_load']} s in the workers during the load)"
    )
    ver = report["verification"]
    if ver.get("passed"):
        print(
            f"verify:   PASSED: all {ver['acked_points']} acknowledged points stored with their "
            f"last acknowledged value ({ver['unanswered_puts']} unanswered puts at the end; "
            f"{ver['stored_points']} points stored)"
        )
    else:
        details = ", ".join(
            f"{ver[k]} {k.replace('_', ' ')}"
            for k in ("missing", "wrong_value", "unexpected_points", "forbidden_keys")
            if ver.get(k)
        )
        print(f"verify:   FAILED: {ver.get('error') or details}")
    for example in ver.get("examples", []):
        print(f"          e.g. {example}")
    stats = report.get("server_stats", {})
    print("stats:    " + " ".join(f"{k}={v}" for k, v in stats.items()))
    if server.get("log_tracebacks"):
        print(f"server log: {server['log_tracebacks']} tracebacks; last lines:")
        for line in server["log_tail"]:
            print(f"          {line}")
    for note in report.get("notes", []):
        print(f"note:     {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--good", type=int, default=200, help="well-behaved connections")
    parser.add_argument("--silent", type=int, default=20, help="clients that never read")
    parser.add_argument("--garbage", type=int, default=20, help="clients sending random bytes")
    parser.add_argument("--vanish", type=int, default=20, help="clients that cut off and close")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for 'trio-metrics serve', repeatable; "
        "write options as --server-arg=--idle-timeout=30",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="processes for the good clients (default: half the CPUs; the server needs one)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a random one)")
    args = parser.parse_args(argv)
    for name in ("good", "silent", "garbage", "vanish"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must not be negative")
    if args.duration <= 0 or args.workers < 1:
        parser.error("--duration and --workers must be positive")
    try:
        report, failures = run(args)
    except (RuntimeError, OSError) as exc:
        print(f"soak: FAILED: {exc}", file=sys.stderr)
        return 1
    print_report(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({**report, "passed": not failures, "failures": failures}, out, indent=2)
            out.write("\n")
    if failures:
        print(f"soak: FAILED: {'; '.join(failures)}", file=sys.stderr)
        return 1
    print("soak: PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
