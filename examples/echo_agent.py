"""A tiny agent that speaks the generic HTTP agent protocol (gateway/adapters/http.py).

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
    words = f"echo: {_last_text(body)}".split(" ")  # before the response starts: a bad body is still a 400
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-store"})
    await response.prepare(request)
    for word in words:
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


@web.middleware
async def malformed_is_400(request: web.Request, handler: Any) -> web.StreamResponse:
    """A body that is not the protocol's JSON is the caller's mistake: 400, not a 500 and a traceback."""
    try:
        response: web.StreamResponse = await handler(request)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise web.HTTPBadRequest(text=f"malformed request: {type(exc).__name__}") from None
    return response


def build_app() -> web.Application:
    app = web.Application(middlewares=[malformed_is_400])
    app.router.add_post("/invoke", invoke)
    app.router.add_post("/stream", stream)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    try:
        web.run_app(build_app(), host=args.host, port=args.port, print=lambda _: None)
    except OSError as exc:  # a busy port: one line, like the gateway's own
        raise SystemExit(f"echo agent: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None


if __name__ == "__main__":
    main()
