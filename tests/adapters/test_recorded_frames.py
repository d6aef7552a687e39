"""Each adapter's mapping, offline, from exchanges recorded from the real framework servers.

``tests/adapters/frames/*.json`` hold what LangGraph (``langgraph dev``), Mastra, the CrewAI
crew host and the a2a-sdk agent answered to the calls of ``frames/scenarios.py`` (recorded by
``frames/record.py``). A ``MockUpstream`` serves them again, in small chunks, checking that the
adapter asks for the same method and path; the assertions are the framework tests' own, so a
mapping change is caught here in milliseconds, and ``tests/frameworks`` keeps checking the wire.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.a2a import CONTEXT_NAMESPACE
from gateway.adapters.base import Adapter
from gateway.adapters.langgraph import THREAD_NAMESPACE
from gateway.adapters.mock_upstream import MockReply, MockRequest, MockUpstream
from gateway.adapters.registry import adapter_class
from gateway.model import (
    AgentSpec,
    Attempt,
    DataPart,
    Event,
    GatewayError,
    Result,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTls,
)
from tests.adapters.frames.scenarios import SCENARIOS, Scenario
from tests.security.pki import CertificateAuthority

# Small enough to split SSE lines, CRLFs and UTF-8 sequences across reads.
CHUNK = 7


def replaying(scenario: Scenario, after: Callable[[MockRequest], MockReply] | None = None) -> MockUpstream:
    """An upstream answering as recorded, in order; past the recording, ``after`` answers."""
    recorded = iter(scenario.exchanges())

    def answer(request: MockRequest) -> MockReply:
        exchange = next(recorded, None)
        if exchange is None:
            assert after is not None, f"{scenario.name}: an unrecorded request {request.method} {request.path}"
            return after(request)
        assert (request.method, request.path) == (exchange["method"], exchange["path"]), scenario.name
        raw = exchange["body"].encode()
        return MockReply.body(raw, exchange["content_type"], exchange["status"], CHUNK)

    return MockUpstream(answer)


async def replay(name: str, **options: Any) -> tuple[Result | list[Event] | GatewayError, list[MockRequest]]:
    """The scenario's outcome (its result, its events, or the error it raised) and the requests sent."""
    scenario = SCENARIOS[name]
    upstream = replaying(scenario)
    spec = scenario.spec()
    spec = AgentSpec(spec.name, spec.kind, spec.endpoint, {**spec.options, **options})
    outcome: Result | list[Event] | GatewayError
    async with upstream.resources() as resources:
        adapter = adapter_class(scenario.kind)(spec, resources)
        try:
            if scenario.stream:
                outcome = [e async for e in adapter.stream(scenario.call())]
            else:
                outcome = await adapter.invoke(scenario.call())
        except GatewayError as exc:
            outcome = exc
        finally:
            await adapter.aclose()
    return outcome, upstream.requests


def texts(result: Result | list[Event] | GatewayError) -> list[str]:
    assert isinstance(result, Result), result
    return [m.text for m in result.messages]


def deltas(events: Result | list[Event] | GatewayError) -> list[str]:
    assert isinstance(events, list), events
    return [e.message.text for e in events if e.type == "delta" and e.message is not None]


def events_of(events: Result | list[Event] | GatewayError, kind: str) -> list[Any]:
    assert isinstance(events, list), events
    return [e.data for e in events if e.type == kind]


# LangGraph


async def test_langgraph_run_on_a_thread() -> None:
    result, requests = await replay("langgraph_wait_thread")
    thread = str(uuid.uuid5(THREAD_NAMESPACE, "agent:s-lg"))
    assert texts(result) == ["you said hello graph", "turn 1"]
    assert isinstance(result, Result)
    assert result.metadata["langgraph_thread_id"] == thread
    assert result.usage is not None and (result.usage.input_tokens, result.usage.output_tokens) == (7, 4)
    assert any(isinstance(p, DataPart) and p.data["type"] == "context" for p in result.messages[1].parts)
    (request,) = requests
    assert request.path == f"/threads/{thread}/runs/wait"
    assert request.json["if_not_exists"] == "create"
    assert request.json["metadata"] == {
        "agent_gateway": {"session_id": "s-lg", "request_id": "req-langgraph_wait_thread"}
    }


