"""collectd's metrics, through the Graphite listener, on `trio-metrics get` and the dashboard."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser import series_pixels
from collectd_daemon import HOST, running_collectd
from conftest import server_in_thread
from net import NETWORK_TIMEOUT
from playwright.sync_api import Page

from trio_metrics import Client

SHORTTERM = f"{HOST}.load.load.shortterm"
MEMORY_USED = f"{HOST}.memory.memory-used"
LOAD_KEYS = [f"{HOST}.load.load.{term}" for term in ("longterm", "midterm", "shortterm")]


@pytest.mark.e2e
def test_collectd_metrics_reach_get_and_the_dashboard(
    collectd_program: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    browser_page, errors = page
    with (
        server_in_thread(graphite_port=0, http_port=0) as info,
        running_collectd(collectd_program, tmp_path, info.graphite_port or 0) as collectd,
    ):
        assert info.graphite_port is not None and info.http_port is not None
        with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
            # Two points, so that the chart has a line to draw, not a lone dot.
            collectd.wait_for_points(client, [SHORTTERM, MEMORY_USED], at_least=2)

        # The page opens charting memory; searching lists collectd's load keys.
        # "All points" stretches the time axis over the points there are, so
        # a few seconds of readings draw a line across the chart.
        browser_page.goto(f"http://127.0.0.1:{info.http_port}/#range=all&keys={MEMORY_USED}")
        browser_page.locator(".chart", has_text=MEMORY_USED).locator(".last strong").wait_for()
        browser_page.locator("#search").fill("*.load.load.*")
        browser_page.locator("#search").press("Enter")
        browser_page.wait_for_function(
            "document.querySelector('#keys-summary').textContent === '3 keys match.'"
        )
        listed = browser_page.locator("#keys input[type=checkbox]").evaluate_all(
            "boxes => boxes.map((box) => box.dataset.key)"
        )
        # The ticked memory key stays listed under the three that match.
        assert listed == [*LOAD_KEYS, MEMORY_USED]

        box = browser_page.locator(f"#keys input[data-key='{SHORTTERM}']")
        assert not box.is_checked()
        box.check()
        chart = browser_page.locator(".chart", has_text=SHORTTERM)
        chart.locator(".last strong").wait_for()
        # Read the chart's points and its caption together: both change at each poll.
        drawn: dict[str, Any] = browser_page.evaluate(
            """(key) => {
                const plot = window.dashboard.plots().get(key);
                const panel = plot.root.closest('.chart');
                return {xs: plot.data[0], ys: plot.data[1],
                        caption: panel.querySelector('.last').textContent};
            }""",
            SHORTTERM,
        )
        points = list(zip(drawn["xs"], drawn["ys"], strict=True))
        assert len(points) >= 2, drawn
        caption = re.search(r"(\d+) points?$", drawn["caption"])
        assert caption is not None, drawn["caption"]
        assert int(caption[1]) == len(points)
        assert series_pixels(browser_page, SHORTTERM) > 100
        assert browser_page.locator(".chart").count() == 2
        assert f"keys={SHORTTERM}" in browser_page.url

        # The chart shows the store's own points: collectd's readings, as read
        # back through the protocol with the CLI after the chart was drawn.
        command = [sys.executable, "-m", "trio_metrics", "get", SHORTTERM, "--json"]
        done = subprocess.run(
            [*command, "--port", str(info.port)],
            capture_output=True,
            text=True,
            timeout=NETWORK_TIMEOUT * 3,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        stored = {(timestamp, value) for timestamp, value in json.loads(done.stdout)[SHORTTERM]}
        assert set(points) <= stored

    assert errors == []
