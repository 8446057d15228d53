"""Benchmark an idle-ish server: its CPU use while one client puts a point every 0.25 s.

    python bench/trickle.py                 # 10 s per mode
    python bench/trickle.py --seconds 1     # a quick look

For memory-only and each fsync policy (always, everysec, never) it starts a
fresh server process as bench/durability.py does, opens one connection,
sends one put every ``--interval`` seconds for ``--seconds`` (each answered
before the next is sent), and reports the server process's CPU time (user
and system, all its threads, from /proc/PID/stat) per second of wall-clock
time over that span. A server that waits properly between puts uses next
to nothing under every policy; the target is at most 0.02 CPU-seconds per
second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import loadgen
from durability import HOST, MODES, ServerProcess
from loadgen import Deadline

TARGET = 0.02
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Trickle:
    """What one mode's run measured."""

    mode: str
    puts: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def cpu_per_second(self) -> float:
        return self.cpu_seconds / self.wall_seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces:
    # the 1st is the state (field 3), so utime (14) and stime (15) are the 12th and 13th.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def trickle(mode: str, seconds: float, interval: float, workdir: Path) -> Trickle:
    server = ServerProcess(mode, workdir)
    try:
        deadline = Deadline(seconds + 60)
        with loadgen.connect(HOST, server.port, deadline) as sock:
            # One put first, so that connecting and the first command's
            # imports and allocations are not counted.
            loadgen.ask(sock, loadgen.put_line("trickle.warmup", 0), deadline)
            started = time.monotonic()
            cpu_before = cpu_seconds(server.process.pid)
            puts = 0
            while (due := started + puts * interval) < started + seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                answer = loadgen.ask(sock, loadgen.put_line("trickle.key", puts), deadline)
                if answer != loadgen.OK:
                    raise SystemExit(f"{mode}: put answered {answer!r}")
                puts += 1
            time.sleep(max(0.0, started + seconds - time.monotonic()))
            cpu_after = cpu_seconds(server.process.pid)
            wall = time.monotonic() - started
    finally:
        server.stop()
    return Trickle(mode, puts, wall, cpu_after - cpu_before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds of puts per mode (default 10)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.25, help="seconds between puts (default 0.25)"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.interval <= 0:
        parser.error("--seconds and --interval must be positive")
    print(f"== server CPU with one put every {args.interval:g} s for {args.seconds:g} s per mode")
    print(f"{'mode':<9} {'puts':>5} {'wall s':>7} {'CPU s':>7} {'CPU s per s':>12}")
    results = []
    with tempfile.TemporaryDirectory(prefix="trio-metrics-trickle-") as tmp:
        for mode in MODES:
            result = trickle(mode, args.seconds, args.interval, Path(tmp))
            results.append(result)
            print(
                f"{mode:<9} {result.puts:>5} {result.wall_seconds:>7.2f}"
                f" {result.cpu_seconds:>7.2f} {result.cpu_per_second:>12.4f}",
                flush=True,
            )
    missed = [r.mode for r in results if r.cpu_per_second > TARGET]
    if missed:
        print(f"target of {TARGET} CPU-s per s missed by: {', '.join(missed)}")
    else:
        print(f"target of {TARGET} CPU-s per s met by every mode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
