"""How the command speaks: its name, and one-line failures on stderr."""

from __future__ import annotations

import os
import sys
from typing import Final

__all__ = ["PROG", "fail", "silence_stdout"]

#: The command's name in messages.
PROG: Final = "trio-metrics"


def fail(message: str) -> None:
    """Print ``trio-metrics: error: MESSAGE`` to stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the exit's flush of a broken pipe stays quiet."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
