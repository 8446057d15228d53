"""Headless Chromium for the dashboard: Debian's own build, driven by playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing_chromium() -> str | None:
    """Why the browser cannot run here, or None if it can."""
    if os.access(CHROMIUM, os.X_OK):
        return None
    return (
        f"the dashboard test needs Chromium at {CHROMIUM}: "
        "apt-get install -y --no-install-recommends chromium"
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def series_pixels(page: Page, key: str) -> int:
    """Pixels of the key's chart canvas in the key's colour (its swatch's): the line."""
    count: int = page.evaluate(
        """(key) => {
            const swatch = document.querySelector(`#keys input[data-key="${key}"] + .swatch`);
            const [r0, g0, b0] = getComputedStyle(swatch).backgroundColor
                .match(/\\d+/g).map(Number);
            const canvas = window.dashboard.plots().get(key).root.querySelector("canvas");
            const data = canvas.getContext("2d").getImageData(
                0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                const near = Math.abs(data[i] - r0) + Math.abs(data[i + 1] - g0)
                    + Math.abs(data[i + 2] - b0);
                if (data[i + 3] > 200 && near < 30) count += 1;
            }
            return count;
        }""",
        key,
    )
    return count
