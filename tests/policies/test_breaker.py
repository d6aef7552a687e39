"""The circuit breaker: consecutive and rate-based tripping, fail-fast, half-open probes, Redis sharing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pybreaker
import pytest

from gateway.config.schema import CircuitBreakerSpec
from gateway.model import CircuitOpen, Invocation, Result, UpstreamRejected, UpstreamUnavailable
from gateway.policies.breaker import CircuitBreakerPolicy
from tests.helpers.policies import Flaky, invocation, redis_url


def breaker(**spec: object) -> CircuitBreakerPolicy:
    return CircuitBreakerPolicy(CircuitBreakerSpec.model_validate(spec), "agent/test")


async def fail(policy: CircuitBreakerPolicy, times: int, error: Exception | None = None) -> None:
    for _ in range(times):
        with pytest.raises((UpstreamUnavailable, UpstreamRejected)):
            await policy.invoke(invocation(), Flaky(error or UpstreamUnavailable("down", agent="a")))


async def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    policy = breaker(consecutive_failures=3, reset_timeout="30s")
    await fail(policy, 2)
    assert policy.state == "closed"
    await fail(policy, 1)
    assert policy.state == "open"
    upstream = Flaky()
    with pytest.raises(CircuitOpen) as caught:
        await policy.invoke(invocation(), upstream)
    assert upstream.attempts == []  # the agent was not called
    assert caught.value.reached is False
    assert 29 < (caught.value.retry_after or 0) <= 30
    policy.reset()
    assert (await policy.invoke(invocation(), upstream)).text == "ok"


async def test_refusals_do_not_count_and_a_success_resets_the_count() -> None:
    policy = breaker(consecutive_failures=2)
    await fail(policy, 5, UpstreamRejected("bad input", agent="a"))
    assert policy.state == "closed"
    await fail(policy, 1)
    await policy.invoke(invocation(), Flaky())
    await fail(policy, 1)
    assert policy.state == "closed"


async def test_half_open_lets_limited_probes_through_then_closes() -> None:
    policy = breaker(consecutive_failures=1, reset_timeout="200ms", half_open_probes=1)
    await fail(policy, 1)
    assert policy.state == "open"
    await asyncio.sleep(0.25)
    release = asyncio.Event()

    async def slow(invocation: Invocation) -> Result:
        await release.wait()
        return await Flaky()(invocation)

    probe = asyncio.create_task(policy.invoke(invocation(), slow))
    await asyncio.sleep(0.01)
    assert policy.state == "half-open"
    with pytest.raises(CircuitOpen):  # a second call while the probe runs
        await policy.invoke(invocation(), Flaky())
    release.set()
    assert (await probe).text == "ok"
    assert policy.state == "closed"


async def test_failed_probe_reopens() -> None:
    policy = breaker(consecutive_failures=1, reset_timeout="100ms")
    await fail(policy, 1)
    await asyncio.sleep(0.15)
    await fail(policy, 1)
    assert policy.state == "open"


async def test_failure_rate_trips_without_consecutive_failures() -> None:
    now = [0.0]
    policy = CircuitBreakerPolicy(
        CircuitBreakerSpec(consecutive_failures=100, failure_rate=0.5, minimum_calls=10, window=10.0),
        "agent/rate",
        clock=lambda: now[0],
    )
    for i in range(9):  # alternate: never two failures in a row, 5 of 9 failed
        if i % 2 == 0:
            await fail(policy, 1)
        else:
            await policy.invoke(invocation(), Flaky())
        now[0] += 0.1
    assert policy.state == "closed"  # below minimum_calls
    await policy.invoke(invocation(), Flaky())  # 10 calls, 5 failures: 50%
    assert policy.state == "open"


async def test_old_outcomes_leave_the_window() -> None:
    now = [0.0]
    policy = CircuitBreakerPolicy(
        CircuitBreakerSpec(consecutive_failures=100, failure_rate=0.5, minimum_calls=4, window=1.0),
        "agent/window",
        clock=lambda: now[0],
    )
    await fail(policy, 1)
    await policy.invoke(invocation(), Flaky())
    await fail(policy, 1)
    now[0] = 5.0  # the failures are old now
    for _ in range(3):
        await policy.invoke(invocation(), Flaky())
    assert policy.state == "closed"


async def test_two_gateways_share_a_breaker_through_redis() -> None:
    url = redis_url()
    namespace = f"agw-test-{uuid.uuid4().hex}"
    spec = CircuitBreakerSpec(consecutive_failures=2, reset_timeout=30.0, storage="redis", redis_url=url,
                              namespace=namespace)
    first = CircuitBreakerPolicy(spec, "agent/shared")
    second = CircuitBreakerPolicy(spec, "agent/shared")
    try:
        await fail(first, 2)
        assert first.state == "open"
        assert second.state == "open"  # the other gateway never saw a failure itself
        upstream = Flaky()
        with pytest.raises(CircuitOpen):
            await second.invoke(invocation(), upstream)
        assert upstream.attempts == []
        second.reset()
        assert first.state == "closed"
    finally:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)


def test_memory_storage_is_the_default() -> None:
    assert isinstance(breaker().storage, pybreaker.CircuitMemoryStorage)


def test_redis_storage_works_after_pybreaker_was_imported_without_redis() -> None:
    """pybreaker is imported with redis masked (it would load the client for every gateway);
    a `storage: redis` breaker still trips, and shares its state, in a fresh interpreter."""
    url = redis_url()
    namespace = f"agw-test-{uuid.uuid4().hex}"
    script = f"""
import asyncio, sys
from gateway.config.schema import CircuitBreakerSpec
from gateway.model import UpstreamUnavailable
from gateway.policies.breaker import CircuitBreakerPolicy
from tests.helpers.policies import Flaky, invocation
assert "redis" not in sys.modules, "pybreaker loaded redis"
spec = CircuitBreakerSpec(consecutive_failures=1, reset_timeout=30.0, storage="redis",
                          redis_url={url!r}, namespace={namespace!r})
policy = CircuitBreakerPolicy(spec, "agent/fresh")
async def fail() -> None:
    try:
        await policy.invoke(invocation(), Flaky(UpstreamUnavailable("down", agent="a")))
    except UpstreamUnavailable:
        pass
asyncio.run(fail())
print(CircuitBreakerPolicy(spec, "agent/fresh").state)
"""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["open"]
    finally:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
