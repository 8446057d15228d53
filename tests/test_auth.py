"""Token authentication: the token file, the main port's ``auth`` word, HTTP bearer tokens."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
import trio
from conftest import server_in_thread
from http_requests import request
from net import NETWORK_TIMEOUT, receive_exactly, receive_until_eof
from processes import COMMAND, run_cli
from test_robustness import wait_until

from trio_metrics import (
    AuthSettings,
    Client,
    ClientError,
    ServerConfig,
    ServerInfo,
    TlsSettings,
    TokenFileError,
    open_client,
    serve,
)
from trio_metrics.http._openapi import OPENAPI
from trio_metrics.transport import Authenticator, FailureDelay, load_tokens
from trio_metrics.wire import ERROR_ANSWER, OK_ANSWER, Auth, ProtocolError, parse_command

TOKEN = "s3cret-token-of-ops-0123456789"
OTHER_TOKEN = "another-token-for-ci-9876543210"
WRONG = "wrong-token-wrong-token-wrong"


def write_tokens(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens", f"# operators\nops:{TOKEN}\n\n{OTHER_TOKEN}\n")


async def _start(nursery: trio.Nursery, config: ServerConfig) -> ServerInfo:
    info: ServerInfo = await nursery.start(serve, config)
    return info


@pytest.fixture
async def auth_server(nursery: trio.Nursery, token_file: Path) -> ServerInfo:
    return await _start(nursery, ServerConfig(port=0, http_port=0, auth=AuthSettings(token_file)))


# --- the token file ---------------------------------------------------------


def test_the_token_file_names_its_tokens(token_file: Path) -> None:
    assert load_tokens(token_file) == {"ops": TOKEN, "token-4": OTHER_TOKEN}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_token_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_tokens(tmp_path / "tokens", TOKEN + "\n", mode)
    with pytest.raises(TokenFileError, match=f"mode {mode:04o}.*chmod 600"):
        load_tokens(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("short-token\n", "at least 16"),
        (f"ops:{TOKEN}\nops:{OTHER_TOKEN}\n", "used twice"),
        (f"a:{TOKEN}\nb:{TOKEN}\n", "same token"),
        (f"bad name:{TOKEN}\n", "a name is"),
        ("# nothing but a comment\n", "holds no token"),
    ],
)
def test_a_bad_token_file_is_refused_without_showing_a_token(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(TokenFileError, match=problem) as caught:
        load_tokens(write_tokens(tmp_path / "tokens", text))
    assert TOKEN not in str(caught.value)


def test_serve_refuses_to_start_with_an_open_token_file(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "tokens", TOKEN + "\n", 0o644)
    result = run_cli("serve", "--port", "0", "--auth-token-file", str(path))
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    assert TOKEN not in result.stderr


def test_the_authenticator_knows_each_token_and_nothing_else(token_file: Path) -> None:
    auth = Authenticator(AuthSettings(token_file))
    assert auth.check(TOKEN) == "ops"
    assert auth.check(OTHER_TOKEN) == "token-4"
    assert auth.check(WRONG) is None
    assert auth.check(TOKEN[:-1]) is None
    assert auth.check(TOKEN + "x") is None


def test_the_failure_delay_grows_to_its_cap_and_is_forgotten() -> None:
    now = [0.0]
    delay = FailureDelay(base=0.1, cap=1.0, forget=60.0, clock=lambda: now[0])
    assert [delay.failed("10.0.0.1") for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert delay.failed("10.0.0.2") == 0.1  # per address
    delay.succeeded("10.0.0.1")
    assert delay.failed("10.0.0.1") == 0.1
    now[0] = 61.0
    assert delay.failed("10.0.0.2") == 0.1


def test_the_failure_delay_remembers_a_bounded_number_of_addresses() -> None:
    delay = FailureDelay(base=0.1, cap=1.0, max_addresses=2, clock=lambda: 0.0)
    delay.failed("a")
    delay.failed("a")
    delay.failed("b")
    delay.failed("c")  # "a" is forgotten
    assert delay.failed("a") == 0.1


def test_auth_is_an_extension_word_whose_token_never_shows() -> None:
    command = parse_command(f"auth {TOKEN}".encode())
    assert command == Auth(TOKEN)
    assert TOKEN not in repr(command)
    for line in (b"auth", b"auth a b"):
        with pytest.raises(ProtocolError):
            parse_command(line)


def test_graphite_with_auth_needs_mutual_tls_or_an_explicit_flag(
    token_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="--graphite-allow-unauthenticated"):
        ServerConfig(graphite_port=0, auth=AuthSettings(token_file))
    ServerConfig(
        graphite_port=0, auth=AuthSettings(token_file, graphite_allow_unauthenticated=True)
    )
    mutual = TlsSettings("c.pem", "k.pem", client_ca="ca.pem")
    ServerConfig(graphite_port=0, auth=AuthSettings(token_file), tls=mutual)


# --- the main port ----------------------------------------------------------


async def _connect(info: ServerInfo) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", info.port)


async def test_every_command_before_auth_gets_the_error_and_changes_nothing(
    auth_server: ServerInfo,
) -> None:
    await auth_server.store.put_batch(["secret"], [1.0], [1])
    stream = await _connect(auth_server)
    commands = b"put k 1 1\nget secret\nget *\nstats\nping\nkeys *\ndelete secret\nrange * 0 9\n"
    await stream.send_all(commands)
    assert await receive_exactly(stream, 8 * len(ERROR_ANSWER)) == 8 * ERROR_ANSWER
    assert await auth_server.store.counts() == (1, 1)
    assert auth_server.stats.auth_refused_commands == 8
    assert auth_server.stats.puts == 0
    # Authenticated, the same connection is served, in the same read as the auth.
    await stream.send_all(f"auth {TOKEN}\nput k 1 1\nget k\n".encode())
    expected = OK_ANSWER + OK_ANSWER + b"ok\nk 1.0 1\n\n"
    assert await receive_exactly(stream, len(expected)) == expected
    assert auth_server.stats.auth_successes == 1
    await stream.aclose()


async def test_a_wrong_token_is_an_error_and_a_counted_failure(
    auth_server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stream = await _connect(auth_server)
    await stream.send_all(f"auth {WRONG}\nget *\n".encode())
    assert await receive_exactly(stream, 2 * len(ERROR_ANSWER)) == 2 * ERROR_ANSWER
    assert auth_server.stats.auth_failures == 1
    await stream.send_all(f"auth {TOKEN}\nauth {WRONG}\nping\n".encode())
    # A failed auth on an authenticated connection leaves it authenticated.
    expected = OK_ANSWER + ERROR_ANSWER + OK_ANSWER
    assert await receive_exactly(stream, len(expected)) == expected
    await stream.aclose()
    async with open_client("127.0.0.1", auth_server.port, timeout=5, token=TOKEN) as client:
        counters = await client.stats()
    assert counters["auth_failures"] == 2
    assert not any(TOKEN in str(v) or WRONG in str(v) for v in counters)
    assert TOKEN not in caplog.text
    assert WRONG not in caplog.text


async def test_repeated_failures_from_one_address_take_longer_and_longer(
    auth_server: ServerInfo,
) -> None:
    stream = await _connect(auth_server)
    latencies = []
    for _ in range(4):
        started = trio.current_time()
        await stream.send_all(f"auth {WRONG}\n".encode())
        assert await receive_exactly(stream, len(ERROR_ANSWER)) == ERROR_ANSWER
        latencies.append(trio.current_time() - started)
    # 0.05 s, then twice as long each time.
    assert latencies[0] >= 0.05
    assert latencies[3] >= 0.4
    assert latencies == sorted(latencies)
    # The right token is answered at once, and forgets the failures.
    started = trio.current_time()
    await stream.send_all(f"auth {TOKEN}\n".encode())
    assert await receive_exactly(stream, len(OK_ANSWER)) == OK_ANSWER
    assert trio.current_time() - started < 0.2
    await stream.aclose()


async def test_without_auth_configured_the_word_is_an_error(server: ServerInfo) -> None:
    with pytest.raises(ClientError, match="refused the token"):
        async with open_client("127.0.0.1", server.port, timeout=5, token=TOKEN):
            pass


def test_the_blocking_client_authenticates_with_token(token_file: Path) -> None:
    config = ServerConfig(port=0, auth=AuthSettings(token_file))
    with server_in_thread(config) as info:
        with Client("127.0.0.1", info.port, timeout=5, token=TOKEN) as client:
            client.put("a", 1, 1)
            assert client.get("a") == {"a": [(1, 1.0)]}
        with pytest.raises(ClientError, match="refused the token"):
            Client("127.0.0.1", info.port, timeout=5, token=WRONG)
        with Client("127.0.0.1", info.port, timeout=5) as anonymous:
            with pytest.raises(ClientError):
                anonymous.get("a")


async def test_a_flood_of_unauthenticated_connections_cannot_take_the_slots(
    nursery: trio.Nursery, token_file: Path
) -> None:
    config = ServerConfig(port=0, auth=AuthSettings(token_file, max_unauthenticated=2))
    info = await _start(nursery, config)
    async with open_client("127.0.0.1", info.port, timeout=5, token=TOKEN) as client:
        flood = [await _connect(info) for _ in range(2)]
        await wait_until(lambda: info.stats.connections_unauthenticated == 2)
        one_more = await _connect(info)
        with trio.fail_after(NETWORK_TIMEOUT):
            assert await one_more.receive_some() == b""
        assert info.stats.connections_refused_unauthenticated == 1
        await client.put("still.served", 1, 1)
        # A connection that authenticates leaves the budget.
        await flood[0].send_all(f"auth {TOKEN}\n".encode())
        assert await receive_exactly(flood[0], len(OK_ANSWER)) == OK_ANSWER
        assert info.stats.connections_unauthenticated == 1
        for stream in [*flood, one_more]:
            await stream.aclose()
    await wait_until(lambda: info.stats.connections_unauthenticated == 0)


async def _http_exchange(stream: trio.abc.Stream, path: str, token: str | None = None) -> bytes:
    """One keep-alive GET on ``stream``: the response's head and body."""
    headers = "" if token is None else f"authorization: Bearer {token}\r\n"
    await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode())
    answer = b""
    with trio.fail_after(NETWORK_TIMEOUT):
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some()
        head, _, body = answer.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            while not body.endswith(b"\r\n0\r\n\r\n"):
                body += await stream.receive_some()
        else:
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += await stream.receive_some()
    return head + b"\r\n\r\n" + body


