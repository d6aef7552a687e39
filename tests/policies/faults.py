"""A fault-injecting agent on loopback: each request takes the next scripted behaviour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

OK = "ok"
FAIL_503 = "503"
FAIL_500 = "500"
RETRY_AFTER = "503-retry-after"
HANG = "hang"
RESET = "reset"
MALFORMED = "malformed"
CUT_STREAM = "cut-stream"
SLOW = "slow"


@dataclass
class FaultyAgent:
    """``script`` is consumed one behaviour per request; when it runs out, ``then`` applies."""

    script: list[str] = field(default_factory=list)
    then: str = OK
    hits: int = 0
    idempotency_keys: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def _next(self) -> str:
        self.hits += 1
        return self.script.pop(0) if self.script else self.then

    @staticmethod
    def _reply(text: str) -> web.Response:
        return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": text}]}]})

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        behaviour = self._next()
        if behaviour == FAIL_503:
            return web.json_response({"error": "overloaded"}, status=503)
        if behaviour == FAIL_500:
            return web.json_response({"error": "bug"}, status=500)
        if behaviour == RETRY_AFTER:
            return web.json_response({"error": "later"}, status=503, headers={"retry-after": "1"})
        if behaviour == HANG:  # until the gateway gives up and hangs up (bounded: 30 s)
            for _ in range(600):
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.05)
        if behaviour == SLOW:
            await self.release.wait()
        if behaviour == RESET:
            assert request.transport is not None
            request.transport.abort()  # connection reset, no response
            return web.Response()
        if behaviour == MALFORMED:
            return web.Response(text='{"messages": [', content_type="application/json")
        return self._reply(f"answer #{self.hits}")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        behaviour = self._next()
        if behaviour == FAIL_503:
            return web.json_response({"error": "overloaded"}, status=503)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for word in ("one", "two", "three"):
            event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": word + " "}]}}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            if behaviour == CUT_STREAM and word == "two":
                assert request.transport is not None
                request.transport.abort()
                return response
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/invoke", self.invoke)
        app.router.add_post("/stream", self.stream)
        return app


def scripted(*behaviours: str, then: str = OK) -> FaultyAgent:
    return FaultyAgent(list(behaviours), then)


Factory = Callable[..., FaultyAgent]
