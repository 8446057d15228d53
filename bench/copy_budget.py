"""Memory of a server whose clients ask for a huge key and never read the answer.

    python bench/copy_budget.py                        # 5M points, 12 clients
    python bench/copy_budget.py --points 200000 --clients 4   # a quick look

Each ``get`` copies the key's points (16 bytes each) while its answer is
written out; a client that reads nothing keeps that copy alive. For two
servers, one with the default ``--answer-copy-budget-bytes`` (256 MiB) and
one with the budget off (0), this fills one key with ``--points`` points
(pipelined puts), opens ``--clients`` connections that each send
``get big`` and read nothing, waits ``--settle`` seconds, and reports the
server's resident memory (VmRSS and its peak VmHWM, from /proc) before and
after, and how many gets waited for room. A fresh connection's ``stats``
shows the server still answers.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
BATCH = 10_000


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, field
    return int(match.group(1))


def _ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise SystemExit("the server closed the connection")
        data += chunk
    return data


def _fill(port: int, points: int) -> None:
    with socket.create_connection((HOST, port), timeout=60) as sock:
        for start in range(0, points, BATCH):
            stop = min(points, start + BATCH)
            sock.sendall(b"".join(b"put big 1234.25 %d\n" % ts for ts in range(start, stop)))
            expected = len(b"ok\n\n") * (stop - start)
            got = 0
            while got < expected:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise SystemExit("closed while filling")
                got += len(chunk)


def run(budget: int, points: int, clients: int, settle: float, workdir: Path) -> dict[str, int]:
    """One server, one key, ``clients`` readers that never read; its memory figures."""
    out_path = workdir / f"serve-{budget}.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "trio_metrics", "serve", "--port", "0", "--log-level",
             "warning", "--answer-copy-budget-bytes", str(budget)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in out_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.01)
        port = int(re.search(rb":(\d+)", out_path.read_bytes()).group(1))  # type: ignore[union-attr]
        _fill(port, points)
        before = _status_kib(process.pid, "VmRSS")
        silent = []
        for _ in range(clients):
            sock = socket.create_connection((HOST, port), timeout=60)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"get big\n")
            silent.append(sock)
        time.sleep(settle)
        with socket.create_connection((HOST, port), timeout=60) as sock:
            started = time.monotonic()
            stats = _ask(sock, b"stats\n").decode()
            stats_seconds = time.monotonic() - started
        waits = re.search(r"answer_copy_waits (\d+)", stats)
        figures = {
            "rss_before_kib": before,
            "rss_after_kib": _status_kib(process.pid, "VmRSS"),
            "peak_kib": _status_kib(process.pid, "VmHWM"),
            "copy_waits": int(waits.group(1)) if waits else -1,
            "stats_ms": round(stats_seconds * 1000),
        }
        for sock in silent:
            sock.close()
        return figures
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=5_000_000)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait")
    parser.add_argument("--budget", type=int, default=256 * 1024 * 1024)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for budget in (args.budget, 0):
            print(f"budget {budget} ...", file=sys.stderr, flush=True)
            rows.append((budget, run(budget, args.points, args.clients, args.settle, Path(tmp))))
    print(
        f"{args.clients} silent clients of 'get big', {args.points} points ({os.cpu_count()} CPUs)"
    )
    print(
        "| budget (bytes) | RSS before | RSS after | peak RSS | gets that waited | stats answer |"
    )
    print("|---|---|---|---|---|---|")
    for budget, fig in rows:
        print(
            f"| {budget or 'off'} | {fig['rss_before_kib'] // 1024} MiB"
            f" | {fig['rss_after_kib'] // 1024} MiB | {fig['peak_kib'] // 1024} MiB"
            f" | {fig['copy_waits']} | {fig['stats_ms']} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
