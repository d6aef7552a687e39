"""The HTTP front (aiohttp): JSON invoke, server-sent event streams, agent
listing, and a transparent passthrough to a named agent.

Bodies follow the protobuf JSON mapping of the gRPC messages, so both fronts
speak one model. Errors are ``{"error": ErrorDetail}`` with a status that
matches the error's class, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire, wire_json
from gateway.config.schema import HttpListener
from gateway.model import (
    CallRecord,
    Event,
    GatewayError,
    InvalidRequest,
    Invocation,
    StatusCode,
    Unauthenticated,
    new_request_id,
)
from gateway.pipeline import Gateway
from gateway.propagation import REQUEST_ID
from gateway.protocols.sse import format_sse
from gateway.results import ResultCollector
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Credentials, Identity
from gateway.security.tls import peer_identities_from_cert
from gateway.server.cors import CorsRules, is_preflight
from gateway.server.disconnect import caller_gone, unless_caller_leaves
from gateway.server.drain import Drain
from gateway.server.inbound import (
    Inbound,
    http_span,
    inbound_call,
    list_agents_response,
    record_headers,
    server_span,
)
from gateway.server.json_body import invoke_request, read_json, unreadable_body
from gateway.server.passthrough import Passthrough
from gateway.server.relay import Bounds, Relay, cancels_on_disconnect
from gateway.server.request_keys import (
    DRAIN_KEY,
    GUARD_KEY,
    HEADERS_KEY,
    IDENTITY_KEY,
    MAX_JSON_DEPTH_KEY,
    RECORD_KEY,
    REQUEST_ID_KEY,
    STARTED_KEY,
)
from gateway.server.sse_writer import KEEPALIVE_FRAME, SSE_HEADERS
from gateway.server.steps_view import StepsView

log = logging.getLogger("agent_gateway.http")


GATEWAY_KEY = web.AppKey("gateway", Gateway)
LISTENER_KEY = web.AppKey("listener", HttpListener)
PASSTHROUGH_KEY = web.AppKey("passthrough", Passthrough)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_KEY = web.AppKey("cors", CorsRules)


def error_answer(
    error: GatewayError, request_id: str = "", record: CallRecord | None = None
) -> tuple[int, dict[str, str], dict[str, object]]:
    """The status, headers and JSON body that answer ``error`` (both HTTP servers)."""
    body = wire.error_json(error, request_id)
    headers = record_headers(record)
    if request_id:
        headers[REQUEST_ID] = request_id
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    if isinstance(error, Unauthenticated):
        headers["www-authenticate"] = 'Bearer realm="agent-gateway"'
    return error.status, headers, body


def error_response(error: GatewayError, request_id: str = "", record: CallRecord | None = None) -> web.Response:
    status, headers, body = error_answer(error, request_id, record)
    return web.json_response(body, status=status, headers=headers)


def status_error_body(status: int, reason: str, request_id: str) -> dict[str, object]:
    """The body of an HTTP-level refusal (404, 413, ...): an ErrorDetail like every other error."""
    code = _HTTP_EXCEPTION_CODES.get(status, StatusCode.INVALID_ARGUMENT)
    detail = pb.ErrorDetail(code=code.value, message=reason, request_id=request_id)
    return {"error": wire.to_json(detail, with_defaults=True)}


def _cut(request: web.Request, started: web.StreamResponse) -> web.StreamResponse:
    """The answer already started: all that is left is to end the connection (aiohttp then
    finishes quietly; a second response would corrupt the stream)."""
    if request.transport is not None:
        request.transport.close()
    return started


_HTTP_EXCEPTION_CODES = {404: StatusCode.NOT_FOUND, 405: StatusCode.UNIMPLEMENTED, 413: StatusCode.INVALID_ARGUMENT}


def request_id_from(given: str) -> str:
    """The caller's x-request-id when it is a usable one, else a new id (a bad one is reported later, with this)."""
    given = given.strip()
    if 0 < len(given) <= 256 and given.isascii() and given.isprintable():
        return given
    return new_request_id()


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a structured error body with the request id and x-agw-attempts (like
    every answer); unexpected ones are logged, not leaked."""
    request[REQUEST_ID_KEY] = request_id_from(request.headers.get(REQUEST_ID, ""))
    try:
        return await handler(request)
    except GatewayError as exc:
        started = request.get(STARTED_KEY)
        if started is not None:
            log.info("%s %s ended mid-answer: %s", request.method, request.path, exc)
            return _cut(request, started)
        if not exc.agent and (agent := request.match_info.get("agent")):
            exc.agent = agent
        return error_response(exc, request[REQUEST_ID_KEY], request.get(RECORD_KEY))
    except (HttpProcessingError, web.RequestPayloadError) as exc:  # a body aiohttp cannot decode: the caller's
        started = request.get(STARTED_KEY)
        if started is not None:
            return _cut(request, started)
        return error_response(unreadable_body(exc), request[REQUEST_ID_KEY], request.get(RECORD_KEY))
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted({*exc.allowed_methods, "OPTIONS"}))
        if request.method == "OPTIONS":  # RFC 9110 section 9.3.7: what this resource supports
            return web.Response(status=204, headers={"allow": allowed})
        error = GatewayError(f"{request.method} is not served at {request.path}; use {allowed}")
        error.code = StatusCode.UNIMPLEMENTED
        response = error_response(error, request[REQUEST_ID_KEY], request.get(RECORD_KEY))
        response.set_status(405)
        response.headers["allow"] = allowed
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = status_error_body(exc.status, exc.reason, request[REQUEST_ID_KEY])
        return web.json_response(body, status=exc.status, headers=record_headers(request.get(RECORD_KEY)))
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and caller_gone(request):
            # The caller closed the connection mid-answer (a dropped stream): normal, not an error.
            log.debug("the caller closed the connection during %s %s", request.method, request.path)
            return _cut(request, request.get(STARTED_KEY) or web.Response(status=499))
        log.exception("unhandled error serving %s %s", request.method, request.path)
        if (started := request.get(STARTED_KEY)) is not None:
            return _cut(request, started)
        detail = pb.ErrorDetail(
            code=StatusCode.INTERNAL.value, message="internal gateway error", request_id=request[REQUEST_ID_KEY]
        )
        body = {"error": wire.to_json(detail, with_defaults=True)}
        return web.json_response(body, status=500, headers=record_headers(request.get(RECORD_KEY)))


def _utf8(name: str, value: str) -> str:
    # aiohttp decodes header bytes that are not UTF-8 to lone surrogates; nothing downstream can encode those.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidRequest(f"header {name} is not valid UTF-8") from None
    return value


def cors_middleware(rules: CorsRules) -> Middleware:
    """Preflights are answered before authentication (browsers send them without credentials)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_preflight(request):
            return rules.preflight(request, request.headers["origin"])
        return await handler(request)

    return middleware