async def test_langgraph_stateless_run() -> None:
    result, requests = await replay("langgraph_wait_stateless")
    assert texts(result) == ["you said hello", "turn 1"]
    assert isinstance(result, Result) and "langgraph_thread_id" not in result.metadata
    assert requests[0].path == "/runs/wait"


async def test_langgraph_failures() -> None:
    (wait, _), (stream, _), (ghost, _) = [
        await replay(name) for name in ("langgraph_wait_boom", "langgraph_stream_boom", "langgraph_ghost")
    ]
    for error in (wait, stream):  # HTTP 200 with __error__, and `event: error`
        assert type(error) is UpstreamError, error
        assert "boom from node" in error.message and not error.transient
    assert isinstance(ghost, UpstreamNotFound)
    assert "no-such-graph" in ghost.message and ghost.upstream_body


async def test_langgraph_stream_in_the_default_modes() -> None:
    events, _ = await replay("langgraph_stream_default")
    assert isinstance(events, list)
    assert events[0].type == "status" and events[0].data["run_id"]
    assert "".join(deltas(events)) == "you said hi there"
    assert len(deltas(events)) > 3  # token by token
    assert [next(iter(step)) for step in events_of(events, "step")] == ["chat", "report"]


async def test_langgraph_stream_in_messages_mode() -> None:
    events, _ = await replay("langgraph_stream_messages")
    assert "".join(deltas(events)) == "you said hi there"  # only the new text of each snapshot
    assert isinstance(events, list)
    finished = [e for e in events if e.type == "message" and e.message is not None]
    assert [e.message.text for e in finished if e.message is not None] == ["turn 1"]
    assert finished[0].usage is not None and finished[0].usage.output_tokens == 4


# Mastra


async def test_mastra_generate_with_memory() -> None:
    result, requests = await replay("mastra_generate")
    assert texts(result) == ["you said hello mastra (turn 1)"]
    assert isinstance(result, Result)
    assert result.metadata["finish_reason"] == "stop"
    assert result.metadata["mastra_thread_id"] == result.metadata["mastra_resource_id"] == "s-m1"
    assert result.usage is not None and result.usage.output_tokens == 5
    assert requests[0].json["memory"] == {"thread": "s-m1", "resource": "s-m1"}


async def test_mastra_generate_reports_tool_activity() -> None:
    result, _ = await replay("mastra_generate_tool")
    assert isinstance(result, Result)
    _text, activity = result.messages[0].parts
    assert result.messages[0].text == 'the tool said {"city":"Oslo","forecast":"sunny"}'
    assert isinstance(activity, DataPart)
    assert activity.data["tool_calls"][0]["payload"]["toolName"] == "weather"
    assert activity.data["tool_results"][0]["payload"]["result"]["forecast"] == "sunny"


async def test_mastra_stream_with_a_tool() -> None:
    events, _ = await replay("mastra_stream_tool")
    tools = events_of(events, "tool")
    assert tools[0]["tool_call"] == {"id": "call-1", "name": "weather", "args": {"city": "Paris"}}
    assert tools[1]["tool_result"]["result"] == {"city": "Paris", "forecast": "sunny"}
    assert "".join(deltas(events)) == 'the tool said {"city":"Paris","forecast":"sunny"}'
    steps = events_of(events, "step")
    assert [s["reason"] for s in steps if s["phase"] == "finish"] == ["tool-calls", "stop"]
    assert [s["state"] for s in events_of(events, "status")] == ["started", "finished"]


async def test_mastra_failures() -> None:
    (failed, _), (ghost, _) = [await replay(name) for name in ("mastra_stream_fail", "mastra_ghost")]
    assert type(failed) is UpstreamError and "model refused: fail again" in failed.message
    assert isinstance(ghost, UpstreamNotFound) and "no-such-agent" in ghost.message


# CrewAI


async def test_crewai_stream_reports_progress_then_the_output() -> None:
    events, requests = await replay("crewai_stream", poll_interval=0.001)
    progress = events_of(events, "status")
    assert {"research", "write"} <= {p.get("current_task") for p in progress}
    assert progress[0]["progress"]["total_tasks"] == 2
    assert isinstance(events, list) and events[-1].type == "message" and events[-1].message is not None
    assert events[-1].message.text.startswith("report about steady beavers (session=s-c2")
    assert requests[0].json["meta"] == {"session_id": "s-c2", "request_id": "req-crewai_stream"}
    assert requests[0].json["inputs"] == {"topic": "steady beavers"}


