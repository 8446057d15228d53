"""Does roll-up pause the server? rr-50 latency while it works, against none.

    python bench/retention_pause.py                  # 300 series x 2 days preloaded
    python bench/retention_pause.py --series 50 --seconds 2   # a quick look

Two servers, one after the other: ``trio-metrics serve`` without rules, and
with ``--retention 10s:1d,1m:30d``. Each is preloaded with ``--days`` of
``--series`` series at 10 s (pipelined, as bench/retention.py replays), so
the second one has a day of points per series to roll up, and then blocks
to compress, just as the timed window opens. 50 connections then put at a
fixed rate (bench/openloop.py: latency from each request's due time) for
``--seconds``; the p50, p99 and max latencies of both runs are printed, with
the ratio of the p99s (target: at most 2x) and the longest roll-up step the
server reports.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import openloop
from loadgen import ConnectionPlan
from retention import STEP, Server, replay, stats

CONNECTIONS = 50


def one_run(rules: bool, series: int, days: int, rate: float, seconds: float) -> dict[str, float]:
    """Preload a server, then time the fixed-rate load; the latencies in ms."""
    with tempfile.TemporaryDirectory() as scratch:
        server = Server(Path(scratch), None, retention=rules)
        try:
            now = int(time.time()) // STEP * STEP
            with socket.create_connection(("127.0.0.1", server.port), timeout=300) as sock:
                replay(sock, series, days, 20_000, now)
                schedule = openloop.schedule_for(rate, CONNECTIONS, 0.5, seconds)
                plans = [
                    ConnectionPlan((f"rr.c{c}",), schedule.timed, batch=1)
                    for c in range(CONNECTIONS)
                ]
                result = openloop.fixed_rate(
                    "127.0.0.1",
                    server.port,
                    plans,
                    schedule,
                    timeout=seconds + 120,
                    processes=openloop.default_processes(rate, CONNECTIONS),
                )
                figures = stats(sock)
        finally:
            server.stop()
    latency = dict(result.latency_ms)
    latency["longest_step_ms"] = figures.get("roll_up_longest_step_us", 0) / 1000
    latency["rolled"] = figures.get("points_rolled_up", 0)
    print(
        f"{'with rules' if rules else 'no rules  '}: p50 {latency['p50']:.2f} ms,"
        f" p99 {latency['p99']:.2f} ms, max {latency['max']:.2f} ms ({result.status});"
        f" roll-up: {latency['rolled']:,} points rolled in the window or before,"
        f" longest step {latency['longest_step_ms']:.1f} ms",
        flush=True,
    )
    return latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    plain = one_run(False, args.series, args.days, args.rate, args.seconds)
    ruled = one_run(True, args.series, args.days, args.rate, args.seconds)
    print(f"p99 with roll-up / without: {ruled['p99'] / plain['p99']:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
