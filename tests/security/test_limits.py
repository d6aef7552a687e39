"""Listener limits: header size, stream idle and total duration, gRPC metadata size."""

from __future__ import annotations

import json
import time

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import GatewayFactory
from tests.helpers.http import body, post


def limited_yaml(echo_url: str, http: str, grpc_listener: str = "{address: '127.0.0.1:0'}") -> str:
    return (
        f"listeners:\n  http: {{address: '127.0.0.1:0', {http}}}\n  grpc: {grpc_listener}\n"
        f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
    )


async def test_oversized_headers_are_refused(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(limited_yaml(echo_url, "max_header_bytes: 2048")) as gw:
        url = f"http://{gw.addresses.http}/v1/agents/echo/invoke"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body(), headers={"x-big": "a" * 4096}) as response:
                status, text = response.status, await response.text()
        ok, _, _ = await post(url, body(), {"x-small": "a" * 512})
    assert status == 400
    assert "Got more than 2048 bytes" in text
    assert ok == 200


async def stream_frames(url: str, payload: dict[str, object]) -> tuple[list[str], float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(url, json=payload) as response:
        assert response.status == 200
        raw = (await response.read()).decode()
    return [f for f in raw.split("\n\n") if f.strip()], time.monotonic() - started


async def test_idle_stream_is_cut_with_a_clear_error(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(limited_yaml(echo_url, "stream_idle_timeout: 200ms")) as gw:
        url = f"http://{gw.addresses.http}/v1/agents/echo/stream"
        # The echo agent pauses 1 s between words: longer than the idle limit.
        frames, elapsed = await stream_frames(url, body("one two three", options={"params": {"delay": 1}}))
    assert frames[-1].startswith("event: error")
    error = json.loads(frames[-1].split("data: ", 1)[1])["error"]
    assert error["code"] == "DEADLINE_EXCEEDED"
    assert "no event from the agent for 0.2s" in error["message"]
    assert elapsed < 1.0


async def test_stream_total_duration_is_bounded(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(limited_yaml(echo_url, "stream_max_duration: 500ms")) as gw:
        url = f"http://{gw.addresses.http}/v1/agents/echo/stream"
        frames, elapsed = await stream_frames(url, body("a b c d e f g h", options={"params": {"delay": 0.2}}))
        quick, _ = await stream_frames(url, body("a b"))
    assert any("partial" not in f and f.startswith("event: event") for f in frames)  # some words got through
    error = json.loads(frames[-1].split("data: ", 1)[1])["error"]
    assert "the stream ran longer than 0.5s" in error["message"]
    assert elapsed < 1.2
    assert quick[-1].startswith("event: result")


async def test_grpc_metadata_and_stream_limits(gateway_factory: GatewayFactory, echo_url: str) -> None:
    grpc_listener = "{address: '127.0.0.1:0', max_metadata_bytes: 2048, stream_idle_timeout: 200ms}"
    async with gateway_factory(limited_yaml(echo_url, "max_body_bytes: 65536", grpc_listener)) as gw:
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)
            message = pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="one two")])
            with pytest.raises(grpc.aio.AioRpcError) as too_big:
                await stub.Invoke(pb.InvokeRequest(agent="echo", messages=[message]), metadata=(("x-big", "a" * 8192),))
            request = pb.InvokeRequest(agent="echo", messages=[message])
            request.options.params.update({"delay": 1})
            with pytest.raises(grpc.aio.AioRpcError) as idle:
                async for _ in stub.InvokeStream(request):
                    pass
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert idle.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no event from the agent" in (idle.value.details() or "")
