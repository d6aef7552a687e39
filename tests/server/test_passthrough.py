"""Passthrough: any method/path/body to a named agent, streamed both ways, context injected."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from tests.conftest import GatewayFactory, Starter

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def upstream_app(gate: asyncio.Event, seen: dict[str, object]) -> web.Application:
    async def echo_request(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        seen["headers"] = dict(request.headers)
        return web.json_response({
            "method": request.method, "path": request.path, "query": request.query_string,
            "size": size, "sha256": digest.hexdigest(),
        }, status=201, headers={"x-upstream": "yes", "connection": "keep-alive"})

    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        # The second chunk is only sent once the client has received the first:
        # a buffering proxy would deadlock here and time out.
        await asyncio.wait_for(gate.wait(), 5)
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    async def not_found(request: web.Request) -> web.Response:
        return web.json_response({"detail": "nope"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/api/echo/{tail:.*}", echo_request)
    app.router.add_get("/api/sse", sse)
    app.router.add_get("/api/missing", not_found)
    return app


async def test_request_body_streams_and_headers_are_injected(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    seen: dict[str, object] = {}
    url = await serve_app(upstream_app(asyncio.Event(), seen))
    payload = b"x" * (3 * 1024 * 1024 + 17)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    async with gateway_factory(f"agents:\n  lg:\n    kind: http\n    endpoint: {url}\n") as gw, \
            aiohttp.ClientSession() as session, session.put(
        f"http://{gw.addresses.http}/v1/proxy/lg/api/echo/a/b?x=1&y=2",
        data=chunks(),
        headers={"traceparent": TRACEPARENT, "x-session-id": "s-5", "x-custom": "kept"},
    ) as response:
        assert response.status == 201
        assert response.headers["x-upstream"] == "yes"
        assert "x-request-id" in response.headers
        body = await response.json()
    assert body == {"method": "PUT", "path": "/api/echo/a/b", "query": "x=1&y=2", "size": len(payload),
                    "sha256": hashlib.sha256(payload).hexdigest()}
    headers = seen["headers"]
    assert isinstance(headers, dict)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["x-custom"] == "kept"
    assert lowered["x-session-id"] == "s-5"
    assert lowered["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert lowered["traceparent"] != TRACEPARENT
    assert lowered["x-request-id"] == response.headers["x-request-id"]


async def test_response_streams_without_buffering(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    gate = asyncio.Event()
    url = await serve_app(upstream_app(gate, {}))
    async with gateway_factory(f"agents:\n  lg:\n    kind: http\n    endpoint: {url}\n") as gw, \
            aiohttp.ClientSession() as session:
        async with session.get(f"http://{gw.addresses.http}/v1/proxy/lg/api/sse") as response:
            assert response.status == 200
            first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 3)
            assert first == b"data: first\n\n"
            gate.set()
            rest = await asyncio.wait_for(response.content.read(), 3)
    assert rest == b"data: second\n\n"


async def test_upstream_status_passes_through_and_errors_are_structured(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    url = await serve_app(upstream_app(asyncio.Event(), {}))
    yaml_text = (f"agents:\n  lg:\n    kind: http\n    endpoint: {url}\n"
                 "  down:\n    kind: http\n    endpoint: http://127.0.0.1:1\n"
                 "  rpc:\n    kind: grpc\n    endpoint: 127.0.0.1:1\n")
    async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/v1/proxy"
        async with session.get(f"{base}/lg/api/missing") as response:
            assert response.status == 404
            assert await response.json() == {"detail": "nope"}
        async with session.get(f"{base}/down/anything") as response:
            assert response.status == 503
            error = (await response.json())["error"]
            assert (error["code"], error["agent"]) == ("UNAVAILABLE", "down")
        async with session.get(f"{base}/ghost/x") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "NOT_FOUND"
        async with session.get(f"{base}/rpc/x") as response:
            assert response.status == 400
            assert "not an HTTP agent" in json.dumps(await response.json())
