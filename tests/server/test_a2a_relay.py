"""A2A streams go through the one relay (gateway/server/relay.py): the listener's stream bounds,
keep-alives while the agent is quiet, and ``cancel_on_disconnect``, on every binding.

The agent is a fault-injecting upstream trickling SSE events, so the tests see from its side
whether the gateway let go of the call (``abandoned``) or read it to its end (``replies_done``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import grpc
import pytest
from a2a.types import a2a_pb2, a2a_pb2_grpc

from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory
from tests.helpers.fault_upstream import FaultUpstream, Reply

V1 = {"a2a-version": "1.0"}
MESSAGE = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "go"}]}


def trickling(count: int, pause: float) -> Reply:
    """``count`` delta events, one every ``pause`` seconds (the first at once)."""
    events = [
        f"data: {json.dumps({'type': 'delta', 'message': {'role': 'ROLE_AGENT', 'parts': [{'text': f'w{n:03d} '}]}})}\n\n"
        for n in range(count)
    ]
    body = "".join(events).encode()
    return Reply(
        body=body, headers={"content-type": "text/event-stream"}, chunked=True, trickle=(len(events[0]), pause)
    )


def yaml_for(url: str, listener: str, grpc_listener: str | None = None) -> str:
    grpc_listener = listener if grpc_listener is None else grpc_listener
    return (
        f"listeners:\n  http: {{address: '127.0.0.1:0', {listener}}}\n"
        f"  grpc: {{address: '127.0.0.1:0', {grpc_listener}}}\n"
        f"agents:\n  talker: {{kind: http, endpoint: '{url}'}}\nruns: {{poll_interval: 50ms}}\n"
    )


async def sse_frames(response: aiohttp.ClientResponse, until: int | None = None) -> list[str]:
    """Each frame's data, or the comment line for a comment; stops after ``until`` data frames."""
    frames: list[str] = []
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            frames.append(line)
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            frames.append("\n".join(data))
            data = []
            if until is not None and sum(not f.startswith(":") for f in frames) >= until:
                break
    return frames


def stream_url(gw: GatewayServer, binding: str) -> tuple[str, dict[str, Any]]:
    if binding == "jsonrpc":
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": MESSAGE}}
        return f"http://{gw.addresses.http}/a2a/talker", body
    return f"http://{gw.addresses.http}/a2a/talker/rest/message:stream", {"message": MESSAGE}


def payload(frame: str, binding: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(frame)
    return data if binding == "rest" else data.get("result") or data


async def until(condition: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the upstream never saw it"
        await asyncio.sleep(0.05)


async def task_state(session: aiohttp.ClientSession, gw: GatewayServer, task_id: str) -> str:
    get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
    async with session.post(f"http://{gw.addresses.http}/a2a/talker", json=get, headers=V1) as response:
        state: str = (await response.json())["result"]["status"]["state"]
    return state


@pytest.mark.parametrize("binding", ["jsonrpc", "rest"])
async def test_the_stream_bound_ends_an_over_long_a2a_stream(gateway_factory: GatewayFactory, binding: str) -> None:
    async with FaultUpstream(trickling(60, 0.05)) as upstream:
        async with gateway_factory(yaml_for(upstream.url, "stream_max_duration: 500ms")) as gw:
            url, body = stream_url(gw, binding)
            started = time.monotonic()
            async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=V1) as response:
                frames = [f for f in await sse_frames(response) if not f.startswith(":")]
            elapsed = time.monotonic() - started
            # The listener gave up on the agent's stream: its call was let go of.
            await until(lambda: upstream.abandoned == 1)
    assert any("artifactUpdate" in payload(f, binding) for f in frames)  # some chunks got through
    error = json.loads(frames[-1])["error"]
    assert "the stream ran longer than 0.5s" in error["message"]
    if binding == "rest":
        assert error["status"] == "DEADLINE_EXCEEDED"
    assert elapsed < 2.5  # not the agent's 3 s
    assert upstream.replies_done == 0


async def test_the_idle_bound_ends_a_quiet_a2a_grpc_stream(gateway_factory: GatewayFactory) -> None:
    async with FaultUpstream(trickling(3, 1.0)) as upstream:
        async with gateway_factory(yaml_for(upstream.url, "stream_idle_timeout: 200ms")) as gw:
            assert gw.addresses.grpc is not None
            async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
                stub = a2a_pb2_grpc.A2AServiceStub(channel)
                request = a2a_pb2.SendMessageRequest(
                    tenant="talker",
                    message=a2a_pb2.Message(message_id="m1", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text="go")]),
                )
                seen = []
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    async for response in stub.SendStreamingMessage(request, metadata=(("a2a-version", "1.0"),)):
                        seen.append(response.WhichOneof("payload"))
            await until(lambda: upstream.abandoned == 1)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no event from the agent for 0.2s" in (caught.value.details() or "")
    assert seen[:3] == ["task", "status_update", "artifact_update"]


