"""A stdio MCP server the gateway launches, calls through the chain, and restarts when it crashes."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import TOOL_SERVER


def gateway_yaml() -> str:
    return f"""\
mcp:
  upstreams:
    local:
      command: {sys.executable}
      args: [{TOOL_SERVER}, local, --stdio]
      restart_backoff: 50ms
  virtual_servers:
    tools:
      upstreams: [{{upstream: local}}]
"""


async def call(session: aiohttp.ClientSession, url: str, method: str, **params: Any) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {**params, "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}},
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    headers.update(mcp.request_headers(body, mcp.MODERN))
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        answer: dict[str, Any] = await response.json()
        return answer


async def test_stdio_server_is_launched_called_and_restarted_after_a_crash(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(gateway_yaml()) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        listed = await call(session, url, "tools/list")
        assert "local_add" in [t["name"] for t in listed["result"]["tools"]]
        added = await call(session, url, "tools/call", name="local_add", arguments={"a": 20, "b": 22})
        assert added["result"]["content"][0]["text"] == "42"
        first_pid = int((await call(session, url, "tools/call", name="local_pid"))["result"]["content"][0]["text"])
        crashed = await call(session, url, "tools/call", name="local_crash")
        assert crashed["error"]["data"]["code"] == "UNAVAILABLE"
        client = gw.federation.upstreams["local"].client if gw.federation else None
        assert client is not None
        answer: dict[str, Any] = {}
        for _ in range(50):  # the restart waits its backoff; bounded
            answer = await call(session, url, "tools/call", name="local_pid")
            if "result" in answer:
                break
            await asyncio.sleep(0.1)
        assert int(answer["result"]["content"][0]["text"]) != first_pid
        assert getattr(client, "starts", 0) == 2


async def test_stdio_progress_and_list_changes_reach_the_client(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(gateway_yaml()) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        body = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "local_count",
                "arguments": {"n": 3},
                "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}, "progressToken": "t"},
            },
        }
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        headers.update(mcp.request_headers(body, mcp.MODERN))
        async with session.post(url, data=json.dumps(body), headers=headers) as response:
            frames = [
                json.loads(line[5:]) for line in (await response.read()).splitlines() if line.startswith(b"data:")
            ]
        assert [f["params"]["progress"] for f in frames if f.get("method") == "notifications/progress"] == [1, 2, 3]
        assert {f["params"]["progressToken"] for f in frames if f.get("method")} == {"t"}
        assert frames[-1]["result"]["content"][0]["text"] == "counted to 3"
        # A list change over stdio (on 2025-11-25 a server notifies on its one channel) is passed on.
        listen = {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "subscriptions/listen",
            "params": {
                "notifications": {"toolsListChanged": True},
                "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}},
            },
        }
        listen_headers = {**headers, **mcp.request_headers(listen, mcp.MODERN)}
        listen_headers.pop(mcp.HEADER_NAME, None)
        async with session.post(url, data=json.dumps(listen), headers=listen_headers) as stream:
            await asyncio.wait_for(stream.content.readline(), 10)  # the acknowledgement
            assert (await call(session, url, "tools/call", name="local_grow"))["result"]["content"][0]["text"] == "grew"
            note: dict[str, Any] = {}
            while note.get("method") != "notifications/tools/list_changed":
                line = await asyncio.wait_for(stream.content.readline(), 10)
                if line.startswith(b"data:"):
                    note = json.loads(line[5:])
        assert note["params"]["_meta"] == {mcp.META_SUBSCRIPTION: 4}
