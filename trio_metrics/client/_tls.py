"""The clients' TLS: what ``ssl=`` may be, and a context from the CLI's files."""

from __future__ import annotations

import os
import ssl

__all__ = ["SslOption", "client_context", "context_from_files"]

#: What ``Client(..., ssl=)`` and ``open_client(..., ssl=)`` take.
SslOption = ssl.SSLContext | bool | None


def client_context(option: SslOption) -> ssl.SSLContext | None:
    """The context to connect with: ``True`` is the standard library's default one.

    ``None`` or ``False``: plaintext. Raises :exc:`TypeError` for anything
    else, so that a string (a file name given by mistake) is not taken as "yes".
    """
    if option is None or option is False:
        return None
    if option is True:
        return ssl.create_default_context()
    if isinstance(option, ssl.SSLContext):
        return option
    raise TypeError(f"ssl must be an ssl.SSLContext, True or None, not {option!r}")


def context_from_files(
    ca: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A default client context that trusts ``ca`` (else the system's CAs).

    With ``cert`` (and ``key``, if the key is not in the same file) it
    presents a client certificate, for a server that requires one.
    Raises :exc:`OSError` or :exc:`ssl.SSLError` for a missing or bad file.
    """
    context = ssl.create_default_context(cafile=None if ca is None else os.fspath(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    elif key is not None:
        raise ValueError("a client key needs its certificate")
    return context