async def test_crewai_missing_inputs_are_named() -> None:
    error, _ = await replay("crewai_wrong_input")
    assert type(error) is UpstreamRejected
    assert "the crew needs inputs topic" in error.message and error.upstream_body


# A2A


async def test_a2a_invoke_assembles_the_streamed_task() -> None:
    result, requests = await replay("a2a_invoke")
    assert texts(result)[0] == "echo: hello agents "
    assert isinstance(result, Result)
    assert result.metadata["a2a_context_id"] == str(uuid.uuid5(CONTEXT_NAMESPACE, "agent:s-a1"))
    assert result.metadata["a2a_state"] == "completed"
    assert requests[1].json["method"] == "SendStreamingMessage"  # a unary call goes as a stream
    assert requests[1].json["params"]["message"]["contextId"] == result.metadata["a2a_context_id"]


async def test_a2a_stream_in_0_3() -> None:
    events, requests = await replay("a2a_stream_03")
    assert "".join(deltas(events)) == "echo: stream me "
    assert [s["state"] for s in events_of(events, "status")][-1] == "completed"
    assert requests[0].json["method"] == "message/stream"


async def test_a2a_failed_task() -> None:
    error, _ = await replay("a2a_stream_fail")
    assert type(error) is UpstreamError
    assert "the A2A task ended failed: cannot do that" in error.message


# Cancels keep the agent's TLS settings (the kit's send_cancel goes through the agent's transport)


@pytest.fixture
def tls(tmp_path: Path) -> UpstreamTls:
    return UpstreamTls(ca_file=str(CertificateAuthority(tmp_path).cert_file), server_name="agent.internal")


def first_event(scenario: Scenario) -> Any:
    """The JSON of the first event of the scenario's recorded stream."""
    raw = scenario.exchanges()[-1]["body"]
    return json.loads(raw.split("data: ", 1)[1].splitlines()[0])


async def abandon(scenario: Scenario, tls: UpstreamTls) -> list[MockRequest]:
    """Leave the scenario's stream after its first delta; the requests the adapter sent."""
    upstream = replaying(scenario, after=lambda request: MockReply.json({"jsonrpc": "2.0", "id": 1, "result": {}}))
    spec = scenario.spec()
    spec = AgentSpec(spec.name, spec.kind, spec.endpoint, spec.options, tls=tls)
    base = scenario.call()
    call = Attempt(base.invocation, {**base.headers, "x-timeout-ms": "20000"})
    async with upstream.resources() as resources:
        adapter: Adapter = adapter_class(scenario.kind)(spec, resources)
        stream = adapter.stream(call)
        async for event in stream:
            if event.type == "delta":
                break
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        await adapter.aclose()  # waits for the background cancel
    return upstream.requests


async def test_an_abandoned_langgraph_run_is_cancelled_over_the_same_tls(tls: UpstreamTls) -> None:
    scenario = SCENARIOS["langgraph_stream_default"]
    run_id = first_event(scenario)["run_id"]
    stream, cancel = await abandon(scenario, tls)
    thread = str(uuid.uuid5(THREAD_NAMESPACE, "agent:s-lg2"))
    assert (cancel.method, cancel.path) == ("POST", f"/threads/{thread}/runs/{run_id}/cancel")
    assert isinstance(stream.ssl, ssl.SSLContext)  # the agent's CA, not the system's
    assert cancel.ssl is stream.ssl and cancel.server_hostname == "agent.internal"
    assert "x-timeout-ms" not in cancel.headers and cancel.headers["x-request-id"] == stream.headers["x-request-id"]


async def test_an_abandoned_a2a_task_is_cancelled_over_the_same_tls(tls: UpstreamTls) -> None:
    scenario = SCENARIOS["a2a_stream_03"]
    stream, cancel = await abandon(scenario, tls)
    task_id = first_event(scenario)["result"]["id"]
    assert cancel.path == "/a2a/jsonrpc"
    assert cancel.json["method"] == "tasks/cancel" and cancel.json["params"] == {"id": task_id}
    assert cancel.ssl is stream.ssl and cancel.server_hostname == "agent.internal"
    assert "x-timeout-ms" not in cancel.headers
