"""The adapter interface: one small class per framework protocol.

An adapter turns a :class:`~gateway.model.Attempt` into the framework's native
request, sends it, and maps the reply (or stream) back to a
:class:`~gateway.model.Result` or :class:`~gateway.model.Event` objects. It
classifies failures into the model's error types (transient or permanent) and
never retries, times out on its own, or logs payloads: policies do that.

Shared mechanics (the HTTP session, SSE parsing, header injection, status
mapping) live in :mod:`gateway.transport` and :mod:`gateway.protocols.sse`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from gateway.model import AgentSpec, Attempt, Event, Result

# Defined below the adapters, so the composition roots (server, eval) build it without importing an adapter.
from gateway.transport import AdapterResources as AdapterResources

log = logging.getLogger("agent_gateway.adapters")

# How long a background upstream cancel may take (and how long closing waits for the pending ones).
CANCEL_TIMEOUT = 5.0


class AdapterOptions(BaseModel):
    """Base for an adapter's ``options:`` block; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Adapter(abc.ABC):
    """Base class of all adapters. Subclasses set ``kind`` and ``Options``."""

    kind: ClassVar[str]
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    streaming: ClassVar[bool] = True

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        self.spec = spec
        self.resources = resources
        self.options: Any = self.Options.model_validate(dict(spec.options))
        self._cancellations: set[asyncio.Task[None]] = set()

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        """Raise pydantic.ValidationError when ``options`` are wrong (config load)."""
        cls.Options.model_validate(dict(options))

    @abc.abstractmethod
    async def invoke(self, call: Attempt) -> Result:
        """Send one attempt and return the complete result."""

    def stream(self, call: Attempt) -> AsyncIterator[Event]:
        """Send one attempt and yield its events; by default one ``message`` per result message."""
        return self._stream_from_invoke(call)

    async def _stream_from_invoke(self, call: Attempt) -> AsyncIterator[Event]:
        result = await self.invoke(call)
        for message in result.messages:
            yield Event("message", message=message)

    async def cancel(self, call: Attempt, upstream: Mapping[str, str]) -> None:  # noqa: B027 - optional hook
        """Cancel the upstream run named by ``upstream`` (the ids the adapter read from its
        framework: a LangGraph run, an A2A task) the framework's own way.

        Called in the background through :meth:`cancel_abandoned` when a stream is
        abandoned before its end (a cancelled run, a caller gone, a passed deadline).
        The default does nothing: for a plain HTTP or gRPC agent, closing the stream
        (which the abandonment already did) is the cancel.
        """

    def cancel_abandoned(self, call: Attempt, upstream: Mapping[str, str]) -> None:
        """Run :meth:`cancel` without holding up the caller (whose task is being cancelled,
        or whose deadline is spent); best effort, bounded by ``CANCEL_TIMEOUT``."""

        async def cancel() -> None:
            try:
                async with asyncio.timeout(CANCEL_TIMEOUT):
                    await self.cancel(call, upstream)
            except Exception as exc:
                log.warning("could not cancel %s upstream at %s: %s", dict(upstream), self.spec.name, exc)

        task = asyncio.get_running_loop().create_task(cancel())
        self._cancellations.add(task)
        task.add_done_callback(self._cancellations.discard)

    async def aclose(self) -> None:
        """Release what the adapter holds (channels, background tasks); subclasses call super()."""
        if self._cancellations:
            await asyncio.wait(set(self._cancellations), timeout=CANCEL_TIMEOUT)
