"""The C allocator's settings for the server's process (glibc only).

A request's large buffers (a decompressed remote write body, a batch's
columns) are allocated and freed again on every request. With glibc's
defaults, memory freed at the top of the heap is handed back to the kernel
once more than about twice the largest recent buffer is free, and buffers
over 128 KiB may be mapped and unmapped on their own: the next request then
faults every page in again (measured: about 170 page faults per 2,000-sample
remote write; 8 with the settings below, and 10-30% less server CPU a
sample). So the server keeps up to :data:`TRIM_BYTES` of freed heap for
reuse, and maps only buffers of :data:`MMAP_BYTES` and more on their own.

Settings the user gives glibc (``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_``) are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Final

__all__ = ["MMAP_BYTES", "TRIM_BYTES", "keep_freed_memory"]

#: Freed memory at the top of the heap kept for reuse, not returned.
TRIM_BYTES: Final = 8 << 20
#: Buffers at least this large are mapped on their own (and unmapped when freed).
MMAP_BYTES: Final = 2 << 20

# glibc's <malloc.h>.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_USER_SETTINGS: Final = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> str | None:
    """Set glibc's trim and mmap thresholds for this process; say what was done.

    Returns None, changing nothing, where the C library is not glibc or the
    environment already holds glibc settings of the user's.
    """
    if any(name in os.environ for name in _USER_SETTINGS):
        return None
    if platform.libc_ver()[0] != "glibc":
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)):
        return None
    return (
        f"malloc keeps up to {TRIM_BYTES >> 20} MiB of freed memory for reuse and "
        f"maps buffers of {MMAP_BYTES >> 20} MiB and more on their own"
    )
