"""What both fronts do with an inbound call: build the invocation and open the server span."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire
from gateway.model import GRPC_CODE_NUMBERS, CallRecord, Context, GatewayError, Invocation, Options
from gateway.pipeline import Gateway
from gateway.propagation import inbound_context, otel_parent
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.telemetry import tracing as t


@dataclass(frozen=True, slots=True)
class Inbound:
    """A call as a front hands it on: the invocation, and the trace it continues."""

    invocation: Invocation
    parent: otel_context.Context


def inbound_call(
    request: wire.InvokeRequestData,
    headers: Mapping[str, str],
    guard: ListenerGuard,
    identity: Identity,
    *,
    transport_timeout: float | None = None,
    query: Mapping[str, str] | None = None,
) -> Inbound:
    """The one place a front's call becomes an :class:`Invocation`, built once: the request
    checked, the context read from the headers (body values win; the deadline the tightest of
    the header's, the body's ``options.timeout`` and the transport's), the caller the identity,
    and the user id pinned to it on listeners that do not trust identity headers. The front
    authorizes the target next (``guard.authorize``), once errors can carry the call's request id."""
    wire.check_request(request)
    timeout = request.timeout
    if transport_timeout is not None:
        timeout = transport_timeout if timeout is None else min(timeout, transport_timeout)
    context, parent = inbound_context(
        headers, request.context, timeout=timeout, user_id=guard.vouched_user_id(identity)
    )
    invocation = Invocation(
        agent=request.agent,
        messages=request.messages,
        context=context,
        options=Options(params=request.params, idempotent=request.idempotent),
        headers=headers,
        query=query or {},
        caller=identity.caller,
    )
    return Inbound(invocation, parent)


@contextlib.contextmanager
def server_span(
    tracer: Tracer,
    name: str,
    headers: Mapping[str, str] | otel_context.Context,
    context: Context,
    attributes: Mapping[str, str],
) -> Iterator[trace.Span]:
    """A SERVER span parented on the inbound trace (with the call's baggage), current for the block:
    ``headers`` are the inbound ones, or the parent :func:`inbound_call` read from them."""
    parent = headers if isinstance(headers, otel_context.Context) else otel_parent(headers, context)
    span_attributes = dict(attributes)
    span_attributes[t.ATTR_REQUEST_ID] = context.request_id
    if context.session_id:
        span_attributes[t.ATTR_SESSION] = context.session_id
    if context.thread_id:
        span_attributes[t.ATTR_CONVERSATION] = context.thread_id
    if context.user_id:
        span_attributes[t.ATTR_USER] = context.user_id
    # Attach the parent first so its baggage stays in the context the span runs in.
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.SERVER,
            attributes=span_attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            http = "http.request.method" in attributes
            try:
                yield span
            except GatewayError as exc:
                span.set_status(Status(StatusCode.ERROR, exc.message))
                span.set_attribute(t.ATTR_ERROR_TYPE, exc.code.value)
                if http:
                    span.set_attribute(t.ATTR_HTTP_STATUS, exc.status)
                elif attributes.get("rpc.system") == "grpc":
                    span.set_attribute(t.ATTR_GRPC_STATUS, GRPC_CODE_NUMBERS[exc.code.value])
                raise
            # A handler that answered with another status (the passthrough relays the agent's) has set it.
            if http and t.ATTR_HTTP_STATUS not in (getattr(span, "attributes", None) or {}):
                span.set_attribute(t.ATTR_HTTP_STATUS, 200)
            elif attributes.get("rpc.system") == "grpc":
                span.set_attribute(t.ATTR_GRPC_STATUS, 0)
    finally:
        otel_context.detach(token)


def http_span(request: web.Request) -> tuple[str, dict[str, str]]:
    """The name and attributes of an HTTP SERVER span (semantic conventions: ``{method} {http.route}``).

    The route is the matched template (``/v1/agents/{agent}/invoke``), so span names stay few.
    """
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    attributes = {
        "http.request.method": request.method,
        "url.path": request.path,
        "url.scheme": request.scheme,
        "http.route": route,
    }
    return f"{request.method} {route}", attributes


def rpc_span(service: str, method: str) -> tuple[str, dict[str, str]]:
    """A gRPC SERVER span's name and attributes: the full method (``agentgateway.v1.AgentGatewayService/Invoke``)."""
    return f"{service}/{method}", {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def list_agents_response(gateway: Gateway) -> pb.ListAgentsResponse:
    response = pb.ListAgentsResponse(agents=[wire.agent_info(spec, streaming) for spec, streaming in gateway.agents()])
    for route in gateway.config.routes:
        response.routes.append(pb.RouteInfo(name=route.key, match_agent=route.match.agent, targets=route.targets))
    return response


ATTEMPTS_HEADER = "x-agw-attempts"
FALLBACK_HEADER = "x-agw-fallback"
# The workflow run a call started (the state service's workflow scope, the runs store's key).
WORKFLOW_RUN_HEADER = "x-agw-workflow-run"


def record_headers(record: CallRecord | None) -> dict[str, str]:
    """Response headers (HTTP) / trailing metadata (gRPC) saying what the policies did, on every
    answer, errors included; no record (refused before a call was built) is 0 attempts."""
    if record is None:
        return {ATTEMPTS_HEADER: "0"}
    headers = {ATTEMPTS_HEADER: str(record.attempts)}
    if record.fallback:
        headers[FALLBACK_HEADER] = record.fallback
    if record.workflow_run:
        headers[WORKFLOW_RUN_HEADER] = record.workflow_run
    return headers
