"""A POSTed request answered by method: ping and discovery, the merged lists (filtered per identity), the
named calls routed to their upstream, completions, and 2025-11-25's session-state methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from opentelemetry.trace import Tracer

from gateway.federation import VirtualServer
from gateway.federation.attributes import ATTR_MCP_METHOD, ATTR_TOOL
from gateway.federation.catalog import CALLS, KINDS
from gateway.federation.notifications import UpstreamNotifications
from gateway.model import Context, GatewayError
from gateway.protocols import mcp
from gateway.server.inbound import server_span
from gateway.server.mcp.negotiation import Incoming, discover
from gateway.server.mcp.sessions import McpSession
from gateway.server.mcp.wire import request_context, request_headers, upstream_error
from gateway.server.request_keys import GUARD_KEY, IDENTITY_KEY
from gateway.telemetry import tracing as t

# Session-state methods of 2025-11-25 and the parameter naming what they act on.
_SESSION_METHODS = {"resources/subscribe": "uri", "resources/unsubscribe": "uri", "logging/setLevel": "level"}


class MethodDispatch:
    """The answers to the requests a POST carries (a streamed tools/call aside), each in a SERVER span."""

    def __init__(self, tracer: Tracer, notifications: UpstreamNotifications) -> None:
        self.tracer = tracer
        self.notifications = notifications

    async def dispatch(self, incoming: Incoming) -> dict[str, Any]:
        request, server, message, session = incoming.request, incoming.server, incoming.message, incoming.session
        method = message.method or ""
        if method == "ping":
            return {"result": {}}
        if method == "server/discover":
            return await discover(incoming)
        # logging/setLevel and resources/(un)subscribe hold session state: 2025-11-25 only (2026-07-28 puts
        # the level in each request's _meta, and resource subscriptions in subscriptions/listen).
        served = method in KINDS or method in CALLS or method == "completion/complete"
        if not served and (session is None or method not in _SESSION_METHODS):
            raise mcp.McpError(mcp.METHOD_NOT_FOUND, f"Method not found: {method}")
        headers, context = request_context(request, message)
        attributes = {ATTR_MCP_METHOD: method, "http.request.method": "POST", "url.path": request.path}
        if method == "logging/setLevel":
            assert session is not None
            level = session.log_level = _level(message)
            with server_span(self.tracer, method, headers, context, attributes):
                try:
                    await server.set_log_level(level, context)
                except GatewayError as exc:
                    raise upstream_error(exc) from None
            return {"result": {}}
        if method == "completion/complete":
            name = _completion_name(message.params)
        else:
            key = mcp.NAMED_METHODS.get(method) or _SESSION_METHODS.get(method)
            name = message.params.get(key) if key else None
        if method == "tools/call" and isinstance(name, str):
            attributes[ATTR_TOOL] = name
            attributes[t.ATTR_OPERATION] = "execute_tool"
        span_name = f"{method} {name}" if isinstance(name, str) else method
        with server_span(self.tracer, span_name, headers, context, attributes):
            try:
                if method in KINDS:
                    return await self._list(request, server, method, context)
                return await self._named(incoming, name, context)
            except GatewayError as exc:
                raise upstream_error(exc) from None

    async def _list(self, request: web.Request, server: VirtualServer, method: str, context: Context) -> dict[str, Any]:
        """A merged list, keeping only what the identity may use."""
        guard = request.app[GUARD_KEY]
        identity = request[IDENTITY_KEY]
        items = await server.list(method, context)
        item_key, name_field = KINDS[method]
        visible = [i for i in items if guard.may_use_mcp(identity, server.name, str(i[name_field]))]
        return {"result": {item_key: visible}}

    async def _named(self, incoming: Incoming, name: Any, context: Context) -> dict[str, Any]:
        """A request naming what it acts on (a tool, prompt, resource or completion reference)."""
        request, server, message, session = incoming.request, incoming.server, incoming.message, incoming.session
        method = message.method or ""
        if not isinstance(name, str) or not request.app[GUARD_KEY].may_use_mcp(
            request[IDENTITY_KEY], server.name, name
        ):
            # Indistinguishable from a name that does not exist: nothing leaks, nothing goes upstream.
            what = "reference" if method == "completion/complete" else method.split("/")[0][:-1]
            raise mcp.McpError(mcp.INVALID_PARAMS, f"unknown {what}: {name!r}")
        params = {k: v for k, v in message.params.items() if k != "_meta"}
        capabilities = message.meta.get(mcp.META_CLIENT_CAPABILITIES)
        if incoming.modern and isinstance(capabilities, Mapping):
            # What the upstream may ask this client for (an input_required result passes through).
            params["_meta"] = {mcp.META_CLIENT_CAPABILITIES: dict(capabilities)}
        if method == "completion/complete":
            return await server.complete(params, context)
        if method in _SESSION_METHODS:
            assert session is not None
            await self._resource_subscription(server, method, name, session, context)
            return {"result": {}}
        if incoming.modern and method == "tools/call":
            # Parameters mirrored in Mcp-Param-* headers must match the body, before anything goes upstream.
            schema = await server.input_schema(name, context)
            mcp.check_param_headers(schema, params.get("arguments"), request_headers(request))
        return await server.call(method, params, context)

    async def _resource_subscription(
        self, server: VirtualServer, method: str, uri: str, session: McpSession, context: Context
    ) -> None:
        """2025-11-25 ``resources/subscribe`` / ``resources/unsubscribe`` for one session."""
        if method == "resources/subscribe":
            if uri not in session.resources:
                await self.notifications.subscribe(server.name, uri, context)
                session.resources.add(uri)
        elif uri in session.resources:
            session.resources.discard(uri)
            await self.notifications.unsubscribe(server.name, uri, context)


def _completion_name(params: Mapping[str, Any]) -> str | None:
    """What a completion is about, for authorization: the prompt's name or the resource's URI."""
    ref = params.get("ref")
    if not isinstance(ref, Mapping):
        return None
    value = ref.get("name") if ref.get("type") == "ref/prompt" else ref.get("uri")
    return value if isinstance(value, str) else None


def _level(message: mcp.JsonRpcMessage) -> str:
    """``logging/setLevel``'s level."""
    level = message.params.get("level")
    if level not in mcp.LOG_LEVELS:
        raise mcp.McpError(mcp.INVALID_PARAMS, f"params.level must be one of {', '.join(mcp.LOG_LEVELS)}")
    return str(level)
