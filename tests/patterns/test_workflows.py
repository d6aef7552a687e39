"""Workflow patterns end to end: a real gateway, real HTTP agents, both fronts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agentgateway_client import AgentClient, ClientError
from gateway.config import ConfigError, load_config_text
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

WORKFLOWS = """
workflows:
  pipeline:
    kind: sequential
    description: upper-case, then count
    steps_in_answer: outputs
    steps:
      - name: shout
        agent: upper
        compensate: {agent: undo}
      - name: measure
        agent: count
        input: "{{ steps.shout.text }}"
    output: {shouted: "{{ steps.shout.text }}", length: "{{ steps.measure.data.length }}", note: "len={{ steps.measure.data.length }}"}
  saga:
    kind: sequential
    steps_in_answer: status
    steps:
      - {name: one, agent: upper, compensate: {agent: undo}}
      - {name: two, agent: plain, compensate: {agent: undo, input: "undo two: {{ step.text }}"}}
      - {name: flaky, agent: fail, optional: true}
      - {name: three, agent: reject}
  fanout:
    kind: parallel
    branches:
      - {name: a, agent: slow1}
      - {name: b, agent: slow3}
      - {name: c, agent: slow20}
    aggregate: quorum
    quorum: 2
  first:
    kind: parallel
    aggregate: first
    branches:
      - {name: fast, agent: slow1}
      - {name: slow, agent: slow20}
  merged:
    kind: parallel
    aggregate: merge
    quorum: 2
    branches:
      - {name: a, agent: json-a}
      - {name: b, agent: json-b}
      - {name: broken, agent: fail}
  impossible:
    kind: parallel
    branches:
      - {name: ok, agent: slow1}
      - {name: bad, agent: fail}
      - {name: long, agent: slow20}
  team:
    kind: hierarchical
    manager: manager
    workers: [upper, count]
  runaway:
    kind: hierarchical
    manager: loop-manager
    workers: [upper]
    max_rounds: 2
  rogue:
    kind: hierarchical
    manager: rogue-manager
    workers: [upper]
  nested:
    kind: sequential
    steps:
      - {name: inner, agent: pipeline}
  ouroboros:
    kind: sequential
    steps:
      - {name: again, agent: ouroboros}
