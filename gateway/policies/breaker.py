"""Circuit breaker: pybreaker's state machine per upstream (or route), opening on
consecutive failures or on a failure rate, with bounded half-open probes.

With ``storage: redis`` the breaker's state lives in Redis (pybreaker's
CircuitRedisStorage), so every gateway sharing it trips and recovers together.
"""

from __future__ import annotations

import collections
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.config.schema import CircuitBreakerSpec
from gateway.model import CircuitOpen, Event, Invocation, Result, UpstreamError, UpstreamRejected
from gateway.policies.base import Handler, Policy, StreamHandler
from gateway.policies.breaker_import import enable_redis_storage, pybreaker

log = logging.getLogger("agent_gateway.breaker")


def is_failure(error: BaseException) -> bool:
    """Failures of the agent count; its refusals (4xx) and our own rejections do not."""
    return isinstance(error, UpstreamError) and not isinstance(error, UpstreamRejected)


def _storage(spec: CircuitBreakerSpec, name: str) -> pybreaker.CircuitBreakerStorage:
    if spec.storage == "memory":
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    import redis  # only fleets that share breakers need it

    enable_redis_storage()
    client = redis.Redis.from_url(spec.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=f"{spec.namespace}:{name}")


class _StateLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        log.warning("circuit breaker %s: %s -> %s", cb.name, old, new_state.name)


class CircuitBreakerPolicy(Policy):
    def __init__(
        self,
        spec: CircuitBreakerSpec,
        name: str,
        storage: pybreaker.CircuitBreakerStorage | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.name = name
        self.clock = clock
        self.storage = storage or _storage(spec, name)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=spec.consecutive_failures,
            reset_timeout=spec.reset_timeout,
            success_threshold=spec.success_threshold,
            exclude=[lambda error: not is_failure(error)],
            listeners=[_StateLog()],
            state_storage=self.storage,
            name=name,
            throw_new_error_on_trip=False,  # the caller sees the agent's own error
        )
        self.outcomes: collections.deque[tuple[float, bool]] = collections.deque()
        self.probes = 0

    @property
    def state(self) -> str:
        """closed, open or half-open (as stored, so shared with other gateways under Redis)."""
        return str(self.breaker.current_state)

    def reset(self) -> None:
        """Close the breaker by hand (admin API)."""
        self.breaker.close()
        self.outcomes.clear()

    def _open_error(self, agent: str) -> CircuitOpen:
        opened_at = self.storage.opened_at
        wait = self.spec.reset_timeout
        if opened_at is not None:
            elapsed = (datetime.datetime.now(datetime.UTC) - opened_at).total_seconds()
            wait = max(0.0, self.spec.reset_timeout - elapsed)
        return CircuitOpen(
            f"the circuit breaker of {self.name} is open after repeated failures; failing fast",
            agent=agent,
            retry_after=wait,
            details={"breaker": self.name, "breaker_state": "open"},
        )

    def _record(self, failed: bool) -> None:
        """Failure-rate tripping (pybreaker itself counts consecutive failures)."""
        if self.spec.failure_rate is None:
            return
        now = self.clock()
        self.outcomes.append((now, failed))
        while self.outcomes and self.outcomes[0][0] < now - self.spec.window:
            self.outcomes.popleft()
        if len(self.outcomes) < self.spec.minimum_calls or self.state != pybreaker.STATE_CLOSED:
            return
        rate = sum(1 for _, f in self.outcomes if f) / len(self.outcomes)
        if rate >= self.spec.failure_rate:
            log.warning("circuit breaker %s: failure rate %.0f%% over %ss", self.name, rate * 100, self.spec.window)
            self.breaker.open()
            self.outcomes.clear()

    def _enter(self, agent: str) -> tuple[Any, bool]:
        if self.state == pybreaker.STATE_HALF_OPEN and self.probes >= self.spec.half_open_probes:
            raise self._open_error(agent)
        guard = self.breaker.calling()
        try:
            guard.__enter__()
        except pybreaker.CircuitBreakerError:
            raise self._open_error(agent) from None
        probe = self.state == pybreaker.STATE_HALF_OPEN
        if probe:
            self.probes += 1
        return guard, probe

    @staticmethod
    def _exit(guard: Any, error: BaseException | None) -> None:
        if error is None:
            guard.__exit__(None, None, None)
            return
        try:
            guard.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:  # pybreaker re-raises the error it was handed
            if raised is not error:
                raise

    def _record_closed(self, error: BaseException | None) -> None:
        """Bookkeeping for a call made while closed (pybreaker sees it only when it matters)."""
        failed = error is not None and is_failure(error)
        if failed or self.storage.counter:  # a failure to count, or a count to reset
            guard = self.breaker.calling()
            guard.__enter__()
            self._exit(guard, error if failed else None)
        self._record(failed)

    def _begin(self, agent: str) -> Callable[[BaseException | None], None]:
        """Admit one call (or raise CircuitOpen); returns what to call with its outcome."""
        if self.state == pybreaker.STATE_CLOSED:
            # The common case, kept cheap: no pybreaker machinery around a healthy call.
            return self._record_closed
        guard, probe = self._enter(agent)

        def done(error: BaseException | None) -> None:
            if probe:
                self.probes -= 1
            self._exit(guard, error)
            self._record(error is not None and is_failure(error))

        return done

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        done = self._begin(invocation.agent)
        try:
            result = await call_next(invocation)
        except BaseException as error:
            done(error)
            raise
        done(None)
        return result

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        done = self._begin(invocation.agent)
        try:
            async for event in call_next(invocation):
                yield event
        except BaseException as error:
            done(error)
            raise
        done(None)
