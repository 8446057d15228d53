"""The Redis store: its URL and names (pure), its flags, and several servers over
one real Redis Cluster on 127.0.0.1 (six ``redis-server`` processes, started
once a session by the ``redis_cluster`` fixture)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from conftest import server_in_thread, skip_or_fail
from http_requests import get_json, request
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule
from net import NETWORK_TIMEOUT, receive_exactly, recv_until
from processes import run_cli
from prometheus_client.parser import text_string_to_metric_families
from redis_cluster import (
    LocalCluster,
    front_ends,
    local_redis,
    master_of_key,
    redis_cli,
    redis_programs_missing,
)

from trio_metrics import MetricStore, ServerConfig, ServerInfo, open_client
from trio_metrics.storage import RedisStorage, parse_redis_url
from trio_metrics.storage._redis import (
    BUCKET_SECONDS,
    bucket_hash_name,
    bucket_index_name,
    escape_key,
    open_redis_store,
)

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"

# --- the URL and the names (no I/O) ------------------------------------------


@pytest.mark.parametrize(
    ("url", "cluster", "nodes"),
    [
        ("redis://127.0.0.1:6379", False, (("127.0.0.1", 6379),)),
        ("redis-cluster://a:7001", True, (("a", 7001),)),
        (
            "redis-cluster://127.0.0.1:7001, 127.0.0.1:7002,[::1]:7003",
            True,
            (("127.0.0.1", 7001), ("127.0.0.1", 7002), ("::1", 7003)),
        ),
    ],
)
def test_store_urls(url: str, cluster: bool, nodes: tuple[tuple[str, int], ...]) -> None:
    assert parse_redis_url(url) == (cluster, nodes)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.1:7001", "use redis-cluster://"),
        ("rediss://h:1", "use redis-cluster://"),
        ("redis://h", "'h' is not host:port"),
        ("redis://h:0", "is not host:port"),
        ("redis://h:70000", "is not host:port"),
        ("redis://:7001", "is not host:port"),
        ("redis-cluster://h:1,", "'' is not host:port"),
        ("redis://a:1,b:2", "redis:// names one server"),
    ],
)
def test_bad_store_urls_name_the_mistake(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="bad store URL") as caught:
        RedisStorage(url)
    assert says in str(caught.value)


def test_redis_storage_describes_its_nodes() -> None:
    storage = RedisStorage("redis-cluster://10.0.0.1:7001,10.0.0.2:7002", wait_replicas=1)
    assert storage.describe() == "Redis Cluster 10.0.0.1:7001, 10.0.0.2:7002"
    assert RedisStorage("redis://h:1").describe() == "Redis h:1"
    with pytest.raises(ValueError, match="wait_replicas"):
        RedisStorage("redis://h:1", wait_replicas=-1)
    with pytest.raises(ValueError, match="timeout"):
        RedisStorage("redis://h:1", timeout=0)


@pytest.mark.parametrize("key", ["plain", "a{b}c", "}x", "{", "}", "{}", "%7B", "x%", "é{ü}"])
def test_every_name_of_a_key_is_in_one_slot(key: str) -> None:
    from coredis._utils import hash_slot

    names = [bucket_hash_name(key, bucket) for bucket in (0, 1, 99999)]
    names.append(bucket_index_name(key))
    assert len({hash_slot(name.encode()) for name in names}) == 1
    assert "{" not in escape_key(key) and "}" not in escape_key(key)


def test_escaping_keeps_keys_apart() -> None:
    keys = ["{", "%7B", "%257B", "}", "%7D", "%", "%25"]
    assert len({escape_key(key) for key in keys}) == len(keys)


# --- flags ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--store", "redis:/h:1"], "bad store URL 'redis:/h:1'"),
        (["--store", "redis://h:1", "--data-dir", "d"], "--store and --data-dir exclude"),
        (["--redis-wait-replicas", "1"], "--redis-wait-replicas needs --store URL"),
        (["--redis-timeout", "1"], "--redis-timeout needs --store URL"),
    ],
)
def test_bad_redis_flags_are_one_line_errors(flags: list[str], says: str) -> None:
    done = run_cli("serve", "--port", "0", *flags)
    assert done.returncode == 2
    assert says in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_an_unreachable_redis_is_a_one_line_error_at_start_up() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = run_cli("serve", "--port", "0", "--store", f"redis://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        f"trio-metrics: error: cannot reach Redis at 127.0.0.1:{port}: "
    )
    assert "Traceback" not in done.stderr


def test_the_banner_names_the_clusters_nodes(redis_cluster: LocalCluster) -> None:
    from processes import ServeProcess

    server = ServeProcess("--store", redis_cluster.url)
    try:
        nodes = ", ".join(f"127.0.0.1:{port}" for port in redis_cluster.ports)
        assert f"(data in Redis Cluster {nodes}; Ctrl-C stops)" in server.banner
    finally:
        server.ensure_stopped()
        server.process.communicate(timeout=NETWORK_TIMEOUT)


# --- the store against the memory store ---------------------------------------


async def test_the_store_answers_as_the_memory_store(redis_cluster: LocalCluster) -> None:
    redis_cluster.flush()
    memory = MetricStore()
    points = [
        ("b.x", 1.5, 5),
        ("a{1}", -0.0, 0),
        ("b.x", 2.5, BUCKET_SECONDS * 3 + 1),
        ("b.y", 1e300, 2**63 - 1),
        ("b.x", 9.25, 5),
        ("a{1}", 0.1, BUCKET_SECONDS),
        ("c", 3.0, BUCKET_SECONDS - 1),
    ]
    keys, values, stamps = (list(column) for column in zip(*points, strict=True))
    with trio.fail_after(NETWORK_TIMEOUT):
        async with open_redis_store([("127.0.0.1", redis_cluster.ports[0])], cluster=True) as redis:
            for store in (redis, memory):
                await store.put_batch(keys[:4], values[:4], stamps[:4])
                await store.put_batch(keys[4:], values[4:], stamps[4:])
            for key in ("*", "b.x", "a{1}", "nothing"):
                assert _plain(await redis.query(key)) == _plain(await memory.query(key))
            for start, end in [(0, 5), (6, BUCKET_SECONDS * 4), (2**62, 2**63 - 1), (9, 3)]:
                assert _plain(await redis.query_range("b.x", start, end)) == _plain(
                    await memory.query_range("b.x", start, end)
                )
            assert await redis.counts() == await memory.counts() == (4, 6)
            assert await redis.list_keys() == ["b.x", "a{1}", "b.y", "c"]
            assert await redis.keys_with_prefix("b.", "", 1) == ["b.x"]
            assert await redis.keys_with_prefix("b.", "b.x", 10) == ["b.y"]
            assert await redis.keys_with_prefix("", "a{1}", 2) == ["b.x", "b.y"]
            assert await redis.delete(["b.x", "nothing", "b.x"]) == 1
            assert await redis.list_keys() == ["a{1}", "b.y", "c"]
            assert _plain(await redis.query("b.x")) == []
            assert await redis.counts() == (3, 4)
            # A deleted key stored again is a new key: last in "get *".
            await redis.put_batch(["b.x"], [7.0], [7])
            assert (await redis.list_keys())[-1] == "b.x"
            assert redis.figures.errors == 0
            assert redis.figures.pipelines > 0


def _plain(series: object) -> list[tuple[str, list[int], list[float]]]:
    return [(s.key, list(s.timestamps), list(s.values)) for s in series]  # type: ignore[attr-defined]


# --- several servers over one cluster ------------------------------------------


async def _ask(info: ServerInfo, request: bytes, size: int) -> bytes:
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            await stream.send_all(request)
            return await receive_exactly(stream, size)


async def _get_all(info: ServerInfo) -> bytes:
    with trio.fail_after(NETWORK_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            await stream.send_all(b"get *\n")
            answer = bytearray()
            while not (answer == b"ok\n\n" or answer.endswith(b"\n\n")):
                answer += await stream.receive_some(1 << 16)
            return bytes(answer)


async def test_a_put_through_one_server_is_read_at_once_through_the_other(
    redis_cluster: LocalCluster,
) -> None:
    redis_cluster.flush()
    async with front_ends(redis_cluster.url) as (one, other):
        for ts in range(20):
            assert await _ask(one, b"put shared %d %d\n" % (ts, ts), len(OK)) == OK
            expected = b"ok\n" + b"".join(b"shared %d.0 %d\n" % (t, t) for t in range(ts + 1))
            assert await _ask(other, b"get shared\n", len(expected) + 1) == expected + b"\n"


async def test_get_star_is_the_same_bytes_through_both_servers(
    redis_cluster: LocalCluster,
) -> None:
    redis_cluster.flush()
    async with front_ends(redis_cluster.url) as (one, other):
        # New keys registered at once through both: one order for all.
        async with trio.open_nursery() as nursery:
            for n in range(40):
                server = one if n % 2 else other
                nursery.start_soon(_ask, server, b"put k%d{%d} %d %d\n" % (n, n, n, n), len(OK))
        through_one, through_other = await _get_all(one), await _get_all(other)
    assert through_one == through_other
    lines = through_one.split(b"\n")[1:-2]
    assert sorted(lines) == sorted(b"k%d{%d} %d.0 %d" % (n, n, n, n) for n in range(40))


async def test_concurrent_writers_and_readers_through_two_servers_lose_nothing(
    redis_cluster: LocalCluster,
) -> None:
    """Four writers (two a server) write overlapping (key, timestamp)s in batches
    while readers read; at the end every point is there with a value one of its
    writers wrote last, and both servers answer ``get *`` alike."""
    redis_cluster.flush()
    keys, stamps, rounds = 6, 200, 3
    last: dict[tuple[str, int], set[float]] = {}
    async with front_ends(redis_cluster.url) as servers:

        async def writer(number: int) -> None:
            server = servers[number % 2]
            async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
                for round_ in range(rounds):
                    batch = b"".join(
                        b"put w.%d %d %d\n" % (ts % keys, number * 1000 + round_, ts)
                        for ts in range(stamps)
                    )
                    assert await _ask(server, batch, len(OK) * stamps) == OK * stamps
                for ts in range(stamps):
                    last.setdefault((f"w.{ts % keys}", ts), set()).add(number * 1000 + rounds - 1)
                assert (await client.get(f"w.{number % keys}")) != {}

        async def reader(server: ServerInfo, done: trio.Event) -> None:
            async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
                while not done.is_set():
                    for points in (await client.get("*")).values():
                        stamps_read = [ts for ts, _ in points]
                        assert stamps_read == sorted(set(stamps_read))
                    await trio.sleep(0.01)

        done = trio.Event()
        with trio.fail_after(NETWORK_TIMEOUT * 3):
            async with trio.open_nursery() as readers:
                for server in servers:
                    readers.start_soon(reader, server, done)
                async with trio.open_nursery() as writers:
                    for number in range(4):
                        writers.start_soon(writer, number)
                done.set()
        through = [await _get_all(server) for server in servers]
        counted = []
        for server in servers:
            # Each server adds what it stored to the shared count as it asks.
            async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
                counted.append((await client.stats())["points"])
    assert through[0] == through[1]
    # Concurrent batches of one server must not add the same points twice.
    assert counted[-1] == len(last)
    found = {}
    for line in through[0].split(b"\n")[1:-2]:
        key, value, ts = line.decode().split()
        found[(key, int(ts))] = float(value)
    assert found.keys() == last.keys()
    assert all(found[point] in last[point] for point in found)


class TwoServersAgainstAModel(RuleBasedStateMachine):
    """Puts and gets through either of two servers over one cluster, against a dict."""

    servers: tuple[ServerInfo, ServerInfo]
    cluster: LocalCluster

    def __init__(self) -> None:
        super().__init__()
        self.cluster.flush()
        # The documented refresh rule: "get *" re-reads the registry, so
        # the servers forget the keys the flush removed.
        for index in range(2):
            assert self._raw(index, b"get *\n") == b"ok\n\n"
        self.model: dict[str, dict[int, float]] = {}

    def _raw(self, index: int, request: bytes) -> bytes:
        with socket.create_connection(
            ("127.0.0.1", self.servers[index].port), timeout=NETWORK_TIMEOUT
        ) as sock:
            sock.sendall(request)
            return recv_until(sock, b"\n\n")

    @rule(
        index=st.integers(0, 1),
        points=st.lists(
            st.tuples(
                st.sampled_from(["a", "b{", "c}d", "e.f"]),
                st.floats(allow_nan=False, allow_infinity=False, width=64),
                st.sampled_from([0, 1, 127, 128, 129, 10**6, 2**63 - 1]),
            ),
            min_size=1,
            max_size=6,
        ),
    )
    def put(self, index: int, points: list[tuple[str, float, int]]) -> None:
        request = b"".join(f"put {k} {v!r} {t}\n".encode() for k, v, t in points)
        with socket.create_connection(
            ("127.0.0.1", self.servers[index].port), timeout=NETWORK_TIMEOUT
        ) as sock:
            sock.sendall(request)
            answer = b""
            while len(answer) < len(OK) * len(points):
                chunk = sock.recv(65536)
                assert chunk, "closed before every ok"
                answer += chunk
        assert answer == OK * len(points)
        for key, value, ts in points:
            self.model.setdefault(key, {})[ts] = value

    def _expected(self, keys: list[str]) -> bytes:
        lines = [
            f"{key} {self.model[key][ts]!r} {ts}\n".encode()
            for key in keys
            for ts in sorted(self.model[key])
        ]
        return b"ok\n" + b"".join(lines) + b"\n"

    @rule(index=st.integers(0, 1), key=st.sampled_from(["a", "b{", "c}d", "e.f"]))
    def get(self, index: int, key: str) -> None:
        expected = self._expected([key]) if key in self.model else OK
        assert self._raw(index, f"get {key}\n".encode()) == expected

    @rule()
    def get_all_alike(self) -> None:
        # The model's keys are in first-stored order, as dicts keep them.
        expected = self._expected(list(self.model)) if self.model else OK
        assert self._raw(0, b"get *\n") == expected
        assert self._raw(1, b"get *\n") == expected


@pytest.fixture
def two_threaded_servers(redis_cluster: LocalCluster) -> Iterator[tuple[ServerInfo, ServerInfo]]:
    config = ServerConfig(host="127.0.0.1", port=0, storage=RedisStorage(redis_cluster.url))
    with server_in_thread(config) as one, server_in_thread(config) as other:
        yield one, other


def test_two_servers_behave_as_one_store(
    redis_cluster: LocalCluster, two_threaded_servers: tuple[ServerInfo, ServerInfo]
) -> None:
    TwoServersAgainstAModel.servers = two_threaded_servers
    TwoServersAgainstAModel.cluster = redis_cluster
    run = TwoServersAgainstAModel.TestCase
    run.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
    run().runTest()


async def test_stats_count_the_redis_work(redis_cluster: LocalCluster) -> None:
    redis_cluster.flush()
    async with front_ends(redis_cluster.url, count=1) as (server,):
        batch = b"".join(b"put s.%d 1 %d\n" % (n % 10, n) for n in range(1000))
        assert await _ask(server, batch, len(OK) * 1000) == OK * 1000
        async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
            counters = await client.stats()
    assert counters["keys"] == 10
    assert counters["points"] == 1000
    assert counters["redis_pipelines"] >= 1
    assert counters["redis_pipeline_commands_max"] >= 10 + 8  # a hash and an index a key
    assert counters["redis_round_trips"] >= counters["redis_pipelines"]
    assert counters["redis_errors"] == counters["redis_retries"] == 0


async def test_the_http_api_and_metrics_over_the_cluster(redis_cluster: LocalCluster) -> None:
    """Ranges, key globs (paged by prefix) and /metrics' Redis figures."""
    redis_cluster.flush()
    async with front_ends(redis_cluster.url, count=2, http=True) as (one, other):
        batch = b"".join(b"put web%d.cpu %d %d\n" % (n % 3, n, n * 60) for n in range(30))
        batch += b"put db.cpu 1 1\n"
        assert await _ask(one, batch, len(OK) * 31) == OK * 31
        assert other.http_port is not None
        keys = await get_json(other.http_port, "/api/v1/keys?match=web*.cpu")
        assert keys == {"keys": ["web0.cpu", "web1.cpu", "web2.cpu"]}
        series = await get_json(other.http_port, "/api/v1/series?key=web1.cpu&from=120&until=900")
        assert series["series"] == [
            {
                "key": "web1.cpu",
                "step": 0,
                "total": 4,
                "points": [[240, 4.0], [420, 7.0], [600, 10.0], [780, 13.0]],
            }
        ]
        # The server that took the puts: another counts them with their next batch.
        assert one.http_port is not None
        code, _, body = await request(one.http_port, "GET", "/metrics")
    assert code == 200
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert metrics["trio_metrics_keys"] == 4
    assert metrics["trio_metrics_points"] == 31
    assert metrics["trio_metrics_redis_pipelines_total"] >= 2
    assert (
        metrics["trio_metrics_redis_round_trips_total"]
        >= metrics["trio_metrics_redis_pipelines_total"]
    )
    assert metrics["trio_metrics_redis_failures_total"] == 0


