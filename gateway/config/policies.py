"""Named resilience policies: timeouts, retries, circuit breakers, bulkheads, fallbacks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.config.base import Duration, Name, Strict


class TimeoutSpec(Strict):
    """Envoy's per_try_timeout and route timeout; Dapr's timeouts."""

    # Each attempt; for streams, the wait for the first event.
    per_try: Duration | None = None
    # The whole call, retries and backoff included (tightens the caller's deadline, never loosens it).
    overall: Duration | None = None


class Backoff(Strict):
    """Exponential backoff with full jitter: sleep uniform(0, min(max, base * multiplier**retry))."""

    # The first retry's delay ceiling.
    base: Duration = 0.1
    # No delay is longer than this.
    max: Duration = 5.0
    # Each retry multiplies the ceiling by this.
    multiplier: float = Field(default=2.0, ge=1.0)


class RetryBudget(Strict):
    """Retries may add at most ``ratio`` of the calls seen in ``window`` (plus a floor),
    so retries cannot multiply an outage (Envoy retry budgets, Linkerd)."""

    # The share of calls that may be retries.
    ratio: float = Field(default=0.2, gt=0, le=1)
    # Retries always allowed per second, however few calls there are.
    min_retries_per_second: float = Field(default=3.0, ge=0)
    # The time over which calls and retries are counted.
    window: Duration = 10.0


# What a retry may act on: "transient" (the adapters' classification) or status codes.
RetryCondition = Literal[
    "transient",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "UNKNOWN",
    "INTERNAL",
    "ABORTED",
    "FAILED_PRECONDITION",
]


def _transient() -> list[RetryCondition]:
    return ["transient"]


class RetrySpec(Strict):
    # Attempts in all, the first included.
    max_attempts: int = Field(default=3, ge=1, le=20)
    # The wait between attempts.
    backoff: Backoff = Field(default_factory=Backoff)
    # What may be retried: `transient` (the adapters' classification) and/or codes.
    retry_on: list[RetryCondition] = Field(default_factory=_transient)
    # Codes never retried even when retry_on would (e.g. DEADLINE_EXCEEDED for slow, costly agents).
    never_on: list[RetryCondition] = Field(default_factory=list)
    # Wait what an upstream's Retry-After asks (up to max_retry_after) instead of the backoff.
    honor_retry_after: bool = True
    # A Retry-After longer than this is not waited for: the call fails (or falls back) instead.
    max_retry_after: Duration = 30.0
    # The cap on retries across calls (null: none).
    budget: RetryBudget | None = Field(default_factory=RetryBudget)


class CircuitBreakerSpec(Strict):
    """pybreaker per upstream: opens on consecutive failures or on a failure rate."""

    # Open after this many failures in a row.
    consecutive_failures: int = Field(default=5, ge=1)
    # Open when at least this share of the calls in ``window`` failed (and there were minimum_calls).
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    # failure_rate is judged only over at least this many calls.
    minimum_calls: int = Field(default=20, ge=1)
    # The time over which failure_rate is measured.
    window: Duration = 30.0
    # How long the breaker stays open before half-open trial calls.
    reset_timeout: Duration = 30.0
    # Half-open: this many trial calls at once.
    half_open_probes: int = Field(default=1, ge=1)
    # Half-open: this many successful trial calls close the breaker.
    success_threshold: int = Field(default=1, ge=1)
    # redis: the state lives in Redis, so every gateway sharing it trips together.
    storage: Literal["memory", "redis"] = "memory"
    # storage: redis: the server holding the shared state.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # storage: redis: the key prefix, so deployments sharing a server stay apart.
    namespace: str = "agent-gateway"


class ConcurrencySpec(Strict):
    """A bulkhead: at most ``max_in_flight`` calls, ``max_queue`` more waiting up to ``queue_timeout``."""

    # Calls running at once.
    max_in_flight: int = Field(ge=1)
    # Calls waiting for a slot; more are refused at once (503).
    max_queue: int = Field(default=0, ge=0)
    # How long a call waits for a slot before it is refused (503).
    queue_timeout: Duration = 1.0


class StaticResponse(Strict):
    # The answer's text.
    text: str | None = None
    # The answer's structured data part (any JSON).
    data: Any = None

    @model_validator(mode="after")
    def _something(self) -> StaticResponse:
        if self.text is None and self.data is None:
            raise ValueError("a static response needs 'text' or 'data'")
        return self


class FallbackTarget(Strict):
    # An agent, route or workflow to call instead (or use `static`).
    agent: Name | None = None
    # A fixed answer (or use `agent`).
    static: StaticResponse | None = None

    @model_validator(mode="after")
    def _one(self) -> FallbackTarget:
        if (self.agent is None) == (self.static is None):
            raise ValueError("a fallback target needs exactly one of 'agent' or 'static'")
        return self


# Which failures lead to the fallbacks: anything transient (retries exhausted, breaker open,
# bulkhead full, timeouts) by default; "any" adds permanent upstream failures too.
FallbackCondition = Literal["transient", "any"]


class FallbackSpec(Strict):
    # Tried in order until one answers.
    targets: list[FallbackTarget] = Field(min_length=1)
    # ("when", not "on": YAML reads a bare `on` key as the boolean true.)
    when: FallbackCondition = "transient"


class PolicySpec(Strict):
    """A named bundle of resilience policies, applied to agents and routes by name.

    The chain always runs in one order: fallback > timeout.overall > retry >
    concurrency > circuit_breaker > timeout.per_try > the upstream call.
    """

    # Per-attempt and overall time budgets.
    timeout: TimeoutSpec | None = None
    # Retries of failed attempts.
    retry: RetrySpec | None = None
    # Fail fast while the upstream keeps failing.
    circuit_breaker: CircuitBreakerSpec | None = None
    # A bulkhead: calls at once and waiting.
    concurrency: ConcurrencySpec | None = None
    # Answers from elsewhere when the chain fails.
    fallback: FallbackSpec | None = None
