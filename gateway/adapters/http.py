"""The generic HTTP agent adapter: JSON in, JSON or server-sent events out.

Wire format (the gateway's own HTTP JSON, so an agent can be written in any
language in a few lines):

* ``POST {endpoint}{invoke_path}`` with the protobuf JSON of ``InvokeRequest``;
  the reply is the JSON of ``InvokeResponse`` (``{"messages": [...]}``), or any
  other JSON value (kept as a data part), or plain text (a text part).
* ``POST {endpoint}{stream_path}`` answers ``text/event-stream``; each event's
  data is the JSON of an ``Event`` (``{"type": "delta", "message": {...}}``), or
  plain text, taken as a ``delta`` text chunk (typed by the SSE ``event:`` name
  when it has one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire, wire_json
from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import json_or_none
from gateway.adapters.usage import token_usage
from gateway.model import (
    AgentSpec,
    Attempt,
    DataPart,
    Event,
    InvalidRequest,
    Message,
    Result,
    Role,
    TextPart,
    UpstreamError,
)
from gateway.protocols.sse import DEFAULT_MAX_EVENT_BYTES, SseEvent


class HttpAgentOptions(AdapterOptions):
    invoke_path: str = "/invoke"
    stream_path: str = "/stream"
    # Static headers for every request (for example an API key from ${ENV}).
    headers: dict[str, str] = Field(default_factory=dict)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, gt=0)


class HttpAgentAdapter(Adapter):
    kind = "http"
    Options = HttpAgentOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: HttpAgentOptions
        self.transport = resources.transports(
            resources.http, spec.name, spec.endpoint, self.options.headers, self.options.max_event_bytes, spec.tls
        )

    def _body(self, call: Attempt) -> dict[str, Any]:
        return wire_json.invocation_json(call.invocation)

    async def invoke(self, call: Attempt) -> Result:
        _, body = await self.transport.request_json(call, "POST", self.options.invoke_path, self._body(call))
        usage = token_usage(body.get("usage")) if isinstance(body, dict) else None
        return Result(self.spec.name, self._messages(body), usage=usage)

    def stream(self, call: Attempt) -> AsyncIterator[Event]:
        # The transport converts each event (no generator of the adapter's own around its stream).
        return self.transport.stream_sse_as(self._event, call, "POST", self.options.stream_path, self._body(call))

    def _messages(self, body: Any) -> tuple[Message, ...]:
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            fast = wire_json.messages(body["messages"], Role.AGENT)
            if fast is not None:
                return fast
            response = pb.InvokeResponse()
            try:
                wire.parse_json({"messages": body["messages"]}, response)
            except InvalidRequest as exc:
                raise UpstreamError(
                    f"the agent sent a malformed message: {exc.message}", agent=self.spec.name
                ) from None
            return wire.result_from_pb(response).messages
        if isinstance(body, str):
            return (Message(Role.AGENT, (TextPart(body),)),)
        return (Message(Role.AGENT, (DataPart(body),)),)

    def _event(self, sse: SseEvent) -> Event:
        if sse.event == "error":
            raise UpstreamError(f"the agent reported an error: {sse.data[:512]}", agent=self.spec.name)
        data = json_or_none(sse.data)
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            fast = wire_json.event(data)
            if fast is not None:
                return fast
            event = pb.Event()
            try:
                wire.parse_json(data, event)
            except InvalidRequest as exc:
                raise UpstreamError(f"the agent sent a malformed event: {exc.message}", agent=self.spec.name) from None
            return wire.event_from_pb(event)
        kind = sse.event if sse.event != "message" else "delta"
        if data is None or isinstance(data, str):
            return Event(kind, message=Message(Role.AGENT, (TextPart(sse.data if data is None else data),)))
        return Event(kind, data=data)
