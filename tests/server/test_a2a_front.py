"""Routed agents exposed as A2A agents, called with the official a2a-sdk client."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from aiohttp import web
from google.protobuf.json_format import MessageToDict
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples import echo_agent
from tests.conftest import GatewayFactory, start_app
from tests.security.pki import TokenIssuer


def yaml_for(echo_url: str) -> str:
    return (f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n    description: Echo agent\n"
            "  down:\n    kind: http\n    endpoint: http://127.0.0.1:1\n")


@pytest.mark.parametrize("streaming", [False, True])
async def test_a2a_sdk_client_reaches_a_routed_agent(
    gateway_factory: GatewayFactory, echo_url: str, streaming: bool
) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, httpx.AsyncClient(timeout=10) as http:
        client = await create_client(f"http://{gw.addresses.http}/a2a/echo",
                                     client_config=ClientConfig(streaming=streaming, httpx_client=http))
        request = SendMessageRequest(message=new_text_message("hello a2a", role=Role.ROLE_USER))
        frames = [MessageToDict(frame) async for frame in client.send_message(request)]
    texts = [p["text"] for f in frames for key in ("task", "artifactUpdate")
             for a in ([f[key]["artifact"]] if key == "artifactUpdate" and key in f
                       else f.get(key, {}).get("artifacts", []))
             for p in a.get("parts", []) if "text" in p]
    assert "".join(texts).startswith("echo: hello a2a")
    states = [f["statusUpdate"]["status"]["state"] for f in frames if "statusUpdate" in f]
    if streaming:
        assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    else:
        assert frames[-1]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_agent_card_and_v03_jsonrpc(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/a2a"
        async with session.get(f"{base}/echo/.well-known/agent-card.json") as response:
            card = await response.json()
        assert card["name"] == "echo"
        assert card["supportedInterfaces"][0] == {"url": f"{base}/echo", "protocolBinding": "JSONRPC",
                                                  "protocolVersion": "1.0"}
        send = {"jsonrpc": "2.0", "id": "r1", "method": "message/send",
                "params": {"message": {"kind": "message", "role": "user", "messageId": "m1", "contextId": "ctx-9",
                                       "parts": [{"kind": "text", "text": "old style"}]}}}
        async with session.post(f"{base}/echo", json=send) as response:
            reply = await response.json()
        task = reply["result"]
        assert (task["kind"], task["status"]["state"], task["contextId"]) == ("task", "completed", "ctx-9")
        assert task["artifacts"][0]["parts"][0] == {"kind": "text", "text": "echo: old style"}
        # The A2A contextId is the gateway session: the agent saw it as x-session-id.
        assert task["artifacts"][0]["parts"][1]["data"]["headers"]["x-session-id"] == "ctx-9"
        get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}
        async with session.post(f"{base}/echo", json=get) as response:
            assert (await response.json())["result"]["id"] == task["id"]


async def test_a2a_errors(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(yaml_for(echo_url)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}/a2a"
        headers = {"a2a-version": "1.0"}
        send = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                "params": {"message": {"role": "ROLE_USER", "messageId": "m", "parts": [{"text": "hi"}]}}}
        async with session.post(f"{base}/down", json=send, headers=headers) as response:
            task = (await response.json())["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_FAILED"
        assert "cannot connect" in task["status"]["message"]["parts"][0]["text"]
        for payload, code in [({"jsonrpc": "2.0", "id": 1, "method": "Nope"}, -32601),
                              ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}, -32602),
                              ({"id": 1}, -32600)]:
            async with session.post(f"{base}/echo", json=payload, headers=headers) as response:
                assert (await response.json())["error"]["code"] == code
        async with session.post(f"{base}/echo", data=b"{nope", headers=headers) as response:
            assert (await response.json())["error"]["code"] == -32700
        async with session.get(f"{base}/ghost/.well-known/agent-card.json") as response:
            assert response.status == 404


KEY_A, KEY_B = "a2a-key-of-alice", "a2a-key-of-bob"


def secured_a2a_yaml(echo_url: str, jwks_file: Path) -> str:
    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key, jwt]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key, jwt]}}
agents:
  echo: {{kind: http, endpoint: {echo_url}}}
security:
  api_keys:
    - {{identity: alice, sha256: {hashlib.sha256(KEY_A.encode()).hexdigest()}}}
    - {{identity: bob, sha256: {hashlib.sha256(KEY_B.encode()).hexdigest()}}}
  jwt: {{jwks_file: {jwks_file}, issuer: https://issuer.test, audience: agent-gateway}}
  authorization:
    - {{identities: [alice, bob, 'user-*'], agents: [echo]}}
"""


