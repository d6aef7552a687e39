"""Span names and attributes follow the OpenTelemetry semantic conventions (HTTP, RPC, GenAI agent spans)."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import GatewayFactory
from tests.helpers.http import body, post

AGENTS = """
agents:
  echo: {{kind: http, endpoint: "{echo}", provider: openai}}
  down: {{kind: http, endpoint: "http://127.0.0.1:1"}}
"""


def servers(exporter: InMemorySpanExporter) -> list[dict[str, object]]:
    return [
        {"name": s.name, **(s.attributes or {})} for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER
    ]


async def test_http_server_spans(gateway_factory: GatewayFactory, echo_url: str, span_exporter: InMemorySpanExporter) -> None:
    async with gateway_factory(AGENTS.format(echo=echo_url)) as gw:
        base = f"http://{gw.addresses.http}"
        assert (await post(f"{base}/v1/agents/echo/invoke", body(), {"x-thread-id": "t-9"}))[0] == 200
        assert (await post(f"{base}/v1/agents/down/invoke", body()))[0] == 503
        async with aiohttp.ClientSession() as session, session.post(f"{base}/v1/agents/echo/stream", json=body()) as sse:
            assert sse.status == 200
            await sse.read()
    ok, down, streamed = servers(span_exporter)
    # Low-cardinality names: the route template, never the agent from the path.
    assert ok["name"] == "POST /v1/agents/{agent}/invoke"
    assert ok["http.route"] == "/v1/agents/{agent}/invoke"
    assert ok["url.scheme"] == "http" and ok["url.path"] == "/v1/agents/echo/invoke"
    assert ok["http.request.method"] == "POST" and ok["http.response.status_code"] == 200
    assert down["http.response.status_code"] == 503 and down["error.type"] == "UNAVAILABLE"
    assert streamed["name"] == "POST /v1/agents/{agent}/stream" and streamed["http.response.status_code"] == 200
    attempt = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    attributes = dict(attempt.attributes or {})
    assert attempt.name == "invoke_agent echo"
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "echo"
    assert attributes["gen_ai.conversation.id"] == "t-9"
    assert attributes["gen_ai.provider.name"] == "openai"


async def test_grpc_server_spans_name_the_full_method(
    gateway_factory: GatewayFactory, echo_url: str, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(AGENTS.format(echo=echo_url)) as gw:
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)
            message = pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="hi")])
            await stub.Invoke(pb.InvokeRequest(agent="echo", messages=[message]))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Invoke(pb.InvokeRequest(agent="down", messages=[message]))
            [_ async for _ in stub.InvokeStream(pb.InvokeRequest(agent="echo", messages=[message]))]
    ok, down, streamed = servers(span_exporter)
    assert ok["name"] == "agentgateway.v1.AgentGatewayService/Invoke"
    assert (ok["rpc.system"], ok["rpc.service"], ok["rpc.method"]) == ("grpc", "agentgateway.v1.AgentGatewayService", "Invoke")
    assert ok["rpc.grpc.status_code"] == 0
    assert down["rpc.grpc.status_code"] == 14  # UNAVAILABLE
    assert streamed["name"] == "agentgateway.v1.AgentGatewayService/InvokeStream" and streamed["rpc.grpc.status_code"] == 0
