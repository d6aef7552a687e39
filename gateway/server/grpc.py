"""The gRPC front: the AgentGatewayService, standard health checking and reflection."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from gateway.config.schema import GrpcListener
from gateway.model import CallRecord, Event, GatewayError, InvalidRequest, Invocation, ResourceExhausted, Unavailable
from gateway.pipeline import Gateway
from gateway.propagation import context_from_headers
from gateway.results import ResultCollector
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Credentials
from gateway.security.tls import peer_identities_from_grpc
from gateway.server.drain import CURRENT_DRAIN, Drain
from gateway.server.grpc_lazy import Handlers, LazyService
from gateway.server.grpc_standard import add_health, add_reflection
from gateway.server.inbound import Inbound, inbound_call, list_agents_response, record_headers, rpc_span, server_span
from gateway.server.relay import Bounds, Relay
from gateway.server.steps_view import StepsView

log = logging.getLogger("agent_gateway.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AgentGatewayService"].full_name

# Invoke's SERVER span name and attributes, made once (server_span copies the attributes).
_INVOKE_SPAN, _INVOKE_ATTRIBUTES = rpc_span(SERVICE_NAME, "Invoke")

_Reply = TypeVar("_Reply", pb.InvokeResponse, pb.InvokeStreamResponse)
# No deadline shows up as an enormous remaining time in grpc.aio.
_NO_DEADLINE = 1e8


class MalformedRequest:
    """Stands in for a request whose bytes did not parse, so the handler can
    answer INVALID_ARGUMENT instead of grpc's generic UNKNOWN."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Lenient:
    """A request deserializer that hands the servicer a MalformedRequest instead of raising."""

    def __init__(self, parse: Callable[[bytes], Any]) -> None:
        self.parse = parse

    def __call__(self, data: bytes) -> Any:
        try:
            return self.parse(data)
        except DecodeError as exc:
            return MalformedRequest(str(exc))


def lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    return _Lenient(parse)


_MALFORMED = "the request message does not parse as {}: {}"


async def _refuse(context: grpc.aio.ServicerContext, method: str, request: MalformedRequest) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _MALFORMED.format(method, request.reason))


