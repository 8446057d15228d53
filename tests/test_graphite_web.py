"""A stock graphite-web (Debian's 1.1.8) as our client: it federates to our server through
its cluster protocol (``/graphite/metrics/find/`` and ``/graphite/render/`` as pickles)
and answers its own ``/metrics/find`` and ``/render`` from what we send.

Its answers for plain paths and globs must equal our native ``/graphite/render``;
for the functions it computes itself (``sumSeries`` ...), a direct computation over
the points we stored.
"""

from __future__ import annotations

import itertools
import math
import queue
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import server_in_thread, skip_or_fail
from graphite_web import (
    GRAPHITE_WEB_MISSING,
    Both,
    graphite_web_installed,
    running_graphite_web,
)
from net import NETWORK_TIMEOUT

from trio_metrics import Client, ServerConfig, ServerInfo, serve
from trio_metrics.storage import RetentionRules, parse_retention

pytestmark = pytest.mark.e2e

BASE = 1_700_000_000
STEP = 10
COUNT = 120
FIRST, LAST = BASE + 55, BASE + 10 * (COUNT - 1) + 5  # from and until of every render
HOSTS = ("h1", "h2", "h3")


def stored_points() -> dict[str, dict[int, float]]:
    """What the fixture stores: three hosts' cpu every 10 s (h3 with gaps), h1's mem every 60 s."""
    rng = random.Random(13)
    points: dict[str, dict[int, float]] = {}
    for host in HOSTS:
        points[f"e2e.{host}.cpu"] = {
            BASE + STEP * i: round(rng.uniform(-50, 150), 6)
            for i in range(COUNT)
            if not (host == "h3" and i % 7 == 3)
        }
    points["e2e.h1.mem"] = {BASE + 60 * i: rng.uniform(0, 1e9) for i in range(COUNT // 6)}
    return points


POINTS = stored_points()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    if not graphite_web_installed():
        skip_or_fail(GRAPHITE_WEB_MISSING)
    with server_in_thread(http_port=0) as info:
        assert info.http_port is not None
        with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
            for key, series in POINTS.items():
                for stamp, value in series.items():
                    client.put(key, value, stamp)
        directory = tmp_path_factory.mktemp("graphite-web")
        with running_graphite_web(directory, f"127.0.0.1:{info.http_port}/graphite") as web:
            yield Both(info.http_port, web)


def render_params(*targets: str) -> list[tuple[str, str]]:
    return [
        *(("target", target) for target in targets),
        ("from", str(FIRST)),
        ("until", str(LAST)),
        ("format", "json"),
    ]


def assert_same_series(theirs: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same targets and timestamps; values equal within 1e-9 relative, nulls alike."""
    assert [s["target"] for s in theirs] == [s["target"] for s in expected]
    for got, want in zip(theirs, expected, strict=True):
        assert [ts for _, ts in got["datapoints"]] == [ts for _, ts in want["datapoints"]]
        for (value, stamp), (wanted, _) in zip(got["datapoints"], want["datapoints"], strict=True):
            if wanted is None:
                assert value is None, (got["target"], stamp)
            else:
                assert value is not None, (got["target"], stamp)
                assert math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12), (
                    stamp,
                    value,
                    wanted,
                )


def by_target(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(series, key=lambda each: each["target"])


# --- find ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("e2e.*", [("e2e.h1", 0), ("e2e.h2", 0), ("e2e.h3", 0)]),
        ("e2e.h1.*", [("e2e.h1.cpu", 1), ("e2e.h1.mem", 1)]),
        ("e2e.{h1,h3}.c*", [("e2e.{h1,h3}.cpu", 1)]),
        ("e2e.nope.*", []),
    ],
)
def test_graphite_webs_find_lists_our_keys(
    both: Both, query: str, expected: list[tuple[str, int]]
) -> None:
    theirs = both.web.get_json("/metrics/find/", [("query", query)])
    assert [(node["id"], node["leaf"]) for node in theirs] == expected
    assert theirs == both.ours("/metrics/find", [("query", query)])


# --- render: plain paths and globs equal our own render ----------------------------


@pytest.mark.parametrize(
    "targets",
    [
        ("e2e.h1.cpu",),
        ("e2e.h3.cpu",),  # with gaps
        ("e2e.*.cpu",),
        ("e2e.h1.*",),  # two steps: 10 s and 60 s
        ("e2e.h[12].cpu", "e2e.h1.mem"),
    ],
)
def test_graphite_webs_render_of_paths_equals_ours(both: Both, targets: tuple[str, ...]) -> None:
    theirs = both.web.get_json("/render/", render_params(*targets))
    ours = both.ours("/render", render_params(*targets))
    assert ours, "our render answered no series"
    assert_same_series(by_target(theirs), by_target(ours))


def test_our_render_holds_the_stored_points_in_their_slots(both: Both) -> None:
    (series,) = both.ours("/render", render_params("e2e.h3.cpu"))
    stored = POINTS["e2e.h3.cpu"]
    first = FIRST - FIRST % STEP
    # The first slot starts before ``from``: its point (at FIRST - 5) is outside the range.
    expected = [[None, first]] + [[stored.get(s), s] for s in range(first + STEP, LAST + 1, STEP)]
    assert series["datapoints"] == expected


# --- render: graphite-web's own functions over our data ------------------------------


def direct(combine: Any, keys: list[str]) -> list[list[Any]]:
    """``combine`` of the keys' values per 10 s slot of the render range (None if none)."""
    first = FIRST - FIRST % STEP
    rows = []
    for stamp in range(first, LAST + 1, STEP):
        values = [POINTS[key][stamp] for key in keys if stamp in POINTS[key] and stamp >= FIRST]
        rows.append([combine(values) if values else None, stamp])
    return rows


CPU_KEYS = [f"e2e.{host}.cpu" for host in HOSTS]


@pytest.mark.parametrize(
    ("target", "combine", "keys"),
    [
        ("sumSeries(e2e.*.cpu)", math.fsum, CPU_KEYS),
        ("averageSeries(e2e.*.cpu)", lambda v: math.fsum(v) / len(v), CPU_KEYS),
        ("maxSeries(e2e.h{1,3}.cpu)", max, ["e2e.h1.cpu", "e2e.h3.cpu"]),
        ("scale(e2e.h2.cpu,2.5)", lambda v: v[0] * 2.5, ["e2e.h2.cpu"]),
    ],
)
def test_graphite_webs_functions_over_our_series_equal_a_direct_computation(
    both: Both, target: str, combine: Any, keys: list[str]
) -> None:
    (series,) = both.web.get_json("/render/", render_params(target))
    assert series["target"] == target
    assert_same_series([series], [{"target": target, "datapoints": direct(combine, keys)}])


# --- retention tiers: graphite-web gets the rolled-up tier's step ---------------------


@contextmanager
def tiered_server(rule: str) -> Iterator[ServerInfo]:
    """A server in a thread that keeps every key by ``rule``, with its HTTP API."""
    started: queue.Queue[Any] = queue.Queue()
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        http_port=0,
        retention=RetentionRules(default=parse_retention(rule)),
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(serve, config)
            started.put((info, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=lambda: trio.run(main), daemon=True)
    thread.start()
    info, token, scope = started.get(timeout=NETWORK_TIMEOUT)
    try:
        yield info
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(NETWORK_TIMEOUT)


def test_graphite_web_renders_a_rolled_up_tier_as_we_do(tmp_path: Path) -> None:
    if not graphite_web_installed():
        skip_or_fail(GRAPHITE_WEB_MISSING)
    now = int(time.time())
    with tiered_server("10s:10min,60s:3h") as info:
        assert info.http_port is not None
        with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
            for stamp in range(now - now % 10 - 7200, now, 10):
                client.put("tier.a", float(stamp % 600), stamp)
                client.put("tier.b", 1.0, stamp)
        cluster = f"127.0.0.1:{info.http_port}/graphite"
        with running_graphite_web(tmp_path, cluster) as web:
            # From an hour ago: past the 10-minute finest tier, so the 60 s tier.
            window = [("from", str(now - 3600)), ("until", str(now - 60)), ("format", "json")]
            ours = Both(info.http_port, web).ours("/render", [("target", "tier.*"), *window])
            theirs = web.get_json("/render/", [("target", "tier.*"), *window])
            summed = web.get_json("/render/", [("target", "sumSeries(tier.*)"), *window])
    assert [s["target"] for s in ours] == ["tier.a", "tier.b"]
    stamps = [stamp for _, stamp in ours[0]["datapoints"]]
    assert {b - a for a, b in itertools.pairwise(stamps)} == {60}
    assert_same_series(by_target(theirs), by_target(ours))
    # Each 60 s step of tier.b averages six 1.0s; sumSeries adds tier.a's step.
    (total,) = summed
    expected = [
        [None if a is None else a + b, stamp]
        for (a, stamp), (b, _) in zip(ours[0]["datapoints"], ours[1]["datapoints"], strict=True)
    ]
    assert_same_series([total], [{"target": total["target"], "datapoints": expected}])


# --- render: every function of ours against graphite-web's over the same data -------

FUNCTION_TARGETS = [
    'alias(e2e.h1.cpu,"one")',
    r'aliasSub(e2e.h1.cpu,"e2e\.(\w+)\.cpu","\1 A")',
    'aliasSub(sumSeries(e2e.*.cpu),"(^.*$)","\\1 A")',  # Grafana 11.6's wrapping
    "aliasByNode(e2e.*.cpu,1)",
    "constantLine(100)",
    "sumSeries(e2e.*.cpu)",
    "sum(e2e.h1.cpu,e2e.h3.cpu)",
    "averageSeries(e2e.*.cpu)",
    "avg(e2e.h[12].cpu)",
    "maxSeries(e2e.*.cpu)",
    "minSeries(e2e.*.cpu)",
    "group(e2e.h1.cpu,e2e.h2.cpu)",
    "scale(e2e.h2.cpu,2.5)",
    "offset(e2e.h2.cpu,-3)",
    "transformNull(e2e.h3.cpu,0)",
    "keepLastValue(e2e.h3.cpu)",
    "derivative(e2e.h1.cpu)",
    "nonNegativeDerivative(e2e.h1.cpu)",
    "perSecond(e2e.h1.cpu)",
    'summarize(e2e.h1.cpu,"1min","sum")',
    'summarize(e2e.h3.cpu,"2min","avg",true)',
    "movingAverage(e2e.h1.cpu,5)",
    'movingAverage(e2e.h3.cpu,"1min")',
    'timeShift(e2e.h1.cpu,"1min")',
    'consolidateBy(e2e.h1.cpu,"max")',
    "divideSeries(e2e.h1.cpu,e2e.h2.cpu)",
    "asPercent(e2e.h1.cpu,e2e.h2.cpu)",
    'groupByNode(e2e.*.cpu,1,"sumSeries")',
    'color(e2e.h1.cpu,"red")',
    "e2e.h1.cpu|scale(2)|offset(1)",
]


@pytest.mark.parametrize("max_data_points", [None, 17])
@pytest.mark.parametrize("target", FUNCTION_TARGETS)
def test_our_functions_render_as_graphite_webs_over_our_data(
    both: Both, target: str, max_data_points: int | None
) -> None:
    """graphite-web fetches our raw series (the cluster protocol) and runs its own
    functions; our native render must give the same names, timestamps and values."""
    params = render_params(target)
    if max_data_points is not None:
        params.append(("maxDataPoints", str(max_data_points)))
    theirs = both.web.get_json("/render/", params)
    ours = both.ours("/render", params)
    assert theirs, "graphite-web answered no series"
    assert_same_series(theirs, ours)
    assert [s.get("tags") for s in ours] == [s.get("tags") for s in theirs]
