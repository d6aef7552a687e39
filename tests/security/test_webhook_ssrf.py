"""Defect 4: webhook SSRF. The attacks submit a run whose webhook points where the
allowed entries were never meant to reach (the gateway's own admin and HTTP
listeners, another host through user-info); the assertions are on what the
targets received: nothing, and a 400 for the caller. Legitimate URLs still deliver.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway.model import InvalidRequest
from gateway.outbound import OutboundUrlPolicy, canonical_host
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory
from tests.security.recording import recording_upstream


def yaml_for(agent_url: str, allowed: list[str]) -> str:
    entries = ", ".join(f'"{a}"' for a in allowed)
    return f"""
agents:
  rec: {{kind: http, endpoint: "{agent_url}"}}
runs:
  webhooks: {{allowed_prefixes: [{entries}], secret: s3cret, max_attempts: 1}}
"""


def run_body(webhook: str) -> dict[str, Any]:
    return {"agent": "rec", "messages": [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}], "webhookUrl": webhook}


async def submit_and_settle(server: GatewayServer, webhook: str) -> tuple[int, dict[str, Any]]:
    """Submit a run with ``webhook``; when it is accepted, wait until its callback was attempted."""
    base = f"http://{server.addresses.http}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/runs", json=run_body(webhook)) as response:
            status, data = response.status, await response.json()
        if status != 202:
            return status, data
        for _ in range(200):
            async with http.get(f"{base}/v1/runs/{data['runId']}") as response:
                run: dict[str, Any] = await response.json()
            if run.get("webhookStatus"):
                return status, run
            await asyncio.sleep(0.05)
    raise AssertionError(f"the run's webhook was never attempted: {run}")


class ReloadSpy:
    """Stands in for the admin API's reloader: counts the reloads it is asked for."""

    def __init__(self) -> None:
        self.calls = 0

    async def reload(self) -> Any:
        self.calls += 1
        raise RuntimeError("a webhook reached the admin API's /reload")


def spy_on_admin_reload(server: GatewayServer) -> ReloadSpy:
    assert server.admin_runner is not None
    spy = ReloadSpy()
    for route in server.admin_runner.app.router.routes():
        if route.resource is not None and route.resource.canonical == "/reload":
            route.handler.__self__.reloader = spy  # type: ignore[attr-defined]
    return spy


async def test_a_webhook_to_the_gateways_own_admin_api_is_refused(gateway_factory: GatewayFactory) -> None:
    async with recording_upstream() as agent, gateway_factory(yaml_for(agent.url, ["http://localhost"])) as gw:
        spy = spy_on_admin_reload(gw)
        assert gw.addresses.admin is not None
        admin_port = gw.addresses.admin.rsplit(":", 1)[1]
        for host in ("localhost", "127.0.0.1", "[::1]", "0.0.0.0", "2130706433", "127.1", "[::ffff:127.0.0.1]"):
            status, answer = await submit_and_settle(gw, f"http://{host}:{admin_port}/reload")
            assert status == 400, (host, answer)
            assert answer["error"]["code"] == "INVALID_ARGUMENT"
        assert spy.calls == 0


async def test_a_webhook_to_the_gateways_own_http_listener_is_refused(gateway_factory: GatewayFactory) -> None:
    # Its passthrough would relay the callback to `rec` (the policy refuses an own listener
    # even when an entry names it exactly: see the last test).
    async with recording_upstream() as agent, gateway_factory(yaml_for(agent.url, ["http://localhost"])) as gw:
        assert gw.addresses.http is not None
        port = gw.addresses.http.rsplit(":", 1)[1]
        status, answer = await submit_and_settle(gw, f"http://localhost:{port}/v1/proxy/rec/steal")
        assert status == 400, answer
        assert "own listeners" in answer["error"]["message"]
    assert [r.target for r in agent.requests if r.target == "/steal"] == []


async def test_user_info_cannot_switch_the_host(gateway_factory: GatewayFactory) -> None:
    async with recording_upstream() as agent, recording_upstream() as hooks, recording_upstream() as victim:
        hooks_port = hooks.url.rsplit(":", 1)[1]
        victim_port = victim.url.rsplit(":", 1)[1]
        async with gateway_factory(yaml_for(agent.url, [hooks.url])) as gw:
            for attack in (
                f"http://127.0.0.1:{hooks_port}:x@127.0.0.1:{victim_port}/steal",
                f"http://127.0.0.1:{hooks_port}@127.0.0.1:{victim_port}/steal",
                f"http://user@127.0.0.1:{hooks_port}/hook",
            ):
                status, answer = await submit_and_settle(gw, attack)
                assert status == 400, (attack, answer)
                assert "user-info" in answer["error"]["message"]
        assert victim.requests == [] and hooks.requests == []


async def test_allowed_urls_deliver_and_everything_else_is_refused(gateway_factory: GatewayFactory) -> None:
    async with recording_upstream() as agent, recording_upstream() as hooks:
        port = int(hooks.url.rsplit(":", 1)[1])
        async with gateway_factory(yaml_for(agent.url, [f"{hooks.url}/hooks"])) as gw:
            status, run = await submit_and_settle(gw, f"{hooks.url}/hooks/run-done?x=%20y")
            assert status == 202 and run["webhookStatus"] == "delivered (attempt 1)", run
            status, run = await submit_and_settle(gw, f"{hooks.url}/hooks")
            assert status == 202 and run["webhookStatus"] == "delivered (attempt 1)", run
            for refused in (
                f"{hooks.url}/hooksx",  # a path prefix ends at a segment
                f"{hooks.url}/hooks/../admin",
                f"{hooks.url}/hooks/%2e%2e/admin",
                f"{hooks.url}/",
                f"http://127.0.0.1:{port + 1}/hooks/x",  # another port on the same host
                f"https://127.0.0.1:{port}/hooks/x",
                f"http://localhost:{port}/hooks/x",  # hosts match exactly, not by resolution
                f"http://127.0.0.1:{port}/hooks\\..\\admin",
                "ftp://127.0.0.1/hooks/x",
                "/hooks/x",
            ):
                status, answer = await submit_and_settle(gw, refused)
                assert status == 400, (refused, answer)
    assert [r.target for r in hooks.requests] == ["/hooks/run-done?x=%20y", "/hooks"]


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("LOCALHOST.", "localhost"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("face.example", "face.example"),
    ],
)
def test_hosts_compare_in_one_spelling(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


def test_the_policy_refuses_the_gateway_itself_on_any_local_name() -> None:
    policy = OutboundUrlPolicy(["http://127.0.0.1:9000/", "http://hooks.test/"], "x.allowed", lambda: ["0.0.0.0:9000"])
    with pytest.raises(InvalidRequest, match="own listeners"):
        policy.check("http://127.0.0.1:9000/x")
    assert policy.check("http://hooks.test/a?b=%20c") == "http://hooks.test/a?b=%20c"
    assert policy.check("http://HOOKS.test:80/a") == "http://hooks.test/a"  # as the client will send it
