"""Inbound authentication and authorization on both fronts: API keys, JWT, rules, rate limits."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory
from tests.helpers.http import body, post, seen_headers
from tests.security.pki import TokenIssuer

KEY = "s3cret-billing-key"
OTHER_KEY = "s3cret-ops-key"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def secured_yaml(echo_url: str, jwks_file: Path, auth: str = "[api_key, jwt]", extra: str = "") -> str:
    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: {auth}}}
  grpc: {{address: '127.0.0.1:0', auth: {auth}}}
agents:
  echo: {{kind: http, endpoint: {echo_url}}}
  secret: {{kind: http, endpoint: {echo_url}}}
security:
  api_keys:
    - {{identity: billing-agent, sha256: {sha(KEY)}}}
    - {{identity: ops-agent, sha256: {sha(OTHER_KEY)}}}
  jwt: {{jwks_file: {jwks_file}, issuer: https://issuer.test, audience: agent-gateway}}
  authorization:
    - {{identities: [billing-*], agents: [echo]}}
    - {{identities: [ops-agent, 'user-*'], agents: ['*']}}
    - {{identities: [ops-agent], state_scopes: [user]}}
{extra}
"""


@pytest.fixture
def issuer(tmp_path: Path) -> TokenIssuer:
    return TokenIssuer(tmp_path / "jwks.json")


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, echo_url: str, issuer: TokenIssuer) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(secured_yaml(echo_url, issuer.jwks_file)) as server:
        yield server


def url(gateway: GatewayServer, agent: str = "echo") -> str:
    return f"http://{gateway.addresses.http}/v1/agents/{agent}/invoke"


