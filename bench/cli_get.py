"""First-line latency and peak memory of ``trio-metrics get '*'`` over many points.

Starts ``trio-metrics serve --port 0``, fills it with pipelined puts
(``--keys`` keys of ``--points-per-key`` points each), then runs the CLI's
``get '*'`` (table, or ``--json``) with its output read and dropped, and
prints the time to its first line, the total time and the CLI process's
peak RSS. Run from a checkout:

    PYTHONPATH=$PWD /work/venv/bin/python bench/cli_get.py [--json]
"""

from __future__ import annotations

import argparse
import re
import resource
import socket
import subprocess
import sys
import threading
import time

COMMAND = [sys.executable, "-m", "trio_metrics"]


def fill(port: int, keys: int, per_key: int) -> None:
    """Put ``keys * per_key`` points, pipelined, reading the answers as they come."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        total = keys * per_key
        reader = threading.Thread(target=_read_oks, args=(sock, total))
        reader.start()
        for k in range(keys):
            lines = [f"put bench.key.{k} {n * 0.5} {1_700_000_000 + n}\n" for n in range(per_key)]
            sock.sendall("".join(lines).encode())
        reader.join()


def _read_oks(sock: socket.socket, count: int) -> None:
    expected = count * 4  # "ok\n\n"
    while expected > 0:
        data = sock.recv(1 << 20)
        if not data:
            raise SystemExit("server closed while filling")
        expected -= len(data)


def measure(port: int, as_json: bool) -> tuple[float, float, int]:
    """Run the CLI; return (first line s, total s, bytes of output)."""
    args = [*COMMAND, "get", "*", "--port", str(port), "--timeout", "60"]
    started = time.perf_counter()
    cli = subprocess.Popen([*args, *(["--json"] if as_json else [])], stdout=subprocess.PIPE)
    assert cli.stdout is not None
    first = cli.stdout.read1(1)  # type: ignore[attr-defined]
    first_at = time.perf_counter() - started
    size = len(first)
    while chunk := cli.stdout.read1(1 << 20):  # type: ignore[attr-defined]
        size += len(chunk)
    cli.wait()
    return first_at, time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--points-per-key", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = subprocess.Popen(
        [*COMMAND, "serve", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        match = re.search(r":(\d+)", server.stdout.readline())
        assert match is not None
        port = int(match.group(1))
        filled = time.perf_counter()
        fill(port, args.keys, args.points_per_key)
        seconds = time.perf_counter() - filled
        print(f"filled {args.keys * args.points_per_key} points in {seconds:.1f} s")
        first, total, size = measure(port, args.json)
        # The server is not waited for yet, so the children's peak is the CLI's.
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        form = "--json" if args.json else "table"
        print(
            f"get '*' ({form}): first line after {first:.3f} s, all {size / 1e6:.0f} MB after"
            f" {total:.1f} s, CLI peak RSS {peak_mib:.0f} MiB"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
