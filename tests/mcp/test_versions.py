"""A virtual server offers only the MCP revisions all its upstreams are served under (their
``versions``); a client asking for another gets UnsupportedProtocolVersionError naming them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.config import ConfigError, load_config_text
from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": {"name": "w", "version": "1"}},
}  # fmt: skip


def gateway_yaml(url: str) -> str:
    return f"""\
mcp:
  upstreams:
    old: {{url: {url}, versions: ["2025-11-25"]}}
    fresh: {{url: {url}, versions: ["2026-07-28"]}}
    both: {{url: {url}}}
  virtual_servers:
    narrow:
      upstreams: [{{upstream: old}}, {{upstream: both}}]
    modern:
      upstreams: [{{upstream: fresh}}, {{upstream: both}}]
    wide:
      upstreams: [{{upstream: both}}]
"""


def modern(method: str, request_id: int = 1) -> tuple[str, dict[str, str]]:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {"_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}},
    }
    return json.dumps(body), {**ACCEPT, **mcp.request_headers(body, mcp.MODERN)}


async def post(session: aiohttp.ClientSession, url: str, body: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.fixture(scope="module")
def upstream(tool_servers: Callable[[str], ToolServer]) -> str:
    return tool_servers("versions").url


async def test_a_virtual_server_offers_the_revisions_its_upstreams_share(
    gateway_factory: GatewayFactory, upstream: str
) -> None:
    async with gateway_factory(gateway_yaml(upstream)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/mcp"
        # narrow: one member is served under 2025-11-25 only, so a 2026-07-28 request is refused...
        status, answer = await post(session, f"{base}/narrow", *modern("tools/list"))
        assert status == 400
        assert answer["error"] == {
            "code": mcp.UNSUPPORTED_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": [mcp.LEGACY], "requested": mcp.MODERN},
        }
        status, answer = await post(session, f"{base}/narrow", *modern("server/discover"))
        assert (status, answer["error"]["data"]["supported"]) == (400, [mcp.LEGACY])
        # ...and the handshake works, with both members' tools merged.
        status, answer = await post(session, f"{base}/narrow", json.dumps(INIT), ACCEPT)
        assert status == 200 and answer["result"]["protocolVersion"] == mcp.LEGACY
        # modern: one member is served under 2026-07-28 only: initialize is refused, naming what it speaks.
        status, answer = await post(session, f"{base}/modern", json.dumps(INIT), ACCEPT)
        assert status == 400
        assert answer["error"]["code"] == mcp.UNSUPPORTED_VERSION
        assert answer["error"]["data"] == {"supported": [mcp.MODERN], "requested": mcp.LEGACY}
        status, answer = await post(session, f"{base}/modern", *modern("server/discover"))
        assert status == 200 and answer["result"]["supportedVersions"] == [mcp.MODERN]
        # wide: its one member is served under both.
        status, answer = await post(session, f"{base}/wide", *modern("server/discover"))
        assert status == 200 and answer["result"]["supportedVersions"] == [mcp.MODERN, mcp.LEGACY]


async def test_the_sdk_client_lands_on_the_revision_a_virtual_server_offers(
    gateway_factory: GatewayFactory, upstream: str
) -> None:
    async with gateway_factory(gateway_yaml(upstream)) as gw:
        base = f"http://{gw.addresses.http}/mcp"
        async with Client(f"{base}/narrow", mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"old_add", "both_add"} <= names
            assert (await client.call_tool("old_add", {"a": 2, "b": 3})).content[0].text == "5"  # type: ignore[union-attr]
        async with Client(f"{base}/modern", mode="auto") as client:
            assert (await client.call_tool("fresh_add", {"a": 1, "b": 1})).content[0].text == "2"  # type: ignore[union-attr]
        # A client pinned to 2026-07-28 gets the spec's error, naming what the server speaks.
        with pytest.raises(BaseExceptionGroup) as info:
            async with Client(f"{base}/narrow", mode=mcp.MODERN) as client:
                await client.list_tools()
    error = leaf(info.value)
    assert isinstance(error, MCPError) and error.error.code == mcp.UNSUPPORTED_VERSION, info.value
    assert error.error.data == {"supported": [mcp.LEGACY], "requested": mcp.MODERN}


def leaf(exc: BaseException) -> BaseException:
    """The one error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def test_upstreams_sharing_no_revision_are_a_config_error() -> None:
    text = gateway_yaml("http://127.0.0.1:9/mcp") + "    none:\n      upstreams: [{upstream: old}, {upstream: fresh}]\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "gw.yaml", {})
    assert [str(p) for p in info.value.problems] == [
        "gw.yaml:14: mcp.virtual_servers.none.upstreams: these upstreams share no MCP revision "
        "(their 'versions'): the server could serve no client"
    ]
