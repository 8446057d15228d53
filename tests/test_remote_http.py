"""Prometheus remote write and remote read over real HTTP, on a real server on 127.0.0.1."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import trio
from http_requests import get_json, request
from prometheus_client.parser import text_string_to_metric_families
from remote_messages import (
    READ_HEADERS,
    WRITE_HEADERS,
    read_request,
    read_response,
    snappy,
    unsnappy,
    write_request,
)

from trio_metrics import (
    DataDirStorage,
    ExistingStore,
    HttpLimits,
    MetricStore,
    ServerConfig,
    ServerInfo,
    StoreUnavailableError,
    open_client,
    serve,
)
from trio_metrics.http._remote import MAX_WRITE_SERIES

NOW_MS = 1_764_000_000_000


async def start(nursery: trio.Nursery, **settings: object) -> ServerInfo:
    config = ServerConfig(host="127.0.0.1", port=0, http_port=0, **settings)  # type: ignore[arg-type]
    info: ServerInfo = await nursery.start(serve, config)
    return info


@pytest.fixture
async def web(nursery: trio.Nursery) -> AsyncIterator[ServerInfo]:
    yield await start(nursery)


def port_of(info: ServerInfo) -> int:
    assert info.http_port is not None
    return info.http_port


async def write(
    info: ServerInfo, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    code, _, answer = await request(
        port_of(info), "POST", "/api/v1/write", body, WRITE_HEADERS if headers is None else headers
    )
    return code, answer


async def read(info: ServerInfo, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return await request(port_of(info), "POST", "/api/v1/read", body, READ_HEADERS)


async def stored(info: ServerInfo) -> dict[str, list[tuple[int, float]]]:
    async with open_client("127.0.0.1", info.port, timeout=5) as client:
        return await client.get("*")


async def metrics(info: ServerInfo) -> dict[str, float]:
    _, _, body = await request(port_of(info), "GET", "/metrics")
    figures = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            name = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()))
            figures[name] = sample.value
    return figures


# --- remote write ------------------------------------------------------------


async def test_write_stores_the_points_under_tagged_keys(web: ServerInfo) -> None:
    body = write_request(
        [
            (
                {"__name__": "node_load1", "job": "node", "instance": "a:9100"},
                [(0.5, NOW_MS + 999)],
            ),
            ({"__name__": "node_load1", "job": "node", "instance": "b:9100"}, [(1.5, NOW_MS)]),
            (
                {"__name__": "node_load1", "job": "node", "instance": "a:9100"},
                [(0.7, NOW_MS + 15000)],
            ),
        ]
    )
    code, answer = await write(web, snappy(body))
    assert (code, answer) == (204, b"")
    assert await stored(web) == {
        "node_load1;instance=a:9100;job=node": [(NOW_MS // 1000, 0.5), (NOW_MS // 1000 + 15, 0.7)],
        "node_load1;instance=b:9100;job=node": [(NOW_MS // 1000, 1.5)],
    }
    figures = await metrics(web)
    assert figures["trio_metrics_remote_write_requests_total"] == 1
    assert figures["trio_metrics_remote_write_samples_total{outcome=stored}"] == 3
    assert figures["trio_metrics_remote_write_bytes_total"] == len(snappy(body))


async def test_metadata_only_and_stale_markers(web: ServerInfo) -> None:
    from trio_metrics.http._prompb import remote_pb2

    metadata = remote_pb2.WriteRequest()
    metadata.metadata.add(metric_family_name="up", help="1 if up")
    assert (await write(web, snappy(metadata.SerializeToString())))[0] == 204
    stale = math.copysign(float("nan"), 1.0)
    body = write_request([({"__name__": "up"}, [(1.0, NOW_MS), (stale, NOW_MS + 1000)])])
    assert (await write(web, snappy(body)))[0] == 204
    assert await stored(web) == {"up": [(NOW_MS // 1000, 1.0)]}
    figures = await metrics(web)
    assert figures["trio_metrics_remote_write_metadata_total"] == 1
    assert figures["trio_metrics_remote_write_samples_total{outcome=unstorable}"] == 1


# A million series: the first valid ones ({__name__="a"}, no sample), the rest empty.
_ONE_SERIES = b"\x0a\x0f\x0a\x0d\x0a\x08__name__\x12\x01a"
_MILLION_SERIES = _ONE_SERIES * MAX_WRITE_SERIES + b"\x0a\x00" * (1_000_000 - MAX_WRITE_SERIES)
_GOOD = write_request([({"__name__": "good", "job": "x"}, [(1.0, NOW_MS)])])


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (snappy(_GOOD)[:-4], None, 400, "snappy"),
        (_GOOD, None, 400, "snappy"),  # not compressed at all
        (snappy(b"\x0a\x40garbage"), None, 400, "series runs past"),
        (
            snappy(write_request([({"__name__": "a", "job": "x\0"}, [(1.0, NOW_MS)])])),
            None,
            400,
            "NUL",
        ),
        (snappy(_GOOD), {"content-encoding": "gzip"}, 415, "snappy, not gzip"),
        (snappy(_GOOD), {}, 415, "not absent"),
        (snappy(_MILLION_SERIES), None, 400, f"more than {MAX_WRITE_SERIES} series"),
        (snappy(b"\x00" * (17 << 20)), None, 400, "over the limit"),
    ],
    ids=["truncated", "raw", "bad-protobuf", "nul", "gzip", "no-encoding", "1M-series", "bomb"],
)
async def test_bad_bodies_are_refused_and_nothing_is_stored(
    web: ServerInfo, body: bytes, headers: dict[str, str] | None, status: int, message: str
) -> None:
    good = write_request([({"__name__": "good", "job": "y"}, [(2.0, NOW_MS)])])
    mixed = body if body is not None else good
    code, answer = await write(web, mixed, headers)
    assert code == status
    assert message in json.loads(answer)["error"]
    assert await stored(web) == {}
    assert (await metrics(web))["trio_metrics_remote_write_rejected_total"] == 1
    # The server is unharmed.
    assert (await write(web, snappy(good)))[0] == 204
    assert await stored(web) == {"good;job=y": [(NOW_MS // 1000, 2.0)]}


async def test_a_body_over_the_http_limit_is_413(nursery: trio.Nursery) -> None:
    info = await start(nursery, http_limits=HttpLimits(max_body_bytes=1000, body_budget_bytes=1000))
    body = write_request(
        [({"__name__": f"m{i}", "job": f"{i}" * 50}, [(1.0, NOW_MS)]) for i in range(100)]
    )
    assert (await write(info, snappy(body)))[0] == 413
    assert await stored(info) == {}


class _FailingStore(MetricStore):
    """A store whose disk has failed: a real one cannot be made to fail on cue over HTTP."""

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        raise StoreUnavailableError("the log failed")


async def test_a_failing_store_is_a_5xx_so_prometheus_retries(nursery: trio.Nursery) -> None:
    info = await start(nursery, storage=ExistingStore(_FailingStore()))
    code, answer = await write(info, snappy(_GOOD))
    assert code == 503, answer


async def test_the_204_comes_once_the_point_is_in_the_log(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        info = await start(nursery, storage=DataDirStorage(tmp_path, fsync="always"))
        assert (await write(info, snappy(_GOOD)))[0] == 204
        nursery.cancel_scope.cancel()  # no graceful stop: only the log keeps the point
    async with trio.open_nursery() as nursery:
        info = await start(nursery, storage=DataDirStorage(tmp_path, fsync="always"))
        assert await stored(info) == {"good;job=x": [(NOW_MS // 1000, 1.0)]}
        nursery.cancel_scope.cancel()


# --- remote read -------------------------------------------------------------


async def put_lines(info: ServerInfo, *points: tuple[str, float, int]) -> None:
    async with open_client("127.0.0.1", info.port, timeout=5) as client:
        for key, value, timestamp in points:
            await client.put(key, value, timestamp)


async def query(
    info: ServerInfo, *queries: tuple[int, int, Sequence[tuple[str, str, str]]]
) -> list[list[tuple[dict[str, str], list[tuple[float, int]]]]]:
    code, headers, body = await read(info, snappy(read_request(*queries)))
    assert code == 200, body
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "snappy"
    return read_response(unsnappy(body))


async def test_read_plain_and_tagged_keys(web: ServerInfo) -> None:
    await put_lines(
        web,
        ("palm.cpu", 10.6, 1501864247),
        ("palm.cpu", 2.0, 1501864248),
        ("palm-cpu", 3.0, 1501864247),
        ("palm_cpu;host=a", 4.0, 1501864247),
        ("palm_cpu;host=b", 5.0, 1501864300),
        ("other", 6.0, 1501864247),
    )
    everything = (0, 2**62, [("=", "__name__", "palm_cpu")])
    (result,) = await query(web, everything)
    assert result == [
        ({"__name__": "palm_cpu", "graphite_path": "palm-cpu"}, [(3.0, 1501864247000)]),
        (
            {"__name__": "palm_cpu", "graphite_path": "palm.cpu"},
            [(10.6, 1501864247000), (2.0, 1501864248000)],
        ),
        ({"__name__": "palm_cpu", "host": "a"}, [(4.0, 1501864247000)]),
        ({"__name__": "palm_cpu", "host": "b"}, [(5.0, 1501864300000)]),
    ]
    # Milliseconds: both ends included, a partial second left out.
    (window, exact, regex, negative) = await query(
        web,
        (1501864247001, 1501864300000, [("=", "__name__", "palm_cpu")]),
        (0, 2**62, [("=", "graphite_path", "palm.cpu")]),
        (0, 2**62, [("=~", "host", "a|c")]),
        (
            0,
            2**62,
            [
                ("=", "__name__", "palm_cpu"),
                ("!~", "host", ".+"),
                ("!=", "graphite_path", "palm-cpu"),
            ],
        ),
    )
    assert [(labels.get("graphite_path", labels.get("host")), s) for labels, s in window] == [
        ("palm.cpu", [(2.0, 1501864248000)]),
        ("b", [(5.0, 1501864300000)]),
    ]
    assert [labels for labels, _ in exact] == [
        {"__name__": "palm_cpu", "graphite_path": "palm.cpu"}
    ]
    assert [labels for labels, _ in regex] == [{"__name__": "palm_cpu", "host": "a"}]
    assert [labels["graphite_path"] for labels, _ in negative] == ["palm.cpu"]


async def test_written_series_read_back_with_their_labels(web: ServerInfo) -> None:
    labels = {"__name__": "http_requests_total", "path": "/a b;c", "code": "200"}
    await write(web, snappy(write_request([(labels, [(7.0, NOW_MS), (8.0, NOW_MS + 15000)])])))
    (result,) = await query(
        web, (NOW_MS, NOW_MS + 15000, [("=", "__name__", "http_requests_total")])
    )
    assert result == [(labels, [(7.0, NOW_MS), (8.0, NOW_MS + 15000)])]


async def test_a_tagged_key_with_the_labels_of_a_plain_path_gives_way(web: ServerInfo) -> None:
    await put_lines(web, ("x.y", 1.0, 100), ("x_y;graphite_path=x.y", 2.0, 100))
    (result,) = await query(web, (0, 10**6, [("=", "__name__", "x_y")]))
    assert result == [({"__name__": "x_y", "graphite_path": "x.y"}, [(1.0, 100_000)])]


async def test_the_sample_limit(nursery: trio.Nursery) -> None:
    info = await start(nursery, http_limits=HttpLimits(max_points=3))
    await put_lines(info, ("k0", 1.0, 0), ("k0", 1.0, 1), ("k1", 1.0, 0))
    (result,) = await query(info, (0, 10**6, [("=~", "__name__", "k.*")]))
    assert len(result) == 2
    await put_lines(info, ("k1", 1.0, 5))
    code, _, body = await read(info, snappy(read_request((0, 10**6, [("=~", "__name__", "k.*")]))))
    assert code == 400
    assert "more than 3 samples" in json.loads(body)["error"]
    assert (await metrics(info))["trio_metrics_remote_read_rejected_total"] == 1


async def test_bad_read_requests(web: ServerInfo) -> None:
    for body, status in [
        (snappy(b"\x0a\x05ab"), 400),
        (snappy(read_request((0, 1, [("=~", "a", "(")]))), 400),
        (read_request((0, 1, [])), 400),
    ]:
        code, _, answer = await read(web, body)
        assert code == status, answer
    code, _, _ = await request(port_of(web), "POST", "/api/v1/read", snappy(read_request()), {})
    assert code == 415
    assert await get_json(port_of(web), "/healthz") == {"status": "ok"}
