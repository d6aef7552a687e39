"""`kind: mcp`: an MCP tool as an agent, so a workflow step is a tool call (with the agents' chain and spans)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer, start_tool_server
from tests.security.pki import CertificateAuthority


async def test_a_workflow_step_calls_an_mcp_tool(
    gateway_factory: GatewayFactory,
    tool_servers: Callable[[str], ToolServer],
    echo_url: str,
    span_exporter: InMemorySpanExporter,
) -> None:
    server = tool_servers("steps")
    config = f"""\
agents:
  echo: {{kind: http, endpoint: {echo_url}}}
  shout:
    kind: mcp
    endpoint: {server.url}
    options: {{tool: shout, argument: text}}
  add:
    kind: mcp
    endpoint: {server.url}
    options: {{tool: add}}
workflows:
  loud:
    kind: sequential
    steps:
      - {{name: up, agent: shout}}
      - {{name: say, agent: echo, input: "{{{{ steps.up.text }}}}"}}
"""
    async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/v1/agents"
        async with session.post(f"{base}/loud/invoke", json={"messages": [{"parts": [{"text": "quiet please"}]}]}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        async with session.post(
            f"{base}/add/invoke", json={"messages": [{"parts": [{"data": {"a": 4, "b": 5}}]}]}
        ) as r:
            added = await r.json()
    text = "".join(p.get("text", "") for m in body["messages"] for p in m["parts"])
    assert "echo: QUIET PLEASE" in text
    assert added["messages"][0]["parts"][0]["text"] == "9"
    assert any(s.name == "invoke_agent shout" for s in span_exporter.get_finished_spans())


async def test_an_mcp_tool_behind_a_private_ca_is_reached_with_the_agents_tls(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # The real tool server over HTTPS with a certificate our own CA signed: the agent's `tls:`
    # (its CA, and a name to verify) is what makes the call; without it the system CAs refuse.
    ca = CertificateAuthority(tmp_path)
    issued = ca.issue("tools.internal", server=True, stem="tools", dns_names=["tools.internal"])
    server = start_tool_server("tls", tls=(issued.cert, issued.key))
    try:
        trusted = f"tls: {{ca_file: {ca.cert_file}, server_name: tools.internal}}"
        config = (
            "agents:\n"
            f"  shout: {{kind: mcp, endpoint: '{server.url}', options: {{tool: shout, argument: text}}, {trusted}}}\n"
            f"  stranger: {{kind: mcp, endpoint: '{server.url}', options: {{tool: shout, argument: text}}}}\n"
        )
        message = {"messages": [{"parts": [{"text": "over tls"}]}]}
        async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
            base = f"http://{gw.addresses.http}/v1/agents"
            async with session.post(f"{base}/shout/invoke", json=message) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            async with session.post(f"{base}/stranger/invoke", json=message) as r:
                refused = r.status, await r.json()
    finally:
        server.stop()
    assert body["messages"][0]["parts"][0]["text"] == "OVER TLS"
    assert refused[0] == 503 and "certificate" in refused[1]["error"]["message"].lower(), refused
