"""Progress passed through unbuffered, on both revisions; a dropped stream reaches the upstream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
import pytest
from mcp import Client

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer, start_tool_server


def gateway_yaml(server: ToolServer) -> str:
    return f"""\
mcp:
  upstreams:
    counter: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: counter, prefix: ""}}]
"""


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_progress_reaches_the_sdk_client_as_it_happens(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer], mode: str
) -> None:
    server = tool_servers("counter")
    seen: list[tuple[float, float]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, time.monotonic()))

    async with gateway_factory(gateway_yaml(server)) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/tools", mode=mode) as client:
            result = await client.call_tool("count", {"n": 5}, progress_callback=on_progress)
            done = time.monotonic()
    assert result.content[0].text == "counted to 5"  # type: ignore[union-attr]
    assert [p for p, _ in seen] == [1, 2, 3, 4, 5]
    assert seen[0][1] < done - 0.1  # the first step arrived well before the answer: not buffered


async def test_a_dropped_stream_cancels_the_upstream_call(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    server = tool_servers("counter")
    body = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {
            "name": "count_forever",
            "arguments": {},
            "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}, "progressToken": "p1"},
        },
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    headers.update(mcp.request_headers(body, mcp.MODERN))
    async with gateway_factory(gateway_yaml(server)) as gw:
        async with aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            async with session.post(url, data=json.dumps(body), headers=headers) as response:
                line = b""
                while not line.startswith(b"data:"):
                    line = await asyncio.wait_for(response.content.readline(), 10)
                first = json.loads(line[5:])
                assert first["method"] == "notifications/progress"
                assert first["params"]["progressToken"] == "p1"  # the client's own token, not the gateway's
        for _ in range(100):  # bounded wait for the upstream to notice
            if any(s["method"] == "cancelled" for s in server.seen()):
                break
            await asyncio.sleep(0.1)
    assert any(s["method"] == "cancelled" for s in server.seen())


async def test_notifications_cancelled_from_a_2025_11_25_client_reaches_the_upstream(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    server = start_tool_server("cancels")  # its own server: the cancellation record must be this test's
    accept = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": {"name": "w", "version": "1"}},
    }  # fmt: skip
    try:
        async with gateway_factory(gateway_yaml(server)) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            async with session.post(url, data=json.dumps(init), headers=accept) as response:
                legacy = {**accept, mcp.HEADER_SESSION: response.headers[mcp.HEADER_SESSION]}
            call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "count_forever"}}

            async def post_call() -> int:
                async with session.post(url, data=json.dumps(call), headers=legacy) as response:
                    await response.read()
                    return response.status

            pending = asyncio.ensure_future(post_call())
            for _ in range(100):  # bounded: until the upstream runs the tool
                if any(s["method"] == "tools/call" for s in server.seen()):
                    break
                await asyncio.sleep(0.1)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
            async with session.post(url, data=json.dumps(cancel), headers=legacy) as response:
                assert response.status == 202
            await asyncio.wait_for(pending, 10)  # the POST ends instead of waiting forever
            for _ in range(100):
                if any(s["method"] == "cancelled" for s in server.seen()):
                    break
                await asyncio.sleep(0.1)
        assert any(s["method"] == "cancelled" for s in server.seen())
    finally:
        server.stop()
