"""Transparent passthrough: any method, path and body to a named agent, unchanged.

Bodies stream both ways without buffering; hop-by-hop headers are dropped
and the context headers of a fresh client span are injected, so a
framework's own client (langgraph-sdk, an A2A client, ...) can be pointed at
``/v1/proxy/<agent>/`` instead of the agent and gain tracing and ids.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from adapters.transport import mapped_errors
from gateway.context import REQUEST_ID, context_from_headers, inject_headers
from gateway.model import CallRecord, Context, GatewayError, InvalidRequest, NotFound
from gateway.pipeline import Gateway
from gateway.server.inbound import record_headers, server_span
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY, RECORD_KEY, REQUEST_ID_KEY
from gateway.telemetry import tracing as t

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
# The request id of the call being served, for error bodies.


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    src = CIMultiDict(headers)
    dropped = {v.strip().lower() for k in src.getall("connection", []) for v in k.split(",")}
    return CIMultiDict((k, v) for k, v in src.items() if k.lower() not in _HOP_BY_HOP and k.lower() not in dropped)


class Passthrough:
    """Forwards raw HTTP to the endpoint of a configured agent."""

    def __init__(self, gateway: Gateway, session: aiohttp.ClientSession, tracer: Tracer) -> None:
        self.gateway = gateway
        self.session = session
        self.tracer = tracer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["agent"]
        upstream = self.gateway.upstreams.get(name)
        if upstream is None:
            raise NotFound(f"no agent named {name!r} to pass through to", agent=name)
        if not upstream.spec.endpoint.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"agent {name!r} is not an HTTP agent; passthrough needs an http(s) endpoint", agent=name
            )
        request.app[GUARD_KEY].authorize(request[IDENTITY_KEY], name)
        inbound: dict[str, str] = request[HEADERS_KEY]
        context = context_from_headers(inbound, timeout=upstream.default_timeout)
        request[REQUEST_ID_KEY] = context.request_id
        tail = request.match_info["tail"]
        url = f"{upstream.spec.endpoint.rstrip('/')}/{tail}"
        if request.query_string:
            url = f"{url}?{request.query_string}"
        attributes = {"http.request.method": request.method, "url.path": request.path, t.ATTR_AGENT: name}
        with server_span(self.tracer, f"{request.method} /v1/proxy/{name}", inbound, context, attributes):
            return await self._forward(request, url, name, context)

    async def _forward(self, request: web.Request, url: str, agent: str, context: Context) -> web.StreamResponse:
        span = self.tracer.start_span(f"proxy {agent}", kind=SpanKind.CLIENT, attributes={t.ATTR_AGENT: agent})
        headers = _forwardable(request.headers)
        for key in request.app[GUARD_KEY].dropped_headers:  # believed identity values are injected below
            headers.popall(key, None)
        outbound: dict[str, str] = {}
        inject_headers(context, outbound, trace.set_span_in_context(span))
        for key, value in outbound.items():
            headers[key] = value
        body = _body(request) if request.body_exists else None
        response: web.StreamResponse | None = None
        # One attempt, never retried (the body streams); its error answers say so too.
        record = request[RECORD_KEY] = CallRecord(attempts=1)
        try:
            with mapped_errors(agent):
                timeout = aiohttp.ClientTimeout(total=context.remaining(), sock_connect=10)
                async with self.session.request(
                    request.method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout
                ) as upstream:
                    span.set_attribute("http.response.status_code", upstream.status)
                    response_headers = _forwardable(upstream.headers)
                    response_headers[REQUEST_ID] = context.request_id
                    response_headers.update(record_headers(record))
                    response = web.StreamResponse(
                        status=upstream.status, reason=upstream.reason, headers=response_headers
                    )
                    if upstream.headers.get("content-length") is not None:
                        response.content_length = int(upstream.headers["content-length"])
                    await response.prepare(request)
                    async for chunk in upstream.content.iter_chunked(_CHUNK):
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
            raise
        finally:
            span.end()


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_CHUNK):
        yield chunk
