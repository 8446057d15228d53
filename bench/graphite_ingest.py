"""Graphite plaintext ingest: lines per server CPU-second, trio-metrics against VictoriaMetrics.

    python bench/graphite_ingest.py                     # 2M lines, 3 interleaved runs
    python bench/graphite_ingest.py --lines 200000 --repeat 1   # a quick look

The same generated lines (``--series`` series, recent timestamps, sent over
one connection ``--per-send`` lines at a time) go to a fresh
``trio-metrics serve --graphite-port`` and, where the ``victoria-metrics``
binary exists (Debian: ``apt-get install victoria-metrics``), to a fresh
VictoriaMetrics with ``-graphiteListenAddr``. The two take turns. Each run
measures the server process's CPU time (user and system, all threads, from
/proc) from the first line sent until every point is stored: for
trio-metrics until ``stats`` counts them all, for VictoriaMetrics until,
after ``/internal/force_flush``, it reports every series. A server that
dropped lines would never get there: the run fails instead of looking fast.
Timestamps are within the last hours, inside VictoriaMetrics' default
retention of one month.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
VICTORIA = shutil.which("victoria-metrics")
INSTALL_VICTORIA = "apt-get install victoria-metrics"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def make_sends(lines: int, series: int, per_send: int) -> list[bytes]:
    """The whole load, as the byte strings to send; points per series have distinct times."""
    now = int(time.time())
    per_series = -(-lines // series)
    rows = [
        b"bench.host%d.cpu %d.25 %d\n" % (i % series, i, now - per_series + i // series)
        for i in range(lines)
    ]
    return [b"".join(rows[start : start + per_send]) for start in range(0, lines, per_send)]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    def accepting() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for(accepting, f"port {port}", 30)


def send_all(port: int, sends: list[bytes]) -> None:
    with socket.create_connection((HOST, port), timeout=60) as sock:
        for data in sends:
            sock.sendall(data)


def _stats(port: int) -> dict[str, int]:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(b"stats\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("stats: connection closed")
            data += chunk
    return {
        m.group(1).decode(): int(float(m.group(2)))
        for m in re.finditer(rb"trio_metrics\.(\S+) (\S+) \d+", data)
    }


def run_ours(sends: list[bytes], lines: int, workdir: Path) -> float:
    main_port, graphite_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_metrics", "serve", "--port", str(main_port),
         "--graphite-port", str(graphite_port), "--log-level", "warning"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(workdir / "ours.err").open("wb"),
    )  # fmt: skip
    try:
        _wait_port(graphite_port, process)
        _wait_port(main_port, process)
        before = cpu_seconds(process.pid)
        send_all(graphite_port, sends)
        wait_for(lambda: _stats(main_port).get("graphite_points", 0) >= lines, "every point")
        used = cpu_seconds(process.pid) - before
        if _stats(main_port)["points"] != lines:
            raise SystemExit("trio-metrics stored a different number of points")
        return used
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _vm_series(http_port: int) -> int:
    base = f"http://{HOST}:{http_port}"
    urllib.request.urlopen(f"{base}/internal/force_flush", timeout=30).read()
    with urllib.request.urlopen(f"{base}/api/v1/series/count", timeout=30) as answer:
        count: int = json.load(answer)["data"][0]
        return count


def run_victoria(sends: list[bytes], series: int, workdir: Path) -> float:
    assert VICTORIA is not None
    data = workdir / "vm-data"
    shutil.rmtree(data, ignore_errors=True)
    http_port, graphite_port = free_port(), free_port()
    process = subprocess.Popen(
        [VICTORIA, f"-storageDataPath={data}", f"-httpListenAddr={HOST}:{http_port}",
         f"-graphiteListenAddr={HOST}:{graphite_port}", "-loggerLevel=ERROR"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(workdir / "vm.err").open("wb"),
    )  # fmt: skip
    try:
        _wait_port(http_port, process)
        _wait_port(graphite_port, process)
        before = cpu_seconds(process.pid)
        send_all(graphite_port, sends)
        wait_for(lambda: _vm_series(http_port) >= series, "every series")
        return cpu_seconds(process.pid) - before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--per-send", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sends = make_sends(args.lines, args.series, args.per_send)
    rates: dict[str, list[float]] = {"trio-metrics": [], "VictoriaMetrics": []}
    if VICTORIA is None:
        print(
            f"VictoriaMetrics not found ({INSTALL_VICTORIA}): trio-metrics alone", file=sys.stderr
        )
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            ours = run_ours(sends, args.lines, Path(tmp))
            rates["trio-metrics"].append(args.lines / ours)
            print(f"run {run + 1}: trio-metrics {ours:.2f} CPU-s", file=sys.stderr, flush=True)
            if VICTORIA is not None:
                theirs = run_victoria(sends, args.series, Path(tmp))
                rates["VictoriaMetrics"].append(args.lines / theirs)
                print(f"run {run + 1}: VictoriaMetrics {theirs:.2f} CPU-s", file=sys.stderr)
    print(f"{args.lines} Graphite lines, {args.series} series, {args.per_send} lines per send,"
          f" medians of {args.repeat} interleaved runs")  # fmt: skip
    print("| server | lines per server CPU-second | runs |")
    print("|---|---|---|")
    for name, values in rates.items():
        if values:
            runs = ", ".join(f"{v:,.0f}" for v in values)
            print(f"| {name} | {statistics.median(values):,.0f} | {runs} |")
    if rates["VictoriaMetrics"]:
        ratio = statistics.median(rates["trio-metrics"]) / statistics.median(
            rates["VictoriaMetrics"]
        )
        print(f"trio-metrics / VictoriaMetrics: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
