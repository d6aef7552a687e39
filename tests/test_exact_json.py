"""JSON data arrives exactly as it was sent, on every path (issue 15, defect 13).

Each test sends ``PAYLOAD`` through one path and asserts, types included, what a
recording upstream on loopback received and what came back: ``7`` stays ``7``
(never ``7.0``), ``12345678901234567890`` keeps every digit, ``2.0`` stays the
float ``2.0`` (Python's json reads ``2.0`` as a float, and so does every hop).
Before the fix every structured part crossed ``google.protobuf.Struct`` (doubles
only) or a mapping that imitated it, so each of these failed, but for state (stored
as JSON text already: its test guards that) and the legacy-client check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web

from agentgateway.v1 import events_pb2, events_pb2_grpc
from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from agentgateway.v1 import runs_pb2 as rpb
from agentgateway.v1 import runs_pb2_grpc as rpb_grpc
from agentgateway.v1 import state_pb2 as spb
from agentgateway.v1 import state_pb2_grpc as spb_grpc
from agentgateway_client import AgentClient, ClientError, DataPart, Message, Role
from gateway.server.app import GatewayServer
from gateway.template import Template
from tests.bus.nats_support import NATS_URL, Names, delete_nats_resources, require_nats
from tests.conftest import GatewayFactory, Starter
from tests.helpers.wire import typed

PAYLOAD: dict[str, Any] = {"order": 7, "big": 12345678901234567890, "neg": -3, "f": 1.5, "nested": {"n": [1, 2.0, 3]}}
TEXT = json.dumps(PAYLOAD)


def exact(value: Any, expected: Any = PAYLOAD) -> None:
    assert typed(value) == typed(expected), f"{value!r} != {expected!r}"


def first_data(message: dict[str, Any]) -> Any:
    return next((p["data"] for p in message["parts"] if "data" in p), None)


@dataclass
class Recorder:
    """Upstreams of every kind on one loopback server, recording the JSON bodies they receive."""

    bodies: dict[str, list[Any]] = field(default_factory=dict)

    def record(self, name: str, body: Any) -> None:
        self.bodies.setdefault(name, []).append(body)

    def last(self, name: str) -> Any:
        return self.bodies[name][-1]

    # The generic HTTP agent protocol (gateway/adapters/http.py): echo the data part back, with metadata.
    async def invoke(self, request: web.Request) -> web.Response:
        name = request.match_info["agent"]
        body = await request.json()
        self.record(name, body)
        if name == "reject":
            return web.json_response({"error": "no"}, status=409)
        data = first_data(body["messages"][-1])
        if name == "maker":
            data = {"qty": 2, "payload": PAYLOAD}
        elif name == "manager":  # hierarchical: delegate once, then answer with the worker's data
            data = (
                {"delegate": [{"worker": "echo", "input": PAYLOAD}]}
                if not data["results"]
                else {"answer": data["results"][0]["data"]}
            )
        reply = {"role": "ROLE_AGENT", "parts": [{"data": data, "metadata": {"m": 7}}], "metadata": {"k": 9}}
        return web.json_response({"messages": [reply]})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["agent"]
        body = await request.json()
        self.record(name, body)
        data = first_data(body["messages"][-1])
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        message = {"role": "ROLE_AGENT", "parts": [{"data": data}]}
        for event in ({"type": "status", "data": data}, {"type": "message", "message": message}):
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response

    async def langgraph(self, request: web.Request) -> web.Response:
        self.record("langgraph", await request.json())
        return web.json_response({"out": PAYLOAD})  # no messages key: the whole state is the answer

    async def mastra(self, request: web.Request) -> web.Response:
        self.record("mastra", await request.json())
        return web.json_response({"text": "", "object": PAYLOAD})

    async def crewai_kickoff(self, request: web.Request) -> web.Response:
        self.record("crewai", await request.json())
        return web.json_response({"kickoff_id": "k-1"})

    async def crewai_status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": "SUCCESS", "result": {"output": PAYLOAD}})

    async def a2a(self, request: web.Request) -> web.Response:
        envelope = await request.json()
        self.record("a2a", envelope)
        parts = envelope["params"]["message"]["parts"]
        message = {"role": "ROLE_AGENT", "messageId": "r-1", "parts": parts}
        return web.json_response({"jsonrpc": "2.0", "id": envelope["id"], "result": {"message": message}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/http/{agent}/invoke", self.invoke)
        app.router.add_post("/http/{agent}/stream", self.stream)
        app.router.add_post("/langgraph/runs/wait", self.langgraph)
        app.router.add_post("/mastra/api/agents/helper/generate", self.mastra)
        app.router.add_post("/crewai/kickoff", self.crewai_kickoff)
        app.router.add_get("/crewai/status/k-1", self.crewai_status)
        app.router.add_post("/a2a/rpc", self.a2a)
        return app


class RecordingGrpcAgent(pb_grpc.AgentGatewayServiceServicer):
    """An agent serving the gateway's own proto: records requests, echoes their data part."""

    def __init__(self) -> None:
        self.requests: list[pb.InvokeRequest] = []

    def _reply(self, request: pb.InvokeRequest) -> pb.Message:
        self.requests.append(request)
        data = next(p.data_json for p in request.messages[-1].parts if p.WhichOneof("kind") == "data_json")
        return pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(data_json=data, metadata_json='{"m":7}')])

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        return pb.InvokeResponse(messages=[self._reply(request)], metadata_json='{"k":9}')

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        message = self._reply(request)
        yield pb.InvokeStreamResponse(event=pb.Event(type="status", data_json=message.parts[0].data_json, sequence=1))
        yield pb.InvokeStreamResponse(event=pb.Event(type="message", message=message, sequence=2))


