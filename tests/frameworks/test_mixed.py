"""Frameworks together: a workflow mixing a LangGraph graph and a CrewAI crew, an offline
evaluation of it, and langgraph-sdk talking to its graph through the gateway's passthrough."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import GatewayFactory
from tests.frameworks import envs
from tests.frameworks.apps import CREW_TOKEN
from tests.frameworks.servers import ServerProcess

pytestmark = pytest.mark.frameworks

TRACE_ID = "6bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-20f067aa0ba902b7-01"


def mixed_yaml(graph_url: str, crew_url: str) -> str:
    return textwrap.dedent(f"""
        agents:
          graph: {{kind: langgraph, endpoint: {graph_url}, options: {{assistant_id: chat, thread_from: none}}}}
          crew:
            kind: crewai
            endpoint: {crew_url}
            options: {{bearer_token: {CREW_TOKEN}, poll_interval: 0.05, text_input: topic}}
        workflows:
          brief:
            kind: sequential
            steps:
              - {{name: ask, agent: graph}}
              - {{name: report, agent: crew, input: "{{{{ steps.ask.text }}}}"}}
        checks:
          reported: {{kind: regex, pattern: "^report about you said "}}
        """)


async def test_workflow_mixing_langgraph_and_crewai(
    gateway_factory: GatewayFactory,
    langgraph_server: ServerProcess,
    crew_server: ServerProcess,
    span_exporter: InMemorySpanExporter,
) -> None:
    async with gateway_factory(mixed_yaml(langgraph_server.url, crew_server.url)) as gw:
        async with aiohttp.ClientSession() as session, session.post(
            f"http://{gw.addresses.http}/v1/agents/brief/invoke",
            json={"messages": [{"parts": [{"text": "otters"}]}], "context": {"sessionId": "mix-1"},
                  "options": {"timeout": "30s"}},
            headers={"traceparent": TRACEPARENT},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    text = body["messages"][0]["parts"][0]["text"]
    # The crew got the graph's answer, and both saw the caller's session and trace.
    assert text.startswith("report about you said otters")
    assert text.endswith(f"(session=mix-1, trace={TRACE_ID})")
    attempts = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert {s.attributes["gen_ai.agent.name"] for s in attempts if s.attributes} == {"graph", "crew"}
    assert {format(s.context.trace_id, "032x") for s in attempts} == {TRACE_ID}
    assert all(s.attributes and s.attributes["session.id"] == "mix-1" for s in attempts)


async def test_offline_eval_of_the_mixed_workflow(
    tmp_path: Path, langgraph_server: ServerProcess, crew_server: ServerProcess
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(mixed_yaml(langgraph_server.url, crew_server.url))
    cases = [
        {"id": "otters", "input": "otters", "checks": ["reported"],
         "steps": {"ask": {"contains": "you said otters"}}},
        {"id": "beavers", "input": "beavers", "expect": {"contains": "report about you said beavers"}},
        {"id": "wrong", "input": "cats", "expect": {"contains": "dogs"}},
    ]
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    report_path = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "eval", "-c", str(config), "--target", "brief", "--dataset", str(dataset),
        "--concurrency", "3", "--json", str(report_path), "--fail-under", "0.6",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()  # 2 of 3 pass: above --fail-under 0.6
    report = json.loads(report_path.read_text())
    assert {r["id"]: r["passed"] for r in report["results"]} == {"otters": True, "beavers": True, "wrong": False}
    assert report["steps"]["ask"]["pass_rate"] == 1.0 and report["steps"]["report"]["runs"] == 3
    assert report["latency_ms"]["p50"] > 0
    assert "brief" in out.decode()


PASSTHROUGH_SCRIPT = """
import asyncio, json, sys
from langgraph_sdk import get_client

async def main():
    client = get_client(url=sys.argv[1], headers={"traceparent": sys.argv[2]})
    assistants = await client.assistants.search(graph_id="chat")
    result = await client.runs.wait(None, "chat", input={"messages": [{"role": "user", "content": "via sdk"}]})
    print(json.dumps({"assistants": len(assistants), "result": result}))

