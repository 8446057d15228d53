"""The dashboard in a real headless browser, against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from browser import series_pixels
from conftest import server_in_thread
from net import NETWORK_TIMEOUT
from playwright.sync_api import Page

from trio_metrics import Client, ServerConfig, ServerInfo
from trio_metrics.storage import RetentionRules, parse_retention

# The page polls every 2 s: a new point must show within this many ms.
LIVE_WITHIN_MS = 6000


@pytest.fixture
def web() -> Iterator[ServerInfo]:
    with server_in_thread(http_port=0) as info:
        yield info


def test_dashboard_lists_keys_draws_charts_and_follows_new_points(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time())
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        for offset in range(60, 0, -10):
            client.put("web.requests", 100 + offset, now - offset)
            client.put("db.latency", offset / 100, now - offset)
        client.put("web.requests", 1, now - 3 * 86400)  # outside every range but "all"
        client.put("zz.other", 5, now - 30)

    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys=web.requests&range=300")
    boxes = browser_page.locator("#keys input[type=checkbox]")
    browser_page.wait_for_function("document.querySelectorAll('#keys input').length === 3")
    assert [box.get_attribute("data-key") for box in boxes.all()] == [
        "db.latency",
        "web.requests",
        "zz.other",
    ]
    assert browser_page.locator("#keys-summary").inner_text() == "3 keys match."

    chart = browser_page.locator(".chart", has_text="web.requests")
    last = chart.locator(".last")
    browser_page.wait_for_function(
        "document.querySelector('.chart .last strong')?.textContent === '110'"
    )
    assert "6 points" in last.inner_text()
    assert browser_page.evaluate("window.dashboard.plots().get('web.requests').data[1].length") == 6
    assert series_pixels(browser_page, "web.requests") > 100

    # A point stored through the TCP protocol shows up without a reload.
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        client.put("web.requests", 4242.5)
    browser_page.wait_for_function(
        "document.querySelector('.chart .last strong')?.textContent === '4242.5'",
        timeout=LIVE_WITHIN_MS,
    )
    assert "7 points" in last.inner_text()

    # The time range: "All points" brings in the old one.
    browser_page.select_option("#range", "all")
    browser_page.wait_for_function(
        "window.dashboard.plots().get('web.requests').data[1].length === 8"
    )

    # Search with the keyboard (Enter submits), then tick a key with Space.
    browser_page.locator("#search").fill("db.*")
    browser_page.locator("#search").press("Enter")
    browser_page.wait_for_function("document.querySelectorAll('#keys input').length === 2")
    assert browser_page.locator("#keys-summary").inner_text() == "1 key match."
    db_box = browser_page.locator("#keys input[data-key='db.latency']")
    db_box.focus()
    browser_page.keyboard.press("Space")
    db_chart = browser_page.locator(".chart", has_text="db.latency")
    db_chart.locator(".last strong").wait_for()
    assert db_chart.locator(".last strong").inner_text() == "0.1"
    assert browser_page.locator(".chart").count() == 2
    assert "keys=db.latency" in browser_page.url

    assert errors == []


def test_values_read_well_and_big_ones_get_a_wide_enough_axis(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time())
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        for offset in range(5, 0, -1):
            client.put("mem.used", 12_345_678 * offset, now - offset)
            client.put("cpu.user", 32.3076923076923, now - offset)
            client.put("tiny", 0.00001234, now - offset)
    keys = "keys=mem.used&keys=cpu.user&keys=tiny"
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#{keys}&range=300")
    browser_page.wait_for_function("document.querySelectorAll('.chart .last strong').length === 3")
    captions = {
        key: browser_page.locator(".chart", has_text=key).locator(".last strong").inner_text()
        for key in ("mem.used", "cpu.user", "tiny")
    }
    assert captions == {"mem.used": "12345678", "cpu.user": "32.3077", "tiny": "0.00001234"}
    # The y axis grows with its labels (it was a fixed 64 px, which cut
    # "60,000,000" off); a small-valued chart keeps a narrow one.
    wide = browser_page.evaluate("window.dashboard.plots().get('mem.used').axes[1]._size")
    narrow = browser_page.evaluate("window.dashboard.plots().get('cpu.user').axes[1]._size")
    assert wide > 64 > narrow
    assert errors == []


def test_comma_separated_keys_in_the_url_chart_each_key(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time())
    keys = ["cpu.user", "cpu.system", "load"]
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        for offset in range(5, 0, -1):
            for number, key in enumerate(keys, start=1):
                client.put(key, number * 10 + offset, now - offset)
        client.put("not.ticked", 1, now - 1)
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys={','.join(keys)}&range=300")
    # Data drawn: each chart shows its latest value, from its own key.
    browser_page.wait_for_function("document.querySelectorAll('.chart .last strong').length === 3")
    browser_page.wait_for_function("document.querySelectorAll('#keys input').length === 4")
    for number, key in enumerate(keys, start=1):
        caption = browser_page.locator(".chart", has_text=key).locator(".last strong")
        assert caption.inner_text() == str(number * 10 + 1)
        assert browser_page.evaluate(f"window.dashboard.plots().get('{key}').data[1].length") == 5
        assert series_pixels(browser_page, key) > 0
    assert browser_page.locator(".chart").count() == 3
    # The list holds the stored keys only, the three ticked: no "a,b,c" entry.
    listed = browser_page.locator("#keys input[type=checkbox]")
    assert sorted(box.get_attribute("data-key") or "" for box in listed.all()) == sorted(
        [*keys, "not.ticked"]
    )
    ticked = browser_page.locator("#keys input[type=checkbox]:checked")
    assert sorted(box.get_attribute("data-key") or "" for box in ticked.all()) == sorted(keys)
    assert errors == []


def test_a_key_with_a_comma_is_named_by_a_repeated_keys(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time())
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        client.put("a,b", 7, now - 1)
        client.put("a", 1, now - 1)
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys=a,b&keys=&range=300")
    browser_page.wait_for_function("document.querySelectorAll('.chart .last strong').length === 1")
    assert browser_page.locator(".chart .last strong").inner_text() == "7"
    assert browser_page.evaluate("[...window.dashboard.plots().keys()]") == ["a,b"]
    # The page's own address reads back as the same one key.
    browser_page.reload()
    browser_page.wait_for_function("document.querySelectorAll('.chart .last strong').length === 1")
    assert browser_page.evaluate("[...window.dashboard.plots().keys()]") == ["a,b"]
    assert errors == []


def test_a_range_past_the_finest_tier_is_charted_from_a_coarser_one(
    page: tuple[Page, list[str]],
) -> None:
    browser_page, errors = page
    rules = RetentionRules(default=parse_retention("1min:2h,1h:7d"))
    config = ServerConfig(host="127.0.0.1", port=0, http_port=0, retention=rules)
    with server_in_thread(config=config) as web:
        now = int(time.time())
        hour = now // 3600 * 3600
        with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
            # Ten hours a point a minute: after roll-up, hours older than two are hourly.
            for minute in range(600, 0, -1):
                client.put("web.load", float(minute % 7), hour - 60 * minute)
            deadline = time.monotonic() + NETWORK_TIMEOUT
            while client.stats()["roll_up_rounds"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys=web.load&range=86400")
        last = browser_page.locator(".chart .last")
        last.wait_for()
        browser_page.wait_for_function(
            "document.querySelector('.chart .last')?.textContent.includes('one per 1 h')"
        )
        # The last five minutes lie in the finest tier: the points as put.
        browser_page.select_option("#range", "300")
        browser_page.wait_for_function(
            "!document.querySelector('.chart .last')?.textContent.includes('one per')"
        )
    assert errors == []


# --- Graphite targets ---

# Chromium itself logs each 4xx answer to the console (the page logs nothing):
# the one line a refused target is allowed to leave (then the reason phrase).
REFUSED_IN_CONSOLE = (
    "console error: Failed to load resource: the server responded with a status of 400 "
)


def _put_requests(web: ServerInfo, now: int) -> dict[int, float]:
    """web.a.requests and web.b.requests every 10 s over the last minute, both
    missing at now-30 (a gap); the sum at each stored timestamp."""
    sums: dict[int, float] = {}
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        for offset in (60, 50, 40, 20, 10):
            a, b = offset / 4, offset * 1.5 + 0.25
            client.put("web.a.requests", a, now - offset)
            client.put("web.b.requests", b, now - offset)
            sums[now - offset] = a + b
        client.put("db.latency", 3, now - 10)
    return sums


def _target_plots(browser_page: Page) -> list[list[str]]:
    names: list[list[str]] = browser_page.evaluate(
        "window.dashboard.targetPlots().map(([target, name]) => [target, name])"
    )
    return names


def _drawn_points(browser_page: Page, before: int) -> list[dict[int, float]]:
    """Each target chart's points that hold a value, timestamp -> value, up to
    ``before`` (later slots come and go with the clock: movingAverage fills them)."""
    plots: list[list[list[float | None]]] = browser_page.evaluate(
        "window.dashboard.targetPlots().map(([, , plot]) => plot.data.slice(0, 2))"
    )
    return [
        {
            int(x): y
            for x, y in zip(xs, ys, strict=True)
            if x is not None and y is not None and x < before
        }
        for xs, ys in plots
    ]


def _add_target(browser_page: Page, target: str) -> None:
    box = browser_page.locator("#target")
    box.fill(target)
    box.press("Enter")


def test_a_target_charts_the_series_it_returns_and_follows_new_points(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time()) // 10 * 10  # slots of 10 s start at multiples of 10
    sums = _put_requests(web, now)
    renders: list[str] = []
    browser_page.on(
        "request",
        lambda request: renders.append(request.url) if "/graphite/render" in request.url else None,
    )
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys=db.latency&range=300")
    browser_page.locator(".chart .last strong").wait_for()
    target = "sumSeries(web.*.requests)"
    _add_target(browser_page, target)
    chart = browser_page.locator(".chart[data-target]")
    chart.locator(".last strong").wait_for()
    assert _target_plots(browser_page) == [[target, target]]
    assert chart.locator("h2").inner_text() == target
    expected_last = sums[now - 10]
    assert chart.locator(".last strong").inner_text() == f"{expected_last:g}"
    # Every slot: the sum where points were stored, a gap (null) elsewhere.
    xs, ys = browser_page.evaluate("window.dashboard.targetPlots()[0][2].data.slice(0, 2)")
    drawn = {x: y for x, y in zip(xs, ys, strict=True) if y is not None}
    assert drawn == sums
    assert None in ys[ys.index(sums[now - 40]) : ys.index(sums[now - 20])]
    assert not browser_page.evaluate("window.dashboard.targetPlots()[0][2].series[1].spanGaps")
    assert browser_page.locator("#targets li .target-note").inner_text() == "1 series"
    assert browser_page.locator("#target").input_value() == ""
    assert "targets=sumSeries%28web.*.requests%29" in browser_page.url

    # Live: a new point of each shows without a reload.
    with Client("127.0.0.1", web.port, timeout=NETWORK_TIMEOUT) as client:
        client.put("web.a.requests", 1000, now)
        client.put("web.b.requests", 0.5, now)
    browser_page.wait_for_function(
        "document.querySelector('.chart[data-target] .last strong')?.textContent === '1000.5'",
        timeout=LIVE_WITHIN_MS,
    )
    # About two points per pixel of the widest chart.
    width = browser_page.evaluate("window.dashboard.targetPlots()[0][2].width")
    asked = parse_qs(urlsplit(renders[-1]).query)
    assert asked["maxDataPoints"] == [str(2 * width)]
    assert asked["target"] == [target]
    assert errors == []


def test_targets_with_commas_and_quotes_round_trip_through_the_address(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time()) // 10 * 10
    _put_requests(web, now)
    # Characters a naive address would split or mangle: , & + # % = quotes, space.
    odd = 'alias(web.a.requests,"a,b & c+d=e #1 100%")'
    average = 'movingAverage(web.b.requests,"5min")'
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#keys=db.latency&range=300")
    browser_page.locator(".chart .last strong").wait_for()
    _add_target(browser_page, odd)
    browser_page.wait_for_function("window.dashboard.targetPlots().length === 1")
    _add_target(browser_page, average)
    browser_page.wait_for_function("window.dashboard.targetPlots().length === 2")
    expected = [[odd, "a,b & c+d=e #1 100%"], [average, average]]
    assert _target_plots(browser_page) == expected
    before = _drawn_points(browser_page, now)
    assert len(before[0]) == 5  # the five points of web.a.requests, renamed
    assert len(before[1]) == 5  # web.b.requests averaged over the slots before each

    browser_page.reload()
    browser_page.wait_for_function("window.dashboard.targetPlots().length === 2")
    browser_page.wait_for_function(
        "document.querySelectorAll('.chart[data-target] .last strong').length === 2"
    )
    assert _target_plots(browser_page) == expected
    after = _drawn_points(browser_page, now)
    assert after == before
    listed = browser_page.locator("#targets .target-expression").all_inner_texts()
    assert listed == [odd, average]
    # A link written by hand, each targets= URL-encoded, opens the same view.
    link = "&".join(f"targets={quote(target, safe='')}" for target in (odd, average))
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#range=300&{link}")
    browser_page.reload()  # a new fragment alone does not reload the page
    browser_page.wait_for_function("window.dashboard.targetPlots().length === 2")
    assert _target_plots(browser_page) == expected
    assert browser_page.evaluate("[...window.dashboard.plots().keys()]") == []
    assert errors == []


def test_a_bad_target_shows_the_servers_message_and_nothing_breaks(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time()) // 10 * 10
    sums = _put_requests(web, now)
    # A refused target from the address: its message beside it, asked once only.
    refused = "scale(web.a.requests)"
    browser_page.goto(
        f"http://127.0.0.1:{web.http_port}/#range=300&targets={quote(refused, safe='')}"
    )
    note = browser_page.locator("#targets li .target-note")
    browser_page.wait_for_function("document.querySelector('#targets .target-note.error')")
    assert note.inner_text() == 'Missing required parameter "factor" for function "scale"'

    # One typed in the box: graphite's message under the box, the text kept to fix.
    typo = "sumSeries(web.*.requests"
    _add_target(browser_page, typo)
    message = browser_page.locator("#target-error")
    message.wait_for()
    assert message.inner_text() == (
        "invalid target 'sumSeries(web.*.requests': Expected ')', found end of text (at char 24)"
    )
    assert browser_page.locator("#target").input_value() == typo
    assert browser_page.locator("#targets li").count() == 1
    assert "sumSeries" not in browser_page.url

    # Fixed, it charts; the message goes.
    browser_page.locator("#target").press("End")
    browser_page.keyboard.type(")")
    browser_page.keyboard.press("Enter")
    browser_page.locator(".chart[data-target] .last strong").wait_for()
    assert message.is_hidden()
    strong = browser_page.locator(".chart[data-target] .last strong")
    assert strong.inner_text() == f"{sums[now - 10]:g}"

    # A target matching nothing says so, and charts nothing.
    _add_target(browser_page, "nothing.*.here")
    no_match = browser_page.locator("#targets li", has_text="nothing.*.here")
    no_match.locator(".target-note", has_text="No series match this target.").wait_for()
    assert len(_target_plots(browser_page)) == 1

    # Past another poll, the refused target was still asked only once.
    asked = "(text) => performance.getEntriesByType('resource')"
    asked += ".filter((entry) => entry.name.includes(text)).length"
    polls = browser_page.evaluate(f"({asked})('nothing')")
    browser_page.wait_for_function(f"({asked})('nothing') > {polls}", timeout=LIVE_WITHIN_MS)
    assert browser_page.evaluate(f"({asked})('scale')") == 1
    assert browser_page.locator("#status").inner_text().startswith("Live · 1 chart")
    # One 400 for each refused target, and nothing from the page itself.
    assert len(errors) == 2
    assert all(error.startswith(REFUSED_IN_CONSOLE) for error in errors), errors


def test_removing_a_target_removes_its_charts_from_the_keyboard(
    page: tuple[Page, list[str]], web: ServerInfo
) -> None:
    browser_page, errors = page
    now = int(time.time()) // 10 * 10
    _put_requests(web, now)
    by_node = "aliasByNode(web.*.requests,1)"
    total = "sumSeries(web.*.requests)"
    twice = "group(db.latency,db.latency)"  # two series of the same name: two charts
    link = "&".join(f"targets={quote(target, safe='')}" for target in (by_node, total, twice))
    browser_page.goto(f"http://127.0.0.1:{web.http_port}/#range=300&{link}")
    browser_page.wait_for_function("window.dashboard.targetPlots().length === 5")
    assert _target_plots(browser_page) == [
        [by_node, "a"],
        [by_node, "b"],
        [total, total],
        [twice, "db.latency"],
        [twice, "db.latency"],
    ]
    titles = ["a", "b", total, "db.latency", "db.latency"]
    assert browser_page.locator(".chart h2").all_inner_texts() == titles

    remove = browser_page.get_by_role("button", name=f"Remove target {by_node}")
    remove.focus()
    browser_page.keyboard.press("Enter")
    remaining = [[total, total], [twice, "db.latency"], [twice, "db.latency"]]
    assert _target_plots(browser_page) == remaining
    assert browser_page.locator(".chart").count() == 3
    assert browser_page.locator("#targets .target-expression").all_inner_texts() == [total, twice]
    assert "aliasByNode" not in browser_page.url
    assert "sumSeries" in browser_page.url
    twice_button = browser_page.get_by_role("button", name=f"Remove target {twice}")
    twice_button.click()
    assert _target_plots(browser_page) == [[total, total]]
    # Focus moves to a remaining target's button, and with none left, back to the box.
    focused = "document.activeElement.getAttribute('aria-label')"
    assert browser_page.evaluate(focused) == f"Remove target {total}"
    browser_page.keyboard.press("Enter")
    assert browser_page.evaluate("document.activeElement.id") == "target"
    assert browser_page.locator(".chart").count() == 0
    assert browser_page.locator("#empty").is_visible()
    # A poll after the removal brings nothing back.
    browser_page.wait_for_timeout(2500)
    assert browser_page.locator(".chart").count() == 0
    assert errors == []
