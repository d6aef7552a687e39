"""The event loop the gateway's processes run on: uvloop when installed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None (asyncio's default) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def settle_heap() -> None:
    """Once started: what start-up built (modules, config, descriptors; long-lived) leaves the
    garbage collector's generations, so its full collections under load scan only what calls made."""
    gc.collect()
    gc.freeze()
