"""Binding translation: A2A clients of the gateway's JSON-RPC front reach a gRPC-only a2a-sdk
agent (lf.a2a.v1.A2AService served by the SDK's own GrpcHandler), chosen by config or by card."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler, GrpcHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Role,
    SendMessageRequest,
    a2a_pb2,
    a2a_pb2_grpc,
)
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from tests.conftest import GatewayFactory, Starter
from tests.frameworks.a2a.server import ScriptedExecutor


@pytest.fixture
async def grpc_agent() -> AsyncIterator[str]:
    """A gRPC-only A2A agent; yields its target (host:port)."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    target = f"127.0.0.1:{port}"
    card = AgentCard(
        name="grpc-only",
        description="Echoes over gRPC only",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=target, protocol_binding="GRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echoes", tags=["test"])],
    )
    store = InMemoryTaskStore()
    handler = DefaultRequestHandler(agent_executor=ScriptedExecutor(store), task_store=store, agent_card=card)
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)  # type: ignore[no-untyped-call]
    await server.start()
    yield target
    await server.stop(None)


async def _ask(gateway_http: str, agent: str, text: str, streaming: bool) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=20) as http:
        client = await create_client(
            f"http://{gateway_http}/a2a/{agent}",
            client_config=ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=["JSONRPC"]),
        )
        request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
        frames = [MessageToDict(f) async for f in client.send_message(request)]
        await client.close()
    return frames


def _texts(frames: list[dict[str, Any]]) -> str:
    out = []
    for frame in frames:
        artifacts = frame.get("task", {}).get("artifacts", [])
        if "artifactUpdate" in frame:
            artifacts = [frame["artifactUpdate"]["artifact"]]
        out += [p["text"] for a in artifacts for p in a.get("parts", []) if "text" in p]
    return "".join(out)


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_jsonrpc_client_reaches_a_grpc_only_agent(
    gateway_factory: GatewayFactory, grpc_agent: str, streaming: bool
) -> None:
    yaml = (
        "agents:\n"
        f"  remote: {{kind: a2a, endpoint: 'http://{grpc_agent}', options: {{binding: GRPC, grpc_target: '{grpc_agent}'}}}}\n"
    )
    async with gateway_factory(yaml) as gw:
        frames = await _ask(gw.addresses.http, "remote", "hello over grpc", streaming)
    assert _texts(frames).startswith("echo: hello over grpc")
    final = frames[-1].get("task") or frames[-1].get("statusUpdate")
    assert final["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_the_card_chooses_grpc_when_it_offers_nothing_else(
    gateway_factory: GatewayFactory, grpc_agent: str, serve_app: Starter
) -> None:
    port = grpc_agent.rpartition(":")[2]

    async def card(request: web.Request) -> web.Response:
        return web.json_response({"name": "grpc-only", "supportedInterfaces": [
            {"url": f"evil.example:{port}", "protocolBinding": "GRPC", "protocolVersion": "1.0", "tenant": ""}]})

    app = web.Application()
    app.router.add_get("/.well-known/agent-card.json", card)
    card_url = await serve_app(app)
    # The card names another host: without follow_card_url its port is called on the endpoint's host.
    async with gateway_factory(f"agents:\n  remote: {{kind: a2a, endpoint: '{card_url}'}}\n") as gw:
        frames = await _ask(gw.addresses.http, "remote", "picked by card", False)
    assert _texts(frames).startswith("echo: picked by card")


