"""Faults behind the MCP front: the agents' policy chain applies to tool calls unchanged."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer, start_tool_server


def gateway_yaml(server: ToolServer, breaker: bool = True) -> str:
    circuit = "circuit_breaker: {consecutive_failures: 2, reset_timeout: 30s}" if breaker else ""
    return f"""\
policies:
  tools:
    timeout: {{per_try: 300ms}}
    retry: {{max_attempts: 3, backoff: {{base: 10ms, max: 20ms}}, budget: null}}
    {circuit}
mcp:
  upstreams:
    flaky: {{url: {server.url}, policies: [tools]}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: flaky, prefix: ""}}]
"""


async def call(session: aiohttp.ClientSession, url: str, name: str, **arguments: Any) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            "_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}},
        },
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with session.post(
        url, data=json.dumps(body), headers={**headers, **mcp.request_headers(body, mcp.MODERN)}
    ) as r:
        answer: dict[str, Any] = await r.json()
        return answer


def answer_attempts(answer: dict[str, Any]) -> int:
    return int(answer["error"]["data"].get("attempts", 0))


def tool_calls(server: ToolServer, name: str) -> int:
    return len([s for s in server.seen() if s["method"] == "tools/call" and s["name"] == name])


async def test_hanging_tools_time_out_and_only_read_only_ones_are_retried(gateway_factory: GatewayFactory) -> None:
    server = start_tool_server("hangs")
    try:
        async with gateway_factory(gateway_yaml(server, breaker=False)) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            started = time.monotonic()
            answer = await call(session, url, "hang")
            assert answer["error"]["data"]["code"] == "DEADLINE_EXCEEDED"
            assert time.monotonic() - started < 10
            answer = await call(session, url, "hang_read")
            assert answer["error"]["data"]["code"] == "DEADLINE_EXCEEDED"
            assert answer_attempts(answer) == 3
        # hang has no readOnly/idempotent hint and may have run: one attempt. hang_read is read-only: three.
        assert tool_calls(server, "hang") == 1
        assert tool_calls(server, "hang_read") == 3
    finally:
        server.stop()


async def test_a_dying_upstream_opens_its_breaker(
    gateway_factory: GatewayFactory, span_exporter: InMemorySpanExporter
) -> None:
    server = start_tool_server("dies")
    try:
        async with gateway_factory(gateway_yaml(server)) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            assert (await call(session, url, "add", a=1, b=2))["result"]["content"][0]["text"] == "3"
            server.stop()
            first = await call(session, url, "add", a=1, b=2)
            assert first["error"]["data"]["code"] == "UNAVAILABLE"
            later = await call(session, url, "add", a=1, b=2)
            assert "circuit" in later["error"]["message"].lower() or later["error"]["data"]["code"] == "UNAVAILABLE"
            assert gw.gateway is not None
            breaker = gw.gateway.policies.breakers["mcp/flaky"]
            assert breaker.state == "open"
            # A config reload rebuilds the agents' policies; the MCP upstream's breaker stays visible.
            await gw.gateway.reload(gw.config)()
            assert gw.gateway.policies.breakers["mcp/flaky"] is breaker
            async with session.get(f"http://{gw.addresses.admin}/metrics") as response:
                metrics = await response.text()
        # Per tool and outcome: the one success and the failed attempt.
        assert 'agw_mcp_tool_calls_total{outcome="OK",tool="flaky/add"} 1.0' in metrics
        assert 'agw_mcp_tool_calls_total{outcome="UNAVAILABLE",tool="flaky/add"}' in metrics
    finally:
        server.stop()
    spans = [s for s in span_exporter.get_finished_spans() if s.name == "tools/call add"]
    client = [s for s in spans if s.kind.name == "CLIENT"]
    assert client and client[0].attributes is not None
    assert client[0].attributes["mcp.method.name"] == "tools/call"
    assert client[0].attributes["gen_ai.tool.name"] == "add"
    assert client[0].attributes["gen_ai.operation.name"] == "execute_tool"
    server_spans = [s for s in spans if s.kind.name == "SERVER"]
    assert server_spans and client[0].parent is not None
    assert client[0].parent.span_id == server_spans[0].context.span_id
