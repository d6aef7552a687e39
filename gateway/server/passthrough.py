"""Transparent passthrough: any method, path and body to a named agent, unchanged.

Bodies stream both ways without buffering; hop-by-hop headers are dropped
and the context headers of a fresh client span are injected, so a
framework's own client (langgraph-sdk, an A2A client, ...) can be pointed at
``/v1/proxy/<agent>/`` instead of the agent and gain tracing and ids.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from yarl import URL

from gateway.http1 import Http1Client, Http1Response, RequestBodyFailed
from gateway.model import (
    CallRecord,
    Context,
    GatewayError,
    InvalidRequest,
    Invocation,
    NotFound,
    UpstreamTls,
    code_for_http_status,
)
from gateway.pipeline import Gateway
from gateway.propagation import REQUEST_ID, context_from_headers, inject_headers
from gateway.routing import RouteRequest
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.server.inbound import http_span, record_headers, server_span
from gateway.server.json_body import unreadable_body
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY, RECORD_KEY, REQUEST_ID_KEY
from gateway.telemetry import tracing as t
from gateway.transport import client_ssl_context, mapped_errors

log = logging.getLogger("agent_gateway.passthrough")

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the ones the client library sets itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_CHUNK = 64 * 1024
# Why the caller's body could not be forwarded, when aiohttp could not decode it.
BODY_ERROR_KEY = web.RequestKey("passthrough_body_error", InvalidRequest)
# Context headers the gateway writes itself on every hop: the W3C ones always (a caller's
# baggage must not pass even when the configured propagators would not write one).
_W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_PREFIX = "/v1/proxy/"
# What an upstream may take for a path separator, once the caller's segment is decoded.
_SEPARATORS = re.compile(r"[/\\]")


def upstream_url(endpoint: str, raw_target: str, agent: str) -> URL:
    """The upstream URL for a passthrough request target: the caller's path below
    ``/v1/proxy/<agent>/`` and its query, byte for byte (never decoded, never re-encoded),
    below the endpoint's base path.

    Raises InvalidRequest when the path would resolve above the base: a ``..`` segment,
    in any spelling one decoding makes of it (``%2e%2e``, ``.%2E``, ``..%2f``, ``..\\``,
    ``..;x``), climbing out of what the earlier segments descended. One decoding only, as
    an upstream does once: ``%252e%252e`` is a name, and passes as it came.
    """
    path, _, _fragment = raw_target.partition("#")  # a fragment is not part of a request target
    path, question, query = path.partition("?")
    head, _, tail = path.removeprefix(_PREFIX).partition("/")
    if not path.startswith(_PREFIX) or unquote(head) != agent:
        raise InvalidRequest(f"the passthrough path must start with {_PREFIX}{agent}/", agent=agent)
    depth = 0
    for segment in tail.split("/"):
        for part in _SEPARATORS.split(unquote(segment)):
            name = part.split(";", 1)[0]  # `..;x` is `..` to servers that strip path parameters
            if name == "..":
                depth -= 1
                if depth < 0:
                    raise InvalidRequest(
                        "the passthrough path climbs above the agent's endpoint ('..' segments); send a path below it",
                        agent=agent,
                    )
            elif name not in ("", "."):
                depth += 1
    base = URL(endpoint)
    prefix = base.raw_path.rstrip("/")
    return URL(f"{base.origin()}{prefix}/{tail}{question}{query}", encoded=True)


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    src = CIMultiDict(headers)
    dropped = {v.strip().lower() for k in src.getall("connection", []) for v in k.split(",")}
    return CIMultiDict((k, v) for k, v in src.items() if k.lower() not in _HOP_BY_HOP and k.lower() not in dropped)


@dataclass(slots=True)
class ProxiedRequest:
    """A request to pass through, as either HTTP server read it; ``request_id`` and ``record``
    are filled in as soon as they are known (the answer to an error carries them)."""

    agent: str
    method: str
    raw_target: str
    version: tuple[int, int]
    headers: CIMultiDict[str]
    query: dict[str, str]
    # Whether there is a body, and its length when known (and not decoded by the server).
    has_body: bool
    length: int | None
    whole_body: Callable[[], Awaitable[bytes]]
    body: Callable[[], AsyncIterator[bytes]]
    # Why the caller's body could not be read, when the server could not decode it.
    body_error: Callable[[], InvalidRequest | None] = lambda: None
    request_id: str = ""
    record: CallRecord | None = None


class Sink(Protocol):
    """Where the agent's answer goes: the caller's response, whichever server holds it."""

    @property
    def started(self) -> bool: ...
    async def start(self, status: int, reason: str, headers: CIMultiDict[str], length: int | None) -> None: ...
    async def write(self, chunk: bytes) -> None: ...
    async def end(self) -> None: ...
    def cut(self) -> None: ...


class _AiohttpSink:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        return self.response is not None and self.response.prepared

    async def start(self, status: int, reason: str, headers: CIMultiDict[str], length: int | None) -> None:
        self.response = web.StreamResponse(status=status, reason=reason, headers=headers)
        if length is not None:
            self.response.content_length = length
        await self.response.prepare(self.request)

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self.response.write(chunk)

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

    def cut(self) -> None:
        if self.request.transport is not None:
            self.request.transport.close()


class Passthrough:
    """Forwards raw HTTP to the endpoint of a configured agent (routes may send it to another)."""

    def __init__(
        self, gateway: Gateway, session: aiohttp.ClientSession, tracer: Tracer, client: Http1Client | None = None
    ) -> None:
        self.gateway = gateway
        self.session = session
        self.tracer = tracer
        # The lean HTTP/1.1 client; None: aiohttp's session sends (``server.upstream_client: aiohttp``).
        self.client = client
        # Each agent's `tls:` as an SSL context, made once (loading a CA file costs milliseconds).
        self._contexts: dict[UpstreamTls, ssl.SSLContext] = {}

    def _tls(self, tls: UpstreamTls | None) -> tuple[ssl.SSLContext | bool, str | None]:
        """How to reach an agent: its CA, client certificate and server name, as its adapter does."""
        if tls is None:
            return True, None
        context = self._contexts.get(tls)
        if context is None:
            context = self._contexts[tls] = client_ssl_context(tls)
        return context, tls.server_name

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp server's passthrough route."""
        length = request.content_length if "content-encoding" not in request.headers else None
        call = ProxiedRequest(
            request.match_info["agent"],
            request.method,
            request.raw_path,
            (request.version.major, request.version.minor),
            CIMultiDict(request.headers),
            {k: request.query[k] for k in request.query},
            request.body_exists,
            length,
            lambda: _whole_body(request),
            lambda: _body(request),
            lambda: request.get(BODY_ERROR_KEY),
        )
        sink = _AiohttpSink(request)
        try:
            await self.serve(
                call, request.app[GUARD_KEY], request[IDENTITY_KEY], request[HEADERS_KEY], sink, http_span(request)
            )
        finally:
            if call.request_id:
                request[REQUEST_ID_KEY] = call.request_id
            if call.record is not None:
                request[RECORD_KEY] = call.record
        assert sink.response is not None
        return sink.response

    async def serve(
        self,
        call: ProxiedRequest,
        guard: ListenerGuard,
        identity: Identity,
        inbound: dict[str, str],
        sink: Sink,
        span: tuple[str, dict[str, str]],
    ) -> None:
        """Pass ``call`` through (both HTTP servers): GatewayError before the answer starts."""
        name = call.agent
        guard.authorize(identity, name)
        # The path routes match on: what follows /v1/proxy/<agent>, as sent (upstream_url vets it below).
        below = "/" + call.raw_target.partition("?")[0].removeprefix(_PREFIX).partition("/")[2]
        route = RouteRequest(name, inbound, call.query, call.method, below, identity.caller)
        decision = self.gateway.decide(route)
        upstream = self.gateway.upstream(decision.agent)
        if upstream is None:
            raise NotFound(f"no agent named {decision.agent!r} to pass through to", agent=name)
        if not upstream.spec.endpoint.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"agent {decision.agent!r} is not an HTTP agent; passthrough needs an http(s) endpoint", agent=name
            )
        context = context_from_headers(inbound, timeout=upstream.default_timeout)
        call.request_id = context.request_id
        url = upstream_url(upstream.spec.endpoint, call.raw_target, name)
        span_name, attributes = span
        attributes = {**attributes, t.ATTR_AGENT: decision.agent}
        if decision.route:
            attributes[t.ATTR_ROUTE] = decision.route
        # Counted like every call: metrics and the access line, with the status the caller got.
        # One attempt, never retried (the body streams); its error answers say so too.
        invocation = Invocation(name, (), context, headers=inbound, record=CallRecord(attempts=1))
        invocation.record.route = decision.route or ""
        call.record = invocation.record
        calls = self.gateway.observer
        started = calls.started(invocation)
        error: GatewayError | None = None
        status = 0
        try:
            with server_span(self.tracer, span_name, inbound, context, attributes):
                status = await self._forward(call, guard, sink, url, decision.agent, context, upstream.spec.tls)
        except GatewayError as exc:
            error = exc
            raise
        finally:
            calls.finished(invocation, started, error, streamed=False, answered=code_for_http_status(status))

    async def _forward(
        self,
        call: ProxiedRequest,
        guard: ListenerGuard,
        sink: Sink,
        url: URL,
        agent: str,
        context: Context,
        tls: UpstreamTls | None,
    ) -> int:
        """Relay the request and the answer; the answer's status."""
        attributes: dict[str, str | int] = {
            t.ATTR_AGENT: agent,
            "http.request.method": call.method,
            "server.address": url.host or "",
            "server.port": url.explicit_port or (443 if url.scheme == "https" else 80),
            "url.full": str(url),
        }
        span = self.tracer.start_span(f"proxy {agent}", kind=SpanKind.CLIENT, attributes=attributes)
        headers = _forwardable(call.headers)
        # Believed identity values and the gateway's own trace context and baggage are
        # injected below; the caller's versions never stand (not even when the gateway has
        # nothing to say, such as a token naming no user: then the agent gets no claim at all).
        for key in (*guard.dropped_headers, *(_W3C_FIELDS | propagate.get_global_textmap().fields)):
            headers.popall(key, None)
        outbound: dict[str, str] = {}
        inject_headers(context, outbound, trace.set_span_in_context(span))
        for key, value in outbound.items():
            headers[key] = value
        via = f"{call.version[0]}.{call.version[1]} agent-gateway"
        _append_via(headers, via)
        record = call.record
        try:
            with mapped_errors(agent):
                async with await self._request(call, url, headers, context, tls) as upstream:
                    span.set_attribute(t.ATTR_HTTP_STATUS, upstream.status)
                    trace.get_current_span().set_attribute(t.ATTR_HTTP_STATUS, upstream.status)
                    response_headers = _forwardable(upstream.headers)
                    response_headers[REQUEST_ID] = context.request_id
                    response_headers.update(record_headers(record))
                    _append_via(response_headers, via)
                    declared = upstream.headers.get("content-length")
                    length = int(declared) if declared is not None else None
                    await sink.start(upstream.status, upstream.reason or "", response_headers, length)
                    async for chunk in _chunks(upstream):
                        await sink.write(chunk)
                    await sink.end()
                    return upstream.status
        except GatewayError as exc:
            span.set_status(Status(StatusCode.ERROR, exc.message))
            if sink.started:
                # Bytes already reached the client: all we can do is cut the stream.
                log.warning("passthrough to %s broke mid-response: %s", agent, exc)
                sink.cut()
                return 0
            if (unreadable := call.body_error()) is not None:
                raise unreadable from None  # the caller's body failed, not the agent
            raise
        finally:
            span.end()

    async def _request(
        self, call: ProxiedRequest, url: URL, headers: CIMultiDict[str], context: Context, tls: UpstreamTls | None
    ) -> AbstractAsyncContextManager[Http1Response | aiohttp.ClientResponse]:
        """The upstream request, through the lean client (or aiohttp's session), with the agent's TLS settings."""
        verify, server_hostname = self._tls(tls)
        if self.client is None:
            return self.session.request(
                call.method,
                url,
                headers=headers,
                data=call.body() if call.has_body else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=context.remaining(), sock_connect=10),
                # The caller's headers as they were: no Accept-Encoding or User-Agent it never sent.
                skip_auto_headers=_AUTO_HEADERS,
                ssl=verify,
                server_hostname=server_hostname,
            )
        body: bytes | AsyncIterator[bytes] | None = None
        length = call.length
        if call.has_body:
            # A small body of known length is sent in one write with the head; a larger (or
            # unknown, or decoded by the server) one streams, chunked when its length is unknown.
            body = await call.whole_body() if length is not None and length <= _CHUNK else call.body()
        return self.client.request(
            call.method,
            str(url),
            headers,
            body,
            content_length=length,
            timeout=context.remaining(),
            ssl=verify,
            server_hostname=server_hostname,
            decompress=False,  # bytes through as they came
            encoded=True,
        )


def _chunks(upstream: Http1Response | aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The reply's body as it arrives (the lean client's reads are bounded by its flow control)."""
    if isinstance(upstream, Http1Response):
        return upstream.iter_any()
    return upstream.content.iter_chunked(_CHUNK)


# aiohttp's client adds these when a request has none; a proxy must not.
_AUTO_HEADERS = frozenset({"Accept-Encoding", "User-Agent"})


def _append_via(headers: CIMultiDict[str], entry: str) -> None:
    earlier = ", ".join(headers.getall("via", []))
    headers.popall("via", None)
    headers["via"] = f"{earlier}, {entry}" if earlier else entry


async def _whole_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        request[BODY_ERROR_KEY] = unreadable_body(exc)
        raise RequestBodyFailed(f"the caller's body could not be read: {exc}") from exc


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_chunked(_CHUNK):
            yield chunk
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        # The client library reports it as a broken upstream connection: keep what it was.
        request[BODY_ERROR_KEY] = unreadable_body(exc)
        raise
