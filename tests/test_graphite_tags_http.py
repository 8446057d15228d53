"""Graphite tag queries over real sockets: keys put with tags through the main protocol and
through Prometheus remote write, then read by seriesByTag renders and the /graphite/tags
endpoints of a real server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
import trio
from http_requests import Pinger, request
from net import NETWORK_TIMEOUT
from remote_messages import WRITE_HEADERS, snappy, write_request

from trio_metrics import ServerConfig, ServerInfo, open_client, serve

BASE = 1_700_000_000
PUT = {
    "node_load1;instance=a:9100;job=node": [1.5, 2.5],
    "node_load1;instance=b:9100;job=node": [3.0, 4.0],
    "node_load1;instance=c:9100;job=other": [10.0, 20.0],
    "disk.used;host=a": [7.0, 8.0],
    "plain.path": [0.5, 0.5],
}


@pytest.fixture
async def web(nursery: trio.Nursery) -> AsyncIterator[int]:
    config = ServerConfig(host="127.0.0.1", port=0, http_port=0)

    async def start(task_status: Any) -> None:
        await serve(config, task_status=task_status)

    info: ServerInfo = await nursery.start(start)
    assert info.http_port is not None
    async with open_client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
        for key, values in PUT.items():
            for index, value in enumerate(values):
                await client.put(key, value, BASE + 10 * index)
    # Prometheus' own labels: written as node_load1;env=prod;instance=d:9100;job=node.
    remote = write_request(
        [
            (
                {"__name__": "node_load1", "job": "node", "instance": "d:9100", "env": "prod"},
                [(6.0, BASE * 1000), (7.0, (BASE + 10) * 1000)],
            )
        ]
    )
    code, _, body = await request(
        info.http_port, "POST", "/api/v1/write", snappy(remote), WRITE_HEADERS
    )
    assert code == 204, body
    yield info.http_port


async def get(port: int, path: str, params: list[tuple[str, str]]) -> tuple[int, Any]:
    code, headers, body = await request(port, "GET", f"/graphite{path}?{urlencode(params)}")
    if headers["content-type"].startswith("application/json"):
        return code, json.loads(body)
    return code, body.decode()


def render(*targets: str) -> list[tuple[str, str]]:
    return [
        *(("target", target) for target in targets),
        ("from", str(BASE - 5)),
        ("until", str(BASE + 15)),
        ("format", "json"),
    ]


async def test_series_by_tag_renders_tagged_keys(web: int) -> None:
    code, answer = await get(
        web, "/render", render("seriesByTag('name=node_load1','job=node','env!=prod')")
    )
    assert code == 200, answer
    assert [(s["target"], s["tags"]) for s in answer] == [
        (
            "node_load1;instance=a:9100;job=node",
            {"instance": "a:9100", "job": "node", "name": "node_load1"},
        ),
        (
            "node_load1;instance=b:9100;job=node",
            {"instance": "b:9100", "job": "node", "name": "node_load1"},
        ),
    ]
    assert [v for v, _ in answer[0]["datapoints"] if v is not None] == [1.5, 2.5]
    code, answer = await get(
        web, "/render", render("seriesByTag('instance=~[cd]', 'env!=~x.*')|aliasByTags('instance')")
    )
    # By key: the remote-written series' key sorts first ("env" before "instance").
    assert [s["target"] for s in answer] == ["d:9100", "c:9100"]
    assert [v for v, _ in answer[0]["datapoints"] if v is not None] == [6.0, 7.0]


async def test_group_by_tags_over_http(web: int) -> None:
    code, answer = await get(
        web, "/render", render("seriesByTag('name=node_load1')|groupByTags('sum','job')")
    )
    assert code == 200, answer
    assert [(s["target"], s["tags"]) for s in answer] == [
        ("node_load1;job=node", {"job": "node", "name": "node_load1"}),
        ("node_load1;job=other", {"job": "other", "name": "node_load1"}),
    ]
    assert [v for v, _ in answer[0]["datapoints"] if v is not None] == [10.5, 13.5]


async def test_bad_tag_queries_are_400_with_a_message(web: int) -> None:
    for target, message in (
        ("seriesByTag('job=')", "At least one tagspec"),
        ("seriesByTag('job=~(')", "Invalid regular expression"),
        ("seriesByTag('nonsense')", "Invalid tagspec"),
    ):
        code, answer = await get(web, "/render", render(target))
        assert (code, message in answer) == (400, True), answer
    code, answer = await get(web, "/tags/findSeries", [])
    assert (code, answer) == (400, "no tag expressions specified")
    code, answer = await get(web, "/tags/autoComplete/values", [])
    assert (code, answer) == (400, "no tag specified")


async def test_tag_listings(web: int) -> None:
    code, answer = await get(web, "/tags", [])
    assert code == 200
    assert answer == [{"tag": t} for t in ("env", "host", "instance", "job", "name")]
    assert await get(web, "/tags", [("filter", "i|j")]) == (
        200,
        [{"tag": "instance"}, {"tag": "job"}],
    )
    _, answer = await get(web, "/tags/job", [])
    assert answer == {
        "tag": "job",
        "values": [{"value": "node", "count": 3}, {"value": "other", "count": 1}],
    }
    assert await get(web, "/tags/nosuch", []) == (200, None)
    assert await get(
        web, "/tags/findSeries", [("expr", "name=node_load1"), ("expr", "env=prod")]
    ) == (200, ["node_load1;env=prod;instance=d:9100;job=node"])
    assert await get(web, "/tags/findSeries", [("expr[]", "host=a")]) == (
        200,
        ["disk.used;host=a"],
    )


async def test_completions_as_grafana_asks(web: int) -> None:
    assert await get(web, "/tags/autoComplete/tags", []) == (
        200,
        ["env", "host", "instance", "job", "name"],
    )
    assert await get(web, "/tags/autoComplete/tags", [("tagPrefix", "i"), ("limit", "5")]) == (
        200,
        ["instance"],
    )
    # With expressions: the other tags of the matching series.
    assert await get(web, "/tags/autoComplete/tags", [("expr", "name=node_load1")]) == (
        200,
        ["env", "instance", "job"],
    )
    assert await get(
        web, "/tags/autoComplete/values", [("tag", "instance"), ("expr", "job=node")]
    ) == (200, ["a:9100", "b:9100", "d:9100"])
    assert await get(
        web, "/tags/autoComplete/values", [("tag", "name"), ("valuePrefix", "disk")]
    ) == (200, ["disk.used"])
    code, _, body = await request(
        web,
        "POST",
        "/graphite/tags/autoComplete/values",
        b"tag=job&limit=1",
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert (code, json.loads(body)) == (200, ["node"])


async def test_a_long_scan_lets_the_main_port_answer(nursery: trio.Nursery) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, http_port=0)

    async def start(task_status: Any) -> None:
        await serve(config, task_status=task_status)

    info: ServerInfo = await nursery.start(start)
    assert info.http_port is not None
    count = 200_000
    await info.store.put_batch(
        [f"m{i:06};job=j{i % 7}" for i in range(count)], [1.0] * count, [BASE] * count
    )
    pinger = Pinger()
    async with trio.open_nursery() as inner:
        inner.start_soon(pinger.run, info.port)
        await trio.sleep(0.05)
        code, answer = await get(info.http_port, "/tags/job", [])
        inner.cancel_scope.cancel()
    assert code == 200
    assert sum(v["count"] for v in answer["values"]) == count
    assert pinger.count > 5
    assert pinger.longest < 0.5, pinger.longest


async def test_a_tag_scan_past_its_bound_is_a_400(
    web: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound is 1,000,000 keys; lowered here below the fixture's 6 keys.
    monkeypatch.setattr("trio_metrics.query._tagged.DEFAULT_MAX_TAG_SCAN", 3)
    message = "the tag query reads over 3 keys, the limit per request: add a name= expression"
    assert await get(web, "/render", render("seriesByTag('job=node')")) == (400, message)
    assert await get(web, "/tags/findSeries", [("expr", "job=node")]) == (400, message)
    assert await get(web, "/tags", []) == (400, message)
    assert await get(web, "/tags/autoComplete/values", [("tag", "job")]) == (400, message)
    # A name= query reads only that metric's keys: within the bound.
    code, answer = await get(web, "/tags/findSeries", [("expr", "name=disk.used")])
    assert (code, answer) == (200, ["disk.used;host=a"])
