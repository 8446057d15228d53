"""TLS against plaintext: server CPU per request at rr-50, and handshakes under load.

    python bench/tls.py                       # both scenarios, 3 repetitions each
    python bench/tls.py --scenarios rr-50 --repeat 5 --requests 600
    python bench/tls.py --scenarios rate-5000,rate-2000 --repeat 5

``rr-50``: 50 connections, each sending one ``put`` and waiting for its ``ok``
before the next (request-response), ``--requests`` per connection; the
server's CPU (``/proc/PID/task/*/schedstat``) over the timed window, per
request. Plaintext and TLS servers take turns, each a fresh
``python -m trio_metrics serve`` process of this checkout.

``rate-N`` (e.g. ``rate-5000``): the same 50 connections, but open loop:
puts sent at a fixed total rate of N per second (``openloop.fixed_rate``,
as ``bench/run.py``'s fixed-rate scenarios), so both servers see requests
arrive in the same rhythm, whatever the speed of the load generator's own
TLS; the server's CPU per request answered in the timed window, and the
latency at that rate. A closed loop (``rr-50``) lets the generator's pace
set how many requests the server finds ready per pass, and TLS slows the
generator as much as the server.

``handshakes``: 200 connections do request-response puts for ``--seconds``
while a second process opens new connections as fast as it can (connect,
handshake, ``ping``, close); reported: new connections per second, and the
p50/p99 latency of the 200 connections' puts, for TLS and for plaintext
(where a "handshake" is a TCP connect).

Certificates come from trustme (the test extra). Linux only. The load
generator is plain selectors over non-blocking sockets (``ssl.SSLSocket``
for TLS), one process per role, so on a small machine it competes with the
server for CPU: compare the two modes with each other, not with other pages.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import re
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import loadgen
import openloop
import trustme

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"
OK = b"ok\n\n"
BANNER = re.compile(r"listening on \S+:(\d+)")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1: (ca, cert, key) files."""
    ca = trustme.CA()
    server = ca.issue_cert(HOST)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(paths[0]))
    server.cert_chain_pems[0].write_to_path(str(paths[1]))
    server.private_key_pem.write_to_path(str(paths[2]))
    return paths


def client_context(ca: Path | None) -> ssl.SSLContext | None:
    if ca is None:
        return None
    return loadgen.tls_context(str(ca))


def connect(port: int, context: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=HOST)
    return sock


class Server:
    """``python -m trio_metrics serve`` from this checkout, plaintext or TLS."""

    def __init__(self, workdir: Path, certificates: tuple[Path, Path, Path] | None) -> None:
        command = [sys.executable, "-m", "trio_metrics", "serve", "--port", "0"]
        command += ["--log-level", "warning"]
        if certificates is not None:
            command += ["--tls-cert", str(certificates[1]), "--tls-key", str(certificates[2])]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=(workdir / "server.err").open("wb"),
            text=True,
        )
        assert self.process.stdout is not None
        match = BANNER.search(self.process.stdout.readline())
        if match is None:
            self.process.kill()
            raise RuntimeError(f"no banner; see {workdir / 'server.err'}")
        self.port = int(match.group(1))

    def cpu_seconds(self) -> float:
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def request_response(
    sockets: Sequence[socket.socket],
    *,
    requests: int | None = None,
    seconds: float | None = None,
    prefix: str = "b",
) -> list[float]:
    """One put in flight per socket until each sent ``requests`` (or ``seconds`` pass).

    Returns every request's latency in seconds.
    """
    selector = selectors.DefaultSelector()
    sent_at: dict[socket.socket, float] = {}
    counts: dict[socket.socket, int] = {}
    buffers: dict[socket.socket, bytearray] = {}
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds if seconds is not None else float("inf")

    def send(sock: socket.socket, index: int) -> None:
        line = f"put {prefix}.{sock.fileno()} {index} {index}\n".encode()
        sock.setblocking(True)
        sock.sendall(line)  # a short line: the kernel takes it at once
        sock.setblocking(False)
        sent_at[sock] = time.monotonic()

    for sock in sockets:
        counts[sock] = 0
        buffers[sock] = bytearray()
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        send(sock, 0)
    active = len(sockets)
    while active:
        for key, _ in selector.select(timeout=10):
            sock = cast(socket.socket, key.fileobj)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise RuntimeError("the server closed a connection")
            buffer = buffers[sock]
            buffer += chunk
            if len(buffer) < len(OK):
                continue
            if bytes(buffer) != OK:
                raise RuntimeError(f"unexpected answer {bytes(buffer)!r}")
            buffer.clear()
            latencies.append(time.monotonic() - sent_at[sock])
            counts[sock] += 1
            done = counts[sock] >= requests if requests is not None else False
            if done or time.monotonic() >= stop_at:
                selector.unregister(sock)
                active -= 1
            else:
                send(sock, counts[sock])
    selector.close()
    return latencies


