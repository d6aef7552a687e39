"""Foreground calls whose caller went away: cancel them (``cancel_on_disconnect``).

aiohttp keeps running a handler whose client disconnected (so that a write
is not lost halfway); a listener with ``cancel_on_disconnect: true`` wants the
opposite for agent calls, which may run for minutes: the call is cancelled,
and the adapters cancel the upstream run the framework's own way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from gateway.model import Cancelled

T = TypeVar("T")

# How often an in-flight call looks at its caller's connection.
CHECK_INTERVAL = 0.25


def caller_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def unless_caller_leaves(gone: Callable[[], bool], call: Coroutine[Any, Any, T]) -> T:
    """Await ``call``; cancel it (and raise Cancelled) once ``gone()`` says the caller's connection closed."""
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=CHECK_INTERVAL)
            if done:
                return task.result()
            if gone():
                task.cancel()
                await asyncio.wait({task})
                raise Cancelled("the caller went away before the answer; the call was cancelled")
    finally:
        if not task.done():
            task.cancel()
