"""A tiny agent that speaks the generic HTTP agent protocol (adapters/http.py).

It echoes the last user message and, as a data part, the context headers it
received, so you can see what the gateway injected on the hop:

    python -m examples.echo_agent --port 9101
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

CONTEXT_HEADERS = (
    "traceparent",
    "tracestate",
    "baggage",
    "x-session-id",
    "x-thread-id",
    "x-user-id",
    "x-request-id",
    "x-timeout-ms",
)


def _last_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        texts = [p["text"] for p in message.get("parts", []) if "text" in p]
        if texts:
            return "".join(texts)
    return ""


def _seen(request: web.Request) -> dict[str, str]:
    return {h: request.headers[h] for h in CONTEXT_HEADERS if h in request.headers}


async def invoke(request: web.Request) -> web.Response:
    body = await request.json()
    params = body.get("options", {}).get("params", {})
    if delay := params.get("delay"):
        await asyncio.sleep(float(delay))
    reply = {
        "role": "ROLE_AGENT",
        "parts": [{"text": f"echo: {_last_text(body)}"}, {"data": {"headers": _seen(request)}}],
    }
    return web.json_response({"messages": [reply]})


async def stream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    params = body.get("options", {}).get("params", {})
    delay = float(params.get("delay", 0))
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-store"})
    await response.prepare(request)
    for word in f"echo: {_last_text(body)}".split(" "):
        event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": word + " "}]}}
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
        if delay:
            await asyncio.sleep(delay)
    headers_event = {"type": "status", "data": {"headers": _seen(request)}}
    await response.write(f"data: {json.dumps(headers_event)}\n\n".encode())
    await response.write_eof()
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/invoke", invoke)
    app.router.add_post("/stream", stream)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    web.run_app(build_app(), host=args.host, port=args.port, print=lambda _: None)


if __name__ == "__main__":
    main()
