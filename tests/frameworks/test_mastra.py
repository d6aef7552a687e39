"""The Mastra adapter against a real Mastra server (Mastra's agent API, in-memory memory, mock model).

The server (``tests/frameworks/mastra/server.ts``) runs on the npm project's
pinned Node with @mastra/core, @mastra/memory and @mastra/hono, one for this
module on a free loopback port (see apps.py). Its model is the AI SDK's
``MockLanguageModelV2``: it answers ``you said <text> (turn <n>)`` (n counts
the user turns memory gave it), calls its ``weather`` tool for ``weather
<city>``, throws for ``fail ...``, and reports the headers that reached the
agent as provider metadata.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentgateway_client import AgentClient, ClientError, DataPart, Event, StatusCode
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.frameworks import framework_server

pytestmark = pytest.mark.frameworks

TRACE_ID = "7bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-30f067aa0ba902b7-01"


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  echo:
    kind: mastra
    endpoint: {url}
  echo_stateless:
    kind: mastra
    endpoint: {url}
    options: {{agent_id: echo, thread_from: none}}
  ghost:
    kind: mastra
    endpoint: {url}
    options: {{agent_id: no-such-agent}}
"""


def seen_headers(metadata: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = metadata["provider_metadata"]["agentGatewayTest"]["seenHeaders"]
    return headers


async def test_generate_carries_context_into_the_agent(
    gateway_factory: GatewayFactory, mastra_server: ServerProcess, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/echo/invoke",
            json={
                "messages": [{"role": "ROLE_USER", "parts": [{"text": "hello mastra"}]}],
                "context": {"sessionId": f"sess-{uuid.uuid4().hex}"},
                "options": {"timeout": "20s"},
            },
            headers={"traceparent": INBOUND_TRACEPARENT, "x-request-id": "req-m1"},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    texts = [p["text"] for m in body["messages"] for p in m["parts"] if "text" in p]
    assert texts == ["you said hello mastra (turn 1)"]
    metadata = body["metadata"]
    assert metadata["finish_reason"] == "stop"
    assert metadata["usage"]["totalTokens"] == 8
    session_id = metadata["mastra_thread_id"]
    assert session_id.startswith("sess-") and metadata["mastra_resource_id"] == session_id  # no user: the session
    seen = seen_headers(metadata)
    assert seen["x-session-id"] == session_id
    assert seen["x-request-id"] == "req-m1"
    # The agent saw the caller's trace, with the gateway's attempt span as parent.
    _version, trace_id, parent_span, _flags = seen["traceparent"].split("-")
    assert trace_id == TRACE_ID
    attempt = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert format(attempt.context.span_id, "016x") == parent_span


async def test_threads_map_to_mastra_memory(gateway_factory: GatewayFactory, mastra_server: ServerProcess) -> None:
    thread = f"thr-{uuid.uuid4().hex}"
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            first, other, stateless = await asyncio.gather(
                client.invoke("echo", "one", thread_id=thread, user_id="ada", timeout=20),
                client.invoke("echo", "three", thread_id=f"{thread}-other", user_id="ada", timeout=20),
                client.invoke("echo_stateless", "four", thread_id=thread, user_id="ada", timeout=20),
            )
            second = await client.invoke("echo", "two", thread_id=thread, user_id="ada", timeout=20)
    assert first.text == "you said one (turn 1)"
    assert second.text == "you said two (turn 2)"  # memory gave the model the first turn
    assert other.text == "you said three (turn 1)"
    assert stateless.text == "you said four (turn 1)"  # thread_from: none never touches memory
    assert second.metadata["mastra_thread_id"] == thread
    assert second.metadata["mastra_resource_id"] == "ada"
    assert "mastra_thread_id" not in stateless.metadata
    # The thread really exists in Mastra, owned by the user, holding both turns.
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{mastra_server.url}/api/memory/threads/{thread}/messages", params={"agentId": "echo"}
        ) as response:
            assert response.status == 200, await response.text()
            stored = await response.json()
        async with session.get(f"{mastra_server.url}/api/memory/threads/{thread}", params={"agentId": "echo"}) as reply:
            owner = await reply.json()
    contents = json.dumps(stored)
    assert "you said one (turn 1)" in contents and "you said two (turn 2)" in contents
    assert owner["resourceId"] == "ada"


async def collect(client: AgentClient, agent: str, text: str, **kwargs: Any) -> list[Event]:
    return [e async for e in client.stream(agent, text, timeout=20, **kwargs)]


async def test_stream_relays_deltas_steps_and_tools(
    gateway_factory: GatewayFactory, mastra_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            plain, tools = await asyncio.gather(
                collect(client, "echo", "one two three", session_id=f"s-{uuid.uuid4().hex}"),
                collect(client, "echo_stateless", "weather Paris"),
            )
    deltas = [e.message.text for e in plain if e.type == "delta" and e.message is not None]
    assert "".join(deltas) == "you said one two three (turn 1)"
    assert len(deltas) == 7  # word by word, as the model produced them
    statuses = [e.data for e in plain if e.type == "status"]
    assert [s["state"] for s in statuses] == ["started", "finished"]
    assert statuses[0]["mastra_thread_id"].startswith("s-") and statuses[0]["run_id"]
    assert statuses[1]["finish_reason"] == "stop"
    assert [e.data["phase"] for e in plain if e.type == "step"] == ["start", "finish"]

    tool_events = [e.data for e in tools if e.type == "tool"]
    assert tool_events[0]["tool_call"] == {"id": "call-1", "name": "weather", "args": {"city": "Paris"}}
    assert tool_events[1]["tool_result"]["result"] == {"city": "Paris", "forecast": "sunny"}
    text = "".join(e.message.text for e in tools if e.type == "delta" and e.message is not None)
    assert text == 'the tool said {"city":"Paris","forecast":"sunny"}'
    assert [e.data["reason"] for e in tools if e.type == "step" and e.data["phase"] == "finish"] == [
        "tool-calls",
        "stop",
    ]


async def test_http_stream_and_unary_tool_activity(
    gateway_factory: GatewayFactory, mastra_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/echo_stateless/stream",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": "via sse"}]}]},
        ) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            unary = await client.invoke("echo_stateless", "weather Oslo", timeout=20)
    frames = [f for f in raw.split("\n\n") if f.strip()]
    assert frames[-1].startswith("event: result")
    result = json.loads(frames[-1].split("data: ", 1)[1])["result"]
    assert [p["text"] for m in result["messages"] for p in m["parts"]] == ["you said via sse (turn 1)"]
    types = {json.loads(f.split("data: ", 1)[1])["event"]["type"] for f in frames[:-1]}
    assert {"status", "step", "delta"} <= types

    _text, activity = unary.messages[0].parts
    assert unary.text == 'the tool said {"city":"Oslo","forecast":"sunny"}'
    assert isinstance(activity, DataPart)
    assert activity.data["tool_calls"][0]["payload"]["toolName"] == "weather"
    assert activity.data["tool_results"][0]["payload"]["result"]["forecast"] == "sunny"