@pytest.mark.parametrize("binding", ["jsonrpc", "rest"])
async def test_keepalives_flow_while_the_agent_is_quiet(gateway_factory: GatewayFactory, binding: str) -> None:
    async with FaultUpstream(trickling(2, 0.6)) as upstream:
        async with gateway_factory(yaml_for(upstream.url, "sse_keepalive: 100ms", "")) as gw:
            url, body = stream_url(gw, binding)
            async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=V1) as response:
                frames = await sse_frames(response)
    chunks = [i for i, f in enumerate(frames) if not f.startswith(":") and "artifactUpdate" in payload(f, binding)]
    assert len(chunks) == 2
    # Comments while the agent is silent between its two events, then the end.
    assert frames[chunks[0] + 1 : chunks[1]].count(": keep-alive") >= 3
    last = payload(frames[-1], binding)
    assert last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("cancels", [True, False])
async def test_a_caller_leaving_an_a2a_stream_cancels_its_task_or_not(
    gateway_factory: GatewayFactory, cancels: bool
) -> None:
    listener = f"cancel_on_disconnect: {str(cancels).lower()}"
    async with FaultUpstream(trickling(40, 0.05)) as upstream:
        async with gateway_factory(yaml_for(upstream.url, listener)) as gw, aiohttp.ClientSession() as session:
            url, body = stream_url(gw, "jsonrpc")
            async with session.post(url, json=body, headers=V1) as response:
                frames = await sse_frames(response, until=3)  # the task, working, the first chunk
                response.close()  # the caller goes away mid-stream
            task_id = payload(frames[0], "jsonrpc")["task"]["id"]
            if cancels:
                await until(lambda: upstream.abandoned == 1)
            else:
                # The task runs on: the agent's whole answer is read.
                await until(lambda: upstream.replies_done == 1)
            wanted = "TASK_STATE_CANCELED" if cancels else "TASK_STATE_COMPLETED"
            for _ in range(100):
                if (state := await task_state(session, gw, task_id)) == wanted:
                    break
                await asyncio.sleep(0.05)
            assert state == wanted
    assert upstream.abandoned == (1 if cancels else 0)
    assert upstream.replies_done == (0 if cancels else 1)


@pytest.mark.parametrize("cancels", [True, False])
async def test_a_caller_cancelling_an_a2a_grpc_stream_cancels_its_task_or_not(
    gateway_factory: GatewayFactory, cancels: bool
) -> None:
    listener = f"cancel_on_disconnect: {str(cancels).lower()}"
    async with FaultUpstream(trickling(40, 0.05)) as upstream:
        async with gateway_factory(yaml_for(upstream.url, listener)) as gw:
            assert gw.addresses.grpc is not None
            async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
                stub = a2a_pb2_grpc.A2AServiceStub(channel)
                request = a2a_pb2.SendMessageRequest(
                    tenant="talker",
                    message=a2a_pb2.Message(message_id="m1", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text="go")]),
                )
                call = stub.SendStreamingMessage(request, metadata=(("a2a-version", "1.0"),))
                async for response in call:
                    if response.WhichOneof("payload") == "artifact_update":
                        break
                call.cancel()
            if cancels:
                await until(lambda: upstream.abandoned == 1)
            else:
                await until(lambda: upstream.replies_done == 1)
    assert upstream.abandoned == (1 if cancels else 0)
    assert upstream.replies_done == (0 if cancels else 1)


async def test_an_a2a_stream_running_at_the_drain_deadline_ends_with_an_error_frame(
    gateway_factory: GatewayFactory,
) -> None:
    async with FaultUpstream(trickling(100, 0.05)) as upstream:
        factory = gateway_factory(yaml_for(upstream.url, "") + "server: {drain_timeout: 0.5s}\n")
        gw = await factory.__aenter__()
        stopping: asyncio.Task[None] | None = None
        try:
            url, body = stream_url(gw, "jsonrpc")
            async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=V1) as response:
                frames = await sse_frames(response, until=3)  # the task, working, the first chunk
                stopping = asyncio.create_task(factory.__aexit__(None, None, None))
                frames += await asyncio.wait_for(sse_frames(response), 10)
            await asyncio.wait_for(stopping, 10)
        finally:
            if stopping is None:
                await factory.__aexit__(None, None, None)
    error = json.loads(frames[-1])["error"]
    assert "shutting down" in error["message"]
    chunks = [f for f in frames[3:-1] if not f.startswith(":") and "artifactUpdate" in payload(f, "jsonrpc")]
    assert chunks  # it ran until the deadline
