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
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from urllib.parse import unquote

import aiohttp
from aiohttp import HttpVersion, web
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
        name = request.match_info["agent"]
        request.app[GUARD_KEY].authorize(request[IDENTITY_KEY], name)
        inbound: dict[str, str] = request[HEADERS_KEY]
        # The path routes match on: what follows /v1/proxy/<agent>, as sent (upstream_url vets it below).
        below = "/" + request.raw_path.partition("?")[0].removeprefix(_PREFIX).partition("/")[2]
        route = RouteRequest(
            name,
            inbound,
            {k: request.query[k] for k in request.query},
            request.method,
            below,
            request[IDENTITY_KEY].caller,
        )
        decision = self.gateway.decide(route)
        upstream = self.gateway.upstream(decision.agent)
        if upstream is None:
            raise NotFound(f"no agent named {decision.agent!r} to pass through to", agent=name)
        if not upstream.spec.endpoint.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"agent {decision.agent!r} is not an HTTP agent; passthrough needs an http(s) endpoint", agent=name
            )
        context = context_from_headers(inbound, timeout=upstream.default_timeout)
        request[REQUEST_ID_KEY] = context.request_id
        url = upstream_url(upstream.spec.endpoint, request.raw_path, name)
        span_name, attributes = http_span(request)
        attributes[t.ATTR_AGENT] = decision.agent
        if decision.route:
            attributes[t.ATTR_ROUTE] = decision.route
        # Counted like every call: metrics and the access line, with the status the caller got.
        # One attempt, never retried (the body streams); its error answers say so too.
        invocation = Invocation(name, (), context, headers=inbound, record=CallRecord(attempts=1))
        invocation.record.route = decision.route or ""
        request[RECORD_KEY] = invocation.record
        calls = self.gateway.observer
        started = calls.started(invocation)
        error: GatewayError | None = None
        status = 0
        try:
            with server_span(self.tracer, span_name, inbound, context, attributes):
                response = await self._forward(request, url, decision.agent, context, upstream.spec.tls)
                status = response.status
                return response
        except GatewayError as exc:
            error = exc
            raise
        finally:
            calls.finished(invocation, started, error, streamed=False, answered=code_for_http_status(status))

    async def _forward(
        self, request: web.Request, url: URL, agent: str, context: Context, tls: UpstreamTls | None
    ) -> web.StreamResponse:
        attributes: dict[str, str | int] = {
            t.ATTR_AGENT: agent,
            "http.request.method": request.method,
            "server.address": url.host or "",
            "server.port": url.explicit_port or (443 if url.scheme == "https" else 80),
            "url.full": str(url),
        }
        span = self.tracer.start_span(f"proxy {agent}", kind=SpanKind.CLIENT, attributes=attributes)
        headers = _forwardable(request.headers)
        # Believed identity values and the gateway's own trace context and baggage are
        # injected below; the caller's versions never stand (not even when the gateway has
        # nothing to say, such as a token naming no user: then the agent gets no claim at all).
        for key in (*request.app[GUARD_KEY].dropped_headers, *(_W3C_FIELDS | propagate.get_global_textmap().fields)):
            headers.popall(key, None)
        outbound: dict[str, str] = {}
        inject_headers(context, outbound, trace.set_span_in_context(span))
        for key, value in outbound.items():
            headers[key] = value
        via = _via(request.version)
        _append_via(headers, via)
        response: web.StreamResponse | None = None
        record = request[RECORD_KEY]
        try:
            with mapped_errors(agent):
                async with await self._request(request, url, headers, context, tls) as upstream:
                    span.set_attribute(t.ATTR_HTTP_STATUS, upstream.status)
                    trace.get_current_span().set_attribute(t.ATTR_HTTP_STATUS, upstream.status)
                    response_headers = _forwardable(upstream.headers)
                    response_headers[REQUEST_ID] = context.request_id
                    response_headers.update(record_headers(record))
                    _append_via(response_headers, via)
                    response = web.StreamResponse(
                        status=upstream.status, reason=upstream.reason, headers=response_headers
                    )
                    if upstream.headers.get("content-length") is not None:
                        response.content_length = int(upstream.headers["content-length"])
                    await response.prepare(request)
                    async for chunk in _chunks(upstream):
                        await response.write(chunk)
                    await response.write_eof()
                    return response
        except GatewayError as exc:
            span.set_status(Status(StatusCode.ERROR, exc.message))
            if response is not None and response.prepared:
                # Bytes already reached the client: all we can do is cut the stream.
                log.warning("passthrough to %s broke mid-response: %s", agent, exc)
                if request.transport is not None:
                    request.transport.close()
                return response
            if (unreadable := request.get(BODY_ERROR_KEY)) is not None:
                raise unreadable from None  # the caller's body failed, not the agent
            raise
        finally:
            span.end()

    async def _request(
        self, request: web.Request, url: URL, headers: CIMultiDict[str], context: Context, tls: UpstreamTls | None
    ) -> AbstractAsyncContextManager[Http1Response | aiohttp.ClientResponse]:
        """The upstream request, through the lean client (or aiohttp's session), with the agent's TLS settings."""
        verify, server_hostname = self._tls(tls)
        if self.client is None:
            return self.session.request(
                request.method,
                url,
                headers=headers,
                data=_body(request) if request.body_exists else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=context.remaining(), sock_connect=10),
                # The caller's headers as they were: no Accept-Encoding or User-Agent it never sent.
                skip_auto_headers=_AUTO_HEADERS,
                ssl=verify,
                server_hostname=server_hostname,
            )
        body: bytes | AsyncIterator[bytes] | None = None
        length = request.content_length if "content-encoding" not in request.headers else None
        if request.body_exists:
            # A small body of known length is sent in one write with the head; a larger (or
            # unknown, or decoded by the server) one streams, chunked when its length is unknown.
            body = await _whole_body(request) if length is not None and length <= _CHUNK else _body(request)
        return self.client.request(
            request.method,
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


def _via(version: HttpVersion) -> str:
    """This hop's Via entry (RFC 9110 section 7.6.3): the protocol version received, and a pseudonym."""
    return f"{version.major}.{version.minor} agent-gateway"


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
