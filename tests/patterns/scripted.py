"""Scripted agents on one real HTTP server: each path segment is an agent with a behaviour."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def _input(body: dict[str, Any]) -> tuple[str, Any]:
    parts = body["messages"][-1]["parts"]
    text = "".join(p.get("text", "") for p in parts)
    data = next((p["data"] for p in parts if "data" in p), None)
    return text, data


def _reply(text: str | None = None, data: Any = None) -> web.Response:
    parts: list[dict[str, Any]] = []
    if text is not None:
        parts.append({"text": text})
    if data is not None:
        parts.append({"data": data})
    return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": parts}]})


@dataclass
class ScriptedAgents:
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    # The headers of each call, in the same order as ``calls``.
    headers: list[dict[str, str]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    def names(self, name: str) -> list[str]:
        return [c[0] for c in self.calls if c[0] == name]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["agent"]
        body = await request.json()
        text, data = _input(body)
        self.calls.append((name, text, data))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if name == "hang":
            # Answers only after 10 s: long past any deadline a test sets.
            for _ in range(500):
                if request.transport is None or request.transport.is_closing():
                    self.cancelled.append(name)
                    break
                await asyncio.sleep(0.02)
            return _reply("hung")
        if name.startswith("self-manager"):
            # Delegates to its own workflow (named after it) twice per round, forever.
            if name.endswith("-slow"):
                await asyncio.sleep(0.2)
            worker = data["workers"][0]["name"]
            fanout = 1 if name.startswith("self-manager-chain") else 2
            return _reply(None, {"delegate": [{"worker": worker, "input": "again"}] * fanout})
        if name in ("flip", "improving"):
            # flip: fails every other call (first fails); improving: a draft, then the final text.
            attempt = len(self.names(name))
            if name == "flip" and attempt % 2 == 1:
                return web.json_response({"error": "flipped"}, status=503)
            return _reply(f"{'draft' if attempt == 1 else 'final'}: {text}" if name == "improving" else text)
        if name == "upper":
            return _reply(text.upper())
        if name == "count":
            return _reply(f"{len(text)} chars", {"length": len(text)})
        if name == "fail":
            return web.json_response({"error": "down"}, status=503)
        if name == "reject":
            return web.json_response({"error": "bad input"}, status=400)
        if name.startswith("slow"):
            delay = int(name.removeprefix("slow")) / 10
            deadline = asyncio.get_running_loop().time() + delay
            while asyncio.get_running_loop().time() < deadline:
                # aiohttp does not cancel handlers when the caller hangs up: watch the connection.
                if request.transport is None or request.transport.is_closing():
                    self.cancelled.append(name)
                    return _reply("cancelled")
                await asyncio.sleep(0.02)
            self.finished.append(name)
            return _reply(f"{name} done", {name: delay})
        if name in ("json-a", "json-b"):
            return _reply(None, {name[-1]: 1, "shared": name})
        if name == "undo":
            return _reply(f"undid {text}")
        if name == "manager":
            brief = data
            if brief["round"] == 0:
                return _reply(None, {"delegate": [{"worker": "upper", "input": brief["task"]},
                                                  {"worker": "count", "input": brief["task"]}]})
            outputs = " | ".join(f"{r['worker']}={r.get('output', r.get('error'))}" for r in brief["results"])
            return _reply(json.dumps({"answer": f"summary: {outputs}"}))
        if name == "judge":
            output = str(data.get("output"))
            return _reply(None, {"pass": output.isupper(), "score": 1.0 if output.isupper() else 0.2,
                                 "reason": f"{data['criteria']}: {output[:20]}"})
        if name == "loop-manager":
            return _reply(None, {"delegate": [{"worker": "upper", "input": "again"}]})
        if name == "rogue-manager":
            return _reply(None, {"delegate": [{"worker": "ghost", "input": "x"}]} if data["round"] == 0
                          else {"answer": data["results"][0]["error"]})
        return _reply(f"{name}: {text}")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """The same behaviours as a stream: one ``message`` event carrying the reply."""
        reply = await self.handle(request)
        if reply.status >= 400:
            return reply
        assert reply.body is not None
        message = json.loads(bytes(reply.body))["messages"][0]  # type: ignore[arg-type]
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {json.dumps({'type': 'message', 'message': message})}\n\n".encode())
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{agent}/invoke", self.handle)
        app.router.add_post("/{agent}/stream", self.stream)
        return app


AGENT_NAMES = ("upper", "count", "fail", "reject", "slow1", "slow3", "slow5", "slow20", "json-a", "json-b",
               "undo", "manager", "loop-manager", "rogue-manager", "plain", "judge", "hang", "self-manager",
               "self-manager-chain", "self-manager-slow", "flip", "improving")


def agents_yaml(base_url: str) -> str:
    return "agents:\n" + "".join(
        f"  {name}:\n    kind: http\n    endpoint: {base_url}/{name}\n    description: the {name} agent\n"
        for name in AGENT_NAMES
    )
