"""Routed agents exposed as A2A agents, called with the official a2a-sdk client."""

from __future__ import annotations

import aiohttp
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from google.protobuf.json_format import MessageToDict

from tests.conftest import GatewayFactory


def yaml_for(echo_url: str) -> str:
    return (f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n    description: Echo agent\n"
            "  down:\n    kind: http\n    endpoint: http://127.0.0.1:1\n")


@pytest.mark.parametrize("streaming", [False, True])
async def test_a2a_sdk_client_reaches_a_routed_agent(
    gateway_factory: GatewayFactory, echo_url: str, streaming: bool
) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, httpx.AsyncClient(timeout=10) as http:
        client = await create_client(f"http://{gw.addresses.http}/a2a/echo",
                                     client_config=ClientConfig(streaming=streaming, httpx_client=http))
        request = SendMessageRequest(message=new_text_message("hello a2a", role=Role.ROLE_USER))
        frames = [MessageToDict(frame) async for frame in client.send_message(request)]
    texts = [p["text"] for f in frames for key in ("task", "artifactUpdate")
             for a in ([f[key]["artifact"]] if key == "artifactUpdate" and key in f
                       else f.get(key, {}).get("artifacts", []))
             for p in a.get("parts", []) if "text" in p]
    assert "".join(texts).startswith("echo: hello a2a")
    states = [f["statusUpdate"]["status"]["state"] for f in frames if "statusUpdate" in f]
    if streaming:
        assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    else:
        assert frames[-1]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_agent_card_and_v03_jsonrpc(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/a2a"
        async with session.get(f"{base}/echo/.well-known/agent-card.json") as response:
            card = await response.json()
        assert card["name"] == "echo"
        assert card["supportedInterfaces"][0] == {"url": f"{base}/echo", "protocolBinding": "JSONRPC",
                                                  "protocolVersion": "1.0"}
        send = {"jsonrpc": "2.0", "id": "r1", "method": "message/send",
                "params": {"message": {"kind": "message", "role": "user", "messageId": "m1", "contextId": "ctx-9",
                                       "parts": [{"kind": "text", "text": "old style"}]}}}
        async with session.post(f"{base}/echo", json=send) as response:
            reply = await response.json()
        task = reply["result"]
        assert (task["kind"], task["status"]["state"], task["contextId"]) == ("task", "completed", "ctx-9")
        assert task["artifacts"][0]["parts"][0] == {"kind": "text", "text": "echo: old style"}
        # The A2A contextId is the gateway session: the agent saw it as x-session-id.
        assert task["artifacts"][0]["parts"][1]["data"]["headers"]["x-session-id"] == "ctx-9"
        get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}
        async with session.post(f"{base}/echo", json=get) as response:
            assert (await response.json())["result"]["id"] == task["id"]


async def test_a2a_errors(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/a2a"
        headers = {"a2a-version": "1.0"}
        send = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                "params": {"message": {"role": "ROLE_USER", "messageId": "m", "parts": [{"text": "hi"}]}}}
        async with session.post(f"{base}/down", json=send, headers=headers) as response:
            task = (await response.json())["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_FAILED"
        assert "cannot connect" in task["status"]["message"]["parts"][0]["text"]
        for payload, code in [({"jsonrpc": "2.0", "id": 1, "method": "Nope"}, -32601),
                              ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}, -32602),
                              ({"id": 1}, -32600)]:
            async with session.post(f"{base}/echo", json=payload, headers=headers) as response:
                assert (await response.json())["error"]["code"] == code
        async with session.post(f"{base}/echo", data=b"{nope", headers=headers) as response:
            assert (await response.json())["error"]["code"] == -32700
        async with session.get(f"{base}/ghost/.well-known/agent-card.json") as response:
            assert response.status == 404
