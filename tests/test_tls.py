"""TLS on the main and Graphite ports: real handshakes with trustme's certificates."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing
from certificates import Pki, make_pki, write_expired_server_cert
from conftest import server_in_thread, skip_or_fail
from net import NETWORK_TIMEOUT, receive_exactly
from processes import ServeProcess, run_cli
from test_robustness import wait_until

from trio_metrics import (
    AuthSettings,
    Client,
    ClientError,
    ServerConfig,
    ServerInfo,
    open_client,
    serve,
)
from trio_metrics.server import ConnectionHandler
from trio_metrics.storage import MetricStore
from trio_metrics.transport import Limits, TlsFilesError, TlsServer, TlsSettings


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


async def _start(nursery: trio.Nursery, config: ServerConfig) -> ServerInfo:
    info: ServerInfo = await nursery.start(serve, config)
    return info


@pytest.fixture
async def tls_server(nursery: trio.Nursery, pki: Pki) -> AsyncIterator[ServerInfo]:
    yield await _start(nursery, ServerConfig(port=0, tls=pki.settings()))


def _wait_closed(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes ``sock`` (bounded in time).

    Closed with unread bytes, the socket is reset rather than ended: both count.
    """
    sock.settimeout(NETWORK_TIMEOUT)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_the_blocking_client_puts_and_gets_over_tls(pki: Pki) -> None:
    with server_in_thread(ServerConfig(port=0, tls=pki.settings())) as info:
        with Client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as client:
            client.put("palm.cpu", 10.6, 1501864247)
            assert client.get("palm.cpu") == {"palm.cpu": [(1501864247, 10.6)]}
            counters = client.stats()
        assert counters["tls_handshakes"] == 1
        assert counters["tls_handshake_failures"] == 0


async def test_the_trio_client_puts_and_gets_over_tls(tls_server: ServerInfo, pki: Pki) -> None:
    async with open_client(
        "localhost", tls_server.port, timeout=5, ssl=pki.client_context()
    ) as client:
        await client.put("a", 1, 1)
        assert await client.get("a") == {"a": [(1, 1.0)]}
    assert tls_server.stats.tls_handshakes == 1