async def test_http_connections_without_a_token_have_a_budget_of_their_own(
    nursery: trio.Nursery, token_file: Path
) -> None:
    config = ServerConfig(port=0, http_port=0, auth=AuthSettings(token_file, max_unauthenticated=2))
    info = await _start(nursery, config)
    assert info.http_port is not None
    port = info.http_port
    # A keep-alive client that has shown its token is out of the budget.
    trusted = await trio.open_tcp_stream("127.0.0.1", port)
    assert (await _http_exchange(trusted, "/api/v1/keys", TOKEN)).startswith(b"HTTP/1.1 200 ")
    # Open paths do not make a connection trusted.
    healthz_only = await trio.open_tcp_stream("127.0.0.1", port)
    assert (await _http_exchange(healthz_only, "/healthz")).startswith(b"HTTP/1.1 200 ")
    flood = [healthz_only, await trio.open_tcp_stream("127.0.0.1", port)]
    await trio.sleep(0.1)  # accepted and counted
    with trio.fail_after(NETWORK_TIMEOUT):
        one_more = await trio.open_tcp_stream("127.0.0.1", port)
        await one_more.send_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        refused = await receive_until_eof(one_more)
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert json.loads(body) == {
        "error": "too many HTTP connections without a token; try again later"
    }
    metrics = await _http_exchange(trusted, "/metrics", TOKEN)
    assert b"\ntrio_metrics_http_connections_unauthenticated 2\n" in metrics
    assert b"\ntrio_metrics_http_connections_refused_unauthenticated_total 1\n" in metrics
    # One of them leaves: a new connection is served again.
    await flood.pop().aclose()
    await trio.sleep(0.1)
    assert (await request(port, "GET", "/healthz"))[0] == 200
    for stream in [*flood, one_more, trusted]:
        await stream.aclose()


