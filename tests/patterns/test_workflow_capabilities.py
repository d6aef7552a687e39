"""Workflow policies, routes to workflows, quorum within the deadline, step conditions (issue 17)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agentgateway_client import AgentClient
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

CONFIG = """
policies:
  again:
    retry: {max_attempts: 3, backoff: {base: 10ms, max: 20ms}, budget: null}
  or-apologise:
    fallback: {targets: [{static: {text: "sorry, later"}}], when: any}
  short:
    timeout: {overall: 500ms}
checks:
  is-final: {kind: contains, value: "final"}
evaluations:
  - {target: drafted, checks: [is-final], mode: sync, retryable: true}
routes:
  - {name: booking-route, match: {agent: book}, target: retried, timeout: 5s}
  - {name: saying, match: {agent: say}, split: [{agent: echoing, weight: 1}]}
workflows:
  gated:
    kind: sequential
    steps_in_answer: status
    steps:
      - {name: check, agent: count}
      - {name: long, agent: upper, when: "steps.check.data.length > `3`"}
      - {name: short, agent: plain, when: "steps.check.data.length <= `3`"}
  echoing:
    kind: sequential
    steps:
      - {name: only, agent: plain}
  retried:
    kind: sequential
    policies: [again]
    steps:
      - {name: only, agent: flip}
  drafted:
    kind: sequential
    policies: [again]
    steps:
      - {name: write, agent: improving}
  apologetic:
    kind: sequential
    policies: [or-apologise]
    steps:
      - {name: only, agent: reject}
  bounded:
    kind: sequential
    policies: [short]
    steps:
      - {name: wait, agent: hang}
  at-least-one:
    kind: parallel
    aggregate: quorum
    quorum: 1
    quorum_wait: deadline
    branches:
      - {name: a, agent: slow1}
      - {name: b, agent: slow3}
      - {name: c, agent: slow20}
  first-one:
    kind: parallel
    aggregate: quorum
    quorum: 1
    branches:
      - {name: a, agent: slow1}
      - {name: b, agent: slow3}
      - {name: c, agent: slow20}
"""


@pytest.fixture
async def setup(gateway_factory: GatewayFactory, serve_app: Starter) -> AsyncIterator[tuple[GatewayServer, ScriptedAgents]]:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    async with gateway_factory(agents_yaml(url) + CONFIG + "server: {drain_timeout: 1s}\n") as gw:
        yield gw, agents


async def invoke(gw: GatewayServer, agent: str, text: str, timeout: str | None = None) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]}
    if timeout is not None:
        payload["options"] = {"timeout": timeout}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{gw.addresses.http}/v1/agents/{agent}/invoke", json=payload) as response,
    ):
        return response.status, await response.json()


def text_of(body: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for m in body["messages"] for p in m["parts"])


# 6. Workflow-level policies and routes that target workflows.


async def test_a_workflow_retries_as_a_whole(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "retried", "x")
    assert status == 200 and text_of(body) == "x"
    assert len(agents.names("flip")) == 2  # the first run failed (503), the retry succeeded


async def test_a_failed_check_retries_the_workflow(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "drafted", "essay")
    assert status == 200 and text_of(body) == "final: essay"
    assert len(agents.names("improving")) == 2  # the draft failed the sync check, so the run was retried


async def test_a_workflow_falls_back(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "apologetic", "x")
    assert status == 200 and text_of(body) == "sorry, later"
    assert len(agents.names("reject")) == 1


async def test_a_workflow_timeout_bounds_its_steps(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    started = time.monotonic()
    status, body = await invoke(gw, "bounded", "x")
    assert status == 504 and body["error"]["code"] == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 3.0


async def test_a_route_targets_a_workflow_on_both_fronts(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "book", "via route")
    assert len(agents.names("flip")) == 2  # through the route, the workflow's own retry still applies
    assert status == 200 and text_of(body) == "via route"
    assert gw.addresses.grpc is not None
    async with AgentClient(gw.addresses.grpc) as client:
        events = [e async for e in client.stream("say", "streamed")]
    assert [e.data["step"] for e in events if e.type == "step"] == ["only", "only"]
    assert events[-1].type == "message" and events[-1].message is not None
    assert events[-1].message.text == "plain: streamed"


# 7. Quorum: at least N within the deadline, beside the first N.


async def test_quorum_waits_for_late_successes_until_the_deadline(
    setup: tuple[GatewayServer, ScriptedAgents],
) -> None:
    gw, agents = setup
    started = time.monotonic()
    status, body = await invoke(gw, "at-least-one", "go", timeout="1s")
    elapsed = time.monotonic() - started
    assert status == 200
    # a (0.1 s) and b (0.3 s) made it, c (2 s) did not: the answer came at the deadline.
    assert [m["metadata"]["branch"] for m in body["messages"]] == ["a", "b"]
    assert body["metadata"]["missing_branches"] == ["c"]
    assert 0.9 <= elapsed < 1.9
    assert agents.finished.count("slow1") == 1 and agents.finished.count("slow3") == 1
    status, body = await invoke(gw, "first-one", "go", timeout="1s")
    assert status == 200 and [m["metadata"]["branch"] for m in body["messages"]] == ["a"]


async def test_quorum_within_the_deadline_as_a_background_run(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, _ = setup
    payload = {"agent": "at-least-one", "messages": [{"role": "ROLE_USER", "parts": [{"text": "go"}]}],
               "options": {"timeout": "1s"}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{gw.addresses.http}/v1/runs", json=payload) as response:
            assert response.status == 202
            run_id = (await response.json())["runId"]
        for _ in range(100):
            async with session.get(f"http://{gw.addresses.http}/v1/runs/{run_id}/result") as response:
                if response.status == 200:
                    result = await response.json()
                    break
            await asyncio.sleep(0.05)
    assert [m["metadata"]["branch"] for m in result["messages"]] == ["a", "b"]


# 10. Step conditions over earlier outputs (JMESPath).


async def test_a_step_runs_only_when_its_condition_holds(setup: tuple[GatewayServer, ScriptedAgents]) -> None:
    gw, agents = setup
    status, body = await invoke(gw, "gated", "hi")
    assert status == 200 and text_of(body) == "plain: hi"
    assert [(s["name"], s["status"]) for s in body["metadata"]["steps"]] == [
        ("check", "ok"), ("long", "skipped"), ("short", "ok"),
    ]
    assert gw.addresses.grpc is not None
    async with AgentClient(gw.addresses.grpc) as client:
        result = await client.invoke("gated", "longer")
    assert result.text == "LONGER"
    assert agents.names("upper") == ["upper"] and agents.names("plain") == ["plain"]


def test_a_bad_condition_is_a_config_error() -> None:
    from gateway.config import ConfigError, load_config_text

    text = """agents:
  a: {kind: http, endpoint: "http://127.0.0.1:1"}
workflows:
  w:
    kind: sequential
    steps:
      - {name: s, agent: a, when: "steps.[["}
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "wf.yaml", {})
    assert any("workflows.w.steps[0].when: invalid condition" in str(p) for p in info.value.problems)
