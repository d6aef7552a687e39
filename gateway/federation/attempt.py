"""The terminal of an MCP upstream's chain: one MCP request, carried as an :class:`Invocation`, in a CLIENT span."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.adapters.mcp_stdio import McpStdioUpstream
from gateway.federation.attributes import (
    ATTR_MCP_METHOD,
    ATTR_MCP_VERSION,
    ATTR_PROMPT,
    ATTR_RESOURCE,
    ATTR_RPC_ERROR,
    ATTR_TOOL,
)
from gateway.model import Attempt, Context, DataPart, Event, GatewayError, Invocation, Message, Options, Result, Role
from gateway.propagation import outbound_headers
from gateway.telemetry import tracing as t

McpClient = McpHttpUpstream | McpStdioUpstream


def request_invocation(
    upstream: str, method: str, params: Mapping[str, Any], context: Context, idempotent: bool
) -> Invocation:
    """The model's view of one MCP request to ``upstream``."""
    part = DataPart({"method": method, "params": dict(params)})
    return Invocation(f"mcp/{upstream}", (Message(Role.USER, (part,)),), context, Options(idempotent=idempotent))


def request_of(invocation: Invocation) -> tuple[str, dict[str, Any]]:
    """The MCP method and params an invocation of :func:`request_invocation` carries."""
    part = invocation.messages[0].parts[0]
    assert isinstance(part, DataPart)
    assert isinstance(part.data, dict)
    return part.data["method"], part.data["params"]


def response_of(result: Result) -> dict[str, Any]:
    """The MCP response a :class:`McpAttempt` result carries."""
    part = result.messages[0].parts[0]
    assert isinstance(part, DataPart)
    assert isinstance(part.data, dict)
    return part.data


class McpAttempt:
    """The terminal of an MCP upstream's chain: one request in a CLIENT span."""

    def __init__(self, name: str, client: McpClient, tracer: Tracer, metrics: Any) -> None:
        self.name = name
        self.client = client
        self.tracer = tracer
        self.metrics = metrics

    def _start(self, invocation: Invocation, method: str, params: Mapping[str, Any]) -> tuple[Span, dict[str, str]]:
        """The attempt's CLIENT span and the outbound headers carrying it."""
        invocation.record.attempts += 1
        span_name = f"tools/call {params.get('name', '')}" if method == "tools/call" else method
        span = self.tracer.start_span(
            span_name, kind=SpanKind.CLIENT, attributes=self._attributes(invocation, method, params)
        )
        headers = outbound_headers(invocation.context, trace.set_span_in_context(span, otel_context.get_current()))
        return span, headers

    def _attributes(self, invocation: Invocation, method: str, params: Mapping[str, Any]) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            ATTR_MCP_METHOD: method,
            t.ATTR_ATTEMPT: invocation.attempt,
            t.ATTR_REQUEST_ID: invocation.context.request_id,
            "server.address": self.name,
        }
        if method == "tools/call":
            attributes[ATTR_TOOL] = params.get("name", "")
            attributes[t.ATTR_OPERATION] = "execute_tool"
        elif method == "prompts/get":
            attributes[ATTR_PROMPT] = params.get("name", "")
        elif method == "resources/read":
            attributes[ATTR_RESOURCE] = params.get("uri", "")
        return attributes

    async def stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        """The request with its notifications (progress) as events, the response last."""
        method, params = request_of(invocation)
        span, headers = self._start(invocation, method, params)
        try:
            async for item in self.client.stream(Attempt(invocation, headers), method, params):
                yield Event("mcp", data=item)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()

    async def invoke(self, invocation: Invocation) -> Result:
        method, params = request_of(invocation)
        span, headers = self._start(invocation, method, params)
        started = time.perf_counter()
        outcome = "OK"
        try:
            with trace.use_span(span, end_on_exit=False):
                answer = await self.client.request(Attempt(invocation, headers), method, params)
            if self.client.version:
                span.set_attribute(ATTR_MCP_VERSION, self.client.version)
            if isinstance(answer.get("error"), dict):
                outcome = "RPC_ERROR"
                span.set_attribute(ATTR_RPC_ERROR, str(answer["error"].get("code")))
                span.set_attribute(t.ATTR_ERROR_TYPE, str(answer["error"].get("code")))
                span.set_status(Status(StatusCode.ERROR, str(answer["error"].get("message", ""))))
            elif isinstance(answer.get("result"), dict) and answer["result"].get("isError") is True:
                outcome = "TOOL_ERROR"
                span.set_attribute(t.ATTR_ERROR_TYPE, "tool_error")
                span.set_status(Status(StatusCode.ERROR, "the tool reported an error"))
            return Result(invocation.agent, (Message(Role.AGENT, (DataPart(answer),)),))
        except BaseException as exc:
            outcome = exc.code.value if isinstance(exc, GatewayError) else "CANCELLED"
            _failed(span, exc)
            raise
        finally:
            span.end()
            if method == "tools/call" and self.metrics is not None:
                tool = f"{self.name}/{params.get('name', '')}"
                self.metrics.child(self.metrics.mcp_tool_calls, tool, outcome).inc()
                self.metrics.child(self.metrics.mcp_tool_seconds, tool, outcome).observe(time.perf_counter() - started)


def _failed(span: Span, exc: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, str(exc)))
    span.set_attribute(t.ATTR_ERROR_TYPE, exc.code.value if isinstance(exc, GatewayError) else type(exc).__name__)
