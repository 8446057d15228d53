"""graphite-web (Debian's 1.1.8) federating tag queries to our server: its remote finder
passes ``seriesByTag(...)`` targets and tag completions through to us, then applies
its own aliasByTags/groupByTags and writes its own JSON. Its answers must equal our
native ones (names, tags, datapoints)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import server_in_thread, skip_or_fail
from graphite_web import (
    GRAPHITE_WEB_MISSING,
    Both,
    graphite_web_installed,
    running_graphite_web,
)
from net import NETWORK_TIMEOUT

from trio_metrics import Client

pytestmark = pytest.mark.e2e

BASE = 1_700_000_000
FIRST, LAST = BASE + 5, BASE + 600
KEYS = [
    "node_load1;instance=a:9100;job=node",
    "node_load1;instance=b:9100;job=node",
    "node_load1;dc=x;instance=c:9100;job=other",
    "disk.used;dc=x;host=a",
    "plain.path",
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    if not graphite_web_installed():
        skip_or_fail(GRAPHITE_WEB_MISSING)
    with server_in_thread(http_port=0) as info:
        assert info.http_port is not None
        with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
            for index, key in enumerate(KEYS):
                for step in range(60):
                    if (step + index) % 5:
                        client.put(key, float(index * 100 + step), BASE + 10 * step)
        directory = tmp_path_factory.mktemp("graphite-web-tags")
        with running_graphite_web(directory, f"127.0.0.1:{info.http_port}/graphite") as web:
            yield Both(info.http_port, web)


def render_params(target: str) -> list[tuple[str, str]]:
    return [("target", target), ("from", str(FIRST)), ("until", str(LAST)), ("format", "json")]


@pytest.mark.parametrize(
    "target",
    [
        "seriesByTag('name=node_load1')",
        "seriesByTag('job=~no', 'instance!=b:9100')",
        "seriesByTag('dc=x')|aliasByTags('name', 'dc')",
        "seriesByTag('name=node_load1')|groupByTags('sum', 'job')",
        "seriesByTag('name=node_load1')|groupByTags('average', 'name', 'job')",
        "seriesByTag('dc=x')|groupByTags('max', 'dc')",
        "seriesByTag('name=node_load1')|groupByTags('sum', 'job', 'instance')",
        "seriesByTag('name=node_load1')|groupByTags('sum', 'instance', 'job')",
        "sumSeries(seriesByTag('name=node_load1'))",
        "plain.path",
    ],
)
def test_graphite_web_renders_tag_queries_as_we_do(both: Both, target: str) -> None:
    theirs = both.web.get_json("/render", render_params(target))
    ours = both.ours("/render", render_params(target))
    assert theirs, target  # something matched
    assert theirs == ours


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/tags/autoComplete/tags", []),
        ("/tags/autoComplete/tags", [("expr", "name=node_load1")]),
        ("/tags/autoComplete/tags", [("tagPrefix", "i")]),
        ("/tags/autoComplete/values", [("tag", "instance"), ("expr", "job=node")]),
        ("/tags/autoComplete/values", [("tag", "name")]),
    ],
)
def test_graphite_web_completes_tags_as_we_do(
    both: Both, path: str, params: list[tuple[str, str]]
) -> None:
    theirs = both.web.get_json(path, params)
    assert theirs
    assert theirs == both.ours(path, params)
