"""Defect 8: the A2A adapter trusts the agent card's URL.

The attack: the agent card served at the configured endpoint names a JSON-RPC
URL on another origin (an attacker's recorder). The assertions are on what
each recorder received: the calls reach the configured endpoint, and with
``follow_card_url`` on they reach the card's origin without the configured
credentials.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.security.recording import Recorded, RecordingUpstream, recording_upstream

TOKEN = "Bearer agent-secret-token"
RESULT = {"message": {"role": "ROLE_AGENT", "parts": [{"text": "ok"}], "messageId": "m-1"}}


def a2a_agent(card_url: str) -> RecordingUpstream:
    """Serves an agent card naming ``card_url`` (late bound: a callable) and answers JSON-RPC."""

    def respond(recorded: Recorded) -> tuple[bytes, bytes]:
        if recorded.method == "GET":
            card = {"name": "a", "supportedInterfaces": [{"url": card_url, "protocolBinding": "JSONRPC"}]}
            return b"application/json", json.dumps(card).encode()
        envelope = {"jsonrpc": "2.0", "id": recorded.json()["id"], "result": RESULT}
        if "text/event-stream" in recorded.headers.get("accept", ""):
            return b"text/event-stream", b"data: " + json.dumps(envelope).encode() + b"\n\n"
        return b"application/json", json.dumps(envelope).encode()

    return RecordingUpstream(respond=respond)


@pytest.fixture
async def attacker() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream(respond=a2a_agent("").respond) as upstream:
        yield upstream


async def call_both(gateway_factory: GatewayFactory, endpoint: str, options: str) -> None:
    yaml_text = f"""
agents:
  a: {{kind: a2a, endpoint: '{endpoint}', options: {{headers: {{authorization: '{TOKEN}'}}{options}}}}}
"""
    body = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}]}
    async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as session:
        for verb in ("invoke", "stream"):
            async with session.post(f"http://{gw.addresses.http}/v1/agents/a/{verb}", json=body) as response:
                assert response.status == 200, await response.text()
                await response.read()


async def serve(upstream: RecordingUpstream) -> RecordingUpstream:
    await upstream.start()
    return upstream


async def test_a_card_on_another_origin_cannot_redirect_the_calls(
    gateway_factory: GatewayFactory, attacker: RecordingUpstream
) -> None:
    agent = await serve(a2a_agent(f"{attacker.url}/steal"))
    try:
        await call_both(gateway_factory, agent.url, "")
    finally:
        await agent.close()
    assert attacker.requests == []
    assert [(r.method, r.target) for r in agent.requests] == [
        ("GET", "/.well-known/agent-card.json"),
        ("POST", "/steal"),  # the card's path, on the configured origin
        ("POST", "/steal"),
    ]
    assert all(r.headers["authorization"] == TOKEN for r in agent.requests)


async def test_following_a_card_to_another_origin_never_sends_the_credentials(
    gateway_factory: GatewayFactory, attacker: RecordingUpstream
) -> None:
    agent = await serve(a2a_agent(f"{attacker.url}/rpc"))
    try:
        await call_both(gateway_factory, agent.url, ", follow_card_url: true")
    finally:
        await agent.close()
    assert [(r.method, r.target) for r in agent.requests] == [("GET", "/.well-known/agent-card.json")]
    assert [(r.method, r.target) for r in attacker.requests] == [("POST", "/rpc"), ("POST", "/rpc")]
    for recorded in attacker.requests:
        assert "authorization" not in recorded.headers
        assert TOKEN not in str(recorded.headers)
        assert recorded.headers["a2a-version"] == "1.0"


async def test_a_card_on_the_same_origin_is_followed_with_the_credentials(gateway_factory: GatewayFactory) -> None:
    agent = a2a_agent("")
    await agent.start()
    try:
        agent.respond = a2a_agent(f"{agent.url}/a2a/jsonrpc").respond
        await call_both(gateway_factory, f"{agent.url}/base", "")
    finally:
        await agent.close()
    assert [(r.method, r.target) for r in agent.requests] == [
        ("GET", "/base/.well-known/agent-card.json"),
        ("POST", "/a2a/jsonrpc"),
        ("POST", "/a2a/jsonrpc"),
    ]
    assert all(r.headers["authorization"] == TOKEN for r in agent.requests)
