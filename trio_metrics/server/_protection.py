"""Protected mode, and the one line that says what a server protects and what it does not.

A server that listens on an address other hosts can reach, with neither
tokens nor client certificates, lets anyone read and overwrite every
point. :func:`check_protected_mode` refuses that start unless the operator
said ``insecure_open``, as Redis' protected mode does.
"""

from __future__ import annotations

import ipaddress

from ._config import ServerConfig

__all__ = ["ProtectedModeError", "check_protected_mode", "describe_protection"]


class ProtectedModeError(Exception):
    """The server would listen on a non-loopback address with no authentication."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bound address, as ``getsockname`` gives it) is a loopback one."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _authenticates(config: ServerConfig) -> bool:
    return config.auth is not None or (config.tls is not None and config.tls.client_ca is not None)


def check_protected_mode(
    config: ServerConfig, hosts: list[str], *, literal_only: bool = False
) -> None:
    """Raise :exc:`ProtectedModeError` if ``hosts`` (the bound addresses) are open to others.

    Open means: one of them is not loopback, there are neither tokens nor
    client certificates, and ``config.insecure_open`` is not set. With
    ``literal_only``, a host that is not an IP address (a name, not yet
    resolved) is let through, to be checked once bound.
    """
    exposed = [
        host
        for host in hosts
        if not is_loopback(host) and not (literal_only and not _is_address(host))
    ]
    if not exposed or _authenticates(config) or config.insecure_open:
        return
    raise ProtectedModeError(
        f"refusing to listen on {', '.join(exposed)} without authentication: anyone who"
        " reaches it could read and overwrite every point. Either require tokens"
        " (--auth-token-file FILE, or client certificates with --tls-client-ca FILE),"
        " or listen on loopback only (--host 127.0.0.1),"
        " or say that an open server is what you want (--insecure-open)"
    )


def describe_protection(config: ServerConfig) -> str:
    """One line: what each listener protects (encryption, who may talk) and what it does not."""
    tls = config.tls
    auth = config.auth
    mutual = tls is not None and tls.client_ca is not None
    wire = "plaintext" if tls is None else ("mutual TLS" if mutual else "TLS")
    if auth is not None:
        main = f"{wire}, token required"
    elif mutual:
        main = f"{wire}, client certificate required"
    else:
        main = f"{wire}, open to anyone who reaches it"
    parts = [f"main port: {main}"]
    if config.graphite_port is not None:
        who = "client certificate required" if mutual else "open to anyone who reaches it"
        parts.append(f"Graphite: {wire}, {who}")
    if config.http_port is not None:
        if auth is not None:
            opened = "/healthz and /metrics" if auth.metrics_open else "/healthz"
            who = f"bearer token required but on {opened}"
        elif mutual:
            who = "client certificate required"
        else:
            who = "open to anyone who reaches it"
        parts.append(f"HTTP: {wire}, {who}")
    return "security: " + "; ".join(parts)
