"""A caller dropping a stream midway is a normal event: one debug line, no error, no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, Starter


async def _endless_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the gateway lets go of it: quietly
        for n in range(200):
            event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": f"chunk {n} "}]}}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            await asyncio.sleep(0.05)
    return response


def _request(path: str, payload: dict[str, object], extra: str = "") -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


STREAMS = {
    "sse": _request("/v1/agents/talker/stream", {"messages": [{"parts": [{"text": "go"}]}]}),
    "a2a": _request(
        "/a2a/talker",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "go"}]}},
        },
        "A2A-Version: 1.0\r\n",
    ),
}


@pytest.mark.parametrize("kind", list(STREAMS))
async def test_a_dropped_stream_is_one_debug_line(
    kind: str, gateway_factory: GatewayFactory, serve_app: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    app.router.add_post("/stream", _endless_stream)
    url = await serve_app(app)
    caplog.set_level(logging.DEBUG)
    async with gateway_factory(f"agents:\n  talker: {{kind: http, endpoint: '{url}'}}\n") as gw:
        host, _, port = (gw.addresses.http or "").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(STREAMS[kind])
        received = b""
        while received.count(b"chunk") < 2:  # the stream is flowing
            received += await asyncio.wait_for(reader.read(4096), 10)
        writer.close()  # the caller goes away mid-stream
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        for _ in range(100):
            if any("closed the connection" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)

    dropped = [r for r in caplog.records if "closed the connection" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in caplog.records]
    assert dropped[0].levelno == logging.DEBUG
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
