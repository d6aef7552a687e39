"""An upstream's list change reaches the gateway's clients on both revisions, and the merged list is refetched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import start_tool_server

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def modern(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> tuple[str, dict[str, str]]:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**(params or {}), "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}},
    }
    return json.dumps(body), {**ACCEPT, **mcp.request_headers(body, mcp.MODERN)}


async def next_message(response: aiohttp.ClientResponse) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(response.content.readline(), 10)
        assert line, "the stream ended"
        if line.startswith(b"data:") and line[5:].strip():  # not a 2025-11-25 stream's priming event
            message: dict[str, Any] = json.loads(line[5:])
            return message


async def test_tools_list_changed_is_passed_on_and_refetched(gateway_factory: GatewayFactory) -> None:
    server = start_tool_server("grows")
    config = f"""\
mcp:
  upstreams:
    grows: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: grows, prefix: g}}]
"""
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": {"name": "w", "version": "1"}},
    }  # fmt: skip
    try:
        async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            async with session.post(url, data=modern("tools/list")[0], headers=modern("tools/list")[1]) as r:
                assert "g_grown" not in [t["name"] for t in (await r.json())["result"]["tools"]]
            async with session.post(url, data=json.dumps(init), headers=ACCEPT) as r:
                legacy = {**ACCEPT, mcp.HEADER_SESSION: r.headers[mcp.HEADER_SESSION], mcp.HEADER_VERSION: mcp.LEGACY}
            body, headers = modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, request_id=5)
            async with (
                session.post(url, data=body, headers=headers) as listen,
                session.get(url, headers={**legacy, "accept": "text/event-stream"}) as stream,
            ):
                assert (await next_message(listen))["method"] == "notifications/subscriptions/acknowledged"
                for _ in range(100):  # bounded: until the gateway follows the upstream's changes
                    if any(s["method"] == "subscriptions/listen" for s in server.seen()):
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # the upstream acknowledges its listen just after it logs it
                body, headers = modern("tools/call", {"name": "g_grow", "arguments": {}})
                async with session.post(url, data=body, headers=headers) as r:
                    assert (await r.json())["result"]["content"][0]["text"] == "grew"
                modern_note = await next_message(listen)
                legacy_note = await next_message(stream)
            assert modern_note == {
                "jsonrpc": "2.0",
                "method": "notifications/tools/list_changed",
                "params": {"_meta": {mcp.META_SUBSCRIPTION: 5}},
            }
            assert legacy_note["method"] == "notifications/tools/list_changed"
            async with session.post(url, data=modern("tools/list")[0], headers=modern("tools/list")[1]) as r:
                assert "g_grown" in [t["name"] for t in (await r.json())["result"]["tools"]]
    finally:
        server.stop()
