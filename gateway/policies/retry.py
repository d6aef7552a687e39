"""Retries: exponential backoff with full jitter, Retry-After, a retry budget,
and the two rules that make retrying safe: never after stream bytes reached the
caller, never a non-idempotent call that may have reached the agent."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from opentelemetry import trace

from gateway.config.schema import RetryBudget, RetrySpec
from gateway.model import CircuitOpen, Event, GatewayError, Invocation, Result, evolve
from gateway.policies.base import Handler, Policy, StreamHandler

log = logging.getLogger("agent_gateway.retry")


def retryable(error: GatewayError, spec: RetrySpec) -> bool:
    """Whether ``spec`` retries this failure (by class or by status code)."""
    if isinstance(error, CircuitOpen):
        return False  # failing fast is the point; the fallback decides what happens next
    codes = {error.code.value, str(error.details.get("upstream_status", ""))}
    if codes & set(spec.never_on):
        return False
    return any((condition == "transient" and error.transient) or condition in codes for condition in spec.retry_on)


class RetryBudgetWindow:
    """Counts calls and retries per second over a sliding window: a retry is allowed
    while retries stay under ``ratio`` of the calls (or the per-second floor)."""

    def __init__(self, budget: RetryBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.seconds: collections.deque[list[int]] = collections.deque()  # [second, calls, retries]

    def _current(self) -> list[int]:
        now = int(self.clock())
        while self.seconds and self.seconds[0][0] <= now - self.budget.window:
            self.seconds.popleft()
        if not self.seconds or self.seconds[-1][0] != now:
            self.seconds.append([now, 0, 0])
        return self.seconds[-1]

    def record_call(self) -> None:
        self._current()[1] += 1

    def try_spend(self) -> bool:
        current = self._current()
        calls = sum(s[1] for s in self.seconds)
        retries = sum(s[2] for s in self.seconds)
        allowed = max(self.budget.ratio * calls, self.budget.min_retries_per_second * self.budget.window)
        if retries + 1 > allowed:
            return False
        current[2] += 1
        return True


class RetryPolicy(Policy):
    def __init__(
        self,
        spec: RetrySpec,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        uniform: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.sleep = sleep
        self.uniform = uniform
        self.clock = clock
        self.budget = RetryBudgetWindow(spec.budget, clock) if spec.budget is not None else None

    def backoff(self, retry: int) -> float:
        """Full jitter (AWS architecture blog): uniform over [0, min(max, base * multiplier**(retry-1))]."""
        backoff = self.spec.backoff
        ceiling = min(backoff.max, backoff.base * math.pow(backoff.multiplier, retry - 1))
        return self.uniform() * ceiling

    def _wait_before_retry(self, invocation: Invocation, error: GatewayError, attempt: int) -> float | str:
        """Seconds to wait before the next attempt, or why there is none."""
        if attempt >= self.spec.max_attempts:
            return f"gave up after {attempt} attempts"
        if not retryable(error, self.spec):
            return f"{error.code.value} is not retried"
        if not invocation.options.idempotent and error.reached:
            return "not idempotent and the agent may have received it"
        delay = self.backoff(attempt)
        if self.spec.honor_retry_after and error.retry_after is not None:
            if error.retry_after > self.spec.max_retry_after:
                return f"the agent asked to wait {error.retry_after:g}s (more than max_retry_after)"
            delay = max(delay, error.retry_after)
        remaining = invocation.context.remaining()
        if remaining is not None and delay >= remaining:
            return "no time left before the deadline"
        if self.budget is not None and not self.budget.try_spend():
            return "retry budget exhausted"
        return delay

    def _note(
        self, invocation: Invocation, error: GatewayError, attempt: int, started: float, wait: float | str
    ) -> None:
        entry = {
            "attempt": attempt,
            "code": error.code.value,
            "error": error.message,
            "duration_ms": round((self.clock() - started) * 1000, 1),
        }
        if isinstance(wait, float):
            entry["backoff_ms"] = round(wait * 1000, 1)
            trace.get_current_span().add_event(
                "retry", {"agw.attempt": attempt, "agw.backoff_ms": entry["backoff_ms"], "error.type": error.code.value}
            )
        else:
            entry["stopped"] = wait
        invocation.record.retries.append(entry)

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        if self.budget is not None:
            self.budget.record_call()
        attempt = invocation.attempt
        while True:
            started = self.clock()
            try:
                return await call_next(
                    invocation if attempt == invocation.attempt else evolve(invocation, attempt=attempt)
                )
            except GatewayError as error:
                wait = self._wait_before_retry(invocation, error, attempt)
                self._note(invocation, error, attempt, started, wait)
                if not isinstance(wait, float):
                    raise
            await self.sleep(wait)
            attempt += 1

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        if self.budget is not None:
            self.budget.record_call()
        attempt = invocation.attempt
        while True:
            started = self.clock()
            delivered = False
            try:
                async for event in call_next(
                    invocation if attempt == invocation.attempt else evolve(invocation, attempt=attempt)
                ):
                    delivered = True
                    yield event
                return
            except GatewayError as error:
                if delivered:  # the caller already has part of this answer: a retry would repeat it
                    self._note(invocation, error, attempt, started, "events already reached the caller")
                    raise
                wait = self._wait_before_retry(invocation, error, attempt)
                self._note(invocation, error, attempt, started, wait)
                if not isinstance(wait, float):
                    raise
            await self.sleep(wait)
            attempt += 1
