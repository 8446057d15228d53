"""A month of traffic in fast-forward: memory and disk under retention rules.

    python bench/retention.py                                  # 1,000 series, 30 days
    python bench/retention.py --series 100 --days 30           # a tenth of it
    python bench/retention.py --series 20 --days 3 --data-dir  # a quick look, with a log
    python bench/retention.py --series 100 --days 45 --fast-forward  # past the horizon

Timestamps are the client's, so the benchmark replays ``--days`` of
``--series`` series at one point every 10 s, oldest first, into a real
``trio-metrics serve --retention 10s:1d,1m:30d`` process (pipelined puts over
one connection, ``--batch`` lines per send), then waits until roll-up has
caught up (a round that rolls and compresses nothing more). It prints, from
/proc and the server's own
``stats``:

- the replay's rate and the server's CPU-seconds per million points;
- the points (steps) held per tier, and what the rules imply at most;
- the server's RSS, and RSS per point held (the rules' points at 16 bytes
  a point are the "implied" size; the target is RSS <= 1.5x that);
- with ``--data-dir``: the directory's size as the replay goes, which must
  stop growing once the 30-day horizon is reached (compaction drops what
  expired).

The values are collectd-like gauges: a random walk at one decimal.

With ``--fast-forward``, the storage runs in this process instead, as the
server runs it (``open_storage`` with a data directory, its roll-up and
compaction tasks; no sockets), on trio's mock clock, and the unix clock the
rules go by follows the replayed points: each point arrives "now", as in
live traffic, so the replay can pass the rules' 30-day horizon. Roll-up
catches up after each batch (``--batch`` points, about half an hour of
100 series), as it keeps up with live traffic; the clock moves on once the
batch is stored, so that a run is the same whatever the machine's load.
After each replayed day it prints the data directory's size and the last
snapshot's: they must level off after day 30.
At the end it compacts once more and compares the snapshot with what the
same store would take written as points only (16 bytes a point, the
format before snapshots held the compressed blocks).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing

from trio_metrics.storage import (
    DataDirStorage,
    DurableStore,
    RetentionRules,
    TieredStore,
    open_storage,
    parse_retention,
)
from trio_metrics.storage._log_format import snapshot_pieces

REPO = Path(__file__).resolve().parent.parent
RULE = "10s:1d,1m:30d"
STEP = 10
DAY = 86400
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def directory_bytes(path: Path) -> int:
    """Bytes of the files in ``path``."""
    return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())


class Server:
    """``trio-metrics serve`` with the retention rule (or none), on a free port."""

    def __init__(self, workdir: Path, data_dir: Path | None, *, retention: bool = True) -> None:
        storage = [] if data_dir is None else ["--data-dir", str(data_dir), "--fsync", "everysec"]
        rules = ["--retention", RULE] if retention else []
        self.out = workdir / "server.out"
        with self.out.open("wb") as out, (workdir / "server.err").open("wb") as err:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "trio_metrics", "serve", "--port", "0"),
                    *(*rules, "--log-level", "warning", *storage),
                ],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + 60
        while b"listening on" not in self.out.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {workdir / 'server.err'}")
            time.sleep(0.01)
        self.port = int(self.out.read_bytes().split(b"127.0.0.1:")[1].split()[0].rstrip(b","))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def ask(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its whole answer (up to the blank line)."""
    sock.sendall(request)
    answer = b""
    while not answer.endswith(b"\n\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise SystemExit("the server closed the connection")
        answer += chunk
    return answer


def stats(sock: socket.socket) -> dict[str, int]:
    """The server's ``stats`` counters."""
    lines = ask(sock, b"stats\n").decode().split("\n")[1:-2]
    # Lines as a get answers them: "trio_metrics.<name> <value> <timestamp>".
    return {
        name.removeprefix("trio_metrics."): int(float(value))
        for name, value, _ in (line.split(" ") for line in lines)
    }


def replay(sock: socket.socket, series: int, days: int, batch: int, now: int) -> int:
    """Send every point, oldest first, ``batch`` lines per send; return how many."""
    rng = random.Random(1)
    values = [20.0 + rng.random() * 60 for _ in range(series)]
    names = [f"host{n // 10}.cpu{n % 10}.percent".encode() for n in range(series)]
    start = now - days * DAY + STEP
    lines: list[bytes] = []
    sent = 0
    expected = b"ok\n\n"
    for stamp in range(start, now, STEP):
        for n in range(series):
            values[n] = round(max(0.0, min(100.0, values[n] + rng.gauss(0, 0.3))), 1)
            lines.append(b"put %s %r %d\n" % (names[n], values[n], stamp))
        if len(lines) >= batch:
            sent += _send(sock, lines, expected)
            lines = []
    if lines:
        sent += _send(sock, lines, expected)
    return sent


def _send(sock: socket.socket, lines: list[bytes], expected: bytes) -> int:
    sock.sendall(b"".join(lines))
    want = len(expected) * len(lines)
    got = 0
    while got < want:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the server closed the connection")
        got += len(chunk)
    return len(lines)


def until_settled(sock: socket.socket) -> dict[str, int]:
    """Wait until roll-up has caught up (a round that rolled nothing more and
    compressed nothing more); return the stats then."""
    deadline = time.monotonic() + 1800
    last: tuple[int, int] | None = None
    while True:
        current = stats(sock)
        rounds = current["roll_up_rounds"]
        while stats(sock)["roll_up_rounds"] < rounds + 1:
            time.sleep(0.1)
        current = stats(sock)
        progress = (current["points_rolled_up"], current.get("compressed_points", 0))
        if progress == last:
            return current
        last = progress
        if time.monotonic() > deadline:
            raise SystemExit("roll-up did not catch up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=20_000, help="put lines per send")
    parser.add_argument("--data-dir", action="store_true", help="also keep a data directory")
    parser.add_argument(
        "--fast-forward",
        action="store_true",
        help="the storage in this process, its clock following the replay (a data directory)",
    )
    parser.add_argument(
        "--retention", default=RULE, help=f"with --fast-forward: the rule (default {RULE})"
    )
    args = parser.parse_args(argv)
    if args.fast_forward:
        return fast_forward(args.series, args.days, args.batch, args.retention)
    now = int(time.time()) // STEP * STEP
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        data_dir = workdir / "data" if args.data_dir else None
        server = Server(workdir, data_dir)
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
                cpu_before = cpu_seconds(server.process.pid)
                idle_rss = rss_bytes(server.process.pid)
                began = time.monotonic()
                sizes: list[tuple[int, int]] = []
                sent = 0
                # A day at a time, so that the directory's size can be watched.
                for day in range(args.days, 0, -1):
                    day_now = now - (day - 1) * DAY
                    sent += replay(sock, args.series, 1, args.batch, day_now)
                    if data_dir is not None:
                        sizes.append((args.days - day + 1, directory_bytes(data_dir)))
                seconds = time.monotonic() - began
                final = until_settled(sock)
                cpu = cpu_seconds(server.process.pid) - cpu_before
                rss = rss_bytes(server.process.pid)
            held = final.get("tier0_points", 0) + final.get("tier1_points", 0)
            implied = args.series * (DAY // STEP + 30 * DAY // 60)
            print(
                f"replayed {sent:,} points ({args.series} series x {args.days} days at {STEP} s)"
                f" in {seconds:.1f} s: {sent / seconds:,.0f} points/s,"
                f" {cpu / sent * 1e6:.2f} server CPU-s per million points"
            )
            print(
                f"held: tier 0 (10 s, as put) {final.get('tier0_points', 0):,},"
                f" tier 1 (1 min) {final.get('tier1_points', 0):,};"
                f" the rules allow at most {implied:,}"
            )
            compressed = final.get("compressed_points", 0)
            print(
                f"compressed: {compressed:,} points in {final.get('compressed_bytes', 0):,} bytes"
                f" ({final.get('compressed_bytes', 0) / max(compressed, 1):.2f} bytes a point)"
            )
            print(
                f"expired puts {final.get('points_expired', 0):,},"
                f" rolled up {final.get('points_rolled_up', 0):,},"
                f" longest roll-up step {final.get('roll_up_longest_step_us', 0) / 1000:.1f} ms"
            )
            grown = rss - idle_rss
            print(
                f"server RSS {rss / 2**20:.1f} MiB ({idle_rss / 2**20:.1f} MiB at start):"
                f" {grown / max(held, 1):.1f} bytes per point held above the start;"
                f" {rss / (implied * 16):.2f}x the rules' size at 16 bytes a point"
                f" ({implied * 16 / 2**20:.1f} MiB)"
            )
            if sizes:
                print(
                    "data directory by day replayed: "
                    + ", ".join(f"{day}: {size / 2**20:.1f} MiB" for day, size in sizes)
                )
                print(
                    f"the last snapshot the server wrote: {final.get('snapshot_bytes', 0):,} bytes"
                    f" ({final.get('compactions', 0)} compactions)"
                )
        finally:
            server.stop()
    return 0


def fast_forward(series: int, days: int, batch: int, rule: str = RULE) -> int:
    """Replay ``days`` with the rules' clock following the points (see the docstring)."""
    with tempfile.TemporaryDirectory() as scratch:
        return trio.run(
            _fast_forward,
            Path(scratch) / "data",
            series,
            days,
            batch,
            rule,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )


class _ReplayClock:
    """The unix time the rules go by: the newest replayed point's."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def _fast_forward(data_dir: Path, series: int, days: int, batch: int, rule: str) -> int:
    start = (int(time.time()) - days * DAY) // DAY * DAY
    clock = _ReplayClock(start)
    rules = RetentionRules(default=parse_retention(rule))
    rng = random.Random(1)
    values = [20.0 + rng.random() * 60 for _ in range(series)]
    names = [f"host{n // 10}.cpu{n % 10}.percent" for n in range(series)]
    storage = DataDirStorage(data_dir, fsync="everysec")
    began = time.monotonic()
    async with open_storage(storage, rules, clock=clock) as opened:
        store, figures = opened.store, opened.figures
        assert isinstance(store, DurableStore) and figures is not None
        memory = store.memory
        assert isinstance(memory, TieredStore)
        per_batch = max(1, batch // series)
        print("day  data dir MiB  snapshot MiB  held points  compressed B/pt")
        for day in range(1, days + 1):
            stamps = range(start + (day - 1) * DAY + STEP, start + day * DAY + 1, STEP)
            for first in range(0, len(stamps), per_batch):
                chunk = stamps[first : first + per_batch]
                keys, numbers, times = [], [], []
                for stamp in chunk:
                    for n in range(series):
                        values[n] = round(max(0.0, min(100.0, values[n] + rng.gauss(0, 0.3))), 1)
                    keys.extend(names)
                    numbers.extend(values)
                    times.extend([stamp] * series)
                await store.put_batch(keys, numbers, times)
                # The rules' clock moves on once the batch is stored, not before:
                # the log writes it in a worker thread, and the mock clock jumps
                # while that runs, so a round begun then would take its floors
                # (and its budget of points) from the store without the batch and
                # roll the batch's hours in one go once it lands, or not,
                # depending on the thread's speed. Which roll-up steps are held
                # back by their budget decides when the roll-up task compresses
                # (it compresses only a key holding two blocks' worth), so the
                # points in blocks would vary from run to run. Live points are
                # stored long before the clock passes them by the finest tier's
                # span, so this is also the order a server sees.
                clock.now = chunk[-1]
                # Roll-up catches up after each batch, as it does under live
                # traffic: replayed at this rate, it would fall days behind and
                # compactions would copy days of points not yet rolled up.
                await _settled(figures)
            counters = await _settled(figures)
            held = sum(memory.tiers_held())
            points, size = memory.compressed()
            print(
                f"{day:3d}  {directory_bytes(data_dir) / 2**20:12.1f}"
                f"  {counters['snapshot_bytes'] / 2**20:12.1f}  {held:11,}"
                f"  {size / max(points, 1):15.2f}",
                flush=True,
            )
        await store.compact()
        snapshot = figures()["snapshot_bytes"]
        points_only = sum(
            len(part) for piece in snapshot_pieces(memory.iter_series("*")) for part in piece
        )
        compressed, compressed_bytes = memory.compressed()
        tiers = memory.tiers_held()
    seconds = time.monotonic() - began
    print(
        f"{days} days of {series} series under {rule} replayed in {seconds:.0f} s;"
        f" held per tier {tiers}, {compressed:,} of them in blocks"
        f" ({compressed_bytes / max(compressed, 1):.2f} bytes a point)"
    )
    print(
        f"snapshot after a last compaction: {snapshot:,} bytes;"
        f" as points only it would take {points_only:,} bytes"
        f" ({points_only / max(snapshot, 1):.1f}x)"
    )
    return 0


async def _settled(figures: Callable[[], dict[str, int]]) -> dict[str, int]:
    """The counters once a round of roll-up has rolled and compressed nothing more."""
    last = None
    while True:
        # Two rounds: the first may have begun before the last put.
        wanted = figures()["roll_up_rounds"] + 2
        await trio.sleep(0.5)
        while figures()["roll_up_rounds"] < wanted:  # noqa: ASYNC110 (the mock clock jumps)
            await trio.sleep(0.5)
        current = figures()
        progress = (current["points_rolled_up"], current["compressed_points"])
        if progress == last:
            return current
        last = progress


if __name__ == "__main__":
    raise SystemExit(main())
