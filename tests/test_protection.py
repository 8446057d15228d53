"""Protected mode: no open server on a network address unless asked for; the security line."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from processes import ServeProcess, run_cli

from trio_metrics import (
    AuthSettings,
    ProtectedModeError,
    ServerConfig,
    ServerInfo,
    TlsSettings,
    serve,
)
from trio_metrics.server import describe_protection
from trio_metrics.server._protection import check_protected_mode

TLS = TlsSettings("server.pem", "server-key.pem")
MUTUAL = TlsSettings("server.pem", "server-key.pem", client_ca="ca.pem")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "2001:db8::1"])
def test_a_network_address_without_authentication_is_refused(host: str) -> None:
    with pytest.raises(ProtectedModeError) as caught:
        check_protected_mode(ServerConfig(host=host), [host])
    message = str(caught.value)
    # The three ways forward.
    assert "--auth-token-file" in message
    assert "--host 127.0.0.1" in message
    assert "--insecure-open" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_needs_nothing(host: str) -> None:
    check_protected_mode(ServerConfig(host=host), [host])


def test_tokens_client_certificates_or_insecure_open_let_it_start(tmp_path: Path) -> None:
    check_protected_mode(ServerConfig(host="0.0.0.0", auth=AuthSettings("t")), ["0.0.0.0"])
    check_protected_mode(ServerConfig(host="0.0.0.0", tls=MUTUAL), ["0.0.0.0"])
    check_protected_mode(ServerConfig(host="0.0.0.0", insecure_open=True), ["0.0.0.0"])
    with pytest.raises(ProtectedModeError):
        # TLS alone hides the traffic but lets anyone talk.
        check_protected_mode(ServerConfig(host="0.0.0.0", tls=TLS), ["0.0.0.0"])


def test_a_host_name_is_checked_once_resolved() -> None:
    config = ServerConfig(host="metrics.example.org")
    check_protected_mode(config, ["metrics.example.org"], literal_only=True)
    with pytest.raises(ProtectedModeError):
        check_protected_mode(config, ["192.0.2.7"])


async def test_serve_refuses_to_listen_on_every_address(nursery: trio.Nursery) -> None:
    with pytest.raises(ProtectedModeError, match=r"0\.0\.0\.0"):
        await nursery.start(serve, ServerConfig(host=None, port=0))


async def test_serve_on_loopback_starts_as_always(nursery: trio.Nursery) -> None:
    info: ServerInfo = await nursery.start(serve, ServerConfig(port=0))
    assert info.host == "127.0.0.1"


def test_the_cli_refuses_and_names_the_ways_forward() -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert "--insecure-open" in result.stderr
    assert "--auth-token-file" in result.stderr


def test_the_banner_always_says_what_is_protected() -> None:
    server = ServeProcess("--http-port", "0")
    try:
        assert server.process.stdout is not None
        server.process.stdout.readline()  # the dashboard's address
        line = server.process.stdout.readline()
    finally:
        server.ensure_stopped()
    assert line == (
        "security: main port: plaintext, open to anyone who reaches it;"
        " HTTP: plaintext, open to anyone who reaches it\n"
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (ServerConfig(), "security: main port: plaintext, open to anyone who reaches it"),
        (
            ServerConfig(tls=TLS, graphite_port=0, insecure_open=True),
            "security: main port: TLS, open to anyone who reaches it;"
            " Graphite: TLS, open to anyone who reaches it",
        ),
        (
            ServerConfig(
                tls=MUTUAL, auth=AuthSettings("t", metrics_open=True), graphite_port=0, http_port=0
            ),
            "security: main port: mutual TLS, token required;"
            " Graphite: mutual TLS, client certificate required;"
            " HTTP: mutual TLS, bearer token required but on /healthz and /metrics",
        ),
        (
            ServerConfig(tls=MUTUAL),
            "security: main port: mutual TLS, client certificate required",
        ),
    ],
)
def test_the_security_line_names_each_listener(config: ServerConfig, expected: str) -> None:
    assert describe_protection(config) == expected
