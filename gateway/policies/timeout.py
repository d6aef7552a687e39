"""Timeouts: the caller's deadline, per attempt (Envoy's per_try_timeout) and for the whole call, retries included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.model import Event, Invocation, Result, UpstreamTimeout, evolve
from gateway.policies.base import Handler, Policy, StreamHandler, aclose
from gateway.stream_limits import bounded


class PerTryTimeoutPolicy(Policy):
    """Bounds each attempt; for a stream, the wait for its first event (later events
    belong to the overall and idle limits, since long streams are legitimate)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        # The tighter deadline travels upstream too (x-timeout-ms, the gRPC deadline).
        context = invocation.context.with_timeout(self.seconds)
        try:
            async with asyncio.timeout(self.seconds):
                return await call_next(evolve(invocation, context=context))
        except TimeoutError:
            raise UpstreamTimeout(
                f"attempt {invocation.attempt} took longer than its per-try timeout of {self.seconds:g}s",
                agent=invocation.agent,
            ) from None

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        iterator = aiter(call_next(invocation))
        try:
            try:
                async with asyncio.timeout(self.seconds):
                    first = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout(
                    f"no first event within the per-try timeout of {self.seconds:g}s", agent=invocation.agent
                ) from None
            yield first
            async for event in iterator:
                yield event
        finally:
            await aclose(iterator)


class OverallTimeoutPolicy(Policy):
    """Bounds the whole call, backoff and retries included; tightens (never loosens) the caller's deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        context = invocation.context.with_timeout(self.seconds)
        budget = context.remaining()
        try:
            async with asyncio.timeout(budget):
                return await call_next(evolve(invocation, context=context))
        except TimeoutError:
            raise UpstreamTimeout(
                f"the call took longer than its overall timeout of {budget or 0:.3g}s "
                f"({invocation.record.attempts} attempt(s))",
                agent=invocation.agent,
            ) from None

    def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        context = invocation.context.with_timeout(self.seconds)
        events = call_next(evolve(invocation, context=context))
        return bounded(events, invocation.agent, None, context.remaining())


class DeadlinePolicy(Policy):
    """The caller's deadline (its own, or the route's or agent's default), outermost on every
    call to an agent: the route's and the agent's policies run inside it, invoke and stream alike."""

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        remaining = invocation.context.remaining()
        if remaining is None:
            return await call_next(invocation)
        try:
            async with asyncio.timeout(remaining):
                return await call_next(invocation)
        except TimeoutError:
            raise UpstreamTimeout(
                f"the call's deadline passed after {remaining:.3f}s", agent=invocation.agent
            ) from None

    def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        remaining = invocation.context.remaining()
        events = call_next(invocation)
        if remaining is None:
            return events
        return bounded(events, invocation.agent, None, remaining, f"the call's deadline passed after {remaining:.3f}s")
