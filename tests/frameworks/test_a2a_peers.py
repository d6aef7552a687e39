"""The A2A adapter and front against the A2A servers of two frameworks that serve A2A natively.

* Pydantic AI: ``tests/frameworks/pydantic_ai/agent_app.py``, FastA2A's
  ``agent_to_a2a`` (Pydantic AI 2's ``Agent.to_a2a()``) with a ``FunctionModel``,
  in ``.venvs/pydantic_ai``;
* Google ADK: ``tests/frameworks/adk/agent_app.py``, ADK's ``to_a2a()`` with a
  scripted ``BaseLlm``, in ``.venvs/adk``.

Each is configured as ``kind: a2a`` and its endpoint, nothing more. Pydantic AI's
server is not cancellable (FastA2A's worker runs one task at a time and its
``cancel_task`` does nothing), so only ADK is tried for cancellation.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import httpx
import pytest
from a2a.client import ClientCallContext, ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import CancelTaskRequest, Role, SendMessageConfiguration, SendMessageRequest
from google.protobuf.json_format import MessageToDict

from agentgateway_client import AgentClient, ClientError, DataPart, Event, StatusCode
from gateway.adapters.a2a import CONTEXT_NAMESPACE
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.frameworks import framework_server

pytestmark = pytest.mark.frameworks

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# Every JSON type, nested (the Pydantic AI agent answers ``json`` with it; the ADK agent echoes data parts).
READING: dict[str, Any] = {
    "count": 3,
    "ratio": 0.25,
    "ok": True,
    "none": None,
    "tags": ["a", "b"],
    "nested": {"x": [1, {"y": "z"}]},
}


def words(text: str) -> list[str]:
    return ["echo: ", *[f"{w} " for w in text.split()]]


@dataclass(frozen=True)
class Peer:
    """One framework's A2A server and what it answers."""

    framework: str
    fixture: str
    deltas: Callable[[str], list[str]]  # the stream's text deltas for an echo
    failure: str  # what a failed task's error says

    def echo(self, text: str) -> str:
        return "".join(self.deltas(text))


PEERS = {
    # FastA2A streams each model chunk, then the whole artifact again (the adapter yields only the chunks).
    "pydantic_ai": Peer("pydantic_ai", "pydantic_ai_server", words, "the A2A task ended failed"),
    # ADK (no model streaming over A2A) sends the answer as one artifact; a failed task carries the error.
    "adk": Peer("adk", "adk_server", lambda text: [f"echo: {text}"], "the A2A task ended failed: cannot do that"),
}


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest) -> tuple[Peer, ServerProcess]:
    spec = PEERS[request.param]
    return spec, request.getfixturevalue(spec.fixture)


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  peer:
    kind: a2a
    endpoint: {url}
