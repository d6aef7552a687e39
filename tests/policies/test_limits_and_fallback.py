"""Bulkheads and fallbacks on their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.config.schema import ConcurrencySpec, FallbackSpec
from gateway.model import (
    Event,
    InvalidRequest,
    Invocation,
    Message,
    ResourceExhausted,
    Result,
    Role,
    TextPart,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.policies.fallback import FallbackPolicy
from gateway.policies.limits import ConcurrencyLimitPolicy
from tests.helpers.policies import Flaky, invocation, stream_of


async def test_bulkhead_queues_then_rejects_fast() -> None:
    limit = ConcurrencyLimitPolicy(ConcurrencySpec(max_in_flight=1, max_queue=1, queue_timeout=5.0), "agent/slow")
    release = asyncio.Event()

    async def slow(invocation: Invocation) -> Result:
        await release.wait()
        return await Flaky()(invocation)

    running = asyncio.create_task(limit.invoke(invocation(), slow))
    queued = asyncio.create_task(limit.invoke(invocation(), slow))
    await asyncio.sleep(0.01)
    assert limit.in_flight == 1 and limit.queued == 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ResourceExhausted) as caught:
        await limit.invoke(invocation(), slow)
    assert loop.time() - started < 0.1  # rejected at once, not after queue_timeout
    assert caught.value.status == 503 and caught.value.reached is False
    assert "the queue is full" in caught.value.message
    release.set()
    assert (await running).text == "ok" and (await queued).text == "ok"
    assert limit.in_flight == 0


async def test_bulkhead_queue_timeout() -> None:
    limit = ConcurrencyLimitPolicy(ConcurrencySpec(max_in_flight=1, max_queue=5, queue_timeout=0.05), "agent/slow")
    never = asyncio.Event()

    async def hang(invocation: Invocation) -> Result:
        await never.wait()
        raise AssertionError

    blocker = asyncio.create_task(limit.invoke(invocation(), hang))
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted, match=r"waited 0\.05s for a slot"):
        await limit.invoke(invocation(), hang)
    blocker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocker
    assert limit.in_flight == 0 and limit.queued == 0


def fallback(targets: list[dict[str, object]], on: str = "transient") -> tuple[FallbackPolicy, list[str]]:
    called: list[str] = []

    async def dispatch(invocation: Invocation) -> Result:
        called.append(invocation.agent)
        if invocation.agent == "broken":
            raise UpstreamUnavailable("also down", agent="broken")
        return Result(invocation.agent, (Message(Role.AGENT, (TextPart(f"from {invocation.agent}"),)),))

    def open_stream(invocation: Invocation) -> AsyncIterator[Event]:
        called.append(invocation.agent)
        return stream_of(Event("delta", message=Message(Role.AGENT, (TextPart("backup"),))))

    spec = FallbackSpec.model_validate({"targets": targets, "when": on})
    return FallbackPolicy(spec, dispatch, open_stream), called


async def test_fallback_tries_targets_in_order_and_records_why(caplog: pytest.LogCaptureFixture) -> None:
    policy, called = fallback([{"agent": "broken"}, {"agent": "backup"}, {"static": {"text": "sorry"}}])
    call = invocation()
    result = await policy.invoke(call, Flaky(UpstreamUnavailable("down", agent="agent")))
    assert called == ["broken", "backup"]
    assert result.text == "from backup"
    assert result.metadata["fallback"] == "backup"
    assert call.record.fallback == "backup"
    # Why: the original failure, in the log (and on the span) of each target tried.
    assert [r.getMessage() for r in caplog.records if r.name == "agent_gateway.fallback"][-1].endswith(
        "to backup: UNAVAILABLE: down"
    )


async def test_static_fallback_and_when_fallbacks_do_not_apply() -> None:
    policy, _ = fallback([{"static": {"text": "try later", "data": {"degraded": True}}}])
    result = await policy.invoke(invocation(), Flaky(UpstreamUnavailable("down", agent="agent")))
    assert result.text == "try later"
    with pytest.raises(InvalidRequest):  # the caller's mistake: no fallback hides it
        await policy.invoke(invocation(), Flaky(InvalidRequest("bad")))
    with pytest.raises(UpstreamError):  # permanent upstream failure: only with when: any
        await policy.invoke(invocation(), Flaky(UpstreamError("500", agent="agent")))
    any_policy, _ = fallback([{"static": {"text": "degraded"}}], on="any")
    assert (await any_policy.invoke(invocation(), Flaky(UpstreamError("500", agent="agent")))).text == "degraded"


async def test_stream_fallback_only_before_the_first_event() -> None:
    policy, called = fallback([{"agent": "backup"}])

    def failing(invocation: Invocation) -> AsyncIterator[Event]:
        return stream_of(UpstreamUnavailable("down", agent="agent"))

    events = [e async for e in policy.stream(invocation(), failing)]
    assert called == ["backup"] and events[0].message is not None and events[0].message.text == "backup"

    def cut(invocation: Invocation) -> AsyncIterator[Event]:
        return stream_of(Event("delta", message=Message(Role.AGENT, (TextPart("half"),))), UpstreamUnavailable("x"))

    called.clear()
    with pytest.raises(UpstreamUnavailable):
        async for _ in policy.stream(invocation(), cut):
            pass
    assert called == []
