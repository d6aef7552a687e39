"""The policies end to end: a real gateway in front of fault-injecting agents on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post
from tests.policies.faults import (
    CUT_STREAM,
    FAIL_500,
    FAIL_503,
    HANG,
    MALFORMED,
    RESET,
    RETRY_AFTER,
    SLOW,
    FaultyAgent,
    scripted,
)

FAST_RETRY = "retry: {max_attempts: 3, backoff: {base: 1ms, max: 5ms}}"


def config(agents: dict[str, str], policies: dict[str, str], agent_policies: dict[str, list[str]]) -> str:
    lines = ["policies:"]
    lines += [f"  {name}: {{{spec}}}" for name, spec in policies.items()]
    lines.append("agents:")
    for name, url in agents.items():
        named = agent_policies.get(name, [])
        lines.append(f"  {name}: {{kind: http, endpoint: '{url}', policies: {json.dumps(named)}}}")
    return "\n".join(lines) + "\n"


async def start(serve_app: Starter, agent: FaultyAgent) -> str:
    return await serve_app(agent.app())


async def invoke(gw_address: str | None, agent: str = "flaky", **fields: object) -> tuple[int, dict[str, str], dict]:
    status, headers, response = await post(f"http://{gw_address}/v1/agents/{agent}/invoke", body(**fields))
    return status, dict(headers), response


async def test_transient_failures_are_retried_until_success(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    agent = scripted(FAIL_503, RESET)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        status, headers, response = await invoke(gw.addresses.http)
    assert status == 200, response
    assert response["messages"][0]["parts"][0]["text"] == "answer #3"
    assert agent.hits == 3
    assert headers["x-agw-attempts"] == "3"


async def test_exhausted_retries_report_the_history(gateway_factory: GatewayFactory, serve_app: Starter,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    agent = scripted(then=FAIL_503)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        with caplog.at_level(logging.WARNING, logger="agent_gateway.failures"):
            status, _, response = await invoke(gw.addresses.http, context={"sessionId": "s-1"})
    assert status == 503
    assert agent.hits == 3
    details = response["error"]["details"]
    assert details["attempts"] == 3
    assert [r["attempt"] for r in details["retries"]] == [1, 2, 3]
    assert details["retries"][-1]["stopped"] == "gave up after 3 attempts"
    records = [r for r in caplog.records if r.name == "agent_gateway.failures"]
    assert len(records) == 1  # one record per failed call, not per attempt
    fields = records[0].agw  # type: ignore[attr-defined]
    assert fields["agent"] == "flaky" and fields["session_id"] == "s-1" and fields["attempts"] == 3
    assert fields["input"] == "hello" and len(fields["trace_id"]) == 32


async def test_permanent_failures_and_malformed_bodies(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(FAIL_500, MALFORMED)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        first, _, _ = await invoke(gw.addresses.http)
        second, _, response = await invoke(gw.addresses.http)
    assert first == 502 and second == 502
    assert "malformed JSON" in response["error"]["message"]
    assert agent.hits == 2  # neither was retried


async def test_retry_after_is_waited_for(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(RETRY_AFTER)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        started = time.monotonic()
        status, _, _ = await invoke(gw.addresses.http)
        elapsed = time.monotonic() - started
    assert status == 200 and agent.hits == 2
    assert elapsed >= 0.95  # Retry-After: 1, not the 1-5 ms backoff


async def test_per_try_timeout_then_success(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(HANG)
    url = await start(serve_app, agent)
    policy = f"timeout: {{per_try: 200ms, overall: 5s}}, {FAST_RETRY}"
    async with gateway_factory(config({"flaky": url}, {"std": policy}, {"flaky": ["std"]})) as gw:
        started = time.monotonic()
        status, headers, _ = await invoke(gw.addresses.http)
        elapsed = time.monotonic() - started
    assert status == 200 and headers["x-agw-attempts"] == "2"
    assert 0.2 <= elapsed < 1.0


async def test_overall_timeout_bounds_all_attempts(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(then=HANG)
    url = await start(serve_app, agent)
    policy = f"timeout: {{per_try: 200ms, overall: 500ms}}, {FAST_RETRY.replace('3', '10', 1)}"
    async with gateway_factory(config({"flaky": url}, {"std": policy}, {"flaky": ["std"]})) as gw:
        started = time.monotonic()
        status, _, response = await invoke(gw.addresses.http)
        elapsed = time.monotonic() - started
    assert status == 504 and response["error"]["code"] == "DEADLINE_EXCEEDED"
    assert elapsed < 0.9
    assert 2 <= agent.hits <= 3


async def test_non_idempotent_call_is_not_repeated(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(FAIL_503)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        status, _, response = await invoke(gw.addresses.http, options={"idempotent": False})
    assert status == 503 and agent.hits == 1  # no duplicate delivery
    assert response["error"]["details"]["retries"][0]["stopped"] == "not idempotent and the agent may have received it"


async def test_stream_cut_midway_is_not_retried(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agent = scripted(FAIL_503, CUT_STREAM)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw, \
            aiohttp.ClientSession() as session:
        async with session.post(f"http://{gw.addresses.http}/v1/agents/flaky/stream", json=body()) as response:
            assert response.headers["x-agw-attempts"] == "2"  # the 503 before any event was retried
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: event") and "one" in frames[0]
    assert frames[-1].startswith("event: error")
    assert agent.hits == 2  # the cut stream was not repeated


async def test_breaker_opens_fails_fast_and_falls_back(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    flaky = scripted(then=FAIL_503)
    backup = scripted()
    urls = {"flaky": await start(serve_app, flaky), "backup": await start(serve_app, backup)}
    policies = {
        "guarded": "circuit_breaker: {consecutive_failures: 2, reset_timeout: 30s}, "
        "fallback: {targets: [{agent: backup}]}",
    }
    async with gateway_factory(config(urls, policies, {"flaky": ["guarded"]})) as gw:
        results = [await invoke(gw.addresses.http) for _ in range(5)]
        assert gw.gateway.policies.breakers["agent/flaky"].state == "open"
    assert [status for status, _, _ in results] == [200] * 5
    assert all(headers["x-agw-fallback"] == "backup" for _, headers, _ in results)
    assert flaky.hits == 2  # after two failures the breaker stops calling it
    assert backup.hits == 5


async def test_static_fallback_when_everything_is_down(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    flaky = scripted(then=FAIL_503)
    url = await start(serve_app, flaky)
    policies = {"std": f"{FAST_RETRY}, fallback: {{targets: [{{static: {{text: 'busy, try later'}}}}]}}"}
    async with gateway_factory(config({"flaky": url}, policies, {"flaky": ["std"]})) as gw:
        status, headers, response = await invoke(gw.addresses.http)
    assert status == 200
    assert response["messages"][0]["parts"][0]["text"] == "busy, try later"
    assert headers["x-agw-fallback"] == "static" and headers["x-agw-attempts"] == "3"


async def test_bulkhead_protects_other_agents(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    slow = scripted(then=SLOW)
    fast = scripted()
    urls = {"flaky": await start(serve_app, slow), "fast": await start(serve_app, fast)}
    policies = {"bulkhead": "concurrency: {max_in_flight: 2, max_queue: 0}"}
    async with gateway_factory(config(urls, policies, {"flaky": ["bulkhead"]})) as gw:
        held = [asyncio.create_task(invoke(gw.addresses.http)) for _ in range(2)]
        for _ in range(100):  # both calls reached the agent
            if slow.hits == 2:
                break
            await asyncio.sleep(0.01)
        status, headers, response = await invoke(gw.addresses.http)
        other, _, _ = await invoke(gw.addresses.http, agent="fast")
        slow.release.set()
        done = await asyncio.gather(*held)
    assert status == 503 and response["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert "concurrency limit" in response["error"]["message"]
    assert "retry-after" in {k.lower() for k in headers}
    assert other == 200
    assert [s for s, _, _ in done] == [200, 200]


async def test_route_policies_wrap_the_routed_call(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    flaky = scripted(then=FAIL_503)
    backup = scripted()
    urls = {"flaky": await start(serve_app, flaky), "backup": await start(serve_app, backup)}
    text = config(urls, {"degrade": "fallback: {targets: [{agent: backup}]}"}, {}) + (
        "routes:\n  - {name: assistant, match: {agent: assistant}, target: flaky, policies: [degrade]}\n"
    )
    async with gateway_factory(text) as gw:
        status, headers, _ = await invoke(gw.addresses.http, agent="assistant")
        direct, _, _ = await invoke(gw.addresses.http, agent="flaky")
    assert status == 200 and headers["x-agw-fallback"] == "backup"
    assert direct == 503  # the agent itself has no fallback; only the route does


async def test_default_policy_and_unknown_policy_names(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    from gateway.config import load_config_text
    from gateway.config.loader import ConfigError

    agent = scripted(FAIL_503)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"default": FAST_RETRY}, {})) as gw:
        status, _, _ = await invoke(gw.addresses.http)
    assert status == 200 and agent.hits == 2
    bad = f"policies:\n  std: {{{FAST_RETRY}}}\nagents:\n  flaky:\n    kind: http\n    endpoint: {url}\n    policies:\n      - nope\n"
    with pytest.raises(ConfigError, match=r"test\.yaml:8: agents\.flaky\.policies\[0\]: no policy named 'nope'"):
        load_config_text(bad, "test.yaml")


async def test_grpc_front_reports_attempts_in_trailers(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    import grpc

    from agentgateway.v1 import gateway_pb2 as pb
    from agentgateway.v1 import gateway_pb2_grpc as pb_grpc

    agent = scripted(FAIL_503)
    url = await start(serve_app, agent)
    async with gateway_factory(config({"flaky": url}, {"std": FAST_RETRY}, {"flaky": ["std"]})) as gw:
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            request = pb.InvokeRequest(agent="flaky", messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="x")])])
            call = pb_grpc.AgentGatewayServiceStub(channel).Invoke(request)
            await call
            trailers = dict(await call.trailing_metadata())
    assert trailers["x-agw-attempts"] == "2"


async def test_two_gateways_trip_together_through_redis(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    import uuid

    from tests.helpers.policies import redis_url

    url = redis_url()
    namespace = f"agw-e2e-{uuid.uuid4().hex}"
    flaky = scripted(then=FAIL_503)
    agent_url = await start(serve_app, flaky)
    policy = (
        f"circuit_breaker: {{consecutive_failures: 2, reset_timeout: 30s, storage: redis, "
        f"redis_url: '{url}', namespace: {namespace}}}"
    )
    text = config({"flaky": agent_url}, {"shared": policy}, {"flaky": ["shared"]})
    try:
        async with gateway_factory(text) as first, gateway_factory(text) as second:
            assert [(await invoke(first.addresses.http))[0] for _ in range(2)] == [503, 503]
            assert flaky.hits == 2
            status, _, response = await invoke(second.addresses.http)  # never saw a failure itself
            assert status == 503 and response["error"]["details"].get("breaker_state") == "open"
            assert "circuit breaker" in response["error"]["message"]
            assert flaky.hits == 2  # failed fast: the agent was not called
            second.gateway.policies.breakers["agent/flaky"].reset()
            assert first.gateway.policies.breakers["agent/flaky"].state == "closed"
    finally:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