async def test_a_connection_that_does_not_authenticate_in_time_is_closed(
    nursery: trio.Nursery, token_file: Path
) -> None:
    info = await _start(
        nursery, ServerConfig(port=0, auth=AuthSettings(token_file, auth_timeout=0.3))
    )
    stream = await _connect(info)
    await stream.send_all(b"get *\n")
    assert await receive_exactly(stream, len(ERROR_ANSWER)) == ERROR_ANSWER
    with trio.fail_after(NETWORK_TIMEOUT):
        assert await stream.receive_some() == b""
    await stream.aclose()
    assert info.stats.auth_timeouts == 1
    # Once authenticated, the deadline is gone.
    async with open_client("127.0.0.1", info.port, timeout=5, token=TOKEN) as client:
        await trio.sleep(0.5)
        await client.ping()


def test_the_cli_takes_the_token_from_the_environment_or_a_file(
    token_file: Path, tmp_path: Path
) -> None:
    config = ServerConfig(port=0, auth=AuthSettings(token_file))
    with server_in_thread(config) as info:
        port = str(info.port)
        env = {k: v for k, v in os.environ.items() if k != "TRIO_METRICS_TOKEN"}
        anonymous = _cli(env, "put", "--port", port, "k", "1", "--timestamp", "1")
        assert anonymous.returncode == 1
        with_env = _cli(
            {**env, "TRIO_METRICS_TOKEN": TOKEN},
            "put",
            "--port",
            port,
            "k",
            "2",
            "--timestamp",
            "1",
        )
        assert with_env.returncode == 0, with_env.stderr
        mine = write_tokens(tmp_path / "mine", f"ci:{OTHER_TOKEN}\n")
        from_file = _cli(env, "get", "--port", port, "--token-file", str(mine), "k", "--json")
        assert from_file.returncode == 0, from_file.stderr
        assert from_file.stdout.strip() == '{"k": [[1, 2.0]]}'
        wrong = _cli({**env, "TRIO_METRICS_TOKEN": WRONG}, "get", "--port", port, "k")
        assert wrong.returncode == 1
        assert "refused the token" in wrong.stderr
        assert WRONG not in wrong.stderr


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        env=env,
        check=False,
    )


