"""Bounds on a relayed stream: an idle limit between events and an overall limit.

Both are off unless configured, because long-running agent runs are legitimate;
upstream streams are untrusted, so a listener can refuse to relay one forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TypeVar

from gateway.model import UpstreamTimeout

# Gateway events, or the frames of a stream built on them (an A2A task's).
T = TypeVar("T")


class StreamLimitReached(UpstreamTimeout):
    """A listener stopped relaying a stream that went on too long or too quietly."""


async def bounded(
    events: AsyncIterator[T],
    agent: str,
    idle: float | None,
    total: float | None,
    overdue: str = "",
    error: type[UpstreamTimeout] = UpstreamTimeout,
) -> AsyncIterator[T]:
    if idle is None and total is None:
        async for event in events:
            yield event
        return
    iterator = aiter(events)
    ends = time.monotonic() + total if total is not None else None
    try:
        while True:
            wait = idle
            if ends is not None:
                left = ends - time.monotonic()
                wait = left if wait is None else min(wait, left)
            try:
                async with asyncio.timeout(max(0.0, wait) if wait is not None else None):
                    event = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if ends is not None and time.monotonic() >= ends:
                    raise error(overdue or f"the stream ran longer than {total:g}s", agent=agent) from None
                raise error(f"no event from the agent for {idle:g}s", agent=agent) from None
            yield event
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
