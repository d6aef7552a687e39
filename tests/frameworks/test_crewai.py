"""The CrewAI adapter against a real Crew served by gateway/hosts/crewai.py (offline, scripted LLM).

The crew (``tests/frameworks/crewai/crew_app.py``) runs in its own environment
(``.venvs/crewai``), started once for this module on a free loopback port with
telemetry off and HOME in a temp dir (CrewAI writes its storage there).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from agentgateway_client import AgentClient, ClientError, StatusCode
from tests.conftest import GatewayFactory
from tests.frameworks.apps import CREW_TOKEN as TOKEN
from tests.frameworks.servers import ServerProcess

pytestmark = pytest.mark.frameworks

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-10f067aa0ba902b7-01"


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  crew:
    kind: crewai
    endpoint: {url}
    options: {{bearer_token: {TOKEN}, poll_interval: 0.05, text_input: topic}}
  crew_no_token:
    kind: crewai
    endpoint: {url}
    options: {{text_input: topic}}
  crew_wrong_input:
    kind: crewai
    endpoint: {url}
    options: {{bearer_token: {TOKEN}, text_input: subject}}
"""


async def http_invoke(gw_http: str, agent: str, text: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw_http}/v1/agents/{agent}/invoke",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}], **extra},
            headers={"traceparent": INBOUND_TRACEPARENT},
        ) as response:
            return response.status, await response.json()


async def test_kickoff_and_poll_carries_context_into_the_crew(
    gateway_factory: GatewayFactory, crew_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(crew_server.url)) as gw:
        status, body = await http_invoke(
            gw.addresses.http, "crew", "otters", context={"sessionId": "sess-c1"}, options={"timeout": "20s"}
        )
    assert status == 200, body
    assert body["messages"][0]["parts"][0]["text"] == f"report about otters (session=sess-c1, trace={TRACE_ID})"
    metadata = body["metadata"]
    assert len(metadata["kickoff_id"]) == 36
    tasks = metadata["tasks"]
    assert [(t["task_id"], t["agent"]) for t in tasks] == [("research", "Researcher"), ("write", "Writer")]
    assert tasks[0]["output"].startswith("draft about otters")


async def test_stream_reports_task_progress_then_the_output(
    gateway_factory: GatewayFactory, crew_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(crew_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream("crew", "steady beavers", session_id="s-c2", timeout=20)]
    progress = [e.data for e in events if e.type == "status"]
    current = [p.get("current_task") for p in progress]
    assert "research" in current and "write" in current  # polls saw each task running
    assert progress[0]["progress"]["total_tasks"] == 2
    assert events[-1].type == "message" and events[-1].message is not None
    assert events[-1].message.text.startswith("report about steady beavers (session=s-c2")


async def test_deadline_is_respected_while_the_crew_runs(
    gateway_factory: GatewayFactory, crew_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(crew_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            started = time.monotonic()
            with pytest.raises(ClientError) as info:
                await client.invoke("crew", "slow snails", timeout=0.8)  # the crew needs 6 s
            elapsed = time.monotonic() - started
    assert info.value.code == StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 2.0


async def test_crew_failures_and_rejections_are_mapped(
    gateway_factory: GatewayFactory, crew_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(crew_server.url)) as gw:
        (failed_status, failed), (auth_status, auth), (input_status, inputs) = await asyncio.gather(
            http_invoke(gw.addresses.http, "crew", "fail hard", options={"timeout": "20s"}),
            http_invoke(gw.addresses.http, "crew_no_token", "otters"),
            http_invoke(gw.addresses.http, "crew_wrong_input", "otters"),
        )
    # The crew raised: a permanent upstream failure carrying the crew's reason.
    assert failed_status == 502
    assert failed["error"]["code"] == "UNKNOWN"
    assert not failed["error"].get("transient", False)
    assert "the scripted LLM refuses 'fail hard'" in failed["error"]["message"]
    # No bearer token: the host answers 401, a permanent rejection.
    assert auth_status == 502
    assert auth["error"]["code"] == "FAILED_PRECONDITION"
    assert json.dumps(auth).count("401") >= 1
    # The text went to an input the crew does not have: the error says which inputs it needs.
    assert input_status == 502
    assert inputs["error"]["code"] == "FAILED_PRECONDITION"
    assert "the crew needs inputs topic" in inputs["error"]["message"]
