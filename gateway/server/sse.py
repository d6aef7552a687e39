"""Server-sent event writing with keep-alives (the MCP front; the other streams go through server/relay.py).

An idle stream (a slow agent thinking, a background run followed before its
next event) sends an SSE comment line, ``: keep-alive``, after ``keepalive``
seconds without a frame, so proxies and load balancers in between keep it
open. A keep-alive that cannot be written means the client is gone: the
writer then cancels the task serving the stream (``on_gone``), which ends a
follow at once and, for a foreground call, abandons the upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

KEEPALIVE_FRAME = b": keep-alive\n\n"
# The headers of every event stream: never cached, never buffered by a proxy in between.
SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no"}


class SseWriter:
    """Frames to one prepared ``text/event-stream`` response, with keep-alives while idle."""

    def __init__(
        self, response: web.StreamResponse, keepalive: float | None, on_gone: Callable[[], object] | None = None
    ) -> None:
        self.response = response
        self.keepalive = keepalive
        self.on_gone = on_gone
        self.gone = False
        self._lock = asyncio.Lock()
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseWriter:
        if self.keepalive is not None:
            self._task = asyncio.create_task(self._keep_alive(), name="agw-sse-keepalive")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self.response.write(frame)
            self._last = time.monotonic()

    async def _keep_alive(self) -> None:
        assert self.keepalive is not None
        while True:
            wait = self._last + self.keepalive - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                async with self._lock:
                    await self.response.write(KEEPALIVE_FRAME)
                    self._last = time.monotonic()
            except (ConnectionError, RuntimeError):
                self.gone = True
                if self.on_gone is not None:
                    self.on_gone()
                return


def current_task_canceller() -> Callable[[], object]:
    """A callback cancelling the task that asked for it (the handler serving a stream)."""
    task = asyncio.current_task()
    assert task is not None
    return task.cancel