"""


async def upstream_rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC call straight to the framework's server (the card's URL is the endpoint's root)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"a2a-version": "1.0"},
        ) as response:
            reply: dict[str, Any] = await response.json()
            return reply


async def test_http_front_invoke_carries_context_and_trace(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]
) -> None:
    spec, server = peer
    session = f"sess-{uuid.uuid4().hex[:8]}"
    async with gateway_factory(gateway_yaml(server.url)) as gw, aiohttp.ClientSession() as http:
        url = f"http://{gw.addresses.http}/v1/agents/peer/invoke"
        replies = []
        for text in ("hello peers", "trace please"):
            body = {"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}], "context": {"sessionId": session}}
            async with http.post(url, json=body, headers={"traceparent": INBOUND_TRACEPARENT}) as response:
                assert response.status == 200, await response.text()
                replies.append(await response.json())
    echo, traced = replies
    assert "".join(p["text"] for m in echo["messages"] for p in m["parts"]) == spec.echo("hello peers")
    assert echo["metadata"]["a2a_state"] == "completed"
    # The session is the A2A conversation: the framework kept the contextId the gateway derived from it.
    assert echo["metadata"]["a2a_context_id"] == str(uuid.uuid5(CONTEXT_NAMESPACE, f"peer:{session}"))
    # The agent's own tool saw the caller's trace (through the gateway's traceparent).
    assert "".join(p["text"] for m in traced["messages"] for p in m["parts"]) == f"trace: {TRACE_ID}"


async def test_grpc_front_stream_relays_the_chunks_once(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]
) -> None:
    spec, server = peer
    async with gateway_factory(gateway_yaml(server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream("peer", "one two three", session_id="s-stream", timeout=20)]
    deltas = [e.message.text for e in events if e.type == "delta" and e.message is not None]
    assert deltas == spec.deltas("one two three")
    states = [e.data["state"] for e in events if e.type == "status"]
    assert states[0] == "submitted" and states[-1] == "completed"
    assert set(states[1:-1]) == {"working"}
    assert {e.data["context_id"] for e in events if e.type == "status"} == {
        str(uuid.uuid5(CONTEXT_NAMESPACE, "peer:s-stream"))
    }


async def test_http_front_stream(gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]) -> None:
    spec, server = peer
    async with gateway_factory(gateway_yaml(server.url)) as gw, aiohttp.ClientSession() as http:
        async with http.post(
            f"http://{gw.addresses.http}/v1/agents/peer/stream",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": "via sse"}]}]},
        ) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
    frames = [json.loads(f.split("data: ", 1)[1]) for f in raw.split("\n\n") if f.strip()]
    assert "result" in frames[-1], frames[-1]
    deltas = [f["event"]["message"]["parts"][0]["text"] for f in frames[:-1] if f["event"]["type"] == "delta"]
    assert deltas == spec.deltas("via sse")
    texts = [p["text"] for m in frames[-1]["result"]["messages"] for p in m["parts"] if "text" in p]
    assert "".join(texts) == spec.echo("via sse")


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON", "GRPC"])
async def test_a2a_front_with_the_sdk_client(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess], binding: str, streaming: bool
) -> None:
    spec, server = peer
    context_id = f"ctx-{uuid.uuid4().hex[:8]}"
    # The caller's trace context, as headers or gRPC metadata (the binding's service parameters).
    traced = ClientCallContext(service_parameters={"traceparent": INBOUND_TRACEPARENT})
    async with gateway_factory(gateway_yaml(server.url)) as gw, httpx.AsyncClient(timeout=20) as http:
        config = ClientConfig(
            streaming=streaming,
            httpx_client=http,
            supported_protocol_bindings=[binding],
            grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url.split("://", 1)[-1]),
        )
        client = await create_client(f"http://{gw.addresses.http}/a2a/peer", client_config=config)
        answers = []
        for text in ("hello front", "turns one", "turns two", "trace it"):
            message = new_text_message(text, role=Role.ROLE_USER)
            message.context_id = context_id
            request = SendMessageRequest(message=message)
            frames = [MessageToDict(f) async for f in client.send_message(request, context=traced)]
            answers.append(frames)
        await client.close()
    texts = [_texts(frames) for frames in answers]
    assert texts[0] == spec.echo("hello front")
    # One A2A conversation through the gateway is one conversation at the framework.
    assert texts[1:3] == ["turn 2: hello front | turns one", "turn 3: hello front | turns one | turns two"]
    assert texts[3] == f"trace: {TRACE_ID}"
    for frames in answers:
        final = frames[-1].get("task") or frames[-1].get("statusUpdate")
        assert final is not None and final["status"]["state"] == "TASK_STATE_COMPLETED"
        assert final["contextId"] == context_id


def _texts(frames: list[dict[str, Any]]) -> str:
    """The answer's text from SendMessage's task or the stream's artifact updates."""
    if "task" in frames[-1]:
        return "".join(p.get("text", "") for a in frames[-1]["task"].get("artifacts", []) for p in a["parts"])
    return "".join(
        p.get("text", "") for f in frames if "artifactUpdate" in f for p in f["artifactUpdate"]["artifact"]["parts"]
    )


