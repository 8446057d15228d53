"""The client verbs' TLS and token flags, and the one place they connect: :func:`connect`."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path
from typing import Final

from ..client import Client, ClientError
from ..client._tls import context_from_files
from ..transport import TokenFileError, is_valid_token, load_tokens

__all__ = ["TOKEN_VARIABLE", "add_tls_flags", "connect"]

#: The environment variable a token may come from (never the command line,
#: where every user of the machine can read it).
TOKEN_VARIABLE: Final = "TRIO_METRICS_TOKEN"


def add_tls_flags(connection: argparse.ArgumentParser) -> None:
    """Add ``--tls``, ``--tls-ca``, ``--tls-cert`` and ``--tls-key`` to the shared flags."""
    connection.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS, checking the server's certificate against the system's CAs (or --tls-ca)",
    )
    connection.add_argument(
        "--tls-ca", metavar="FILE", default=None, help="trust these PEM CAs (implies --tls)"
    )
    connection.add_argument(
        "--tls-cert",
        metavar="FILE",
        default=None,
        help="present this PEM client certificate, for a server that requires one (implies --tls)",
    )
    connection.add_argument(
        "--tls-key", metavar="FILE", default=None, help="the PEM private key of --tls-cert"
    )
    connection.add_argument(
        "--token-file",
        metavar="FILE",
        default=None,
        help=f"authenticate with the token in FILE (its first token; mode 600);"
        f" else from ${TOKEN_VARIABLE} if set",
    )


def token(args: argparse.Namespace) -> str | None:
    """The token to authenticate with: ``--token-file``'s, else the environment's, else none.

    Raises :class:`ClientError` for a file that cannot be used or a bad token.
    """
    if args.token_file is not None:
        try:
            return next(iter(load_tokens(Path(args.token_file)).values()))
        except TokenFileError as exc:
            raise ClientError(str(exc)) from None
    value = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not value:
        return None
    if not is_valid_token(value):
        raise ClientError(
            f"${TOKEN_VARIABLE} is not a token: at least 16 of A-Z a-z 0-9 . _ ~ + / = -"
        )
    return value


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client context the flags ask for, or ``None`` for plaintext.

    Raises :class:`ClientError` for a file that cannot be read or used.
    """
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    try:
        return context_from_files(args.tls_ca, args.tls_cert, args.tls_key)
    except ValueError as exc:
        raise ClientError(f"--tls-key needs --tls-cert: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise ClientError(f"cannot use the TLS files: {exc.strerror or exc}{where}") from None


def connect(args: argparse.Namespace) -> Client:
    """A :class:`Client` to the server the parsed connection flags name."""
    return Client(
        args.host, args.port, timeout=args.timeout, ssl=tls_context(args), token=token(args)
    )
