"""Retention rules over a Redis store: every bucket hash a put writes expires in
Redis at the end of its window plus its key's longest span (Redis' own clock);
a put already past that span is dropped; the bucket index loses the expired
buckets; keys no rule matches keep everything. Over a real Redis Cluster (the
session's ``redis_cluster``) and over one ``redis-server``, on 127.0.0.1."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from conftest import skip_or_fail
from net import NETWORK_TIMEOUT
from processes import ServeProcess
from redis_cluster import (
    LocalCluster,
    local_redis,
    master_of_key,
    redis_cli,
    redis_programs_missing,
)

from trio_metrics import ServerConfig, open_client, serve
from trio_metrics.storage import (
    RedisStorage,
    RetentionRules,
    SchemaRule,
    parse_retention,
)
from trio_metrics.storage._redis import (
    _TRIM_EVERY_BUCKETS,
    BUCKET_SECONDS,
    bucket_hash_name,
    bucket_index_name,
    open_redis_store,
)


class Target:
    """A Redis to run on: its ``--store`` URL, and the port that holds a Redis name."""

    def __init__(self, url: str, port_of: Callable[[str], int]) -> None:
        self.url = url
        self.port_of = port_of
        cluster, nodes = RedisStorage(url).cluster, RedisStorage(url).nodes
        self.cluster = cluster
        self.nodes = nodes

    def cli(self, *args: str) -> str:
        """``redis-cli`` on the node holding the Redis name ``args[1]``."""
        return redis_cli(self.port_of(args[1]), *args).strip()


@pytest.fixture(params=["redis-cluster", "redis"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "redis-cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        cluster.wait_ok()
        cluster.flush()
        yield Target(cluster.url, lambda name: master_of_key(cluster, name)[0])
        return
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_redis(tmp_path) as port:
        yield Target(f"redis://127.0.0.1:{port}", lambda name: port)


def _short_rules(span: int) -> RetentionRules:
    """``short.*`` keys keep ``span`` seconds; no rule for any other key."""
    return RetentionRules(
        schemas=(SchemaRule("short", re.compile(r"^short\."), parse_retention(f"1s:{span}s")),)
    )


async def test_buckets_expire_in_redis_and_newer_points_stay(target: Target) -> None:
    """The rule's span is chosen so that the bucket before the current one
    expires 4 s from now: its hash carries that EXPIREAT, Redis deletes it on
    time, ``get`` stops answering its points, and newer points stay; a key no
    rule matches keeps its points without expiry; a put past the span into a
    bucket that still holds newer points is dropped and removes nothing."""
    now = int(time.time())
    old_bucket = now // BUCKET_SECONDS - 1
    expires_at = now + 4
    span = expires_at - (old_bucket + 1) * BUCKET_SECONDS  # 4..131 s
    newest_old = (old_bucket + 1) * BUCKET_SECONDS - 1  # within the span for 3 s more
    past_span = old_bucket * BUCKET_SECONDS  # older than the span already
    new_bucket = old_bucket + 1
    config = ServerConfig(
        host="127.0.0.1", port=0, storage=RedisStorage(target.url), retention=_short_rules(span)
    )
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, config)
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put("short.a", 1.0, newest_old)
            await client.put("short.a", 9.0, past_span)
            await client.put("short.a", 2.0, now)
            await client.put("keep.x", 3.0, past_span)
            await client.put("keep.x", 4.0, newest_old)
            assert int(time.time()) <= newest_old + span, "the puts took too long"
            assert (await client.get("short.a"))["short.a"] == [(newest_old, 1.0), (now, 2.0)]
            counters = await client.stats()
            assert counters["points_expired"] == 1

            old_hash = bucket_hash_name("short.a", old_bucket)
            assert target.cli("expiretime", old_hash) == str(expires_at)
            assert target.cli("expiretime", bucket_hash_name("short.a", new_bucket)) == str(
                expires_at + BUCKET_SECONDS
            )
            assert target.cli("ttl", bucket_hash_name("keep.x", old_bucket)) == "-1"
            assert target.cli("ttl", bucket_index_name("keep.x")) == "-1"

            with trio.fail_after(NETWORK_TIMEOUT):
                while target.cli("exists", old_hash) != "0":  # noqa: ASYNC110 - polls Redis
                    await trio.sleep(0.1)
            assert time.time() >= expires_at - 0.01  # not deleted early
            assert (await client.get("short.a"))["short.a"] == [(now, 2.0)]
            assert (await client.get("keep.x"))["keep.x"] == [
                (past_span, 3.0),
                (newest_old, 4.0),
            ]
            # A put that opens a bucket in the next group of buckets trims
            # the expired ones from the index.
            index = bucket_index_name("short.a")
            assert str(old_bucket) in target.cli("zrange", index, "0", "-1")
            next_bucket = (new_bucket // _TRIM_EVERY_BUCKETS + 1) * _TRIM_EVERY_BUCKETS
            next_start = next_bucket * BUCKET_SECONDS
            await client.put("short.a", 5.0, next_start)
            assert target.cli("zrange", index, "0", "-1").split() == [
                str(new_bucket),
                str(next_bucket),
            ]
            assert (await client.get("short.a"))["short.a"] == [(now, 2.0), (next_start, 5.0)]
        nursery.cancel_scope.cancel()


async def test_an_expiry_already_past_in_redis_removes_only_its_own_bucket(
    target: Target,
) -> None:
    """A server whose clock runs 1000 s behind Redis' admits a point that Redis
    already counts as expired: its bucket's EXPIREAT is in the past, so Redis
    deletes that hash at once. The hash holds only points as old (one expiry
    per bucket, from the bucket), and the key's newer buckets stay."""
    now = int(time.time())
    span = 200
    behind = now - 1000
    stale_bucket = (now - span) // BUCKET_SECONDS - 2  # expired in Redis, not by the lagging clock
    stale = stale_bucket * BUCKET_SECONDS + 5
    assert stale >= behind - span
    with trio.fail_after(NETWORK_TIMEOUT):
        async with open_redis_store(
            target.nodes,
            cluster=target.cluster,
            retention=_short_rules(span),
            clock=lambda: float(behind),
        ) as store:
            await store.put_batch(["short.b", "short.b"], [1.0, 2.0], [now, stale])
            assert store.expired_points == 0
            assert target.cli("exists", bucket_hash_name("short.b", stale_bucket)) == "0"
            series = await store.query("short.b")
    assert [(list(s.timestamps), list(s.values)) for s in series] == [([now], [1.0])]