def agents_yaml(url: str, grpc_address: str) -> str:
    http = "".join(
        f"  {n}:\n    kind: http\n    endpoint: {url}/http/{n}\n"
        for n in ("echo", "maker", "manager", "sink", "reject")
    )
    return f"""
agents:
{http}  echo-grpc:
    kind: grpc
    endpoint: {grpc_address}
  langgraph:
    kind: langgraph
    endpoint: {url}/langgraph
  mastra:
    kind: mastra
    endpoint: {url}/mastra
    options: {{agent_id: helper}}
  crewai:
    kind: crewai
    endpoint: {url}/crewai
    options: {{poll_interval: 0.05}}
  a2a:
    kind: a2a
    endpoint: {url}/a2a
    options: {{rpc_url: {url}/a2a/rpc}}
workflows:
  chain:
    kind: sequential
    steps:
      - {{name: make, agent: maker}}
      - {{name: take, agent: echo, input: "{{{{ steps.make.data }}}}"}}
    output: "{{{{ steps.take.data }}}}"
  fan:
    kind: parallel
    aggregate: merge
    branches:
      - {{name: one, agent: echo, input: "{{{{ input.data }}}}"}}
      - {{name: two, agent: echo-grpc, input: "{{{{ input.data }}}}"}}
  team:
    kind: hierarchical
    manager: manager
    workers: [echo]
    input: "{{{{ input.data }}}}"
"""


@dataclass
class Setup:
    gateway: GatewayServer
    recorder: Recorder
    grpc_agent: RecordingGrpcAgent

    @property
    def http(self) -> str:
        return f"http://{self.gateway.addresses.http}"