def rr50(port: int, ca: Path | None, connections: int, requests: int, server: Server) -> float:
    """Server CPU microseconds per request over ``connections`` x ``requests`` puts."""
    context = client_context(ca)
    sockets = [connect(port, context) for _ in range(connections)]
    try:
        # A warm-up round, so that the handshakes and first answers are not timed.
        request_response(sockets, requests=20, prefix="warm")
        before = server.cpu_seconds()
        latencies = request_response(sockets, requests=requests)
        cpu = server.cpu_seconds() - before
    finally:
        for sock in sockets:
            sock.close()
    return cpu / len(latencies) * 1e6


#: Connections the opener has in flight at once, unless told (threads:
#: OpenSSL's handshake work runs without the GIL).
OPENER_THREADS = 16


def _open_and_ping(port: int, context: ssl.SSLContext | None, stop_at: float) -> tuple[int, int]:
    count = failures = 0
    while time.monotonic() < stop_at:
        try:
            sock = connect(port, context)
            sock.sendall(b"ping\n")
            answer = b""
            while not answer.endswith(OK):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("closed before the answer")
                answer += chunk
            sock.close()
            count += 1
        except OSError:
            failures += 1
    return count, failures


def _handshake_loop(port: int, ca: str | None, seconds: float, openers: int, queue: Any) -> None:
    context = client_context(None if ca is None else Path(ca))
    stop_at = time.monotonic() + seconds
    with concurrent.futures.ThreadPoolExecutor(openers) as pool:
        results = list(pool.map(lambda _: _open_and_ping(port, context, stop_at), range(openers)))
    queue.put((sum(r[0] for r in results) / seconds, sum(r[1] for r in results)))


def handshakes(
    port: int, ca: Path | None, connections: int, seconds: float, openers: int = OPENER_THREADS
) -> dict[str, float]:
    """New connections per second beside ``connections`` busy ones, and their put latency."""
    context = client_context(ca)
    sockets = [connect(port, context) for _ in range(connections)]
    queue: Any = multiprocessing.Queue()
    opener = multiprocessing.Process(
        target=_handshake_loop,
        args=(port, None if ca is None else str(ca), seconds, openers, queue),
    )
    try:
        request_response(sockets, requests=5, prefix="warm")
        opener.start()
        latencies = request_response(sockets, seconds=seconds)
        rate, failures = queue.get(timeout=seconds + 30)
        opener.join(30)
    finally:
        for sock in sockets:
            sock.close()
    latencies.sort()
    return {
        "new_connections_per_s": rate,
        "new_connection_failures": failures,
        "put_p50_ms": statistics.median(latencies) * 1e3,
        "put_p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "puts_per_s": len(latencies) / seconds,
    }


