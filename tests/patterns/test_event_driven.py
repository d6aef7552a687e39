"""Event-driven flows end to end: real gateways, real HTTP agents on loopback, both bus backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentgateway.v1 import events_pb2, events_pb2_grpc
from gateway.bus.base import Delivery
from gateway.config import ConfigError, load_config_text
from gateway.server.app import GatewayServer
from tests.bus.nats_support import NATS_URL, Names, delete_nats_resources, require_nats
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = int("0af7651916cd43dd8448eb211c80319c", 16)


def flows_yaml(names: Names, backend: str, first_agent: str = "upper") -> str:
    p = names.prefix
    nats = f", url: '{NATS_URL}', stream_prefix: {names.stream_prefix}, ack_wait: 5s" if backend == "nats" else ""
    return f"""
bus: {{backend: {backend}, prefixes: [{p}], dead_letter_prefix: {names.dead_letter_prefix}{nats},
      redelivery: {{max_deliver: 3, backoff: [50ms, 100ms]}}}}
triggers:
  - name: shout
    subject: {p}.text.received
    agent: {first_agent}
    input: "{{{{ event.data.text }}}}"
    publish: {p}.text.shouted
    output: {{shouted: "{{{{ result.text }}}}", source: "{{{{ event.id }}}}", session: "{{{{ context.session_id }}}}"}}
    concurrency: 4
  - name: measure
    subject: {p}.text.shouted
    agent: count
    input: "{{{{ event.data.shouted }}}} {{{{ event.data.source }}}}"
  - name: fragile
    subject: {p}.jobs.*
    agent: fail