@pytest.fixture
async def grpc_agent() -> AsyncIterator[tuple[RecordingGrpcAgent, str]]:
    agent = RecordingGrpcAgent()
    server = grpc.aio.server()
    pb_grpc.add_AgentGatewayServiceServicer_to_server(agent, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield agent, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def setup(
    gateway_factory: GatewayFactory, serve_app: Starter, grpc_agent: tuple[RecordingGrpcAgent, str]
) -> AsyncIterator[Setup]:
    recorder = Recorder()
    url = await serve_app(recorder.app())
    async with gateway_factory(agents_yaml(url, grpc_agent[1])) as gw:
        yield Setup(gw, recorder, grpc_agent[0])


def invoke_body(data: Any = PAYLOAD) -> dict[str, Any]:
    return {
        "messages": [{"role": "ROLE_USER", "parts": [{"data": data, "metadata": {"m": 7}}], "metadata": {"k": 9}}],
        "options": {"params": {"p": PAYLOAD}},
    }


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def sse_frames(url: str, body: Any | None = None) -> list[tuple[str, Any]]:
    frames: list[tuple[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        method = session.post(url, json=body) if body is not None else session.get(url)
        async with method as response:
            assert response.status == 200, await response.text()
            text = await response.text()
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            frames.append((fields.get("event", "message"), json.loads(fields["data"])))
    return frames


def data_json(part: pb.Part) -> Any:
    assert part.WhichOneof("kind") == "data_json"
    return json.loads(part.data_json)


def grpc_request(agent: str) -> pb.InvokeRequest:
    part = pb.Part(data_json=TEXT, metadata_json='{"m":7}')
    message = pb.Message(role=pb.ROLE_USER, parts=[part], metadata_json='{"k":9}')
    return pb.InvokeRequest(agent=agent, messages=[message], options=pb.InvokeOptions(params_json='{"p":' + TEXT + "}"))


# -- fronts and the generic adapters ------------------------------------------------


async def test_http_front_to_the_http_adapter_and_back(setup: Setup) -> None:
    status, body = await post(f"{setup.http}/v1/agents/echo/invoke", invoke_body())
    assert status == 200, body
    sent = setup.recorder.last("echo")
    exact(sent["messages"][0]["parts"][0]["data"])
    exact(sent["messages"][0]["parts"][0]["metadata"], {"m": 7})
    exact(sent["messages"][0]["metadata"], {"k": 9})
    exact(sent["options"]["params"], {"p": PAYLOAD})
    exact(body["messages"][0]["parts"][0]["data"])
    exact(body["messages"][0]["parts"][0]["metadata"], {"m": 7})


async def test_http_stream_events_and_messages_stay_exact(setup: Setup) -> None:
    frames = await sse_frames(f"{setup.http}/v1/agents/echo/stream", invoke_body())
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    events = [data["event"] for kind, data in frames if kind == "event"]
    exact(events[0]["data"])
    exact(first_data(events[1]["message"]))
    result = next(data["result"] for kind, data in frames if kind == "result")
    exact(first_data(result["messages"][0]))


async def test_grpc_front_to_the_grpc_adapter_and_back(setup: Setup) -> None:
    assert setup.gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(setup.gateway.addresses.grpc) as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)
        response = await stub.Invoke(grpc_request("echo-grpc"), timeout=10)
        streamed = [item async for item in stub.InvokeStream(grpc_request("echo-grpc"), timeout=10)]
    sent = setup.grpc_agent.requests[0]
    exact(data_json(sent.messages[0].parts[0]))
    exact(json.loads(sent.messages[0].parts[0].metadata_json), {"m": 7})
    exact(json.loads(sent.messages[0].metadata_json), {"k": 9})
    exact(json.loads(sent.options.params_json), {"p": PAYLOAD})
    assert not sent.messages[0].parts[0].HasField("metadata")  # the lossy Struct is never written
    exact(data_json(response.messages[0].parts[0]))
    exact(json.loads(response.metadata_json), {"k": 9})
    exact(json.loads(streamed[0].event.data_json))
    exact(data_json(streamed[-1].result.messages[0].parts[0]))


async def test_grpc_front_to_the_http_adapter(setup: Setup) -> None:
    assert setup.gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(setup.gateway.addresses.grpc) as channel:
        response = await pb_grpc.AgentGatewayServiceStub(channel).Invoke(grpc_request("echo"), timeout=10)
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    exact(setup.recorder.last("echo")["options"]["params"], {"p": PAYLOAD})
    exact(data_json(response.messages[0].parts[0]))


async def test_a_legacy_struct_client_is_still_understood(setup: Setup) -> None:
    """A client built against the Struct-only contract: read, with the doubles it chose to send."""
    request = pb.InvokeRequest(agent="echo", messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part()])])
    request.messages[0].parts[0].data.struct_value.update({"order": 7})
    assert setup.gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(setup.gateway.addresses.grpc) as channel:
        response = await pb_grpc.AgentGatewayServiceStub(channel).Invoke(request, timeout=10)
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"], {"order": 7.0})
    exact(data_json(response.messages[0].parts[0]), {"order": 7.0})


async def test_the_python_client(setup: Setup) -> None:
    assert setup.gateway.addresses.grpc is not None
    async with AgentClient(setup.gateway.addresses.grpc) as client:
        result = await client.invoke("echo", Message(Role.USER, (DataPart(PAYLOAD),)), params={"p": PAYLOAD})
        events = [event async for event in client.stream("echo-grpc", Message(Role.USER, (DataPart(PAYLOAD),)))]
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    exact(setup.recorder.last("echo")["options"]["params"], {"p": PAYLOAD})
    part = result.messages[0].parts[0]
    assert isinstance(part, DataPart)
    exact(part.data)
    exact(part.metadata, {"m": 7})
    exact(events[0].data)
    exact(data_json(setup.grpc_agent.requests[-1].messages[0].parts[0]))


