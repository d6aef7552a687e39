"""The A2A front in tests: an agent that holds its turn until released, and its config."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

from aiohttp import web

HOLD_LIMIT = 20.0  # no test holds the agent longer; a forgotten release cannot hang the run


@dataclass
class HeldAgent:
    """An HTTP agent (gateway/adapters/http.py protocol) that answers once released: ``invoke``
    replies ``done: <text>``; ``stream`` sends ``part1 `` at once and ``part2`` once released.
    It records the texts it got and the calls whose caller went away."""

    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[str] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def _hold(self, request: web.Request) -> None:
        deadline = asyncio.get_running_loop().time() + HOLD_LIMIT
        while not self.release.is_set() and asyncio.get_running_loop().time() < deadline:
            if request.transport is None or request.transport.is_closing():
                self.disconnected.set()
                raise ConnectionResetError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 0.02)

    def app(self) -> web.Application:
        async def invoke(request: web.Request) -> web.Response:
            text = (await request.json())["messages"][-1]["parts"][0]["text"]
            self.seen.append(text)
            self.started.set()
            await self._hold(request)
            return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": f"done: {text}"}]}]})

        async def stream(request: web.Request) -> web.StreamResponse:
            text = (await request.json())["messages"][-1]["parts"][0]["text"]
            self.seen.append(text)
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            delta = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": "part1 "}]}}
            await response.write(f"data: {json.dumps(delta)}\n\n".encode())
            self.started.set()
            try:
                await self._hold(request)
            except ConnectionResetError:
                return response
            delta["message"]["parts"][0]["text"] = "part2"  # type: ignore[index]
            await response.write(f"data: {json.dumps(delta)}\n\n".encode())
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post("/invoke", invoke)
        app.router.add_post("/stream", stream)
        return app


def agents_yaml(url: str) -> str:
    return f"agents:\n  held: {{kind: http, endpoint: {url}}}\nruns: {{poll_interval: 50ms}}\n"
