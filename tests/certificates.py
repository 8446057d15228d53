"""Real certificates for the TLS tests, made with trustme, written to PEM files."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import attrs
import trustme

from trio_metrics import TlsSettings


@attrs.frozen
class Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""

    directory: Path
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def client_cert_file(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.directory / "client-key.pem"

    def settings(self, *, mutual: bool = False, handshake_timeout: float = 10.0) -> TlsSettings:
        """The server's TLS settings; ``mutual``: require client certificates of this CA."""
        return TlsSettings(
            self.cert_file,
            self.key_file,
            client_ca=self.ca_file if mutual else None,
            handshake_timeout=handshake_timeout,
        )

    def client_context(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        """A client context that trusts this CA (and presents the client certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_certificate:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context


def make_pki(directory: Path, *, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """Write a fresh CA and certificates into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    pki = Pki(directory, ca, ca.issue_cert(*server_names), ca.issue_cert("client@example.org"))
    ca.cert_pem.write_to_path(str(pki.ca_file))
    pki.server.cert_chain_pems[0].write_to_path(str(pki.cert_file))
    for pem in pki.server.cert_chain_pems[1:]:
        pem.write_to_path(str(pki.cert_file), append=True)
    pki.server.private_key_pem.write_to_path(str(pki.key_file))
    pki.client.cert_chain_pems[0].write_to_path(str(pki.client_cert_file))
    pki.client.private_key_pem.write_to_path(str(pki.client_key_file))
    return pki


def write_expired_server_cert(pki: Pki) -> None:
    """Replace the server certificate with one of the same CA that expired yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    expired = pki.ca.issue_cert(
        "127.0.0.1",
        "localhost",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    expired.cert_chain_pems[0].write_to_path(str(pki.cert_file))
    expired.private_key_pem.write_to_path(str(pki.key_file))
