"""One trace across frameworks and gateway hops, exported over OTLP to a real receiver.

The chain (examples/cross_framework): a caller -> the edge gateway -> the A2A
coordinator (a2a-sdk) -> its sidecar gateway, over the Python client with the
inbound headers forwarded -> a LangGraph graph (``langgraph dev``) and a
Mastra agent (Node), concurrently. Both gateways export their spans over OTLP
(gRPC or HTTP/protobuf) to :class:`~tests.frameworks.otlp.OtlpReceiver`; the
test asserts the span tree an operator would see.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from gateway.config.loader import load_config_text
from gateway.server.app import GatewayServer
from tests.frameworks import envs
from tests.frameworks.otlp import KIND_CLIENT, KIND_SERVER, OtlpReceiver, ReceivedSpan
from tests.frameworks.servers import ServerProcess, base_env, free_port, launch_server

pytestmark = pytest.mark.frameworks


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """The example's A2A coordinator, with its sidecar's gRPC port chosen up front (the sidecar starts per test)."""
    workdir = tmp_path_factory.mktemp("coordinator")
    sidecar_port = free_port()
    port = free_port()
    env = base_env(
        workdir,
        PYTHONPATH=str(envs.REPO_ROOT),
        AGENT_GATEWAY_GRPC=f"127.0.0.1:{sidecar_port}",
        COORDINATOR_DELEGATES="researcher,writer",
    )
    server = launch_server(
        [sys.executable, "-m", "examples.cross_framework.coordinator", str(port)],
        port=port,
        cwd=envs.REPO_ROOT,
        env=env,
        ready_path="/.well-known/agent-card.json",
        log_path=workdir / "server.log",
    ).wait_ready()
    yield server, sidecar_port
    server.stop()


def tracing(receiver: OtlpReceiver, protocol: str, service: str) -> str:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    return f"""
telemetry:
  tracing: {{otlp_endpoint: "{endpoint}", otlp_protocol: {protocol}, service_name: {service}}}
server: {{drain_timeout: 1s}}
state: {{sqlite: {{path: ':memory:'}}}}
"""


def sidecar_yaml(grpc_port: int, langgraph_url: str, mastra_url: str) -> str:
    return textwrap.dedent(f"""
        listeners:
          http: null
          grpc: {{address: '127.0.0.1:{grpc_port}'}}
        admin: null
        agents:
          researcher:
            kind: langgraph
            endpoint: {langgraph_url}
            options: {{assistant_id: chat}}
          writer:
            kind: mastra
            endpoint: {mastra_url}
            options: {{agent_id: echo}}
        """)


def edge_yaml(coordinator_url: str) -> str:
    return textwrap.dedent(f"""
        listeners:
          http: {{address: '127.0.0.1:0'}}
          grpc: null
        admin: null
        agents:
          coordinator:
            kind: a2a
            endpoint: {coordinator_url}
        """)


def only(spans: list[ReceivedSpan], **match: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_one_trace_links_gateway_hops_across_frameworks(
    langgraph_server: ServerProcess,
    mastra_server: ServerProcess,
    coordinator: tuple[ServerProcess, int],
    protocol: str,
) -> None:
    coordinator_server, sidecar_port = coordinator
    session_id = f"sess-{uuid.uuid4().hex}"  # a fresh conversation: both delegates keep memory per session
    with OtlpReceiver() as receiver:
        sidecar = GatewayServer(
            load_config_text(
                sidecar_yaml(sidecar_port, langgraph_server.url, mastra_server.url)
                + tracing(receiver, protocol, "coordinator-sidecar"),
                "sidecar.yaml",
            )
        )
        edge = GatewayServer(
            load_config_text(edge_yaml(coordinator_server.url) + tracing(receiver, protocol, "edge"), "edge.yaml")
        )
        await sidecar.start()
        try:
            await edge.start()
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.post(
                        f"http://{edge.addresses.http}/v1/agents/coordinator/invoke",
                        json={
                            "messages": [{"role": "ROLE_USER", "parts": [{"text": "what is an otter"}]}],
                            "context": {"sessionId": session_id, "userId": "ada"},
                            "options": {"timeout": "30s"},
                        },
                    ) as response:
                        assert response.status == 200, await response.text()
                        body = await response.json()
            finally:
                await edge.stop()  # stopping flushes the exporter: every span has arrived after this
        finally:
            await sidecar.stop()
        spans = receiver.spans()
        assert receiver.protocols == {"grpc" if protocol == "grpc" else "http"}

    answer = "".join(p.get("text", "") for m in body["messages"] for p in m["parts"])
    assert "researcher: you said what is an otter turn 1" in answer  # LangGraph, through the sidecar
    assert "writer: you said what is an otter (turn 1)" in answer  # Mastra, through the sidecar

    assert len({s.trace_id for s in spans}) == 1, spans  # one trace for the whole tree
    # Edge: SERVER (the caller's request, the root) -> CLIENT (the attempt to the A2A coordinator).
    root = only(spans, kind=KIND_SERVER, service="edge")
    assert root.parent_span_id == ""
    assert root.name == "POST /v1/agents/{agent}/invoke"
    assert root.attributes["url.path"] == "/v1/agents/coordinator/invoke"
    assert root.attributes["session.id"] == session_id and root.attributes["enduser.id"] == "ada"
    to_coordinator = only(spans, kind=KIND_CLIENT, service="edge")
    assert to_coordinator.parent_span_id == root.span_id
    assert to_coordinator.attributes["gen_ai.agent.name"] == "coordinator"
    assert to_coordinator.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert to_coordinator.attributes["agent_gateway.adapter"] == "a2a"

    # Sidecar: the coordinator forwarded the trace, so each delegated call's SERVER span is a
    # child of the edge's attempt span, and its CLIENT span a child of that.
    sidecar_servers = [s for s in spans if s.kind == KIND_SERVER and s.service == "coordinator-sidecar"]
    assert len(sidecar_servers) == 2
    delegated: dict[str, str] = {}
    for server_span in sidecar_servers:
        assert server_span.name == "agentgateway.v1.AgentGatewayService/Invoke"
        assert server_span.parent_span_id == to_coordinator.span_id
        assert server_span.attributes["session.id"] == session_id  # the ids crossed the A2A agent too
        assert server_span.attributes["enduser.id"] == "ada"
        client_span = only(spans, kind=KIND_CLIENT, parent_span_id=server_span.span_id)
        assert client_span.service == "coordinator-sidecar"
        assert client_span.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert client_span.attributes["session.id"] == session_id
        delegated[client_span.attributes["gen_ai.agent.name"]] = client_span.attributes["agent_gateway.adapter"]
    assert delegated == {"researcher": "langgraph", "writer": "mastra"}
    assert len(spans) == 6  # nothing else, nothing orphaned
