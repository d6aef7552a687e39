"""The caller's deadline is the outermost policy of every agent call, invoke and stream alike,
and a fallback goes straight to its target's chain (it is not a second call of the gateway)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post, seen_headers
from tests.helpers.runs import SlowAgent, slow_agent_app


@pytest.fixture
async def slow_agent(serve_app: Starter) -> SlowAgent:
    agent = SlowAgent()
    agent.url = await serve_app(slow_agent_app(agent))
    return agent


async def test_a_stream_ends_when_the_callers_deadline_passes(gateway_factory: GatewayFactory,
                                                               slow_agent: SlowAgent) -> None:
    # 40 deltas 50 ms apart (2 s) against a 400 ms deadline: the stream must stop at the deadline,
    # end with the deadline's error frame, and the upstream must see its caller go.
    config = f"agents:\n  slow: {{kind: http, endpoint: '{slow_agent.url}'}}\n"
    payload = body(options={"params": {"count": 40, "interval": 0.05}})
    async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.post(f"http://{gw.addresses.http}/v1/agents/slow/stream", json=payload,
                                headers={"x-timeout-ms": "400"}) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
        elapsed = time.monotonic() - started
        await asyncio.wait_for(slow_agent.disconnected.wait(), 5)
    frames = [f for f in raw.split("\n\n") if f.strip()]
    deltas = [f for f in frames if f.startswith("event: event")]
    assert 1 <= len(deltas) < 40, frames
    assert frames[-1].startswith("event: error"), frames[-1]
    error = json.loads(frames[-1].split("data: ", 1)[1])["error"]
    assert error["code"] == "DEADLINE_EXCEEDED", error
    assert "deadline" in error["message"]
    assert 0.35 < elapsed < 1.5, elapsed
    assert slow_agent.completed == 0


async def test_a_stream_without_a_deadline_runs_to_its_end(gateway_factory: GatewayFactory,
                                                            slow_agent: SlowAgent) -> None:
    config = f"agents:\n  slow: {{kind: http, endpoint: '{slow_agent.url}'}}\n"
    payload = body(options={"params": {"count": 12, "interval": 0.05}})
    async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
        async with session.post(f"http://{gw.addresses.http}/v1/agents/slow/stream", json=payload) as response:
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    assert len([f for f in frames if f.startswith("event: event")]) == 12
    assert not any(f.startswith("event: error") for f in frames)
    assert slow_agent.completed == 1


async def test_the_deadline_wraps_the_routes_retries(gateway_factory: GatewayFactory, slow_agent: SlowAgent) -> None:
    # Each attempt takes 300 ms and fails its 100 ms per-try timeout; the route retries up to 20 times
    # with no backoff to speak of. The caller's 450 ms deadline, outermost, ends the whole call.
    config = (
        "policies:\n"
        "  stubborn: {retry: {max_attempts: 20, backoff: {base: 1ms, max: 1ms}}, timeout: {per_try: 100ms}}\n"
        f"agents:\n  slow: {{kind: http, endpoint: '{slow_agent.url}'}}\n"
        "routes:\n  - {name: patient, match: {agent: assistant}, target: slow, policies: [stubborn]}\n"
    )
    payload = body(options={"params": {"count": 15, "interval": 0.02}})
    async with gateway_factory(config) as gw:
        started = time.monotonic()
        status, headers, response = await post(f"http://{gw.addresses.http}/v1/agents/assistant/invoke", payload,
                                               {"x-timeout-ms": "450"})
        elapsed = time.monotonic() - started
    assert status == 504, response
    assert response["error"]["code"] == "DEADLINE_EXCEEDED"
    assert 0.4 < elapsed < 1.5, elapsed
    # About four 100 ms attempts fit in 450 ms; far fewer than the 20 the retry policy allows.
    assert 2 <= int(headers["x-agw-attempts"]) <= 6, headers["x-agw-attempts"]


async def test_a_fallback_is_not_a_second_hop(gateway_factory: GatewayFactory, slow_agent: SlowAgent,
                                              echo_url: str) -> None:
    # The fallback reaches `backup`'s own chain: no extra hop in the baggage the backup sees, and a
    # route that matches the name `backup` (for callers) does not take the fallback elsewhere.
    config = (
        "policies:\n"
        "  rescue: {fallback: {targets: [{agent: backup}]}}\n"
        "agents:\n"
        "  down: {kind: http, endpoint: 'http://127.0.0.1:9', policies: [rescue]}\n"
        f"  backup: {{kind: http, endpoint: '{echo_url}'}}\n"
        f"  elsewhere: {{kind: http, endpoint: '{slow_agent.url}'}}\n"
        "routes:\n  - {match: {agent: backup}, target: elsewhere}\n"
    )
    async with gateway_factory(config) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/down/invoke", body())
    assert status == 200, response
    assert response["metadata"]["fallback"] == "backup"
    assert not slow_agent.started.is_set()
    seen = seen_headers(response)
    assert "agw.hops=1" in seen["baggage"].replace(" ", ""), seen["baggage"]
