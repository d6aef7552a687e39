"""Workflows where orchestration matters most: deadlines, cancels, runaway delegation, errors.

Each test is the failing scenario of issue 17 against recording agents (every call
and its input counted), asserting what a caller or an operator would notice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agentgateway_client import AgentClient, ClientError
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

WORKFLOWS = """
workflows:
  booking:
    kind: sequential
    steps_in_answer: status
    steps:
      - {name: one, agent: upper, compensate: {agent: undo}}
      - {name: two, agent: plain, compensate: {agent: undo, input: "undo two: {{ step.text }}"}}
      - {name: three, agent: hang}
  refused:
    kind: sequential
    steps:
      - {name: first, agent: upper}
      - {name: second, agent: reject}
  managed-badly:
    kind: hierarchical
    manager: fail
    workers: [upper]
  selfish:
    kind: hierarchical
    manager: self-manager
    workers: [selfish]
  chain:
    kind: hierarchical
    manager: self-manager-chain
    workers: [chain]
    max_rounds: 1
  slowself:
    kind: hierarchical
    manager: self-manager-slow
    workers: [slowself]
  plain-team:
    kind: sequential
    steps:
      - {name: only, agent: upper}
"""


@pytest.fixture
async def setup(gateway_factory: GatewayFactory, serve_app: Starter) -> AsyncIterator[tuple[GatewayServer, ScriptedAgents]]:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    server = "server: {drain_timeout: 1s, max_hops: 64, max_calls: 30}\n"
    async with gateway_factory(agents_yaml(url) + WORKFLOWS + server) as gw:
        yield gw, agents


async def invoke(
    gw: GatewayServer, agent: str, text: str, timeout: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    payload: dict[str, Any] = {"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]}
    if timeout is not None:
        payload["options"] = {"timeout": timeout}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{gw.addresses.http}/v1/agents/{agent}/invoke", json=payload) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def eventually(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


# 1. Compensation has a budget of its own.


async def test_compensations_run_after_the_deadline_passed(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body, _ = await invoke(gw, "booking", "order-7", timeout="1.5s")
    undo = [c[1] for c in agents.calls if c[0] == "undo"]
    # Each undo ran exactly once, in reverse, although the workflow's deadline had passed.
    assert undo == ["undo two: plain: order-7", "ORDER-7"]
    steps = {s["name"]: s["status"] for s in body["error"]["details"]["steps"]}
    assert steps["one"] == "compensated" and steps["two"] == "compensated"
    assert steps["two.compensate"] == "ok" and steps["one.compensate"] == "ok"
    # 3. The deadline is the cause: 504 DEADLINE_EXCEEDED, with the workflow and the step.
    assert status == 504 and body["error"]["code"] == "DEADLINE_EXCEEDED"
    assert body["error"]["details"]["workflow"] == "booking"
    assert body["error"]["details"]["step"] == "three"


async def test_compensations_run_when_the_caller_goes_away(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "order-8"}]}]}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                f"http://{gw.addresses.http}/v1/agents/booking/invoke",
                json=payload,
                timeout=aiohttp.ClientTimeout(total=0.8),
            ):
                pass
    # The caller left while step three hung: the workflow is cancelled (the default for
    # workflows), the hanging call with it, and both undo calls still run, once each.
    await eventually(lambda: len(agents.names("undo")) >= 2 and "hang" in agents.cancelled)
    await asyncio.sleep(0.3)
    assert [c[1] for c in agents.calls if c[0] == "undo"] == ["undo two: plain: order-8", "ORDER-8"]
    assert "hang" in agents.cancelled


# 2. A request tree has a call budget; a tree is stopped when its caller leaves.


async def test_a_self_delegating_chain_stops_at_the_call_budget(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body, _ = await invoke(gw, "chain", "x")
    # Each level is two calls (the workflow, its manager): 30 calls are 15 manager calls;
    # the 31st call (the 16th level's workflow) is refused, and each level fails in turn.
    assert len(agents.names("self-manager-chain")) == 15
    assert status == 429 and body["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert "server.max_calls" in str(body)
    # Every call carried the tree and its count so far, so another gateway would continue it.
    counts = [int(h["baggage"].split("agw.calls=")[1].split(",")[0]) for h in agents.headers]
    assert counts == list(range(2, 31, 2))


async def test_a_self_delegating_manager_does_not_grow_exponentially(
    setup: tuple[GatewayServer, ScriptedAgents],
) -> None:
    gw, agents = setup
    status, _, _ = await invoke(gw, "selfish", "x")
    await asyncio.sleep(0.2)
    manager_calls = len(agents.names("self-manager"))
    # Without a budget this is 2^depth manager calls; with it, fewer than the 30 calls allowed.
    assert 1 <= manager_calls < 30
    assert status in (200, 429)


async def test_the_tree_stops_when_the_caller_goes_away(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    # Budget and hops far away, so only the caller leaving can stop the tree.
    server = "server: {drain_timeout: 1s, max_hops: 64, max_calls: 100000}\n"
    async with gateway_factory(agents_yaml(url) + WORKFLOWS + server) as gw:
        await _leave_early(gw, agents)


async def _leave_early(gw: GatewayServer, agents: ScriptedAgents) -> None:
    payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "x"}]}]}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                f"http://{gw.addresses.http}/v1/agents/slowself/invoke",
                json=payload,
                timeout=aiohttp.ClientTimeout(total=0.5),
            ):
                pass
    await asyncio.sleep(0.6)
    after_leaving = len(agents.names("self-manager-slow"))
    await asyncio.sleep(1.0)
    # No manager call started after the caller left (each takes 0.2 s, so a live tree would add several).
    assert len(agents.names("self-manager-slow")) == after_leaving
    assert agents.names("self-manager-slow")


# 3. Errors keep their cause, and say the workflow and the step.


async def test_a_refused_step_keeps_its_code(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    status, body, _ = await invoke(gw, "refused", "x")
    assert body["error"]["code"] == "FAILED_PRECONDITION"  # the agent's 400, as a direct call reports it
    assert body["error"]["details"]["step"] == "second"
    assert body["error"]["details"]["cause"]["agent"] == "reject"
    direct, direct_body, _ = await invoke(gw, "reject", "x")
    assert (status, body["error"]["code"]) == (direct, direct_body["error"]["code"])


async def test_a_manager_failure_names_the_workflow(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    status, body, _ = await invoke(gw, "managed-badly", "x")
    assert status == 503 and body["error"]["code"] == "UNAVAILABLE"
    assert body["error"]["agent"] == "managed-badly"
    assert body["error"]["details"]["workflow"] == "managed-badly"
    assert body["error"]["details"]["step"] == "manager.0"
    assert "the manager 'fail' failed in round 0" in body["error"]["message"]


async def test_grpc_keeps_the_cause_too(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    assert gw.addresses.grpc is not None
    async with AgentClient(gw.addresses.grpc) as client:
        with pytest.raises(ClientError) as info:
            await client.invoke("managed-badly", "x")
    assert info.value.code == "UNAVAILABLE"
    assert info.value.details["workflow"] == "managed-badly"
    assert info.value.details["step"] == "manager.0"


# 5. The run id comes back; steps only to those who may see them.


async def test_the_run_id_comes_back_and_steps_are_cut(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body, headers = await invoke(gw, "plain-team", "x")
    assert status == 200
    run_id = headers["x-agw-workflow-run"]
    assert body["metadata"]["run_id"] == run_id and len(run_id) == 32
    # The agent saw the same run in its baggage (the state service's workflow scope).
    assert f"agw.run={run_id}" in agents.headers[-1]["baggage"]
    # No grant and the default `steps_in_answer: none`: no steps, no intermediate outputs.
    assert "steps" not in body["metadata"]
    # `status`: the steps without their outputs, in errors too.
    _, body, _ = await invoke(gw, "booking", "x", timeout="0.5s")
    assert all("output" not in s for s in body["error"]["details"]["steps"])
    assert body["error"]["details"]["run_id"]


async def test_calls_that_came_back_through_an_agent_stop_with_the_tree(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    gateway_url: list[str] = []

    async def relay(request: web.Request) -> web.Response:
        # An agent calling the gateway back with the context it got (baggage included), the
        # way an agent uses its sidecar; like most servers it keeps going when its caller hangs up.
        await request.read()
        body = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "relayed"}]}]}
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("baggage", "traceparent")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{gateway_url[0]}/v1/agents/inner/invoke", json=body, headers=headers) as response,
        ):
            return web.json_response(await response.json(), status=response.status)

    app = web.Application()
    app.router.add_post("/invoke", relay)
    relay_url = await serve_app(app)
    extra = f"""
  relay: {{kind: http, endpoint: "{relay_url}"}}
