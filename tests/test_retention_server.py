"""Retention in a running server: real TCP clients, the roll-up task, stats and /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from http_requests import get_json, request
from net import NETWORK_TIMEOUT
from processes import run_cli

from trio_metrics import (
    AsyncClient,
    ExistingStore,
    MetricStore,
    ServerConfig,
    ServerInfo,
    open_client,
    serve,
)
from trio_metrics.storage import RetentionRules, parse_retention


async def start(nursery: trio.Nursery, rule: str) -> ServerInfo:
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        http_port=0,
        retention=RetentionRules(default=parse_retention(rule)),
    )
    info: ServerInfo = await nursery.start(serve, config)
    return info


async def until_rounds(client: AsyncClient, rounds: int) -> None:
    """Wait (bounded) until the roll-up task has made ``rounds`` rounds."""
    with trio.fail_after(NETWORK_TIMEOUT):
        for _ in range(10_000):
            if (await client.stats())["roll_up_rounds"] >= rounds:
                return
            await trio.sleep(0.05)


async def test_old_points_roll_up_and_too_old_ones_expire(nursery: trio.Nursery) -> None:
    info = await start(nursery, "1m:1h,1h:7d")
    now = int(time.time())
    # An hour that lies wholly before the finest tier's hour for the whole test.
    hour = (now - 7200) // 3600 * 3600 - 3600
    old = [(hour + 60 * i, float(i)) for i in range(60)]
    recent = [(now - 120, 1.5), (now - 60, 2.5)]
    async with open_client(info.host, info.port) as client:
        for timestamp, value in [*old, *recent]:
            await client.put("web.load", value, timestamp)
        await client.put("web.load", 9.0, now - 8 * 86400)  # past the 7 days: dropped
        # A round that began after the puts has ended once two more have.
        await until_rounds(client, (await client.stats())["roll_up_rounds"] + 2)
        stats = await client.stats()
        points = (await client.get("web.load"))["web.load"]
    # One hour step, the average of its 60 minutes, then the recent points as put.
    assert points == [(hour, sum(range(60)) / 60), *recent]
    assert stats["points_expired"] == 1
    assert stats["points_rolled_up"] == 60
    assert (stats["tier0_points"], stats["tier1_points"]) == (2, 1)
    # Range readers take the finest tier that covers the whole range.
    port = info.http_port or 0
    recent_only = await get_json(port, f"/api/v1/series?key=web.load&from={now - 300}")
    assert recent_only["series"][0]["step"] == 0
    assert recent_only["series"][0]["points"] == [list(point) for point in recent]
    reaching_back = await get_json(port, f"/api/v1/series?key=web.load&from={hour}")
    # One hour step; the two recent minutes are 2 of an hour's 60 slots,
    # under the xFilesFactor of 0.5, so their hour has no value.
    assert reaching_back["series"][0]["step"] == 3600
    assert reaching_back["series"][0]["points"] == [[hour, sum(range(60)) / 60]]
    _, _, body = await request(info.http_port or 0, "GET", "/metrics")
    text = body.decode()
    assert "trio_metrics_points_expired_total 1" in text
    assert "trio_metrics_compressed_bytes " in text
    assert 'trio_metrics_tier_points{tier="1"} 1' in text


async def test_keys_without_rules_keep_everything(nursery: trio.Nursery) -> None:
    info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
    async with open_client(info.host, info.port) as client:
        await client.put("k", 1.0, 1)  # 1970: kept, as always without rules
        assert (await client.get("k"))["k"] == [(1, 1.0)]
        assert "points_expired" not in await client.stats()


def test_a_bad_schema_file_stops_the_start_with_file_and_line(tmp_path: Path) -> None:
    schemas = tmp_path / "storage-schemas.conf"
    schemas.write_text("[a]\npattern = x\nretentions = 10s:1d,10s:2d\n")
    done = run_cli("serve", "--port", "0", "--storage-schemas", str(schemas))
    assert done.returncode == 2
    assert f"{schemas}:3: two archives have the same step (10s)" in done.stderr
    assert "listening" not in done.stdout + done.stderr


def test_rules_for_a_store_of_ones_own_are_refused() -> None:
    with pytest.raises(ValueError, match="a store of your own keeps its points as it likes"):
        ServerConfig(
            storage=ExistingStore(MetricStore()),
            retention=RetentionRules(default=parse_retention("10s:1d")),
        )


def test_a_bad_retention_flag_says_what_is_wrong() -> None:
    done = run_cli("serve", "--port", "0", "--retention", "10s:1mon")
    assert done.returncode == 2
    assert "unknown unit 'mon'" in done.stderr
