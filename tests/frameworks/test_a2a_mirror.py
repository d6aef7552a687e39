"""A blocking SendMessage through the gateway answers what the A2A agent's own blocking call answers.

The agent is the real a2a-sdk server (``tests/frameworks/a2a/server.py``): ``hold N`` makes its
executor return with the task still working (a2a-sdk then answers a blocking call with the task
WORKING) and completes the task N seconds later, unless it is cancelled first. The gateway's task
mirrors the agent's: answered WORKING, then followed to the agent's end; a CancelTask reaches the
agent. With ``mirror_blocking: false`` the gateway waits for the task to end, as before.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from gateway.adapters.a2a import CONTEXT_NAMESPACE
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.abandoned_task import state_after

pytestmark = pytest.mark.frameworks


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  echo:
    kind: a2a
    endpoint: {url}
  settled:
    kind: a2a
    endpoint: {url}
    options: {{mirror_blocking: false}}
"""


async def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers={"a2a-version": "1.0"}
        ) as response:
            reply: dict[str, Any] = await response.json()
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


def send_params(text: str, context_id: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "ROLE_USER", "messageId": uuid.uuid4().hex, "parts": [{"text": text}]}
    if context_id:
        message["contextId"] = context_id
    return {"message": message}


async def upstream_task(agent_url: str, agent: str, context_id: str) -> dict[str, Any]:
    """The agent's own task for the gateway's conversation (the adapter derives its contextId)."""
    upstream_context = str(uuid.uuid5(CONTEXT_NAMESPACE, f"{agent}:{context_id}"))
    page = await rpc(f"{agent_url}/a2a/jsonrpc", "ListTasks", {"contextId": upstream_context, "includeArtifacts": True})
    assert len(page["tasks"]) == 1, page
    task: dict[str, Any] = page["tasks"][0]
    return task


def texts(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


async def test_a_task_the_agent_left_working_is_answered_working_then_followed_to_its_end(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    direct = await rpc(f"{a2a_server.url}/a2a/jsonrpc", "SendMessage", send_params("hold 2"))
    context_id = f"ctx-{uuid.uuid4().hex[:8]}"
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        front = f"http://{gw.addresses.http}/a2a/echo"
        answered = (await rpc(front, "SendMessage", send_params("hold 2", context_id)))["task"]
        working = await upstream_task(a2a_server.url, "echo", context_id)

        async def gateway_state() -> str:
            state: str = (await rpc(front, "GetTask", {"id": answered["id"]}))["status"]["state"]
            return state

        final_state = await state_after(gateway_state, "TASK_STATE_COMPLETED", seconds=10)
        final = await rpc(front, "GetTask", {"id": answered["id"]})
        listed = (await rpc(front, "ListTasks", {"contextId": context_id}))["tasks"]
    upstream = await upstream_task(a2a_server.url, "echo", context_id)
    # What the agent answers a direct blocking call is what the gateway answers.
    assert direct["task"]["status"]["state"] == answered["status"]["state"] == "TASK_STATE_WORKING"
    assert working["status"]["state"] == "TASK_STATE_WORKING"
    # Then the gateway's task reaches the end the agent reached, with what the agent made.
    assert final_state == upstream["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(final) == texts(upstream) == "done later"
    assert [t["status"]["state"] for t in listed] == ["TASK_STATE_COMPLETED"]


async def test_cancelling_the_mirrored_task_cancels_the_agents_task(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    context_id = f"ctx-{uuid.uuid4().hex[:8]}"
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        front = f"http://{gw.addresses.http}/a2a/echo"
        answered = (await rpc(front, "SendMessage", send_params("hold 30", context_id)))["task"]
        cancelled = await rpc(front, "CancelTask", {"id": answered["id"]})
        after = await rpc(front, "GetTask", {"id": answered["id"]})

        async def agent_state() -> str:
            state: str = (await upstream_task(a2a_server.url, "echo", context_id))["status"]["state"]
            return state

        # The agent was told, well before its 30 s were up.
        upstream_state = await state_after(agent_state, "TASK_STATE_CANCELED")
    assert answered["status"]["state"] == "TASK_STATE_WORKING"
    assert cancelled["status"]["state"] == after["status"]["state"] == "TASK_STATE_CANCELED"
    assert upstream_state == "TASK_STATE_CANCELED"


async def test_without_mirror_blocking_the_gateway_waits_for_the_end(
    gateway_factory: GatewayFactory, a2a_server: ServerProcess
) -> None:
    context_id = f"ctx-{uuid.uuid4().hex[:8]}"
    async with gateway_factory(gateway_yaml(a2a_server.url)) as gw:
        front = f"http://{gw.addresses.http}/a2a/settled"
        answered = (await rpc(front, "SendMessage", send_params("hold 1", context_id)))["task"]
    upstream = await upstream_task(a2a_server.url, "settled", context_id)
    assert answered["status"]["state"] == upstream["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(answered) == texts(upstream) == "done later"
