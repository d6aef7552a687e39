"""Completion callbacks: a signed, retried webhook and a bus event; and runs shared by a Redis fleet."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.runs.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests.conftest import GatewayFactory, Starter
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available
from tests.helpers.runs import SlowAgent, agents_yaml, base, body, read_sse, submit, wait_status

SECRET = "s3cret-for-tests"


async def test_webhook_is_signed_and_retried(
    gateway_factory: GatewayFactory, echo_url: str, serve_app: Starter
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []
    delivered = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        if len(received) == 1:
            return web.json_response({"busy": True}, status=503)  # the first attempt fails
        delivered.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    hooks = await serve_app(app)
    yaml = (
        agents_yaml(echo_url, echo_url)
        + f"""
runs:
  webhooks:
    allowed_prefixes: ["{hooks}/"]
    secret: {SECRET}
    backoff: {{base: 10ms, max: 50ms}}
"""
    )
    async with gateway_factory(yaml) as server, aiohttp.ClientSession() as http:
        run = await submit(http, server, {**body("echo"), "webhookUrl": f"{hooks}/hook"})
        await asyncio.wait_for(delivered.wait(), 5)
        assert len(received) == 2
        (first_body, first_headers), (raw, headers) = received
        assert first_body == raw and first_headers[DELIVERY_HEADER] == headers[DELIVERY_HEADER]
        assert verify(SECRET, raw, headers[SIGNATURE_HEADER])
        assert not verify("another-secret", raw, headers[SIGNATURE_HEADER])
        payload = json.loads(raw)
        assert payload["runId"] == run["runId"] and payload["status"] == "succeeded"
        assert payload["result"]["messages"][0]["parts"][0]["text"].startswith("echo: hello")
        await asyncio.sleep(0.1)
        assert len(received) == 2  # delivered once: no more attempts
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}") as response:
            assert (await response.json())["webhookStatus"] == "delivered (attempt 2)"


async def test_webhook_gives_up_after_its_attempts(
    gateway_factory: GatewayFactory, echo_url: str, serve_app: Starter
) -> None:
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    hooks = await serve_app(app)
    yaml = (
        agents_yaml(echo_url, echo_url)
        + f"""
runs:
  webhooks: {{allowed_prefixes: ["{hooks}"], secret: x, max_attempts: 3, backoff: {{base: 10ms, max: 20ms}}}}
"""
    )
    async with gateway_factory(yaml) as server, aiohttp.ClientSession() as http:
        run = await submit(http, server, {**body("echo"), "webhookUrl": f"{hooks}/hook"})
        for _ in range(100):
            async with http.get(f"{base(server)}/v1/runs/{run['runId']}") as response:
                status = (await response.json())["webhookStatus"]
            if status:
                break
            await asyncio.sleep(0.02)
        assert status == "failed after 3 attempts: HTTP 500"
        assert attempts == 3
        # A prefix without a trailing slash does not admit a longer host name.
        evil = {**body("echo"), "webhookUrl": hooks + "0.evil.example/hook"}
        async with http.post(f"{base(server)}/v1/runs", json=evil) as response:
            assert response.status == 400


async def test_completion_event_on_the_bus(gateway_factory: GatewayFactory, echo_url: str) -> None:
    yaml = agents_yaml(echo_url, echo_url) + "\nruns: {completion_subject: events.runs}\n"
    async with gateway_factory(yaml) as server, aiohttp.ClientSession() as http:
        subscription = await server.events.bus.subscribe("events.runs.>", "test-listener")
        run = await submit(http, server, body("echo", session="s-bus"))
        delivery = await subscription.next(timeout=5)
        assert delivery is not None
        assert delivery.subject == "events.runs.succeeded"
        data: dict[str, Any] = delivery.json()
        assert data["runId"] == run["runId"] and data["sessionId"] == "s-bus"
        await delivery.ack()
        await subscription.close()


@pytest.fixture
async def redis_prefix() -> Any:
    if not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    prefix = f"agw-test-runs:{uuid.uuid4().hex}:"
    yield prefix
    await drop_prefix(prefix)


async def test_a_fleet_shares_runs_through_redis(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, redis_prefix: str
) -> None:
    yaml = (
        agents_yaml(echo_url, slow_agent.url)
        + f"""
state:
  backend: redis
  redis: {{url: "{REDIS_URL}", key_prefix: "{redis_prefix}state:"}}
runs: {{key_prefix: "{redis_prefix}", poll_interval: 50ms}}
"""
    )
    async with (
        gateway_factory(yaml) as first,
        gateway_factory(yaml) as second,
        aiohttp.ClientSession() as http,
    ):
        run = await submit(http, first, body("slow", count=8, interval=0.03, session="s-fleet"))
        # The other gateway answers for it, follows it live, and lists it.
        async with http.get(f"{base(second)}/v1/runs/{run['runId']}/events") as response:
            frames = await read_sse(response)
        assert [f[1] for f in frames if f[0] == "event"] == [str(i) for i in range(1, 9)]
        assert frames[-1][0] == "result"
        done = await wait_status(http, second, run["runId"], {"succeeded"})
        assert done["lastSequence"] == 8
        async with http.get(f"{base(second)}/v1/runs", params={"sessionId": "s-fleet"}) as response:
            assert [r["runId"] for r in (await response.json())["runs"]] == [run["runId"]]
        # A cancel asked at the second gateway reaches the run executing in the first.
        long = await submit(http, first, body("slow", count=1000, interval=0.02))
        await asyncio.wait_for(slow_agent.started.wait(), 5)
        async with http.post(f"{base(second)}/v1/runs/{long['runId']}/cancel") as response:
            assert (await response.json())["cancelRequested"] is True
        await wait_status(http, second, long["runId"], {"cancelled"})
        await asyncio.wait_for(slow_agent.disconnected.wait(), 5)
