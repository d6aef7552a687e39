"""The MCP front on the wire, as the two revisions' transport chapters say (raw HTTP, no SDK smoothing)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer

META = {
    mcp.META_VERSION: mcp.MODERN,
    mcp.META_CLIENT_INFO: {"name": "wire-test", "version": "1"},
    mcp.META_CLIENT_CAPABILITIES: {},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def gateway_yaml(math: ToolServer, echo_url: str = "http://127.0.0.1:1") -> str:
    return f"""\
agents:
  echo:
    kind: http
    endpoint: {echo_url}
mcp:
  upstreams:
    math: {{url: {math.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
      agents: [echo]
"""


@pytest.fixture
def math(tool_servers: Callable[[str], ToolServer]) -> ToolServer:
    return tool_servers("math")


def modern(
    method: str, params: dict[str, Any] | None = None, request_id: int = 1
) -> tuple[dict[str, Any], dict[str, str]]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": META}}
    return body, {**ACCEPT, **mcp.request_headers(body, mcp.MODERN)}


async def post(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, Any]:
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        text = await response.text()
        return response.status, response.headers, json.loads(text) if text else None


async def test_modern_requests_are_checked_against_their_headers(
    gateway_factory: GatewayFactory, math: ToolServer
) -> None:
    async with gateway_factory(gateway_yaml(math)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        body, headers = modern("tools/call", {"name": "math_add", "arguments": {"a": 1, "b": 2}})
        status, response_headers, answer = await post(session, url, body, headers)
        assert status == 200 and answer["result"]["resultType"] == "complete"
        assert mcp.HEADER_SESSION not in {k.lower() for k in response_headers}  # stateless: no session minted
        before = len(math.seen())
        # Mcp-Name says one tool, the body another: 400 HeaderMismatch, and nothing goes upstream.
        status, _, answer = await post(session, url, body, {**headers, "mcp-name": "math_shout"})
        assert (status, answer["error"]["code"], answer["id"]) == (400, mcp.HEADER_MISMATCH, 1)
        # Base64 sentinel form decodes before comparing.
        encoded = {**headers, "mcp-name": "=?base64?bWF0aF9hZGQ=?="}
        assert (await post(session, url, body, encoded))[0] == 200
        status, _, answer = await post(session, url, body, {**headers, "mcp-method": "tools/list"})
        assert (status, answer["error"]["code"]) == (400, mcp.HEADER_MISMATCH)
        missing = {k: v for k, v in headers.items() if k != mcp.HEADER_VERSION}
        assert (await post(session, url, body, missing))[0] == 400
        # clientCapabilities is required in every 2026-07-28 request's _meta.
        bare = {**body, "params": {**body["params"], "_meta": {mcp.META_VERSION: mcp.MODERN}}}
        status, _, answer = await post(session, url, bare, headers)
        assert (status, answer["error"]["code"]) == (400, mcp.INVALID_PARAMS)
        assert len([s for s in math.seen()[before:] if s["method"] == "tools/call"]) == 1


async def test_unsupported_version_lists_the_supported_ones(gateway_factory: GatewayFactory, math: ToolServer) -> None:
    async with gateway_factory(gateway_yaml(math)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        body, headers = modern("tools/list")
        body["params"]["_meta"] = {**META, mcp.META_VERSION: "1900-01-01"}
        status, _, answer = await post(session, url, body, {**headers, mcp.HEADER_VERSION: "1900-01-01"})
    assert (status, answer["error"]["code"]) == (400, mcp.UNSUPPORTED_VERSION)
    assert answer["error"]["data"] == {"supported": [mcp.MODERN, mcp.LEGACY], "requested": "1900-01-01"}


async def test_discover_unknown_method_and_listen(gateway_factory: GatewayFactory, math: ToolServer) -> None:
    async with gateway_factory(gateway_yaml(math)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        status, _, answer = await post(session, url, *modern("server/discover"))
        assert status == 200
        result = answer["result"]
        assert result["supportedVersions"] == [mcp.MODERN, mcp.LEGACY] and "tools" in result["capabilities"]
        assert (result["cacheScope"], result["resultType"]) == ("private", "complete")
        status, _, answer = await post(session, url, *modern("no/such"))
        assert (status, answer["error"]["code"]) == (404, mcp.METHOD_NOT_FOUND)
        body, headers = modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, request_id=7)
        async with session.post(url, data=json.dumps(body), headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            line = b""
            while not line.startswith(b"data:"):
                line = await asyncio.wait_for(response.content.readline(), 5)
            ack = json.loads(line[5:])
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"] == {"_meta": {mcp.META_SUBSCRIPTION: 7}, "notifications": {"toolsListChanged": True}}
        # GET and DELETE are 2025-11-25 mechanisms: a 2026-07-28 client gets 405.
        async with session.get(url, headers={mcp.HEADER_VERSION: mcp.MODERN}) as response:
            assert response.status == 405


async def test_legacy_session_lifecycle(gateway_factory: GatewayFactory, math: ToolServer) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": {"name": "w", "version": "1"}},
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with gateway_factory(gateway_yaml(math)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        status, headers, answer = await post(session, url, init, ACCEPT)
        assert status == 200 and answer["result"]["protocolVersion"] == mcp.LEGACY
        assert "resultType" not in answer["result"]
        sid = headers[mcp.HEADER_SESSION]
        legacy = {**ACCEPT, mcp.HEADER_SESSION: sid, mcp.HEADER_VERSION: mcp.LEGACY}
        assert (await post(session, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, legacy))[0] == 202
        status, _, answer = await post(session, url, listing, legacy)
        assert status == 200 and "math_add" in [t["name"] for t in answer["result"]["tools"]]
        assert (await post(session, url, listing, ACCEPT))[0] == 400  # no session id
        async with session.get(url, headers={**legacy, "accept": "text/event-stream", "last-event-id": "3"}) as stream:
            assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
            async with session.delete(url, headers=legacy) as response:
                assert response.status == 204
            # The stream opened with its priming event (an id, a retry, empty data); DELETE ended it.
            primed = await asyncio.wait_for(stream.content.read(), 5)
            assert re.fullmatch(rb"id: [0-9a-f]{12}-0\nretry: 1000\ndata: \n\n", primed), primed
        assert (await post(session, url, listing, legacy))[0] == 404  # the session is gone


async def test_agent_exposed_as_a_tool(gateway_factory: GatewayFactory, math: ToolServer, echo_url: str) -> None:
    async with gateway_factory(gateway_yaml(math, echo_url)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        _, _, listed = await post(session, url, *modern("tools/list"))
        assert "agent_echo" in [t["name"] for t in listed["result"]["tools"]]
        _, _, answer = await post(
            session, url, *modern("tools/call", {"name": "agent_echo", "arguments": {"message": "hi"}})
        )
    assert answer["result"]["isError"] is False
    assert answer["result"]["content"][0]["text"].startswith("echo: hi")


async def test_foreign_origin_is_refused(gateway_factory: GatewayFactory, math: ToolServer) -> None:
    async with gateway_factory(gateway_yaml(math)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        body, headers = modern("tools/list")
        status, _, _ = await post(session, url, body, {**headers, "origin": "http://evil.example"})
    assert status == 403


async def test_mcp_param_headers_are_checked_and_mirrored_upstream(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    server = tool_servers("params")
    async with gateway_factory(gateway_yaml(server)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        body, headers = modern(
            "tools/call", {"name": "math_region_query", "arguments": {"region": "Zürich", "query": "q"}}
        )
        status, _, answer = await post(session, url, body, {**headers, "mcp-param-region": "=?base64?WsO8cmljaA==?="})
        assert status == 200 and answer["result"]["content"][0]["text"] == "q in Zürich"
        before = len(server.seen())
        status, _, answer = await post(session, url, body, {**headers, "mcp-param-region": "Bern"})
        assert (status, answer["error"]["code"]) == (400, mcp.HEADER_MISMATCH)
        assert (await post(session, url, body, headers))[0] == 400  # the header is missing
        assert not [s for s in server.seen()[before:] if s["method"] == "tools/call"]
    call = next(s for s in server.seen() if s["method"] == "tools/call")
    # The gateway mirrored the parameter itself on its own call upstream (2026-07-28).
    assert call["headers"]["mcp-param-region"] == "=?base64?WsO8cmljaA==?="
