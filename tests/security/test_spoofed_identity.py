"""Defect 5: a caller claiming another end user through W3C baggage.

The attack on every path (HTTP invoke and stream, gRPC invoke and stream, the
passthrough; API keys and JWT): an authenticated caller sends ``baggage:
enduser.id=victim`` (or the same entry in the body's ``context.baggage``) and
the tests assert what the upstream received, on the wire: the ``baggage``
header and the body's ``context.baggage``. The ids the gateway vouches for
(``enduser.id``, ``session.id``, ``gen_ai.conversation.id``) are the
gateway's own values or absent; other entries pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import GatewayFactory
from tests.security.pki import TokenIssuer
from tests.security.recording import Recorded, RecordingUpstream, recording_upstream

KEY = "s3cret-mallory-key"
ATTACK = "enduser.id=victim,session.id=victims-session,gen_ai.conversation.id=victims-thread,tenant=acme"
BODY_ATTACK = {"enduser.id": "victim", "tenant": "acme"}


def baggage_of(header: str) -> dict[str, str]:
    entries = (item.split(";")[0].split("=", 1) for item in header.split(",") if "=" in item)
    return {unquote(k.strip()): unquote(v.strip()) for k, v in entries}


def secured_yaml(url: str, grpc_url: str, jwks: Path) -> str:
    sha = hashlib.sha256(KEY.encode()).hexdigest()
    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key, jwt]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key, jwt]}}
agents:
  rec: {{kind: http, endpoint: {url}}}
  grec: {{kind: grpc, endpoint: '{grpc_url}'}}
security:
  api_keys: [{{identity: mallory, sha256: {sha}}}]
  jwt: {{jwks_file: {jwks}, issuer: https://issuer.test, audience: agent-gateway, user_claim: uid}}
  authorization: [{{identities: ['*'], agents: ['*']}}]
"""


class RecordingGrpcAgent(pb_grpc.AgentGatewayServiceServicer):
    def __init__(self) -> None:
        self.seen: list[tuple[pb.InvokeRequest, dict[str, str]]] = []

    def _record(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.seen.append((request, metadata))

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        self._record(request, context)
        return pb.InvokeResponse(messages=[pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(text="ok")])])

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        self._record(request, context)
        message = pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(text="ok")])
        yield pb.InvokeStreamResponse(event=pb.Event(type="delta", message=message, sequence=1))


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[RecordingUpstream, RecordingGrpcAgent, str]]:
    agent = RecordingGrpcAgent()
    server = grpc.aio.server()
    pb_grpc.add_AgentGatewayServiceServicer_to_server(agent, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with recording_upstream() as http:
        yield http, agent, f"127.0.0.1:{port}"
    await server.stop(None)


CALLERS = ["api_key", "jwt", "jwt_without_user_claim"]


def credentials(caller: str, issuer: TokenIssuer) -> dict[str, str]:
    if caller == "api_key":
        return {"x-api-key": KEY}
    if caller == "jwt":
        return {"authorization": f"Bearer {issuer.token('mallory', uid='mallory')}"}
    return {"authorization": f"Bearer {issuer.token('mallory')}"}  # no `uid` claim: no user id


def own_user(caller: str) -> str | None:
    return None if caller == "jwt_without_user_claim" else "mallory"


def assert_gateway_ids(baggage: dict[str, str], caller: str) -> None:
    assert baggage.get("enduser.id") == own_user(caller), baggage
    assert baggage.get("session.id") == "own-session", baggage
    assert "gen_ai.conversation.id" not in baggage, baggage  # the caller named no thread
    assert baggage.get("tenant") == "acme", baggage  # entries that claim nothing pass


def assert_http_upstream_saw(recorded: Recorded, caller: str) -> None:
    assert_gateway_ids(baggage_of(recorded.headers.get("baggage", "")), caller)
    context = recorded.json().get("context", {})
    assert context.get("userId") == own_user(caller)
    body_baggage = context.get("baggage", {})
    assert "enduser.id" not in body_baggage and "session.id" not in body_baggage, body_baggage
    assert body_baggage.get("tenant") == "acme"


def invoke_body() -> dict[str, object]:
    return {
        "messages": [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}],
        "context": {"baggage": BODY_ATTACK, "sessionId": "own-session"},
    }


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_invoke_and_stream_carry_only_the_gateways_user(
    gateway_factory: GatewayFactory,
    upstreams: tuple[RecordingUpstream, RecordingGrpcAgent, str],
    tmp_path: Path,
    caller: str,
) -> None:
    http, _, grpc_url = upstreams
    issuer = TokenIssuer(tmp_path / "jwks.json")
    headers = {**credentials(caller, issuer), "baggage": ATTACK, "content-type": "application/json"}
    async with gateway_factory(secured_yaml(http.url, grpc_url, issuer.jwks_file)) as gw, aiohttp.ClientSession() as s:
        base = f"http://{gw.addresses.http}/v1/agents/rec"
        async with s.post(f"{base}/invoke", data=json.dumps(invoke_body()), headers=headers) as response:
            assert response.status == 200, await response.text()
        async with s.post(f"{base}/stream", data=json.dumps(invoke_body()), headers=headers) as response:
            assert response.status == 200
            await response.read()
    assert len(http.requests) == 2
    for recorded in http.requests:
        assert_http_upstream_saw(recorded, caller)


