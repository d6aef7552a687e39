"""Fixtures for background runs: a slow streaming agent that records when its caller goes away."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.conftest import Starter


@dataclass
class SlowAgent:
    """An HTTP agent (gateway/adapters/http.py protocol) streaming ``count`` deltas ``interval`` apart,
    after an optional silent ``pause``; it records the streams whose caller disconnected."""

    url: str = ""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    completed: int = 0


def slow_agent_app(agent: SlowAgent) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        params = body.get("options", {}).get("params", {})
        count = int(params.get("count", 5))
        interval = float(params.get("interval", 0.02))
        pause = float(params.get("pause", 0))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        agent.started.set()
        try:
            if pause:
                # Silent, but keep probing the connection so a disconnect is seen at once.
                deadline = asyncio.get_running_loop().time() + pause
                while asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.02)
                    await response.write(b": thinking\n\n")
            for index in range(1, count + 1):
                event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": f"w{index} "}]}}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
                await asyncio.sleep(interval)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            agent.disconnected.set()
            raise
        agent.completed += 1
        return response

    async def invoke(request: web.Request) -> web.Response:
        body = await request.json()
        params = body.get("options", {}).get("params", {})
        agent.started.set()
        for _ in range(int(params.get("count", 5))):
            await asyncio.sleep(float(params.get("interval", 0.02)))
            if request.transport is None or request.transport.is_closing():
                agent.disconnected.set()
                raise ConnectionResetError("the caller went away")
        agent.completed += 1
        return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": "done"}]}]})

    app = web.Application()
    app.router.add_post("/stream", stream)
    app.router.add_post("/invoke", invoke)
    return app


@pytest.fixture
async def slow_agent(serve_app: Starter) -> SlowAgent:
    agent = SlowAgent()
    agent.url = await serve_app(slow_agent_app(agent))
    return agent
