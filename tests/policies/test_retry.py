"""The retry policy on its own: backoff bounds, Retry-After, budget, idempotency, streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.config.schema import RetrySpec
from gateway.model import (
    CircuitOpen,
    Event,
    Invocation,
    Message,
    Role,
    TextPart,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.policies.retry import RetryPolicy
from tests.helpers.policies import Flaky, invocation, stream_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, uniform: float = 1.0, **spec: object) -> RetryPolicy:
    return RetryPolicy(RetrySpec.model_validate(spec), sleep=clock.sleep, uniform=lambda: uniform, clock=clock)


def unavailable(**kwargs: object) -> UpstreamUnavailable:
    return UpstreamUnavailable("down", agent="agent", **kwargs)  # type: ignore[arg-type]


async def test_exponential_backoff_with_full_jitter_bounds() -> None:
    clock = FakeClock()
    retry = policy(clock, max_attempts=5, backoff={"base": "100ms", "max": "500ms"}, budget=None)
    upstream = Flaky(*(unavailable() for _ in range(4)))
    result = await retry.invoke(invocation(), upstream)
    assert result.text == "ok"
    assert upstream.attempts == [1, 2, 3, 4, 5]
    # uniform() == 1.0 gives the ceiling: base * 2**(n-1), capped at max.
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5])
    half = policy(FakeClock(), uniform=0.5, backoff={"base": "100ms", "max": "500ms"})
    assert [half.backoff(n) for n in (1, 2, 3, 4)] == pytest.approx([0.05, 0.1, 0.2, 0.25])


async def test_gives_up_after_max_attempts_with_history() -> None:
    clock = FakeClock()
    retry = policy(clock, max_attempts=3)
    upstream = Flaky(*(unavailable() for _ in range(5)))
    call = invocation()
    with pytest.raises(UpstreamUnavailable):
        await retry.invoke(call, upstream)
    assert upstream.attempts == [1, 2, 3]
    assert [r["attempt"] for r in call.record.retries] == [1, 2, 3]
    assert call.record.retries[-1]["stopped"] == "gave up after 3 attempts"
    assert all("backoff_ms" in r for r in call.record.retries[:2])


async def test_permanent_failures_are_not_retried() -> None:
    for error in (UpstreamRejected("bad input", agent="agent"), UpstreamError("HTTP 500", agent="agent")):
        upstream = Flaky(error)
        with pytest.raises(type(error)):
            await policy(FakeClock()).invoke(invocation(), upstream)
        assert upstream.attempts == [1]


async def test_retry_on_and_never_on_change_the_classification() -> None:
    internal = UpstreamError("boom", agent="agent", details={"upstream_status": "INTERNAL"})
    upstream = Flaky(internal)
    await policy(FakeClock(), retry_on=["transient", "INTERNAL"]).invoke(invocation(), upstream)
    assert upstream.attempts == [1, 2]
    upstream = Flaky(UpstreamTimeout("slow", agent="agent"))
    with pytest.raises(UpstreamTimeout):
        await policy(FakeClock(), never_on=["DEADLINE_EXCEEDED"]).invoke(invocation(), upstream)
    assert upstream.attempts == [1]


async def test_retry_after_is_honoured_and_capped() -> None:
    clock = FakeClock()
    await policy(clock, uniform=0.0).invoke(invocation(), Flaky(unavailable(retry_after=2.0)))
    assert clock.sleeps == [2.0]
    upstream = Flaky(unavailable(retry_after=120.0))
    with pytest.raises(UpstreamUnavailable):
        await policy(FakeClock(), max_retry_after="30s").invoke(invocation(), upstream)
    assert upstream.attempts == [1]


async def test_non_idempotent_calls_retry_only_when_they_never_reached_the_agent() -> None:
    reached = Flaky(unavailable())
    with pytest.raises(UpstreamUnavailable):
        await policy(FakeClock()).invoke(invocation(idempotent=False), reached)
    assert reached.attempts == [1]
    refused = Flaky(unavailable(reached=False))
    await policy(FakeClock()).invoke(invocation(idempotent=False), refused)
    assert refused.attempts == [1, 2]


async def test_open_breaker_is_not_retried() -> None:
    upstream = Flaky(CircuitOpen("open", agent="agent"))
    with pytest.raises(CircuitOpen):
        await policy(FakeClock()).invoke(invocation(), upstream)
    assert upstream.attempts == [1]


async def test_retry_budget_caps_retries_during_an_outage() -> None:
    clock = FakeClock()
    retry = policy(clock, max_attempts=3, budget={"ratio": 0.1, "min_retries_per_second": 0, "window": "10s"})
    attempts = 0
    for _ in range(50):  # an outage: every call fails
        upstream = Flaky(*(unavailable() for _ in range(3)))
        with pytest.raises(UpstreamUnavailable):
            await retry.invoke(invocation(), upstream)
        attempts += len(upstream.attempts)
        clock.now += 0.01
    retries = attempts - 50
    assert 0 < retries <= 5  # 10% of 50 calls, not 100 (2 retries x 50)


async def test_no_time_left_means_no_retry() -> None:
    call = invocation()
    call = Invocation(call.agent, call.messages, call.context.with_timeout(0.01))
    upstream = Flaky(unavailable())
    with pytest.raises(UpstreamUnavailable):
        await policy(FakeClock(), backoff={"base": "1s", "max": "1s"}).invoke(call, upstream)
    assert call.record.retries[0]["stopped"] == "no time left before the deadline"


async def test_streams_retry_before_the_first_event_only() -> None:
    delta = Event("delta", message=Message(Role.AGENT, (TextPart("partial"),)))
    opened: list[int] = []

    def fails_before_first(invocation: Invocation) -> AsyncIterator[Event]:
        opened.append(invocation.attempt)
        return stream_of(unavailable()) if len(opened) == 1 else stream_of(delta)

    got = [e async for e in policy(FakeClock()).stream(invocation(), fails_before_first)]
    assert opened == [1, 2] and got == [delta]

    opened.clear()

    def fails_midway(invocation: Invocation) -> AsyncIterator[Event]:
        opened.append(invocation.attempt)
        return stream_of(delta, unavailable())

    received: list[Event] = []
    call = invocation()
    with pytest.raises(UpstreamUnavailable):
        async for event in policy(FakeClock()).stream(call, fails_midway):
            received.append(event)
    assert opened == [1]  # never repeated: the caller already has part of the answer
    assert received == [delta]
    assert call.record.retries[0]["stopped"] == "events already reached the caller"
