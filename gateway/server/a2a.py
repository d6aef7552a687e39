"""Expose every routed agent as an A2A agent: its agent card and the JSON-RPC binding.

``GET /a2a/{agent}/.well-known/agent-card.json`` describes the agent;
``GET /.well-known/agent-card.json`` the configured default agent (``a2a.default_agent``)
or the gateway; ``GET /a2a`` lists the cards of every agent the caller may call;
``POST /a2a/{agent}`` serves every core operation of A2A 1.0 over JSON-RPC 2.0
(:mod:`gateway.server.a2a_operations`), under their 1.0 names (``SendMessage``,
``GetTask``, ...) in 1.0 shapes and their 0.3 names (``message/send``,
``tasks/get``, ...) in 0.3 shapes. The ``A2A-Version`` header (or query
parameter) says which version the client speaks: empty means 0.3; one this
gateway does not serve answers VersionNotSupported.

Each message becomes a background run of the routed agent (routes, policies
and tracing apply), kept with its task in the runs store, so every gateway
sharing the store answers for every task. The A2A ``contextId`` is the
gateway session.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.config.schema import HttpListener
from gateway.model import GatewayError, InvalidRequest, NotFound
from gateway.pipeline import Gateway
from gateway.protocols.a2a import stream_v03, task_v03
from gateway.protocols.sse import format_sse
from gateway.security.guard import ListenerGuard
from gateway.server.a2a_operations import A2AOperations, Caller, TaskFrames
from gateway.server.disconnect import caller_gone
from gateway.server.json_body import read_json
from gateway.server.relay import Bounds, Relay, Wire, cancels_on_disconnect
from gateway.server.request_keys import DRAIN_KEY, GUARD_KEY, HEADERS_KEY, IDENTITY_KEY
from gateway.server.sse_writer import KEEPALIVE_FRAME, SSE_HEADERS
from gateway.tasks.errors import A2AError, UnsupportedOperation, VersionNotSupported

log = logging.getLogger("agent_gateway.a2a")

_PARSE_ERROR, _INVALID_REQUEST, _METHOD_NOT_FOUND, _INVALID_PARAMS, _INTERNAL = -32700, -32600, -32601, -32602, -32603
SUPPORTED_VERSIONS = ("0.3", "1.0")
# a2a.proto's service, by name: the gRPC binding (server/a2a_grpc.py) loads at its first call.
A2A_GRPC_SERVICE = "lf.a2a.v1.A2AService"
VERSION_HEADER = "a2a-version"

# method name -> (operation, shape version); the 1.0 names first, then the 0.3 ones.
_UNARY = {
    "SendMessage": ("send", "1.0"),
    "GetTask": ("get_task", "1.0"),
    "ListTasks": ("list_tasks", "1.0"),
    "CancelTask": ("cancel_task", "1.0"),
    "CreateTaskPushNotificationConfig": ("create_push_config", "1.0"),
    "GetTaskPushNotificationConfig": ("get_push_config", "1.0"),
    "ListTaskPushNotificationConfigs": ("list_push_configs", "1.0"),
    "DeleteTaskPushNotificationConfig": ("delete_push_config", "1.0"),
    "GetExtendedAgentCard": ("extended_card", "1.0"),
    "message/send": ("send", "0.3"),
    "tasks/get": ("get_task", "0.3"),
    "tasks/list": ("list_tasks", "0.3"),
    "tasks/cancel": ("cancel_task", "0.3"),
    "tasks/pushNotificationConfig/set": ("create_push_config", "0.3"),
    "tasks/pushNotificationConfig/get": ("get_push_config", "0.3"),
    "tasks/pushNotificationConfig/list": ("list_push_configs", "0.3"),
    "tasks/pushNotificationConfig/delete": ("delete_push_config", "0.3"),
    "agent/getAuthenticatedExtendedCard": ("extended_card", "0.3"),
}
_STREAMING = {
    "SendStreamingMessage": ("stream", "1.0"),
    "SubscribeToTask": ("subscribe", "1.0"),
    "message/stream": ("stream", "0.3"),
    "tasks/resubscribe": ("subscribe", "0.3"),
}
_ERROR_REASONS = {
    -32001: "TASK_NOT_FOUND",
    -32002: "TASK_NOT_CANCELABLE",
    -32003: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    -32004: "UNSUPPORTED_OPERATION",
    -32007: "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    -32009: "VERSION_NOT_SUPPORTED",
}


class JsonRpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_reason(code: int) -> str:
    """The A2A error's reason (``TASK_NOT_FOUND``...) for ``google.rpc.ErrorInfo``; empty for others."""
    return _ERROR_REASONS.get(code, "")


def _error_object(code: int, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if code in _ERROR_REASONS:
        error["data"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": _ERROR_REASONS[code],
                "domain": "a2a-protocol.org",
            }
        ]
    return error


