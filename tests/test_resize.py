"""``trio-metrics resize``: a data directory rewritten under new rules, as whisper-resize does."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from net import NETWORK_TIMEOUT
from processes import ServeProcess, run_cli

from trio_metrics import Client
from trio_metrics.storage import (
    MetricStore,
    RetentionRules,
    parse_retention,
    recover,
    resize_data_dir,
)

HOUR = 3600


def stored(directory: Path) -> dict[str, list[tuple[int, float]]]:
    store = MetricStore()
    recover(directory, store=store)
    return {s.key: list(zip(s.timestamps, s.values, strict=True)) for s in store.series("*")}


def fill(directory: Path, points: dict[str, list[tuple[int, float]]]) -> None:
    """Put ``points`` through a real server with a data directory and no rules."""
    with (directory.parent / "server.log").open("w") as stderr:
        server = ServeProcess("--data-dir", str(directory), stderr=stderr)
        try:
            with Client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
                for key, series in points.items():
                    for stamp, value in series:
                        client.put(key, value, stamp)
            code, _ = server.stop(signal.SIGTERM)
            assert code == 0
        finally:
            server.ensure_stopped()


def test_resize_moves_old_points_into_coarser_steps_and_drops_the_expired(
    tmp_path: Path,
) -> None:
    now = 1_800_000_000
    data = tmp_path / "data"
    # A minute apart for 3 hours, and one point 10 days back.
    points = {"web.load": [(now - 60 * i, float(i)) for i in range(180, 0, -1)]}
    points["web.load"].insert(0, (now - 10 * 86400, 99.0))
    fill(data, points)
    rules = RetentionRules(default=parse_retention("1min:1h,1h:7d"))
    report = resize_data_dir(data, rules, now=now)
    got = stored(data)["web.load"]
    floor = (now - HOUR) // HOUR * HOUR
    # As whisper writes old points into a lower archive: the last of each hour wins.
    hours: dict[int, float] = {}
    for stamp, value in points["web.load"][1:]:
        if stamp < floor:
            hours[stamp - stamp % HOUR] = value
    want = sorted(hours.items()) + [(s, v) for s, v in points["web.load"][1:] if s >= floor]
    assert got == want
    assert (report.keys, report.dropped) == (1, 1)
    assert report.points_before == 181 and report.points_after == len(want)
    # The old files are gone; one snapshot and one empty segment remain.
    names = sorted(entry.name for entry in data.iterdir() if entry.name != "LOCK")
    assert names == [f"log.{report.snapshot.name.split('.')[1]}", report.snapshot.name]


def test_resize_with_aggregate_combines_each_step(tmp_path: Path) -> None:
    now = 1_800_000_000
    data = tmp_path / "data"
    points = {"db.max": [(now - 60 * i, float(i % 7)) for i in range(180, 0, -1)]}
    fill(data, points)
    schemas = tmp_path / "storage-schemas.conf"
    schemas.write_text("[all]\npattern = .\nretentions = 1min:1h,1h:7d\n")
    aggregation = tmp_path / "storage-aggregation.conf"
    aggregation.write_text("[max]\npattern = \\.max$\naggregationMethod = max\n")
    done = run_cli(
        "resize",
        "--data-dir",
        str(data),
        "--storage-schemas",
        str(schemas),
        "--storage-aggregation",
        str(aggregation),
        "--aggregate",
    )
    assert done.returncode == 0, done.stderr
    assert "resized" in done.stdout and "1 keys, 180 points before" in done.stdout
    now = int(time.time())  # the command's own clock
    got = dict(stored(data)["db.max"])
    floor = (now - HOUR) // HOUR * HOUR
    for start in {s - s % HOUR for s, _ in points["db.max"] if s < floor}:
        in_step = [v for s, v in points["db.max"] if start <= s < start + HOUR]
        assert got[start] == max(in_step)


def test_resize_needs_rules_and_refuses_a_directory_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, {"k": [(1_800_000_000, 1.0)]})
    done = run_cli("resize", "--data-dir", str(data))
    assert done.returncode == 2
    assert "give the new rules" in done.stderr
    with (tmp_path / "running.log").open("w") as stderr:
        server = ServeProcess("--data-dir", str(data), stderr=stderr)
        try:
            done = run_cli("resize", "--data-dir", str(data), "--retention", "1m:1d")
            assert done.returncode == 1
            assert "is in use by another trio-metrics server" in done.stderr, done.stderr
        finally:
            server.stop(signal.SIGTERM)
            server.ensure_stopped()
