"""The HTTP front's hot routes on the native HTTP/1.1 server (:mod:`gateway.http1.server`):
``POST /v1/invoke``, ``POST /v1/agents/{agent}/invoke``, their ``/stream`` twins (SSE), and
the passthrough, ``/v1/proxy/{agent}/...`` (any method, bodies streamed both ways).

The same answers as the aiohttp handlers of :mod:`gateway.server.http` (which serve them with
``server.http_server: aiohttp``), through the same functions: the request id, the drain scope,
authentication, the call and its errors. tests/server/test_http_native.py sends both servers
the same requests and compares the answers.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, unquote

from multidict import CIMultiDict

from gateway import json_input
from gateway.config.schema import HttpListener
from gateway.http1.server import BodyTooLarge, Exchange, Handler, RequestHead
from gateway.model import CallRecord, GatewayError
from gateway.pipeline import Gateway
from gateway.propagation import REQUEST_ID
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.server.cors import CorsRules
from gateway.server.drain import Drain
from gateway.server.http import (
    Send,
    authenticated,
    credentials_from,
    error_answer,
    expectation_refused,
    inbound_of,
    invoke_answer,
    request_id_from,
    status_error_body,
    stream_answer,
)
from gateway.server.inbound import record_headers
from gateway.server.passthrough import Passthrough, ProxiedRequest
from gateway.server.steps_view import StepsView

log = logging.getLogger("agent_gateway.http")

_JSON = ("content-type", "application/json; charset=utf-8")


class _Ids:
    """What an error answer names, filled in as the call learns it."""

    __slots__ = ("record", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.record: CallRecord | None = None


Work = Callable[[Exchange, Identity, dict[str, str], _Ids], Awaitable[None]]
_AGENTS = "/v1/agents/"
_PROXY = "/v1/proxy/"
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
        passthrough: Passthrough | None = None,
    ) -> None:
        self.passthrough = passthrough
        self.gateway = gateway
        self.listener = listener
        self.guard = guard
        self.drain = drain
        self.cors = cors
        self.scheme = scheme
        self._any: dict[str, Handler] = {op: functools.partial(self._call, op == "/stream", None) for op in _OPERATIONS}

    def route(self, head: RequestHead) -> Handler | None:
        encoding = head.header("content-encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            return None  # a compressed body: aiohttp's decoders (and their errors) serve it
        path = head.path
        if path.startswith(_PROXY) and self.passthrough is not None:
            agent, slash, _ = path[len(_PROXY) :].partition("/")
            if agent and slash and head.method != "OPTIONS":  # OPTIONS: aiohttp answers CORS preflights
                proxy = functools.partial(self._proxy, unquote(agent))
                proxy.streams_body = True  # type: ignore[attr-defined]
                return proxy
            return None
        if head.method != "POST":
            return None
        if path.startswith("/v1/") and (handler := self._any.get(path[3:])) is not None:
            return handler
        if path.startswith(_AGENTS):
            for operation in _OPERATIONS:
                if path.endswith(operation):
                    segment = path[len(_AGENTS) : -len(operation)]
                    if segment and "/" not in segment:
                        return functools.partial(self._call, operation == "/stream", unquote(segment))
        return None

    async def _serve(self, exchange: Exchange, agent: str | None, work: Work) -> None:
        """What every native route does around its work, as aiohttp's middlewares do around a
        handler: the request id, Expect, the drain scope, authentication, and the error answers."""
        head = exchange.head
        ids = _Ids(request_id_from(head.header(REQUEST_ID) or ""))
        try:
            if (refused := expectation_refused(head.expect)) is not None:
                self._answer(exchange, 417, {}, error_answer(refused)[2])
                return
            async with self.drain.scope():
                creds = credentials_from(head.headers, exchange.extra)
                identity, believed = authenticated(self.guard, creds, ids.request_id)
                del creds  # every header, copied: not for the life of the call
                await work(exchange, identity, believed, ids)
        except GatewayError as exc:
            if exchange.started:
                log.info("%s %s ended mid-answer: %s", head.method, head.path, exc)
                exchange.cut()
                return
            if not exc.agent and agent:
                exc.agent = agent
            status, headers, body = error_answer(exc, ids.request_id, ids.record)
            self._answer(exchange, status, headers, body)
        except BodyTooLarge:
            body = status_error_body(413, "Request Entity Too Large", ids.request_id)
            self._answer(exchange, 413, {REQUEST_ID: ids.request_id, **record_headers(ids.record)}, body)
        except ConnectionError:
            log.debug("the caller closed the connection during %s %s", head.method, head.path)
            exchange.cut()

    def _attributes(self, head: RequestHead, route: str) -> dict[str, str]:
        return {
            "http.request.method": head.method,
            "url.path": unquote(head.path),
            "url.scheme": self.scheme,
            "http.route": route,
        }

    async def _call(self, streaming: bool, agent: str | None, exchange: Exchange) -> None:
        async def work(exchange: Exchange, identity: Identity, believed: dict[str, str], ids: _Ids) -> None:
            head = exchange.head
            data = json_input.loads(await exchange.read(), self.listener.max_json_depth, "request body")
            inbound = inbound_of(data, agent, self.guard, identity, believed, _query(head.query))
            invocation = inbound.invocation
            ids.request_id, ids.record = invocation.context.request_id, invocation.record
            self.guard.authorize(identity, invocation.agent)
            operation = "stream" if streaming else "invoke"
            route = f"/v1/{operation}" if agent is None else f"/v1/agents/{{agent}}/{operation}"
            view = StepsView(self.gateway, self.guard, identity)
            span = (f"POST {route}", self._attributes(head, route))

            def gone() -> bool:
                return exchange.gone

            if streaming:
                begin = functools.partial(self._begin, exchange)
                await stream_answer(self.gateway, self.listener, view, inbound, span, gone, begin, self.drain)
                exchange.end()
                return
            answer, headers = await invoke_answer(self.gateway, self.listener, view, inbound, span, gone)
            self._answer(exchange, 200, headers, answer)

        await self._serve(exchange, agent, work)

    async def _proxy(self, agent: str, exchange: Exchange) -> None:
        async def work(exchange: Exchange, identity: Identity, believed: dict[str, str], ids: _Ids) -> None:
            assert self.passthrough is not None
            head = exchange.head
            declared = head.header("content-length")
            length = int(declared) if declared is not None and declared.isdigit() else None
            major, _, minor = head.version.partition(".")
            call = ProxiedRequest(
                agent,
                head.method,
                head.target.decode("utf-8", "surrogateescape"),
                (int(major), int(minor or 0)),
                # The names as the caller spelled them, the values as decoded.
                CIMultiDict((n.decode("latin-1"), v) for (n, _), (_, v) in zip(head.raw, head.headers, strict=True)),
                _query(head.query) or {},
                head.chunked or bool(length),
                length,
                exchange.read,
                exchange.pieces,
            )
            route = "/v1/proxy/{agent}/{tail}"
            span = (f"{head.method} {route}", self._attributes(head, route))
            try:
                await self.passthrough.serve(call, self.guard, identity, believed, _Sink(exchange, self), span)
            finally:
                ids.request_id = call.request_id or ids.request_id
                ids.record = call.record

        await self._serve(exchange, agent, work)

    async def _begin(self, exchange: Exchange, headers: dict[str, str]) -> Send:
        exchange.begin(200, self._fields(exchange, headers.items()))

        async def send(frame: bytes) -> None:
            exchange.send(frame)
            await exchange.drain()

        return send

    def _answer(self, exchange: Exchange, status: int, headers: dict[str, str], body: object) -> None:
        if exchange.gone:
            return
        exchange.respond(status, [_JSON, *self._fields(exchange, headers.items())], json.dumps(body).encode())

    def _fields(self, exchange: Exchange, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        fields = list(headers)
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


class _Sink:
    """The passthrough's answer on the native server."""

    def __init__(self, exchange: Exchange, front: NativeFront) -> None:
        self.exchange = exchange
        self.front = front

    @property
    def started(self) -> bool:
        return self.exchange.started

    async def start(self, status: int, reason: str, headers: CIMultiDict[str], length: int | None) -> None:
        # Every field as the agent sent it (repeated ones too: Set-Cookie), then CORS's.
        fields = self.front._fields(self.exchange, headers.items())
        self.exchange.begin(status, fields, length, reason, dated="date" not in headers)  # the agent's Date stands

    async def write(self, chunk: bytes) -> None:
        self.exchange.send(chunk)
        await self.exchange.drain()

    async def end(self) -> None:
        self.exchange.end()

    def cut(self) -> None:
        self.exchange.cut()