async def test_error_details_keep_integers_over_grpc(setup: Setup) -> None:
    assert setup.gateway.addresses.grpc is not None
    async with AgentClient(setup.gateway.addresses.grpc) as client:
        with pytest.raises(ClientError) as caught:
            await client.invoke("reject", "x")
    assert typed(caught.value.details["upstream_status"]) == typed(409)


# -- every adapter's outbound JSON -----------------------------------------------


def _langgraph_data(body: Any) -> Any:
    (block,) = body["input"]["messages"][0]["content"]
    return json.loads(block["text"])  # a data part travels as a JSON text block


def _mastra_data(body: Any) -> Any:
    (block,) = body["messages"][0]["content"]
    return json.loads(block["text"])


ADAPTERS: dict[str, Callable[[Any], Any]] = {
    "langgraph": _langgraph_data,
    "mastra": _mastra_data,
    "crewai": lambda body: body["inputs"],  # a JSON object part is the crew's inputs
    "a2a": lambda body: body["params"]["message"]["parts"][0]["data"],
}


@pytest.mark.parametrize("agent", sorted(ADAPTERS))
async def test_every_adapter_sends_and_reads_exact_json(setup: Setup, agent: str) -> None:
    body = {"messages": [{"role": "ROLE_USER", "parts": [{"data": PAYLOAD}]}]}
    status, answer = await post(f"{setup.http}/v1/agents/{agent}/invoke", body)
    assert status == 200, answer
    exact(ADAPTERS[agent](setup.recorder.last(agent)))
    reply = first_data(answer["messages"][0])
    exact(reply, {"out": PAYLOAD} if agent == "langgraph" else PAYLOAD)


# -- workflows --------------------------------------------------------------------


async def test_a_sequential_step_passes_exact_data_to_the_next(setup: Setup) -> None:
    status, body = await post(f"{setup.http}/v1/agents/chain/invoke", {"messages": [{"parts": [{"text": "go"}]}]})
    assert status == 200, body
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"], {"qty": 2, "payload": PAYLOAD})
    exact(first_data(body["messages"][0]), {"qty": 2, "payload": PAYLOAD})


async def test_parallel_branches_over_http_and_grpc_get_exact_data(setup: Setup) -> None:
    status, body = await post(f"{setup.http}/v1/agents/fan/invoke", invoke_body())
    assert status == 200, body
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    exact(data_json(setup.grpc_agent.requests[-1].messages[0].parts[0]))
    exact(first_data(body["messages"][0]))  # merged: both branches answered PAYLOAD


async def test_the_hierarchical_manager_gets_an_integer_round(setup: Setup) -> None:
    status, body = await post(f"{setup.http}/v1/agents/team/invoke", invoke_body())
    assert status == 200, body
    first, second = setup.recorder.bodies["manager"]
    brief = first["messages"][0]["parts"][0]["data"]
    exact(brief["task"])
    assert typed(brief["round"]) == typed(0) and typed(second["messages"][0]["parts"][0]["data"]["round"]) == typed(1)
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    exact(second["messages"][0]["parts"][0]["data"]["results"][0]["data"])
    exact(first_data(body["messages"][0]))


def test_templates_interpolate_numbers_as_their_json() -> None:
    """Text interpolation writes a number as JSON does: 2 as "2", 2.0 as "2.0" (no float-to-int guessing)."""
    rendered = Template("qty={{ q }} f={{ f }} big={{ b }}").render({"q": 2, "f": 2.0, "b": PAYLOAD["big"]})
    assert rendered == "qty=2 f=2.0 big=12345678901234567890"


# -- events ---------------------------------------------------------------------------


def events_yaml(names: Names, backend: str) -> str:
    p = names.prefix
    nats = f", url: '{NATS_URL}', stream_prefix: {names.stream_prefix}, ack_wait: 5s" if backend == "nats" else ""
    return f"""
bus: {{backend: {backend}, prefixes: [{p}], dead_letter_prefix: {names.dead_letter_prefix}{nats}}}
triggers:
  - name: first
    subject: {p}.orders.placed
    agent: echo
    input: {{payload: "{{{{ event.data }}}}", attempt: "{{{{ event.attempt }}}}"}}
    publish: {p}.orders.echoed
    output: "{{{{ result.data }}}}"
  - name: second
    subject: {p}.orders.echoed
    agent: sink
"""


