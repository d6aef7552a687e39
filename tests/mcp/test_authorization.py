"""The MCP authorization matrix, written as the attacks: default deny per identity, virtual server and tool,
client credentials never forwarded, per-identity rate limits on the MCP front like every other route."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import KEY_A, KEY_B, KEY_C, ToolServer, sha


def gateway_yaml(math: ToolServer, text: ToolServer) -> str:
    return f"""\
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: null
security:
  api_keys:
    - {{identity: alice, sha256: {sha(KEY_A)}}}
    - {{identity: bob, sha256: {sha(KEY_B)}}}
    - {{identity: carol, sha256: {sha(KEY_C)}}}
  authorization:
    - {{identities: [alice], mcp: ["tools/*"]}}
    - {{identities: [bob], mcp: ["tools/math_add"]}}
  rate_limits:
    - {{identities: [carol], rate: 0.001, burst: 2}}
mcp:
  upstreams:
    math: {{url: {math.url}}}
    text: {{url: {text.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}, {{upstream: text}}]
"""


def request(method: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {**(params or {}), "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}},
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    return json.dumps(body), {**headers, **mcp.request_headers(body, mcp.MODERN)}


@pytest.fixture
def servers(tool_servers: Callable[[str], ToolServer]) -> tuple[ToolServer, ToolServer]:
    return tool_servers("authz-math"), tool_servers("authz-text")


async def call(
    session: aiohttp.ClientSession, url: str, key: str | None, method: str, **params: Any
) -> tuple[int, Any]:
    body, headers = request(method, params)
    if key is not None:
        headers["x-api-key"] = key
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_bob_calling_a_tool_he_is_not_granted_never_reaches_the_upstream(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer]
) -> None:
    math, text = servers
    async with gateway_factory(gateway_yaml(math, text)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        status, answer = await call(session, url, KEY_B, "tools/call", name="text_shout", arguments={"text": "x"})
        assert status == 200 and answer["error"]["code"] == mcp.INVALID_PARAMS
        assert "unknown tool" in answer["error"]["message"]  # indistinguishable from a tool that does not exist
        _, listed = await call(session, url, KEY_B, "tools/list")
        assert [t["name"] for t in listed["result"]["tools"]] == ["math_add"]
        _, granted = await call(session, url, KEY_B, "tools/call", name="math_add", arguments={"a": 1, "b": 1})
        assert granted["result"]["content"][0]["text"] == "2"
        # Alice may call it; her key never travels upstream.
        _, allowed = await call(session, url, KEY_A, "tools/call", name="text_shout", arguments={"text": "x"})
        assert allowed["result"]["content"][0]["text"] == "X"
    shouts = [s for s in text.seen() if s["method"] == "tools/call"]
    assert len(shouts) == 1  # Alice's; Bob's attempt never arrived
    assert all(
        "x-api-key" not in s["headers"] and "authorization" not in s["headers"] for s in math.seen() + text.seen()
    )


async def test_no_credentials_no_grant_and_rate_limits(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer]
) -> None:
    math, text = servers
    async with gateway_factory(gateway_yaml(math, text)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        before = len(math.seen()) + len(text.seen())
        assert (await call(session, url, None, "tools/list"))[0] == 401
        # Carol is authenticated but granted nothing: the virtual server does not exist for her.
        assert (await call(session, url, KEY_C, "tools/call", name="math_add", arguments={"a": 1, "b": 1}))[0] == 404
        assert (await call(session, url, KEY_C, "tools/list"))[0] == 404
        assert (await call(session, url, KEY_C, "tools/list"))[0] == 429  # her burst of 2 is spent
        assert len(math.seen()) + len(text.seen()) == before


async def test_protected_resource_metadata_is_open_and_named_by_401s(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer]
) -> None:
    math, text = servers
    config = gateway_yaml(math, text) + "  authorization_servers: [https://login.example.com]\n"
    async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}"
        body, headers = request("tools/list")
        async with session.post(f"{base}/mcp/tools", data=body, headers=headers) as response:
            assert response.status == 401
            challenge = response.headers["www-authenticate"]
        metadata_url = f"{base}/.well-known/oauth-protected-resource/mcp/tools"
        assert f'resource_metadata="{metadata_url}"' in challenge
        async with session.get(metadata_url) as response:
            assert response.status == 200
            metadata = await response.json()
    assert metadata["resource"] == f"{base}/mcp/tools"
    assert metadata["authorization_servers"] == ["https://login.example.com"]
