"""The standard gRPC services as their own clients use them: reflection v1 (what grpcurl,
Postman and buf curl speak) beside v1alpha, and health checking with List."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tests.conftest import GatewayFactory

CONFIG = "agents: {}\n"
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


async def _reflect(
    channel: grpc.aio.Channel, method: str, requests: list[reflection_pb2.ServerReflectionRequest]
) -> list[reflection_pb2.ServerReflectionResponse]:
    # The v1 messages are v1alpha's under a new package, field for field: one wire format.
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def sent() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        for request in requests:
            yield request

    return [response async for response in call(sent(), timeout=10)]


def _files(response: reflection_pb2.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]


async def test_reflection_v1_lists_and_describes_the_services(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(CONFIG) as gw, grpc.aio.insecure_channel(gw.addresses.grpc or "") as channel:
        listed, gateway_file, v1_file = await _reflect(
            channel,
            V1_METHOD,
            [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol="agentgateway.v1.AgentGatewayService"),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
            ],
        )
        # The deprecated v1alpha still answers, for older clients.
        (old,) = await _reflect(
            channel,
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            [reflection_pb2.ServerReflectionRequest(list_services="")],
        )
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "agentgateway.v1.AgentGatewayService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    assert {s.name for s in old.list_services_response.service} == names

    services = {s.name: s for f in _files(gateway_file) if f.package == "agentgateway.v1" for s in f.service}
    assert {"Invoke", "InvokeStream", "ListAgents"} <= {m.name for m in services["AgentGatewayService"].method}

    (described,) = [f for f in _files(v1_file) if f.package == "grpc.reflection.v1"]
    assert described.name == "grpc/reflection/v1/reflection.proto"
    (service,) = described.service
    assert service.name == "ServerReflection"
    assert service.method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    request_type = next(m for m in described.message_type if m.name == "ServerReflectionRequest")
    assert {f.name for f in request_type.field} >= {"list_services", "file_containing_symbol"}


async def test_health_list_reports_every_service(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(CONFIG) as gw, grpc.aio.insecure_channel(gw.addresses.grpc or "") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        listed = await stub.List(health_pb2.HealthListRequest(), timeout=5)
        checked = await stub.Check(health_pb2.HealthCheckRequest(service="agentgateway.v1.AgentGatewayService"), timeout=5)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert {name: s.status for name, s in listed.statuses.items()} == {
        "": serving,
        "agentgateway.v1.AgentGatewayService": serving,
    }
    assert checked.status == serving
