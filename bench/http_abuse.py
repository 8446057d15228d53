"""Abuse the HTTP port on purpose and measure what it costs the server.

    python bench/http_abuse.py                      # every scenario, full sizes (~2 min)
    python bench/http_abuse.py --quick              # small sizes, a smoke run (seconds)
    python bench/http_abuse.py --scenarios glob-bomb,series

Each scenario starts a fresh ``python -m trio_metrics serve --port 0
--http-port 0`` and a pinger: a thread doing ``put`` round trips on the main
port back to back; the longest round trip is the worst stall the HTTP work
caused on the event loop. Memory is the server's own, from
``/proc/PID/status``: ``VmRSS``, and ``VmHWM`` after resetting it through
``/proc/PID/clear_refs`` at the start of the measured step.

Scenarios:

- ``glob-bomb``: distinct ``/api/v1/keys?match=`` patterns of 16,300 ``[``
  (each took 5-7 s of the event loop through fnmatch, and stayed cached).
- ``keys``: a listing of every key, and of a prefix, over 1,000,000 keys.
- ``series``: a read of a 2,000,000-point key, whole (with
  ``--http-max-points 2000000``) and reduced for a chart.
- ``stalled-bodies``: 300 connections each declaring a 1 MiB body, sending
  1,040,000 bytes of it, then a byte a second; ``/healthz`` meanwhile.
- ``connect-burst``: 1,000 connections opened at once, each asking ``/healthz``.

Figures are printed as ``scenario  figure  value  target``; the command
exits 1 if an answer is wrong (a status, a count), never for a timing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    bombs: int = 40
    globs: int = 500
    keys: int = 1_000_000
    points: int = 2_000_000
    stalled: int = 300
    body: int = MIB
    sent: int = 1_040_000
    burst: int = 1_000
    # The pinger runs alone this long first: its longest round trip then is
    # the machine's noise (other processes, the VM), not the HTTP work's.
    noise: float = 2.0


FULL = Sizes()
QUICK = Sizes(noise=0.3, bombs=3, globs=3, keys=5_000, points=20_000, stalled=20, burst=50)


class Failed(Exception):
    """An answer was wrong."""


# --- figures ------------------------------------------------------------------


@dataclass
class Figures:
    rows: list[tuple[str, str, str, str]]

    def add(self, scenario: str, name: str, value: str, target: str = "") -> None:
        self.rows.append((scenario, name, value, target))
        print(f"{scenario:15} {name:48} {value:>14}  {target}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def mib(value: float) -> str:
    return f"{value:,.1f} MiB"


# --- the server and the pinger ------------------------------------------------


class Server:
    """``trio-metrics serve`` with the HTTP port, from this checkout."""

    def __init__(self, *flags: str) -> None:
        command = [sys.executable, "-m", "trio_metrics", "serve", "--log-level", "warning"]
        self.process = subprocess.Popen(
            [*command, "--port", "0", "--http-port", "0", *flags],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()
        dashboard = self.process.stdout.readline()
        try:
            self.port = int(banner.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
            self.http_port = int(dashboard.strip().rstrip("/").rsplit(":", 1)[1])
        except (IndexError, ValueError):
            self.stop()
            raise SystemExit(f"the server did not start: {banner!r} {dashboard!r}") from None

    def memory(self, field: str) -> float:
        """``VmRSS`` or ``VmHWM`` in MiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        raise SystemExit(f"no {field} for the server")

    def reset_peak(self) -> None:
        """Make ``VmHWM`` the current RSS (Linux: 5 > clear_refs)."""
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as clear:
            clear.write("5")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


class Pinger:
    """Main-port ``put`` round trips, back to back, in a process of its own (so that
    the bench's own work never shows as a stall); ``longest`` in seconds."""

    def __init__(self, port: int) -> None:
        self._longest = multiprocessing.Value("d", 0.0)
        self._done = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_ping, args=(port, self._longest, self._done), daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._done.set()
        self._process.join(timeout=30)

    @property
    def longest(self) -> float:
        value: float = self._longest.value
        return value

    def reset(self) -> None:
        self._longest.value = 0.0


