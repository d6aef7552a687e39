"""The bodies read beside a call: the A2A agent card, a run's webhook reply, a JWKS from a URL.
Each is read whole and bounded, and a slow or broken one fails in time with a clear answer."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.security import jwks
from tests.datapath.shapes import MIB, SHAPES, filler, replies
from tests.helpers.datapath import RigFactory, answer_text
from tests.helpers.fault_upstream import Reply, SeenRequest, json_reply
from tests.security.pki import TokenIssuer

A2A = 'agents:\n  agent: {kind: a2a, endpoint: "{url}"}\n'


def a2a_upstream(card_faults: dict[str, Any], padding: int = 0) -> tuple[Any, str, list[str]]:
    main, text = SHAPES["a2a"].reply(1000)
    url: list[str] = []

    def respond(request: SeenRequest) -> Reply:
        if request.path == "/rpc":
            return main
        card = {
            "name": "agent",
            "description": filler(padding, seed=2),
            "supportedInterfaces": [{"url": f"{url[0]}/rpc", "protocolBinding": "JSONRPC"}],
        }
        return json_reply(json.dumps(card, ensure_ascii=False).encode(), **card_faults)

    return respond, text, url


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_a_large_agent_card_in_pieces_is_read_whole(rig: RigFactory, chunked: bool) -> None:
    respond, text, url = a2a_upstream({"chunked": chunked}, padding=200_000)
    async with rig(respond, A2A) as r:
        url.append(r.upstream.url)
        status, body, _ = await r.invoke("agent")
    assert status == 200 and answer_text(body) == text


@pytest.mark.parametrize(
    ("faults", "status", "code", "slow"),
    [
        ({"hang_after_headers": True}, 504, "DEADLINE_EXCEEDED", True),
        ({"trickle": (5, 0.05)}, 504, "DEADLINE_EXCEEDED", True),
        ({"cut_after": 40}, 503, "UNAVAILABLE", False),
        ({"content_length": 10_000}, 503, "UNAVAILABLE", False),
    ],
    ids=["hang", "trickle", "close", "length_promises_more"],
)
async def test_a_broken_agent_card(rig: RigFactory, faults: dict[str, Any], status: int, code: str, slow: bool) -> None:
    respond, _, url = a2a_upstream(faults)
    async with rig(respond, A2A) as r:
        url.append(r.upstream.url)
        got, body, elapsed = await r.invoke("agent", timeout_ms=800)
    assert (got, body["error"]["code"]) == (status, code), body
    assert (0.6 <= elapsed < 2.8) if slow else elapsed < 0.8, elapsed


async def test_a_webhook_reply_body_never_holds_the_delivery(rig: RigFactory) -> None:
    """A receiver that answers 200 and then stalls (or sends 32 MiB) has taken the callback: the
    gateway reads the status, not the body, and records the delivery at once."""
    agent, _ = replies(1000)
    hooks: list[float] = []

    def respond(request: SeenRequest) -> Reply:
        if request.path == "/hook":
            hooks.append(time.monotonic())
            return Reply(status=200, body=b"x" * (32 * MIB), hang_after_headers=True)
        return agent(request)

    config = """
runs:
  webhooks: {allowed_prefixes: ["{url}/"], secret: s3cret, timeout: 5s, max_attempts: 3}
agents:
  agent: {kind: http, endpoint: "{url}"}
"""
    async with rig(respond, config) as r:
        payload = {"agent": "agent", "messages": [{"parts": [{"text": "hi"}]}], "webhookUrl": f"{r.upstream.url}/hook"}
        async with r.http.post(f"{r.base}/v1/runs", json=payload) as response:
            assert response.status == 202, await response.text()
            run_id = (await response.json())["runId"]
        started = time.monotonic()
        run: dict[str, Any] = {}
        while time.monotonic() - started < 4:
            async with r.http.get(f"{r.base}/v1/runs/{run_id}") as response:
                run = await response.json()
            if run.get("webhookStatus"):
                break
            await asyncio.sleep(0.02)
    assert run["status"] == "succeeded"
    assert run["webhookStatus"] == "delivered (attempt 1)", run
    assert len(hooks) == 1
    assert r.upstream.requests[-1].path == "/hook" and json.loads(r.upstream.requests[-1].body)["runId"] == run_id


JWT = """
listeners:
  http: {{address: '127.0.0.1:0', auth: [jwt]}}
  grpc: {{address: '127.0.0.1:0'}}
security:
  jwt: {{jwks_url: "{{url}}/jwks", issuer: https://issuer.test, audience: agent-gateway}}
  authorization:
    - {{identities: ["*"], agents: ["*"]}}
agents:
  agent: {{kind: http, endpoint: "{{url}}"}}
"""


@pytest.mark.parametrize(
    ("faults", "accepted"),
    [
        ({"chunked": True, "max_chunk": 64}, True),
        ({"body_over": True}, False),
        ({"chunked": True, "body_over": True}, False),
        ({"trickle": (10, 0.05)}, False),
        ({"hang_after_headers": True}, False),
    ],
    ids=["in_pieces", "over_limit_declared", "over_limit_chunked", "trickle", "hang"],
)
async def test_jwks_url_fetch_is_bounded(
    rig: RigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: dict[str, Any], accepted: bool
) -> None:
    monkeypatch.setattr(jwks, "JWKS_FETCH_SECONDS", 0.5)
    issuer = TokenIssuer(tmp_path / "jwks.json")
    document = issuer.jwks_file.read_bytes()
    if faults.pop("body_over", False):
        keys = json.loads(document)
        keys["padding"] = "x" * (jwks.MAX_JWKS_BYTES + 1)
        document = json.dumps(keys).encode()
    main, _ = SHAPES["http"].reply(1000)

    def respond(request: SeenRequest) -> Reply:
        return json_reply(document, **faults) if request.path == "/jwks" else main

    async with rig(respond, JWT.format(), threaded=True) as r:
        started = time.monotonic()
        async with r.http.post(
            f"{r.base}/v1/agents/agent/invoke",
            json={"messages": [{"parts": [{"text": "hi"}]}]},
            headers={"authorization": f"Bearer {issuer.token('alice')}"},
        ) as response:
            status = response.status
        elapsed = time.monotonic() - started
    assert status == (200 if accepted else 401)
    assert elapsed < 2.5, elapsed  # at most the fetch bound and one socket timeout
