"""`AgentClient.tools`: an agent lists and calls MCP tools through its sidecar, inside its own trace."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentgateway_client import AgentClient, ClientError
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "x-session-id": "s-42"}


async def test_agent_client_calls_a_tool_in_the_agents_trace(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    server = tool_servers("client-math")
    config = f"""\
mcp:
  upstreams:
    math: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
"""
    async with gateway_factory(config) as gw:
        assert gw.addresses.grpc and gw.addresses.http
        async with AgentClient(gw.addresses.grpc, inbound=INBOUND, http_target=gw.addresses.http) as client:
            names = [t["name"] for t in await client.tools.list("tools")]
            result = await client.tools.call("tools", "math_add", {"a": 5, "b": 6})
            with pytest.raises(ClientError) as failure:
                await client.tools.list("nope")
    assert "math_add" in names
    assert (result.text, result.is_error) == ("11", False)
    assert "no MCP server named 'nope'" in failure.value.message
    call = [s for s in server.seen() if s["method"] == "tools/call"][-1]
    # One trace: the agent's inbound trace id reached the tool server, in headers and in _meta.
    assert call["headers"]["traceparent"].split("-")[1] == TRACE_ID
    assert call["meta"]["traceparent"].split("-")[1] == TRACE_ID
