"""The gRPC ``agentgateway.v1.Events`` service: publish an event, get its id."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import json_format

from agentgateway.v1 import events_pb2 as pb_events
from gateway import wire
from gateway.context import context_from_headers
from gateway.model import GatewayError, InvalidRequest
from gateway.patterns.events import EventRuntime
from gateway.server.grpc import EVENTS_SERVICE, MalformedRequest, _abort, _lenient, _metadata, _rpc
from gateway.server.inbound import server_span

log = logging.getLogger("agent_gateway.grpc")

EVENTS_SERVICE_NAME = EVENTS_SERVICE


class EventsServicer:
    def __init__(self, runtime: EventRuntime) -> None:
        self.runtime = runtime

    async def Publish(
        self, request: pb_events.PublishEventRequest | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> pb_events.PublishEventResponse:
        request_id = ""
        try:
            if isinstance(request, MalformedRequest):
                raise InvalidRequest(
                    f"the request is not a valid agentgateway.v1.PublishEventRequest: {request.reason}"
                )
            headers = _metadata(context)
            explicit = wire.context_from_pb(request.context) if request.HasField("context") else None
            ctx = context_from_headers(headers, explicit)
            request_id = ctx.request_id
            data = json_format.MessageToDict(request.data) if request.HasField("data") else None
            attributes = {**_rpc("Publish"), "rpc.service": EVENTS_SERVICE_NAME}
            with server_span(self.runtime.tracer, "Events/Publish", headers, ctx, attributes):
                ack = await self.runtime.publisher.publish(request.subject, data, ctx, request.event_id or None)
            context.set_trailing_metadata((("x-request-id", request_id),))
            return pb_events.PublishEventResponse(
                event_id=ack.event_id, subject=request.subject, duplicate=ack.duplicate
            )
        except GatewayError as exc:
            await _abort(context, exc, request_id)
        except Exception:
            log.exception("unhandled error in Events/Publish")
            await context.abort(grpc.StatusCode.INTERNAL, "internal gateway error")
        raise AssertionError("unreachable: abort raises")


def add_events_service(server: grpc.aio.Server, runtime: EventRuntime) -> None:
    servicer = EventsServicer(runtime)
    handlers = {
        "Publish": grpc.unary_unary_rpc_method_handler(
            servicer.Publish,
            request_deserializer=_lenient(pb_events.PublishEventRequest.FromString),
            response_serializer=pb_events.PublishEventResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(EVENTS_SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(EVENTS_SERVICE_NAME, handlers)
