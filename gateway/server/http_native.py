"""The HTTP front's hot routes on the native HTTP/1.1 server (:mod:`gateway.http1.server`):
``POST /v1/invoke``, ``POST /v1/agents/{agent}/invoke`` and their ``/stream`` twins (SSE).

The same answers as the aiohttp handlers of :mod:`gateway.server.http` (which serve them with
``server.http_server: aiohttp``), through the same functions: the request id, the drain scope,
authentication, the call and its errors. tests/server/test_http_native.py sends both servers
the same requests and compares the answers.
"""

from __future__ import annotations

import functools
import json
import logging
from urllib.parse import parse_qsl, unquote

from gateway import json_input
from gateway.config.schema import HttpListener
from gateway.http1.server import BodyTooLarge, Exchange, Handler, RequestHead
from gateway.model import GatewayError, InvalidRequest
from gateway.pipeline import Gateway
from gateway.propagation import REQUEST_ID
from gateway.security.guard import ListenerGuard
from gateway.server.cors import CorsRules
from gateway.server.drain import Drain
from gateway.server.http import (
    Send,
    authenticated,
    credentials_from,
    error_answer,
    inbound_of,
    invoke_answer,
    request_id_from,
    status_error_body,
    stream_answer,
)
from gateway.server.inbound import record_headers
from gateway.server.steps_view import StepsView

log = logging.getLogger("agent_gateway.http")

_JSON = ("content-type", "application/json; charset=utf-8")
_AGENTS = "/v1/agents/"
_OPERATIONS = ("/invoke", "/stream")


class NativeFront:
    """Routes and serves the hot requests; every other request is the fallback's (aiohttp)."""

    def __init__(
        self,
        gateway: Gateway,
        listener: HttpListener,
        guard: ListenerGuard,
        drain: Drain,
        cors: CorsRules | None,
        scheme: str,
    ) -> None:
        self.gateway = gateway
        self.listener = listener
        self.guard = guard
        self.drain = drain
        self.cors = cors
        self.scheme = scheme
        self._any: dict[str, Handler] = {op: functools.partial(self._call, op == "/stream", None) for op in _OPERATIONS}

    def route(self, head: RequestHead) -> Handler | None:
        if head.method != "POST":
            return None
        encoding = head.header("content-encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            return None  # a compressed body: aiohttp's decoders (and their errors) serve it
        path = head.path
        if path.startswith("/v1/") and (handler := self._any.get(path[3:])) is not None:
            return handler
        if path.startswith(_AGENTS):
            for operation in _OPERATIONS:
                if path.endswith(operation):
                    segment = path[len(_AGENTS) : -len(operation)]
                    if segment and "/" not in segment:
                        return functools.partial(self._call, operation == "/stream", unquote(segment))
        return None

    async def _call(self, streaming: bool, agent: str | None, exchange: Exchange) -> None:
        head = exchange.head
        request_id = request_id_from(head.header(REQUEST_ID) or "")
        record = None
        try:
            if head.expect is not None and head.expect.strip().lower() != "100-continue":
                error = InvalidRequest("the only Expect the gateway answers is 100-continue")
                self._answer(exchange, 417, {}, error_answer(error)[2])
                return
            async with self.drain.scope():
                creds = credentials_from(head.headers, exchange.extra)
                identity, believed = authenticated(self.guard, creds, request_id)
                del creds  # every header, copied: not for the life of the call
                data = json_input.loads(await exchange.read(), self.listener.max_json_depth, "request body")
                inbound = inbound_of(data, agent, self.guard, identity, believed, _query(head.query))
                invocation = inbound.invocation
                request_id, record = invocation.context.request_id, invocation.record
                self.guard.authorize(identity, invocation.agent)
                operation = "stream" if streaming else "invoke"
                route = f"/v1/{operation}" if agent is None else f"/v1/agents/{{agent}}/{operation}"
                attributes = {
                    "http.request.method": "POST",
                    "url.path": unquote(head.path),
                    "url.scheme": self.scheme,
                    "http.route": route,
                }
                view = StepsView(self.gateway, self.guard, identity)
                span = (f"POST {route}", attributes)
                if streaming:
                    await stream_answer(
                        self.gateway,
                        self.listener,
                        view,
                        inbound,
                        span,
                        lambda: exchange.gone,
                        functools.partial(self._begin, exchange),
                        self.drain,
                    )
                    exchange.end()
                    return
                answer, headers = await invoke_answer(
                    self.gateway, self.listener, view, inbound, span, lambda: exchange.gone
                )
            self._answer(exchange, 200, headers, answer)
        except GatewayError as exc:
            if exchange.started:
                log.info("POST %s ended mid-answer: %s", head.path, exc)
                exchange.cut()
                return
            if not exc.agent and agent:
                exc.agent = agent
            status, headers, body = error_answer(exc, request_id, record)
            self._answer(exchange, status, headers, body)
        except BodyTooLarge:
            body = status_error_body(413, "Request Entity Too Large", request_id)
            self._answer(exchange, 413, {REQUEST_ID: request_id, **record_headers(record)}, body)
        except ConnectionError:
            log.debug("the caller closed the connection during POST %s", head.path)
            exchange.cut()

    async def _begin(self, exchange: Exchange, headers: dict[str, str]) -> Send:
        exchange.begin(200, self._fields(exchange, headers))

        async def send(frame: bytes) -> None:
            exchange.send(frame)
            await exchange.drain()

        return send

    def _answer(self, exchange: Exchange, status: int, headers: dict[str, str], body: object) -> None:
        if exchange.gone:
            return
        exchange.respond(status, [_JSON, *self._fields(exchange, headers)], json.dumps(body).encode())

    def _fields(self, exchange: Exchange, headers: dict[str, str]) -> list[tuple[str, str]]:
        fields = list(headers.items())
        if self.cors is not None and (origin := exchange.head.header("origin")):
            fields.extend(self.cors.answer_headers(origin).items())
        return fields


def _query(raw: str) -> dict[str, str] | None:
    """Routes may match on query parameters (the first value of each)."""
    if not raw:
        return None
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(key, value)
    return query
