"""A tracer whose spans cost next to nothing when nothing would record them.

The gateway makes a span on every hop so that each one has real ids to propagate. A span of
the SDK (sampler, attributes behind a lock, processors' hooks) is wasted work when no span
processor would ever see it (nothing exported, the default) or its trace is not sampled: such
a span is a ``NonRecordingSpan`` here, with fresh ids made by the SDK's own id generator, as
the SDK would make them: a child keeps its parent's trace id, trace state and flags; a root
starts a new trace. Sampling is parent-based: a parent's sampled flag is honoured, and a root is
sampled at ``sample_ratio``. Spans that something records are the SDK's own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

# The flags a child span carries over from its parent (the SDK's: sampled, and random trace id).
_INHERITED_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


class GatewayTracer(trace.Tracer):
    """The SDK tracer's spans when something records them, cheap non-recording ones otherwise."""

    def __init__(self, sdk: sdk_trace.Tracer, sample_ratio: float = 1.0) -> None:
        self.sdk = sdk
        self.sample_ratio = sample_ratio
        # The provider's processors, shared: one added to the provider later is seen on the next span.
        self._processors = sdk.span_processor
        self._ids = sdk.id_generator
        self._root_flags = TraceFlags.RANDOM_TRACE_ID if sdk.id_generator.is_trace_id_random() else 0

    def unrecorded(self, context: otel_context.Context | None = None) -> SpanContext | None:
        """The ids of a span parented on ``context`` (default: the current one) that nothing
        records (unsampled, or no span processor); None when the SDK should make a real span."""
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            flags = parent.trace_flags
            if flags & TraceFlags.SAMPLED and self._processors._span_processors:
                return None
            return SpanContext(
                parent.trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(flags & _INHERITED_FLAGS),
                trace_state=parent.trace_state,
            )
        ratio = self.sample_ratio
        sampled = ratio >= 1.0 or random.random() < ratio
        if sampled and self._processors._span_processors:
            return None
        return SpanContext(
            self._ids.generate_trace_id(),
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(self._root_flags | (TraceFlags.SAMPLED if sampled else 0)),
        )

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        span_context = self.unrecorded(context)
        if span_context is not None:
            return NonRecordingSpan(span_context)
        return self.sdk.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span_context = self.unrecorded(context)
        if span_context is None:
            span = self.sdk.start_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
            with trace.use_span(span, end_on_exit, record_exception, set_status_on_exception) as current:
                yield current
            return
        # What use_span does, less its handling of exceptions and ending (no-ops on this span).
        cheap = NonRecordingSpan(span_context)
        token = otel_context.attach(trace.set_span_in_context(cheap))
        try:
            yield cheap
        finally:
            otel_context.detach(token)