# --- HTTP -------------------------------------------------------------------


def _every_route() -> list[tuple[str, str]]:
    """``(method, path)`` for every route and method the HTTP API has, now and later."""
    from trio_metrics.http import HttpApi
    from trio_metrics.storage import MetricStore
    from trio_metrics.transport import ServerStats

    routes = HttpApi(MetricStore(), ServerStats()).routes
    return [
        (method, template.replace("{name}", "dashboard.js"))
        for template, methods in routes.items()
        for method in methods
    ]


def test_the_routes_include_the_ones_that_change_data() -> None:
    routes = _every_route()
    assert ("POST", "/api/v1/points") in routes
    assert ("DELETE", "/api/v1/series") in routes
    assert ("GET", "/healthz") in routes


async def test_every_http_route_but_healthz_needs_the_bearer_token(
    auth_server: ServerInfo,
) -> None:
    assert auth_server.http_port is not None
    port = auth_server.http_port
    await auth_server.store.put_batch(["k"], [1.0], [1])
    for method, path in _every_route():
        query = "?key=k" if path == "/api/v1/series" else ""
        body = b"[]" if method == "POST" else None
        status, headers, _ = await request(port, method, path + query, body)
        if path == "/healthz":
            assert status == 200
            continue
        assert status == 401, (method, path)
        assert headers["www-authenticate"].startswith("Bearer"), path
        wrong = {"Authorization": f"Bearer {WRONG}"}
        assert (await request(port, method, path + query, body, wrong))[0] == 401, path
        if method == "GET":
            # Past the token (a route that wants more parameters may then answer 400).
            right = {"Authorization": f"Bearer {TOKEN}"}
            assert (await request(port, method, path + query, None, right))[0] != 401, path
    # Nothing refused changed the store.
    assert await auth_server.store.counts() == (1, 1)
    posted = b'[{"key": "k", "value": 2, "timestamp": 2}]'
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert (await request(port, "POST", "/api/v1/points", posted, right))[0] == 200
    assert await auth_server.store.counts() == (1, 2)


def test_the_openapi_document_says_which_routes_take_a_bearer_token() -> None:
    from trio_metrics.http import HttpApi
    from trio_metrics.storage import MetricStore
    from trio_metrics.transport import ServerStats

    for template, methods in HttpApi(MetricStore(), ServerStats()).routes.items():
        for method in methods:
            responses = OPENAPI["paths"][template][method.lower()]["responses"]
            assert ("401" in responses) == (template != "/healthz"), (method, template)
    assert OPENAPI["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"bearerAuth": []} in OPENAPI["security"]
    assert OPENAPI["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in OPENAPI["paths"]["/healthz"]["get"]["responses"]


async def test_metrics_can_be_left_open(nursery: trio.Nursery, token_file: Path) -> None:
    config = ServerConfig(port=0, http_port=0, auth=AuthSettings(token_file, metrics_open=True))
    info = await _start(nursery, config)
    assert info.http_port is not None
    assert (await request(info.http_port, "GET", "/metrics"))[0] == 200
    assert (await request(info.http_port, "GET", "/api/v1/keys"))[0] == 401
