"""The terminal of every agent's chain: one upstream attempt, in a client span with its own context headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway.adapters.base import Adapter
from gateway.model import AgentSpec, Attempt, Event, GatewayError, Invocation, Result, TokenUsage, add_usage
from gateway.propagation import outbound_headers
from gateway.telemetry import tracing as t
from gateway.telemetry.metrics import GatewayMetrics


def _span_attributes(invocation: Invocation, spec: AgentSpec) -> dict[str, str | int | float]:
    ctx = invocation.context
    attributes: dict[str, str | int | float] = {
        t.ATTR_OPERATION: "invoke_agent",
        t.ATTR_AGENT: spec.name,
        t.ATTR_ADAPTER: spec.kind,
        t.ATTR_ATTEMPT: invocation.attempt,
        t.ATTR_REQUEST_ID: ctx.request_id,
    }
    if ctx.session_id:
        attributes[t.ATTR_SESSION] = ctx.session_id
    if ctx.thread_id:
        attributes[t.ATTR_CONVERSATION] = ctx.thread_id
    if ctx.user_id:
        attributes[t.ATTR_USER] = ctx.user_id
    if spec.provider:
        attributes[t.ATTR_PROVIDER] = spec.provider
    return attributes


def _record_usage(span: trace.Span, invocation: Invocation, usage: TokenUsage | None) -> None:
    """The attempt's tokens on its span, and added to the call's record (every attempt's tokens were spent)."""
    if usage is None:
        return
    span.set_attribute(t.ATTR_INPUT_TOKENS, usage.input_tokens)
    span.set_attribute(t.ATTR_OUTPUT_TOKENS, usage.output_tokens)
    invocation.record.usage = add_usage(invocation.record.usage, usage)


def _record_failure(span: trace.Span, error: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, str(error)))
    span.set_attribute(t.ATTR_ERROR_TYPE, error.code.value if isinstance(error, GatewayError) else type(error).__name__)


class AttemptHandler:
    """The terminal of every chain: one upstream attempt in a client span."""

    def __init__(self, spec: AgentSpec, adapter: Adapter, tracer: Tracer, metrics: GatewayMetrics) -> None:
        self.spec = spec
        self.adapter = adapter
        self.tracer = tracer
        self.span_name = f"invoke_agent {spec.name}"
        self.metrics = metrics

    def _count(self, started: float, error: BaseException | None) -> None:
        outcome = "OK" if error is None else error.code.value if isinstance(error, GatewayError) else "CANCELLED"
        m = self.metrics
        m.child(m.attempts, self.spec.name, outcome).inc()
        m.child(m.attempt_seconds, self.spec.name, outcome).observe(time.perf_counter() - started)

    def _start(self, invocation: Invocation) -> tuple[trace.Span, Attempt]:
        attributes = _span_attributes(invocation, self.spec)
        if invocation.attempt > 1 and invocation.record.retries:
            # The wait before this retry, so a trace shows the backoff between attempt spans.
            attributes[t.ATTR_BACKOFF_MS] = invocation.record.retries[-1].get("backoff_ms", 0)
        span = self.tracer.start_span(self.span_name, kind=SpanKind.CLIENT, attributes=attributes)
        headers = outbound_headers(invocation.context, trace.set_span_in_context(span, otel_context.get_current()))
        return span, Attempt(invocation, headers)

    async def invoke(self, invocation: Invocation) -> Result:
        invocation.record.attempts += 1
        span, call = self._start(invocation)
        started, error = time.perf_counter(), None
        try:
            result = await self.adapter.invoke(call)
            _record_usage(span, invocation, result.usage)
            return result
        except BaseException as exc:
            error = exc
            _record_failure(span, exc)
            raise
        finally:
            span.end()
            self._count(started, error)

    async def stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        invocation.record.attempts += 1
        span, call = self._start(invocation)
        started, error = time.perf_counter(), None
        usage: TokenUsage | None = None
        try:
            async for event in self.adapter.stream(call):
                if event.usage is not None:
                    usage = add_usage(usage, event.usage)
                yield event
        except BaseException as exc:
            error = exc
            _record_failure(span, exc)
            raise
        finally:
            _record_usage(span, invocation, usage)
            span.end()
            self._count(started, error)
