"""The issue's failing requests: a long text through the echo agent, an agent's traceback relayed
to callers, and error answers without ``x-agw-attempts``."""

from __future__ import annotations

import logging
import time

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import GatewayFactory
from tests.datapath.shapes import MIB, filler
from tests.helpers.datapath import RigFactory
from tests.helpers.fault_upstream import Reply, SeenRequest, json_reply

TRACEBACK = (
    b'Traceback (most recent call last):\n  File "/srv/agent/app.py", line 41, in invoke\n'
    b"    reply = model(secret_prompt)\nKeyError: 'OPENAI_API_KEY=sk-live-123'\n"
)


async def test_a_200000_character_text_part_comes_back_whole(gateway_factory: GatewayFactory, echo_url: str) -> None:
    text = filler(200_000, seed=3)
    async with gateway_factory(f'agents:\n  echo: {{kind: http, endpoint: "{echo_url}"}}\n') as server:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://{server.addresses.http}/v1/agents/echo/invoke",
                json={"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]},
            ) as response:
                body = await response.json()
    assert response.status == 200, body
    assert body["messages"][0]["parts"][0]["text"] == f"echo: {text}"


def failing_agent(status: int, body: bytes) -> Reply:
    return Reply(status=status, body=body, headers={"content-type": "text/plain"})


async def test_an_agent_traceback_stays_in_the_failure_log(rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "agent_gateway.failures")
    async with rig(
        lambda _r: failing_agent(500, TRACEBACK), 'agents:\n  agent: {kind: http, endpoint: "{url}"}\n'
    ) as r:
        status, body, _ = await r.invoke("agent")
    assert status == 502 and body["error"]["code"] == "UNKNOWN"
    assert "upstream_body" not in body["error"]["details"]
    assert b"sk-live" not in repr(body).encode()
    assert body["error"]["details"]["upstream_status"] == 500
    (record,) = [rec for rec in caplog.records if rec.name == "agent_gateway.failures"]
    assert record.agw["upstream_body"] == TRACEBACK.decode()  # type: ignore[attr-defined]


async def test_callers_see_a_bounded_excerpt_when_configured(rig: RigFactory) -> None:
    agents = 'server: {upstream_body_excerpt: 40}\nagents:\n  agent: {kind: http, endpoint: "{url}"}\n'
    async with rig(lambda _r: failing_agent(500, TRACEBACK), agents) as r:
        status, body, _ = await r.invoke("agent")
    assert status == 502
    assert body["error"]["details"]["upstream_body"] == TRACEBACK.decode()[:40]


async def test_a_huge_error_body_is_read_only_so_far(rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    """A 32 MiB error reply: the gateway keeps its first 64 KiB (8 KiB in the log) and answers
    at once, instead of holding 32 MiB for a message nobody reads whole."""
    caplog.set_level(logging.WARNING, "agent_gateway.failures")
    big = filler(32 * MIB, seed=5).encode()
    async with rig(lambda _r: failing_agent(503, big), 'agents:\n  agent: {kind: http, endpoint: "{url}"}\n') as r:
        status, body, elapsed = await r.invoke("agent")
    assert (status, body["error"]["code"], body["error"]["transient"]) == (503, "UNAVAILABLE", True)
    assert elapsed < 2.0
    (record,) = [rec for rec in caplog.records if rec.name == "agent_gateway.failures"]
    assert record.agw["upstream_body"].encode() == big[: len(record.agw["upstream_body"].encode())]  # type: ignore[attr-defined]
    assert len(record.agw["upstream_body"]) == 8192  # type: ignore[attr-defined]


RETRYING = """
policies:
  default: {retry: {max_attempts: 3, backoff: {base: 1ms, max: 2ms}, budget: null}}
agents:
  agent: {kind: http, endpoint: "{url}"}
"""


async def test_error_answers_carry_attempts_on_every_front(rig: RigFactory) -> None:
    def respond(request: SeenRequest) -> Reply:
        return json_reply(b'{"error":"overloaded"}', status=503)

    async with rig(respond, RETRYING) as r:
        # HTTP invoke
        status, _, _ = await r.invoke("agent")
        assert status == 503 and r.last_headers["x-agw-attempts"] == "3"
        # HTTP stream, failing before its first event: a proper error status
        async with r.http.post(
            f"{r.base}/v1/agents/agent/stream", json={"messages": [{"parts": [{"text": "hi"}]}]}
        ) as response:
            assert response.status == 503 and response.headers["x-agw-attempts"] == "3"
        # refused before any call: 0 attempts
        async with r.http.post(
            f"{r.base}/v1/agents/nobody/invoke", json={"messages": [{"parts": [{"text": "x"}]}]}
        ) as response:
            assert response.status == 404 and response.headers["x-agw-attempts"] == "0"
        async with r.http.post(f"{r.base}/v1/agents/agent/invoke", data=b"{not json") as response:
            assert response.status == 400 and response.headers["x-agw-attempts"] == "0"
        # passthrough: the agent's own 503 is an answer of one attempt; so is a broken one
        async with r.http.get(f"{r.base}/v1/proxy/agent/x") as response:
            assert response.status == 503 and response.headers["x-agw-attempts"] == "1"
        async with r.http.get(f"{r.base}/v1/proxy/nobody/x") as response:
            assert response.status == 404 and response.headers["x-agw-attempts"] == "0"
        # gRPC, unary and streaming: in the trailing metadata of the error
        async with grpc.aio.insecure_channel(r.server.addresses.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)
            request = pb.InvokeRequest(agent="agent", messages=[pb.Message(parts=[pb.Part(text="hi")])])
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await stub.Invoke(request)
            assert unary.value.code() == grpc.StatusCode.UNAVAILABLE
            assert dict(unary.value.trailing_metadata() or ())["x-agw-attempts"] == "3"
            with pytest.raises(grpc.aio.AioRpcError) as streamed:
                async for _ in stub.InvokeStream(request):
                    pass
            assert dict(streamed.value.trailing_metadata() or ())["x-agw-attempts"] == "3"
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Invoke(pb.InvokeRequest(agent="nobody", messages=request.messages))
            assert dict(unknown.value.trailing_metadata() or ())["x-agw-attempts"] == "0"


async def test_passthrough_to_a_dead_agent_says_one_attempt(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory('agents:\n  dead: {kind: http, endpoint: "http://127.0.0.1:9"}\n') as server:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(f"http://{server.addresses.http}/v1/proxy/dead/x") as response:
                assert response.status == 503 and response.headers["x-agw-attempts"] == "1"
            assert time.monotonic() - started < 5
