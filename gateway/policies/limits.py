"""Concurrency limits (bulkheads): a slow agent holds its own slots, not everyone's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.config.schema import ConcurrencySpec
from gateway.model import Event, Invocation, ResourceExhausted, Result
from gateway.policies.base import Handler, Policy, StreamHandler


class ConcurrencyLimitPolicy(Policy):
    def __init__(self, spec: ConcurrencySpec, name: str) -> None:
        self.spec = spec
        self.name = name
        self.slots = asyncio.Semaphore(spec.max_in_flight)
        self.queued = 0

    @property
    def in_flight(self) -> int:
        return self.spec.max_in_flight - self.slots._value

    def _full(self, agent: str, why: str) -> ResourceExhausted:
        return ResourceExhausted(
            f"{self.name} is at its concurrency limit ({self.spec.max_in_flight} in flight, "
            f"{self.spec.max_queue} queued): {why}",
            agent=agent,
            http_status=503,
            retry_after=self.spec.queue_timeout,
            reached=False,
            details={"limit": self.name},
        )

    async def _acquire(self, agent: str) -> None:
        if self.slots.locked():
            if self.queued >= self.spec.max_queue:
                raise self._full(agent, "the queue is full")
            self.queued += 1
            try:
                async with asyncio.timeout(self.spec.queue_timeout):
                    await self.slots.acquire()
            except TimeoutError:
                raise self._full(agent, f"waited {self.spec.queue_timeout:g}s for a slot") from None
            finally:
                self.queued -= 1
        else:
            await self.slots.acquire()

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        await self._acquire(invocation.agent)
        try:
            return await call_next(invocation)
        finally:
            self.slots.release()

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        await self._acquire(invocation.agent)
        try:
            async for event in call_next(invocation):
                yield event
        finally:
            self.slots.release()