async def test_a_key_deleted_through_one_server_is_stored_again_through_the_other(
    redis_cluster: LocalCluster,
) -> None:
    """The server that keeps putting the key learns of the delete from the
    deletion count in its next batch, and registers and indexes the key anew."""
    redis_cluster.flush()
    async with front_ends(redis_cluster.url, count=2, http=True) as (one, other):
        assert await _ask(one, b"put gone 1 10\nput kept 1 10\n", 2 * len(OK)) == 2 * OK
        assert other.http_port is not None
        code, _, body = await request(other.http_port, "DELETE", "/api/v1/series?key=gone")
        assert code == 200, body
        # The same bucket as before: without the count, "one" would believe
        # the key registered and its bucket indexed, and send neither.
        assert await _ask(one, b"put gone 2 11\n", len(OK)) == OK
        expected = b"ok\nkept 1.0 10\ngone 2.0 11\n\n"
        assert await _get_all(one) == await _get_all(other) == expected
        single = b"ok\ngone 2.0 11\n\n"
        assert await _ask(other, b"get gone\n", len(single)) == single


async def test_one_redis_server_without_a_cluster(tmp_path: Path) -> None:
    """``redis://host:port``: the same answers; WAIT for a replica it does not
    have fails the batch (the error answer for each put, no ``ok``), which is
    counted, and the connection goes on serving."""
    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    with local_redis(tmp_path) as port:
        url = f"redis://127.0.0.1:{port}"
        async with front_ends(url, count=2) as (one, other):
            batch = b"put a{b} 1.5 1\nput z 2 300\nput a{b} 3 2\n"
            assert await _ask(one, batch, 3 * len(OK)) == 3 * OK
            expected = b"ok\na{b} 1.5 1\na{b} 3.0 2\nz 2.0 300\n\n"
            assert await _get_all(other) == await _get_all(one) == expected
        async with front_ends(url, count=1, wait_replicas=1, timeout=1.0) as (waiting,):
            with trio.fail_after(NETWORK_TIMEOUT):
                stream = await trio.open_tcp_stream("127.0.0.1", waiting.port)
                async with stream:
                    await stream.send_all(b"put w 1 1\nput w 2 2\nping\n")
                    expected = 2 * ERROR + OK
                    assert await receive_exactly(stream, len(expected)) == expected
            async with open_client("127.0.0.1", waiting.port, timeout=NETWORK_TIMEOUT) as client:
                counters = await client.stats()
        assert counters["redis_wait_shortfalls"] == 1
        assert counters["redis_failures"] == 1
        assert counters["puts_refused"] == 2
        assert counters["puts"] == 0
        assert counters["connection_failures"] == 0


