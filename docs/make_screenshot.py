"""Draw docs/dashboard.png: the dashboard charting collectd's metrics, or synthetic series.

Run from a clone with the test dependencies and Chromium installed. The
README's screenshot is made with collectd (Debian: collectd-core) as a real
Graphite sender, reading this machine every second for five minutes::

    .venv/bin/python docs/make_screenshot.py --collectd [--seconds 300] [OUTPUT.png]

Without ``--collectd`` it feeds the server an hour of made-up series
(a daily swell, noise and one incident) instead, which needs no collectd::

    .venv/bin/python docs/make_screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium, missing_chromium
from collectd_daemon import COLLECTD_MISSING, find_collectd, running_collectd
from conftest import server_in_thread

from trio_metrics import Client, ServerInfo

DEFAULT_OUTPUT = Path(__file__).parent / "dashboard.png"

SYNTHETIC_KEYS = ["web01.requests_per_s", "web01.cpu", "db01.query_ms", "db01.connections"]

#: The host name collectd reports as (a neutral one, not this machine's).
COLLECTD_HOST = "palm"
#: collectd's read plugins for the screenshot, with their settings. Only the
#: loopback interface and the root file system, which every machine has.
COLLECTD_PLUGINS = {
    "cpu": "ReportByCpu false\nValuesPercentage true",
    "load": "",
    "memory": "",
    "interface": 'Interface "lo"',
    "processes": "",
    "df": 'MountPoint "/"',
}
COLLECTD_KEYS = [
    f"{COLLECTD_HOST}.cpu.percent-user",
    f"{COLLECTD_HOST}.load.load.shortterm",
    f"{COLLECTD_HOST}.interface-lo.if_packets.rx",
    f"{COLLECTD_HOST}.processes.fork_rate",
]


def feed_synthetic(client: Client, now: int) -> None:
    """An hour of points every 15 s: a daily swell, noise, and one incident."""
    rng = random.Random(7)
    for step in range(240):
        ts = now - 3600 + step * 15
        swell = math.sin(step / 240 * math.pi)
        spike = 1.0 if 150 <= step < 165 else 0.0
        figures = {
            "web01.requests_per_s": 420 + 260 * swell + rng.gauss(0, 18) + 300 * spike,
            "web01.cpu": 31 + 25 * swell + rng.gauss(0, 3) + 30 * spike,
            "db01.query_ms": 4.2 + 1.5 * swell + abs(rng.gauss(0, 0.6)) + 21 * spike,
            "db01.connections": round(40 + 18 * swell + rng.gauss(0, 2) + 35 * spike),
            "web02.requests_per_s": 380 + 240 * swell + rng.gauss(0, 15),
            "web02.cpu": 28 + 22 * swell + rng.gauss(0, 3),
            "db01.disk_free_gb": 512 - step * 0.05,
            "queue.depth": max(0, round(rng.gauss(3, 2) + 40 * spike)),
        }
        for key, value in figures.items():
            client.put(key, round(value, 2), ts)


def photograph(info: ServerInfo, view: str, charts: int, output: Path, width: int = 1400) -> None:
    """Open the dashboard at ``#view`` and save it once ``charts`` charts show a value."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": 860})
        page.set_default_timeout(15_000)
        page.goto(f"http://127.0.0.1:{info.http_port}/#{view}")
        page.wait_for_function(
            f"document.querySelectorAll('.chart .last strong').length === {charts}"
        )
        page.wait_for_timeout(500)  # let the charts finish drawing
        page.screenshot(path=str(output))


def synthetic(output: Path) -> None:
    """The dashboard over an hour of made-up series."""
    with server_in_thread(http_port=0) as info:
        with Client("127.0.0.1", info.port, timeout=10) as client:
            feed_synthetic(client, int(time.time()))
        keys = "&".join(f"keys={key}" for key in SYNTHETIC_KEYS)
        photograph(info, f"range=3600&{keys}", len(SYNTHETIC_KEYS), output)


def from_collectd(program: str, seconds: float, output: Path) -> None:
    """The dashboard over what collectd sent through the Graphite listener in ``seconds``."""
    with (
        tempfile.TemporaryDirectory(prefix="trio-metrics-collectd-") as directory,
        server_in_thread(graphite_port=0, http_port=0) as info,
    ):
        assert info.graphite_port is not None
        with running_collectd(
            program,
            Path(directory),
            info.graphite_port,
            host=COLLECTD_HOST,
            plugins=COLLECTD_PLUGINS,
        ) as collectd:
            deadline = time.monotonic() + seconds
            with Client("127.0.0.1", info.port, timeout=10) as client:
                # Fails soon, with collectd's log, if nothing arrives.
                collectd.wait_for_points(client, COLLECTD_KEYS, timeout=30)
                print(f"collectd is sending; reading for {seconds:.0f} s", file=sys.stderr)
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 30))
                    if collectd.process.poll() is not None:
                        raise SystemExit(f"collectd stopped early:\n{collectd.log()}")
                    left = max(0.0, deadline - time.monotonic())
                    print(f"  {len(client.get('*'))} keys, {left:.0f} s left", file=sys.stderr)
            keys = "&".join(f"keys={key}" for key in COLLECTD_KEYS)
            view = f"range=300&{keys}"
            # Wider: collectd's values come with many digits, and the captions
            # then fit on one line.
            photograph(info, view, len(COLLECTD_KEYS), output, width=1600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--collectd", action="store_true", help="chart collectd's metrics of this machine"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=300,
        help="how long collectd reads before the screenshot (default 300: the charts' range)",
    )
    args = parser.parse_args()
    reason = missing_chromium()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    if args.collectd:
        program = find_collectd()
        if program is None:
            print(COLLECTD_MISSING, file=sys.stderr)
            return 1
        from_collectd(program, args.seconds, args.output)
    else:
        synthetic(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