@pytest.mark.parametrize("method", ["SendStreamingMessage", "SendMessage"])
async def test_cancel_reaches_the_grpc_agent(gateway_factory: GatewayFactory, grpc_agent: str, method: str) -> None:
    yaml = (
        "agents:\n"
        f"  remote: {{kind: a2a, endpoint: 'http://{grpc_agent}', options: {{binding: GRPC, grpc_target: '{grpc_agent}'}}}}\n"
    )
    async with gateway_factory(yaml) as gw, httpx.AsyncClient(timeout=20) as http:
        rpc = f"http://{gw.addresses.http}/a2a/remote"
        headers = {"a2a-version": "1.0"}
        message = {"role": "ROLE_USER", "messageId": "m-slow", "parts": [{"text": "slow please"}]}
        if method == "SendMessage":
            # A unary turn (returnImmediately): the adapter follows it as a stream, so it knows the upstream task.
            send = {"jsonrpc": "2.0", "id": 1, "method": method,
                    "params": {"message": message, "configuration": {"returnImmediately": True}}}
            task_id = (await http.post(rpc, json=send, headers=headers)).json()["result"]["task"]["id"]
            await asyncio.sleep(0.5)
        else:
            task_id = await _stream_until_first_chunk(http, rpc, {"message": message})
        cancel = {"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task_id}}
        cancelled = (await http.post(rpc, json=cancel, headers=headers)).json()["result"]
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
    # The cancel reached the upstream the A2A way: its own task is cancelled too (CancelTask over gRPC).
    async with grpc.aio.insecure_channel(grpc_agent) as channel:
        stub = a2a_pb2_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
        states: list[int] = []
        for _ in range(100):
            listed = await stub.ListTasks(a2a_pb2.ListTasksRequest())
            states = [t.status.state for t in listed.tasks]
            if states == [a2a_pb2.TASK_STATE_CANCELED]:
                break
            await asyncio.sleep(0.05)
        assert states == [a2a_pb2.TASK_STATE_CANCELED]


async def _stream_until_first_chunk(http: httpx.AsyncClient, rpc: str, params: dict[str, Any]) -> str:
    """SendStreamingMessage, left after the first artifact chunk (the task goes on); its task id."""
    send = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": params}
    task_id = ""
    async with http.stream("POST", rpc, json=send, headers={"a2a-version": "1.0"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                frame = json.loads(line[6:])["result"]
                task_id = task_id or frame.get("task", {}).get("id", "")
                if "artifactUpdate" in frame:
                    break
    return task_id


class BookingExecutor(AgentExecutor):
    """Asks for a date when told to book; books on the answer. Records the contexts it saw."""

    def __init__(self) -> None:
        self.contexts: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        self.contexts.append(task.context_id)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = context.get_user_input()
        if text.startswith("book"):
            await updater.requires_input(new_text_message("which day?", role=Role.ROLE_AGENT))
            return
        await updater.add_artifact([new_text_part(f"booked for {text}")], artifact_id="booking")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
async def test_multi_turn_continues_a_task_waiting_for_input(gateway_factory: GatewayFactory, method: str) -> None:
    executor = BookingExecutor()
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    card = AgentCard(name="booking", description="books", version="1.0.0",
                     capabilities=AgentCapabilities(streaming=True))
    handler = DefaultRequestHandler(agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card)
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)  # type: ignore[no-untyped-call]
    await server.start()
    target = f"127.0.0.1:{port}"
    yaml = f"agents:\n  booking: {{kind: a2a, endpoint: 'http://{target}', options: {{binding: GRPC, grpc_target: '{target}'}}}}\n"
    try:
        async with gateway_factory(yaml) as gw, httpx.AsyncClient(timeout=20) as http:
            rpc, headers = f"http://{gw.addresses.http}/a2a/booking", {"a2a-version": "1.0"}

            async def send(text: str, task_id: str = "") -> dict[str, Any]:
                message: dict[str, Any] = {"role": "ROLE_USER", "messageId": text, "parts": [{"text": text}]}
                if task_id:
                    message["taskId"] = task_id
                body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
                if method == "SendMessage":
                    return (await http.post(rpc, json=body, headers=headers)).json()["result"]["task"]
                async with http.stream("POST", rpc, json=body, headers=headers) as response:
                    frames = [json.loads(line[6:]) async for line in response.aiter_lines() if line.startswith("data: ")]
                task_id = frames[0]["result"]["task"]["id"]
                get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
                return (await http.post(rpc, json=get, headers=headers)).json()["result"]

            first = await send("book a table")
            assert first["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert first["status"]["message"]["parts"][0]["text"].startswith("which day?")
            second = await send("friday", first["id"])
            assert second["id"] == first["id"] and second["status"]["state"] == "TASK_STATE_COMPLETED"
            assert [m["role"] for m in second["history"]] == ["ROLE_USER", "ROLE_AGENT", "ROLE_USER", "ROLE_AGENT"]
            assert second["history"][2]["parts"] == [{"text": "friday"}]
            assert "booked for friday" in json.dumps(second["artifacts"])
        # The upstream saw one conversation: the task's context, both turns.
        assert len(executor.contexts) == 2 and executor.contexts[0] == executor.contexts[1]
    finally:
        await server.stop(None)


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_jsonrpc_client_reaches_an_agent_over_http_json(
    gateway_factory: GatewayFactory, echo_url: str, streaming: bool
) -> None:
    """Gateway A's JSON-RPC front, A's adapter over HTTP+JSON (chosen from the card), gateway B's REST front."""
    async with gateway_factory(f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n") as b:
        yaml = f"agents:\n  far: {{kind: a2a, endpoint: 'http://{b.addresses.http}/a2a/echo', options: {{binding: HTTP+JSON}}}}\n"
        async with gateway_factory(yaml) as a:
            frames = await _ask(a.addresses.http, "far", "across bindings", streaming)
            adapter: Any = a.gateway.plan.upstreams["far"].adapter
            assert adapter._rpc_url == f"http://{b.addresses.http}/a2a/echo/rest"  # the card's HTTP+JSON interface
            # B saw the call on its REST binding: its task is listed there.
            async with httpx.AsyncClient(timeout=10) as http:
                listed = (await http.get(f"http://{b.addresses.http}/a2a/echo/rest/tasks",
                                         headers={"a2a-version": "1.0"})).json()
    assert "echo: across bindings" in _texts(frames)
    assert listed["totalSize"] == 1

