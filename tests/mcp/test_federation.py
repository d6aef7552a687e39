"""The official MCP SDK client, on both revisions, reaching federated tools of real SDK servers through the gateway."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from mcp import Client

from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer

MODES = ["legacy", "2026-07-28"]


def yaml_for(math: ToolServer, text: ToolServer, extra: str = "") -> str:
    return f"""\
agents:
  echo:
    kind: http
    endpoint: http://127.0.0.1:1
mcp:
  upstreams:
    math:
      url: {math.url}
      headers: {{authorization: Bearer upstream-secret}}
    text:
      url: {text.url}
  virtual_servers:
    tools:
      instructions: federated test tools
      upstreams:
        - {{upstream: math, allow: ["add", "big", "hang", "greet", "motd"]}}
        - {{upstream: text, prefix: txt, allow: [add, shout, big, greet, motd], deny: [big]}}
{extra}"""


@pytest.fixture
def servers(tool_servers: Callable[[str], ToolServer]) -> tuple[ToolServer, ToolServer]:
    return tool_servers("math"), tool_servers("text")


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_lists_and_calls_federated_tools(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer], mode: str
) -> None:
    math, text = servers
    async with gateway_factory(yaml_for(math, text)) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/tools", mode=mode) as client:
            tools = await client.list_tools()
            names = [t.name for t in tools.tools]
            # Member order, prefixes, allow on math (shout hidden), deny on text (big, hang hidden).
            assert names == ["math_add", "math_big", "math_hang", "txt_add", "txt_shout"]
            added = await client.call_tool("math_add", {"a": 2, "b": 40})
            shouted = await client.call_tool("txt_shout", {"text": "hi"})
    assert added.structured_content == {"result": 42} or added.content[0].text == "42"  # type: ignore[union-attr]
    assert shouted.content[0].text == "HI"  # type: ignore[union-attr]
    calls = [s for s in math.seen() if s["method"] == "tools/call"]
    assert calls[-1]["name"] == "add"  # the upstream saw its own name, not the prefixed one
    # The upstream got the configured credential, never anything of the client's.
    assert calls[-1]["headers"]["authorization"] == "Bearer upstream-secret"
    assert "traceparent" in calls[-1]["headers"] and "traceparent" in calls[-1]["meta"]


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_resources_are_federated(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer], mode: str
) -> None:
    math, text = servers
    async with gateway_factory(yaml_for(math, text)) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/tools", mode=mode) as client:
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            prompt = await client.get_prompt("math_greet", {"name": "Ada"})
            resources = [str(r.uri) for r in (await client.list_resources()).resources]
            read = await client.read_resource("math+memo://motd")
    assert prompts == ["math_greet", "txt_greet"]
    assert "Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert resources == ["math+memo://motd", "txt+memo://motd"]
    assert read.contents[0].text == "message of the day from math"  # type: ignore[union-attr]


async def test_tool_results_larger_than_64_kib_arrive_whole(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer]
) -> None:
    math, text = servers
    async with gateway_factory(yaml_for(math, text)) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/tools", mode="2026-07-28") as client:
            result = await client.call_tool("math_big", {"size": 300_000})
    assert result.content[0].text == "x" * 300_000  # type: ignore[union-attr]


async def test_a_2025_11_25_upstream_session_is_renewed_when_the_upstream_forgets_it(
    gateway_factory: GatewayFactory, servers: tuple[ToolServer, ToolServer]
) -> None:
    math, _ = servers
    config = f"""\
mcp:
  upstreams:
    math: {{url: {math.url}, protocol_version: "2025-11-25"}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
"""
    async with gateway_factory(config) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/tools", mode="2026-07-28") as client:
            assert (await client.call_tool("math_add", {"a": 1, "b": 1})).content[0].text == "2"  # type: ignore[union-attr]
            assert gw.federation is not None
            upstream = gw.federation.upstreams["math"].client
            first_session = getattr(upstream, "session_id", None)
            assert first_session and upstream.version == "2025-11-25"
            # The upstream ends the session (as after its own restart): the next call starts a new one.
            async with aiohttp.ClientSession() as http:
                headers = {"mcp-session-id": first_session, "mcp-protocol-version": "2025-11-25"}
                async with http.delete(math.url, headers=headers) as response:
                    assert response.status in (200, 204)
            assert (await client.call_tool("math_add", {"a": 2, "b": 2})).content[0].text == "4"  # type: ignore[union-attr]
            assert getattr(upstream, "session_id", None) not in (None, first_session)
