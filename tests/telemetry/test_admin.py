"""The admin listener: health, readiness, Prometheus metrics, breakers, config, live reload."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.config import load_config
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post
from tests.helpers.metrics import get, samples, value
from tests.policies.faults import FAIL_503, scripted


async def post_empty(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session, session.post(url) as response:
        return response.status, await response.json()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, serve_app: Starter, echo_url: str) -> AsyncIterator[GatewayServer]:
    flaky = await serve_app(scripted(then=FAIL_503).app())
    text = f"""
admin: {{address: '127.0.0.1:0', ready_requires: [flaky]}}
policies:
  guarded:
    retry: {{max_attempts: 2, backoff: {{base: 1ms, max: 2ms}}}}
    circuit_breaker: {{consecutive_failures: 2, reset_timeout: 30s}}
    fallback: {{targets: [{{static: {{text: degraded}}}}]}}
agents:
  echo: {{kind: http, endpoint: {echo_url}, options: {{headers: {{authorization: Bearer s3cr3t-token}}}}}}
  flaky: {{kind: http, endpoint: {flaky}, policies: [guarded]}}
"""
    async with gateway_factory(text) as server:
        yield server


async def test_metrics_count_calls_attempts_retries_fallbacks_streams_and_breakers(gateway: GatewayServer) -> None:
    http = f"http://{gateway.addresses.http}"
    assert (await post(f"{http}/v1/agents/echo/invoke", body()))[0] == 200
    assert (await post(f"{http}/v1/agents/nobody/invoke", body()))[0] == 404
    for _ in range(2):  # 2 attempts each, then the static fallback; the breaker opens on the 2nd failure
        status, headers, _ = await post(f"{http}/v1/agents/flaky/invoke", body())
        assert status == 200 and headers["x-agw-fallback"] == "static"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{http}/v1/agents/echo/stream", json=body("a b")) as response:
            await response.read()
    status, text = await get(f"http://{gateway.addresses.admin}/metrics")
    assert status == 200
    m = samples(text)
    assert value(m, "agw_requests_total", agent="echo", route="", outcome="OK") == 2
    # Callers choose names: unknown ones share one label, so the metric cannot grow without bound.
    assert value(m, "agw_requests_total", agent="_unknown", route="", outcome="NOT_FOUND") == 1
    assert 'agent="nobody"' not in text
    assert value(m, "agw_requests_total", agent="flaky", route="", outcome="OK") == 2
    assert value(m, "agw_upstream_attempts_total", agent="flaky", outcome="UNAVAILABLE") == 2
    assert value(m, "agw_retries_total", agent="flaky") == 1
    assert value(m, "agw_fallbacks_total", agent="flaky", target="static") == 2
    assert value(m, "agw_streams_total", agent="echo", outcome="OK") == 1
    assert value(m, "agw_streams_open", agent="echo") == 0
    assert value(m, "agw_requests_in_flight", agent="echo") == 0
    assert value(m, "agw_circuit_breaker_state", owner="agent/flaky") == 2  # open
    assert value(m, "agw_request_duration_seconds_count", agent="echo", route="", outcome="OK") == 2


async def test_health_readiness_breakers_and_config(gateway: GatewayServer) -> None:
    admin = f"http://{gateway.addresses.admin}"
    assert (await get(f"{admin}/livez"))[0] == 200
    assert (await get(f"{admin}/readyz"))[0] == 200
    for _ in range(2):
        await post(f"http://{gateway.addresses.http}/v1/agents/flaky/invoke", body())
    status, text = await get(f"{admin}/readyz")
    assert status == 503 and "circuit open for required agents: flaky" in text
    assert (await get(f"{admin}/breakers"))[1] == '{"agent/flaky": "open"}'
    status, reset = await post_empty(f"{admin}/breakers/agent/flaky/reset")
    assert status == 200 and reset == {"agent/flaky": "closed"}
    assert (await get(f"{admin}/readyz"))[0] == 200
    assert (await post_empty(f"{admin}/breakers/agent/nope/reset"))[0] == 404
    status, config = await get(f"{admin}/config")
    assert status == 200 and '"flaky"' in config
    assert "s3cr3t-token" not in config and "[redacted]" in config


async def test_draining_gateway_is_not_ready(gateway: GatewayServer) -> None:
    gateway.serving = False
    status, text = await get(f"http://{gateway.addresses.admin}/readyz")
    assert status == 503 and "draining" in text
    gateway.serving = True


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text), encoding="utf-8")


CONFIG = """\
listeners:
  http: {{address: '127.0.0.1:0'}}
  grpc: null
