"""Benchmark the data directory: put throughput by fsync policy, recovery, disk use.

    python bench/durability.py              # full counts, 3 repetitions
    python bench/durability.py --quick      # small counts, 1 repetition (seconds)

Part 1 runs a fresh server process per run, memory-only and with
``--data-dir`` under ``--fsync never``, ``everysec`` and ``always``, taking
turns, on two loads: pipelined puts (4 connections, 1000 puts per request)
and request-response (50 connections, one put in flight each). Every run
checks afterwards that every point was stored with its last value. The
table gives medians and the ratio to memory-only.

Part 2 works in-process on a temporary directory: it logs a million points
in batches of 1000, times recovery by log replay, compacts while a task
keeps putting (and reports the longest wait that task saw), then times
recovery from the snapshot, and reports on-disk bytes per point.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import loadgen
import trio
from loadgen import ConnectionPlan, Deadline

from trio_metrics.storage._data_dir import recover
from trio_metrics.storage._durable import open_durable_store

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MODES = ("memory", "never", "everysec", "always")
SERVE = [sys.executable, "-m", "trio_metrics", "serve", "--port", "0"]


@dataclass(frozen=True)
class Counts:
    """How much work each part does."""

    pipelined_connections: int = 4
    pipelined_puts: int = 100_000  # per connection
    batch: int = 1_000
    rr_connections: int = 50
    rr_puts: int = 400  # per connection
    recovery_points: int = 1_000_000
    recovery_keys: int = 100
    timeout: float = 300.0


FULL = Counts()
QUICK = Counts(
    pipelined_puts=5_000,
    rr_puts=20,
    recovery_points=20_000,
    timeout=60.0,
)


class ServerProcess:
    """``trio-metrics serve`` in one storage mode, its output in files."""

    def __init__(self, mode: str, workdir: Path) -> None:
        self.data = workdir / f"data-{mode}"
        shutil.rmtree(self.data, ignore_errors=True)
        storage = [] if mode == "memory" else ["--data-dir", str(self.data), "--fsync", mode]
        self.out = workdir / f"{mode}.out"
        with self.out.open("wb") as out, (workdir / f"{mode}.err").open("wb") as err:
            self.process = subprocess.Popen(
                [*SERVE, "--log-level", "warning", *storage],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while b"listening on" not in self.out.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{mode} server did not start: {(workdir / f'{mode}.err')}")
            time.sleep(0.01)
        self.port = int(self.out.read_bytes().split(b":")[1].split()[0])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def verify(port: int, plans: Sequence[ConnectionPlan], deadline: Deadline) -> None:
    with loadgen.connect(HOST, port, deadline) as sock:
        for plan in plans:
            for key in plan.keys:
                expected = loadgen.expected_get_answer([(key, plan.puts_per_key)], plan.overwrite)
                if loadgen.ask(sock, f"get {key}\n".encode(), deadline) != expected:
                    raise SystemExit(f"verification failed for {key}")


def throughput(mode: str, load: str, counts: Counts, workdir: Path) -> float:
    if load == "pipelined":
        plans = [
            ConnectionPlan((f"pipe.c{i}",), counts.pipelined_puts, batch=counts.batch)
            for i in range(counts.pipelined_connections)
        ]
        processes = 1
    else:
        plans = [
            ConnectionPlan((f"rr.c{i:02d}",), counts.rr_puts) for i in range(counts.rr_connections)
        ]
        processes = loadgen.default_processes()
    server = ServerProcess(mode, workdir)
    try:
        result = loadgen.request_response(
            HOST, server.port, plans, timeout=counts.timeout, processes=processes
        )
        verify(server.port, plans, Deadline(counts.timeout))
    finally:
        server.stop()
    return result.puts_per_second


def part_one(counts: Counts, repeat: int, workdir: Path) -> None:
    print("== put throughput by storage mode (puts/s, median; ratio to memory-only)")
    for load in ("pipelined", "rr-50"):
        figures: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_number in range(repeat):
            for mode in MODES:
                rate = throughput(mode, load, counts, workdir)
                figures[mode].append(rate)
                print(f"   {load} {mode} run {round_number + 1}: {rate:,.0f}", file=sys.stderr)
        base = statistics.median(figures["memory"])
        for mode in MODES:
            median = statistics.median(figures[mode])
            print(f"{load:<10} {mode:<9} {median:>12,.0f} puts/s  {median / base:6.2f}x")


async def put_points(store_dir: Path, counts: Counts) -> int:
    per_key = counts.recovery_points // counts.recovery_keys
    keys = [f"bench.k{k:03d}" for k in range(counts.recovery_keys)]
    async with open_durable_store(store_dir, fsync="never", compact_min_bytes=1 << 62) as store:
        names: list[str] = []
        values: list[float] = []
        stamps: list[int] = []
        for i in range(per_key):
            for key in keys:
                names.append(key)
                values.append(float(i % 1000) + 0.5)
                stamps.append(loadgen.T0 + i)
                if len(names) == counts.batch:
                    await store.put_batch(names, values, stamps)
                    names, values, stamps = [], [], []
        if names:
            await store.put_batch(names, values, stamps)
    return per_key * len(keys)


async def compact_under_load(store_dir: Path) -> tuple[float, float, int]:
    """Compact while a task puts a point every millisecond; return (s, longest put wait, puts)."""
    async with open_durable_store(store_dir, fsync="never", compact_min_bytes=1 << 62) as store:
        longest = 0.0
        puts = 0
        done = False

        async def keep_putting() -> None:
            nonlocal longest, puts
            i = 0
            while not done:
                started = time.perf_counter()
                await store.put_batch(["during.compaction"], [1.0], [i])
                longest = max(longest, time.perf_counter() - started)
                puts += 1
                i += 1
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_putting)
            await trio.sleep(0.1)
            started = time.perf_counter()
            await store.compact()
            seconds = time.perf_counter() - started
            done = True
    return seconds, longest, puts


def timed_recovery(store_dir: Path) -> tuple[float, int]:
    copy = store_dir.with_name(store_dir.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store_dir, copy)
    started = time.perf_counter()
    points = len(recover(copy).store)
    seconds = time.perf_counter() - started
    shutil.rmtree(copy)
    return seconds, points


def disk_bytes(store_dir: Path, prefix: str) -> int:
    return sum(p.stat().st_size for p in store_dir.glob(prefix + ".*"))


def part_two(counts: Counts, workdir: Path) -> None:
    store_dir = workdir / "recovery"
    shutil.rmtree(store_dir, ignore_errors=True)
    points = trio.run(put_points, store_dir, counts)
    log_bytes = disk_bytes(store_dir, "log")
    replay_s, recovered = timed_recovery(store_dir)
    assert recovered == points, (recovered, points)
    compact_s, longest_wait, puts_during = trio.run(compact_under_load, store_dir)
    snapshot_bytes = disk_bytes(store_dir, "snapshot")
    load_s, recovered = timed_recovery(store_dir)
    assert recovered == points + puts_during, (recovered, points, puts_during)
    million = points / 1e6
    print(f"== recovery and disk use ({points:,} points, {counts.recovery_keys} keys)")
    print(f"log:        {log_bytes / points:6.1f} bytes/point ({log_bytes:,} bytes)")
    print(f"replay:     {replay_s:6.2f} s ({replay_s / million:.2f} s per million points)")
    print(
        f"compaction: {compact_s:6.2f} s with puts going on;"
        f" longest put wait {longest_wait * 1e3:.1f} ms ({puts_during} puts)"
    )
    print(f"snapshot:   {snapshot_bytes / points:6.1f} bytes/point ({snapshot_bytes:,} bytes)")
    print(f"load:       {load_s:6.2f} s from the snapshot ({load_s / million:.2f} s per million)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repetition")
    parser.add_argument("--repeat", type=int, default=None, help="runs per mode (default 3)")
    parser.add_argument("--part", choices=["1", "2", "both"], default="both")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="trio-metrics-durability-") as tmp:
        workdir = Path(tmp)
        if args.part in ("1", "both"):
            part_one(counts, repeat, workdir)
        if args.part in ("2", "both"):
            part_two(counts, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
