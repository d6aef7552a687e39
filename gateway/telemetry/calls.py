"""What happens when a call ends: metrics, one access-log line, and for failures one
record with the whole story (attempts, retry history, fallback, breaker state).

Only the outermost entry of a call reports (a fallback re-enters the gateway with
the same :class:`~gateway.model.CallRecord`); workflow steps are calls of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from opentelemetry import trace

from gateway.model import GatewayError, Invocation, StatusCode
from gateway.telemetry.metrics import GatewayMetrics, PolicyStates

access = logging.getLogger("agent_gateway.access")
failures = logging.getLogger("agent_gateway.failures")

PayloadLogging = Literal["none", "summary", "full"]
UNKNOWN_AGENT = "_unknown"
SUMMARY_CHARS = 200
# The failure record keeps this much of an agent's error reply (enough for a stack trace).
LOGGED_BODY_CHARS = 8192


def summarize(invocation: Invocation, payloads: PayloadLogging = "summary") -> str:
    """The last message's text for logs: nothing, the first characters, or all of it."""
    if payloads == "none" or not invocation.messages:
        return ""
    text = invocation.messages[-1].text
    if payloads == "full" or len(text) <= SUMMARY_CHARS:
        return text
    return text[:SUMMARY_CHARS] + "..."


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class CallObserver:
    def __init__(self, metrics: GatewayMetrics, policies: PolicyStates, payloads: PayloadLogging) -> None:
        self.metrics = metrics
        self.policies = policies
        self.payloads = payloads
        # Characters of an agent's error reply callers see (server.upstream_body_excerpt).
        self.upstream_body_excerpt = 0
        # Names callers may use (agents, workflows, routes); set on every (re)load.
        self.known: frozenset[str] = frozenset()
        # Called with each finished call (its record complete): token budgets charge their callers here.
        self.on_finished: list[Callable[[Invocation], None]] = []

    def label(self, agent: str) -> str:
        """The metric label for a called name: callers choose names, so unknown ones share one
        label instead of growing the metric without bound."""
        return agent if agent in self.known else UNKNOWN_AGENT

    def started(self, invocation: Invocation) -> float:
        self.metrics.child(self.metrics.in_flight, self.label(invocation.agent)).inc()
        return time.perf_counter()

    def finished(
        self,
        invocation: Invocation,
        started: float,
        error: GatewayError | None,
        streamed: bool,
        answered: StatusCode | None = None,
    ) -> None:
        """``answered``: the code of an error answer the gateway relayed rather than raised (the passthrough)."""
        elapsed = time.perf_counter() - started
        record = invocation.record
        outcome = error.code.value if error is not None else answered.value if answered is not None else "OK"
        agent = self.label(invocation.agent)
        m = self.metrics
        m.child(m.in_flight, agent).dec()
        m.child(m.requests, agent, record.route, outcome).inc()
        m.child(m.request_seconds, agent, record.route, outcome).observe(elapsed)
        retried = sum(1 for r in record.retries if "backoff_ms" in r)
        if retried:
            m.child(m.retries, agent).inc(retried)
        if record.fallback:
            m.child(m.fallbacks, agent, record.fallback).inc()
        if streamed:
            m.child(m.streams, agent, outcome).inc()
        if (usage := record.usage) is not None:
            m.child(m.tokens, agent, record.route, "input").inc(usage.input_tokens)
            m.child(m.tokens, agent, record.route, "output").inc(usage.output_tokens)
        for hook in self.on_finished:
            hook(invocation)
        if error is None and not access.isEnabledFor(logging.INFO):
            return  # the access log is off: no fields to build on a healthy call
        fields: dict[str, Any] = {
            "agent": invocation.agent,
            "route": record.route,
            "status": outcome,
            "duration_ms": round(elapsed * 1000, 2),
            "attempts": record.attempts,
            "stream": streamed,
            "trace_id": _trace_id(),
            "request_id": invocation.context.request_id,
            "session_id": invocation.context.session_id,
        }
        if record.fallback:
            fields["fallback"] = record.fallback
        if usage is not None:
            fields["input_tokens"], fields["output_tokens"] = usage.input_tokens, usage.output_tokens
        access.info(
            "%s %s %.1fms attempts=%d",
            invocation.agent,
            outcome,
            elapsed * 1000,
            record.attempts,
            extra={"agw": fields},
        )
        if error is not None and error.code is not StatusCode.CANCELLED:
            # A cancelled call (the caller left, a run was cancelled) is no failure: the access record tells it.
            self.failed(invocation, error, fields)

    def failed(self, invocation: Invocation, error: GatewayError, access_fields: dict[str, Any] | None = None) -> None:
        """Put the retry history on the error (the caller sees it) and log one record with the whole story."""
        record = invocation.record
        story: dict[str, Any] = {"attempts": record.attempts}
        if record.retries:
            story["retries"] = record.retries
        if record.fallback:
            story["fallback"] = record.fallback
        if error.upstream_body and self.upstream_body_excerpt:
            story["upstream_body"] = error.upstream_body[: self.upstream_body_excerpt]
        error.details = {**error.details, **story}
        breaker = self.policies.breakers.get(f"agent/{error.agent or invocation.agent}")
        fields = {
            **(access_fields or {"agent": invocation.agent, "trace_id": _trace_id()}),
            "failed_agent": error.agent,
            "code": error.code.value,
            "error": error.message,
            "request_id": invocation.context.request_id,
            "session_id": invocation.context.session_id,
            "thread_id": invocation.context.thread_id,
            "user_id": invocation.context.user_id,
            "input": summarize(invocation, self.payloads),
            "breaker_state": breaker.state if breaker is not None else "",
            **story,
        }
        if error.upstream_body:
            fields["upstream_body"] = error.upstream_body[:LOGGED_BODY_CHARS]
        failures.warning(
            "invocation of %s failed: %s %s (attempts=%d)",
            invocation.agent,
            error.code.value,
            error.message,
            record.attempts,
            extra={"agw": fields},
        )
