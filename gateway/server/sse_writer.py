"""Server-sent event frames shared by every SSE front, and the MCP front's writer.

An idle stream sends an SSE comment line, ``: keep-alive``, after ``keepalive``
seconds without a frame, so proxies and load balancers in between keep it open.
The relayed streams (``/v1/stream``, run follows, A2A) get theirs from
:mod:`gateway.server.relay`; :class:`SseWriter` serves the MCP front's streams,
which interleave requests to the client with the answer. A keep-alive that
cannot be written marks the writer ``gone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

from aiohttp import web

KEEPALIVE_FRAME = b": keep-alive\n\n"
# The headers of every event stream: never cached, never buffered by a proxy in between.
SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no"}


class SseWriter:
    """Frames to one prepared ``text/event-stream`` response, with keep-alives while idle."""

    def __init__(self, response: web.StreamResponse, keepalive: float | None) -> None:
        self.response = response
        self.keepalive = keepalive
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
                return
