"""The Redis store when the cluster fails: a node that stops answering, a master
killed during a put storm, slots moved during puts.

These tests break their cluster, so they have one of their own (six
``redis-server`` processes on 127.0.0.1, once for the module).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from conftest import skip_or_fail
from net import NETWORK_TIMEOUT, receive_exactly
from redis_cluster import (
    LocalCluster,
    front_ends,
    local_cluster,
    master_of_key,
    node_id,
    redis_cli,
    redis_programs_missing,
)

from trio_metrics import ServerInfo, open_client
from trio_metrics.storage._redis import bucket_hash_name

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_cluster(tmp_path_factory.mktemp("redis-faults")) as started:
        yield started


@pytest.fixture
def healthy(cluster: LocalCluster) -> LocalCluster:
    """The module's cluster, every node running and the cluster ok, emptied."""
    for port in cluster.ports:
        if port in cluster.stopped:
            cluster.resume(port)
        if not cluster.running(port):
            cluster.start_node(port)
    cluster.wait_ok()
    cluster.flush()
    return cluster


class Storm:
    """Writers putting batches of new points through servers; records what was acknowledged.

    A batch whose connection closes before all its ``ok``s counts only the
    ``ok``s that came (the first points of the batch); the writer reconnects.
    """

    def __init__(self, servers: list[ServerInfo], writers: int = 4, batch: int = 50) -> None:
        self.servers = servers
        self.writers = writers
        self.batch = batch
        self.acked: dict[tuple[str, int], float] = {}
        self.refused = 0
        self.stop = trio.Event()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for number in range(self.writers):
                nursery.start_soon(self._writer, number)

    async def _writer(self, number: int) -> None:
        server = self.servers[number % len(self.servers)]
        stamp = 0
        while not self.stop.is_set():
            points = []
            for _ in range(self.batch):
                points.append((f"storm.{number}.{stamp % 7}", stamp * 0.5 + number, stamp))
                stamp += 1
            request = b"".join(b"put %s %r %d\n" % (k.encode(), v, t) for k, v, t in points)
            answer = b""
            try:
                with trio.fail_after(NETWORK_TIMEOUT):
                    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
                    async with stream:
                        await stream.send_all(request)
                        while answer.count(b"\n\n") < len(points):
                            chunk = await stream.receive_some(65536)
                            if not chunk:
                                break
                            answer += chunk
            except OSError:
                pass
            # One batch: every put acknowledged, or every put refused (the
            # error answer), never some of each.
            acked = answer.count(OK)
            assert answer in (OK * acked, ERROR * len(points)), answer[:200]
            for key, value, ts in points[:acked]:
                self.acked[(key, ts)] = value
            if acked < len(points):
                self.refused += len(points) - acked
                await trio.sleep(0.05)

    async def missing(self, server: ServerInfo) -> list[tuple[str, int]]:
        """The acknowledged points that ``server`` does not answer with their value."""
        found: dict[tuple[str, int], float] = {}
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            for key in {key for key, _ in self.acked}:
                for ts, value in (await client.get(key)).get(key, []):
                    found[(key, ts)] = value
        return [point for point, value in self.acked.items() if found.get(point) != value]


