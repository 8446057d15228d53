"""ServerConfig: validated once, taken whole by serve() and run_server(), built by the CLI."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_metrics import (
    DataDirStorage,
    ExistingStore,
    FsyncPolicy,
    Limits,
    MemoryStorage,
    MetricStore,
    ServerConfig,
    ServerInfo,
    open_client,
    run_server,
    serve,
)
from trio_metrics.cli._main import _build_parser
from trio_metrics.cli._serve_verb import SERVE_FLAGS, config_from_args
from trio_metrics.http import HttpLimits


def test_defaults_are_todays_server() -> None:
    config = ServerConfig()
    assert (config.host, config.port) == ("127.0.0.1", 8888)
    assert config.graphite_port is None
    assert config.http_port is None
    assert config.limits == Limits()
    assert config.storage == MemoryStorage()
    assert config.shutdown_grace == 5.0
    assert config.log_level is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": 65536}, "port 65536 is outside 0..65535"),
        ({"port": -1}, "port -1 is outside"),
        ({"graphite_port": 70000}, "Graphite port 70000 is outside"),
        ({"http_port": -5}, "HTTP port -5 is outside"),
        ({"answer_cache_bytes": -1}, "answer_cache_bytes must not be negative"),
        ({"answer_copy_budget_bytes": -1}, "answer_copy_budget_bytes must not be negative"),
        ({"shutdown_grace": -0.5}, "shutdown_grace must not be negative"),
        ({"shutdown_grace": float("nan")}, "shutdown_grace"),
        ({"shutdown_grace": float("inf")}, "shutdown_grace"),
        ({"log_level": "loud"}, "log_level"),
    ],
)
def test_a_bad_setting_is_refused_at_construction(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": True}, "port must be a whole number, not True"),
        ({"port": "8888"}, "port must be a whole number, not '8888'"),
        ({"http_port": 1.5}, "HTTP port must be a whole number"),
        ({"host": 123}, "host must be a string or None"),
        ({"limits": None}, "limits must be a Limits, not None"),
        ({"http_limits": Limits()}, "http_limits must be an HttpLimits"),
        ({"storage": "dir"}, "storage must be MemoryStorage"),
        ({"storage": None}, "storage must be MemoryStorage"),
        ({"storage": MetricStore()}, "ExistingStore"),
        ({"storage": DataDirStorage}, "storage must be"),
        ({"answer_cache_bytes": 1.5}, "whole number of bytes, not 1.5"),
        ({"shutdown_grace": "5"}, "number of seconds, not '5'"),
        ({"shutdown_grace": True}, "number of seconds, not True"),
        ({"shutdown_grace": None}, "number of seconds, not None"),
    ],
)
def test_a_setting_of_the_wrong_kind_is_a_type_error(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        ServerConfig(**settings)


def test_other_bad_values_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="host must not be empty"):
        ServerConfig(host="  ")
    with pytest.raises(ValueError, match=r"log_level must be one of debug, info, warning, error"):
        ServerConfig(log_level="INFO")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="idle_timeout must be a number of seconds or None"):
        Limits(idle_timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lacks put_batch"):
        ExistingStore(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DataDirStorage("d", repair="no")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"fsync": "never"}, {"repair": True}, {"compact_min_bytes": 5}, {"fsync": "bogus"}],
)
def test_storage_options_without_a_data_dir_are_refused(options: dict[str, Any]) -> None:
    """They would be ignored, and the caller would believe the points are kept (as the CLI)."""
    with pytest.raises(ValueError, match="needs data_dir"):
        ServerConfig.from_options(**options)


async def test_open_storage_refuses_an_unknown_kind() -> None:
    from trio_metrics.storage import open_storage

    with pytest.raises(TypeError, match="unknown storage"):
        async with open_storage("memory"):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"directory": ""}, "must not be empty"),
        ({"directory": "  "}, "must not be empty"),
        ({"directory": "d", "fsync": "sometimes"}, "sometimes"),
        ({"directory": "d", "compact_min_bytes": -1}, "compact_min_bytes must not be negative"),
    ],
)
def test_a_bad_data_dir_setting_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataDirStorage(**settings)


def test_data_dir_storage_converts_its_values() -> None:
    storage = DataDirStorage("some/dir", fsync="always")
    assert storage.directory == Path("some/dir")
    assert storage.fsync is FsyncPolicy.ALWAYS


def test_the_config_is_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_from_options_maps_the_flat_keywords(tmp_path: Path) -> None:
    config = ServerConfig.from_options(
        "::1",
        0,
        data_dir=tmp_path,
        fsync="never",
        repair=True,
        compact_min_bytes=5,
        max_line_length=10,
        max_connections=3,
        idle_timeout=2.5,
        max_buffered_answer=7,
        answer_cache_bytes=0,
        shutdown_grace=1.0,
        graphite_port=2003,
        http_port=8080,
    )
    assert config == ServerConfig(
        host="::1",
        port=0,
        graphite_port=2003,
        http_port=8080,
        limits=Limits(
            max_line_length=10, max_connections=3, idle_timeout=2.5, max_buffered_answer=7
        ),
        storage=DataDirStorage(tmp_path, fsync=FsyncPolicy.NEVER, repair=True, compact_min_bytes=5),
        answer_cache_bytes=0,
        shutdown_grace=1.0,
    )
    store = MetricStore()
    assert ServerConfig.from_options(store=store).storage == ExistingStore(store)
    with pytest.raises(ValueError, match="either store or data_dir"):
        ServerConfig.from_options(store=store, data_dir=tmp_path)


async def test_serve_takes_a_config_whole(nursery: trio.Nursery) -> None:
    store = MetricStore()
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        graphite_port=0,
        limits=Limits(max_line_length=100),
        storage=ExistingStore(store),
    )
    info: ServerInfo = await nursery.start(serve, config)
    assert info.config is config
    assert info.store is store
    assert info.limits.max_line_length == 100
    assert info.graphite_port not in (None, 0)
    async with open_client("127.0.0.1", info.port, timeout=10) as client:
        await client.put("k", 1.5, 7)
    [series] = store.series("k")
    assert (list(series.timestamps), list(series.values)) == ([7], [1.5])
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        await stream.send_all(b"put " + b"k" * 200 + b" 1 1\n")
        answer = await stream.receive_some(100)
    assert answer == b"error\nwrong command\n\n"
    await stream.aclose()
    info.shutdown()


async def test_serve_with_a_config_refuses_other_settings() -> None:
    with pytest.raises(TypeError, match="no other settings"):
        await serve(ServerConfig(port=0), 0)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no other settings"):
        await serve(ServerConfig(port=0), 8888)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no other settings"):
        await serve(ServerConfig(port=0), http_port=0)  # type: ignore[call-overload]


def test_run_server_takes_a_config_whole() -> None:
    """The flat form builds a config (and refuses a bad value); a config comes alone."""
    with pytest.raises(ValueError, match="port 70000"):
        run_server("127.0.0.1", 70000)
    with pytest.raises(TypeError, match="no other settings"):
        run_server(ServerConfig(port=0), 1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no other settings"):
        run_server(ServerConfig(port=0), 8888)  # type: ignore[call-overload]


def test_run_server_from_another_thread_serves_the_config() -> None:
    """A config with a taken port fails the same way in a thread (no signals there)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        errors: list[BaseException] = []

        def run() -> None:
            try:
                run_server(ServerConfig(host="127.0.0.1", port=port))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
    assert len(errors) == 1
    assert isinstance(errors[0], OSError)