server: {{drain_timeout: 1s, max_hops: 6}}
"""


Setup = tuple[Callable[..., AbstractAsyncContextManager[GatewayServer]], ScriptedAgents, Names]


@pytest.fixture(params=["memory", "nats"])
async def setup(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, serve_app: Starter
) -> AsyncIterator[Setup]:
    if request.param == "nats":
        require_nats()
    names = Names.fresh()
    agents = ScriptedAgents()
    url = await serve_app(agents.app())

    def gateway(first_agent: str = "upper") -> AbstractAsyncContextManager[GatewayServer]:
        return gateway_factory(agents_yaml(url) + flows_yaml(names, request.param, first_agent))

    yield gateway, agents, names
    if request.param == "nats":
        await delete_nats_resources(names)


async def publish(gw: GatewayServer, subject: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{gw.addresses.http}/v1/events/{subject}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, f"{len(matching)} spans named {name!r}: {[s.name for s in spans]}"
    return matching[0]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


async def test_http_publish_chains_two_agents_through_events_in_one_trace(
    setup: Setup, span_exporter: InMemorySpanExporter
) -> None:
    gateway, agents, names = setup
    async with gateway() as gw:
        headers = {"traceparent": TRACEPARENT, "x-session-id": "sess-7"}
        status, body = await publish(gw, f"{names.prefix}.text.received", {"text": "hello"}, headers)
        assert status == 202, body
        assert body["subject"] == f"{names.prefix}.text.received" and not body["duplicate"]
        await until(lambda: bool(agents.names("count")))
    assert [c for c in agents.calls if c[0] in ("upper", "count")] == [
        ("upper", "hello", None),
        ("count", f"HELLO {body['eventId']}", None),
    ]
    spans = span_exporter.get_finished_spans()
    server = by_name(spans, "POST /v1/events/{subject}")
    first_publish = by_name(spans, f"publish {names.prefix}.text.received")
    shout = by_name(spans, "event shout")
    second_publish = by_name(spans, f"publish {names.prefix}.text.shouted")
    measure = by_name(spans, "event measure")
    # One trace, parent to child, from the HTTP publisher through both agents.
    assert {s.context.trace_id for s in (server, first_publish, shout, second_publish, measure)} == {TRACE_ID}
    assert parent_of(first_publish) == server.context.span_id
    assert parent_of(shout) == first_publish.context.span_id
    assert parent_of(second_publish) == shout.context.span_id
    assert parent_of(measure) == second_publish.context.span_id
    assert shout.attributes is not None and shout.attributes["messaging.message.id"] == body["eventId"]
    invoke_count = by_name(spans, "invoke_agent count")
    assert invoke_count.context.trace_id == TRACE_ID
    assert invoke_count.attributes is not None and invoke_count.attributes["session.id"] == "sess-7"


async def test_failing_handler_is_redelivered_then_dead_lettered(setup: Setup) -> None:
    gateway, agents, names = setup
    async with gateway() as gw:
        dead = await gw.events.bus.subscribe(f"{names.dead_letter_prefix}.>", "test-dlq")
        status, body = await publish(gw, f"{names.prefix}.jobs.nightly", {"job": 1}, {"x-session-id": "s-dl"})
        assert status == 202
        letter = await dead.next(timeout=10.0)
        assert letter is not None, "no dead letter arrived"
        await letter.ack()
    assert len(agents.names("fail")) == 3  # max_deliver attempts, one agent call each
    assert letter.subject == f"{names.dead_letter_prefix}.{names.prefix}.jobs.nightly"
    assert letter.event_id == body["eventId"]
    assert letter.headers["x-session-id"] == "s-dl"
    context = letter.json()
    assert context["attempts"] == 3 and context["consumer"] == "fragile"
    assert context["data"] == {"job": 1}
    assert context["error"]["code"] == "UNAVAILABLE"


class Redelivered(Delivery):
    """A redelivery of an event the gateway already handled (its ack was lost)."""

    def __init__(self, original: Delivery) -> None:
        self.subject, self.data, self.headers = original.subject, original.data, original.headers
        self.event_id, self.attempt = original.event_id, original.attempt + 1

    async def ack(self) -> None:
        return None

    async def nak(self, delay: float | None = None) -> None:
        raise AssertionError("a handled event must not fail on redelivery")


async def test_a_redelivered_event_that_was_handled_does_not_invoke_again(setup: Setup) -> None:
    gateway, agents, names = setup
    async with gateway() as gw:
        observer = await gw.events.bus.subscribe(f"{names.prefix}.text.received", "observer")
        await publish(gw, f"{names.prefix}.text.received", {"text": "once"})
        original = await observer.next(timeout=5.0)
        assert original is not None
        await original.ack()
        await until(lambda: bool(agents.names("count")))
        shout = next(c for c in gw.events.consumers if c.name == "shout")
        await shout.handler(Redelivered(original))
        await asyncio.sleep(0.3)  # a duplicate downstream event would reach `count` by now
        # Publishing the same event id again is deduplicated by the bus.
        status, again = await publish(
            gw, f"{names.prefix}.text.received", {"text": "once"}, {"x-event-id": original.event_id}
        )
        assert status == 202 and again["duplicate"] is True
        await asyncio.sleep(0.2)
    assert len(agents.names("upper")) == 1
    assert len(agents.names("count")) == 1


async def test_grpc_publish_fires_the_trigger_and_rejects_bad_subjects(setup: Setup) -> None:
    gateway, agents, names = setup
    async with gateway() as gw:
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            data = struct_pb2.Value()
            data.struct_value.update({"text": "via grpc"})
            response = await stub.PublishEvent(
                events_pb2.PublishEventRequest(subject=f"{names.prefix}.text.received", data=data, event_id="g-1")
            )
            assert (response.event_id, response.duplicate) == ("g-1", False)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.PublishEvent(events_pb2.PublishEventRequest(subject="elsewhere.x"))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "bus prefixes" in (caught.value.details() or "")
        await until(lambda: bool(agents.names("count")))
    assert ("upper", "via grpc", None) in agents.calls
    assert ("count", "VIA GRPC g-1", None) in agents.calls


async def test_http_publish_errors_are_structured(setup: Setup) -> None:
    gateway, _, names = setup
    async with gateway() as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/v1/events"
        async with session.post(f"{url}/{names.prefix}.x", data=b"{not json") as response:
            assert response.status == 400
            assert "not valid JSON" in (await response.json())["error"]["message"]
        async with session.post(f"{url}/nowhere.x", json={}) as response:
            body = await response.json()
            assert response.status == 400 and body["error"]["code"] == "INVALID_ARGUMENT"
            assert "bus prefixes" in body["error"]["message"]
        async with session.post(f"{url}/{names.prefix}.x", json={}, headers={"x-event-id": "bad id"}) as response:
            assert response.status == 400


@pytest.mark.parametrize("setup", ["nats"], indirect=True)  # durability across a restart is JetStream's
async def test_gateway_restart_loses_no_event_and_handles_none_twice(setup: Setup) -> None:
    gateway, agents, names = setup
    published: list[str] = []
    first = gateway("slow1")
    gw = await first.__aenter__()
    assert gw.events.bus.backend == "nats"
    try:
        for i in range(12):
            status, body = await publish(gw, f"{names.prefix}.text.received", {"text": f"m{i}"})
            assert status == 202
            published.append(body["eventId"])
        await until(lambda: len(agents.names("count")) >= 3)
    finally:
        await first.__aexit__(None, None, None)  # stopped mid-stream
    before_restart = len(agents.names("count"))
    assert before_restart < 12, "the first gateway finished everything: the restart proves nothing"
    async with gateway("slow1"):  # a new gateway process joins the same durable groups
        await until(lambda: len(agents.names("count")) >= 12, timeout=30)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
    # Each published event reached the second agent exactly once, across the restart.
    measured = sorted(c[1].split(" ")[-1] for c in agents.calls if c[0] == "count")
    assert measured == sorted(published)


def test_config_refuses_triggers_outside_the_bus_or_to_unknown_agents() -> None:
    yaml_text = """
