"""The gRPC ``agentgateway.v1.Events`` service: publish an event, get its id."""

from __future__ import annotations

import grpc

from agentgateway.v1 import events_pb2 as pb_events
from gateway import wire
from gateway.model import InvalidRequest
from gateway.propagation import context_from_headers
from gateway.security.guard import ListenerGuard
from gateway.server.grpc import MalformedRequest, RpcErrors, grpc_credentials, lenient
from gateway.server.inbound import rpc_span, server_span
from gateway.triggers import EventRuntime

EVENTS_SERVICE_NAME = pb_events.DESCRIPTOR.services_by_name["EventsService"].full_name


class EventsServicer:
    def __init__(self, runtime: EventRuntime, guard: ListenerGuard) -> None:
        self.runtime = runtime
        self.guard = guard

    async def PublishEvent(
        self, request: pb_events.PublishEventRequest | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> pb_events.PublishEventResponse:
        async with RpcErrors(context, "EventsService/PublishEvent") as call:
            credentials = grpc_credentials(context)
            identity = self.guard.authenticate(credentials)
            if isinstance(request, MalformedRequest):
                raise InvalidRequest(
                    f"the request is not a valid agentgateway.v1.PublishEventRequest: {request.reason}"
                )
            self.guard.authorize_publish(identity, request.subject)
            headers = self.guard.headers_for(credentials.headers, identity)
            explicit = wire.context_from_pb(request.context) if request.HasField("context") else None
            ctx = context_from_headers(headers, explicit)
            call.request_id = request_id = ctx.request_id
            legacy = request.data if request.HasField("data") else None
            data = wire.event_data(request.data_json, legacy, "PublishEventRequest.data_json")
            name, attributes = rpc_span(EVENTS_SERVICE_NAME, "PublishEvent")
            with server_span(self.runtime.tracer, name, headers, ctx, attributes):
                ack = await self.runtime.publisher.publish(request.subject, data, ctx, request.event_id or None)
            context.set_trailing_metadata((("x-request-id", request_id),))
            return pb_events.PublishEventResponse(
                event_id=ack.event_id, subject=request.subject, duplicate=ack.duplicate
            )
        raise AssertionError("unreachable: RpcErrors aborts")


def events_method_handlers(servicer: EventsServicer) -> dict[str, grpc.RpcMethodHandler]:
    return {
        "PublishEvent": grpc.unary_unary_rpc_method_handler(
            servicer.PublishEvent,
            request_deserializer=lenient(pb_events.PublishEventRequest.FromString),
            response_serializer=pb_events.PublishEventResponse.SerializeToString,
        )
    }
