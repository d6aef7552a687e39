"""The Python client an agent uses to call other agents through its sidecar."""

from __future__ import annotations

import re

import pytest

from agentgateway_client import AgentClient, ClientError, StatusCode
from tests.conftest import GatewayFactory

INBOUND = {
    "traceparent": "00-11111111111111111111111111111111-2222222222222222-01",
    "x-session-id": "outer-session",
    "x-user-id": "outer-user",
    "x-request-id": "outer-request",
    "x-timeout-ms": "4000",
    "baggage": "tenant=acme",
}


def headers_seen(result_parts: tuple[object, ...]) -> dict[str, str]:
    data = result_parts[1].data  # type: ignore[attr-defined]
    headers: dict[str, str] = data["headers"]
    return headers


async def test_client_carries_the_inbound_context_forward(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n") as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc, inbound=INBOUND) as client:
            agents = await client.list_agents()
            result = await client.invoke("echo", "nested call", thread_id="t-1")
    assert [a.name for a in agents] == ["echo"]
    assert result.agent == "echo"
    assert result.text.startswith("echo: nested call")
    seen = headers_seen(result.messages[0].parts)
    assert seen["traceparent"].split("-")[1] == "1" * 32
    assert seen["x-session-id"] == "outer-session"
    assert seen["x-user-id"] == "outer-user"
    assert seen["x-thread-id"] == "t-1"
    assert seen["x-request-id"] == "outer-request"
    # The hop count, the request tree with its call count and the ids travel as baggage too
    # (the ids under their OpenTelemetry names).
    assert re.fullmatch(
        r"tenant=acme,session.id=outer-session,gen_ai.conversation.id=t-1,enduser.id=outer-user,agw.hops=1,"
        r"agw.tree=[0-9a-f]{32},agw.calls=1",
        seen["baggage"],
    )
    assert 0 < int(seen["x-timeout-ms"]) <= 4000


async def test_client_stream_and_errors(gateway_factory: GatewayFactory, echo_url: str) -> None:
    yaml_text = f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n  down:\n    kind: http\n    endpoint: http://127.0.0.1:1\n"
    async with gateway_factory(yaml_text) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            deltas = [e.message.text async for e in client.stream("echo", "x y", session_id="s")
                      if e.type == "delta" and e.message is not None]
            assert "".join(deltas) == "echo: x y "
            with pytest.raises(ClientError) as info:
                await client.invoke("down", "hi")
            assert info.value.code == StatusCode.UNAVAILABLE
            assert info.value.agent == "down"
            assert info.value.transient
            assert info.value.request_id
            with pytest.raises(ClientError) as missing:
                [e async for e in client.stream("ghost", "hi")]
            assert missing.value.code == StatusCode.NOT_FOUND
