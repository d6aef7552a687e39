"""Defect 12: event grants match with the bus's subject semantics.

The attack: an identity granted ``events.alice.*`` publishes on
``events.alice.x.y`` (over HTTP and gRPC). A trigger on ``events.>`` hands
every published event to a recording agent, so the assertion is on what
reached the upstream: only the events the grant allows.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2

from agentgateway.v1 import events_pb2, events_pb2_grpc
from gateway.config import ConfigError, load_config_text
from gateway.model import PermissionDenied
from gateway.protocols.subjects import subject_matches
from gateway.security.authz import Authorizer
from gateway.security.identity import Identity
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory
from tests.security.recording import RecordingUpstream, recording_upstream

KEY = "s3cret-alice-key"


def grants_yaml(url: str) -> str:
    sha = hashlib.sha256(KEY.encode()).hexdigest()
    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key]}}
agents:
  sink: {{kind: http, endpoint: {url}}}
security:
  api_keys: [{{identity: alice, sha256: {sha}}}]
  authorization:
    - {{identities: [alice], events: ['events.alice.*', 'events.shared.>']}}
triggers:
  - {{name: record, subject: 'events.>', agent: sink, input: '{{{{ event.subject }}}}'}}
"""


@pytest.fixture
async def setup(gateway_factory: GatewayFactory) -> AsyncIterator[tuple[GatewayServer, RecordingUpstream]]:
    async with recording_upstream() as upstream, gateway_factory(grants_yaml(upstream.url)) as gw:
        yield gw, upstream


def received_subjects(upstream: RecordingUpstream) -> list[str]:
    return [r.json()["messages"][0]["parts"][0]["text"] for r in upstream.requests]


async def wait_for(upstream: RecordingUpstream, count: int) -> None:
    for _ in range(200):
        if len(upstream.requests) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the upstream received {received_subjects(upstream)}, expected {count} events")


async def test_star_grants_exactly_one_token_over_http(setup: tuple[GatewayServer, RecordingUpstream]) -> None:
    gw, upstream = setup
    statuses = {}
    async with aiohttp.ClientSession() as session:
        for subject in ("events.alice.x.y", "events.alice", "events.alicex.y", "events.alice.x", "events.shared.a.b"):
            async with session.post(
                f"http://{gw.addresses.http}/v1/events/{subject}", json={}, headers={"x-api-key": KEY}
            ) as response:
                statuses[subject] = response.status
    assert statuses == {
        "events.alice.x.y": 403,
        "events.alice": 403,
        "events.alicex.y": 403,
        "events.alice.x": 202,
        "events.shared.a.b": 202,
    }
    await wait_for(upstream, 2)
    await asyncio.sleep(0.2)  # a denied event that slipped through would arrive by now
    assert sorted(received_subjects(upstream)) == ["events.alice.x", "events.shared.a.b"]


async def test_star_grants_exactly_one_token_over_grpc(setup: tuple[GatewayServer, RecordingUpstream]) -> None:
    gw, upstream = setup
    metadata = (("x-api-key", KEY),)
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.PublishEvent(
                events_pb2.PublishEventRequest(subject="events.alice.x.y", data=struct_pb2.Value(string_value="d")),
                metadata=metadata,
                timeout=10,
            )
        await stub.PublishEvent(
            events_pb2.PublishEventRequest(subject="events.alice.ok", data=struct_pb2.Value(string_value="d")),
            metadata=metadata,
            timeout=10,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await wait_for(upstream, 1)
    await asyncio.sleep(0.2)
    assert received_subjects(upstream) == ["events.alice.ok"]


@pytest.mark.parametrize(
    ("pattern", "subject", "allowed"),
    [
        ("events.alice.*", "events.alice.x", True),
        ("events.alice.*", "events.alice.x.y", False),
        ("events.alice.*", "events.alice", False),
        ("events.alice.>", "events.alice.x.y", True),
        ("events.alice.>", "events.alice", False),
        ("events.*.x", "events.bob.x", True),
        ("events.*.x", "events.bob.y.x", False),
        (">", "anything.at.all", True),
    ],
)
def test_the_authorizer_and_the_bus_agree(pattern: str, subject: str, allowed: bool) -> None:
    config = load_config_text(f"security:\n  authorization: [{{identities: [a], events: ['{pattern}']}}]\n", "gw.yaml")
    authorizer = Authorizer(config.security.authorization)
    try:
        authorizer.check_publish(Identity("a", "api_key"), subject)
        granted = True
    except PermissionDenied:
        granted = False
    assert granted is allowed is subject_matches(pattern, subject)


def test_a_grant_that_is_not_a_subject_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="subject pattern"):
        load_config_text("security:\n  authorization: [{identities: [a], events: ['events.al*']}]\n", "gw.yaml")
