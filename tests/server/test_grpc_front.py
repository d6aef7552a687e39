"""The gRPC front end to end: Invoke, InvokeStream, ListAgents, health, reflection, errors."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, echo_url: str, grpc_echo_address: str) -> AsyncIterator[GatewayServer]:
    yaml_text = f"""
agents:
  echo:
    kind: http
    endpoint: {echo_url}
  echo-grpc:
    kind: grpc
    endpoint: {grpc_echo_address}
    options: {{remote_agent: echo}}
  down:
    kind: grpc
    endpoint: 127.0.0.1:1
"""
    async with gateway_factory(yaml_text) as server:
        yield server


@pytest.fixture
async def channel(gateway: GatewayServer) -> AsyncIterator[grpc.aio.Channel]:
    assert gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gateway.addresses.grpc) as channel:
        yield channel


def request(agent: str, text: str = "hi", **context: str) -> pb.InvokeRequest:
    return pb.InvokeRequest(
        agent=agent,
        messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text=text)])],
        context=pb.Context(**context),
    )


def seen(response: pb.InvokeResponse) -> dict[str, str]:
    data = json.loads(response.messages[0].parts[1].data_json)
    headers: dict[str, str] = data["headers"]
    return headers


@pytest.mark.parametrize("agent", ["echo", "echo-grpc"])
async def test_invoke_through_both_adapters(channel: grpc.aio.Channel, agent: str) -> None:
    stub = pb_grpc.AgentGatewayServiceStub(channel)
    metadata = (("traceparent", TRACEPARENT), ("x-user-id", "u-7"), ("baggage", "tier=gold"))
    call = stub.Invoke(request(agent, "ping", session_id="s-1"), metadata=metadata, timeout=5)
    response = await call
    assert response.agent == agent
    assert response.messages[0].parts[0].text == "echo: ping"
    headers = seen(response)
    assert headers["x-session-id"] == "s-1"
    assert headers["x-user-id"] == "u-7"
    assert headers["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert headers["traceparent"].split("-")[2] != TRACEPARENT.split("-")[2]  # a new attempt span
    # Hops, the request tree with its call count, and the ids as baggage.
    assert re.fullmatch(
        r"tier=gold,agw.hops=1,agw.tree=[0-9a-f]{32},agw.calls=1,session.id=s-1,enduser.id=u-7", headers["baggage"]
    )
    assert headers["x-request-id"] == response.context.request_id
    # The caller's gRPC deadline reaches the agent as remaining time.
    remaining = int(headers.get("x-timeout-ms") or headers["grpc-timeout-remaining-ms"])
    assert 0 < remaining <= 5100  # gRPC rounds the transmitted timeout up
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-request-id"] == response.context.request_id


async def test_invoke_stream_yields_events_then_result(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.AgentGatewayServiceStub(channel)
    items = [item async for item in stub.InvokeStream(request("echo-grpc", "a b"), timeout=5)]
    kinds = [item.WhichOneof("kind") for item in items]
    assert kinds == ["event"] * 4 + ["result"]
    assert [i.event.sequence for i in items[:-1]] == [1, 2, 3, 4]
    assert [i.event.type for i in items[:-1]] == ["delta", "delta", "delta", "status"]
    assert items[-1].result.agent == "echo-grpc"
    assert items[-1].result.messages[0].parts[0].text == "echo: a b "


async def test_list_agents(channel: grpc.aio.Channel) -> None:
    response = await pb_grpc.AgentGatewayServiceStub(channel).ListAgents(pb.ListAgentsRequest())
    assert {a.name: a.kind for a in response.agents} == {"echo": "http", "echo-grpc": "grpc", "down": "grpc"}


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "agentgateway.v1.AgentGatewayService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "agentgateway.v1.AgentGatewayService" in services
    assert "grpc.health.v1.Health" in services


def error_detail(error: grpc.aio.AioRpcError) -> pb.ErrorDetail:
    trailers = dict(error.trailing_metadata() or ())
    return pb.ErrorDetail.FromString(trailers[wire.ERROR_TRAILER])


@pytest.mark.parametrize(
    ("req", "code", "fragment"),
    [
        (request("ghost"), grpc.StatusCode.NOT_FOUND, "no agent or route named 'ghost'"),
        (pb.InvokeRequest(agent="echo"), grpc.StatusCode.INVALID_ARGUMENT, "at least one message"),
        (pb.InvokeRequest(messages=request("x").messages), grpc.StatusCode.INVALID_ARGUMENT, "'agent'"),
        (request("down"), grpc.StatusCode.UNAVAILABLE, "agent answered gRPC UNAVAILABLE"),
    ],
)
async def test_errors_carry_codes_and_detail(
    channel: grpc.aio.Channel, req: pb.InvokeRequest, code: grpc.StatusCode, fragment: str
) -> None:
    stub = pb_grpc.AgentGatewayServiceStub(channel)
    for rpc in ("unary", "stream"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if rpc == "unary":
                await stub.Invoke(req, timeout=5)
            else:
                [item async for item in stub.InvokeStream(req, timeout=5)]
        assert info.value.code() == code, rpc
        assert fragment in (info.value.details() or "")
        detail = error_detail(info.value)
        assert detail.code == code.name
        if req.agent == "down":
            assert detail.agent == "down" and detail.transient


async def test_malformed_protobuf_is_rejected(channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary("/agentgateway.v1.AgentGatewayService/Invoke")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw(b"\xff\xff\xff\xff garbage", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid agentgateway.v1.InvokeRequest" in (info.value.details() or "")
    assert "Traceback" not in json.dumps(info.value.details() or "")


async def test_unexpected_errors_are_internal_without_a_stack_trace(
    gateway: GatewayServer, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(invocation: object) -> None:
        raise RuntimeError("a bug with secrets in its message")

    monkeypatch.setattr(gateway.gateway, "invoke", broken)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pb_grpc.AgentGatewayServiceStub(channel).Invoke(request("echo"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal gateway error"


async def test_list_agents_names_its_request(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.AgentGatewayServiceStub(channel)
    call = stub.ListAgents(pb.ListAgentsRequest(), metadata=(("x-request-id", "req-list-1"),))
    response = await call
    assert response.request_id == "req-list-1"
    assert ("x-request-id", "req-list-1") in tuple(await call.trailing_metadata())
    generated = await stub.ListAgents(pb.ListAgentsRequest())
    assert len(generated.request_id) == 32  # a fresh id when the caller sent none