def test_serve_takes_retention_with_a_store_and_says_what_it_does(target: Target) -> None:
    """``--retention`` with ``--store`` starts (it was refused) and warns that
    points are only expired, never downsampled."""
    server = ServeProcess("--store", target.url, "--retention", "1m:1d,1h:30d")
    try:
        assert "listening on 127.0.0.1:" in server.banner
        status, err = server.stop(signal.SIGTERM)
    finally:
        server.ensure_stopped()
    assert status == 0
    assert "retention rules with Redis only expire points (no downsampling)" in err
    assert "full precision until its longest archive's span" in err


async def test_a_bucket_gets_its_expiry_once_unless_it_may_have_been_removed(
    target: Target,
) -> None:
    """A server gives a key's newest bucket its EXPIREAT once: the next batch
    into it is an HSET alone. It gives it again when the hash may be new: after
    a delete through another server (noticed by the deletion token, in the
    same batch), and at every write while the bucket is within an hour of its
    expiry (a lagging clock may write into a bucket Redis just deleted)."""
    now = int(time.time())
    span = 10_000
    bucket = now // BUCKET_SECONDS
    name = bucket_hash_name("short.c", bucket)
    expected = str((bucket + 1) * BUCKET_SECONDS + span)
    with trio.fail_after(NETWORK_TIMEOUT):
        async with (
            open_redis_store(
                target.nodes, cluster=target.cluster, retention=_short_rules(span)
            ) as store,
            open_redis_store(target.nodes, cluster=target.cluster) as other,
        ):
            await store.put_batch(["short.c"], [1.0], [now])
            assert target.cli("expiretime", name) == expected
            sent = store.figures.pipeline_commands
            await store.put_batch(["short.c"], [2.0], [now + 1])
            # HSET, the points count and the deletion token: no EXPIREAT.
            assert store.figures.pipeline_commands - sent == 3
            assert await other.delete(["short.c"]) == 1
            await store.put_batch(["short.c"], [3.0], [now + 2])
            assert target.cli("expiretime", name) == expected
            assert _plain(await store.query("short.c")) == [([now + 2], [3.0])]

            # 1,100 s behind Redis, with a span of 1,000 s: the bucket it
            # writes is past its expiry in Redis, not by the lagging clock.
            lagging_clock = float(now - 1100)
            async with open_redis_store(
                target.nodes,
                cluster=target.cluster,
                retention=_short_rules(1000),
                clock=lambda: lagging_clock,
            ) as lagging:
                stale_bucket = (now - 1000) // BUCKET_SECONDS - 1
                stale = stale_bucket * BUCKET_SECONDS
                stale_name = bucket_hash_name("short.d", stale_bucket)
                for value in (1.0, 2.0):
                    await lagging.put_batch(["short.d"], [value], [stale])
                    assert target.cli("exists", stale_name) == "0"
                assert lagging.expired_points == 0


def _plain(series: object) -> list[tuple[list[int], list[float]]]:
    return [(list(s.timestamps), list(s.values)) for s in series]  # type: ignore[attr-defined]


BENCH = Path(__file__).resolve().parent.parent / "bench" / "redis_store.py"


def test_the_bench_compares_ingest_without_and_with_a_rule() -> None:
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--retention", "1m:20y", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert re.search(
        r"^  median of 1: without [\d,]+ puts/s, with --retention 1m:20y [\d,]+ puts/s: [\d.]+x$",
        out,
        re.M,
    ), out
    assert re.search(r"^  server CPU a put, median of 1: without [\d.]+ us, with", out, re.M), out


def test_the_bench_refuses_a_rule_that_would_drop_its_points() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--retention", "1m:1d"],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
    )
    assert completed.returncode == 1
    assert "would all be dropped as too old" in completed.stderr