agents: {a: {kind: http, endpoint: "http://127.0.0.1:1"}}
bus: {prefixes: [orders]}
triggers:
  - {name: t1, subject: payments.>, agent: a}
  - {name: t2, subject: orders.created, agent: ghost, publish: elsewhere.done}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml_text, "gw.yaml")
    assert str(caught.value).splitlines() == [
        "gw.yaml:5: triggers[0].subject: the subject must start with one of bus.prefixes ['orders']",
        "gw.yaml:6: triggers[1].agent: 'ghost' is not an agent, a route or a workflow",
        "gw.yaml:6: triggers[1].publish: the subject must start with one of bus.prefixes ['orders']",
    ]
    with pytest.raises(ConfigError, match=r"gw.yaml:2: triggers\[0\].subject: invalid subject pattern 'events.>.bad'"):
        load_config_text('triggers:\n  - {name: t, subject: "events.>.bad", agent: a}\n', "gw.yaml")


async def test_a_routes_completion_publishes_an_event_that_triggers_an_agent(
    gateway_factory: GatewayFactory, serve_app: Starter
) -> None:
    names = Names.fresh()
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    p = names.prefix
    text = agents_yaml(url) + f"""
bus: {{backend: memory, prefixes: [{p}], dead_letter_prefix: {names.dead_letter_prefix}}}
routes:
  - {{name: shouting, match: {{agent: shout}}, target: upper, publish: {p}.shouted}}
triggers:
  - {{name: measure, subject: {p}.shouted, agent: count, input: "{{{{ event.data.text }}}} via {{{{ event.data.route }}}}"}}
"""
    async with gateway_factory(text) as gw:
        async with aiohttp.ClientSession() as session, session.post(
            f"http://{gw.addresses.http}/v1/agents/shout/invoke",
            json={"messages": [{"parts": [{"text": "quiet"}]}]},
        ) as response:
            assert response.status == 200
            assert (await response.json())["messages"][0]["parts"][0]["text"] == "QUIET"
        await until(lambda: bool(agents.names("count")))
    assert ("count", "QUIET via shouting", None) in agents.calls


def test_route_publish_subject_must_be_under_a_bus_prefix() -> None:
    from gateway.config import ConfigError, load_config_text

    with pytest.raises(ConfigError, match=r"routes\[0\]\.publish: the subject must start with one of bus\.prefixes"):
        load_config_text(
            "agents: {a: {kind: http, endpoint: 'http://127.0.0.1:1'}}\n"
            "routes: [{match: {agent: b}, target: a, publish: elsewhere.done}]\n",
            "gw.yaml",
        )
