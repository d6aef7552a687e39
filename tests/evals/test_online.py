"""Online evaluation through a real gateway: sync checks fail calls, async ones are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.checks import CheckResult
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

CONFIG = """
workflows:
  pipeline:
    kind: sequential
    steps:
      - {name: shout, agent: upper}
      - {name: measure, agent: count, input: "{{ steps.shout.text }}"}
checks:
  shouty: {kind: regex, pattern: "^[A-Z :]+$"}
  has-x: {kind: contains, value: "X"}
  judged: {kind: judge, agent: judge, criteria: "must shout"}
  long: {kind: length, min: 2}
  counted: {kind: required_fields, fields: [length]}
evaluations:
  - {target: upper, checks: [shouty, judged], mode: sync}
  - {target: plain, checks: [has-x], mode: sync}
  - {target: count, checks: [judged], mode: async}
  - {target: pipeline, checks: [long], steps: {shout: [shouty], measure: [counted]}, mode: sync}
  - {target: slow1, checks: [long], mode: async, sample: 0.3}
"""


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, serve_app: Starter) -> AsyncIterator[tuple[GatewayServer, list[tuple[str, CheckResult]]]]:
    url = await serve_app(ScriptedAgents().app())
    async with gateway_factory(agents_yaml(url) + CONFIG) as gw:
        seen: list[tuple[str, CheckResult]] = []
        gw.gateway.evaluation_recorder.hooks.append(lambda target, result: seen.append((target, result)))
        yield gw, seen


async def call(gw: GatewayServer, agent: str, text: str = "hello", stream: bool = False) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        kind = "stream" if stream else "invoke"
        payload = {"messages": [{"parts": [{"text": text}]}]}
        async with session.post(f"http://{gw.addresses.http}/v1/agents/{agent}/{kind}", json=payload) as response:
            return response.status, (await response.read()).decode() if stream else await response.json()


async def wait_for(condition: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_sync_checks_pass_and_are_recorded(
    gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]], span_exporter: InMemorySpanExporter
) -> None:
    gw, seen = gateway
    status, _ = await call(gw, "upper", "quiet words")
    assert status == 200
    assert [(t, r.check, r.passed) for t, r in seen] == [("upper", "shouty", True), ("upper", "judged", True)]
    server = next(
        s for s in span_exporter.get_finished_spans() if (s.attributes or {}).get("url.path") == "/v1/agents/upper/invoke"
    )
    events = [e for e in server.events if e.name == "evaluation"]
    assert [e.attributes["agent_gateway.check"] for e in events if e.attributes] == ["shouty", "judged"]


async def test_sync_check_failure_fails_the_call(gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]]) -> None:
    gw, _ = gateway
    status, body = await call(gw, "plain", "no ex here")
    assert status == 502
    assert body["error"]["message"] == "the answer failed has-x: does not contain 'X'"
    assert body["error"]["details"]["checks"] == [
        {"check": "has-x", "passed": False, "score": 0, "reason": "does not contain 'X'"}
    ]


async def test_async_checks_never_fail_the_call(gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]],
                                                span_exporter: InMemorySpanExporter) -> None:
    gw, seen = gateway
    status, _ = await call(gw, "count", "abc")
    assert status == 200
    await wait_for(lambda: any(t == "count" for t, _ in seen))
    result = next(r for t, r in seen if t == "count")
    assert not result.passed  # "3 chars" is not upper case: recorded, but the caller got the answer
    await wait_for(lambda: any(s.name == "evaluate count" for s in span_exporter.get_finished_spans()))
    span = next(s for s in span_exporter.get_finished_spans() if s.name == "evaluate count")
    assert span.links  # linked to the call it evaluated
    judge_calls = [s for s in span_exporter.get_finished_spans() if s.name == "invoke_agent judge"]
    assert judge_calls and judge_calls[-1].parent is not None


async def test_session_level_checks_see_every_step(gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]]) -> None:
    gw, seen = gateway
    status, _ = await call(gw, "pipeline", "abc")
    assert status == 200
    workflow_results = {r.check: r.passed for t, r in seen if t == "pipeline"}
    assert workflow_results == {"long": True, "shout:shouty": True, "measure:counted": True}


async def test_streams_are_checked_after_the_fact(gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]]) -> None:
    gw, seen = gateway
    status, raw = await call(gw, "plain", "no ex", stream=True)
    assert status == 200
    assert "event: result" in raw  # the stream is not cut by a failed check
    await wait_for(lambda: any(t == "plain" for t, _ in seen))
    assert [r.passed for t, r in seen if t == "plain"] == [False]


async def test_sampling_rate_is_honoured(gateway: tuple[GatewayServer, list[tuple[str, CheckResult]]]) -> None:
    gw, seen = gateway
    for _ in range(60):
        status, _ = await call(gw, "slow1", "x")
        assert status == 200
    await asyncio.sleep(0.2)
    evaluated = sum(1 for t, _ in seen if t == "slow1")
    assert 5 <= evaluated <= 35, evaluated  # 30% of 60 = 18, binomial bounds far out


async def test_failed_sync_check_triggers_the_fallback(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    """The failure-handling process acts on a failed check like on any failed attempt."""
    url = await serve_app(ScriptedAgents().app())
    agents = agents_yaml(url).replace(
        "  plain:\n    kind: http\n", "  plain:\n    kind: http\n    policies: [checked]\n"
    )
    policies = (
        "policies:\n  checked:\n"
        "    retry: {max_attempts: 2, retry_on: [transient, UNKNOWN], backoff: {base: 1ms, max: 2ms}}\n"
        "    fallback: {when: any, targets: [{agent: upper}]}\n"
    )
    async with gateway_factory(agents + CONFIG + policies) as gw:
        async with aiohttp.ClientSession() as session:
            payload = {"messages": [{"parts": [{"text": "no capital ex here"}]}]}
            async with session.post(f"http://{gw.addresses.http}/v1/agents/plain/invoke", json=payload) as response:
                status, headers, body = response.status, response.headers, await response.json()
    assert status == 200
    assert headers["x-agw-fallback"] == "upper"
    assert headers["x-agw-attempts"] == "3"  # plain twice (check failed both times), then upper
    assert body["messages"][0]["parts"][0]["text"] == "NO CAPITAL EX HERE"