@pytest.fixture
async def recorded_echo() -> AsyncIterator[tuple[str, list[str]]]:
    """The echo agent, recording the last user text of every call it receives."""
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json()
        seen.append(body["messages"][-1]["parts"][0]["text"])
        return await handler(request)

    app = echo_agent.build_app()
    app.middlewares.append(record)
    runner, url = await start_app(app)
    yield url, seen
    await runner.cleanup()


@pytest.mark.parametrize("method", ["1.0", "0.3"])
async def test_another_identity_cannot_read_or_overwrite_a_task(
    gateway_factory: GatewayFactory, recorded_echo: tuple[str, list[str]], tmp_path: Path, method: str
) -> None:
    echo, seen = recorded_echo
    issuer = TokenIssuer(tmp_path / "jwks.json")
    send_method, get_method = ("SendMessage", "GetTask") if method == "1.0" else ("message/send", "tasks/get")

    def send(text: str, task_id: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "ROLE_USER" if method == "1.0" else "user", "messageId": uuid.uuid4().hex,
                                   "parts": [{"text": text}] if method == "1.0" else [{"kind": "text", "text": text}]}
        if task_id:
            message["taskId"] = task_id
        return {"jsonrpc": "2.0", "id": 1, "method": send_method, "params": {"message": message}}

    async with gateway_factory(secured_a2a_yaml(echo, issuer.jwks_file)) as gw, aiohttp.ClientSession() as session:
        endpoint = f"http://{gw.addresses.http}/a2a/echo"

        async def rpc(payload: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            async with session.post(endpoint, json=payload, headers=headers) as response:
                assert response.status == 200
                reply: dict[str, Any] = await response.json()
                return reply

        alice = {"x-api-key": KEY_A}
        reply = await rpc(send("alice's secret plan"), alice)
        task = reply["result"]["task"] if method == "1.0" else reply["result"]
        task_id = task["id"]
        get = {"jsonrpc": "2.0", "id": 2, "method": get_method, "params": {"id": task_id}}
        for attacker in ({"x-api-key": KEY_B}, {"authorization": f"Bearer {issuer.token('user-1')}"}):
            stolen = await rpc(get, attacker)
            assert "result" not in stolen
            assert stolen["error"]["code"] == -32001
            overwrite = await rpc(send("bob was here", task_id), attacker)
            assert "result" not in overwrite
            assert overwrite["error"]["code"] == -32001
            # An id nobody ever issued answers the same way.
            unknown = await rpc({**get, "params": {"id": "no-such-task"}}, attacker)
            assert unknown["error"]["code"] == -32001
        assert seen == ["alice's secret plan"]  # the attacker's message never reached the agent
        mine = (await rpc(get, alice))["result"]
        assert mine == task
        assert "alice's secret plan" in json.dumps(mine) and "bob was here" not in json.dumps(mine)


async def test_discovery_origin_card_and_catalog_follow_authorization(
    gateway_factory: GatewayFactory, echo_url: str, tmp_path: Path
) -> None:
    issuer = TokenIssuer(tmp_path / "jwks.json")
    yaml = secured_a2a_yaml(echo_url, issuer.jwks_file).replace(
        "agents:\n", f"agents:\n  vault: {{kind: http, endpoint: {echo_url}}}\n"
    ) + "    - {identities: [bob], agents: [vault]}\n"
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}"

        async def get(path: str, key: str) -> Any:
            async with session.get(base + path, headers={"x-api-key": key}) as response:
                assert response.status == 200
                return await response.json()

        card = await get("/.well-known/agent-card.json", KEY_A)
        assert card["name"] == "agent-gateway" and [s["id"] for s in card["skills"]] == ["echo"]
        assert [s["id"] for s in (await get("/.well-known/agent-card.json", KEY_B))["skills"]] == ["vault", "echo"]
        catalog = await get("/a2a", KEY_A)
        assert [c["name"] for c in catalog["agents"]] == ["echo"]  # alice may not call vault: not listed
        assert catalog["agents"][0]["supportedInterfaces"][0]["url"] == f"{base}/a2a/echo"
        assert catalog["agents"][0]["securitySchemes"] == {"apiKey": {"apiKeySecurityScheme": {
            "location": "header", "name": "x-api-key"}}, "bearer": {"httpAuthSecurityScheme": {
                "scheme": "Bearer", "bearerFormat": "JWT"}}}
        assert [c["name"] for c in (await get("/a2a", KEY_B))["agents"]] == ["vault", "echo"]
    async with gateway_factory(yaml_for(echo_url) + "a2a: {default_agent: echo}\n") as gw, \
            aiohttp.ClientSession() as session:
        async with session.get(f"http://{gw.addresses.http}/.well-known/agent-card.json") as response:
            card = await response.json()
        assert card["name"] == "echo" and card["url"] == f"http://{gw.addresses.http}/a2a/echo"
        # The origin is the default agent's REST interface too (clients that join paths at the root).
        send = {"message": {"role": "ROLE_USER", "messageId": "m-root", "parts": [{"text": "at the root"}]}}
        async with session.post(f"http://{gw.addresses.http}/message:send", json=send,
                                headers={"a2a-version": "1.0"}) as response:
            task = (await response.json())["task"]
        assert task["artifacts"][0]["parts"][0] == {"text": "echo: at the root"}