asyncio.run(main())
"""


async def test_langgraph_sdk_works_unchanged_through_the_passthrough(
    gateway_factory: GatewayFactory, langgraph_server: ServerProcess, tmp_path: Path
) -> None:
    python = envs.env_bin("langgraph", "python")
    script = tmp_path / "sdk_client.py"
    script.write_text(PASSTHROUGH_SCRIPT)
    yaml_text = f"agents:\n  graph: {{kind: langgraph, endpoint: {langgraph_server.url}}}\n"
    async with gateway_factory(yaml_text) as gw:
        process = await asyncio.create_subprocess_exec(
            str(python), str(script), f"http://{gw.addresses.http}/v1/proxy/graph", TRACEPARENT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["assistants"] >= 1
    state = answer["result"]
    assert state["messages"][-2]["content"] == "you said via sdk"
    _version, trace_id, parent, _flags = state["seen_headers"]["traceparent"].split("-")
    assert trace_id == TRACE_ID  # the SDK's trace went through...
    assert parent != TRACEPARENT.split("-")[2]  # ...with the gateway's proxy span as the graph's parent
    assert state["seen_headers"]["x-request-id"]  # and the gateway's request id


async def test_a_langgraph_node_calls_crewai_and_mastra_through_its_sidecar(
    gateway_factory: GatewayFactory,
    langgraph_server: ServerProcess,
    crew_server: ServerProcess,
    mastra_server: ServerProcess,
    span_exporter: InMemorySpanExporter,
) -> None:
    yaml_text = textwrap.dedent(f"""
        agents:
          delegator: {{kind: langgraph, endpoint: {langgraph_server.url}, options: {{assistant_id: delegate, thread_from: none}}}}
          crew:
            kind: crewai
            endpoint: {crew_server.url}
            options: {{bearer_token: {CREW_TOKEN}, poll_interval: 0.05, text_input: topic}}
          writer: {{kind: mastra, endpoint: {mastra_server.url}, options: {{agent_id: echo}}}}
        """)
    async with gateway_factory(yaml_text) as gw:
        sidecar = f"http://{gw.addresses.http}"
        async with aiohttp.ClientSession() as session, session.post(
            f"{sidecar}/v1/agents/delegator/invoke",
            json={
                "messages": [{"parts": [{"text": "beavers"}]}],
                "context": {"sessionId": "deleg-1"},
                "options": {"timeout": "60s", "params": {"config": {"configurable": {"sidecar": sidecar}}}},
            },
            headers={"traceparent": TRACEPARENT},
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    answer = body["messages"][-1]["parts"][0]["text"]
    assert f"crew: report about beavers (session=deleg-1, trace={TRACE_ID})" in answer
    assert "writer: " in answer and len(answer.split("writer: ")[1]) > 0
    spans = span_exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}  # one trace across three frameworks
    client = {s.attributes["gen_ai.agent.name"]: s for s in spans if s.kind == SpanKind.CLIENT and s.attributes}
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    delegated = [s for s in servers if s.parent is not None and s.parent.span_id == client["delegator"].context.span_id]
    # The graph's two calls come back in as children of the gateway's call into the graph...
    assert len(delegated) == 2
    # ...and each leads to its framework's attempt span.
    for agent in ("crew", "writer"):
        assert client[agent].parent is not None
        assert client[agent].parent.span_id in {s.context.span_id for s in delegated}
        assert client[agent].attributes is not None and client[agent].attributes["session.id"] == "deleg-1"


async def test_mastra_client_sdk_works_unchanged_through_the_passthrough(
    gateway_factory: GatewayFactory, mastra_server: ServerProcess, span_exporter: InMemorySpanExporter
) -> None:
    node = envs.ensure_env("mastra")
    script = Path(envs.__file__).parent / "mastra" / "client_passthrough.mjs"
    yaml_text = f"agents:\n  writer: {{kind: mastra, endpoint: {mastra_server.url}, options: {{agent_id: echo}}}}\n"
    async with gateway_factory(yaml_text) as gw:
        process = await asyncio.create_subprocess_exec(
            str(node), str(script), f"http://{gw.addresses.http}/v1/proxy/writer", TRACEPARENT,
            cwd=script.parent, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert "echo" in answer["agents"]
    assert "you said via the mastra client" in answer["text"]
    proxied = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "POST /v1/proxy/{agent}/{tail}" and (s.attributes or {}).get("gen_ai.agent.name") == "writer"
    ]
    assert proxied and {format(s.context.trace_id, "032x") for s in proxied} == {TRACE_ID}
