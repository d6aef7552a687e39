"""The MCP front: each virtual server at ``/mcp/<name>`` over Streamable HTTP, both revisions side by side.

A request whose ``_meta`` names ``2026-07-28`` is served statelessly: its
mirrored ``MCP-Protocol-Version`` / ``Mcp-Method`` / ``Mcp-Name`` headers must
match the body (400 HeaderMismatch otherwise), there is no session, and
``server/discover`` and ``subscriptions/listen`` are served. ``initialize``
starts a 2025-11-25 session (``Mcp-Session-Id``; the GET stream; DELETE ends it).

Authentication and per-identity rate limits happen in the listener's middleware
like every other route. Authorization is default deny per identity, virtual
server and name (``security.authorization[].mcp``): a name an identity may not
use is neither listed nor callable, and its upstream never hears of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry.trace import Tracer

from gateway.config.schema import GatewayConfig, McpStreams
from gateway.context import context_from_headers
from gateway.federation import ATTR_MCP_METHOD, ATTR_TOOL, CALLS, KINDS, Federation, VirtualServer
from gateway.model import Cancelled, Context, GatewayError, InvalidRequest
from gateway.protocols import mcp
from gateway.protocols.sse import format_sse
from gateway.server.disconnect import unless_caller_leaves
from gateway.server.inbound import server_span
from gateway.server.json_body import read_json
from gateway.server.mcp_streams import EventStream, SessionStreams
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY
from gateway.server.sse import SSE_HEADERS, SseWriter
from gateway.telemetry import tracing as t

log = logging.getLogger("agent_gateway.mcp")

SERVER_INFO = {"name": "agent-gateway", "version": "0.1.0"}
_MAX_SESSIONS = 10_000
_SESSION_IDLE = 3600.0
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# 2026-07-28 results that are CacheableResult (ttlMs and cacheScope required).
_CACHEABLE = frozenset({"server/discover", *KINDS, "resources/read"})


_FILTER_KEYS = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}


class Subscriber:
    """A client stream waiting for list changes: a 2026-07-28 listen (its filter and id) or a 2025-11-25 GET stream."""

    def __init__(self, methods: frozenset[str] | None, subscription_id: mcp.RequestId | None = None) -> None:
        self.methods = methods
        self.subscription_id = subscription_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)

    def offer(self, method: str) -> None:
        if self.methods is not None and method not in self.methods:
            return  # never a notification type the client did not ask for
        params: dict[str, Any] = {}
        if self.subscription_id is not None:
            params["_meta"] = {mcp.META_SUBSCRIPTION: self.subscription_id}
        self.push(mcp.notification(method, params or None))

    def push(self, message: dict[str, Any]) -> None:
        if not self.queue.full():  # a client too slow to read loses hints, not the gateway's memory
            self.queue.put_nowait(message)


class StreamSubscriber(Subscriber):
    """A 2025-11-25 GET stream: what it is sent is numbered and kept for a ``Last-Event-ID`` replay
    (the oldest dropped past the stream's limits), followed by a connection or not."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(None)
        self.stream = stream

    def push(self, message: dict[str, Any]) -> None:
        if not self.stream.closed:
            self.stream.append(json.dumps(message))


class McpSession:
    """A 2025-11-25 session: its negotiated version and its GET streams."""

    def __init__(self, server: str, version: str, identity: str, settings: McpStreams) -> None:
        self.server = server
        self.version = version
        self.identity = identity
        self.used = time.monotonic()
        # Its GET streams' subscriptions, and all its SSE streams (for Last-Event-ID).
        self.streams: set[Subscriber] = set()
        self.events = SessionStreams(settings.replay_events, settings.replay_bytes, settings.resume_window)
        # Requests in progress, by JSON-RPC id, for notifications/cancelled.
        self.inflight: dict[mcp.RequestId, asyncio.Future[Any]] = {}
        # logging/setLevel: the least severe log notification this client gets (None: none at all).
        self.log_level: str | None = None
        # resources/subscribe: the exposed URIs whose updates go to this session's GET streams.
        self.resources: set[str] = set()
        # The client's capabilities (initialize): what a tool may ask of it (sampling, elicitation, roots).
        self.capabilities: dict[str, Any] = {}
        # Requests the gateway sent this client on a tool call's stream, by id, awaiting its POSTed answer.
        self.awaiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def primes(self) -> bool:
        """Its streams open with a priming event and may be closed early for polling: 2025-11-25 (older
        clients cannot parse an event with empty data)."""
        return self.version == mcp.LEGACY


def _final(message: mcp.JsonRpcMessage, answer: Mapping[str, Any], modern: bool) -> dict[str, Any]:
    """The client's response to ``message`` from an upstream's (or our own) answer, in the client's revision."""
    if "error" in answer:
        return {"jsonrpc": "2.0", "id": message.id, "error": answer["error"]}
    body = dict(answer.get("result") or {})
    if modern:
        body.setdefault("resultType", "complete")
        if message.method in _CACHEABLE:
            # Lists are filtered per identity: never shareable across callers.
            body["cacheScope"] = "private"
            body.setdefault("ttlMs", 0)
    else:
        for key in ("resultType", "cacheScope", "ttlMs"):
            body.pop(key, None)
    return mcp.result_message(message.id, body)


def request_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _json(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers or {}))


