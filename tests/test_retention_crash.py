"""Retention with a data directory in a real server process: kill -9 while
roll-up rewrites the tiers, or while compactions write snapshots holding
compressed blocks, then a restart on the same directory.

The restarted server must show each key as the rules make of the points that
were acknowledged: older days as one averaged step, the last two days as put.
(Whether the kill lands inside a roll-up round or a snapshot is a matter of
timing here; tests/test_tiers_durable.py stops in the middle of rounds and at
each step of a compaction deterministically.)
"""

from __future__ import annotations

import math
import random
import signal
import socket
import threading
import time
from pathlib import Path

from net import NETWORK_TIMEOUT
from processes import ServeProcess

from trio_metrics import Client

RULE = "1h:2d,1d:10y"
HOUR, DAY = 3600, 86400
KEYS = 300
HOURS = 24 * 6  # six days back: four of them rolled into daily steps


def pipelined_puts(port: int, lines: list[bytes]) -> None:
    """Send every put at once and read every answer (all ``ok``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=NETWORK_TIMEOUT) as sock:
        sock.sendall(b"".join(lines))
        expected = b"ok\n\n" * len(lines)
        answer = b""
        while len(answer) < len(expected):
            chunk = sock.recv(1 << 16)
            assert chunk, "the server closed early"
            answer += chunk
        assert answer == expected


def expected_cascade(points: dict[int, float], now: int) -> list[tuple[int, float]]:
    """The rules applied by hand: days before the finest tier's floor are
    averaged (at least half of their 24 hours known), the rest is as put."""
    floor = (now - 2 * DAY) // DAY * DAY
    days: dict[int, list[float]] = {}
    shown = []
    for stamp in sorted(points):
        if stamp >= floor:
            shown.append((stamp, points[stamp]))
        else:
            days.setdefault(stamp - stamp % DAY, []).append(points[stamp])
    for day, values in days.items():
        if len(values) / 24 >= 0.5:
            shown.append((day, sum(values) / len(values)))
    return sorted(shown)


def test_kill_9_during_roll_up_then_restart_shows_the_rules_applied(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = int(time.time()) // HOUR * HOUR
    points = {
        f"host{k}.load": {now - HOUR * h: float(k * 1000 + h) for h in range(1, HOURS)}
        for k in range(KEYS)
    }
    lines = [
        b"put %s %r %d\n" % (key.encode(), value, stamp)
        for key, series in points.items()
        for stamp, value in series.items()
    ]
    with (tmp_path / "server.log").open("w") as stderr:
        server = ServeProcess(
            "--data-dir", str(data), "--retention", RULE, "--fsync", "always", stderr=stderr
        )
        try:
            pipelined_puts(server.port, lines)
            # The first round after the load rolls four days of every key up.
            time.sleep(0.6)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=NETWORK_TIMEOUT)
        finally:
            server.ensure_stopped()

        restarted = ServeProcess("--data-dir", str(data), "--retention", RULE, stderr=stderr)
        try:
            with Client("127.0.0.1", restarted.port, timeout=NETWORK_TIMEOUT) as client:
                deadline = time.monotonic() + NETWORK_TIMEOUT
                rounds = client.stats()["roll_up_rounds"]
                while client.stats()["roll_up_rounds"] < rounds + 2:
                    assert time.monotonic() < deadline, "no roll-up round after the restart"
                    time.sleep(0.05)
                stored = client.get("*")
                stats = client.stats()
            code, _ = restarted.stop(signal.SIGTERM)
            assert code == 0
        finally:
            restarted.ensure_stopped()
    checked_at = int(time.time())
    assert sorted(stored) == sorted(points)
    for key, series in points.items():
        want = expected_cascade(series, checked_at)
        got = stored[key]
        assert [stamp for stamp, _ in got] == [stamp for stamp, _ in want], key
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12), key
    assert stats["tier1_points"] > 0 and stats["tier0_points"] > 0


BLOCK_RULE = "1m:10m,2m:7d"
MINUTE = 60
BLOCK_KEYS = 12


class LivePuts(threading.Thread):
    """Puts fresh points (``live.N`` at the current minute) until the server
    dies, so that the log keeps growing and compactions keep starting."""

    def __init__(self, port: int) -> None:
        super().__init__(name="live-puts", daemon=True)
        self.port = port
        self.acknowledged: dict[tuple[str, int], float] = {}

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=NETWORK_TIMEOUT) as s:
                n = 0
                while True:
                    key, stamp = f"live.{n % 50}", int(time.time()) // MINUTE * MINUTE
                    lines = b"".join(
                        b"put %s %d.5 %d\n" % (key.encode(), n + i, stamp) for i in range(50)
                    )
                    s.sendall(lines)
                    answer = b""
                    while len(answer) < 4 * 50:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            return
                        answer += chunk
                    self.acknowledged[(key, stamp)] = n + 49.5
                    n += 50
        except OSError:
            return  # the kill


def snapshot_sizes(data: Path) -> list[int]:
    return [path.stat().st_size for path in data.glob("snapshot.[0-9]*[0-9]")]


def test_kill_9_while_compactions_write_compressed_blocks(tmp_path: Path) -> None:
    """A week of minute points rolled into two-minute steps and compressed;
    compactions keep writing snapshots holding those blocks while live puts
    go on; kill -9 at some point of that, then a restart shows every step."""
    data = tmp_path / "data"
    now = int(time.time()) // MINUTE * MINUTE
    first = now - 7 * DAY + HOUR
    points = {
        f"old{k}": {
            stamp: round(k + (stamp // MINUTE % 89) / 10, 1)
            for stamp in range(first, now - HOUR, MINUTE)
        }
        for k in range(BLOCK_KEYS)
    }
    lines = [
        b"put %s %r %d\n" % (key.encode(), value, stamp)
        for key, series in points.items()
        for stamp, value in series.items()
    ]
    flags = ("--data-dir", str(data), "--retention", BLOCK_RULE, "--compact-min-bytes", "1")
    with (tmp_path / "server.log").open("w") as stderr:
        server = ServeProcess(*flags, "--fsync", "always", stderr=stderr)
        try:
            pipelined_puts(server.port, lines)
            live = LivePuts(server.port)
            live.start()
            with Client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
                deadline = time.monotonic() + 3 * NETWORK_TIMEOUT
                # Until a snapshot holds most of the week as blocks: at 16 bytes
                # a step it would take over 900 KB, with blocks about 200 KB.
                while True:
                    stats = client.stats()
                    half = 8 * stats.get("tier1_points", 0)
                    if stats["compressed_points"] >= BLOCK_KEYS * 2048 and any(
                        size < half for size in snapshot_sizes(data)
                    ):
                        break
                    assert time.monotonic() < deadline, stats
                    time.sleep(0.05)
                compactions = client.stats()["compactions"]
                while client.stats()["compactions"] < compactions + 1:
                    assert time.monotonic() < deadline, "no compaction beside the live puts"
                    time.sleep(0.01)
            time.sleep(random.uniform(0, 0.3))  # somewhere in the next compactions
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=NETWORK_TIMEOUT)
            live.join(timeout=NETWORK_TIMEOUT)
        finally:
            server.ensure_stopped()

        restarted = ServeProcess(*flags, stderr=stderr)
        try:
            with Client("127.0.0.1", restarted.port, timeout=NETWORK_TIMEOUT) as client:
                deadline = time.monotonic() + 3 * NETWORK_TIMEOUT
                # Until roll-up has caught up (the old keys hold no point as put).
                while client.stats()["tier0_points"] > 50 * 12:
                    assert time.monotonic() < deadline, client.stats()
                    time.sleep(0.05)
                stored = client.get("*")
                stats = client.stats()
            code, _ = restarted.stop(signal.SIGTERM)
            assert code == 0
        finally:
            restarted.ensure_stopped()
    for key, series in points.items():
        # Older than the finest tier at any time of the test: two-minute averages.
        got = [(stamp, value) for stamp, value in stored[key] if stamp < now - 2 * HOUR]
        want = []
        for step in range(first - first % 120, now - 2 * HOUR, 120):
            known = [series[t] for t in (step, step + MINUTE) if t in series]
            if known:  # one of two slots meets the xFilesFactor of 0.5
                want.append((step, sum(known) / len(known)))
        assert [stamp for stamp, _ in got] == [stamp for stamp, _ in want], key
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12), key
    live_stored = {
        (key, stamp): value
        for key in stored
        if key.startswith("live.")
        for stamp, value in stored[key]
    }
    for point, value in live.acknowledged.items():
        assert live_stored.get(point, -1.0) >= value, point  # that put or a later one
    assert stats["recovered_points"] > 0