async def test_multi_turn_follows_the_session(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]
) -> None:
    _, server = peer
    session = f"s-{uuid.uuid4().hex[:8]}"
    async with gateway_factory(gateway_yaml(server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            first = await client.invoke("peer", "turns one", session_id=session, timeout=20)
            second = await client.invoke("peer", "turns two", session_id=session, timeout=20)
            other = await client.invoke("peer", "turns elsewhere", session_id=session + "-other", timeout=20)
    assert (first.text, second.text) == ("turn 1: turns one", "turn 2: turns one | turns two")
    assert other.text == "turn 1: turns elsewhere"


async def test_failing_agent_is_a_permanent_error(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]
) -> None:
    spec, server = peer
    async with gateway_factory(gateway_yaml(server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            with pytest.raises(ClientError) as unary:
                await client.invoke("peer", "fail please", timeout=20)
            seen: list[Event] = []
            with pytest.raises(ClientError) as streamed:
                async for event in client.stream("peer", "fail again", timeout=20):
                    seen.append(event)
    for error in (unary.value, streamed.value):
        assert error.code == StatusCode.UNKNOWN
        assert not error.transient
        assert spec.failure in error.message
    assert next(e.data["state"] for e in seen if e.type == "status") == "submitted"


@pytest.mark.parametrize("streaming", [False, True])
async def test_failing_agent_fails_the_a2a_task(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess], streaming: bool
) -> None:
    spec, server = peer
    async with gateway_factory(gateway_yaml(server.url)) as gw, httpx.AsyncClient(timeout=20) as http:
        config = ClientConfig(streaming=streaming, httpx_client=http)
        client = await create_client(f"http://{gw.addresses.http}/a2a/peer", client_config=config)
        request = SendMessageRequest(message=new_text_message("fail through the front", role=Role.ROLE_USER))
        frames = [MessageToDict(f) async for f in client.send_message(request)]
        await client.close()
    final = frames[-1].get("task") or frames[-1]["statusUpdate"]
    assert final["status"]["state"] == "TASK_STATE_FAILED"
    assert spec.failure in final["status"]["message"]["parts"][0]["text"]


async def test_killed_server_is_unavailable(
    gateway_factory: GatewayFactory,
    peer: tuple[Peer, ServerProcess],
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    spec, _ = peer
    server = framework_server(f"{spec.framework}-killable", pytestconfig, tmp_path_factory)
    try:
        async with gateway_factory(gateway_yaml(server.url)) as gw:
            assert gw.addresses.grpc is not None
            async with AgentClient(gw.addresses.grpc) as client:
                alive = await client.invoke("peer", "still there", timeout=20)
                server.stop(grace=1)
                with pytest.raises(ClientError) as info:
                    await client.invoke("peer", "and now", timeout=20)
    finally:
        server.stop(grace=1)
    assert alive.text == spec.echo("still there")
    assert info.value.code == StatusCode.UNAVAILABLE
    assert info.value.transient


async def test_pydantic_ai_unary_send_is_polled_until_the_task_ends(
    gateway_factory: GatewayFactory, pydantic_ai_server: ServerProcess
) -> None:
    # FastA2A answers SendMessage with the task still submitted: the unary path polls GetTask.
    yaml_text = gateway_yaml(pydantic_ai_server.url) + "    options: {invoke_by_stream: false}\n"
    async with gateway_factory(yaml_text) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            result = await client.invoke("peer", "asked plainly", timeout=20)
            failed = await asyncio.gather(client.invoke("peer", "fail plainly", timeout=20), return_exceptions=True)
    assert result.text == "echo: asked plainly "
    assert result.metadata["a2a_state"] == "completed"
    assert isinstance(failed[0], ClientError) and "the A2A task ended failed" in failed[0].message


async def test_pydantic_ai_structured_output_is_an_exact_data_part(
    gateway_factory: GatewayFactory, pydantic_ai_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(pydantic_ai_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            result = await client.invoke("peer", "json", timeout=20)
            streamed = [e.data async for e in client.stream("peer", "json", timeout=20) if e.type == "data"]
    part = result.messages[0].parts[0]
    assert isinstance(part, DataPart)
    expected = {"result": {"values": READING}}
    # Exact: integers stay integers, key order and null kept.
    assert json.dumps(part.data) == json.dumps(expected)
    assert [json.dumps(d) for d in streamed] == [json.dumps(expected)]


async def test_adk_data_parts_travel_exactly(gateway_factory: GatewayFactory, adk_server: ServerProcess) -> None:
    message = {"role": "ROLE_USER", "parts": [{"text": "json"}, {"data": READING}]}
    direct = await upstream_rpc(adk_server.url, "SendMessage", {"message": {**message, "messageId": "m-direct"}})
    direct_data = direct["result"]["task"]["artifacts"][0]["parts"][0]["data"]
    async with gateway_factory(gateway_yaml(adk_server.url)) as gw, aiohttp.ClientSession() as http:
        async with http.post(
            f"http://{gw.addresses.http}/v1/agents/peer/invoke", json={"messages": [message]}
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    data = body["messages"][0]["parts"][0]["data"]
    # What ADK answered, exactly (ADK's protobuf Struct writes every number as a double: 3 comes back 3.0).
    assert json.dumps(data, sort_keys=True) == json.dumps(direct_data, sort_keys=True)
    assert data == READING


async def test_adk_abandoned_stream_cancels_the_task(
    gateway_factory: GatewayFactory, adk_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(adk_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            task_id = ""
            async for event in client.stream("peer", "slow please", timeout=40):
                if event.type == "status" and event.data["state"] == "working":
                    task_id = event.data["task_id"]
                    break  # the caller goes away while the model works
        assert task_id
        # The gateway told ADK: the task ends CANCELED well before the model's 30 s.
        state = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and state != "TASK_STATE_CANCELED":
            reply = await upstream_rpc(adk_server.url, "GetTask", {"id": task_id})
            state = reply["result"]["status"]["state"]
            await asyncio.sleep(0.1)
    assert state == "TASK_STATE_CANCELED"


@pytest.mark.parametrize("streaming", [False, True])
async def test_adk_task_cancelled_through_the_a2a_front(
    gateway_factory: GatewayFactory, adk_server: ServerProcess, streaming: bool
) -> None:
    context_id = f"ctx-{uuid.uuid4().hex[:8]}"
    upstream_context = str(uuid.uuid5(CONTEXT_NAMESPACE, f"peer:{context_id}"))
    async with gateway_factory(gateway_yaml(adk_server.url)) as gw, httpx.AsyncClient(timeout=20) as http:
        config = ClientConfig(streaming=streaming, httpx_client=http)
        client = await create_client(f"http://{gw.addresses.http}/a2a/peer", client_config=config)
        message = new_text_message("slow please", role=Role.ROLE_USER)
        message.context_id = context_id
        request = SendMessageRequest(message=message, configuration=SendMessageConfiguration(return_immediately=True))
        async for frame in client.send_message(request):
            task_id = MessageToDict(frame)["task"]["id"]
            break  # the task is the stream's first frame (and the whole answer when unary)
        # Either way the gateway runs the turn as a stream to ADK (the adapter's invoke_by_stream),
        # so the upstream task's id is known and a CancelTask reaches it.
        # Wait until ADK has the task (the gateway's run reached it), then cancel through the front.
        upstream: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not upstream:
            listed = await upstream_rpc(adk_server.url, "ListTasks", {"contextId": upstream_context})
            upstream = listed["result"].get("tasks", [])
            await asyncio.sleep(0.1)
        assert upstream, "the task never reached ADK"
        cancelled = MessageToDict(await client.cancel_task(CancelTaskRequest(id=task_id)))
        await client.close()
        state = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and state != "TASK_STATE_CANCELED":
            reply = await upstream_rpc(adk_server.url, "GetTask", {"id": upstream[0]["id"]})
            state = reply["result"]["status"]["state"]
            await asyncio.sleep(0.1)
    assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
    # The front's CancelTask reached ADK (the adapter's CancelTask), well before the model's 30 s.
    assert state == "TASK_STATE_CANCELED"


async def test_the_0_3_protocol_and_the_grpc_front_trace(
    gateway_factory: GatewayFactory, peer: tuple[Peer, ServerProcess]
) -> None:
    spec, server = peer
    yaml_text = gateway_yaml(server.url) + '    options: {protocol_version: "0.3"}\n'
    async with gateway_factory(yaml_text) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc, inbound={"traceparent": INBOUND_TRACEPARENT}) as client:
            result = await client.invoke("peer", "old names", session_id="s-03", timeout=20)
            events = [e async for e in client.stream("peer", "old stream", timeout=20)]
            traced = await client.invoke("peer", "trace old", timeout=20)
    assert result.text == spec.echo("old names")
    assert result.metadata["a2a_context_id"] == str(uuid.uuid5(CONTEXT_NAMESPACE, "peer:s-03"))
    assert [e.message.text for e in events if e.type == "delta" and e.message is not None] == spec.deltas("old stream")
    assert [e.data["state"] for e in events if e.type == "status"][-1] == "completed"
    assert traced.text == f"trace: {TRACE_ID}"


async def test_pydantic_ai_data_part_through_the_a2a_front_is_exact(
    gateway_factory: GatewayFactory, pydantic_ai_server: ServerProcess
) -> None:
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"role": "ROLE_USER", "messageId": "m-json", "parts": [{"text": "json"}]}},
    }
    async with gateway_factory(gateway_yaml(pydantic_ai_server.url)) as gw, aiohttp.ClientSession() as http:
        async with http.post(
            f"http://{gw.addresses.http}/a2a/peer", json=send, headers={"a2a-version": "1.0"}
        ) as response:
            raw = await response.text()
    task = json.loads(raw)["result"]["task"]
    parts = [p for a in task["artifacts"] for p in a["parts"] if "data" in p]
    # Integers stay integers on the way through the gateway's A2A JSON (no protobuf Struct in between).
    assert [json.dumps(p["data"]) for p in parts] == [json.dumps({"result": {"values": READING}})]