def _ping(port: int, longest: Any, done: Any) -> None:
    with socket.create_connection((HOST, port), timeout=60) as sock:
        count = 0
        while not done.is_set():
            started = time.perf_counter()
            sock.sendall(b"put bench.ping 1 %d\n" % count)
            answer = b""
            while not answer.endswith(b"\n\n"):
                answer += sock.recv(100)
            seconds = time.perf_counter() - started
            if seconds > longest.value:
                longest.value = seconds
            count += 1
            time.sleep(0.002)


@contextmanager
def serving(
    scenario: str, sizes: Sizes, figures: Figures, *flags: str
) -> Iterator[tuple[Server, Pinger]]:
    """A server and its pinger; first the pinger alone for a while, as the noise floor."""
    server = Server(*flags)
    pinger = Pinger(server.port)
    pinger.start()
    try:
        time.sleep(sizes.noise)
        figures.add(
            scenario, "longest main-port round trip, no HTTP work (noise)", ms(pinger.longest)
        )
        pinger.reset()
        yield server, pinger
    finally:
        pinger.stop()
        server.stop()


def load_points(port: int, lines: Iterator[bytes], batch: int = 5_000) -> None:
    """Send put lines pipelined, ``batch`` at a time, checking every answer."""
    with socket.create_connection((HOST, port), timeout=120) as sock:
        while chunk := [line for _, line in zip(range(batch), lines, strict=False)]:
            sock.sendall(b"".join(chunk))
            expected = b"ok\n\n" * len(chunk)
            answer = bytearray()
            while len(answer) < len(expected):
                answer += sock.recv(1 << 20)
            if answer != expected:
                raise Failed(f"a put was refused: {bytes(answer[:80])!r}")


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, float]:
    """One request on a new connection: status, body, seconds until the body was read."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started
    finally:
        connection.close()


# --- scenarios ----------------------------------------------------------------


def glob_bomb(sizes: Sizes, figures: Figures) -> None:
    with serving("glob-bomb", sizes, figures) as (server, pinger):
        load_points(server.port, (b"put web.host%d.cpu 1 1\n" % i for i in range(1000)))
        time.sleep(0.2)
        before = server.memory("VmRSS")
        pinger.reset()
        slowest = 0.0
        for number in range(sizes.bombs):
            status, body, seconds = get(
                server.http_port, "/api/v1/keys?match=" + "[" * 16_300 + f"x{number}"
            )
            check(status == 400 and b"at most 1024" in body, f"the bomb got {status} {body[:80]!r}")
            slowest = max(slowest, seconds)
        figures.add(
            "glob-bomb", f"slowest of {sizes.bombs} distinct bombs (400)", ms(slowest), "<= 1 s"
        )
        figures.add(
            "glob-bomb", "longest main-port round trip meanwhile", ms(pinger.longest), "<= 250 ms"
        )
        figures.add("glob-bomb", "RSS growth over the bombs", mib(server.memory("VmRSS") - before))
        # Just under the limit, hostile but valid, each one new: compiled,
        # matched against every key, and never cached.
        pinger.reset()
        before = server.memory("VmRSS")
        slowest = 0.0
        for number in range(sizes.globs):
            pattern = f"{number}" + "*[a-z]" * 165 + "x"
            status, _, seconds = get(server.http_port, "/api/v1/keys?match=" + pattern)
            check(status == 200, f"a long valid glob got {status}")
            slowest = max(slowest, seconds)
        figures.add(
            "glob-bomb", f"slowest of {sizes.globs} distinct ~1000-byte valid globs", ms(slowest)
        )
        figures.add(
            "glob-bomb", "longest main-port round trip meanwhile", ms(pinger.longest), "<= 250 ms"
        )
        figures.add(
            "glob-bomb", "RSS growth over those globs", mib(server.memory("VmRSS") - before)
        )


def keys(sizes: Sizes, figures: Figures) -> None:
    with serving("keys", sizes, figures) as (server, pinger):
        started = time.perf_counter()
        load_points(server.port, (b"put k%07d.cpu 1 1\n" % i for i in range(sizes.keys)))
        figures.add(
            "keys", f"storing {sizes.keys:,} new keys", f"{time.perf_counter() - started:.1f} s"
        )
        for path, expected in (
            ("/api/v1/keys", sizes.keys + 1),  # and the pinger's key
            ("/api/v1/keys?match=k00012*.cpu", 100),
            ("/api/v1/keys?match=*.cpu", sizes.keys),
        ):
            pinger.reset()
            server.reset_peak()
            rss = server.memory("VmRSS")
            status, body, seconds = get(server.http_port, path)
            check(status == 200, f"{path} got {status}")
            listed = len(json.loads(body)["keys"])
            check(expected is None or listed == expected, f"{path} listed {listed}, not {expected}")
            what = path.removeprefix("/api/v1/keys") or "(all)"
            figures.add("keys", f"GET keys {what}: {listed:,} keys", ms(seconds))
            figures.add(
                "keys", "  longest main-port round trip meanwhile", ms(pinger.longest), "<= 250 ms"
            )
            figures.add("keys", "  peak RSS rise", mib(server.memory("VmHWM") - rss))


def series(sizes: Sizes, figures: Figures) -> None:
    with serving("series", sizes, figures, "--http-max-points", str(sizes.points)) as (
        server,
        pinger,
    ):
        started = time.perf_counter()
        load_points(server.port, (b"put big %d.25 %d\n" % (i, i) for i in range(sizes.points)))
        figures.add(
            "series", f"storing {sizes.points:,} points", f"{time.perf_counter() - started:.1f} s"
        )
        for path, expected in (
            ("/api/v1/series?key=big", sizes.points),
            ("/api/v1/series?key=big&max_points=2000", None),
        ):
            time.sleep(0.2)
            pinger.reset()
            server.reset_peak()
            rss = server.memory("VmRSS")
            status, body, seconds = get(server.http_port, path)
            check(status == 200, f"{path} got {status}")
            points = json.loads(body)["series"][0]["points"]
            check(expected is None or len(points) == expected, f"{path}: {len(points)} points")
            what = "whole" if expected else "max_points=2000"
            figures.add(
                "series",
                f"GET {what}: {len(points):,} points, {len(body) / MIB:.0f} MiB",
                ms(seconds),
            )
            figures.add(
                "series",
                "  longest main-port round trip meanwhile",
                ms(pinger.longest),
                "<= 250 ms",
            )
            figures.add(
                "series",
                "  peak RSS rise",
                mib(server.memory("VmHWM") - rss),
                "<= 300 MiB (aim 16)",
            )
        status, body, _ = get(server.http_port, "/api/v1/series?key=big&key=big2&key=big3")
        check(status == 200, f"three keys got {status}")


def stalled_bodies(sizes: Sizes, figures: Figures) -> None:
    with serving("stalled-bodies", sizes, figures) as (server, pinger):
        time.sleep(0.2)
        server.reset_peak()
        before = server.memory("VmRSS")
        outcome = trio.run(_stall_bodies, server, sizes)
        check(outcome["answered_healthz"] == 1.0, "/healthz did not answer while bodies stalled")
        figures.add(
            "stalled-bodies",
            f"connections each sending {sizes.sent:,} B of {sizes.body:,}",
            str(sizes.stalled),
        )
        figures.add("stalled-bodies", "  taken and stalled", str(outcome["stalled"]))
        figures.add("stalled-bodies", "  refused at once (503)", str(outcome["refused"]))
        figures.add(
            "stalled-bodies",
            "  server RSS rise while they stall",
            mib(outcome["rss"] - before),
            "<= 256 MiB",
        )
        figures.add(
            "stalled-bodies", "  server peak RSS rise", mib(outcome["peak"] - before), "<= 256 MiB"
        )
        figures.add(
            "stalled-bodies", "  slowest /healthz meanwhile", ms(outcome["healthz"]), "<= 1 s"
        )
        figures.add(
            "stalled-bodies", "  longest main-port round trip", ms(pinger.longest), "<= 250 ms"
        )


async def _stall_bodies(server: Server, sizes: Sizes) -> dict[str, float]:
    counts = {"stalled": 0, "refused": 0}
    all_sent = trio.Event()
    pending = [sizes.stalled]

    def settled() -> None:
        pending[0] -= 1
        if not pending[0]:
            all_sent.set()

    async def stall() -> None:
        outcome = "refused"
        stream = await trio.open_tcp_stream(HOST, server.http_port)
        try:
            await stream.send_all(
                b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"
                % sizes.body
            )
            with trio.move_on_after(0.5):
                if (await stream.receive_some()).startswith(b"HTTP/1.1 503"):
                    return
            await stream.send_all(b"[" + b" " * (sizes.sent - 1))
            outcome = "stalled"
            counts["stalled"] += 1
            settled()
            while True:
                await trio.sleep(1)
                await stream.send_all(b" ")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # closed by the server: its 503 came after the wait above
        finally:
            if outcome == "refused":
                counts["refused"] += 1
                settled()
            await trio.aclose_forcefully(stream)

    result: dict[str, float] = {"answered_healthz": 1.0}
    async with trio.open_nursery() as nursery:
        for _ in range(sizes.stalled):
            nursery.start_soon(stall)
        with trio.fail_after(120):
            await all_sent.wait()
        await trio.sleep(1)
        result["rss"] = server.memory("VmRSS")
        slowest = 0.0
        for _ in range(5):
            status, _, seconds = await trio.to_thread.run_sync(get, server.http_port, "/healthz")
            if status != 200:
                result["answered_healthz"] = 0.0
            slowest = max(slowest, seconds)
        result["healthz"] = slowest
        result["peak"] = server.memory("VmHWM")
        nursery.cancel_scope.cancel()
    result.update(counts)
    return result


def connect_burst(sizes: Sizes, figures: Figures) -> None:
    with serving("connect-burst", sizes, figures) as (server, pinger):
        time.sleep(0.2)
        # First, on a fresh server: what an idle connection costs it.
        rss = server.memory("VmRSS")
        held = [socket.create_connection((HOST, server.http_port)) for _ in range(sizes.burst)]
        time.sleep(1)
        per_connection = (server.memory("VmRSS") - rss) * 1024 / sizes.burst
        for sock in held:
            sock.close()
        figures.add(
            "connect-burst",
            f"RSS per idle connection ({sizes.burst:,} held)",
            f"{per_connection:.1f} KiB",
        )
        time.sleep(0.5)
        pinger.reset()
        seconds, slowest_connect, answered = trio.run(_burst, server.http_port, sizes.burst)
        check(answered == sizes.burst, f"{answered} of {sizes.burst} answered")
        figures.add(
            "connect-burst", f"{sizes.burst:,} connects at once, all answered", f"{seconds:.2f} s"
        )
        figures.add(
            "connect-burst", "  slowest connect", ms(slowest_connect), "< 1 s (no SYN retry)"
        )
        figures.add("connect-burst", "  longest main-port round trip", ms(pinger.longest))


async def _burst(port: int, count: int) -> tuple[float, float, int]:
    answered = 0
    slowest = 0.0

    async def one() -> None:
        nonlocal answered, slowest
        started = trio.current_time()
        stream = await trio.open_tcp_stream(HOST, port)
        slowest = max(slowest, trio.current_time() - started)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
            answered += answer.startswith(b"HTTP/1.1 200 ")

    started = trio.current_time()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
    return trio.current_time() - started, slowest, answered


SCENARIOS: dict[str, Callable[[Sizes, Figures], None]] = {
    "glob-bomb": glob_bomb,
    "keys": keys,
    "series": series,
    "stalled-bodies": stalled_bodies,
    "connect-burst": connect_burst,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    figures = Figures([])
    try:
        for name in args.scenarios.split(","):
            SCENARIOS[name](sizes, figures)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [
                    dict(zip(("scenario", "figure", "value", "target"), row, strict=True))
                    for row in figures.rows
                ],
                indent=1,
            )
        )
    print("all answers as expected")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
