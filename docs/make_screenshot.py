"""Draw docs/dashboard.png: the dashboard over a server fed with a few realistic series.

Run from a clone with the test dependencies and Chromium installed::

    .venv/bin/python docs/make_screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium, missing_chromium
from conftest import server_in_thread

from trio_metrics import Client

KEYS = ["web01.requests_per_s", "web01.cpu", "db01.query_ms", "db01.connections"]
OTHER_KEYS = ["web02.requests_per_s", "web02.cpu", "db01.disk_free_gb", "queue.depth"]


def feed(client: Client, now: int) -> None:
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


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "dashboard.png"
    reason = missing_chromium()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    with server_in_thread(http_port=0) as info:
        with Client("127.0.0.1", info.port, timeout=10) as client:
            feed(client, int(time.time()))
        keys = "&".join(f"keys={key}" for key in KEYS)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(f"http://127.0.0.1:{info.http_port}/#match=*&range=3600&{keys}")
            page.wait_for_function(
                f"document.querySelectorAll('.chart .last strong').length === {len(KEYS)}"
            )
            page.wait_for_timeout(500)  # let the charts finish drawing
            page.screenshot(path=str(output))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
