"""Retention with a data directory in a real server process: kill -9 while
roll-up rewrites the tiers, then a restart on the same directory.

The restarted server must show each key as the rules make of the points that
were acknowledged: older days as one averaged step, the last two days as put.
(Whether the kill lands inside a roll-up round is a matter of timing here;
tests/test_tiers_durable.py stops in the middle of rounds deterministically.)
"""

from __future__ import annotations

import math
import signal
import socket
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
