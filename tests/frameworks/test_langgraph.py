"""The LangGraph adapter against a real ``langgraph dev`` server (in-memory, offline, fake chat model).

The server runs ``tests/frameworks/langgraph/graph.py`` from its own environment
(``.venvs/langgraph``), one for this module on a free loopback port (see apps.py).
Each LangGraph run takes about a second (the in-memory queue polls every 0.5 s),
so independent runs are issued concurrently.
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
from gateway.adapters.langgraph import THREAD_NAMESPACE
from tests.conftest import GatewayFactory
from tests.frameworks.servers import ServerProcess
from tests.helpers.frameworks import framework_server

pytestmark = pytest.mark.frameworks

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def gateway_yaml(url: str) -> str:
    return f"""
agents:
  chat:
    kind: langgraph
    endpoint: {url}
    options: {{assistant_id: chat}}
  chat_stateless:
    kind: langgraph
    endpoint: {url}
    options: {{assistant_id: chat, thread_from: none}}
  boom:
    kind: langgraph
    endpoint: {url}
  ghost:
    kind: langgraph
    endpoint: {url}
    options: {{assistant_id: no-such-graph}}
  slow:
    kind: langgraph
    endpoint: {url}
    options: {{stream_mode: [custom]}}
"""


def seen_headers(parts: list[dict[str, Any]]) -> dict[str, str]:
    block = next(p["data"] for p in parts if "data" in p)
    assert block["type"] == "context"
    seen: dict[str, str] = block["seen_headers"]
    return seen


async def test_run_and_wait_stateless_carries_context_into_the_graph(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/chat_stateless/invoke",
            json={
                "messages": [{"role": "ROLE_USER", "parts": [{"text": "hello graph"}]}],
                "context": {"sessionId": "sess-lg-1"},
                "options": {"timeout": "20s"},
            },
            headers={"traceparent": INBOUND_TRACEPARENT, "x-request-id": "req-lg-1"},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    texts = [p["text"] for m in body["messages"] for p in m["parts"] if "text" in p]
    assert texts == ["you said hello graph", "turn 1"]  # a stateless run starts from nothing
    assert "langgraphThreadId" not in json.dumps(body.get("metadata", {}))
    seen = seen_headers(body["messages"][1]["parts"])
    assert seen["x-session-id"] == "sess-lg-1"
    assert seen["x-request-id"] == "req-lg-1"
    # The graph saw the caller's trace, with the gateway's attempt span as parent.
    _version, trace_id, parent_span, _flags = seen["traceparent"].split("-")
    assert trace_id == TRACE_ID
    attempt = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert format(attempt.context.span_id, "016x") == parent_span
    # The report node's AIMessage states its usage_metadata (7 in, 4 out): it lands on the attempt span.
    assert attempt.attributes is not None
    assert (attempt.attributes["gen_ai.usage.input_tokens"], attempt.attributes["gen_ai.usage.output_tokens"]) == (7, 4)


async def test_thread_runs_share_state_across_calls(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess
) -> None:
    thread = f"thr-{uuid.uuid4().hex}"
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            first, other = await asyncio.gather(
                client.invoke("chat", "one", thread_id=thread, timeout=20),
                client.invoke("chat", "three", thread_id=f"{thread}-other", timeout=20),
            )
            second = await client.invoke("chat", "two", thread_id=thread, timeout=20)
    assert [m.text for m in first.messages] == ["you said one", "turn 1"]
    assert [m.text for m in second.messages] == ["you said two", "turn 2"]  # it saw the first turn
    assert [m.text for m in other.messages] == ["you said three", "turn 1"]
    expected = str(uuid.uuid5(THREAD_NAMESPACE, f"chat:{thread}"))
    assert first.metadata["langgraph_thread_id"] == second.metadata["langgraph_thread_id"] == expected
    # The structured block survives both hops as a data part.
    assert any(isinstance(p, DataPart) and p.data["type"] == "context" for p in second.messages[1].parts)
    # The thread was created on first use and really holds both turns.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{langgraph_server.url}/threads/{expected}/state") as response:
            state = await response.json()
    assert state["values"]["turns"] == 2


async def collect(client: AgentClient, agent: str, text: str, **params: Any) -> list[Event]:
    return [e async for e in client.stream(agent, text, session_id=f"s-{uuid.uuid4().hex}", params=params, timeout=20)]


async def test_streamed_runs_in_each_stream_mode(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess
) -> None:
    modes = ["values", "updates", "messages", "messages-tuple"]
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            streams = await asyncio.gather(*(collect(client, "chat", "hi there", stream_mode=m) for m in modes))
    by_mode = dict(zip(modes, streams, strict=True))
    for mode, events in by_mode.items():
        assert events[0].type == "status" and "run_id" in events[0].data, mode  # the run's metadata comes first

    states = [e.data for e in by_mode["values"] if e.type == "state"]
    assert len(states) == 3  # input, after chat, after report
    assert states[-1]["turns"] == 1 and states[-1]["seen_headers"]["x-session-id"].startswith("s-")

    steps = [e.data for e in by_mode["updates"] if e.type == "step"]
    assert [next(iter(s)) for s in steps] == ["chat", "report"]
    assert steps[0]["chat"]["messages"][0]["content"] == "you said hi there"

    for mode in ("messages", "messages-tuple"):
        deltas = [e.message.text for e in by_mode[mode] if e.type == "delta" and e.message is not None]
        assert "".join(deltas) == "you said hi there", mode
        assert len(deltas) > 3, mode  # token by token, not one blob
    finished = [e.message for e in by_mode["messages"] if e.type == "message" and e.message is not None]
    assert [m.text for m in finished] == ["turn 1"]


async def test_streamed_run_reports_its_tokens(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            await collect(client, "chat_stateless", "count tokens", stream_mode="messages")
    attempt = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert attempt.attributes is not None
    # From the complete messages of the stream: the report node's AIMessage (7 in, 4 out).
    assert (attempt.attributes["gen_ai.usage.input_tokens"], attempt.attributes["gen_ai.usage.output_tokens"]) == (7, 4)


async def test_http_stream_relays_langgraph_events_and_result(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess
) -> None:
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(
            f"http://{gw.addresses.http}/v1/agents/chat_stateless/stream",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": "via sse"}]}]},
        ) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    assert frames[-1].startswith("event: result")
    result = json.loads(frames[-1].split("data: ", 1)[1])["result"]
    texts = [p["text"] for m in result["messages"] for p in m["parts"] if "text" in p]
    assert "".join(texts).startswith("you said via sse")
    types = [json.loads(f.split("data: ", 1)[1])["event"]["type"] for f in frames[:-1]]
    assert {"status", "delta", "step"} <= set(types)  # default modes: messages-tuple + updates


async def test_failures_are_classified(gateway_factory: GatewayFactory, langgraph_server: ServerProcess) -> None:
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            outcomes = await asyncio.gather(
                client.invoke("boom", "go", timeout=20),
                collect(client, "boom", "go", stream_mode="values"),
                client.invoke("ghost", "go", timeout=20),
                collect(client, "ghost", "go"),
                return_exceptions=True,
            )
    boom_invoke, boom_stream, ghost_invoke, ghost_stream = outcomes
    # The graph raised: HTTP 200 with __error__ (wait) or `event: error` (stream); permanent either way.
    for error in (boom_invoke, boom_stream):
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.UNKNOWN
        assert not error.transient
        assert "boom from node" in error.message
    for error in (ghost_invoke, ghost_stream):
        assert isinstance(error, ClientError), error
        assert error.code == StatusCode.NOT_FOUND
        assert not error.transient
        assert "no-such-graph" in error.message


async def test_killed_server_is_unavailable(
    gateway_factory: GatewayFactory, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = framework_server("langgraph-killable", pytestconfig, tmp_path_factory)
    try:
        async with gateway_factory(gateway_yaml(server.url)) as gw:
            assert gw.addresses.grpc is not None
            async with AgentClient(gw.addresses.grpc) as client:
                alive = await client.invoke("chat_stateless", "still there?", timeout=20)
                server.stop()
                with pytest.raises(ClientError) as info:
                    await client.invoke("chat_stateless", "and now?", timeout=20)
    finally:
        server.stop()
    assert alive.text.startswith("you said still there?")
    assert info.value.code == StatusCode.UNAVAILABLE
    assert info.value.transient


async def test_cancelled_background_run_is_cancelled_on_the_langgraph_server(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess
) -> None:
    session = f"s-{uuid.uuid4().hex}"
    thread = str(uuid.uuid5(THREAD_NAMESPACE, f"slow:{session}"))
    submit = {
        "messages": [{"role": "ROLE_USER", "parts": [{"text": "take your time"}]}],
        "context": {"sessionId": session},
    }
    async with gateway_factory(gateway_yaml(langgraph_server.url)) as gw, aiohttp.ClientSession() as http:
        base = f"http://{gw.addresses.http}/v1"
        async with http.post(f"{base}/agents/slow/runs", json=submit) as response:
            assert response.status == 202, await response.text()
            run_id = (await response.json())["runId"]
        # Follow until the graph reports progress: the run is live upstream.
        events: list[dict[str, Any]] = []
        async with http.get(f"{base}/runs/{run_id}/events", timeout=aiohttp.ClientTimeout(total=20)) as response:
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:])["event"])
                    if events[-1]["type"] == "custom":
                        break
        upstream_run = events[0]["data"]["run_id"]
        async with http.post(f"{base}/runs/{run_id}/cancel") as response:
            assert (await response.json())["status"] == "cancelled"
        # LangGraph's own record of the run says it was cancelled (interrupted), not finished.
        status = ""
        for _ in range(100):
            async with http.get(f"{langgraph_server.url}/threads/{thread}/runs/{upstream_run}") as response:
                status = (await response.json())["status"]
            if status != "running":
                break
            await asyncio.sleep(0.1)
        assert status == "interrupted"