class _RecordClient:
    """A TLS client that chooses how its records reach the server: several in
    one send, or one cut into pieces (the standard library's ``SSLObject``
    over memory buffers and a blocking socket)."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=NETWORK_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="127.0.0.1")
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
        # The hello's first byte alone, then the rest: the server's first
        # read holds a part of a record.
        hello = self._outgoing.read()
        self.sock.sendall(hello[:1])
        time.sleep(0.05)
        self.sock.sendall(hello[1:])
        self._incoming.write(self._receive())
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self._outgoing.read())
                self._incoming.write(self._receive())
            else:
                self.sock.sendall(self._outgoing.read())
                return

    def _receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        return chunk

    def records(self, *texts: bytes) -> bytes:
        """The ciphertext of one TLS record per text."""
        for text in texts:
            self.tls.write(text)
        return self._outgoing.read()

    def receive_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                data += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._incoming.write(self._receive())
        return data


def _records_in_one_send_and_cut_into_bytes(port: int, context: ssl.SSLContext) -> None:
    client = _RecordClient(port, context)
    with client.sock:
        # Three records in one segment: the server reads them in one go and
        # must answer the two still held in memory without waiting for more.
        client.sock.sendall(client.records(b"put a 1 1\n", b"put b 2 2\n", b"get a\n"))
        expected = b"ok\n\nok\n\nok\na 1.0 1\n\n"
        assert client.receive_exactly(len(expected)) == expected
        # Records cut into single bytes, each sent alone, and a line cut
        # across two records.
        ciphertext = client.records(b"put c 3", b" 3\nget c\n")
        for index in range(len(ciphertext)):
            client.sock.sendall(ciphertext[index : index + 1])
            time.sleep(0.001)
        expected = b"ok\n\nok\nc 3.0 3\n\n"
        assert client.receive_exactly(len(expected)) == expected
        # A close_notify ends the conversation: the server closes too.
        with contextlib.suppress(ssl.SSLWantReadError):  # the server's own never comes
            client.tls.unwrap()
        client.sock.sendall(client.records())
        assert _wait_closed(client.sock) == b""


def _a_corrupted_record_gets_an_alert(port: int, context: ssl.SSLContext) -> str:
    client = _RecordClient(port, context)
    with client.sock:
        record = bytearray(client.records(b"put a 1 1\n"))
        record[-1] ^= 0x01  # its authentication tag no longer matches
        client.sock.sendall(bytes(record))
        client._incoming.write(_wait_closed(client.sock))
        client._incoming.write_eof()
        try:
            client.tls.read(65536)  # the server's records (in TLS 1.3 alerts are encrypted too)
        except ssl.SSLError as exc:
            return str(exc)
        return "no alert"


async def test_a_corrupted_record_is_answered_with_an_alert_then_closed(
    tls_server: ServerInfo, pki: Pki
) -> None:
    """TLS writes a bad_record_mac alert before the read fails: it goes out
    before the connection is closed."""
    error = await trio.to_thread.run_sync(
        _a_corrupted_record_gets_an_alert, tls_server.port, pki.client_context()
    )
    assert "BAD_RECORD_MAC" in error
    assert tls_server.stats.puts == 0


def test_a_renegotiation_is_refused_at_once(pki: Pki) -> None:
    """A TLS 1.2 client asking to renegotiate is refused then and there (the
    server's alert is sent from the read that met the request)."""
    if shutil.which("openssl") is None:
        skip_or_fail("openssl is missing: apt-get install openssl")
    with server_in_thread(ServerConfig(port=0, tls=pki.settings())) as info:
        client = subprocess.Popen(
            [
                *("openssl", "s_client", "-tls1_2"),
                *("-connect", f"127.0.0.1:{info.port}", "-CAfile", str(pki.ca_file)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert client.stdin is not None and client.stdout is not None
        try:
            client.stdin.write(b"put r 1 1\n")
            client.stdin.flush()
            time.sleep(0.5)
            client.stdin.write(b"R\n")  # s_client's renegotiate command
            client.stdin.flush()
            # Stuck until the idle timeout (there is none) if the refusal stays unsent.
            output, _ = client.communicate(timeout=NETWORK_TIMEOUT)
        finally:
            client.kill()
        assert b"RENEGOTIATING" in output
        assert b"no renegotiation" in output.lower() or b"alert" in output.lower(), output


async def test_a_hello_cut_in_two_records_in_one_read_and_records_cut_into_bytes(
    tls_server: ServerInfo, pki: Pki
) -> None:
    await trio.to_thread.run_sync(
        _records_in_one_send_and_cut_into_bytes, tls_server.port, pki.client_context()
    )
    assert tls_server.stats.tls_handshakes == 1
    assert tls_server.stats.errors == 0


async def test_ssl_true_uses_the_system_trust_which_refuses_a_private_ca(
    tls_server: ServerInfo,
) -> None:
    with pytest.raises(ClientError, match="CERTIFICATE_VERIFY_FAILED"):
        async with open_client("127.0.0.1", tls_server.port, timeout=5, ssl=True):
            pass


async def test_a_client_of_another_ca_refuses_the_server(
    tls_server: ServerInfo, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other")
    with pytest.raises(ClientError, match="certificate verify failed"):
        async with open_client("127.0.0.1", tls_server.port, timeout=5, ssl=other.client_context()):
            pass
    await wait_until(lambda: tls_server.stats.tls_handshake_failures >= 1)


async def test_an_expired_server_certificate_is_refused(nursery: trio.Nursery, pki: Pki) -> None:
    write_expired_server_cert(pki)
    info = await _start(nursery, ServerConfig(port=0, tls=pki.settings()))
    with pytest.raises(ClientError, match="certificate has expired"):
        async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()):
            pass


async def test_a_certificate_for_another_name_is_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki", server_names=("metrics.example.org",))
    info = await _start(nursery, ServerConfig(port=0, tls=pki.settings()))
    with pytest.raises(ClientError, match=r"match|mismatch"):
        async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()):
            pass


async def test_a_plaintext_client_on_the_tls_port_is_closed_and_counted(
    tls_server: ServerInfo,
) -> None:
    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", tls_server.port), NETWORK_TIMEOUT) as sock:
            sock.sendall(b"put leaked 1 1\nget *\n")
            return _wait_closed(sock)

    assert await trio.to_thread.run_sync(talk) == b""
    assert tls_server.stats.tls_plaintext_refused == 1
    assert tls_server.stats.puts == 0
    assert await tls_server.store.counts() == (0, 0)


def test_a_tls_client_on_a_plaintext_port_fails_clearly(pki: Pki) -> None:
    with server_in_thread() as info:
        with pytest.raises(ClientError, match=f"127.0.0.1:{info.port}"):
            with Client("127.0.0.1", info.port, timeout=2, ssl=pki.client_context()) as client:
                client.ping()


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    nursery: trio.Nursery, pki: Pki
) -> None:
    info = await _start(nursery, ServerConfig(port=0, tls=pki.settings(mutual=True)))
    # Under TLS 1.3 the client learns of the refusal on its first read.
    with pytest.raises(
        ClientError, match=r"certificate required|alert|closed the connection|reset"
    ):
        async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as c:
            await c.ping()
    assert info.stats.puts == 0
    async with open_client(
        "127.0.0.1", info.port, timeout=5, ssl=pki.client_context(with_certificate=True)
    ) as client:
        await client.put("signed", 1, 1)
    assert info.stats.puts == 1
    assert info.stats.tls_handshake_failures == 1


async def test_a_silent_handshake_is_cut_at_its_timeout_and_blocks_nobody(
    nursery: trio.Nursery, pki: Pki
) -> None:
    info = await _start(nursery, ServerConfig(port=0, tls=pki.settings(handshake_timeout=0.5)))
    silent = await trio.open_tcp_stream("127.0.0.1", info.port)
    started = trio.current_time()
    # Meanwhile another client is served at once.
    async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as client:
        await client.ping()
    assert trio.current_time() - started < 0.5
    with trio.fail_after(NETWORK_TIMEOUT):
        assert await silent.receive_some() == b""
    assert trio.current_time() - started >= 0.45
    assert info.stats.tls_handshake_timeouts == 1
    await silent.aclose()


async def test_a_handshake_counts_against_the_connection_limit(
    nursery: trio.Nursery, pki: Pki
) -> None:
    config = ServerConfig(port=0, tls=pki.settings(), limits=Limits(max_connections=1))
    info = await _start(nursery, config)
    silent = await trio.open_tcp_stream("127.0.0.1", info.port)
    await wait_until(lambda: info.stats.connections_open >= 1)
    with pytest.raises(ClientError):
        async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as c:
            await c.ping()
    assert info.stats.connections_refused == 1
    await silent.aclose()


async def test_graphite_lines_over_tls_from_our_own_sender(nursery: trio.Nursery, pki: Pki) -> None:
    info = await _start(nursery, ServerConfig(port=0, graphite_port=0, tls=pki.settings()))
    assert info.graphite_port is not None
    stream = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", info.graphite_port),
        pki.client_context(),
        server_hostname="127.0.0.1",
        https_compatible=True,
    )
    await stream.send_all(b"palm.cpu 10.6 1501864247\n")
    await wait_until(lambda: info.stats.graphite_points >= 1)
    await stream.aclose()
    assert [s.values[0] for s in await info.store.query("palm.cpu")] == [10.6]
    # Plaintext to the TLS Graphite port stores nothing.
    with trio.socket.socket() as plain:
        await plain.connect(("127.0.0.1", info.graphite_port))
        await plain.send(b"leaked 1 1\n")
        with trio.fail_after(NETWORK_TIMEOUT):
            with contextlib.suppress(ConnectionResetError):  # closed with the line unread
                assert await plain.recv(10) == b""
    assert info.stats.tls_plaintext_refused == 1
    assert await info.store.query("leaked") == []


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        skip_or_fail("openssl is missing: apt-get install openssl")
    return path


def _s_client(port: int, ca: Path, data: bytes, expected: bytes, *extra: str) -> bytes:
    """Send ``data`` through ``openssl s_client`` and read until ``expected`` has come."""
    command = [
        _openssl(),
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        str(ca),
        "-verify_return_error",
        "-quiet",
        *extra,
    ]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(data)
        process.stdin.flush()
        if not expected:
            process.stdin.close()
            return process.stdout.read() if process.wait(NETWORK_TIMEOUT) == 0 else b"failed"
        output = b""
        deadline = time.monotonic() + NETWORK_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while expected not in output and selector.select(deadline - time.monotonic()):
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
        process.kill()
    return output


def test_openssl_s_client_speaks_the_protocol_over_tls(pki: Pki) -> None:
    with server_in_thread(ServerConfig(port=0, graphite_port=0, tls=pki.settings())) as info:
        expected = b"ok\n\nok\npalm.cpu 10.6 1501864247\n\n"
        answer = _s_client(
            info.port, pki.ca_file, b"put palm.cpu 10.6 1501864247\nget palm.cpu\n", expected
        )
        assert answer == expected
        assert info.graphite_port is not None
        # Graphite answers nothing: s_client ends at the end of its input.
        _s_client(info.graphite_port, pki.ca_file, b"graphite.key 2 5\n", b"", "-no_ign_eof")
        with Client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as client:
            deadline = time.monotonic() + NETWORK_TIMEOUT
            while not client.get("graphite.key") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert client.get("graphite.key") == {"graphite.key": [(5, 2.0)]}


def test_tls_settings_load_real_files_and_refuse_bad_ones(pki: Pki, tmp_path: Path) -> None:
    server = TlsServer(pki.settings())
    assert server.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server.context.verify_mode == ssl.CERT_NONE
    assert TlsServer(pki.settings(mutual=True)).context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(TlsFilesError, match=r"missing\.pem"):
        TlsServer(TlsSettings(tmp_path / "missing.pem", pki.key_file))
    with pytest.raises(TlsFilesError, match=r"ca\.pem"):
        TlsServer(TlsSettings(pki.cert_file, pki.ca_file))  # not the key of that certificate
    with pytest.raises(ValueError, match="handshake_timeout"):
        TlsSettings(pki.cert_file, pki.key_file, handshake_timeout=0)


def test_the_cli_serves_and_talks_tls(pki: Pki) -> None:
    server = ServeProcess("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file))
    try:
        port = str(server.port)
        put = run_cli(
            "put", "--port", port, "--tls-ca", str(pki.ca_file), "k", "1.5", "--timestamp", "7"
        )
        assert put.returncode == 0, put.stderr
        got = run_cli("get", "--port", port, "--tls-ca", str(pki.ca_file), "k", "--json")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == {"k": [[7, 1.5]]}
        untrusted = run_cli("get", "--port", port, "--tls", "k")
        assert untrusted.returncode == 1
        assert "certificate verify failed" in untrusted.stderr
        plaintext = run_cli("get", "--port", port, "--timeout", "2", "k")
        assert plaintext.returncode == 1
        missing = run_cli("get", "--port", port, "--tls-ca", str(pki.directory / "none.pem"), "k")
        assert missing.returncode == 1
        assert "cannot use the TLS files" in missing.stderr
    finally:
        server.ensure_stopped()


def test_serve_refuses_half_a_tls_setting(pki: Pki) -> None:
    alone = run_cli("serve", "--port", "0", "--tls-cert", str(pki.cert_file))
    assert alone.returncode == 2
    assert "--tls-cert and --tls-key go together" in alone.stderr
    bad = run_cli("serve", "--port", "0", "--tls-cert", str(pki.cert_file), "--tls-key", "nope")
    assert bad.returncode == 1
    assert "nope" in bad.stderr


def _curl() -> str:
    path = shutil.which("curl")
    if path is None:
        skip_or_fail("curl is missing: apt-get install curl")
    return path


def test_https_with_curl_cacert(pki: Pki, tmp_path: Path) -> None:
    token = "curl-token-0123456789abcdef"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"curl:{token}\n")
    tokens.chmod(0o600)
    config = ServerConfig(port=0, http_port=0, tls=pki.settings(), auth=AuthSettings(tokens))
    with server_in_thread(config) as info:
        base = f"https://127.0.0.1:{info.http_port}"
        curl = [_curl(), "--silent", "--show-error", "--max-time", "10"]
        health = subprocess.run(
            [*curl, "--cacert", str(pki.ca_file), f"{base}/healthz"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (health.returncode, health.stdout) == (0, '{"status":"ok"}'), health.stderr
        posted = subprocess.run(
            [
                *curl,
                "--cacert",
                str(pki.ca_file),
                "-H",
                f"Authorization: Bearer {token}",
                "--data-binary",
                '[{"key": "https.key", "value": 4, "timestamp": 9}]',
                f"{base}/api/v1/points",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert posted.returncode == 0, posted.stderr
        keys = subprocess.run(
            [*curl, "--cacert", str(pki.ca_file), "-w", " %{http_code}", f"{base}/api/v1/keys"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert keys.stdout.endswith(" 401")
        untrusted = subprocess.run(
            [*curl, f"{base}/healthz"], capture_output=True, text=True, check=False
        )
        assert untrusted.returncode == 60  # curl: the peer's certificate cannot be verified
        with Client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context(), token=token) as c:
            assert c.get("https.key") == {"https.key": [(9, 4.0)]}


async def test_plain_http_to_the_https_port_is_closed_and_counted(
    nursery: trio.Nursery, pki: Pki
) -> None:
    info = await _start(nursery, ServerConfig(port=0, http_port=0, tls=pki.settings()))
    assert info.http_port is not None
    with trio.socket.socket() as plain:
        await plain.connect(("127.0.0.1", info.http_port))
        await plain.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(NETWORK_TIMEOUT), contextlib.suppress(ConnectionResetError):
            assert await plain.recv(100) == b""
    assert info.stats.tls_plaintext_refused == 1


def test_sighup_rotates_the_certificate_while_clients_stay_connected(
    pki: Pki, tmp_path: Path
) -> None:
    server = ServeProcess(
        "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file), "--log-level", "info"
    )
    try:
        port = server.port
        old = Client("127.0.0.1", port, timeout=5, ssl=pki.client_context())
        old.put("before", 1, 1)
        rotated = make_pki(tmp_path / "rotated")
        # The new files replace the old ones in place, as a renewal does.
        shutil.copy(rotated.cert_file, pki.cert_file)
        shutil.copy(rotated.key_file, pki.key_file)
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + NETWORK_TIMEOUT
        while True:
            try:
                new = Client("127.0.0.1", port, timeout=5, ssl=rotated.client_context())
                break
            except ClientError:
                # The old certificate until the server has read the signal.
                assert time.monotonic() < deadline, "the new certificate was never served"
                time.sleep(0.05)
        with new:
            new.put("after", 2, 2)
        # The connection made before the rotation goes on, on its own session.
        assert old.get("after") == {"after": [(2, 2.0)]}
        old.close()
        with pytest.raises(ClientError, match="certificate verify failed"):
            Client("127.0.0.1", port, timeout=5, ssl=pki.client_context())
        # A bad file on the next SIGHUP keeps the rotated certificate in use.
        pki.key_file.write_text("not a key\n")
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        with Client("127.0.0.1", port, timeout=5, ssl=rotated.client_context()) as again:
            again.ping()
        code, err = server.stop(signal.SIGTERM)
        assert code == 0
        assert "reloaded the TLS files" in err
        assert "reloading failed, so the old files stay in use" in err
    finally:
        server.ensure_stopped()


async def test_reload_credentials_of_a_running_server(nursery: trio.Nursery, pki: Pki) -> None:
    info = await _start(nursery, ServerConfig(port=0, tls=pki.settings()))
    assert info.tls is not None
    before = info.tls.context
    info.reload_credentials()
    assert info.tls.context is not before
    pki.cert_file.write_text("")
    with pytest.raises(TlsFilesError):
        info.reload_credentials()
    async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as c:
        await c.ping()


async def test_a_graceful_stop_answers_then_closes_tls_connections(pki: Pki) -> None:
    async with trio.open_nursery() as nursery:
        info = await _start(nursery, ServerConfig(port=0, tls=pki.settings(), shutdown_grace=5))
        async with open_client("127.0.0.1", info.port, timeout=5, ssl=pki.client_context()) as c:
            await c.put("kept", 1, 1)
            raw = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", info.port),
                pki.client_context(),
                server_hostname="127.0.0.1",
                https_compatible=True,
            )
            await raw.send_all(b"put late 2 2\n")
            assert await receive_exactly(raw, 4) == b"ok\n\n"
            info.shutdown()
            # The read side is shut: the connection ends, and nothing arrives in plaintext.
            with trio.fail_after(NETWORK_TIMEOUT):
                assert await raw.receive_some() == b""
            with pytest.raises(ClientError):
                await c.ping()
            await raw.aclose()
    assert info.stats.connections_closed_at_stop == 0
    assert [s.values[0] for s in await info.store.query("late")] == [2.0]


async def test_tls_over_a_stream_without_a_socket(nursery: trio.Nursery, pki: Pki) -> None:
    """A memory stream (no socket to hand to the ssl module) gets trio's SSLStream."""
    handler = ConnectionHandler(MetricStore(), tls=TlsServer(pki.settings()))
    server_side, client_side = trio.testing.memory_stream_pair()
    nursery.start_soon(handler.handle, server_side)
    client = trio.SSLStream(client_side, pki.client_context(), server_hostname="127.0.0.1")
    await client.send_all(b"put a 1 1\nget a\n")
    expected = b"ok\n\nok\na 1.0 1\n\n"
    assert await receive_exactly(client, len(expected)) == expected
    assert handler.stats.tls_handshakes == 1
    await client.aclose()


@pytest.mark.parametrize(
    ("version", "accepted"), [("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)]
)
def test_tls_1_2_is_the_lowest_version_served(pki: Pki, version: str, accepted: bool) -> None:
    with server_in_thread(ServerConfig(port=0, tls=pki.settings())) as info:
        # SECLEVEL=0 lets this client offer TLS 1.1 at all; the server must refuse it.
        completed = subprocess.run(
            [
                _openssl(),
                "s_client",
                "-connect",
                f"127.0.0.1:{info.port}",
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-CAfile",
                str(pki.ca_file),
            ],
            input=b"",
            capture_output=True,
            timeout=NETWORK_TIMEOUT,
            check=False,
        )
    assert (completed.returncode == 0) is accepted, completed.stderr[-300:]
    if not accepted:
        assert b"alert protocol version" in completed.stderr
        assert info.stats.tls_handshake_failures == 1