workflows:
  outer:
    kind: sequential
    steps: [{{name: hand-off, agent: relay}}]
  inner:
    kind: sequential
    steps: [{{name: long, agent: slow20}}]
server: {{drain_timeout: 1s}}
"""
    async with gateway_factory(agents_yaml(url) + extra) as gw:
        gateway_url.append(f"http://{gw.addresses.http}")
        payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "x"}]}]}
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.post(
                    f"{gateway_url[0]}/v1/agents/outer/invoke", json=payload, timeout=aiohttp.ClientTimeout(total=0.5)
                ):
                    pass
        # The inner call re-entered through the relay, whose own caller left: it is cancelled
        # with the tree, so the 2 s agent sees its caller go well before it would finish.
        await eventually(lambda: "slow20" in agents.cancelled, 1.2)
        assert "slow20" in agents.cancelled
        assert "slow20" not in agents.finished


async def test_compensations_run_when_the_gateway_drains(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "order-9"}]}]}
    server = "server: {drain_timeout: 300ms}\n"
    async with gateway_factory(agents_yaml(url) + WORKFLOWS + server) as gw, aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.post(f"http://{gw.addresses.http}/v1/agents/booking/invoke", json=payload))
        await eventually(lambda: bool(agents.names("hang")))
        assert agents.names("hang")
        # Leaving the block drains the gateway while step three hangs.
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        await asyncio.wait_for(call, 5)
    # The drain cancelled the run; its undo calls still ran, once each, before the gateway closed.
    assert [c[1] for c in agents.calls if c[0] == "undo"] == ["undo two: plain: order-9", "ORDER-9"]
