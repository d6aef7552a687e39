"""The gRPC front: the AgentGateway service, standard health checking and reflection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentgateway.v1 import events_pb2 as pb_events
from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from gateway.model import GatewayError, InvalidRequest, Invocation
from gateway.pipeline import Gateway
from gateway.results import ResultCollector
from gateway.server.inbound import invocation_for, list_agents_response, server_span

log = logging.getLogger("agent_gateway.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AgentGateway"].full_name
EVENTS_SERVICE = pb_events.DESCRIPTOR.services_by_name["Events"].full_name  # served by events_grpc.py

# No deadline shows up as an enormous remaining time in grpc.aio.
_NO_DEADLINE = 1e8


class MalformedRequest:
    """Stands in for a request whose bytes did not parse, so the handler can
    answer INVALID_ARGUMENT instead of grpc's generic UNKNOWN."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return MalformedRequest(str(exc))

    return deserialize


def _method_handlers(servicer: AgentGatewayServicer) -> dict[str, grpc.RpcMethodHandler]:
    return {
        "Invoke": grpc.unary_unary_rpc_method_handler(
            servicer.Invoke,
            request_deserializer=_lenient(pb.InvokeRequest.FromString),
            response_serializer=pb.InvokeResponse.SerializeToString,
        ),
        "InvokeStream": grpc.unary_stream_rpc_method_handler(
            servicer.InvokeStream,
            request_deserializer=_lenient(pb.InvokeRequest.FromString),
            response_serializer=pb.InvokeStreamResponse.SerializeToString,
        ),
        "ListAgents": grpc.unary_unary_rpc_method_handler(
            servicer.ListAgents,
            request_deserializer=_lenient(pb.ListAgentsRequest.FromString),
            response_serializer=pb.ListAgentsResponse.SerializeToString,
        ),
    }


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            headers.setdefault(key.lower(), value)
    return headers


def _remaining(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE else max(0.0, remaining)


async def _abort(context: grpc.aio.ServicerContext, error: GatewayError, request_id: str) -> None:
    detail = wire.error_to_pb(error, request_id).SerializeToString()
    await context.abort(
        grpc.StatusCode[error.code.value], error.message, trailing_metadata=((wire.ERROR_TRAILER, detail),)
    )


class AgentGatewayServicer(pb_grpc.AgentGatewayServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _invocation(
        self, request: pb.InvokeRequest | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> tuple[Invocation, dict[str, str]]:
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(f"the request is not a valid agentgateway.v1.InvokeRequest: {request.reason}")
        headers = _metadata(context)
        return invocation_for(request, headers, _remaining(context)), headers

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        request_id = ""
        try:
            invocation, headers = self._invocation(request, context)
            request_id = invocation.context.request_id
            with server_span(self.gateway.tracer, "AgentGateway/Invoke", headers, invocation.context, _rpc("Invoke")):
                result = await self.gateway.invoke(invocation)
            context.set_trailing_metadata((("x-request-id", request_id),))
            return wire.result_to_pb(result, invocation.context)
        except GatewayError as exc:
            await _abort(context, exc, request_id)
        except Exception:
            log.exception("unhandled error in Invoke")
            await context.abort(grpc.StatusCode.INTERNAL, "internal gateway error")
        raise AssertionError("unreachable: abort raises")

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        request_id = ""
        try:
            invocation, headers = self._invocation(request, context)
            request_id = invocation.context.request_id
            attributes = _rpc("InvokeStream")
            with server_span(self.gateway.tracer, "AgentGateway/InvokeStream", headers, invocation.context, attributes):
                agent, events = self.gateway.open_stream(invocation)
                collector = ResultCollector(agent)
                sequence = 0
                async for event in events:
                    sequence += 1
                    collector.add(event)
                    yield pb.InvokeStreamResponse(event=wire.event_to_pb(event, sequence))
                yield pb.InvokeStreamResponse(result=wire.result_to_pb(collector.result(), invocation.context))
        except GatewayError as exc:
            await _abort(context, exc, request_id)
        except Exception:
            log.exception("unhandled error in InvokeStream")
            await context.abort(grpc.StatusCode.INTERNAL, "internal gateway error")

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        return list_agents_response(self.gateway)


def _rpc(method: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": SERVICE_NAME, "rpc.method": method}


def build_grpc_server(gateway: Gateway, max_message_bytes: int) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
    )
    handlers = _method_handlers(AgentGatewayServicer(gateway))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            EVENTS_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return server, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, status)
