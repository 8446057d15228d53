"""The HTTP side's errors, in a module of their own so that importing them loads no HTTP stack."""

from __future__ import annotations

__all__ = ["HttpListenError"]


class HttpListenError(OSError):
    """The HTTP server's address could not be bound (``errno`` as the cause's)."""
