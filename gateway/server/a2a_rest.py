"""The HTTP+JSON (REST) binding of A2A 1.0 (spec §11) for every routed agent.

Under ``/a2a/{agent}/rest``: ``POST /message:send``, ``POST /message:stream``
(SSE), ``GET /tasks``, ``GET /tasks/{id}``, ``POST /tasks/{id}:cancel``,
``POST|GET /tasks/{id}:subscribe`` (SSE), the push-notification configs under
``/tasks/{id}/pushNotificationConfigs`` and ``GET /extendedAgentCard``. Bodies
and answers are ``application/a2a+json`` (the same 1.0 JSON as the JSON-RPC
binding: one set of operations, :mod:`gateway.server.a2a_operations`); errors
are ``google.rpc.Status`` JSON with the A2A reason in an ``ErrorInfo`` detail.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.model import GatewayError
from gateway.protocols.sse import format_sse
from gateway.server.a2a import A2AFront, error_reason, requested_version
from gateway.server.a2a_operations import Caller
from gateway.server.json_body import read_json
from gateway.tasks.errors import A2AError, InvalidParams

MEDIA_TYPE = "application/a2a+json"
PREFIX = "/a2a/{agent}/rest"
_INTS = ("historyLength", "pageSize")
_BOOLS = ("includeArtifacts",)
Operation = Callable[[Caller, Any], Awaitable[Any]]


def _status_name(exc: GatewayError) -> str:
    return str(exc.code.value) if hasattr(exc.code, "value") else str(exc.code)


def error_response(exc: GatewayError) -> web.Response:
    """``{"error": google.rpc.Status}`` with the HTTP status of the spec's table (§5.4)."""
    error: dict[str, Any] = {"code": exc.status, "status": _status_name(exc), "message": exc.message}
    if isinstance(exc, A2AError) and (reason := error_reason(exc.a2a_code)):
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "a2a-protocol.org"}
        ]
    return web.json_response({"error": error}, status=exc.status, content_type=MEDIA_TYPE)


def _query(request: web.Request) -> dict[str, Any]:
    """Query parameters as the operation's fields (numbers and booleans parsed)."""
    params: dict[str, Any] = {}
    for key, value in request.query.items():
        if key == "A2A-Version":
            continue
        if key in _INTS:
            try:
                params[key] = int(value)
            except ValueError:
                raise InvalidParams(f"{key} must be an integer, got {value[:40]!r}") from None
        elif key in _BOOLS:
            if value not in ("true", "false"):
                raise InvalidParams(f"{key} must be true or false, got {value[:40]!r}")
            params[key] = value == "true"
        else:
            params[key] = value
    return params


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    return await read_json(request, "A2A request body")


class _RestSse:
    """Frames as they are; an error as the ``google.rpc.Status`` body an answer would carry."""

    def event(self, item: dict[str, Any]) -> bytes:
        return format_sse(json.dumps(item))

    def end(self) -> None:
        return None

    def error(self, error: GatewayError) -> bytes:
        return format_sse(json.dumps(json.loads(error_response(error).text or "{}")))


class A2ARestBinding:
    """The REST routes of one :class:`A2AFront` (same operations, same authorization)."""

    def __init__(self, front: A2AFront) -> None:
        self.front = front
        self.operations = front.operations

    async def _call(
        self, request: web.Request, run: Callable[[Caller], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        name = self.front.agent_for(request)
        caller = self.front.caller_for(request, name)  # 401/403 stay the listener's answers
        try:
            requested_version(request)
            return await run(caller)
        except GatewayError as exc:
            if exc.status in (401, 403):
                raise
            return error_response(exc)

    def _unary(self, operation: str, params: Callable[[web.Request], Awaitable[Any]]) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            async def run(caller: Caller) -> web.StreamResponse:
                method: Operation = getattr(self.operations, operation)
                result = await method(caller, await params(request))
                return web.json_response({} if result is None else result, content_type=MEDIA_TYPE)

            return await self._call(request, run)

        return handle

    def _streaming(self, operation: str, params: Callable[[web.Request], Awaitable[Any]]) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            async def run(caller: Caller) -> web.StreamResponse:
                opener: Callable[[Caller, Any], Awaitable[AsyncIterator[dict[str, Any]]]] = getattr(
                    self.operations, operation
                )
                frames = await opener(caller, await params(request))  # fails before the stream starts
                return await self.front.relay_sse(request, caller.agent, frames, _RestSse())

            return await self._call(request, run)

        return handle

    def add_routes(self, app: web.Application, prefix: str = PREFIX) -> None:
        """The routes under ``prefix`` (its ``{agent}`` names the agent; without one, the default agent)."""

        async def body(request: web.Request) -> Any:
            return await _body(request)

        async def task_query(request: web.Request) -> Any:
            return {**_query(request), "id": request.match_info["id"]}

        async def task_body(request: web.Request) -> Any:
            data = await _body(request)
            if not isinstance(data, dict):
                raise InvalidParams("the body must be a JSON object")
            return {**data, "id": request.match_info["id"]}

        async def list_query(request: web.Request) -> Any:
            return _query(request)

        async def push_body(request: web.Request) -> Any:
            data = await _body(request)
            if not isinstance(data, dict):
                raise InvalidParams("the body must be a JSON object")
            return {**data, "taskId": request.match_info["id"]}

        async def push_query(request: web.Request) -> Any:
            params = {**_query(request), "taskId": request.match_info["id"]}
            if "config_id" in request.match_info:
                params["id"] = request.match_info["config_id"]
            return params

        async def extended(request: web.Request) -> web.StreamResponse:
            async def run(caller: Caller) -> web.StreamResponse:
                return web.json_response(self.front.extended_card(request, caller), content_type=MEDIA_TYPE)

            return await self._call(request, run)

        task = prefix + "/tasks/{id:[^/:]+}"
        router = app.router
        router.add_post(prefix + "/message:send", self._unary("send", body))
        router.add_post(prefix + "/message:stream", self._streaming("stream", body))
        router.add_get(prefix + "/tasks", self._unary("list_tasks", list_query))
        router.add_get(task, self._unary("get_task", task_query))
        router.add_post(task + ":cancel", self._unary("cancel_task", task_body))
        subscribe = self._streaming("subscribe", task_query)
        router.add_post(task + ":subscribe", subscribe)  # the spec's table
        router.add_get(task + ":subscribe", subscribe)  # a2a.proto's HTTP annotation
        router.add_post(task + "/pushNotificationConfigs", self._unary("create_push_config", push_body))
        router.add_get(task + "/pushNotificationConfigs", self._unary("list_push_configs", push_query))
        router.add_get(task + "/pushNotificationConfigs/{config_id}", self._unary("get_push_config", push_query))
        router.add_delete(task + "/pushNotificationConfigs/{config_id}", self._unary("delete_push_config", push_query))
        router.add_get(prefix + "/extendedAgentCard", extended)
