"""Background runs in tests: a slow scripted agent, and calling the runs API over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gateway.server.app import GatewayServer


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


def agents_yaml(echo_url: str, slow_url: str, extra: str = "") -> str:
    return f"""
agents:
  echo: {{kind: http, endpoint: "{echo_url}"}}
  slow: {{kind: http, endpoint: "{slow_url}"}}
workflows:
  pipeline:
    kind: sequential
    steps:
      - {{name: first, agent: echo}}
      - {{name: second, agent: slow}}
{extra}
"""


def body(agent: str, text: str = "hello world", session: str = "s-1", **params: Any) -> dict[str, Any]:
    return {
        "agent": agent,
        "messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}],
        "context": {"sessionId": session},
        "options": {"params": params},
    }


def base(server: GatewayServer) -> str:
    return f"http://{server.addresses.http}"


async def submit(http: aiohttp.ClientSession, server: GatewayServer, payload: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{base(server)}/v1/runs", json=payload) as response:
        data: dict[str, Any] = await response.json()
        assert response.status == 202, data
        assert response.headers["location"] == f"/v1/runs/{data['runId']}"
        return data


async def wait_status(
    http: aiohttp.ClientSession, server: GatewayServer, run_id: str, wanted: set[str], limit: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        async with http.get(f"{base(server)}/v1/runs/{run_id}") as response:
            assert response.status == 200
            run: dict[str, Any] = await response.json()
        if run["status"] in wanted or time.monotonic() > deadline:
            assert run["status"] in wanted, run
            return run
        await asyncio.sleep(0.02)


async def read_sse(
    response: aiohttp.ClientResponse, stop_after_events: int | None = None
) -> list[tuple[str, str | None, str]]:
    """(event name or ':' for a comment, id, data) per frame, until the stream ends (or enough events)."""
    frames: list[tuple[str, str | None, str]] = []
    name, ident, data = "message", None, []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            frames.append((":", None, line))
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            frames.append((name, ident, "\n".join(data)))
            name, ident, data = "message", None, []
            if stop_after_events is not None and sum(f[0] == "event" for f in frames) >= stop_after_events:
                break
    return frames