admin: {{address: '127.0.0.1:0'}}
state: null
server: {{drain_timeout: 100ms, config_watch: {watch}}}
agents:
  echo: {{kind: http, endpoint: {echo}}}
{more}"""


async def test_reload_applies_new_agents_and_refuses_bad_config(
    tmp_path: Path, echo_url: str, tracer_provider: TracerProvider
) -> None:
    path = tmp_path / "gateway.yaml"
    write(path, CONFIG.format(watch="null", echo=echo_url, more=""))
    async with GatewayServer(load_config(path), tracer_provider, config_path=path) as server:
        http, admin = f"http://{server.addresses.http}", f"http://{server.addresses.admin}"
        assert (await post(f"{http}/v1/agents/second/invoke", body()))[0] == 404
        write(path, CONFIG.format(watch="null", echo=echo_url, more=f"  second: {{kind: http, endpoint: {echo_url}}}\n"))
        status, outcome = await post_empty(f"{admin}/reload")
        assert status == 200 and outcome["applied"] == ["agents"] and outcome["changed"]
        assert (await post(f"{http}/v1/agents/second/invoke", body()))[0] == 200
        # A broken file is refused with its problems; the running config stays.
        path.write_text("agents:\n  second: {kind: http}\n", encoding="utf-8")
        status, outcome = await post_empty(f"{admin}/reload")
        assert status == 400
        assert any("gateway.yaml:2: agents.second.endpoint" in p for p in outcome["problems"])
        assert (await post(f"{http}/v1/agents/second/invoke", body()))[0] == 200
        # Sections read at start are reported, not applied.
        write(path, CONFIG.format(watch="null", echo=echo_url, more="").replace("state: null", "state: {sqlite: {path: ':memory:'}}"))
        status, outcome = await post_empty(f"{admin}/reload")
        assert outcome["needsRestart"] == ["state"] and outcome["applied"] == ["agents"]


async def test_config_file_changes_are_picked_up(tmp_path: Path, echo_url: str, tracer_provider: TracerProvider) -> None:
    path = tmp_path / "gateway.yaml"
    write(path, CONFIG.format(watch="50ms", echo=echo_url, more=""))
    async with GatewayServer(load_config(path), tracer_provider, config_path=path) as server:
        http = f"http://{server.addresses.http}"
        write(path, CONFIG.format(watch="50ms", echo=echo_url, more=f"  later: {{kind: http, endpoint: {echo_url}}}\n"))
        for _ in range(100):  # bounded: 5 s
            if "later" in server.gateway.upstream_names():
                break
            await asyncio.sleep(0.05)
        assert (await post(f"{http}/v1/agents/later/invoke", body()))[0] == 200


async def test_admin_token_guards_everything_but_probes_and_metrics(
    gateway_factory: GatewayFactory, echo_url: str
) -> None:
    token = "t0ken-for-the-admin-api"
    text = f"admin: {{address: '127.0.0.1:0', token: {token}}}\nagents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
    async with gateway_factory(text) as gw:
        admin = f"http://{gw.addresses.admin}"
        for path in ("/livez", "/readyz", "/metrics"):
            assert (await get(f"{admin}{path}"))[0] == 200, path
        assert (await get(f"{admin}/config"))[0] == 401
        assert (await post_empty(f"{admin}/reload"))[0] == 401
        async with aiohttp.ClientSession(headers={"authorization": f"Bearer {token}"}) as session:
            async with session.get(f"{admin}/config") as response:
                assert response.status == 200
            async with session.get(f"{admin}/breakers") as response:
                assert response.status == 200
        async with aiohttp.ClientSession(headers={"authorization": "Bearer wrong-token-of-some-length"}) as session:
            async with session.get(f"{admin}/breakers") as response:
                assert response.status == 401
