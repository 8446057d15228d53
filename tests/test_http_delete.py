"""``DELETE /api/v1/series?key=``: a key or a glob, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
import trio
from http_requests import get_json, post_points, request

from trio_metrics import ServerInfo, serve
from trio_metrics.http._openapi import OPENAPI


@pytest.fixture
async def web(nursery: trio.Nursery) -> AsyncIterator[ServerInfo]:
    info: ServerInfo = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, http_port=0, task_status=task_status)
    )
    yield info


async def delete(info: ServerInfo, key: str | None, status: int = 200) -> object:
    assert info.http_port is not None
    path = "/api/v1/series" if key is None else f"/api/v1/series?key={quote(key)}"
    code, headers, body = await request(info.http_port, "DELETE", path)
    assert (code, headers["content-type"]) == (status, "application/json"), body
    return json.loads(body)


async def test_delete_a_key_and_a_glob(web: ServerInfo) -> None:
    assert web.http_port is not None
    points = [{"key": key, "value": 1, "timestamp": 5} for key in ("web.a", "web.b", "db.a", "top")]
    await post_points(web.http_port, points)
    assert await delete(web, "top") == {"deleted": 1}
    assert await delete(web, "top") == {"deleted": 0}
    assert await delete(web, "web.*") == {"deleted": 2}
    assert await get_json(web.http_port, "/api/v1/keys") == {"keys": ["db.a"]}


@pytest.mark.parametrize("key", [None, "", "web.[", "{a", "a b"])
async def test_a_bad_key_is_a_400(web: ServerInfo, key: str | None) -> None:
    answer = await delete(web, key, 400)
    assert isinstance(answer, dict) and "error" in answer


async def test_the_route_allows_delete_and_the_document_says_so(web: ServerInfo) -> None:
    assert web.http_port is not None
    code, headers, _body = await request(web.http_port, "POST", "/api/v1/series", b"")
    assert code == 405 and headers["allow"] == "DELETE, GET, HEAD"
    operation = OPENAPI["paths"]["/api/v1/series"]["delete"]
    assert set(operation["responses"]) == {"200", "400", "401", "500", "503"}