async def test_failures_are_classified(gateway_factory: GatewayFactory, mastra_server: ServerProcess) -> None:
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            outcomes = await asyncio.gather(
                client.invoke("echo_stateless", "fail please", timeout=20),
                collect(client, "echo_stateless", "fail again"),
                client.invoke("ghost", "anyone?", timeout=20),
                collect(client, "ghost", "anyone?"),
                client.invoke("echo_stateless", "bad options", params={"maxSteps": "many"}, timeout=20),
                return_exceptions=True,
            )
    model_invoke, model_stream, ghost_invoke, ghost_stream, rejected = outcomes
    # The model threw: HTTP 500 (generate) or an `error` chunk (stream); the agent's own failure, not retried.
    for error in (model_invoke, model_stream):
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.UNKNOWN
        assert not error.transient
    assert isinstance(model_invoke, ClientError) and "HTTP 500" in model_invoke.message
    assert isinstance(model_stream, ClientError) and "model refused: fail again" in model_stream.message
    for error in (ghost_invoke, ghost_stream):
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.NOT_FOUND
        assert not error.transient
        assert "no-such-agent" in error.message
    # Mastra validates the body: a 400 is a permanent rejection.
    assert isinstance(rejected, ClientError), rejected
    assert rejected.code == StatusCode.FAILED_PRECONDITION
    assert not rejected.transient


async def test_killed_server_is_unavailable(
    gateway_factory: GatewayFactory, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = framework_server("mastra-killable", pytestconfig, tmp_path_factory)
    try:
        async with gateway_factory(gateway_yaml(server.url)) as gw:
            assert gw.addresses.grpc is not None
            async with AgentClient(gw.addresses.grpc) as client:
                alive = await client.invoke("echo_stateless", "still there?", timeout=20)
                server.stop()
                with pytest.raises(ClientError) as unary:
                    await client.invoke("echo_stateless", "and now?", timeout=20)
                with pytest.raises(ClientError) as streamed:
                    await collect(client, "echo_stateless", "and now?")
    finally:
        server.stop()
    assert alive.text == "you said still there? (turn 1)"
    for error in (unary.value, streamed.value):
        assert error.code == StatusCode.UNAVAILABLE
        assert error.transient


async def test_token_usage_reaches_the_span_the_metrics_and_the_access_log(
    gateway_factory: GatewayFactory,
    mastra_server: ServerProcess,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.helpers.metrics import get, samples, value

    caplog.set_level("INFO", logger="agent_gateway.access")
    async with gateway_factory(gateway_yaml(mastra_server.url)) as gw, aiohttp.ClientSession() as session:
        request = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "count me"}]}], "options": {"timeout": "20s"}}
        async with session.post(f"http://{gw.addresses.http}/v1/agents/echo_stateless/invoke", json=request) as response:
            assert response.status == 200, await response.text()
        async with session.post(f"http://{gw.addresses.http}/v1/agents/echo_stateless/stream", json=request) as response:
            assert response.status == 200
            await response.read()
        _, text = await get(f"http://{gw.addresses.admin}/metrics")
    # The mock model reports 3 input and 5 output tokens per answer (tests/frameworks/mastra/server.ts).
    attempts = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [(s.attributes or {}).get("gen_ai.usage.input_tokens") for s in attempts] == [3, 3]
    assert [(s.attributes or {}).get("gen_ai.usage.output_tokens") for s in attempts] == [5, 5]
    metrics = samples(text)
    assert value(metrics, "agw_tokens_total", agent="echo_stateless", route="", type="input") == 6
    assert value(metrics, "agw_tokens_total", agent="echo_stateless", route="", type="output") == 10
    lines = [r for r in caplog.records if r.name == "agent_gateway.access"]
    assert [(r.agw["input_tokens"], r.agw["output_tokens"]) for r in lines] == [(3, 5), (3, 5)]  # type: ignore[attr-defined]