async def test_a_stopped_node_fails_the_put_in_time_and_it_works_after(
    healthy: LocalCluster,
) -> None:
    """SIGSTOP the master of a key (and its replica, so that nothing fails over):
    the put gets the error answer within the timeout; after SIGCONT the same
    connection stores and reads the key again, exactly."""
    timeout = 1.5
    master, replicas = master_of_key(healthy, bucket_hash_name("paused", 0))
    async with front_ends(healthy.url, count=1, timeout=timeout) as (server,):
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put("paused", 1.0, 0)
        for port in (master, *replicas):
            healthy.pause(port)
        try:
            with trio.fail_after(NETWORK_TIMEOUT):
                stream = await trio.open_tcp_stream("127.0.0.1", server.port)
                started = trio.current_time()
                # Two groups of puts in one read: the second is refused at
                # once, not after a timeout of its own.
                await stream.send_all(b"put paused 2 1\nping\nput paused 3 1\n")
                expected = ERROR + OK + ERROR
                assert await receive_exactly(stream, len(expected)) == expected
            took = trio.current_time() - started
            assert timeout <= took < timeout + 1.0
            assert server.stats.puts_refused == 2
            assert server.stats.connection_failures == 0
        finally:
            for port in (master, *replicas):
                healthy.resume(port)
        healthy.wait_ok()
        async with stream:
            with trio.fail_after(NETWORK_TIMEOUT):
                request = b"".join(b"put paused %r %d\n" % (ts * 1.25, ts) for ts in range(2, 40))
                await stream.send_all(request)
                assert await receive_exactly(stream, 38 * len(OK)) == 38 * OK
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            points = (await client.get("paused"))["paused"]
            counters = await client.stats()
    assert points[0] == (0, 1.0)
    assert points[-38:] == [(ts, ts * 1.25) for ts in range(2, 40)]
    assert counters["redis_failures"] >= 1
    assert counters["redis_errors"] >= 1


async def test_a_killed_master_loses_no_point_acknowledged_with_wait(
    healthy: LocalCluster,
) -> None:
    """``kill -9`` a master during a storm through two servers with
    ``--redis-wait-replicas 1``: after its replica takes over (and the killed
    node comes back as a replica), every acknowledged point is there."""
    async with front_ends(healthy.url, count=2, wait_replicas=1, timeout=3.0) as servers:
        storm = Storm(servers)
        victim = master_of_key(healthy, bucket_hash_name("storm.0.0", 0))[0]
        with trio.fail_after(NETWORK_TIMEOUT * 6):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(storm.run)
                await trio.sleep(0.5)
                before = len(storm.acked)
                healthy.kill(victim)
                await trio.to_thread.run_sync(healthy.wait_ok)
                # The killed node rejoins as a replica: WAIT 1 can succeed again.
                await trio.to_thread.run_sync(healthy.start_node, victim)
                await trio.to_thread.run_sync(healthy.wait_ok)
                after_failover = len(storm.acked)
                await trio.sleep(1.0)
                storm.stop.set()
        assert before > 0
        assert len(storm.acked) > after_failover  # puts are acknowledged again
        assert await storm.missing(servers[1]) == []
        assert await storm.missing(servers[0]) == []


async def test_moving_slots_during_puts_loses_nothing(healthy: LocalCluster) -> None:
    """``redis-cli --cluster reshard`` moves 300 slots from one master to another
    while two servers take puts: MOVED and ASK are followed, no put fails."""
    masters = healthy.masters()
    source, target = masters[0], masters[1]
    async with front_ends(healthy.url, count=2, timeout=5.0) as servers:
        storm = Storm(servers, batch=20)
        resharded: list[str] = []

        def reshard() -> None:
            resharded.append(
                redis_cli(
                    source,
                    "--cluster",
                    "reshard",
                    f"127.0.0.1:{source}",
                    "--cluster-from",
                    node_id(source),
                    "--cluster-to",
                    node_id(target),
                    "--cluster-slots",
                    "300",
                    "--cluster-yes",
                    timeout=NETWORK_TIMEOUT * 3,
                )
            )

        with trio.fail_after(NETWORK_TIMEOUT * 6):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(storm.run)
                await trio.sleep(0.3)
                thread = threading.Thread(target=reshard)
                thread.start()
                while thread.is_alive():  # noqa: ASYNC110 - waits for a plain thread
                    await trio.sleep(0.05)
                await trio.sleep(0.3)
                storm.stop.set()
        assert "Moving slot" in resharded[0], resharded[0][-500:]
        assert storm.refused == 0
        assert await storm.missing(servers[0]) == []
        async with open_client("127.0.0.1", servers[0].port, timeout=NETWORK_TIMEOUT) as client:
            counters = await client.stats()
        assert counters["redis_failures"] == 0
    # The slots did move: the target holds more than it did.
    assert len(healthy.masters()) == 3


