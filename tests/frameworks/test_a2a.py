"""The A2A adapter against a real a2a-sdk server (JSON-RPC, A2A 1.0 and the 0.3 compatibility mode).

The server (``tests/frameworks/a2a/server.py``) runs on the dev extra's a2a-sdk
with uvicorn, started once for this module on a free loopback port.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from agentgateway_client import AgentClient, ClientError, DataPart, Event, StatusCode
from gateway.adapters.a2a import CONTEXT_NAMESPACE
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.abandoned_task import abandon_mid_task, state_after

pytestmark = pytest.mark.frameworks

TRACE_ID = "6bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-20f067aa0ba902b7-01"


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  echo:
    kind: a2a
    endpoint: {url}
  echo03:
    kind: a2a
    endpoint: {url}
    options: {{protocol_version: "0.3", rpc_url: {url}/a2a/jsonrpc}}
"""


async def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/a2a/jsonrpc",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"a2a-version": "1.0"},
        ) as response:
            reply: dict[str, Any] = await response.json()
            return reply


async def test_message_send_through_the_agent_card_carries_context(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/echo/invoke",
            json={
                "messages": [{"role": "ROLE_USER", "parts": [{"text": "hello agents"}]}],
                "context": {"sessionId": "sess-a1"},
            },
            headers={"traceparent": INBOUND_TRACEPARENT, "x-request-id": "req-a1"},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    answer, context = body["messages"]
    assert "".join(p["text"] for p in answer["parts"]) == "echo: hello agents "
    seen = context["parts"][0]["data"]
    assert seen["headers"]["x-session-id"] == "sess-a1"
    assert seen["headers"]["x-request-id"] == "req-a1"
    assert seen["headers"]["traceparent"].split("-")[1] == TRACE_ID
    # The session is the A2A conversation: a stable contextId derived from it.
    assert seen["context_id"] == str(uuid.uuid5(CONTEXT_NAMESPACE, "echo:sess-a1"))
    assert body["metadata"]["a2a_state"] == "completed"


@pytest.mark.parametrize("agent", ["echo", "echo03"])
async def test_message_stream_yields_artifact_chunks(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess, agent: str
) -> None:
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream(agent, "one two three", session_id="s-a2", timeout=10)]
    deltas = [e.message.text for e in events if e.type == "delta" and e.message is not None]
    assert deltas == ["echo: ", "one ", "two ", "three "]  # chunk by chunk, as the agent sent them
    states = [e.data["state"] for e in events if e.type == "status"]
    assert states == ["submitted", "working", "completed"]
    data = [e.data for e in events if e.type == "data"]
    assert data[0]["headers"]["x-session-id"] == "s-a2"


async def test_failed_task_is_a_permanent_error(gateway_factory: GatewayFactory, a2a_server: ServerProcess) -> None:
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            with pytest.raises(ClientError) as unary:
                await client.invoke("echo", "fail please", timeout=10)
            seen: list[Event] = []
            with pytest.raises(ClientError) as streamed:
                async for event in client.stream("echo03", "fail again", timeout=10):
                    seen.append(event)
    for error in (unary.value, streamed.value):
        assert error.code == StatusCode.UNKNOWN
        assert not error.transient
        assert "the A2A task ended failed: cannot do that" in error.message
    assert [e.data["state"] for e in seen if e.type == "status"] == ["submitted", "working"]


async def test_abandoned_stream_cancels_the_task(gateway_factory: GatewayFactory, a2a_server: ServerProcess) -> None:
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            task_id = await abandon_mid_task(client, "echo")
        assert task_id

        async def task_state() -> str:
            reply = await rpc(a2a_server.url, "GetTask", {"id": task_id})
            state: str = reply["result"]["status"]["state"]
            return state

        # The gateway told the agent: the task ends CANCELED well before its 30 s of work.
        state = await state_after(task_state, "TASK_STATE_CANCELED")
    assert state == "TASK_STATE_CANCELED"


async def test_structured_input_travels_as_a_data_part(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            result = await client.invoke("echo", "structured", session_id="s-a3", timeout=10)
    assert result.messages[0].text == "echo: structured "
    assert isinstance(result.messages[1].parts[0], DataPart)
    assert result.metadata["a2a_context_id"] == str(uuid.uuid5(CONTEXT_NAMESPACE, "echo:s-a3"))


async def test_a_task_left_working_after_its_stream_is_followed_to_its_end(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    """An agent whose stream (and blocking answer) ends with the task still working, finishing it
    in the background: the gateway follows the task with GetTask on both paths, so it reports the
    end the agent reached, never a completion the agent did not say (the stream used to)."""
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream("echo", "later please", timeout=10)]
            result = await client.invoke("echo", "later again", timeout=10)
    states = [e.data["state"] for e in events if e.type == "status"]
    assert states[-1] == "completed" and "working" in states
    assert "done later" in "".join(e.message.text for e in events if e.type == "delta" and e.message is not None)
    assert result.metadata["a2a_state"] == "completed"
    assert "done later" in "".join(m.text for m in result.messages)