Emit = Callable[[dict[str, Any]], Awaitable[None]]


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
        # Tool calls running for a 2025-11-25 stream, whether or not a client follows it now.
        self._calls: set[asyncio.Task[None]] = set()
        self.authorization_servers = authorization_servers or []
        self.tracer = tracer
        self.keepalive = keepalive
        self.allowed_origins = allowed_origins
        self.sessions: OrderedDict[str, McpSession] = OrderedDict()
        self.subscribers: dict[str, set[Subscriber]] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        federation.listeners.append(self._on_change)
        federation.resource_listeners.append(self._on_resource_updated)

    def reload(self, config: GatewayConfig) -> Callable[[], Awaitable[None]]:
        """A reloaded `mcp:` section: the federation's upstreams and virtual servers, the streams'
        settings (for streams opened from now on) and the metadata's authorization servers."""
        self.stream_settings = config.mcp.streams
        self.authorization_servers = config.mcp.authorization_servers
        return self.federation.reload(config.mcp)

    async def aclose(self) -> None:
        """The listener stops: the calls still running for 2025-11-25 streams end (upstream too)."""
        calls = list(self._calls)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    def _on_change(self, server: str, method: str) -> None:
        for subscriber in self.subscribers.get(server, ()):
            subscriber.offer(method)

    def _on_resource_updated(self, server: str, uri: str) -> None:
        """An upstream resource changed: tell the sessions that subscribed to it, on their GET streams."""
        update = mcp.notification(mcp.RESOURCE_UPDATED, {"uri": uri})
        for session in self.sessions.values():
            if session.server == server and uri in session.resources:
                for stream in session.streams:
                    stream.push(update)

    # -- the HTTP surface ------------------------------------------------------------------

    def _server(self, request: web.Request) -> VirtualServer:
        name = request.match_info["server"]
        server = self.federation.servers.get(name)
        if server is None or not request.app[GUARD_KEY].may_use_mcp(request[IDENTITY_KEY], name):
            raise web.HTTPNotFound(reason=f"no MCP server named {name!r}")
        return server

    def _check_origin(self, request: web.Request) -> None:
        """DNS-rebinding defence (both revisions): on a loopback listener the Host must be a loopback
        name, and a browser Origin must be that host or an allowed origin."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = str(sockname[0]) if isinstance(sockname, tuple) and sockname else ""
        if local in _LOOPBACK and (urlsplit(f"//{request.host}").hostname or "") not in _LOOPBACK_NAMES:
            raise web.HTTPForbidden(reason="this Host may not call the MCP endpoint (DNS rebinding)")
        origin = request.headers.get("origin")
        if origin is None or origin in self.allowed_origins or "*" in self.allowed_origins:
            return
        if urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(reason="this Origin may not call the MCP endpoint")

    async def post(self, request: web.Request) -> web.StreamResponse:
        self._check_origin(request)
        server = self._server(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            message = mcp.parse_message(await read_json(request, "MCP message"))
        except InvalidRequest as exc:
            return _json(mcp.error_message(None, mcp.McpError(mcp.PARSE_ERROR, exc.message)), 400)
        except mcp.McpError as exc:
            return _json(mcp.error_message(None, exc), exc.status)
        modern = message.meta.get(mcp.META_VERSION) is not None or headers.get(mcp.HEADER_VERSION) == mcp.MODERN
        session: McpSession | None = None
        try:
            if message.method == "initialize":
                modern = False
                if mcp.LEGACY not in server.versions:
                    # A server without the handshake era names what it speaks (2026-07-28 versioning).
                    asked = message.params.get("protocolVersion")
                    raise mcp.unsupported_version(asked if isinstance(asked, str) else "", server.versions)
            elif modern:
                mcp.check_modern_headers(message, headers, server.versions)
            else:
                session = self._legacy_session(request, headers, server)
        except mcp.McpError as exc:
            return _json(mcp.error_message(message.id, exc), exc.status)
        if not message.is_request:
            if message.method == "notifications/cancelled" and session is not None:
                self._cancel(session, message.params.get("requestId"))
            elif message.method is None and session is not None:
                # The client's answer to a request relayed on a tool call's stream.
                waiter = session.awaiting.pop(str(message.id), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(dict(message.raw))
            return web.Response(status=202)  # notifications and responses: accepted, nothing to answer
        if message.method == "subscriptions/listen" and modern:
            return await self._listen(request, server, message)
        if message.method == "tools/call" and (
            "progressToken" in message.meta
            or _log_level(message, session) is not None
            or (session is not None and any(k in session.capabilities for k in _INPUT_CAPABILITIES))
        ):
            return await self._stream_call(request, server, message, modern, session)
        response_headers: dict[str, str] = {}
        try:
            if message.method == "initialize":
                result, session_id = await self._initialize(request, server, message)
                response_headers[mcp.HEADER_SESSION] = session_id
            else:
                work = self._dispatch(request, server, message, modern, session)
                result = await self._tracked(session, work, message.id)
        except mcp.McpError as exc:
            status = 404 if modern and exc.code == mcp.METHOD_NOT_FOUND else exc.status
            return _json(mcp.error_message(message.id, exc), status, response_headers)
        return _json(_final(message, result, modern), 200, response_headers)

    async def _tracked(
        self, session: McpSession | None, work: Awaitable[dict[str, Any]], request_id: Any
    ) -> dict[str, Any]:
        """Run a 2025-11-25 session's request so its ``notifications/cancelled`` can stop it (and its upstream call)."""
        if session is None:
            return await work
        task = asyncio.ensure_future(work)
        session.inflight[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or current is None or current.cancelling():
                raise
            # Cancelled by the client: it ignores any answer now; this one only closes the POST.
            raise mcp.McpError(mcp.INTERNAL_ERROR, "the client cancelled the request") from None
        finally:
            session.inflight.pop(request_id, None)

    def _cancel(self, session: McpSession, request_id: Any) -> None:
        task = session.inflight.get(request_id)
        if task is not None:
            task.cancel()

    def _legacy_session(self, request: web.Request, headers: Mapping[str, str], server: VirtualServer) -> McpSession:
        version = headers.get(mcp.HEADER_VERSION)
        if version is not None and version not in mcp.HANDSHAKE_VERSIONS:
            raise mcp.unsupported_version(version, server.versions)
        session_id = headers.get(mcp.HEADER_SESSION)
        if session_id is None:
            raise mcp.McpError(
                mcp.INVALID_REQUEST,
                "Bad Request: no Mcp-Session-Id; send initialize first, or use 2026-07-28 with "
                f"params._meta[{mcp.META_VERSION!r}]",
                status=400,
            )
        session = self.sessions.get(session_id)
        if session is None or session.server != server.name or session.identity != request[IDENTITY_KEY].name:
            raise mcp.McpError(mcp.INVALID_REQUEST, "Session not found: initialize again", status=404)
        session.used = time.monotonic()
        self.sessions.move_to_end(session_id)
        return session

    async def _initialize(
        self, request: web.Request, server: VirtualServer, message: mcp.JsonRpcMessage
    ) -> tuple[dict[str, Any], str]:
        await server.ready(self._context(request, message)[1])
        asked = message.params.get("protocolVersion")
        version = asked if isinstance(asked, str) and asked in mcp.HANDSHAKE_VERSIONS else mcp.LEGACY
        session_id = secrets.token_urlsafe(24)
        session = McpSession(server.name, version, request[IDENTITY_KEY].name, self.stream_settings)
        self.sessions[session_id] = session
        capabilities = message.params.get("capabilities")
        if isinstance(capabilities, Mapping):
            session.capabilities = dict(capabilities)
        # Least recently used first: drop idle sessions (their clients initialize again on a 404) and the excess.
        idle_since = time.monotonic() - _SESSION_IDLE
        while self.sessions and (
            len(self.sessions) > _MAX_SESSIONS or next(iter(self.sessions.values())).used < idle_since
        ):
            oldest = next(iter(self.sessions.values()))
            if oldest.streams and len(self.sessions) <= _MAX_SESSIONS:
                break  # a session with an open GET stream is in use
            _, dropped = self.sessions.popitem(last=False)
            dropped.events.close()
            if dropped.resources:
                # Its subscriptions go with it (the upstream is told when no one follows a resource any more).
                release = asyncio.create_task(self._release(dropped, self._context(request, None)[1]))
                self._releasing.add(release)
                release.add_done_callback(self._releasing.discard)
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": server.capabilities(),
            "serverInfo": SERVER_INFO,
        }
        if server.spec.instructions:
            result["instructions"] = server.spec.instructions
        return {"result": result}, session_id

    async def get(self, request: web.Request) -> web.StreamResponse:
        """2025-11-25's standalone SSE stream (server-initiated notifications); 405 for 2026-07-28 clients."""
        self._check_origin(request)
        server = self._server(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get(mcp.HEADER_VERSION) == mcp.MODERN:
            raise web.HTTPMethodNotAllowed("GET", ["POST"])
        if "text/event-stream" not in headers.get("accept", ""):
            raise web.HTTPNotAcceptable(reason="the GET stream needs Accept: text/event-stream")
        try:
            session = self._legacy_session(request, headers, server)
        except mcp.McpError as exc:
            return _json(mcp.error_message(None, exc), exc.status)
        last_event_id = headers.get("last-event-id")
        found = session.events.find(last_event_id) if last_event_id else None
        if found is not None:
            # Resume that stream (a POST's answer or a GET stream) after the client's cursor.
            stream, after = found
        else:
            # No cursor, or one naming no stream of this session (another session's, or one given up):
            # the spec lets a server ignore it, and never replay another stream's messages. A new GET stream.
            stream, after = self._open_get_stream(server, session), -1
        return await self._serve(request, session, stream, after)

    def _open_get_stream(self, server: VirtualServer, session: McpSession) -> EventStream:
        stream = session.events.open()
        if session.primes:
            stream.append("")
        subscriber = StreamSubscriber(stream)
        session.streams.add(subscriber)
        self.subscribers.setdefault(server.name, set()).add(subscriber)
        self.federation.watch(server.name)

        def unsubscribe() -> None:
            session.streams.discard(subscriber)
            self.subscribers.get(server.name, set()).discard(subscriber)

        stream.on_abandoned = unsubscribe
        return stream

    async def _serve(
        self, request: web.Request, session: McpSession, stream: EventStream, after: int
    ) -> web.StreamResponse:
        """One connection following a session's stream from the event after number ``after``: until
        the stream ends, the client leaves, a newer connection takes it over, or (``streams.hold``)
        the gateway closes the connection, not the stream, so the client polls with Last-Event-ID."""
        hold = self.stream_settings.hold if session.primes else None
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            async with SseWriter(response, self.keepalive) as writer:
                # The client leaving (a closed connection, seen even while the stream is quiet) ends the
                # connection, not the stream: it waits for a reconnect for the resume window.
                with contextlib.suppress(Cancelled):
                    await unless_caller_leaves(request, self._pump(writer, stream, after, hold))
            await response.write_eof()
        except ConnectionError:
            pass
        finally:
            session.events.watch(stream)
        return response

    async def _pump(self, writer: SseWriter, stream: EventStream, after: int, hold: float | None) -> None:
        retry = f"retry: {round(self.stream_settings.retry * 1000)}\n"
        try:
            async with asyncio.timeout(hold), contextlib.aclosing(stream.follow(after)) as events:
                async for event_id, data in events:
                    if data:
                        await writer.send(format_sse(data, "message", event_id))
                    else:  # the priming event: a cursor before any message, and the reconnect delay
                        await writer.send(f"id: {event_id}\n{retry}data: \n\n".encode())
        except TimeoutError:
            await writer.send(f"{retry}\n".encode())  # closing the connection, not the stream: poll again

    async def delete(self, request: web.Request) -> web.StreamResponse:
        self._check_origin(request)
        server = self._server(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get(mcp.HEADER_VERSION) == mcp.MODERN:
            raise web.HTTPMethodNotAllowed("DELETE", ["POST"])
        try:
            session = self._legacy_session(request, headers, server)
        except mcp.McpError as exc:
            return _json(mcp.error_message(None, exc), exc.status)
        self.sessions.pop(headers[mcp.HEADER_SESSION], None)
        session.events.close()  # its streams end, and the calls still running for them
        await self._release(session, self._context(request, None)[1])
        return web.Response(status=204)

    async def _release(self, session: McpSession, context: Context) -> None:
        """Drop an ended session's resource subscriptions."""
        for uri in sorted(session.resources):
            with contextlib.suppress(mcp.McpError, GatewayError):
                await self.federation.unsubscribe(session.server, uri, context)
        session.resources.clear()

    async def _listen(
        self, request: web.Request, server: VirtualServer, message: mcp.JsonRpcMessage
    ) -> web.StreamResponse:
        """2026-07-28 ``subscriptions/listen``: acknowledge the filter, then pass on the list changes it
        asked for (from every upstream of the server) until the client closes the stream."""
        wanted = message.params.get("notifications")
        wanted = wanted if isinstance(wanted, Mapping) else {}
        honoured = {k: v for k, v in wanted.items() if k in _FILTER_KEYS and v is True}
        assert message.id is not None
        subscriber = Subscriber(frozenset(_FILTER_KEYS[k] for k in honoured), message.id)
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no"}
        )
        await response.prepare(request)
        ack = mcp.notification(
            "notifications/subscriptions/acknowledged",
            {"_meta": {mcp.META_SUBSCRIPTION: message.id}, "notifications": honoured},
        )
        self.subscribers.setdefault(server.name, set()).add(subscriber)
        self.federation.watch(server.name)
        try:
            async with SseWriter(response, self.keepalive) as writer:
                await writer.send(format_sse(json.dumps(ack), "message"))
                # Until the client closes the stream (a write or keep-alive fails) or the gateway stops.
                while (item := await subscriber.queue.get()) is not None:
                    await writer.send(format_sse(json.dumps(item), "message"))
        finally:
            self.subscribers.get(server.name, set()).discard(subscriber)
        return response

    async def _stream_call(
        self,
        request: web.Request,
        server: VirtualServer,
        message: mcp.JsonRpcMessage,
        modern: bool,
        session: McpSession | None,
    ) -> web.StreamResponse:
        """A tools/call asking for progress or logs, or from a 2025-11-25 client a tool may ask for input:
        an SSE answer with the upstream's progress and log notifications passed on as they come
        (unbuffered, keep-alives while quiet). The upstream gets a token of ours, so tokens of different
        clients never meet on a shared upstream session, and the client's log level (logs below it are
        dropped here too: a shared 2025-11-25 upstream session has one level for every client). A
        2026-07-28 upstream's ``input_required`` result is driven for a 2025-11-25 client, which knows no
        such result: each input request goes to the client on this stream as its own request
        (sampling/createMessage, elicitation/create, roots/list), and the call is retried upstream with
        the client's answers.

        A 2026-07-28 client's stream is its connection: closing it drops the upstream call. A session's
        stream is resumable: the call runs on its own, its events kept for a ``Last-Event-ID`` replay,
        and only ``notifications/cancelled``, the session's end or no client for the resume window
        cancel it upstream (a disconnection is not a cancellation)."""
        name = message.params.get("name")
        if not isinstance(name, str) or not request.app[GUARD_KEY].may_use_mcp(
            request[IDENTITY_KEY], server.name, name
        ):
            error = mcp.McpError(mcp.INVALID_PARAMS, f"unknown tool: {name!r}")
            return _json(mcp.error_message(message.id, error))
        client_token = message.meta.get("progressToken")
        ours = f"agw-{secrets.token_hex(8)}"
        level = _log_level(message, session)
        params = {k: v for k, v in message.params.items() if k != "_meta"}
        params["_meta"] = {}
        if client_token is not None:
            params["_meta"]["progressToken"] = ours
        if level is not None:
            params["_meta"][mcp.META_LOG_LEVEL] = level
        if session is not None:
            params["_meta"][mcp.META_CLIENT_CAPABILITIES] = session.capabilities
        headers, context = self._context(request, message)
        relay = _CallRelay(name, ours, client_token, level)

        async def run(emit: Emit) -> None:
            await self._run_call(server, message, modern, session, params, relay, headers, context, emit)

        if session is None:
            response = web.StreamResponse(headers=SSE_HEADERS)
            await response.prepare(request)
            async with SseWriter(response, self.keepalive) as writer:

                async def send(item: dict[str, Any]) -> None:
                    await writer.send(format_sse(json.dumps(item), "message"))

                await run(send)
            await response.write_eof()
            return response
        stream = session.events.open()
        if session.primes:
            stream.append("")

        async def keep(item: dict[str, Any]) -> None:
            await stream.room()
            stream.append(json.dumps(item))

        task = asyncio.create_task(run(keep), name=f"agw-mcp-call-{name}")
        self._calls.add(task)
        assert message.id is not None
        request_id = message.id
        session.inflight[request_id] = task  # notifications/cancelled stops it

        def finished(done: asyncio.Task[None]) -> None:
            self._calls.discard(done)
            if session.inflight.get(request_id) is done:
                del session.inflight[request_id]
            stream.close()
            if not done.cancelled() and done.exception() is not None:
                log.error("MCP tool call %s failed", name, exc_info=done.exception())

        task.add_done_callback(finished)
        stream.on_abandoned = task.cancel
        return await self._serve(request, session, stream, -1)

    async def _run_call(
        self,
        server: VirtualServer,
        message: mcp.JsonRpcMessage,
        modern: bool,
        session: McpSession | None,
        params: dict[str, Any],
        relay: _CallRelay,
        headers: Mapping[str, str],
        context: Context,
        emit: Emit,
    ) -> None:
        """One streamed tools/call upstream, its notifications and its answer (or error) emitted in order."""
        attributes = {ATTR_MCP_METHOD: "tools/call", ATTR_TOOL: relay.name, t.ATTR_OPERATION: "execute_tool"}

        async def respond(answer: dict[str, Any]) -> None:
            await server.respond("tools/call", params, answer, context)

        with server_span(self.tracer, f"tools/call {relay.name}", headers, context, attributes):
            items = server.call_stream("tools/call", params, context)
            try:
                for _ in range(_MAX_INPUT_ROUNDS):
                    final = await self._relay(emit, items, relay, session, respond)
                    if session is None or not _needs_input(final):
                        await emit(_final(message, final, modern))
                        break
                    params = {**params, **await self._ask_client(emit, session, final["result"])}
                    await items.aclose()
                    items = server.call_stream("tools/call", params, context)
                else:
                    raise mcp.McpError(mcp.INTERNAL_ERROR, "the tool kept asking for input; gave up")
            except mcp.McpError as exc:
                await emit(mcp.error_message(message.id, exc))
            except GatewayError as exc:
                error = mcp.McpError(mcp.INTERNAL_ERROR, exc.message, {"code": exc.code.value})
                await emit(mcp.error_message(message.id, error))
            finally:
                await items.aclose()

    async def _relay(
        self,
        emit: Emit,
        items: AsyncIterator[dict[str, Any]],
        relay: _CallRelay,
        session: McpSession | None,
        respond: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> dict[str, Any]:
        """Pass one upstream call's notifications on to the client, and its requests (answered with
        ``respond``); return its final answer."""
        async for item in items:
            if "method" in item and "id" in item:
                await respond(await self._answer_for_upstream(emit, session, item))
                continue
            if "method" in item:
                item_params = dict(item.get("params") or {})
                if item.get("method") == "notifications/progress":
                    if item_params.get("progressToken") != relay.ours or relay.client_token is None:
                        continue
                    item_params["progressToken"] = relay.client_token
                elif item.get("method") == "notifications/message" and not _severe_enough(
                    item_params.get("level"), relay.level
                ):
                    continue
                await emit({**item, "params": item_params})
                continue
            return item
        raise mcp.McpError(mcp.INTERNAL_ERROR, "the upstream ended the call without an answer")

    async def _ask_one(self, emit: Emit, session: McpSession, method: str, params: Any) -> dict[str, Any]:
        """Send the client one request on the call's stream (an id of ours) and return its POSTed answer."""
        request_id = f"agw-{secrets.token_hex(8)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        session.awaiting[request_id] = waiter
        try:
            await emit({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            return await asyncio.wait_for(waiter, _INPUT_TIMEOUT)
        except TimeoutError:
            raise mcp.McpError(mcp.INTERNAL_ERROR, f"the client did not answer {method}") from None
        finally:
            session.awaiting.pop(request_id, None)

    async def _answer_for_upstream(
        self, emit: Emit, session: McpSession | None, request: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A 2025-11-25 upstream's request during a call (sampling, elicitation), put to the client on the
        call's stream when it declared the capability; the upstream's answer (the client's, or a refusal)."""
        method = str(request.get("method"))
        capability = _CAPABILITY_OF.get(method)
        if session is None or capability is None or capability not in session.capabilities:
            return mcp.refusal(request)
        try:
            answer = await self._ask_one(emit, session, method, request.get("params") or {})
        except mcp.McpError as exc:
            return mcp.error_message(request.get("id"), exc)
        if isinstance(answer.get("result"), Mapping):
            return mcp.result_message(request.get("id"), answer["result"])
        error = answer.get("error")
        reason = error.get("message") if isinstance(error, Mapping) else None
        return mcp.refusal(request, f"the client refused {method}: {reason}")

    async def _ask_client(self, emit: Emit, session: McpSession, result: Mapping[str, Any]) -> dict[str, Any]:
        """Send each of an ``input_required`` result's requests to the client, wait for its answers,
        and return the retry's ``inputResponses`` (and ``requestState``, echoed)."""
        requests = result.get("inputRequests")
        responses: dict[str, Any] = {}
        for key, asked in (requests or {}).items() if isinstance(requests, Mapping) else ():
            if not isinstance(asked, Mapping) or not isinstance(asked.get("method"), str):
                raise mcp.McpError(mcp.INTERNAL_ERROR, f"the upstream asked for malformed input {key!r}")
            answer = await self._ask_one(emit, session, asked["method"], asked.get("params") or {})
            if not isinstance(answer.get("result"), Mapping):
                raw_error = answer.get("error")
                error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
                raise mcp.McpError(
                    mcp.INTERNAL_ERROR, f"the client refused {asked['method']}: {error.get('message', '')}", error
                )
            responses[str(key)] = answer["result"]
        retry: dict[str, Any] = {"inputResponses": responses}
        if result.get("requestState") is not None:
            retry["requestState"] = result["requestState"]
        return retry

    # -- methods ----------------------------------------------------------------------------

    def _context(self, request: web.Request, message: mcp.JsonRpcMessage | None) -> tuple[dict[str, str], Context]:
        believed: dict[str, str] = request[HEADERS_KEY]
        headers = dict(believed)
        # Trace context in _meta (SEP-414) counts when the HTTP headers carry none.
        meta = message.meta if message is not None else {}
        for key in mcp.TRACE_KEYS:
            value = meta.get(key)
            if isinstance(value, str) and key not in headers:
                headers[key] = value
        return headers, context_from_headers(headers)

    async def _dispatch(
        self,
        request: web.Request,
        server: VirtualServer,
        message: mcp.JsonRpcMessage,
        modern: bool,
        session: McpSession | None,
    ) -> dict[str, Any]:
        method = message.method or ""
        if method == "ping":
            return {"result": {}}
        if method == "server/discover":
            await server.ready(self._context(request, message)[1])
            discover: dict[str, Any] = {
                "supportedVersions": list(server.versions),
                "capabilities": server.capabilities(),
                "_meta": {mcp.META_SERVER_INFO: SERVER_INFO},
            }
            if server.spec.instructions:
                discover["instructions"] = server.spec.instructions
            return {"result": discover}
        # logging/setLevel and resources/(un)subscribe hold session state: 2025-11-25 only (2026-07-28 puts
        # the level in each request's _meta, and resource subscriptions in subscriptions/listen).
        served = method in KINDS or method in CALLS or method == "completion/complete"
        if not served and (session is None or method not in _SESSION_METHODS):
            raise mcp.McpError(mcp.METHOD_NOT_FOUND, f"Method not found: {method}")
        headers, context = self._context(request, message)
        guard = request.app[GUARD_KEY]
        identity = request[IDENTITY_KEY]
        attributes = {ATTR_MCP_METHOD: method, "http.request.method": "POST", "url.path": request.path}
        if method == "logging/setLevel":
            level = message.params.get("level")
            if level not in mcp.LOG_LEVELS:
                raise mcp.McpError(mcp.INVALID_PARAMS, f"params.level must be one of {', '.join(mcp.LOG_LEVELS)}")
            assert session is not None
            session.log_level = str(level)
            with server_span(self.tracer, method, headers, context, attributes):
                await self._upstream_errors(server.set_log_level(str(level), context))
            return {"result": {}}
        key = mcp.NAMED_METHODS.get(method) or _SESSION_METHODS.get(method)
        name = message.params.get(key) if key else None
        if method == "completion/complete":
            name = _completion_name(message.params)
        if method == "tools/call" and isinstance(name, str):
            attributes[ATTR_TOOL] = name
            attributes[t.ATTR_OPERATION] = "execute_tool"
        span_name = f"{method} {name}" if isinstance(name, str) else method
        with server_span(self.tracer, span_name, headers, context, attributes):
            try:
                if method in KINDS:
                    items = await server.list(method, context)
                    item_key, name_field = KINDS[method]
                    visible = [i for i in items if guard.may_use_mcp(identity, server.name, str(i[name_field]))]
                    return {"result": {item_key: visible}}
                if not isinstance(name, str) or not guard.may_use_mcp(identity, server.name, name):
                    # Indistinguishable from a name that does not exist: nothing leaks, nothing goes upstream.
                    what = "reference" if method == "completion/complete" else method.split("/")[0][:-1]
                    raise mcp.McpError(mcp.INVALID_PARAMS, f"unknown {what}: {name!r}")
                params = {k: v for k, v in message.params.items() if k != "_meta"}
                capabilities = message.meta.get(mcp.META_CLIENT_CAPABILITIES)
                if modern and isinstance(capabilities, Mapping):
                    # What the upstream may ask this client for (an input_required result passes through).
                    params["_meta"] = {mcp.META_CLIENT_CAPABILITIES: dict(capabilities)}
                if method == "completion/complete":
                    return await server.complete(params, context)
                if method in _SESSION_METHODS:
                    assert session is not None
                    if method == "resources/subscribe":
                        if name not in session.resources:
                            await self.federation.subscribe(server.name, name, context)
                            session.resources.add(name)
                    elif name in session.resources:
                        session.resources.discard(name)
                        await self.federation.unsubscribe(server.name, name, context)
                    return {"result": {}}
                if modern and method == "tools/call":
                    # Parameters mirrored in Mcp-Param-* headers must match the body, before anything goes upstream.
                    schema = await server.input_schema(name, context)
                    mcp.check_param_headers(schema, params.get("arguments"), request_headers(request))
                return await server.call(method, params, context)
            except GatewayError as exc:
                raise _gateway_error(exc) from None

    async def _upstream_errors(self, work: Awaitable[None]) -> None:
        try:
            await work
        except GatewayError as exc:
            raise _gateway_error(exc) from None


@dataclass(frozen=True, slots=True)
class _CallRelay:
    """What one streamed call passes on: the tool, the progress tokens (ours upstream, the client's) and
    the client's log level."""

    name: str
    ours: str
    client_token: Any
    level: str | None


# What a tool may ask a client for during a call (2025-11-25 capabilities), and the capability each request needs.
_INPUT_CAPABILITIES = ("sampling", "elicitation", "roots")
_CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
_MAX_INPUT_ROUNDS = 8
# How long a relayed request waits for the client's answer (a person may be answering an elicitation).
_INPUT_TIMEOUT = 600.0


def _needs_input(answer: Mapping[str, Any]) -> bool:
    result = answer.get("result")
    return isinstance(result, Mapping) and result.get("resultType") == "input_required"


# Session-state methods of 2025-11-25 and the parameter naming what they act on.
_SESSION_METHODS = {"resources/subscribe": "uri", "resources/unsubscribe": "uri", "logging/setLevel": "level"}


def _gateway_error(exc: GatewayError) -> mcp.McpError:
    data = {"code": exc.code.value, "attempts": exc.details.get("attempts", 0)}
    return mcp.McpError(mcp.INTERNAL_ERROR, exc.message, data)


def _completion_name(params: Mapping[str, Any]) -> str | None:
    """What a completion is about, for authorization: the prompt's name or the resource's URI."""
    ref = params.get("ref")
    if not isinstance(ref, Mapping):
        return None
    value = ref.get("name") if ref.get("type") == "ref/prompt" else ref.get("uri")
    return value if isinstance(value, str) else None


def _log_level(message: mcp.JsonRpcMessage, session: McpSession | None) -> str | None:
    """The client's log level for this request: 2026-07-28's ``_meta``, or its 2025-11-25 session's."""
    level = message.meta.get(mcp.META_LOG_LEVEL)
    if isinstance(level, str) and level in mcp.LOG_LEVELS:
        return level
    return session.log_level if session is not None else None


def _severe_enough(level: Any, threshold: str | None) -> bool:
    if threshold is None:
        return False
    rank = mcp.LOG_LEVELS.index(level) if level in mcp.LOG_LEVELS else len(mcp.LOG_LEVELS)
    return rank >= mcp.LOG_LEVELS.index(threshold)


MCP_FRONT_KEY = web.AppKey("mcp_front", McpFront)
METADATA_PATH = "/.well-known/oauth-protected-resource"


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def protected_resource_metadata(request: web.Request) -> web.Response:
    """RFC 9728 metadata for ``/mcp/<server>``: where a client gets a token for it."""
    front = request.app[MCP_FRONT_KEY]
    server = request.match_info.get("server")
    if server is not None and server not in front.federation.servers:
        raise web.HTTPNotFound(reason=f"no MCP server named {server!r}")
    resource = f"{_origin(request)}/mcp/{server}" if server else _origin(request)
    body = {
        "resource": resource,
        "authorization_servers": front.authorization_servers,
        "bearer_methods_supported": ["header"],
    }
    return web.json_response(body, headers={"cache-control": "max-age=300"})


async def _point_at_metadata(request: web.Request, response: web.StreamResponse) -> None:
    """A 401 from an MCP endpoint names its metadata (MCP authorization, RFC 9728 section 5.1)."""
    if response.status == 401 and request.path.startswith("/mcp/"):
        url = f"{_origin(request)}{METADATA_PATH}{request.path}"
        response.headers["www-authenticate"] = f'Bearer realm="agent-gateway", resource_metadata="{url}"'


async def _close_front(app: web.Application) -> None:
    await app[MCP_FRONT_KEY].aclose()


def add_mcp_routes(app: web.Application, front: McpFront) -> None:
    app[MCP_FRONT_KEY] = front
    app.on_shutdown.append(_close_front)
    app.router.add_get(METADATA_PATH, protected_resource_metadata)
    app.router.add_get(METADATA_PATH + "/mcp/{server}", protected_resource_metadata)
    app.on_response_prepare.append(_point_at_metadata)
    app.router.add_post("/mcp/{server}", front.post)
    app.router.add_get("/mcp/{server}", front.get)
    app.router.add_delete("/mcp/{server}", front.delete)
