"""The drain deadline on its own: which scope answers, and what it leaves alone."""

from __future__ import annotations

import asyncio

import pytest

from gateway.model import Unavailable
from gateway.server.drain import Drain


async def test_a_call_still_running_at_the_deadline_raises_unavailable() -> None:
    drain = Drain()

    async def call() -> None:
        async with drain.scope():
            await asyncio.sleep(60)

    task = asyncio.create_task(call())
    await asyncio.sleep(0)
    drain.begin(0.05)
    with pytest.raises(Unavailable, match="shutting down"):
        await asyncio.wait_for(task, 5)
    assert drain.in_flight == 0


async def test_a_call_ending_in_time_is_untouched() -> None:
    drain = Drain()
    drain.begin(0.2)
    async with drain.scope():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the deadline passes after the scope ended
    assert drain.expired


async def test_only_the_innermost_scope_answers_so_a_stream_can_write_its_error() -> None:
    drain = Drain()
    seen: list[str] = []

    async def stream() -> str:
        async with drain.scope():  # the request's
            try:
                async with drain.scope():  # the stream's events
                    await asyncio.sleep(60)
            except Unavailable:
                seen.append("inner")
                await asyncio.sleep(0.01)  # writing the error frame still works
            return "error frame written"

    task = asyncio.create_task(stream())
    await asyncio.sleep(0)
    drain.expire()
    assert await asyncio.wait_for(task, 5) == "error frame written"
    assert seen == ["inner"]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    drain = Drain()

    async def call() -> None:
        async with drain.scope():
            await asyncio.sleep(60)

    task = asyncio.create_task(call())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_scope_opened_after_the_deadline_answers_at_once() -> None:
    drain = Drain()
    drain.expire()
    with pytest.raises(Unavailable):
        async with drain.scope():
            await asyncio.sleep(60)