def _parse_serve(*flags: str) -> argparse.Namespace:
    return _build_parser().parse_args(["serve", *flags])


def test_the_cli_builds_the_config_from_its_flags(tmp_path: Path) -> None:
    args = _parse_serve(
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--max-line-length",
        "10",
        "--max-connections",
        "3",
        "--idle-timeout",
        "2.5",
        "--max-buffered-answer",
        "7",
        "--answer-cache-bytes",
        "0",
        "--data-dir",
        os.fspath(tmp_path),
        "--fsync",
        "always",
        "--repair",
        "--compact-min-bytes",
        "5",
        "--shutdown-grace",
        "1",
        "--graphite-port",
        "2003",
        "--http-port",
        "8080",
        "--http-max-connections",
        "50",
        "--http-header-timeout",
        "2.5",
        "--http-max-body-bytes",
        "100",
        "--http-body-budget-bytes",
        "300",
        "--http-body-timeout",
        "7",
        "--http-max-points",
        "200",
        "--log-level",
        "debug",
    )
    assert config_from_args(args) == ServerConfig(
        host="0.0.0.0",
        port=0,
        graphite_port=2003,
        http_port=8080,
        limits=Limits(
            max_line_length=10, max_connections=3, idle_timeout=2.5, max_buffered_answer=7
        ),
        http_limits=HttpLimits(
            max_connections=50,
            header_timeout=2.5,
            max_body_bytes=100,
            body_budget_bytes=300,
            body_timeout=7.0,
            max_points=200,
        ),
        storage=DataDirStorage(tmp_path, fsync="always", repair=True, compact_min_bytes=5),
        answer_cache_bytes=0,
        shutdown_grace=1.0,
        log_level="debug",
    )