async def test_a_flush_in_redis_is_noticed_at_the_next_batch(redis_cluster: LocalCluster) -> None:
    """FLUSHALL removes the deletion token too: the next batch registers anew."""
    redis_cluster.flush()
    async with front_ends(redis_cluster.url, count=1) as (server,):
        assert await _ask(server, b"put f 1 5\n", len(OK)) == OK
        await trio.to_thread.run_sync(redis_cluster.flush)
        assert await _ask(server, b"put f 2 6\n", len(OK)) == OK
        assert await _get_all(server) == b"ok\nf 2.0 6\n\n"
        single = b"ok\nf 2.0 6\n\n"
        assert await _ask(server, b"get f\n", len(single)) == single


async def test_concurrent_batches_count_each_point_once(redis_cluster: LocalCluster) -> None:
    redis_cluster.flush()
    with trio.fail_after(NETWORK_TIMEOUT):
        async with open_redis_store([("127.0.0.1", redis_cluster.ports[0])], cluster=True) as store:

            async def batch(number: int) -> None:
                for round_ in range(5):
                    stamps = [round_ * 100 + n for n in range(100)]
                    await store.put_batch([f"n.{number}"] * 100, [1.0] * 100, stamps)

            async with trio.open_nursery() as nursery:
                for number in range(20):
                    nursery.start_soon(batch, number)
            # What Redis counts so far never passes what was stored (batches
            # at once sending the same uncounted points would pass it).
            master = master_of_key(redis_cluster, "points:{r0}")[0]
            counted = int(redis_cli(master, "get", "points:{r0}").strip() or 0)
            assert 0 <= counted <= 20 * 5 * 100
            assert await store.counts() == (20, 20 * 5 * 100)