def _guarded(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` answering INVALID_ARGUMENT for bytes that do not parse and UNIMPLEMENTED for a
    method its servicer leaves out, instead of grpc's UNKNOWN and an ERROR log with a traceback."""
    parse = _Lenient(handler.request_deserializer)
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, MalformedRequest):
                await _refuse(context, method, request)
            try:
                return await unary(request, context)
            except NotImplementedError:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")

        return grpc.unary_unary_rpc_method_handler(unary_unary, parse, serialize)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, MalformedRequest):
                await _refuse(context, method, request)
            try:
                outcome = streaming(request, context)
                if inspect.isasyncgen(outcome):
                    async for response in outcome:
                        yield response
                else:
                    await outcome  # a servicer that writes with context.write
            except NotImplementedError:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")

        return grpc.unary_stream_rpc_method_handler(unary_stream, parse, serialize)
    if handler.stream_stream is not None:
        bidi = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, MalformedRequest):
                        await _refuse(context, method, request)
                    yield request

            async for response in bidi(checked(), context):
                yield response

        return grpc.stream_stream_rpc_method_handler(stream_stream, parse, serialize)
    return handler


def _guard(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` guarded (see :func:`_guarded`) unless its requests already parse leniently
    (our own servicers parse leniently and check the request after authenticating)."""
    if handler.request_deserializer is None or isinstance(handler.request_deserializer, _Lenient):
        return handler
    return _guarded(method, handler)


class _GuardedService(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc ships no types
    """A service's generic handler with every method guarded, once per method. Done where the
    service is registered rather than in a server interceptor: with any interceptor grpc.aio
    awaits an interceptor chain on every call of every method."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            handler = self._inner.service(details)
            if handler is None:
                return None
            guarded = self._guarded[method] = _guard(method, handler)
        return guarded


class _GuardingServer:
    """The server as the library services (health, reflection) register on it: their handlers
    get our answer to bytes that do not parse."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedService(handler) for handler in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        guarded = {method: _guard(f"/{service}/{method}", handler) for method, handler in handlers.items()}
        self._server.add_registered_method_handlers(service, guarded)


def _method_handlers(servicer: AgentGatewayServiceServicer) -> dict[str, grpc.RpcMethodHandler]:
    return {
        "Invoke": grpc.unary_unary_rpc_method_handler(
            servicer.Invoke,
            request_deserializer=lenient(pb.InvokeRequest.FromString),
            response_serializer=pb.InvokeResponse.SerializeToString,
        ),
        "InvokeStream": grpc.unary_stream_rpc_method_handler(
            servicer.InvokeStream,
            # InvokeStreamRequest has InvokeRequest's fields, numbers and types: one parser, one request form.
            request_deserializer=lenient(pb.InvokeRequest.FromString),
            response_serializer=pb.InvokeStreamResponse.SerializeToString,
        ),
        "ListAgents": grpc.unary_unary_rpc_method_handler(
            servicer.ListAgents,
            request_deserializer=lenient(pb.ListAgentsRequest.FromString),
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


async def abort_with(
    context: grpc.aio.ServicerContext, error: GatewayError, request_id: str, record: CallRecord | None = None
) -> None:
    detail = wire.error_to_pb(error, request_id).SerializeToString()
    trailers: tuple[tuple[str, str | bytes], ...] = ((wire.ERROR_TRAILER, detail), *record_headers(record).items())
    if request_id:
        trailers += (("x-request-id", request_id),)
    await context.abort(grpc.StatusCode[error.code.value], error.message, trailing_metadata=trailers)


class RpcErrors:
    """``async with RpcErrors(context, "Service/Method") as call:`` around a servicer's work: a
    GatewayError aborts with its status and an ErrorDetail trailer (carrying ``call.request_id``);
    anything else is logged and aborts INTERNAL, so no stack trace reaches the caller. Either
    way the trailers carry ``x-agw-attempts`` (of ``call.record``, 0 without one)."""

    def __init__(self, context: grpc.aio.ServicerContext, method: str) -> None:
        self.context = context
        self.method = method
        self.request_id = ""
        self.record: CallRecord | None = None
        drain = CURRENT_DRAIN.get()
        # Inside the error mapping, so a call still running at the drain deadline aborts UNAVAILABLE.
        self._drain = drain.scope() if drain is not None else None

    async def __aenter__(self) -> RpcErrors:
        if self._drain is not None:
            try:
                self._drain.enter()
            except Unavailable as exc:  # a call arriving after the drain deadline
                await abort_with(self.context, exc, "")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        if self._drain is not None:
            try:
                self._drain.exit(kind)
            except Unavailable as exc:
                error = exc
        if not isinstance(error, Exception) or isinstance(error, grpc.aio.AbortError):
            return False  # success, cancellation, or an abort already under way
        if isinstance(error, GatewayError):
            await abort_with(self.context, error, self.request_id, self.record)
        else:
            log.error("unhandled error in %s", self.method, exc_info=error)
            trailers = tuple(record_headers(self.record).items())
            await self.context.abort(grpc.StatusCode.INTERNAL, "internal gateway error", trailing_metadata=trailers)
        return False


def hung_up() -> bool:
    """In a gRPC handler being cancelled: whether its caller did it (hung up, cancelled, or let
    its deadline pass) rather than the drain deadline. grpc.aio cancels the handler before its
    context says so (``context.cancelled()`` is still false then)."""
    drain = CURRENT_DRAIN.get()
    return drain is None or not drain.expired


_CERTIFIED = frozenset({"x509_common_name", "x509_subject_alternative_name"})
_NO_CERTIFICATE = MappingProxyType(peer_identities_from_grpc({}))


def grpc_credentials(context: grpc.aio.ServicerContext) -> Credentials:
    peer = context.peer() or ""
    auth = context.auth_context()
    # A plaintext peer's auth context holds no certificate: skip reading one out of it.
    identities = peer_identities_from_grpc(auth) if auth and _CERTIFIED.intersection(auth) else _NO_CERTIFICATE
    return Credentials(_metadata(context), identities, peer)


class AgentGatewayServiceServicer(pb_grpc.AgentGatewayServiceServicer):
    def __init__(self, gateway: Gateway, listener: GrpcListener, guard: ListenerGuard) -> None:
        self.gateway = gateway
        self.listener = listener
        self.guard = guard

    def _invocation(
        self, request: pb.InvokeRequest | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> tuple[Inbound, StepsView]:
        # Authenticate before looking at the request, so strangers learn nothing from parse errors.
        credentials = grpc_credentials(context)
        identity = self.guard.authenticate(credentials)
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(f"the request is not a valid agentgateway.v1.InvokeRequest: {request.reason}")
        headers = self.guard.headers_for(credentials.headers, identity)
        data = wire.request_data_from_pb(request)
        inbound = inbound_call(data, headers, self.guard, identity, transport_timeout=_remaining(context))
        self.guard.authorize(identity, inbound.invocation.agent)
        return inbound, StepsView(self.gateway, self.guard, identity)

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        async with RpcErrors(context, "AgentGatewayService/Invoke") as call:
            inbound, view = self._invocation(request, context)
            invocation = inbound.invocation
            call.request_id = request_id = invocation.context.request_id
            call.record = invocation.record
            with server_span(self.gateway.tracer, _INVOKE_SPAN, inbound.parent, invocation.context, _INVOKE_ATTRIBUTES):
                try:
                    result = await self.gateway.invoke(invocation)
                except GatewayError as exc:
                    raise view.error(exc) from None
            context.set_trailing_metadata((("x-request-id", request_id), *record_headers(invocation.record).items()))
            return self._fitting(wire.result_to_pb(view.result(result), invocation.context))
        raise AssertionError("unreachable: RpcErrors aborts")

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        async with RpcErrors(context, "AgentGatewayService/InvokeStream") as call:
            inbound, view = self._invocation(request, context)
            invocation = inbound.invocation
            call.request_id = request_id = invocation.context.request_id
            call.record = invocation.record
            name, attributes = rpc_span(SERVICE_NAME, "InvokeStream")
            with server_span(self.gateway.tracer, name, inbound.parent, invocation.context, attributes):
                try:
                    agent, events = self.gateway.open_stream(invocation)
                except GatewayError as exc:
                    raise view.error(exc) from None
                # A caller that hangs up cancels the call (grpc.aio cancels its handler).
                relay = Relay(
                    events, _StreamMessages(self, view, invocation, agent), bounds=Bounds.of(self.listener, agent)
                )
                async with contextlib.aclosing(relay.frames()) as messages:
                    async for message in messages:
                        yield message
                trailers = (("x-request-id", request_id), *record_headers(invocation.record).items())
                context.set_trailing_metadata(trailers)

    def _fitting(self, message: _Reply) -> _Reply:
        """``message``, or a clear RESOURCE_EXHAUSTED (with the call's trailers) when it is over the
        listener's limit, instead of grpc's own failure after the handler is done."""
        size, limit = message.ByteSize(), self.listener.max_message_bytes
        if size > limit:
            raise ResourceExhausted(
                f"the reply is {size} bytes, over this listener's {limit}-byte message limit: raise "
                "listeners.grpc.max_message_bytes (and the client's receive limit)",
                transient=False,
            )
        return message

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        async with RpcErrors(context, "AgentGatewayService/ListAgents") as call:
            credentials = grpc_credentials(context)
            self.guard.authenticate(credentials)
            call.request_id = request_id = context_from_headers(credentials.headers).request_id
        response = list_agents_response(self.gateway)
        response.request_id = request_id
        context.set_trailing_metadata((("x-request-id", request_id),))
        return response


class _StreamMessages:
    """InvokeStream's messages: numbered events, then the result collected from them; an error
    is the call's status (RpcErrors aborts with it)."""

    def __init__(
        self, servicer: AgentGatewayServiceServicer, view: StepsView, invocation: Invocation, agent: str
    ) -> None:
        self.fitting = servicer._fitting
        self.view = view
        self.invocation = invocation
        self.collector = ResultCollector(agent)
        self.sequence = 0

    def event(self, item: Event) -> pb.InvokeStreamResponse:
        self.sequence += 1
        self.collector.add(item)
        return self.fitting(pb.InvokeStreamResponse(event=wire.event_to_pb(self.view.event(item), self.sequence)))

    def end(self) -> pb.InvokeStreamResponse:
        result = wire.result_to_pb(self.view.result(self.collector.result()), self.invocation.context)
        return self.fitting(pb.InvokeStreamResponse(result=result))

    def error(self, error: GatewayError) -> pb.InvokeStreamResponse:
        raise self.view.error(error) from None


def keepalive_options(listener: GrpcListener) -> list[tuple[str, int]]:
    """HTTP/2 keepalive pings, so proxies between keep idle long streams open; and the
    pings a client may send (more frequent ones are answered with GOAWAY)."""
    options = [
        ("grpc.http2.min_ping_interval_without_data_ms", round(listener.keepalive_min_client_interval * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if listener.keepalive_time is not None:
        options += [
            ("grpc.keepalive_time_ms", round(listener.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", round(listener.keepalive_timeout * 1000)),
            # Pings keep flowing on a connection whose stream sends no data for minutes.
            ("grpc.http2.max_pings_without_data", 0),
        ]
    return options


def listener_options(listener: GrpcListener) -> list[tuple[str, int]]:
    """Connection limits: the handshake deadline (gRPC's header-read timeout), idle and age
    limits, how many connections, and no port sharing unless configured."""
    options = [
        # Off: a second gateway on the same port fails at start instead of taking half the calls.
        ("grpc.so_reuseport", int(listener.so_reuseport)),
        ("grpc.server_handshake_timeout_ms", round(listener.handshake_timeout * 1000)),
        ("grpc.max_allowed_incoming_connections", listener.max_connections),
    ]
    if listener.max_connection_idle is not None:
        options.append(("grpc.max_connection_idle_ms", round(listener.max_connection_idle * 1000)))
    if listener.max_connection_age is not None:
        options += [
            ("grpc.max_connection_age_ms", round(listener.max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", round(listener.max_connection_age_grace * 1000)),
        ]
    return options


def _drained(handler: grpc.RpcMethodHandler, drain: Drain) -> grpc.RpcMethodHandler:
    """``handler`` with ``drain`` current while it runs, for the RpcErrors inside to find."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def run_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            CURRENT_DRAIN.set(drain)  # the call's own task and context: nothing leaks
            return await unary(request, context)

        return handler._replace(unary_unary=run_unary)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        async def run_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            CURRENT_DRAIN.set(drain)
            async for item in streaming(request, context):
                yield item

        return handler._replace(unary_stream=run_stream)
    return handler


def _drained_all(build: Callable[[], Handlers], drain: Drain) -> Callable[[], Handlers]:
    return lambda: {method: _drained(handler, drain) for method, handler in build().items()}


def build_grpc_server(
    gateway: Gateway,
    listener: GrpcListener,
    guard: ListenerGuard,
    drain: Drain,
    extra_services: Mapping[str, Mapping[str, grpc.RpcMethodHandler]] | None = None,
    lazy_services: Mapping[str, Callable[[], Handlers]] | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """The server with AgentGatewayService, health, reflection, ``extra_services`` (name -> handlers)
    and ``lazy_services`` (name -> a function building the handlers, called at the service's first call)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", listener.max_message_bytes),
            ("grpc.max_send_message_length", listener.max_message_bytes),
            # Soft and hard limit alike: between them gRPC rejects only a random share of calls.
            ("grpc.max_metadata_size", listener.max_metadata_bytes),
            ("grpc.absolute_max_metadata_size", listener.max_metadata_bytes),
            *keepalive_options(listener),
            *listener_options(listener),
        ],
    )
    services = {
        SERVICE_NAME: _method_handlers(AgentGatewayServiceServicer(gateway, listener, guard)),
        **(extra_services or {}),
    }
    # Every service's handlers guarded against bytes that do not parse, as they are registered.
    registrar = _GuardingServer(server)
    for name, methods in services.items():
        handlers = {method: _drained(handler, drain) for method, handler in methods.items()}
        registrar.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        registrar.add_registered_method_handlers(name, handlers)
    lazy = [LazyService(name, _drained_all(build, drain)) for name, build in (lazy_services or {}).items()]
    registrar.add_generic_rpc_handlers(lazy)
    health_servicer = add_health(registrar)
    add_reflection(registrar, [*services, *(service.name for service in lazy)], lazy)
    return server, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, status)
