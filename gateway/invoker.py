"""The gateway as the runtime pieces see it: one routed call, policies included.

Runs and triggers call agents through this interface; ``pipeline.Gateway``
satisfies it structurally, so they never import the pipeline (which builds them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from opentelemetry.trace import Tracer

from gateway.model import Event, Invocation, Result


class Invoker(Protocol):
    # The spans of the calls go here; a caller opens its own span (a run's, a trigger's) on it.
    @property
    def tracer(self) -> Tracer: ...

    async def invoke(self, invocation: Invocation) -> Result: ...

    def open_stream(self, invocation: Invocation) -> tuple[str, AsyncIterator[Event]]:
        """Route now (routing errors surface before any event) and return the answering agent with its stream."""
        ...
