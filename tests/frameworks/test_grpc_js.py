"""The gRPC adapter against a TypeScript agent served with @grpc/grpc-js.

The agent (``tests/frameworks/mastra/grpc_agent.ts``) serves the gateway's own
proto through the committed TypeScript stubs (protoc-gen-es, beside the Python
ones) and echoes the context metadata it receives, so these tests check what
crosses the Python -> Node hop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentgateway_client import AgentClient, ClientError, DataPart, StatusCode
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.frameworks import framework_server
from tests.helpers.wire import typed

pytestmark = pytest.mark.frameworks

TRACE_ID = "8bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-40f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def grpc_js_agent(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = framework_server("grpc-js", pytestconfig, tmp_path_factory)
    yield server
    server.stop()


def gateway_yaml(port: int) -> str:
    return f"""
agents:
  ts:
    kind: grpc
    endpoint: grpc://127.0.0.1:{port}
"""


async def test_invoke_reaches_the_node_agent_with_context(
    gateway_factory: GatewayFactory, grpc_js_agent: ServerProcess, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(gateway_yaml(grpc_js_agent.port)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/ts/invoke",
            json={
                "messages": [{"role": "ROLE_USER", "parts": [{"text": "hello node"}]}],
                "context": {"sessionId": "sess-ts-1", "userId": "ada"},
                "options": {"timeout": "10s"},
            },
            headers={"traceparent": INBOUND_TRACEPARENT, "x-request-id": "req-ts-1"},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    answer, context = body["messages"]
    assert answer["parts"] == [{"text": "ts echo: hello node"}]
    seen = context["parts"][0]["data"]
    assert seen["runtime"].startswith("node v")
    assert seen["headers"]["x-session-id"] == "sess-ts-1"
    assert seen["headers"]["x-request-id"] == "req-ts-1"
    assert seen["context"] == {"session_id": "sess-ts-1", "thread_id": "", "user_id": "ada"}
    assert 0 < seen["deadline_ms"] <= 10_000  # the remaining deadline became the gRPC deadline
    assert type(seen["deadline_ms"]) is int  # JSON text from Node: an integer stays one
    _version, trace_id, parent_span, _flags = seen["headers"]["traceparent"].split("-")
    assert trace_id == TRACE_ID
    attempt = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert format(attempt.context.span_id, "016x") == parent_span
    assert body["metadata"]["runtime"] == "grpc-js"


async def test_stream_relays_the_node_agents_events(
    gateway_factory: GatewayFactory, grpc_js_agent: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(grpc_js_agent.port)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream("ts", "one two", session_id="s-ts-2", timeout=10)]
            result = await client.invoke("ts", "structured", session_id="s-ts-3", timeout=10)
    deltas = [e.message.text for e in events if e.type == "delta" and e.message is not None]
    assert deltas == ["ts ", "echo: ", "one ", "two"]
    data = next(e.data for e in events if e.type == "data")
    assert data["headers"]["x-session-id"] == "s-ts-2"
    assert data["headers"]["traceparent"].startswith("00-")
    # Structured content survives protobuf Struct/Value in both runtimes.
    assert isinstance(result.messages[1].parts[0], DataPart)
    assert result.messages[1].parts[0].data["context"]["session_id"] == "s-ts-3"


async def test_data_parts_cross_the_node_hop_exactly(
    gateway_factory: GatewayFactory, grpc_js_agent: ServerProcess
) -> None:
    payload = {"order": 7, "big": 12345678901234567890, "neg": -3, "f": 1.5, "nested": {"n": [1, 2.0, 3]}}
    async with gateway_factory(gateway_yaml(grpc_js_agent.port)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/ts/invoke",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": "structured"}, {"data": payload}]}]},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    echoed = body["messages"][2]["parts"][0]["data"]  # the agent echoes the JSON text it received
    assert typed(echoed) == typed(payload)


async def test_http_sse_front_over_the_node_agent(
    gateway_factory: GatewayFactory, grpc_js_agent: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(grpc_js_agent.port)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/ts/stream",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": "over sse"}]}]},
        ) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    result: dict[str, Any] = json.loads(frames[-1].split("data: ", 1)[1])["result"]
    assert "".join(p["text"] for m in result["messages"] for p in m["parts"] if "text" in p) == "ts echo: over sse"


async def test_node_agent_statuses_are_classified(
    gateway_factory: GatewayFactory, grpc_js_agent: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(grpc_js_agent.port)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:

            async def stream(text: str) -> None:
                async for _ in client.stream("ts", text, timeout=10):
                    pass

            outcomes = await asyncio.gather(
                client.invoke("ts", "invalid input", timeout=10),
                stream("invalid input"),
                client.invoke("ts", "busy now", timeout=10),
                stream("busy now"),
                return_exceptions=True,
            )
    for error in outcomes[:2]:
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.FAILED_PRECONDITION  # INVALID_ARGUMENT upstream: a rejection
        assert not error.transient
        assert "cannot handle: invalid input" in error.message
    for error in outcomes[2:]:
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.UNAVAILABLE
        assert error.transient
