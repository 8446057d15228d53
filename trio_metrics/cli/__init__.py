"""The ``trio-metrics`` command: ``serve``, ``put``, ``get`` and ``stats``."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