def _slot_owner(port: int, slot: int) -> str | None:
    """The id of the master that holds ``slot``, as the node on ``port`` sees it."""
    for line in redis_cli(port, "cluster", "nodes").splitlines():
        fields = line.split()
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                return fields[0]
    return None


def _give_slot(cluster: LocalCluster, slot: int, source: int, target: int) -> None:
    """Move empty ``slot`` from the master on ``source`` to the one on ``target``
    as a migration does (importing, migrating, then the new owner told to every
    master, its config epoch the newest), and wait until every node agrees."""
    source_id, target_id = node_id(source), node_id(target)
    assert redis_cli(source, "cluster", "countkeysinslot", str(slot)).strip() == "0"
    steps = [
        (target, "importing", source_id),
        (source, "migrating", target_id),
        (target, "node", target_id),
        (source, "node", target_id),
    ]
    steps += [
        (port, "node", target_id) for port in cluster.masters() if port not in (source, target)
    ]
    for port, state, node in steps:
        answer = redis_cli(port, "cluster", "setslot", str(slot), state, node).strip()
        assert answer == "OK", (port, state, answer)
    redis_cli(target, "cluster", "bumpepoch")
    deadline = time.monotonic() + NETWORK_TIMEOUT
    running = [port for port in cluster.ports if cluster.running(port)]
    while any(_slot_owner(port, slot) != target_id for port in running):
        assert time.monotonic() < deadline, "the nodes did not agree on the slot's new master"
        time.sleep(0.05)
    cluster.wait_ok()


async def test_a_write_to_a_slot_that_moved_is_redirected_and_stored(
    healthy: LocalCluster,
) -> None:
    """A key's slot moves to another master after the server learnt the layout:
    its put is answered ``MOVED``, sent again to the new master, and
    acknowledged; ``redis_redirects`` counts it and no try failed."""
    key = "moved.key"
    name = bucket_hash_name(key, 0)
    slot = int(redis_cli(healthy.ports[0], "cluster", "keyslot", name).strip())
    source, _ = master_of_key(healthy, name)
    target = next(port for port in healthy.masters() if port != source)
    async with front_ends(healthy.url, count=1, timeout=5.0) as (server,):
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            await client.put("warm.up", 1.0, 1)
            before = await client.stats()
            # Left there after: the module's reshard test moves slots for good too.
            await trio.to_thread.run_sync(_give_slot, healthy, slot, source, target)
            await client.put(key, 2.5, 3)
            after = await client.stats()
            assert await client.get(key) == {key: [(3, 2.5)]}
    assert after["redis_redirects"] - before["redis_redirects"] >= 1
    assert after["redis_retries"] == before["redis_retries"]
    assert after["redis_failures"] == before["redis_failures"]


def test_the_cluster_helper_finds_a_keys_master(cluster: LocalCluster, tmp_path: Path) -> None:
    master, replicas = master_of_key(cluster, "some-key")
    assert master in cluster.ports
    assert len(replicas) == 1
    assert "cluster_state:ok" in redis_cli(master, "cluster", "info")


async def test_a_server_started_on_a_running_cluster_reads_what_others_wrote(
    healthy: LocalCluster,
) -> None:
    async with front_ends(healthy.url, count=1) as (first,):
        with trio.fail_after(NETWORK_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", first.port)
            async with stream:
                await stream.send_all(b"put early 1 1\n")
                assert await receive_exactly(stream, len(OK)) == OK
    async with front_ends(healthy.url, count=1) as (later,):
        async with open_client("127.0.0.1", later.port, timeout=NETWORK_TIMEOUT) as client:
            assert await client.get("*") == {"early": [(1, 1.0)]}