@pytest.mark.parametrize("caller", CALLERS)
async def test_grpc_front_and_grpc_upstream_carry_only_the_gateways_user(
    gateway_factory: GatewayFactory,
    upstreams: tuple[RecordingUpstream, RecordingGrpcAgent, str],
    tmp_path: Path,
    caller: str,
) -> None:
    http, agent, grpc_url = upstreams
    issuer = TokenIssuer(tmp_path / "jwks.json")
    metadata = (*credentials(caller, issuer).items(), ("baggage", ATTACK))

    def request(name: str) -> pb.InvokeRequest:
        return pb.InvokeRequest(
            agent=name,
            messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="hi")])],
            context=pb.Context(session_id="own-session", baggage=BODY_ATTACK),
        )

    async with (
        gateway_factory(secured_yaml(http.url, grpc_url, issuer.jwks_file)) as gw,
        grpc.aio.insecure_channel(gw.addresses.grpc) as channel,
    ):
        stub = pb_grpc.AgentGatewayServiceStub(channel)
        await stub.Invoke(request("rec"), metadata=metadata, timeout=10)
        await stub.Invoke(request("grec"), metadata=metadata, timeout=10)
        async for _ in stub.InvokeStream(request("grec"), metadata=metadata, timeout=10):
            pass
    assert len(http.requests) == 1
    assert_http_upstream_saw(http.requests[0], caller)
    assert len(agent.seen) == 2
    for received, received_metadata in agent.seen:
        assert_gateway_ids(baggage_of(received_metadata.get("baggage", "")), caller)
        assert received.context.user_id == (own_user(caller) or "")
        assert "enduser.id" not in received.context.baggage and "session.id" not in received.context.baggage
        assert received.context.baggage["tenant"] == "acme"


@pytest.mark.parametrize("caller", CALLERS)
async def test_passthrough_carries_only_the_gateways_user(
    gateway_factory: GatewayFactory,
    upstreams: tuple[RecordingUpstream, RecordingGrpcAgent, str],
    tmp_path: Path,
    caller: str,
) -> None:
    http, _, grpc_url = upstreams
    issuer = TokenIssuer(tmp_path / "jwks.json")
    headers = {**credentials(caller, issuer), "baggage": ATTACK, "x-session-id": "own-session"}
    async with gateway_factory(secured_yaml(http.url, grpc_url, issuer.jwks_file)) as gw, aiohttp.ClientSession() as s:
        async with s.post(f"http://{gw.addresses.http}/v1/proxy/rec/runs", data=b"{}", headers=headers) as response:
            assert response.status == 200
    (recorded,) = http.requests
    assert recorded.headers.getall("baggage", []) != [ATTACK]  # never the caller's header verbatim
    assert len(recorded.headers.getall("baggage", [])) == 1
    assert_gateway_ids(baggage_of(recorded.headers["baggage"]), caller)
    assert recorded.headers.get("x-user-id") == own_user(caller)


async def test_passthrough_drops_a_lone_claimed_user_when_the_token_names_none(
    gateway_factory: GatewayFactory,
    upstreams: tuple[RecordingUpstream, RecordingGrpcAgent, str],
    tmp_path: Path,
) -> None:
    # Nothing of the gateway's own to say: the caller's header must not be left standing.
    http, _, grpc_url = upstreams
    issuer = TokenIssuer(tmp_path / "jwks.json")
    headers = {**credentials("jwt_without_user_claim", issuer), "baggage": "enduser.id=victim"}
    async with gateway_factory(secured_yaml(http.url, grpc_url, issuer.jwks_file)) as gw, aiohttp.ClientSession() as s:
        async with s.get(f"http://{gw.addresses.http}/v1/proxy/rec/x", headers=headers) as response:
            assert response.status == 200
    (recorded,) = http.requests
    assert "victim" not in str(recorded.headers), recorded.headers
    assert "x-user-id" not in recorded.headers


async def test_an_event_carries_only_the_publishers_user_to_the_trigger(
    gateway_factory: GatewayFactory,
    upstreams: tuple[RecordingUpstream, RecordingGrpcAgent, str],
    tmp_path: Path,
) -> None:
    http, _, grpc_url = upstreams
    issuer = TokenIssuer(tmp_path / "jwks.json")
    yaml_text = (
        secured_yaml(http.url, grpc_url, issuer.jwks_file).replace(
            "agents: ['*']}]", "agents: ['*'], events: ['events.>']}]"
        )
        + "triggers:\n  - {name: t, subject: 'events.>', agent: rec}\n"
    )
    headers = {"x-api-key": KEY, "baggage": ATTACK, "x-session-id": "own-session"}
    async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as s:
        async with s.post(f"http://{gw.addresses.http}/v1/events/events.x", json={"a": 1}, headers=headers) as response:
            assert response.status == 202, await response.text()
        for _ in range(200):
            if http.requests:
                break
            await asyncio.sleep(0.05)
    assert len(http.requests) == 1
    assert_http_upstream_saw(http.requests[0], "api_key")
