"""The Redis store's connection pool when it runs out: more batches wait for
Redis than the pool has connections. Over one real ``redis-server`` on
127.0.0.1, and over a master of a real Redis Cluster (its own, six
processes), stopped with SIGSTOP (the kernel still accepts connections, so
a store that opened one connection per batch would get them all)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from conftest import skip_or_fail
from http_requests import earlier_heap_frozen
from net import NETWORK_TIMEOUT
from redis_cluster import (
    LocalCluster,
    front_ends,
    local_cluster,
    local_redis,
    master_of_key,
    redis_cli,
    redis_programs_missing,
)

from trio_metrics import open_client
from trio_metrics.storage._redis import bucket_hash_name

OK = b"ok\n\n"
POOL = 2
BATCHES = 6
TIMEOUT = 1.0


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_redis(tmp_path) as port:
        yield port


def _established_to(port: int) -> int:
    """Established TCP connections on this host whose far end is 127.0.0.1:``port``
    (every client socket of the Redis on ``port``, accepted by it or not yet)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            far_port = int(fields[2].rsplit(":", 1)[1], 16)
            if far_port == port and fields[3] == "01":
                count += 1
    return count


async def _answer_or_close(port: int, request: bytes) -> tuple[float, bytes]:
    """Send ``request`` on a new connection; the seconds until the server
    answered it whole (a blank line ends an answer) or closed the connection,
    and what it sent."""
    started = trio.current_time()
    received = b""
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            while not received.endswith(b"\n\n"):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                received += chunk
    return trio.current_time() - started, received


async def test_an_exhausted_pool_fails_batches_in_time_and_the_server_goes_on(
    redis_port: int,
) -> None:
    """A pool of 2 connections, Redis stopped, 6 batches of known keys at once
    (each a pipeline that holds a connection until Redis answers): Redis gets
    at most 2 connections from the server, the 4 other batches wait for one;
    every batch fails (no ``ok``) within ``--redis-timeout``, each is counted
    as a failure and a timeout, the server answers ``ping`` meanwhile, and
    once Redis runs again the same server stores and reads points."""
    info = redis_cli(redis_port, "info", "server")
    pid = int(info.split("process_id:", 1)[1].split()[0])
    keys = [f"pool.k{number}" for number in range(BATCHES)]
    url = f"redis://127.0.0.1:{redis_port}"
    async with front_ends(url, count=1, timeout=TIMEOUT, max_connections=POOL) as (server,):
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            # Registered and indexed: a batch of them is one pipeline, no INCRBY.
            for key in keys:
                await client.put(key, 1.0, 1)
            before = await client.stats()
        # The ping is timed: a collector pass over what earlier tests left
        # alive must not count as a pause of the server's.
        with earlier_heap_frozen() as pauses:
            os.kill(pid, signal.SIGSTOP)
            try:
                results: list[tuple[float, bytes]] = []
                during: list[int] = []

                async def batch(key: str) -> None:
                    results.append(await _answer_or_close(server.port, f"put {key} 2 2\n".encode()))

                async def look() -> None:
                    await trio.sleep(TIMEOUT / 2)
                    during.append(_established_to(redis_port))
                    took, answer = await _answer_or_close(server.port, b"ping\n")
                    assert answer == OK and took < TIMEOUT / 4, (took, sorted(pauses)[-3:])
                    during.append(len(results))

                async with trio.open_nursery() as nursery:
                    for key in keys:
                        nursery.start_soon(batch, key)
                    nursery.start_soon(look)
            finally:
                os.kill(pid, signal.SIGCONT)
        connections, finished_early = during
        assert finished_early == 0
        assert 1 <= connections <= POOL
        assert len(results) == BATCHES
        for took, answer in results:
            assert b"ok" not in answer
            assert TIMEOUT <= took < TIMEOUT + 0.8
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put("pool.after", 3.5, 3)
            assert await client.get("pool.after") == {"pool.after": [(3, 3.5)]}
            after = await client.stats()
    assert after["redis_failures"] - before["redis_failures"] == BATCHES
    assert after["redis_timeouts"] - before["redis_timeouts"] == BATCHES


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of this module's own: the test stops one of its masters."""
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_cluster(tmp_path_factory.mktemp("redis-pool")) as started:
        yield started


async def test_a_cluster_masters_pool_is_bounded_the_same_way(cluster: LocalCluster) -> None:
    """Over a cluster the pool is per master: 6 batches of keys held by one
    master, stopped with its replica, open at most 2 connections to it; each
    fails within the timeout, is counted, and puts work again after."""
    cluster.wait_ok()
    cluster.flush()
    master, replicas = master_of_key(cluster, bucket_hash_name("pool.0", 0))
    keys = []
    for number in range(10_000):
        key = f"pool.{number}"
        if master_of_key(cluster, bucket_hash_name(key, 0))[0] == master:
            keys.append(key)
            if len(keys) == BATCHES:
                break
    async with front_ends(cluster.url, count=1, timeout=TIMEOUT, max_connections=POOL) as (server,):
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            for key in keys:
                await client.put(key, 1.0, 1)
            before = await client.stats()
        for port in (master, *replicas):
            cluster.pause(port)
        try:
            results: list[tuple[float, bytes]] = []
            during: list[int] = []

            async def batch(key: str) -> None:
                results.append(await _answer_or_close(server.port, f"put {key} 2 2\n".encode()))

            async def look() -> None:
                await trio.sleep(TIMEOUT / 2)
                during.append(_established_to(master))

            async with trio.open_nursery() as nursery:
                for key in keys:
                    nursery.start_soon(batch, key)
                nursery.start_soon(look)
        finally:
            for port in (master, *replicas):
                cluster.resume(port)
        # The replica's own link to its master is one of them.
        assert during[0] <= POOL + len(replicas)
        assert len(results) == BATCHES
        for took, answer in results:
            assert b"ok" not in answer
            assert TIMEOUT <= took < TIMEOUT + 0.8
        await trio.to_thread.run_sync(cluster.wait_ok)
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put(keys[0], 3.5, 3)
            assert (await client.get(keys[0]))[keys[0]][-1] == (3, 3.5)
            after = await client.stats()
    assert after["redis_failures"] - before["redis_failures"] == BATCHES
    assert after["redis_timeouts"] - before["redis_timeouts"] == BATCHES
