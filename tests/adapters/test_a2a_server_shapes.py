"""The A2A adapter against two wire shapes of real A2A servers (FastA2A, which serves Pydantic AI).

An in-process upstream answers as FastA2A does: ``SendMessage`` with the task
still submitted (it never blocks; the client polls ``GetTask``), and a stream
that sends the answer in chunks (``append``) and then the whole artifact again
under the same ``artifactId`` (``append`` false: a replacement). The framework
test (``tests/frameworks/test_a2a_peers.py``) tries the real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from a2a.types import a2a_pb2, a2a_pb2_grpc
from aiohttp import web

from agentgateway_client import AgentClient
from tests.conftest import GatewayFactory, Starter

TASK = {"id": "t-1", "contextId": "c-1"}


def task(state: str, artifacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {**TASK, "status": {"state": state}, **({"artifacts": artifacts} if artifacts else {})}


def non_blocking_agent(get_tasks: list[str]) -> web.Application:
    """Answers SendMessage submitted, GetTask working twice then completed; streams chunks then the whole."""
    states = iter(["TASK_STATE_WORKING", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"])

    async def card(request: web.Request) -> web.Response:
        url = f"http://{request.host}/"
        return web.json_response(
            {"name": "fasta2a-like", "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC"}]}
        )

    async def rpc(request: web.Request) -> web.StreamResponse:
        envelope = await request.json()
        reply = {"jsonrpc": "2.0", "id": envelope["id"]}
        if envelope["method"] == "SendMessage":
            return web.json_response({**reply, "result": {"task": task("TASK_STATE_SUBMITTED")}})
        if envelope["method"] == "GetTask":
            get_tasks.append(envelope["params"]["id"])
            state = next(states)
            artifacts = [{"artifactId": "a-1", "parts": [{"text": "all done"}]}] if "COMPLETED" in state else None
            return web.json_response({**reply, "result": task(state, artifacts)})
        assert envelope["method"] == "SendStreamingMessage"
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunks = [{"text": "one "}, {"text": "two"}]
        frames: list[dict[str, Any]] = [{"task": task("TASK_STATE_SUBMITTED")}]
        frames += [
            {
                "artifactUpdate": {
                    **TASK,
                    "taskId": "t-1",
                    "artifact": {"artifactId": "a-1", "parts": [c]},
                    "append": True,
                }
            }
            for c in chunks
        ]
        whole = {"artifactId": "a-1", "name": "result", "parts": [{"text": "one two"}]}
        frames.append({"artifactUpdate": {"taskId": "t-1", "contextId": "c-1", "artifact": whole, "append": False}})
        frames.append(
            {"statusUpdate": {"taskId": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_COMPLETED"}}}
        )
        for frame in frames:
            await response.write(b"data: " + json.dumps({**reply, "result": frame}).encode() + b"\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/.well-known/agent-card.json", card)
    app.router.add_post("/", rpc)
    return app


async def test_a_task_answered_submitted_is_polled_until_it_ends(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    polled: list[str] = []
    url = await serve_app(non_blocking_agent(polled))
    # The unary path (invoke_by_stream off; or an agent that does not stream).
    options = "options: {invoke_by_stream: false}"
    async with gateway_factory(f"agents:\n  peer: {{kind: a2a, endpoint: '{url}', {options}}}\n") as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            result = await client.invoke("peer", "hi", timeout=10)
    assert result.text == "all done"
    assert result.metadata["a2a_state"] == "completed"
    assert polled == ["t-1", "t-1", "t-1"]


async def test_a_replaced_artifact_yields_only_what_its_chunks_had_not(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    url = await serve_app(non_blocking_agent([]))
    async with gateway_factory(f"agents:\n  peer: {{kind: a2a, endpoint: '{url}'}}\n") as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            events = [e async for e in client.stream("peer", "hi", timeout=10)]
    assert [e.message.text for e in events if e.type == "delta" and e.message is not None] == ["one ", "two"]


class NonBlockingGrpcAgent(a2a_pb2_grpc.A2AServiceServicer):  # type: ignore[misc]
    """SendMessage answers the task submitted; GetTask answers it working, then completed."""

    def __init__(self) -> None:
        self.gets: list[tuple[str, str]] = []

    async def SendMessage(self, request: Any, context: Any) -> Any:
        task = a2a_pb2.Task(id="t-1", context_id="c-1")
        task.status.state = a2a_pb2.TASK_STATE_SUBMITTED
        return a2a_pb2.SendMessageResponse(task=task)

    async def GetTask(self, request: Any, context: Any) -> Any:
        self.gets.append((request.id, request.tenant))
        task = a2a_pb2.Task(id=request.id, context_id="c-1")
        if len(self.gets) < 2:
            task.status.state = a2a_pb2.TASK_STATE_WORKING
            return task
        task.status.state = a2a_pb2.TASK_STATE_COMPLETED
        task.artifacts.add(artifact_id="a-1").parts.add(text="done over grpc")
        return task


@pytest.fixture
async def grpc_agent() -> AsyncIterator[tuple[str, NonBlockingGrpcAgent]]:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    agent = NonBlockingGrpcAgent()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(agent, server)  # type: ignore[no-untyped-call]
    await server.start()
    yield f"127.0.0.1:{port}", agent
    await server.stop(None)


async def test_a_grpc_task_answered_submitted_is_polled_too(
    gateway_factory: GatewayFactory, grpc_agent: tuple[str, NonBlockingGrpcAgent]
) -> None:
    target, agent = grpc_agent
    options = f"{{binding: GRPC, grpc_target: '{target}', grpc_tenant: t}}"
    async with gateway_factory(
        f"agents:\n  peer: {{kind: a2a, endpoint: 'http://{target}', options: {options}}}\n"
    ) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            result = await client.invoke("peer", "hi", timeout=10)
    assert result.text == "done over grpc"
    assert agent.gets == [("t-1", "t"), ("t-1", "t")]
