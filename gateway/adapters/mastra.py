"""Mastra server adapter (the agent API of ``mastra dev``/``mastra build`` and the server adapters).

* Unary calls use ``POST {api_prefix}/agents/{agentId}/generate`` with
  ``{"messages": [...], "memory": {"thread", "resource"}}``; the reply's
  ``text`` (plus tool activity and structured ``object`` output as data parts)
  becomes the result.
* Streams use ``POST {api_prefix}/agents/{agentId}/stream``: server-sent
  events whose data is one Mastra stream chunk (``{"type", "runId", "from",
  "payload"}``) and a final ``data: [DONE]``. ``text-delta`` chunks become
  ``delta`` events, ``tool-call``/``tool-result``/``tool-error`` ``tool``
  events, ``step-start``/``step-finish`` ``step`` events, ``start``/``finish``
  ``status`` events; an ``error`` chunk (the agent or its model failed) fails
  the stream, ``tripwire`` (a guardrail stopped the run) is a rejection.
* Memory: the gateway's thread id (or, without one, its session id) is the
  Mastra ``threadId``; the user id (or the session id, or ``default_resource``)
  is the ``resourceId``. Without any of them the call runs without memory.
* An unknown agent (HTTP 404) is a permanent
  :class:`~gateway.model.UpstreamNotFound`; other statuses and connection
  failures are classified by :mod:`gateway.transport`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

from pydantic import Field

from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import ThreadFrom, conversation_id, not_found_when, sse_json, upstream_status
from gateway.adapters.usage import token_usage
from gateway.model import (
    JSON,
    AgentSpec,
    Attempt,
    DataPart,
    Event,
    FilePart,
    Message,
    Part,
    Result,
    Role,
    TextPart,
    UpstreamError,
    UpstreamRejected,
)
from gateway.protocols.sse import SseEvent

_ROLE_TO_MASTRA = {Role.USER: "user", Role.AGENT: "assistant", Role.SYSTEM: "system", Role.TOOL: "assistant"}
# Agent-execution body fields a caller may set through `options.params`.
_BODY_FIELDS = (
    "instructions",
    "system",
    "context",
    "runId",
    "requestContext",
    "maxSteps",
    "modelSettings",
    "providerOptions",
    "activeTools",
    "toolChoice",
    "requireToolApproval",
    "structuredOutput",
    "tracingOptions",
    "savePerStep",
)
# Chunks that only frame others (their content arrives in the deltas around them).
_FRAMING_CHUNKS = frozenset(
    {
        "text-start",
        "text-end",
        "reasoning-start",
        "reasoning-end",
        "tool-call-input-streaming-start",
        "tool-call-input-streaming-end",
        "tool-call-delta",
        "raw",
    }
)
STREAM_END = "[DONE]"


class MastraOptions(AdapterOptions):
    # The Mastra agent id (the key in `new Mastra({agents: {...}})`); defaults to this agent's name.
    agent_id: str = ""
    # Where the server mounts its API (`/api` for `mastra dev`/`mastra build`).
    api_prefix: str = "/api"
    # Which gateway id becomes the Mastra memory thread; "none" calls without memory.
    thread_from: ThreadFrom = "thread_or_session"
    # The memory resource when the call carries neither a user nor a session id.
    default_resource: str = "agent-gateway"
    # Sent as `Authorization: Bearer` (Mastra's server auth); use ${ENV} substitution.
    api_key: str = ""
    headers: dict[str, str] = Field(default_factory=dict)


def mastra_message(message: Message) -> dict[str, Any]:
    """A Mastra (AI SDK) message: a string content, or parts for files and data."""
    if all(isinstance(p, TextPart) for p in message.parts):
        return {"role": _ROLE_TO_MASTRA[message.role], "content": message.text}
    return {"role": _ROLE_TO_MASTRA[message.role], "content": [_content_part(p) for p in message.parts]}


def _content_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, FilePart):
        return {"type": "file", "data": part.uri, "mediaType": part.media_type or "application/octet-stream"}
    return {"type": "text", "text": json.dumps(part.data)}


def _tool_activity(body: Mapping[str, Any]) -> dict[str, Any]:
    """The tool calls and results of every step (the top level holds only the last step's)."""
    calls: list[Any] = []
    results: list[Any] = []
    for step in body.get("steps") or []:
        if isinstance(step, dict):
            calls.extend(step.get("toolCalls") or [])
            results.extend(step.get("toolResults") or [])
    activity: dict[str, Any] = {}
    if calls:
        activity["tool_calls"] = calls
    if results:
        activity["tool_results"] = results
    return activity


class MastraAdapter(Adapter):
    kind = "mastra"
    Options = MastraOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: MastraOptions
        headers = dict(self.options.headers)
        if self.options.api_key:
            headers["authorization"] = f"Bearer {self.options.api_key}"
        self.transport = resources.transports(resources.http, spec.name, spec.endpoint, headers, tls=spec.tls)
        agent_id = quote(self.options.agent_id or spec.name, safe="")
        self._agent_path = f"{self.options.api_prefix.rstrip('/')}/agents/{agent_id}"

    def memory(self, call: Attempt) -> dict[str, str] | None:
        """Mastra's ``{"thread", "resource"}`` for this call, or None to run without memory."""
        ctx = call.context
        thread = conversation_id(ctx, self.options.thread_from)
        if not thread:
            return None
        return {"thread": thread, "resource": ctx.user_id or ctx.session_id or self.options.default_resource}

    def _body(self, call: Attempt) -> dict[str, Any]:
        params = call.invocation.options.params
        body: dict[str, Any] = {"messages": [mastra_message(m) for m in call.invocation.messages]}
        if (memory := self.memory(call)) is not None:
            body["memory"] = memory
        for field in _BODY_FIELDS:
            if field in params:
                body[field] = params[field]
        return body

    def _agent_errors(self) -> AbstractContextManager[None]:
        """A 404 means the server has no such agent: NOT_FOUND instead of a generic rejection."""
        agent_id = self.options.agent_id or self.spec.name
        return not_found_when(
            lambda exc: upstream_status(exc) == 404,
            f"the Mastra server has no agent {agent_id!r}: check `agent_id` and `new Mastra({{agents}})`",
        )

    def _metadata(self, call: Attempt, extra: Mapping[str, JSON]) -> dict[str, JSON]:
        metadata: dict[str, JSON] = {k: v for k, v in extra.items() if v not in (None, {}, [])}
        if (memory := self.memory(call)) is not None:
            metadata["mastra_thread_id"] = memory["thread"]
            metadata["mastra_resource_id"] = memory["resource"]
        return metadata

    async def invoke(self, call: Attempt) -> Result:
        with self._agent_errors():
            _, body = await self.transport.request_json(call, "POST", f"{self._agent_path}/generate", self._body(call))
        if not isinstance(body, dict):
            raise UpstreamError("the Mastra server sent an unexpected reply (not a JSON object)", agent=self.spec.name)
        parts: list[Part] = []
        if text := body.get("text"):
            parts.append(TextPart(str(text)))
        if body.get("object") is not None:
            parts.append(DataPart(body["object"]))
        if activity := _tool_activity(body):
            parts.append(DataPart(activity))
        usage = body.get("totalUsage") or body.get("usage")
        metadata = self._metadata(
            call,
            {
                "finish_reason": body.get("finishReason"),
                "usage": usage,
                "provider_metadata": body.get("providerMetadata"),
            },
        )
        messages = (Message(Role.AGENT, tuple(parts)),) if parts else ()
        return Result(self.spec.name, messages, metadata, token_usage(usage))

    async def stream(self, call: Attempt) -> AsyncIterator[Event]:
        with self._agent_errors():
            async for sse in self.transport.stream_sse(call, "POST", f"{self._agent_path}/stream", self._body(call)):
                if sse.data.strip() == STREAM_END:
                    return
                if (event := self._event(call, sse)) is not None:
                    yield event

    def _event(self, call: Attempt, sse: SseEvent) -> Event | None:
        chunk = sse_json(sse, self.spec.name, "Mastra")
        if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
            raise UpstreamError("the Mastra stream sent a chunk without a type", agent=self.spec.name)
        kind: str = chunk["type"]
        payload = chunk.get("payload")
        data: dict[str, Any] = payload if isinstance(payload, dict) else {}
        if kind == "text-delta":
            text = str(data.get("text", ""))
            return Event("delta", message=Message(Role.AGENT, (TextPart(text),))) if text else None
        if kind == "error":
            raise UpstreamError(
                f"the Mastra agent failed: {_error_message(data.get('error', payload))}", agent=self.spec.name
            )
        if kind == "tripwire":
            reason = data.get("tripwireReason") or data.get("reason") or "a processor stopped the run"
            raise UpstreamRejected(f"the Mastra agent refused: {reason}", agent=self.spec.name)
        if kind in _FRAMING_CHUNKS:
            return None
        if kind == "start":
            return Event("status", data={"state": "started", "run_id": chunk.get("runId"), **self._metadata(call, {})})
        if kind == "finish":
            step, output = _object(data, "stepResult"), _object(data, "output")
            return Event(
                "status",
                data={
                    "state": "finished",
                    "run_id": chunk.get("runId"),
                    "finish_reason": step.get("reason"),
                    "usage": output.get("usage"),
                },
                usage=token_usage(output.get("usage")),  # the whole run's, once (steps are not counted again)
            )
        if kind in ("step-start", "step-finish"):
            step = _object(data, "stepResult")
            return Event("step", data={"phase": kind.removeprefix("step-"), "reason": step.get("reason")})
        if kind == "tool-call":
            return Event("tool", data={"tool_call": _tool_fields(data, "args")})
        if kind == "tool-result":
            return Event("tool", data={"tool_result": _tool_fields(data, "result")})
        if kind == "tool-error":
            return Event("tool", data={"tool_error": _tool_fields(data, "error")})
        if kind == "reasoning-delta":
            return Event("reasoning", data={"text": data.get("text", "")})
        if kind == "object":
            return Event("data", data=payload if payload is not None else chunk.get("object"))
        return Event(kind.replace("-", "_"), data=payload)


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _tool_fields(data: Mapping[str, Any], value_key: str) -> dict[str, Any]:
    return {"id": data.get("toolCallId"), "name": data.get("toolName"), value_key: data.get(value_key)}


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("name") or error)
    return str(error)
