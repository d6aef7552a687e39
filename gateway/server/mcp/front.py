"""The MCP front's handlers: POST (a JSON-RPC message), GET (2025-11-25's stream) and DELETE (a session's end)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry.trace import Tracer

from gateway.config.schema import GatewayConfig, McpStreams
from gateway.federation import Federation, VirtualServer
from gateway.model import InvalidRequest
from gateway.protocols import mcp
from gateway.server.json_body import read_json
from gateway.server.mcp.dispatch import MethodDispatch
from gateway.server.mcp.negotiation import initialize, negotiate
from gateway.server.mcp.sessions import Sessions
from gateway.server.mcp.stream_serving import get_stream, serve_stream
from gateway.server.mcp.streamed_call import StreamedCalls, wants_stream
from gateway.server.mcp.subscriptions import Subscribers, listen
from gateway.server.mcp.wire import check_origin, final_answer, json_answer, request_context, request_headers
from gateway.server.request_keys import GUARD_KEY, IDENTITY_KEY


class McpFront:
    """The MCP surface over a :class:`Federation`."""

    def __init__(
        self,
        federation: Federation,
        tracer: Tracer,
        keepalive: float | None,
        allowed_origins: list[str],
        authorization_servers: list[str] | None = None,
        streams: McpStreams | None = None,
    ) -> None:
        self.federation = federation
        self.stream_settings = streams or McpStreams()
        self.authorization_servers = authorization_servers or []
        self.keepalive = keepalive
        self.allowed_origins = allowed_origins
        self.subscribers = Subscribers(federation.notifications)
        self.sessions = Sessions(federation.notifications)
        self.methods = MethodDispatch(tracer, federation.notifications)
        self.streamed_calls = StreamedCalls(tracer, keepalive)

    def reload(self, config: GatewayConfig) -> Callable[[], Awaitable[None]]:
        """A reloaded `mcp:` section: the federation's upstreams and virtual servers, the streams'
        settings (for streams opened from now on) and the metadata's authorization servers."""
        self.stream_settings = config.mcp.streams
        self.authorization_servers = config.mcp.authorization_servers
        return self.federation.reload(config.mcp)

    async def aclose(self) -> None:
        """The listener stops: the calls still running for 2025-11-25 streams end (upstream too)."""
        await self.streamed_calls.aclose()

    def _server(self, request: web.Request) -> VirtualServer:
        """The virtual server a request is for, after the DNS-rebinding check (404 when the identity may not use it)."""
        check_origin(request, self.allowed_origins)
        name = request.match_info["server"]
        server = self.federation.servers.get(name)
        if server is None or not request.app[GUARD_KEY].may_use_mcp(request[IDENTITY_KEY], name):
            raise web.HTTPNotFound(reason=f"no MCP server named {name!r}")
        return server

    async def post(self, request: web.Request) -> web.StreamResponse:
        server = self._server(request)
        headers = request_headers(request)
        try:
            message = mcp.parse_message(await read_json(request, "MCP message"))
        except InvalidRequest as exc:
            return json_answer(mcp.error_message(None, mcp.McpError(mcp.PARSE_ERROR, exc.message)), 400)
        except mcp.McpError as exc:
            return json_answer(mcp.error_message(None, exc), exc.status)
        try:
            incoming = negotiate(request, server, message, headers, self.sessions)
        except mcp.McpError as exc:
            return json_answer(mcp.error_message(message.id, exc), exc.status)
        modern, session = incoming.modern, incoming.session
        if not message.is_request:
            if message.method == "notifications/cancelled" and session is not None:
                session.cancel(message.params.get("requestId"))
            elif message.method is None and session is not None:
                session.answered(message)
            return web.Response(status=202)  # notifications and responses: accepted, nothing to answer
        if message.method == "subscriptions/listen" and modern:
            return await listen(request, server, message, self.subscribers, self.keepalive)
        if wants_stream(message, session):
            return await self.streamed_calls.answer(incoming, self.stream_settings)
        response_headers: dict[str, str] = {}
        try:
            if message.method == "initialize":
                result, session_id = await initialize(incoming, self.sessions, self.stream_settings)
                response_headers[mcp.HEADER_SESSION] = session_id
            else:
                work = self.methods.dispatch(incoming)
                result = await (session.tracked(work, message.id) if session is not None else work)
        except mcp.McpError as exc:
            status = 404 if modern and exc.code == mcp.METHOD_NOT_FOUND else exc.status
            return json_answer(mcp.error_message(message.id, exc), status, response_headers)
        return json_answer(final_answer(message, result, modern), 200, response_headers)

    def _handshake_request(self, request: web.Request, method: str) -> tuple[VirtualServer, dict[str, str]]:
        """The server and headers of a GET or DELETE: 2025-11-25 only (405 for 2026-07-28, which has no session)."""
        server = self._server(request)
        headers = request_headers(request)
        if headers.get(mcp.HEADER_VERSION) == mcp.MODERN:
            raise web.HTTPMethodNotAllowed(method, ["POST"])
        return server, headers

    async def get(self, request: web.Request) -> web.StreamResponse:
        """2025-11-25's standalone SSE stream (server-initiated notifications); 405 for 2026-07-28 clients."""
        server, headers = self._handshake_request(request, "GET")
        if "text/event-stream" not in headers.get("accept", ""):
            raise web.HTTPNotAcceptable(reason="the GET stream needs Accept: text/event-stream")
        try:
            session = self.sessions.find(request, headers, server)
        except mcp.McpError as exc:
            return json_answer(mcp.error_message(None, exc), exc.status)
        stream, after = get_stream(server, session, headers, self.subscribers)
        return await serve_stream(request, session, stream, after, self.stream_settings, self.keepalive)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """A 2025-11-25 session's end: its streams, the calls still running for them, and its subscriptions."""
        server, headers = self._handshake_request(request, "DELETE")
        try:
            self.sessions.find(request, headers, server)
        except mcp.McpError as exc:
            return json_answer(mcp.error_message(None, exc), exc.status)
        await self.sessions.end(headers[mcp.HEADER_SESSION], request_context(request, None)[1])
        return web.Response(status=204)