"""


@pytest.fixture
async def setup(gateway_factory: GatewayFactory, serve_app: Starter) -> AsyncIterator[tuple[GatewayServer, ScriptedAgents]]:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    async with gateway_factory(agents_yaml(url) + WORKFLOWS + "server: {drain_timeout: 1s, max_hops: 6}\n") as gw:
        yield gw, agents


async def invoke(gw: GatewayServer, agent: str, text: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]}
        async with session.post(f"http://{gw.addresses.http}/v1/agents/{agent}/invoke", json=payload) as response:
            return response.status, await response.json()


def steps(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in body["metadata"]["steps"]]


async def test_sequential_passes_outputs_forward(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "pipeline", "hello")
    assert status == 200
    assert body["messages"][0]["parts"][0]["data"] == {"shouted": "HELLO", "length": 5, "note": "len=5"}
    assert steps(body) == [("shout", "ok"), ("measure", "ok")]
    assert agents.calls[1] == ("count", "HELLO", None)


async def test_saga_compensates_in_reverse_and_skips_optional(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "saga", "order-1")
    assert status == 502
    error = body["error"]
    assert "failed at step 'three'" in error["message"]
    assert "compensated: two, one" in error["message"]
    assert [(s["name"], s["status"]) for s in error["details"]["steps"]] == [
        ("one", "compensated"), ("two", "compensated"), ("flaky", "skipped"), ("three", "failed"),
        ("two.compensate", "ok"), ("one.compensate", "ok"),
    ]
    undo_inputs = [c[1] for c in agents.calls if c[0] == "undo"]
    assert undo_inputs == ["undo two: plain: order-1", "ORDER-1"]


async def test_parallel_quorum_cancels_the_loser_and_tracks_the_slowest_needed(
    setup: tuple[GatewayServer, ScriptedAgents],
) -> None:
    gw, agents = setup
    started = time.monotonic()
    status, body = await invoke(gw, "fanout", "go")
    elapsed = time.monotonic() - started
    assert status == 200
    assert [m["metadata"]["branch"] for m in body["messages"]] == ["a", "b"]
    assert body["metadata"]["missing_branches"] == ["c"]
    # The answer came after the slowest needed branch (0.3 s), not the 2 s one, nor the sum.
    assert 0.3 <= elapsed < 1.5
    for _ in range(50):
        if "slow20" in agents.cancelled:
            break
        await asyncio.sleep(0.02)
    assert "slow20" in agents.cancelled
    assert "slow20" not in agents.finished


async def test_parallel_first_and_merge(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    status, body = await invoke(gw, "first", "x")
    assert status == 200
    assert body["messages"][0]["parts"][0]["text"] == "slow1 done"
    status, body = await invoke(gw, "merged", "x")
    assert status == 200
    assert body["messages"][0]["parts"][0]["data"] == {"a": 1, "b": 1, "shared": "json-b"}
    assert body["metadata"]["missing_branches"] == ["broken"]


async def test_parallel_fails_fast_when_the_quorum_is_out_of_reach(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    started = time.monotonic()
    status, body = await invoke(gw, "impossible", "x")
    # The failing branch's cause is kept: the agent was unavailable.
    assert status == 503 and body["error"]["code"] == "UNAVAILABLE"
    assert body["error"]["details"]["step"] == "bad"
    assert time.monotonic() - started < 1.5  # did not wait for the 2 s branch
    assert "needed 3 of 3 branches" in body["error"]["message"]
    assert "bad: agent answered HTTP 503" in body["error"]["message"]


async def test_hierarchical_delegation_and_synthesis(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "team", "otters")
    assert status == 200
    assert body["messages"][0]["parts"][0]["text"] == "summary: upper=OTTERS | count=6 chars"
    first_brief = next(c[2] for c in agents.calls if c[0] == "manager")
    assert first_brief["workers"] == [{"name": "upper", "description": "the upper agent"},
                                      {"name": "count", "description": "the count agent"}]
    status, body = await invoke(gw, "rogue", "x")
    assert status == 200
    assert "'ghost' is not one of the workers" in body["messages"][0]["parts"][0]["text"]


async def test_hierarchical_rounds_are_bounded(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "runaway", "x")
    assert status == 502
    assert "did not answer within 2 rounds" in body["error"]["message"]
    assert len(agents.names("loop-manager")) == 3


async def test_nested_workflows_and_the_hop_limit(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    status, body = await invoke(gw, "nested", "deep")
    assert status == 200
    assert body["messages"][0]["parts"][0]["data"]["shouted"] == "DEEP"
    status, body = await invoke(gw, "ouroboros", "x")
    assert status == 429 and body["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert "nested 6 hops deep, the limit is 6" in json.dumps(body)


async def test_workflow_streams_step_events_over_grpc(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    assert gw.addresses.grpc is not None
    async with AgentClient(gw.addresses.grpc) as client:
        events = [e async for e in client.stream("pipeline", "abc")]
        listed = {a.name: a.kind for a in await client.list_agents()}
        with pytest.raises(ClientError) as info:
            await client.invoke("saga", "x")
    progress = [(e.data["step"], e.data["status"]) for e in events if e.type == "step"]
    assert progress == [("shout", "started"), ("shout", "ok"), ("measure", "started"), ("measure", "ok")]
    assert events[-1].type == "message"
    assert listed["pipeline"] == "workflow/sequential"
    assert listed["team"] == "workflow/hierarchical"
    assert info.value.details["workflow"] == "saga"


def test_workflow_config_errors_have_lines() -> None:
    text = """agents:
  a: {kind: http, endpoint: "http://127.0.0.1:1"}
workflows:
  w:
    kind: sequential
    steps:
      - {name: s, agent: ghost}
      - {name: t, agent: a, input: "{{ steps.s.[ }}"}
  p:
    kind: parallel
    aggregate: quorum
    branches: [{name: x, agent: a}]
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "wf.yaml", {})
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith("wf.yaml:8: workflows.w.steps[1].input: invalid expression") for p in found), found
    assert "wf.yaml:9: workflows.p: aggregate: quorum needs 'quorum: N'" in found


def test_workflow_references_are_checked() -> None:
    text = """agents:
  a: {kind: http, endpoint: "http://127.0.0.1:1"}
workflows:
  a:
    kind: parallel
    branches: [{name: x, agent: a}]
  w:
    kind: hierarchical
    manager: boss
    workers: [a, ghost]
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "wf.yaml", {})
    assert [str(p) for p in info.value.problems] == [
        "wf.yaml:4: workflows.a: a workflow cannot have the name of agent 'a'",
        "wf.yaml:9: workflows.w.manager: 'boss' is not an agent, a route or a workflow",
        "wf.yaml:10: workflows.w.workers[1]: 'ghost' is not an agent, a route or a workflow",
    ]