async def _stamp_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer of the listener, streams and passthrough included, names its request;
    the handler's answer is noted as started (after it, an error can only end the connection)."""
    request[STARTED_KEY] = response
    if REQUEST_ID not in response.headers and (request_id := request.get(REQUEST_ID_KEY)):
        response.headers[REQUEST_ID] = request_id
    rules = request.app.get(CORS_KEY)
    if rules is not None and (origin := request.headers.get("origin")):
        rules.mark(origin, response)


def expectation_refused(expect: str | None) -> InvalidRequest | None:
    """The 417's error for an ``Expect`` other than ``100-continue`` (both HTTP servers)."""
    if expect is None or expect.strip().lower() == "100-continue":
        return None
    return InvalidRequest("the only Expect the gateway answers is 100-continue")


def expectations_checked(
    handle: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The server's request handler, refusing an ``Expect`` other than ``100-continue``
    with 417 first: aiohttp answers it before any middleware, echoing the value into
    its 417, and a value that is not UTF-8 made that a 500 with an ERROR traceback."""

    async def checked(request: web.BaseRequest) -> web.StreamResponse:
        if (refused := expectation_refused(request.headers.get("expect"))) is not None:
            return web.json_response(wire.error_json(refused), status=417)
        return await handle(request)

    return checked


def credentials_from(fields: Iterable[tuple[str, str]], extra: Callable[[str], object]) -> Credentials:
    """The caller's credentials: its headers (the first of each name, lower-cased) and its connection's peer."""
    headers: dict[str, str] = {}
    for key, value in fields:
        headers.setdefault(key.lower(), _utf8(key, value))
    ssl_object = cast(ssl.SSLObject | None, extra("ssl_object"))
    peer = ssl_object.getpeercert() if ssl_object is not None else None
    peername = extra("peername")
    address = str(peername[0]) if isinstance(peername, tuple) and peername else ""
    return Credentials(headers, peer_identities_from_cert(peer), address)


def credentials(request: web.Request) -> Credentials:
    transport = request.transport
    return credentials_from(
        request.headers.items(), transport.get_extra_info if transport is not None else lambda name: None
    )


def authenticated(guard: ListenerGuard, creds: Credentials, request_id: str) -> tuple[Identity, dict[str, str]]:
    """Who calls, and the headers believed from them (the call's request id among them)."""
    identity = guard.authenticate(creds)
    believed = guard.headers_for(creds.headers, identity)
    believed[REQUEST_ID] = request_id  # the id errors already use, unless the body names one
    return identity, believed


@web.middleware
async def drain_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request runs in a drain scope: still running at the drain deadline, it answers 503."""
    async with request.app[DRAIN_KEY].scope():
        return await handler(request)


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate (and rate-limit) before any body is read; health stays open."""
    if request.path == "/healthz" or request.path.startswith("/.well-known/oauth-protected-resource"):
        return await handler(request)  # RFC 9728 metadata: how to get credentials cannot need them
    request[IDENTITY_KEY], request[HEADERS_KEY] = authenticated(
        request.app[GUARD_KEY], credentials(request), request[REQUEST_ID_KEY]
    )
    return await handler(request)


def inbound_of(
    data: Any,
    agent: str | None,
    guard: ListenerGuard,
    identity: Identity,
    headers: dict[str, str],
    query: Mapping[str, str] | None,
) -> Inbound:
    """The call an invoke or stream body asks for (both HTTP servers); the caller authorizes it
    once its errors can carry the call's request id."""
    return inbound_call(invoke_request(data, agent), headers, guard, identity, query=query)


async def _invocation(request: web.Request) -> Inbound:
    data = await read_json(request)
    # Routes may match on query parameters (the first value of each).
    query = {k: request.query[k] for k in request.query} if request.query else None
    guard, identity = request.app[GUARD_KEY], request[IDENTITY_KEY]
    inbound = inbound_of(data, request.match_info.get("agent"), guard, identity, request[HEADERS_KEY], query)
    invocation = inbound.invocation
    request[REQUEST_ID_KEY] = invocation.context.request_id
    request[RECORD_KEY] = invocation.record
    guard.authorize(identity, invocation.agent)
    return inbound


def _steps_view(request: web.Request) -> StepsView:
    return StepsView(request.app[GATEWAY_KEY], request.app[GUARD_KEY], request[IDENTITY_KEY])


async def invoke_answer(
    gateway: Gateway,
    listener: HttpListener,
    view: StepsView,
    inbound: Inbound,
    span: tuple[str, dict[str, str]],
    gone: Callable[[], bool],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Make the call; the JSON body and headers of its answer (both HTTP servers)."""
    invocation = inbound.invocation
    name, attributes = span
    with server_span(gateway.tracer, name, inbound.parent, invocation.context, attributes):
        try:
            if listener.cancel_on_disconnect or gateway.cancels_on_disconnect(invocation.agent):
                result = await unless_caller_leaves(gone, gateway.invoke(invocation))
            else:
                result = await gateway.invoke(invocation)
        except GatewayError as exc:
            raise view.error(exc) from None
    body = wire_json.result_json(view.result(result), invocation.context)
    return body, {REQUEST_ID: invocation.context.request_id, **record_headers(invocation.record)}


async def invoke(request: web.Request) -> web.StreamResponse:
    inbound = await _invocation(request)
    body, headers = await invoke_answer(
        request.app[GATEWAY_KEY],
        request.app[LISTENER_KEY],
        _steps_view(request),
        inbound,
        http_span(request),
        lambda: caller_gone(request),
    )
    return web.json_response(body, headers=headers)


Send = Callable[[bytes], Awaitable[None]]


async def stream_answer(
    gateway: Gateway,
    listener: HttpListener,
    view: StepsView,
    inbound: Inbound,
    span: tuple[str, dict[str, str]],
    gone: Callable[[], bool],
    begin: Callable[[dict[str, str]], Awaitable[Send]],
    drain: Drain,
) -> None:
    """SSE: ``event: event`` per event, then ``event: result`` (or ``event: error``), for both
    HTTP servers: ``begin`` starts the answer with its headers and gives the write of its body.

    The first upstream event is awaited before the response starts, so a call
    that fails at once still gets a proper error status instead of a stream;
    when it takes longer than ``sse_keepalive``, the response starts anyway and
    keep-alives flow while the agent thinks.
    """
    invocation = inbound.invocation
    name, attributes = span
    with server_span(gateway.tracer, name, inbound.parent, invocation.context, attributes):
        agent, events = gateway.open_stream(invocation)
        relay = Relay(
            events,
            _StreamSse(view, invocation, ResultCollector(agent)),
            bounds=Bounds.of(listener, agent),
            cancels=cancels_on_disconnect(listener, gateway.cancels_on_disconnect(invocation.agent)),
            caller_gone=gone,
        )
        try:
            await relay.opening(listener.sse_keepalive)
        except GatewayError as exc:  # a failure before any event: a proper error status
            raise view.error(exc) from None
        send = await begin(
            {
                **SSE_HEADERS,
                REQUEST_ID: invocation.context.request_id,
                # Retries and fallbacks happen only before the first event (known by now unless it is slow).
                **record_headers(invocation.record),
            }
        )
        await relay.serve(send, keepalive=(listener.sse_keepalive, KEEPALIVE_FRAME), drain=drain)


async def stream(request: web.Request) -> web.StreamResponse:
    inbound = await _invocation(request)
    response = web.StreamResponse()

    async def begin(headers: dict[str, str]) -> Send:
        response.headers.update(headers)
        await response.prepare(request)
        return response.write

    await stream_answer(
        request.app[GATEWAY_KEY],
        request.app[LISTENER_KEY],
        _steps_view(request),
        inbound,
        http_span(request),
        lambda: caller_gone(request),
        begin,
        request.app[DRAIN_KEY],
    )
    await response.write_eof()
    return response


class _StreamSse:
    """The SSE of ``/v1/stream``: numbered events (as the caller may see them), the result
    collected from them, an error as the last event."""

    def __init__(self, view: StepsView, invocation: Invocation, collector: ResultCollector) -> None:
        self.view = view
        self.invocation = invocation
        self.collector = collector
        self.sequence = 0

    def event(self, item: Event) -> bytes:
        self.sequence += 1
        self.collector.add(item)
        text = wire_json.stream_event_text(self.view.event(item), self.sequence)
        return format_sse(text, "event", str(self.sequence))

    def end(self) -> bytes:
        final = wire_json.stream_result_json(self.view.result(self.collector.result()), self.invocation.context)
        return format_sse(json.dumps(final), "result")

    def error(self, error: GatewayError) -> bytes:
        body = wire.error_json(self.view.error(error), self.invocation.context.request_id)
        return format_sse(json.dumps(body), "error")


async def list_agents(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    response = list_agents_response(gateway)
    response.request_id = request[REQUEST_ID_KEY]
    return web.json_response(wire.to_json(response))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_http_app(
    gateway: Gateway, passthrough: Passthrough, listener: HttpListener, guard: ListenerGuard, drain: Drain
) -> web.Application:
    cors = CorsRules(listener.cors) if listener.cors is not None else None
    middlewares: list[Middleware] = [errors_middleware, drain_middleware, security_middleware]
    if cors is not None:
        middlewares.insert(1, cors_middleware(cors))
    app = web.Application(client_max_size=listener.max_body_bytes, middlewares=middlewares)
    if cors is not None:
        app[CORS_KEY] = cors
    app.on_response_prepare.append(_stamp_answer)
    app[GATEWAY_KEY] = gateway
    app[DRAIN_KEY] = drain
    app[GUARD_KEY] = guard
    app[LISTENER_KEY] = listener
    app[MAX_JSON_DEPTH_KEY] = listener.max_json_depth
    app[PASSTHROUGH_KEY] = passthrough
    app.router.add_post("/v1/invoke", invoke)
    app.router.add_post("/v1/stream", stream)
    app.router.add_post("/v1/agents/{agent}/invoke", invoke)
    app.router.add_post("/v1/agents/{agent}/stream", stream)
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/v1/proxy/{agent}/{tail:.*}", passthrough.handle)
    return app
