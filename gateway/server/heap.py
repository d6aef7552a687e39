"""After a serving process has started: collect what starting left behind, keep what stays out
of later collections, and hand free heap pages back to the kernel."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable


def settle_heap() -> None:
    """Once per process, when its listeners are up: loading the config and building the
    runtime leave garbage cycles; what survives them lives as long as the process, so it is
    frozen (never scanned again by the cyclic collector); then glibc returns the freed pages."""
    gc.collect()
    gc.freeze()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (the process's own symbols hold libc's); None without it (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim
