"""How the command speaks: its name, and one-line failures on stderr."""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["PROG", "fail"]

#: The command's name in messages.
PROG: Final = "trio-metrics"


def fail(message: str) -> None:
    """Print ``trio-metrics: error: MESSAGE`` to stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