async def test_missing_or_wrong_credentials_get_401_without_detail(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    wrong = [
        {},
        {"x-api-key": "guess"},
        {"authorization": "Bearer guess"},
        {"authorization": f"Bearer {issuer.token('user-1', audience='someone-else')}"},
        {"authorization": f"Bearer {issuer.token('user-1', lifetime=-120)}"},  # expired beyond the leeway
        {"authorization": "Bearer a.b.c"},  # shaped like a JWT, but garbage
    ]
    for headers in wrong:
        status, response_headers, response = await post(url(gateway), body(), headers)
        assert status == 401, headers
        assert response["error"]["code"] == "UNAUTHENTICATED"
        assert response["error"]["message"] == "authentication required"  # the same whatever was wrong
        assert response_headers.get("www-authenticate", "").startswith("Bearer")


async def test_token_signed_by_an_unknown_key_is_rejected(gateway: GatewayServer, tmp_path: Path) -> None:
    impostor = TokenIssuer(tmp_path / "other-jwks.json")  # same kid and issuer, different key
    status, _, response = await post(url(gateway), body(), {"authorization": f"Bearer {impostor.token('user-1')}"})
    assert status == 401 and response["error"]["code"] == "UNAUTHENTICATED"


async def test_wrong_issuer_is_rejected(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    issuer.issuer = "https://evil.test"
    status, _, _ = await post(url(gateway), body(), {"authorization": f"Bearer {issuer.token('user-1')}"})
    assert status == 401


async def test_api_key_and_jwt_callers_get_through(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    status, _, response = await post(url(gateway), body("a"), {"x-api-key": KEY})
    assert status == 200 and response["messages"][0]["parts"][0]["text"] == "echo: a"
    status, _, response = await post(url(gateway), body("b"), {"authorization": f"Bearer {issuer.token('user-7')}"})
    assert status == 200 and response["messages"][0]["parts"][0]["text"] == "echo: b"
    assert seen_headers(response)["x-user-id"] == "user-7"


async def test_rotated_jwks_file_is_picked_up_without_restart(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    old_token = issuer.token("user-1")
    assert (await post(url(gateway), body(), {"authorization": f"Bearer {old_token}"}))[0] == 200
    rotated = TokenIssuer(issuer.jwks_file, kid="key-2")  # overwrites the file with only the new key
    status, _, _ = await post(url(gateway), body(), {"authorization": f"Bearer {rotated.token('user-1')}"})
    assert status == 200
    status, _, _ = await post(url(gateway), body(), {"authorization": f"Bearer {old_token}"})
    assert status == 401


async def test_authorization_is_default_deny(gateway: GatewayServer) -> None:
    status, _, response = await post(url(gateway, "secret"), body(), {"x-api-key": KEY})
    assert status == 403
    assert response["error"]["code"] == "PERMISSION_DENIED"
    assert "billing-agent may not call secret" in response["error"]["message"]
    assert (await post(url(gateway, "secret"), body(), {"x-api-key": OTHER_KEY}))[0] == 200


async def test_untrusted_caller_cannot_claim_another_user(gateway: GatewayServer) -> None:
    forged = body(context={"userId": "alice", "sessionId": "s-1"})
    status, _, response = await post(url(gateway), forged, {"x-api-key": KEY, "x-user-id": "alice"})
    assert status == 200
    seen = seen_headers(response)
    assert seen["x-user-id"] == "billing-agent"  # the authenticated identity, not the claim
    assert seen["x-session-id"] == "s-1"


async def test_trusted_listener_believes_identity_headers(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n") as gw:
        status, _, response = await post(url(gw), body(), {"x-user-id": "alice"})
    assert status == 200 and seen_headers(response)["x-user-id"] == "alice"


async def test_health_stays_open(gateway: GatewayServer) -> None:


    async with aiohttp.ClientSession() as session, session.get(f"http://{gateway.addresses.http}/healthz") as r:
        assert r.status == 200


async def test_rate_limit_per_identity(gateway_factory: GatewayFactory, echo_url: str, issuer: TokenIssuer) -> None:
    extra = "  rate_limits:\n    - {identities: [billing-agent], rate: 0.5, burst: 2}\n"
    async with gateway_factory(secured_yaml(echo_url, issuer.jwks_file, extra=extra)) as gw:
        statuses = [(await post(url(gw), body(), {"x-api-key": KEY}))[:2] for _ in range(3)]
        # Another identity has its own budget.
        other, _, _ = await post(url(gw), body(), {"x-api-key": OTHER_KEY})
        assert gw.addresses.grpc is not None
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Invoke(_request("echo"), metadata=(("x-api-key", KEY),))
    assert [s for s, _ in statuses] == [200, 200, 429]
    assert int(statuses[2][1]["retry-after"]) >= 1
    assert other == 200
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # one budget across both fronts


def _request(agent: str) -> pb.InvokeRequest:
    return pb.InvokeRequest(
        agent=agent, messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="hi")])], context=pb.Context()
    )


async def test_grpc_authentication_and_authorization(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    assert gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gateway.addresses.grpc) as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Invoke(_request("echo"))
        with pytest.raises(grpc.aio.AioRpcError) as listing:
            await stub.ListAgents(pb.ListAgentsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.Invoke(_request("secret"), metadata=(("x-api-key", KEY),))
        ok = await stub.Invoke(_request("echo"), metadata=(("authorization", f"Bearer {issuer.token('user-3')}"),))
        # A malformed body from a stranger is still UNAUTHENTICATED: nothing is parsed before auth.
        raw = channel.unary_unary("/agentgateway.v1.AgentGatewayService/Invoke")
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await raw(b"\xff\xff\xff")
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert missing.value.details() == "authentication required"
    assert listing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ok.messages[0].parts[0].text == "echo: hi"
    assert garbage.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_passthrough_is_authenticated_and_strips_claimed_identity(
    gateway: GatewayServer, issuer: TokenIssuer
) -> None:


    proxy = f"http://{gateway.addresses.http}/v1/proxy/echo/invoke"
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy, json=body()) as response:
            assert response.status == 401
        async with session.post(proxy, json=body(), headers={"x-api-key": KEY, "x-user-id": "alice"}) as response:
            assert response.status == 200
            seen = seen_headers(await response.json())
        async with session.post(
            f"http://{gateway.addresses.http}/v1/proxy/secret/invoke", json=body(), headers={"x-api-key": KEY}
        ) as response:
            assert response.status == 403
    assert seen["x-user-id"] == "billing-agent"
    assert "x-api-key" not in seen  # the gateway's credentials stop at the gateway


def test_listener_auth_needs_configured_method(tmp_path: Path) -> None:
    from gateway.config import load_config_text
    from gateway.config.loader import ConfigError

    with pytest.raises(ConfigError, match=r"auth has jwt but security\.jwt is not configured"):
        load_config_text("listeners:\n  http: {address: '127.0.0.1:0', auth: [jwt]}\n", "gw.yaml")
    with pytest.raises(ConfigError, match="only asymmetric algorithms"):
        load_config_text(
            "security:\n  jwt: {jwks_file: x.json, issuer: i, audience: a, algorithms: [HS256]}\n", "gw.yaml"
        )


async def test_state_scopes_follow_the_authenticated_user(gateway: GatewayServer, issuer: TokenIssuer) -> None:
    base = f"http://{gateway.addresses.http}/v1/state/user"
    alice = {"authorization": f"Bearer {issuer.token('user-alice')}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base}/secret", json={"value": "alice's"}, headers=alice) as response:
            assert response.status in (200, 201)
        async with session.get(f"{base}/secret") as response:
            assert response.status == 401
        # Mallory authenticates as herself and claims to be alice: the claim is ignored.
        mallory = {"authorization": f"Bearer {issuer.token('user-mallory')}", "x-user-id": "user-alice"}
        async with session.get(f"{base}/secret", headers=mallory) as response:
            assert response.status == 404
        async with session.get(f"{base}/secret?scopeId=user-alice", headers=mallory) as response:
            assert response.status == 403
        # An identity granted the user scope may name another user's scope explicitly.
        async with session.get(f"{base}/secret?scopeId=user-alice", headers={"x-api-key": OTHER_KEY}) as response:
            assert response.status == 200
            assert (await response.json())["value"] == "alice's"


async def test_baggage_cannot_claim_another_user(gateway: GatewayServer) -> None:
    headers = {"x-api-key": KEY, "baggage": "enduser.id=alice,tenant=acme"}
    status, _, response = await post(url(gateway), body(), headers)
    assert status == 200
    baggage = seen_headers(response)["baggage"]
    assert "enduser.id=billing-agent" in baggage and "alice" not in baggage
    assert "tenant=acme" in baggage


ROUTED_BY_IDENTITY = """
routes:
  - {name: admins, match: {agent: assistant, claims: {groups: admins}}, target: secret}
  - {name: billing, match: {agent: assistant, identities: [billing-agent]}, target: echo}
  - {name: debug, match: {agent: assistant, query: [{name: debug, exact: "1"}]}, target: secret}
"""


async def test_routes_match_the_authenticated_identity_and_its_claims(
    gateway_factory: GatewayFactory, echo_url: str, issuer: TokenIssuer
) -> None:
    yaml_text = secured_yaml(echo_url, issuer.jwks_file, extra=ROUTED_BY_IDENTITY)
    yaml_text = yaml_text.replace("agents: ['*']}", "agents: ['*']}\n    - {identities: ['*'], agents: [assistant]}")
    async with gateway_factory(yaml_text) as gw:
        admin = {"authorization": f"Bearer {issuer.token('user-1', groups=['staff', 'admins'])}"}
        staff = {"authorization": f"Bearer {issuer.token('user-2', groups=['staff'])}"}
        status, _, response = await post(url(gw, "assistant"), body(), admin)
        assert status == 200 and response["agent"] == "secret"
        status, _, response = await post(url(gw, "assistant"), body(), {"x-api-key": KEY})
        assert status == 200 and response["agent"] == "echo"
        # A claim cannot be spoofed with a header: only the verified token's claims count.
        status, _, response = await post(url(gw, "assistant"), body(), {**staff, "groups": "admins"})
        assert status == 404, response
        status, _, response = await post(url(gw, "assistant") + "?debug=1", body(), staff)
        assert status == 200 and response["agent"] == "secret"
