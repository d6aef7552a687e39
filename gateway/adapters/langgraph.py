"""LangGraph Agent Server API adapter (assistants, threads, runs).

* Unary calls use ``POST /threads/{id}/runs/wait`` (or ``/runs/wait`` when the
  call has no thread or session: a stateless run) and map the final state's
  new messages back; a failed run answers HTTP 200 with an ``__error__`` body,
  which becomes an upstream error.
* Streams use ``.../runs/stream`` with the stream modes the user picks
  (``values``, ``updates``, ``messages-tuple``/``messages``, ``custom``, ...);
  token chunks become ``delta`` events (``messages`` mode sends the message
  so far in ``messages/partial``; only the new text becomes a delta), finished
  messages ``message`` events, node updates ``step`` events, tool calls
  ``tool`` events, full states ``state`` events; ``event: error`` fails the
  stream.
* An unknown assistant (HTTP 422 "Invalid assistant" for a name, 404 for a
  UUID) is a permanent :class:`~gateway.model.UpstreamNotFound`.
* The gateway's thread id (or, without one, its session id) maps to a
  LangGraph thread: a stable UUID derived from it, created on first use with
  ``if_not_exists: create``.
* A stream abandoned before its end (a cancelled background run, a caller
  gone, a passed deadline) cancels its run upstream: ``POST
  /threads/{thread}/runs/{run}/cancel`` with the run id from the stream's
  ``metadata`` event. A stateless run lives on a temporary thread nobody can
  name, so it is sent with ``on_disconnect: cancel`` instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from pydantic import Field

from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import (
    ThreadFrom,
    call_ids,
    conversation_id,
    not_found_when,
    send_cancel,
    sse_json,
    upstream_status,
    upstream_uuid,
)
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
    TokenUsage,
    UpstreamError,
    UpstreamRejected,
    add_usage,
)
from gateway.protocols.sse import SseEvent

# Namespace for deriving LangGraph thread UUIDs from gateway ids (stable across gateways).
THREAD_NAMESPACE = uuid.UUID("6f1c4a8e-3b7d-5e2a-9c41-0d8b7a6e5f31")
_ROLE_TO_LANGCHAIN = {Role.USER: "user", Role.AGENT: "assistant", Role.SYSTEM: "system", Role.TOOL: "tool"}
_LANGCHAIN_TO_ROLE = {
    "human": Role.USER,
    "user": Role.USER,
    "ai": Role.AGENT,
    "AIMessageChunk": Role.AGENT,
    "assistant": Role.AGENT,
    "system": Role.SYSTEM,
    "tool": Role.TOOL,
    "ToolMessageChunk": Role.TOOL,
}
# Run-create fields a caller may set through `options.params`.
_RUN_FIELDS = (
    "config",
    "context",
    "metadata",
    "interrupt_before",
    "interrupt_after",
    "command",
    "checkpoint",
    "stream_subgraphs",
    "multitask_strategy",
    "durability",
)


class LangGraphOptions(AdapterOptions):
    # The assistant to run: a graph name registered in langgraph.json or an assistant UUID.
    assistant_id: str = ""
    # Which gateway id maps to a LangGraph thread; "none" runs every call stateless.
    thread_from: ThreadFrom = "thread_or_session"
    # Stream modes when the caller does not pick any (params.stream_mode).
    stream_mode: list[str] = Field(default_factory=lambda: ["messages-tuple", "updates"])
    # The state key holding the conversation.
    messages_key: str = "messages"
    # Sent as x-api-key (LangGraph Platform); use ${ENV} substitution.
    api_key: str = ""
    headers: dict[str, str] = Field(default_factory=dict)


def langchain_message(message: Message) -> dict[str, Any]:
    """A LangChain message dict (role + content; rich parts become content blocks)."""
    if all(isinstance(p, TextPart) for p in message.parts):
        content: Any = message.text
    else:
        content = [_content_block(p) for p in message.parts]
    out: dict[str, Any] = {"role": _ROLE_TO_LANGCHAIN[message.role], "content": content}
    if message.message_id:
        out["id"] = message.message_id
    return out


def _content_block(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, FilePart):
        return {"type": "file", "url": part.uri, "mime_type": part.media_type}
    return {"type": "text", "text": json.dumps(part.data)}


def gateway_message(data: Mapping[str, Any]) -> Message | None:
    """A model message from a serialized LangChain message (None for unknown shapes)."""
    role = _LANGCHAIN_TO_ROLE.get(str(data.get("type") or data.get("role")))
    if role is None:
        return None
    content = data.get("content")
    parts: list[Part] = []
    if isinstance(content, str):
        if content:
            parts.append(TextPart(content))
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append(TextPart(block))
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(TextPart(str(block.get("text", ""))))
            else:
                parts.append(DataPart(block))
    metadata: dict[str, JSON] = {}
    if tool_calls := data.get("tool_calls"):
        parts.append(DataPart({"tool_calls": tool_calls}))
    for key in ("name", "tool_call_id"):
        if data.get(key):
            metadata[key] = data[key]
    return Message(role, tuple(parts), metadata, str(data.get("id") or ""))


def _added(values: Any, messages_key: str) -> list[Any] | None:
    """The message dicts a run added: everything after the last human message (None: no message list)."""
    if not isinstance(values, dict) or not isinstance(values.get(messages_key), list):
        return None
    history = values[messages_key]
    start = 0
    for index, item in enumerate(history):
        if isinstance(item, dict) and item.get("type") in ("human", "user"):
            start = index + 1
    return [m for m in history[start:] if isinstance(m, dict)]


def _unknown_assistant(exc: UpstreamRejected) -> bool:
    """HTTP 422 "Invalid assistant" for a graph name, 404 for an assistant UUID."""
    status = upstream_status(exc)
    return status == 404 or (status == 422 and "Invalid assistant" in exc.upstream_body)


def new_messages(values: Any, messages_key: str) -> tuple[Message, ...]:
    """The messages a run added, as model messages (the whole state as data when it has no message list)."""
    added = _added(values, messages_key)
    if added is None:
        return (Message(Role.AGENT, (DataPart(values),)),)
    converted = (gateway_message(m) for m in added)
    return tuple(m for m in converted if m is not None)


def run_usage(values: Any, messages_key: str) -> TokenUsage | None:
    """The tokens of the messages a run added (each AI message's ``usage_metadata``), None when none says."""
    total: TokenUsage | None = None
    for item in _added(values, messages_key) or []:
        total = add_usage(total, token_usage(item.get("usage_metadata")))
    return total


class LangGraphAdapter(Adapter):
    kind = "langgraph"
    Options = LangGraphOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: LangGraphOptions
        headers = dict(self.options.headers)
        if self.options.api_key:
            headers["x-api-key"] = self.options.api_key
        self.transport = resources.transports(resources.http, spec.name, spec.endpoint, headers, tls=spec.tls)

    def thread_id(self, call: Attempt) -> str | None:
        """The LangGraph thread UUID for this call, or None for a stateless run."""
        gateway_id = conversation_id(call.context, self.options.thread_from)
        return upstream_uuid(THREAD_NAMESPACE, self.spec.name, gateway_id) if gateway_id else None

    def _run_body(self, call: Attempt, stream_mode: list[str] | None) -> dict[str, Any]:
        params = call.invocation.options.params
        graph_input = params.get("input")
        if graph_input is None:
            graph_input = {self.options.messages_key: [langchain_message(m) for m in call.invocation.messages]}
        metadata = call_ids(call.context, ("session_id", "user_id", "request_id"))
        body: dict[str, Any] = {
            "assistant_id": self.options.assistant_id or self.spec.name,
            "input": graph_input,
            "metadata": {"agent_gateway": metadata},
        }
        for field in _RUN_FIELDS:
            if field in params:
                body[field] = params[field]
        if stream_mode is not None:
            body["stream_mode"] = stream_mode
        return body

    def _path(self, call: Attempt, suffix: str) -> tuple[str, str | None]:
        thread = self.thread_id(call)
        if thread is None:
            return f"/runs/{suffix}", None
        return f"/threads/{thread}/runs/{suffix}", thread

    async def invoke(self, call: Attempt) -> Result:
        path, thread = self._path(call, "wait")
        body = self._run_body(call, None)
        if thread is not None:
            body["if_not_exists"] = "create"
        with self._assistant_errors():
            _, values = await self.transport.request_json(call, "POST", path, body)
        self._raise_for_error(values)
        metadata: dict[str, JSON] = {"langgraph_thread_id": thread} if thread else {}
        key = self.options.messages_key
        return Result(self.spec.name, new_messages(values, key), metadata, run_usage(values, key))

    def _assistant_errors(self) -> AbstractContextManager[None]:
        """An unknown assistant becomes NOT_FOUND instead of a generic rejection."""
        assistant = self.options.assistant_id or self.spec.name
        return not_found_when(
            _unknown_assistant,
            f"the LangGraph server has no assistant {assistant!r}: check `assistant_id` and langgraph.json",
        )

    def _raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and "__error__" in body:
            error = body["__error__"]
            kind = error.get("error", "Error") if isinstance(error, dict) else "Error"
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            raise UpstreamError(
                f"the graph failed: {kind}: {message}", agent=self.spec.name, details={"langgraph_error": kind}
            )

    async def stream(self, call: Attempt) -> AsyncIterator[Event]:
        requested = call.invocation.options.params.get("stream_mode")
        modes = [requested] if isinstance(requested, str) else list(requested or self.options.stream_mode)
        path, thread = self._path(call, "stream")
        body = self._run_body(call, modes)
        if thread is not None:
            body["if_not_exists"] = "create"
        else:
            body.setdefault("on_disconnect", "cancel")
        seen: dict[str, str] = {}  # message id -> text already sent as deltas (messages/partial)
        run_id = ""
        ended = False
        try:
            with self._assistant_errors():
                async for sse in self.transport.stream_sse(call, "POST", path, body):
                    for event in self._events(sse, seen):
                        if event.type == "status" and isinstance(event.data, dict) and not run_id:
                            run_id = str(event.data.get("run_id") or "")
                        yield event
            ended = True
        except UpstreamError:
            ended = True  # the run failed upstream: nothing left to cancel
            raise
        finally:
            if thread is not None and run_id and not ended:
                self.cancel_abandoned(call, {"thread_id": thread, "run_id": run_id})

    async def cancel(self, call: Attempt, upstream: Mapping[str, str]) -> None:
        """Cancel the run on its thread (LangGraph marks it ``interrupted``)."""
        await send_cancel(self.transport, call, f"/threads/{upstream['thread_id']}/runs/{upstream['run_id']}/cancel")

    def _events(self, sse: SseEvent, seen: dict[str, str]) -> list[Event]:
        data = sse_json(sse, self.spec.name, "LangGraph")
        name = sse.event
        if name == "error":
            message = data.get("message", data) if isinstance(data, dict) else data
            raise UpstreamError(f"the graph failed: {message}", agent=self.spec.name)
        if name == "metadata":
            return [Event("status", data=data)]
        if name == "messages" and isinstance(data, list) and data and isinstance(data[0], dict):
            return self._message_chunk(data[0], data[1] if len(data) > 1 else None)
        if name in ("messages/partial", "messages/complete") and isinstance(data, list):
            return self._message_snapshots(name == "messages/complete", data, seen)
        if name == "messages/metadata":
            return []  # run metadata per message id; the ids travel on the messages themselves
        if name.startswith("messages/"):
            return [Event(name.replace("/", "_"), data=data)]
        if name == "updates":
            return [Event("step", data=data)]
        if name == "values":
            return [Event("state", data=data)]
        return [Event(name.split("|")[0], data=data)]

    def _message_chunk(self, chunk: dict[str, Any], metadata: Any) -> list[Event]:
        events: list[Event] = []
        node = metadata.get("langgraph_node") if isinstance(metadata, dict) else None
        content = chunk.get("content")
        kind = str(chunk.get("type", ""))
        if kind in ("tool", "ToolMessageChunk"):
            message = gateway_message(chunk)
            return [Event("tool", message=message, data={"node": node})] if message else []
        if isinstance(content, str) and content:
            events.append(Event("delta", message=Message(Role.AGENT, (TextPart(content),)), data={"node": node}))
        for tool_call in chunk.get("tool_call_chunks") or chunk.get("tool_calls") or []:
            events.append(Event("tool", data={"node": node, "tool_call": tool_call}))
        if (usage := token_usage(chunk.get("usage_metadata"))) is not None:  # streamed models report it once
            events.append(Event("usage", data={"node": node}, usage=usage))
        return events

    def _message_snapshots(self, complete: bool, snapshots: list[Any], seen: dict[str, str]) -> list[Event]:
        """``messages`` mode resends each message whole as it grows: emit only the new text."""
        events: list[Event] = []
        for snapshot in snapshots:
            if not isinstance(snapshot, dict):
                continue
            message_id = str(snapshot.get("id") or "")
            content = snapshot.get("content")
            if isinstance(content, str) and str(snapshot.get("type")) in ("ai", "AIMessageChunk"):
                before = seen.get(message_id, "")
                if content.startswith(before) and len(content) > len(before):
                    events.append(Event("delta", message=Message(Role.AGENT, (TextPart(content[len(before) :]),))))
                seen[message_id] = content
            if complete and (message := gateway_message(snapshot)) is not None:
                events.append(Event("message", message=message, usage=token_usage(snapshot.get("usage_metadata"))))
        return events