def test_default_agent_must_exist() -> None:
    from gateway.config import ConfigError, load_config_text

    with pytest.raises(ConfigError, match=r"a2a\.default_agent 'ghost'"):
        load_config_text("agents: {echo: {kind: http, endpoint: 'http://127.0.0.1:1'}}\na2a: {default_agent: ghost}\n")


async def test_guardrails_apply_to_a2a_messages(gateway_factory: GatewayFactory, echo_url: str) -> None:
    """A sync check on the agent's output fails the task (a stream's checks are only recorded:
    the stream already reached the caller, as on every front)."""
    method = "SendMessage"
    yaml = yaml_for(echo_url) + """
checks:
  no-secrets: {kind: regex, pattern: "^(?!.*secret).*$"}
evaluations:
  - {target: echo, checks: [no-secrets], mode: sync}
"""
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        url, headers = f"http://{gw.addresses.http}/a2a/echo", {"a2a-version": "1.0"}

        async def send(text: str) -> dict[str, Any]:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": {
                "role": "ROLE_USER", "messageId": uuid.uuid4().hex, "parts": [{"text": text}]}}}
            async with session.post(url, json=body, headers=headers) as response:
                frames = [json.loads(line[6:]) async for line in response.content if line.startswith(b"data: ")] \
                    if method == "SendStreamingMessage" else [await response.json()]
            task_id = frames[0]["result"]["task"]["id"]
            get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
            async with session.post(url, json=get, headers=headers) as response:
                task: dict[str, Any] = (await response.json())["result"]
            return task

        assert (await send("hello"))["status"]["state"] == "TASK_STATE_COMPLETED"
        blocked = await send("the secret plan")
        assert blocked["status"]["state"] == "TASK_STATE_FAILED"
        assert "no-secrets" in json.dumps(blocked["status"])
        assert "artifacts" not in blocked or blocked["artifacts"] == []


@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
async def test_a2a_task_continues_the_callers_trace(
    gateway_factory: GatewayFactory, echo_url: str, span_exporter: InMemorySpanExporter, method: str
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"a2a-version": "1.0", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    send = {"jsonrpc": "2.0", "id": 1, "method": method,
            "params": {"message": {"role": "ROLE_USER", "messageId": "m-trace", "parts": [{"text": "traced"}]}}}
    async with gateway_factory(yaml_for(echo_url)) as gw, aiohttp.ClientSession() as session:
        async with session.post(f"http://{gw.addresses.http}/a2a/echo", json=send, headers=headers) as response:
            assert "TASK_STATE_COMPLETED" in await response.text()
    # The task's run and its call to the agent are in the caller's trace.
    spans = {s.name: format(s.context.trace_id, "032x") for s in span_exporter.get_finished_spans()}
    assert spans["run echo"] == trace_id
    assert spans["invoke_agent echo"] == trace_id