def fixed_rate(
    port: int, ca: Path | None, rate: float, seconds: float, server: Server
) -> dict[str, float]:
    """Server CPU per request and latency with 50 connections sending ``rate`` puts/s in all."""
    schedule = openloop.schedule_for(rate, 50, 1.0, seconds)
    plans = [loadgen.ConnectionPlan((f"bench.rate.c{i:02d}",), schedule.timed) for i in range(50)]
    marks: list[float] = []
    result = openloop.fixed_rate(
        HOST,
        port,
        plans,
        schedule,
        timeout=seconds + 60,
        processes=1,
        on_start=lambda: marks.append(server.cpu_seconds()),
        tls_ca=None if ca is None else str(ca),
    )
    cpu = server.cpu_seconds() - marks[0]
    return {
        "server_cpu_us_per_request": cpu / result.answers_in_window * 1e6,
        "achieved_per_s": result.achieved_per_s,
        "latency_p50_ms": result.latency_ms["p50"],
        "latency_p99_ms": result.latency_ms["p99"],
        "generator_load": result.generator_load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="rr-50,handshakes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="per connection, rr-50")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of handshakes and rate-N"
    )
    parser.add_argument(
        "--openers",
        type=int,
        default=OPENER_THREADS,
        help="handshakes: new connections in flight at once (threads of the opener)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    runs: dict[str, dict[str, list[Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        certificates = make_certificates(workdir)
        for repetition in range(args.repeat):
            for scenario in scenarios:
                for mode in ("plaintext", "tls"):
                    server = Server(workdir, certificates if mode == "tls" else None)
                    ca = certificates[0] if mode == "tls" else None
                    try:
                        if scenario == "rr-50":
                            result: Any = rr50(server.port, ca, 50, args.requests, server)
                        elif scenario.startswith("rate-"):
                            rate = float(scenario.removeprefix("rate-"))
                            result = fixed_rate(server.port, ca, rate, args.seconds, server)
                        elif scenario == "handshakes":
                            result = handshakes(server.port, ca, 200, args.seconds, args.openers)
                        else:
                            parser.error(f"unknown scenario {scenario!r}")
                    finally:
                        server.stop()
                    runs.setdefault(scenario, {}).setdefault(mode, []).append(result)
                    print(
                        f"[{repetition + 1}/{args.repeat}] {scenario} {mode}: {result}",
                        file=sys.stderr,
                    )
    if "rr-50" in runs:
        plain = statistics.median(runs["rr-50"]["plaintext"])
        tls = statistics.median(runs["rr-50"]["tls"])
        print(
            f"rr-50 server CPU per request: plaintext {plain:.1f} us, TLS {tls:.1f} us,"
            f" ratio {tls / plain:.2f}x (median of {args.repeat})"
        )
    for scenario in runs:
        if not scenario.startswith("rate-"):
            continue
        figures = {}
        for mode in ("plaintext", "tls"):
            results = runs[scenario][mode]
            median = {name: statistics.median(r[name] for r in results) for name in results[0]}
            figures[mode] = median
            print(
                f"{scenario} {mode}: server CPU {median['server_cpu_us_per_request']:.1f} us"
                f" per request, {median['achieved_per_s']:.0f} answered/s, latency p50"
                f" {median['latency_p50_ms']:.2f} ms p99 {median['latency_p99_ms']:.2f}"
                f" ms (median of {args.repeat})"
            )
        ratio = (
            figures["tls"]["server_cpu_us_per_request"]
            / figures["plaintext"]["server_cpu_us_per_request"]
        )
        print(f"{scenario} TLS / plaintext server CPU per request: {ratio:.2f}x")
    if "handshakes" in runs:
        for mode in ("plaintext", "tls"):
            results = runs["handshakes"][mode]
            figures = {name: statistics.median(r[name] for r in results) for name in results[0]}
            print(
                f"handshakes {mode}: {figures['new_connections_per_s']:.0f} new connections/s"
                f" ({figures['new_connection_failures']:.0f} failed) beside 200 busy ones;"
                f" their puts: p50 {figures['put_p50_ms']:.2f} ms, p99"
                f" {figures['put_p99_ms']:.2f} ms, {figures['puts_per_s']:.0f}/s"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
