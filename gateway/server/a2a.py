"""Expose every routed agent as an A2A agent (agent card + JSON-RPC).

``GET /a2a/{agent}/.well-known/agent-card.json`` describes the agent;
``POST /a2a/{agent}`` answers ``SendMessage``/``SendStreamingMessage``/
``GetTask`` (A2A 1.0 shapes when the caller sends ``A2A-Version: 1.0``,
``message/send``/``message/stream``/``tasks/get`` in 0.3 shapes otherwise).
Each message becomes an ordinary routed invocation, so A2A clients reach
LangGraph, CrewAI, Mastra or any other agent through the gateway, with the
same policies and tracing. The A2A ``contextId`` is the gateway session.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from adapters.a2a import a2a_part, gateway_message
from adapters.sse import format_sse
from gateway.context import REQUEST_ID, context_from_headers
from gateway.model import Context, GatewayError, InvalidRequest, Invocation, Message, NotFound, Result, Role
from gateway.pipeline import Gateway
from gateway.results import ResultCollector
from gateway.server.inbound import server_span
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY

_KEEP_TASKS = 1000
_PARSE_ERROR, _INVALID_REQUEST, _METHOD_NOT_FOUND, _INVALID_PARAMS, _INTERNAL = -32700, -32600, -32601, -32602, -32603
_TASK_NOT_FOUND = -32001
_SEND = {"SendMessage": "1.0", "message/send": "0.3"}
_STREAM = {"SendStreamingMessage": "1.0", "message/stream": "0.3"}
_GET = {"GetTask": "1.0", "tasks/get": "0.3"}


class JsonRpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _state(name: str, version: str) -> str:
    return f"TASK_STATE_{name.upper().replace('-', '_')}" if version == "1.0" else name


def _message_json(message: Message, version: str, context_id: str, task_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "messageId": message.message_id or uuid.uuid4().hex,
        "role": ("ROLE_USER" if message.role == Role.USER else "ROLE_AGENT")
        if version == "1.0"
        else ("user" if message.role == Role.USER else "agent"),
        "parts": [a2a_part(p, version) for p in message.parts],
        "contextId": context_id,
        "taskId": task_id,
    }
    if version == "0.3":
        out["kind"] = "message"
    return out


@dataclass(slots=True)
class _OwnedTask:
    """A task and who may see it: the identity that created it, on the agent it was sent to."""

    owner: str
    agent: str
    task: dict[str, Any]


class A2AFront:
    """The A2A surface over a :class:`Gateway`; keeps recent tasks for ``GetTask``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.tasks: OrderedDict[str, _OwnedTask] = OrderedDict()

    def _owned(self, request: web.Request, agent: str, task_id: str) -> _OwnedTask:
        """The caller's task on this agent; TaskNotFound for an unknown or someone else's
        (the same answer, so a caller learns nothing about other identities' tasks)."""
        owned = self.tasks.get(task_id)
        if owned is None or owned.owner != request[IDENTITY_KEY].name or owned.agent != agent:
            raise JsonRpcError(_TASK_NOT_FOUND, "Task not found")
        return owned

    def _agent(self, request: web.Request) -> str:
        name = request.match_info["agent"]
        if name not in self.gateway.upstreams and not any(r.match.agent == name for r in self.gateway.config.routes):
            raise NotFound(f"no agent or route named {name!r}", agent=name)
        return name

    async def card(self, request: web.Request) -> web.Response:
        name = self._agent(request)
        upstream = self.gateway.upstreams.get(name)
        description = upstream.spec.description if upstream else f"Route {name} of agent-gateway"
        url = f"{request.scheme}://{request.host}/a2a/{name}"
        card = {
            "name": name,
            "description": description or f"{name}, reached through agent-gateway",
            "version": "1.0.0",
            "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
            "url": url,  # 0.3 clients read the endpoint here
            "protocolVersion": "1.0",
            "capabilities": {"streaming": True},
            "defaultInputModes": ["text/plain", "application/json"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "skills": [{"id": name, "name": name, "description": description or name, "tags": ["agent-gateway"]}],
        }
        return web.json_response(card)

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        name = self._agent(request)
        # Every method, reads included, needs the right to call this agent.
        request.app[GUARD_KEY].authorize(request[IDENTITY_KEY], name)
        request_id: Any = None
        try:
            try:
                envelope = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise JsonRpcError(_PARSE_ERROR, "Parse error") from None
            if not isinstance(envelope, dict) or envelope.get("jsonrpc") != "2.0" or "method" not in envelope:
                raise JsonRpcError(_INVALID_REQUEST, "Invalid Request")
            request_id = envelope.get("id")
            method = envelope["method"]
            params = envelope.get("params") or {}
            if not isinstance(params, dict):
                raise JsonRpcError(_INVALID_PARAMS, "params must be an object")
            if method in _SEND:
                return web.json_response(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "result": await self._send(request, name, params, _SEND[method]),
                    }
                )
            if method in _STREAM:
                return await self._stream(request, name, params, _STREAM[method], request_id)
            if method in _GET:
                task = self._owned(request, name, str(params.get("id", ""))).task
                return web.json_response({"jsonrpc": "2.0", "id": request_id, "result": task})
            raise JsonRpcError(_METHOD_NOT_FOUND, "Method not found")
        except JsonRpcError as exc:
            error = {"code": exc.code, "message": exc.message}
            return web.json_response({"jsonrpc": "2.0", "id": request_id, "error": error})

    def _invocation(self, request: web.Request, name: str, params: Mapping[str, Any]) -> tuple[Invocation, str, str]:
        message = params.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
            raise JsonRpcError(_INVALID_PARAMS, "params.message with parts is required")
        user = gateway_message(message)
        if not user.parts:
            raise JsonRpcError(_INVALID_PARAMS, "the message has no usable parts")
        headers: dict[str, str] = request[HEADERS_KEY]
        context_id = str(message.get("contextId") or uuid.uuid4())
        try:
            context = context_from_headers(headers, Context(session_id=headers.get("x-session-id") or context_id))
        except InvalidRequest as exc:
            raise JsonRpcError(_INVALID_PARAMS, exc.message) from None
        user = Message(Role.USER, user.parts, user.metadata, user.message_id)
        invocation = Invocation(name, (user,), context, headers=headers)
        invocation = request.app[GUARD_KEY].admit(invocation, request[IDENTITY_KEY])
        # Task ids are the gateway's: a client may name only a task of its own.
        task_id = str(message.get("taskId") or "")
        if task_id:
            self._owned(request, name, task_id)
        return invocation, context_id, task_id or str(uuid.uuid4())

    def _task(
        self,
        request: web.Request,
        version: str,
        task_id: str,
        context_id: str,
        state: str,
        user: Message,
        result: Result | None,
        error: GatewayError | None,
    ) -> dict[str, Any]:
        status: dict[str, Any] = {"state": _state(state, version), "timestamp": _now()}
        if error is not None:
            status["message"] = _message_json(Message.agent(error.message), version, context_id, task_id)
        task: dict[str, Any] = {
            "id": task_id,
            "contextId": context_id,
            "status": status,
            "history": [_message_json(user, version, context_id, task_id)],
        }
        if result is not None:
            task["artifacts"] = [
                {"artifactId": f"{task_id}-{i}", "name": "response", "parts": [a2a_part(p, version) for p in m.parts]}
                for i, m in enumerate(result.messages)
            ]
        if version == "0.3":
            task["kind"] = "task"
        agent = request.match_info["agent"]
        self.tasks[task_id] = _OwnedTask(request[IDENTITY_KEY].name, agent, task)
        self.tasks.move_to_end(task_id)
        while len(self.tasks) > _KEEP_TASKS:
            self.tasks.popitem(last=False)
        return task

    async def _send(self, request: web.Request, name: str, params: Mapping[str, Any], version: str) -> dict[str, Any]:
        invocation, context_id, task_id = self._invocation(request, name, params)
        with server_span(
            self.gateway.tracer,
            f"A2A SendMessage {name}",
            invocation.headers,
            invocation.context,
            {"rpc.system": "jsonrpc", "rpc.method": "SendMessage"},
        ):
            try:
                result = await self.gateway.invoke(invocation)
            except NotFound as exc:
                raise JsonRpcError(_INVALID_PARAMS, exc.message) from None
            except GatewayError as exc:
                task = self._task(request, version, task_id, context_id, "failed", invocation.messages[0], None, exc)
                return {"task": task} if version == "1.0" else task
        task = self._task(request, version, task_id, context_id, "completed", invocation.messages[0], result, None)
        return {"task": task} if version == "1.0" else task

    async def _stream(
        self, request: web.Request, name: str, params: Mapping[str, Any], version: str, request_id: Any
    ) -> web.StreamResponse:
        invocation, context_id, task_id = self._invocation(request, name, params)
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-store",
                REQUEST_ID: invocation.context.request_id,
            }
        )
        await response.prepare(request)

        async def send(payload: dict[str, Any]) -> None:
            frame = {"jsonrpc": "2.0", "id": request_id, "result": payload}
            await response.write(format_sse(json.dumps(frame)))

        def status_update(state: str, final: bool, error: GatewayError | None = None) -> dict[str, Any]:
            update: dict[str, Any] = {
                "taskId": task_id,
                "contextId": context_id,
                "status": {"state": _state(state, version), "timestamp": _now()},
            }
            if error is not None:
                update["status"]["message"] = _message_json(Message.agent(error.message), version, context_id, task_id)
            if version == "1.0":
                return {"statusUpdate": update}
            return {**update, "kind": "status-update", "final": final}

        submitted = self._task(request, version, task_id, context_id, "submitted", invocation.messages[0], None, None)
        await send({"task": submitted} if version == "1.0" else submitted)
        with server_span(
            self.gateway.tracer,
            f"A2A SendStreamingMessage {name}",
            invocation.headers,
            invocation.context,
            {"rpc.system": "jsonrpc", "rpc.method": "SendStreamingMessage"},
        ):
            await send(status_update("working", False))
            try:
                agent, events = self.gateway.open_stream(invocation)
                collector = ResultCollector(agent)
                chunks = 0
                async for event in events:
                    collector.add(event)
                    if event.message is None or event.type not in ("delta", "message"):
                        continue
                    artifact = {
                        "artifactId": f"{task_id}-0",
                        "name": "response",
                        "parts": [a2a_part(p, version) for p in event.message.parts],
                    }
                    update: dict[str, Any] = {
                        "taskId": task_id,
                        "contextId": context_id,
                        "artifact": artifact,
                        "append": chunks > 0,
                        "lastChunk": False,
                    }
                    chunks += 1
                    await send(
                        {"artifactUpdate": update} if version == "1.0" else {**update, "kind": "artifact-update"}
                    )
                self._task(
                    request, version, task_id, context_id, "completed", invocation.messages[0], collector.result(), None
                )
                await send(status_update("completed", True))
            except GatewayError as exc:
                self._task(request, version, task_id, context_id, "failed", invocation.messages[0], None, exc)
                await send(status_update("failed", True, exc))
        await response.write_eof()
        return response


def add_a2a_routes(app: web.Application, front: A2AFront) -> None:
    app.router.add_get("/a2a/{agent}/.well-known/agent-card.json", front.card)
    app.router.add_post("/a2a/{agent}", front.rpc)