def _rpc_error(exc: GatewayError) -> JsonRpcError:
    """The JSON-RPC error of a gateway error (authentication and authorization stay HTTP 401/403)."""
    if isinstance(exc, A2AError):
        return JsonRpcError(exc.a2a_code, exc.message)
    if isinstance(exc, InvalidRequest):
        return JsonRpcError(_INVALID_PARAMS, exc.message)
    return JsonRpcError(_INTERNAL, exc.message)


def requested_version(request: web.Request) -> str:
    """The A2A version the client speaks (``A2A-Version`` header or query parameter; empty: 0.3)."""
    return check_version(request.headers.get(VERSION_HEADER) or request.query.get("A2A-Version") or "")


def check_version(value: str) -> str:
    """The version a client names (VersionNotSupported unless it is one this gateway speaks)."""
    raw = value.strip()
    if not raw:
        return "0.3"
    # Patch numbers do not take part in negotiation (spec §3.6).
    version = ".".join(raw.split(".")[:2])
    if version not in SUPPORTED_VERSIONS:
        raise VersionNotSupported(
            f"A2A version {raw[:20]!r} is not supported: this gateway speaks {' and '.join(SUPPORTED_VERSIONS)}"
        )
    return version


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class A2AFront:
    """The A2A surface over a :class:`Gateway` and its tasks."""

    def __init__(self, gateway: Gateway, operations: A2AOperations, listener: HttpListener | None = None) -> None:
        self.gateway = gateway
        self.operations = operations
        # The HTTP listener's stream bounds, keep-alives and cancel_on_disconnect hold for its A2A streams.
        self.listener = listener or HttpListener()
        # Set once the listeners are bound: the gRPC binding's URL (cards list it, as the spec
        # writes it: http(s)://host:port) and the HTTP origin (cards asked for over gRPC name it).
        self.grpc_url = ""
        self.http_origin = ""

    def agent_for(self, request: web.Request) -> str:
        """The agent of the endpoint; NotFound (404) for a name nothing routes."""
        # The origin's own REST routes serve a2a.default_agent.
        name = request.match_info.get("agent") or self.gateway.config.a2a.default_agent or ""
        if name not in self.agent_names():
            raise NotFound(f"no agent or route named {name!r}", agent=name)
        return name

    def agent_names(self) -> list[str]:
        """Every name a caller can reach: the agents and the routes' agent names."""
        names = dict.fromkeys(self.gateway.upstream_names())
        names.update(dict.fromkeys(r.match.agent for r in self.gateway.config.routes if r.match.agent))
        return list(names)

    def _callable(self, request: web.Request) -> list[str]:
        """The names this caller is authorized to call."""
        guard, identity = request.app[GUARD_KEY], request[IDENTITY_KEY]
        allowed = []
        for name in self.agent_names():
            try:
                guard.authorize(identity, name)
            except GatewayError:
                continue
            allowed.append(name)
        return allowed

    async def origin_card(self, request: web.Request) -> web.Response:
        """The origin's card: the configured default agent's, or the gateway's own (its agents as
        skills, their cards in the catalog at ``/a2a``)."""
        default = self.gateway.config.a2a.default_agent
        if default is not None:
            return web.json_response(self.card_for(request, default))
        skills = [
            {"id": name, "name": name, "description": self._description(name), "tags": ["agent-gateway"]}
            for name in self._callable(request)
        ]
        card = {
            "name": "agent-gateway",
            "description": "An agent gateway: each agent's card is at /a2a/{agent}/.well-known/agent-card.json,"
            " and GET /a2a lists the cards of the agents you may call",
            "version": "1.0.0",
            "supportedInterfaces": [],
            "capabilities": {"streaming": True, "pushNotifications": self.operations.push_notifications},
            "defaultInputModes": ["text/plain", "application/json"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "skills": skills,
        }
        return web.json_response(card)

    async def catalog(self, request: web.Request) -> web.Response:
        """The cards of every routed agent the caller may call."""
        return web.json_response({"agents": [self.card_for(request, name) for name in self._callable(request)]})

    def _description(self, name: str) -> str:
        upstream = self.gateway.upstream(name)
        return (upstream.spec.description if upstream else "") or f"{name}, reached through agent-gateway"

    def card_for(self, request: web.Request, name: str, *, extended: bool = False) -> dict[str, Any]:
        """The agent's card as seen through this HTTP request's origin."""
        caller = request[IDENTITY_KEY].name if extended else None
        return self.card(f"{request.scheme}://{request.host}", request.app[GUARD_KEY], name, caller)

    def card(self, origin: str, guard: ListenerGuard, name: str, extended_for: str | None = None) -> dict[str, Any]:
        """The agent's card: every binding that serves it, the listener's security schemes."""
        description = self._description(name)
        url = f"{origin}/a2a/{name}"
        interfaces = [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": f"{url}/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        ]
        if self.grpc_url:
            # One gRPC service for every agent: the tenant names the agent.
            interfaces.append(
                {"url": self.grpc_url, "protocolBinding": "GRPC", "protocolVersion": "1.0", "tenant": name}
            )
        interfaces.append({"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"})
        card: dict[str, Any] = {
            "name": name,
            "description": description,
            "version": "1.0.0",
            "supportedInterfaces": interfaces,
            "url": url,  # 0.3 clients read the endpoint here
            "preferredTransport": "JSONRPC",
            "protocolVersion": "1.0",
            "capabilities": {
                "streaming": True,
                "pushNotifications": self.operations.push_notifications,
                "extendedAgentCard": guard.enabled,
            },
            "defaultInputModes": ["text/plain", "application/json"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "skills": [{"id": name, "name": name, "description": description, "tags": ["agent-gateway"]}],
        }
        schemes = _security_schemes(guard.authenticators)
        if schemes:
            card["securitySchemes"] = schemes
            card["securityRequirements"] = [{"schemes": {name: {"list": []}}} for name in schemes]
        if extended_for is not None:
            card["description"] = f"{description} (as seen by {extended_for})"
        return card

    async def agent_card(self, request: web.Request) -> web.Response:
        return web.json_response(self.card_for(request, self.agent_for(request)))

    def caller_for(self, request: web.Request, name: str) -> Caller:
        """The caller, authorized for the agent (PermissionDenied, 403, otherwise)."""
        identity = request[IDENTITY_KEY]
        guard = request.app[GUARD_KEY]
        # Every method, reads included, needs the right to call this agent.
        guard.authorize(identity, name)
        headers: dict[str, str] = request[HEADERS_KEY]
        return Caller(name, identity, headers, guard)

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        name = self.agent_for(request)
        request_id: Any = None
        try:
            try:
                # The one decoder of caller JSON: UTF-8, bounded depth, no lone surrogates.
                envelope = await read_json(request, "JSON-RPC request")
            except InvalidRequest as exc:
                raise JsonRpcError(_PARSE_ERROR, f"Invalid JSON payload: {exc.message}") from None
            if not isinstance(envelope, dict):
                raise JsonRpcError(_INVALID_REQUEST, "Request payload validation error: not a JSON-RPC request object")
            if not _valid_id(envelope.get("id")):
                raise JsonRpcError(
                    _INVALID_REQUEST, "Request payload validation error: id must be a string, integer or null"
                )
            request_id = envelope.get("id")
            if envelope.get("jsonrpc") != "2.0":
                raise JsonRpcError(_INVALID_REQUEST, 'Request payload validation error: jsonrpc must be "2.0"')
            method = envelope.get("method")
            if not isinstance(method, str) or not method:
                raise JsonRpcError(_INVALID_REQUEST, "Request payload validation error: method must be a string")
            unknown = set(envelope) - {"jsonrpc", "id", "method", "params"}
            if unknown:
                raise JsonRpcError(
                    _INVALID_REQUEST, f"Request payload validation error: unknown member {sorted(unknown)[0]!r}"
                )
            params = envelope.get("params")
            if method not in _UNARY and method not in _STREAMING:
                raise JsonRpcError(_METHOD_NOT_FOUND, f"Method not found: {method[:80]}")
            caller = self.caller_for(request, name)
            if method in _STREAMING:
                operation, version = _STREAMING[method]
                return await self._sse(request, request_id, caller, operation, params, version)
            try:
                requested_version(request)
                operation, version = _UNARY[method]
                result = await self._unary(request, caller, operation, params)
            except GatewayError as exc:
                if exc.status in (401, 403):
                    raise
                raise _rpc_error(exc) from None
            return web.json_response(
                {"jsonrpc": "2.0", "id": request_id, "result": _render(result, operation, version)}
            )
        except JsonRpcError as exc:
            return web.json_response(
                {"jsonrpc": "2.0", "id": request_id, "error": _error_object(exc.code, exc.message)}
            )

    def extended_card(self, request: web.Request, caller: Caller) -> dict[str, Any]:
        """GetExtendedAgentCard: only for authenticated callers (UnsupportedOperation otherwise)."""
        return self.extended_card_of(caller, f"{request.scheme}://{request.host}")

    def extended_card_of(self, caller: Caller, origin: str = "") -> dict[str, Any]:
        if not caller.guard.enabled:
            raise UnsupportedOperation("this gateway has no extended agent card: its listener authenticates nobody")
        return self.card(origin or self.http_origin, caller.guard, caller.agent, caller.owner)

    async def _unary(self, request: web.Request, caller: Caller, operation: str, params: Any) -> Any:
        if operation == "extended_card":
            if params not in (None, {}) and not (isinstance(params, dict) and set(params) <= {"tenant"}):
                raise InvalidRequest("GetExtendedAgentCard takes no parameters but 'tenant'")
            return self.extended_card(request, caller)
        method: Callable[[Caller, Any], Awaitable[Any]] = getattr(self.operations, operation)
        return await method(caller, params)

    async def _sse(
        self, request: web.Request, request_id: Any, caller: Caller, operation: str, params: Any, version: str
    ) -> web.StreamResponse:
        try:
            requested_version(request)
            opener: Callable[[Caller, Any], Awaitable[TaskFrames]] = getattr(self.operations, operation)
            frames: AsyncIterator[dict[str, Any]] = await opener(caller, params)
        except GatewayError as exc:
            # A failure before the first frame (bad params, an unknown task) ends the stream as an
            # error frame, as streaming clients expect.
            frames = _failing(exc)
        return await self.relay_sse(request, caller.agent, frames, _JsonRpcSse(request_id, version))

    async def relay_sse(
        self, request: web.Request, agent: str, frames: AsyncIterator[dict[str, Any]], wire: Wire[dict[str, Any], bytes]
    ) -> web.StreamResponse:
        """A streaming operation's frames as SSE (both HTTP bindings), under the listener's
        stream bounds, keep-alives and ``cancel_on_disconnect`` (which cancels a SendStreamingMessage's turn)."""
        listener = self.listener
        relay = Relay(
            frames,
            wire,
            bounds=Bounds.of(listener, agent),
            cancels=cancels_on_disconnect(listener, self.gateway.cancels_on_disconnect(agent)),
            caller_gone=lambda: caller_gone(request),
            cancel_upstream=frames.cancel if isinstance(frames, TaskFrames) else None,
        )
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        await relay.serve(
            response.write, keepalive=(listener.sse_keepalive, KEEPALIVE_FRAME), drain=request.app[DRAIN_KEY]
        )
        await response.write_eof()
        return response


class _JsonRpcSse:
    """A streaming operation's frames as JSON-RPC responses to the request, in the client's version."""

    def __init__(self, request_id: Any, version: str) -> None:
        self.request_id = request_id
        self.version = version

    def event(self, item: dict[str, Any]) -> bytes:
        payload = item if self.version == "1.0" else stream_v03(item)
        return format_sse(json.dumps({"jsonrpc": "2.0", "id": self.request_id, "result": payload}))

    def end(self) -> None:
        return None

    def error(self, error: GatewayError) -> bytes:
        # Headers are gone (or a stream was asked for): the error travels as the last frame.
        rpc = _rpc_error(error)
        body = {"jsonrpc": "2.0", "id": self.request_id, "error": _error_object(rpc.code, rpc.message)}
        return format_sse(json.dumps(body))


async def _failing(error: GatewayError) -> AsyncIterator[dict[str, Any]]:
    raise error
    yield {}  # an async generator that fails at its first frame


def _render(result: Any, operation: str, version: str) -> Any:
    """A 1.0 result as the client's version shows it."""
    if operation == "delete_push_config":
        return None if version == "0.3" else {}
    if version == "1.0" or not isinstance(result, dict):
        return result
    if operation == "send":
        return task_v03(result["task"])
    if operation in ("get_task", "cancel_task"):
        return task_v03(result)
    if operation == "list_tasks":
        return {**result, "tasks": [task_v03(t) for t in result["tasks"]]}
    if operation in ("create_push_config", "get_push_config"):
        return _push_v03(result)
    if operation == "list_push_configs":
        return [_push_v03(c) for c in result["configs"]]
    return result


def _push_v03(config: dict[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in config.items() if k != "taskId"}
    return {"taskId": config.get("taskId", ""), "pushNotificationConfig": inner}


def _security_schemes(authenticators: Any) -> dict[str, Any]:
    schemes: dict[str, Any] = {}
    for authenticator in authenticators:
        if authenticator.method == "api_key":
            schemes["apiKey"] = {"apiKeySecurityScheme": {"location": "header", "name": "x-api-key"}}
        elif authenticator.method == "jwt":
            schemes["bearer"] = {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}
        elif authenticator.method == "mtls":
            schemes["mtls"] = {"mtlsSecurityScheme": {}}
    return schemes


def add_a2a_routes(app: web.Application, front: A2AFront) -> None:
    app.router.add_get("/.well-known/agent-card.json", front.origin_card)
    app.router.add_get("/a2a", front.catalog)
    app.router.add_get("/a2a/{agent}/.well-known/agent-card.json", front.agent_card)
    app.router.add_post("/a2a/{agent}", front.rpc)
