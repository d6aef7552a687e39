"""The drain deadline on its own: which scope answers, and what it leaves alone."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from gateway.model import Unavailable
from gateway.server.drain import Drain
from tests.conftest import GatewayFactory, Starter


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


async def test_stopping_answers_a_call_that_cancels_on_disconnect(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    arrived, released = asyncio.Event(), asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await released.wait()  # until the test ends, so the agent's own shutdown is quick
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/invoke", hang)
    url = await serve_app(app)
    text = (
        "listeners:\n  http: {address: '127.0.0.1:0', cancel_on_disconnect: true}\n  grpc: null\n"
        f"agents:\n  slow: {{kind: http, endpoint: '{url}'}}\nserver: {{drain_timeout: 0.5s}}\n"
    )
    factory = gateway_factory(text)
    gw = await factory.__aenter__()
    try:
        async with aiohttp.ClientSession() as session:
            call = asyncio.create_task(
                session.post(
                    f"http://{gw.addresses.http}/v1/agents/slow/invoke", json={"messages": [{"parts": [{"text": "x"}]}]}
                )
            )
            await asyncio.wait_for(arrived.wait(), 10)
            stopping = asyncio.create_task(factory.__aexit__(None, None, None))
            response = await asyncio.wait_for(call, 10)
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "UNAVAILABLE"
            await asyncio.wait_for(stopping, 10)
    finally:
        released.set()
        if not gw.drain.expired:
            await factory.__aexit__(None, None, None)