def test_the_cli_defaults_are_the_config_defaults() -> None:
    assert config_from_args(_parse_serve()) == ServerConfig(log_level="info")
    only_dir = config_from_args(_parse_serve("--data-dir", "d"))
    assert only_dir.storage == DataDirStorage("d")


def test_every_serve_flag_reaches_the_config(tmp_path: Path) -> None:
    """Each flag changes the config: a flag that config_from_args forgot would not."""
    schemas = tmp_path / "storage-schemas.conf"
    schemas.write_text("[all]\npattern = .\nretentions = 1m:7d\n")
    aggregation = tmp_path / "storage-aggregation.conf"
    aggregation.write_text("[all]\npattern = .\naggregationMethod = max\n")
    # Retention rules need the memory store: tried against a base that has one rule.
    retention = {
        "--retention": "1m:1d",
        "--storage-schemas": str(schemas),
        "--storage-aggregation": str(aggregation),
    }
    changed = {
        "--host": "::1",
        "--port": "1",
        "--max-line-length": "11",
        "--max-connections": "12",
        "--idle-timeout": "13",
        "--max-buffered-answer": "14",
        "--answer-cache-bytes": "15",
        "--answer-copy-budget-bytes": "20",
        "--fsync": "never",
        "--repair": None,
        "--compact-min-bytes": "16",
        "--shutdown-grace": "17",
        "--graphite-port": "18",
        "--http-port": "19",
        "--http-max-connections": "22",
        "--http-header-timeout": "23",
        "--http-max-body-bytes": "20",
        "--http-body-budget-bytes": "2000000",
        "--http-body-timeout": "25",
        "--http-max-points": "21",
        "--log-level": "error",
        "--tls-cert": "other.pem",
        "--tls-key": "other-key.pem",
        "--tls-client-ca": "ca.pem",
        "--tls-handshake-timeout": "26",
        "--auth-token-file": "other-tokens",
        "--auth-timeout": "27",
        "--max-unauthenticated-connections": "28",
        "--http-metrics-open": None,
        "--graphite-allow-unauthenticated": None,
        "--insecure-open": None,
    }
    # The Redis flags are changed on a base that has a store URL (no data directory).
    redis = {
        "--store": "redis-cluster://127.0.0.1:7001,127.0.0.1:7002",
        "--redis-wait-replicas": "1",
        "--redis-timeout": "2.5",
    }
    assert {flag.names[0] for flag in SERVE_FLAGS} == {
        *changed,
        *retention,
        *redis,
        "--data-dir",
    }
    on_redis = config_from_args(_parse_serve("--store", "redis://127.0.0.1:7000"))
    for flag, setting in redis.items():
        args = _parse_serve("--store", "redis://127.0.0.1:7000", flag, setting)
        assert config_from_args(args) != on_redis, flag
    # The TLS and auth flags are changed on a base that has them on: alone, most are refused.
    # (Mutual TLS, so that a Graphite port may go with auth.)
    tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "base-ca.pem"]
    tls += ["--auth-token-file", "tokens"]
    base = config_from_args(_parse_serve("--data-dir", "d", *tls))
    for flag, value in changed.items():
        args = _parse_serve("--data-dir", "d", *tls, flag, *([] if value is None else [value]))
        assert config_from_args(args) != base, flag
    ruled = config_from_args(_parse_serve("--retention", "10s:1d"))
    for flag, value in retention.items():
        assert config_from_args(_parse_serve("--retention", "10s:1d", flag, value)) != ruled, flag


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_body_bytes": -1}, "max_body_bytes must be a whole number of at least 0"),
        ({"max_points": 0}, "max_points must be a whole number of at least 1"),
        ({"max_points": True}, "max_points"),
        ({"max_connections": 0}, "max_connections must be a whole number of at least 1"),
        ({"header_timeout": 0}, "header_timeout must be a positive number of seconds"),
        ({"header_timeout": float("inf")}, "header_timeout"),
        ({"header_timeout": "5"}, "header_timeout"),
        ({"body_timeout": -1.0}, "body_timeout must be a positive number of seconds"),
        ({"max_body_bytes": 10, "body_budget_bytes": 9}, "must be at least max_body_bytes"),
    ],
)
def test_a_bad_http_limit_is_refused_at_construction(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HttpLimits(**settings)