@pytest.fixture(params=["memory", "nats"])
async def event_setup(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, serve_app: Starter
) -> AsyncIterator[tuple[GatewayServer, Recorder, Names]]:
    if request.param == "nats":
        require_nats()
    names = Names.fresh()
    recorder = Recorder()
    url = await serve_app(recorder.app())
    yaml_text = agents_yaml(url, "127.0.0.1:1").split("workflows:")[0] + events_yaml(names, request.param)
    try:
        async with gateway_factory(yaml_text) as gw:
            yield gw, recorder, names
    finally:
        if request.param == "nats":
            await delete_nats_resources(names)


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


@pytest.mark.parametrize("front", ["http", "grpc"])
async def test_events_reach_triggers_exactly_through_the_bus(
    event_setup: tuple[GatewayServer, Recorder, Names], front: str
) -> None:
    gw, recorder, names = event_setup
    subject = f"{names.prefix}.orders.placed"
    if front == "http":
        status, body = await post(f"http://{gw.addresses.http}/v1/events/{subject}", PAYLOAD)
        assert status == 202, body
    else:
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            await stub.PublishEvent(events_pb2.PublishEventRequest(subject=subject, data_json=TEXT), timeout=10)
    await until(lambda: "sink" in recorder.bodies)
    exact(recorder.last("echo")["messages"][0]["parts"][0]["data"], {"payload": PAYLOAD, "attempt": 1})
    # The first trigger's result, published on the bus, reaches the second one unchanged.
    exact(recorder.last("sink")["messages"][0]["parts"][0]["data"], {"payload": PAYLOAD, "attempt": 1})


# -- background runs (stored, then replayed) -----------------------------------------


async def test_a_background_run_stores_and_replays_exact_data(setup: Setup) -> None:
    status, run = await post(f"{setup.http}/v1/agents/echo/runs", invoke_body())
    assert status == 202, run
    run_id = run["runId"]
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(f"{setup.http}/v1/runs/{run_id}/result") as response:
                if response.status != 202:
                    assert response.status == 200, await response.text()
                    result = await response.json()
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the run did not finish")
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    exact(setup.recorder.last("echo")["options"]["params"], {"p": PAYLOAD})
    exact(first_data(result["messages"][0]))
    frames = await sse_frames(f"{setup.http}/v1/runs/{run_id}/events")
    replayed = [data for kind, data in frames if kind == "event"]
    exact(replayed[0]["event"]["data"] if "event" in replayed[0] else replayed[0]["data"])
    assert setup.gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(setup.gateway.addresses.grpc) as channel:
        stub = rpb_grpc.RunServiceStub(channel)
        response = (await stub.GetRunResult(rpb.GetRunResultRequest(run_id=run_id), timeout=10)).result
        watched = [item async for item in stub.WatchRun(rpb.WatchRunRequest(run_id=run_id), timeout=10)]
    exact(data_json(response.messages[0].parts[0]))
    exact(json.loads(watched[0].event.data_json))


# -- state ---------------------------------------------------------------------------------


async def test_state_keeps_exact_json_over_both_fronts(setup: Setup) -> None:
    headers = {"x-session-id": "s-exact"}
    async with aiohttp.ClientSession() as session:
        url = f"{setup.http}/v1/state/session/k"
        async with session.put(url, json={"value": PAYLOAD}, headers=headers) as response:
            assert response.status == 201, await response.text()
        async with session.get(url, headers=headers) as response:
            exact((await response.json())["value"])
    assert setup.gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(setup.gateway.addresses.grpc) as channel:
        answer = await spb_grpc.StateServiceStub(channel).GetState(
            spb.GetStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k"), metadata=tuple(headers.items()), timeout=10
        )
    exact(json.loads(answer.entry.json))


# -- the A2A front -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "0.3"])
async def test_a2a_data_parts_stay_exact(setup: Setup, version: str) -> None:
    if version == "1.0":
        message = {"role": "ROLE_USER", "messageId": "m-1", "parts": [{"data": PAYLOAD}]}
        envelope = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        headers = {"a2a-version": "1.0"}
    else:
        message = {"kind": "message", "role": "user", "messageId": "m-1", "parts": [{"kind": "data", "data": PAYLOAD}]}
        envelope = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": message}}
        headers = {}
    status, reply = await post(f"{setup.http}/a2a/echo", envelope, headers)
    assert status == 200, reply
    exact(setup.recorder.last("echo")["messages"][0]["parts"][0]["data"])
    task = reply["result"]["task"] if version == "1.0" else reply["result"]
    exact(task["artifacts"][0]["parts"][0]["data"])
