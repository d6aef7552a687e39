"""The official TypeScript A2A client (@a2a-js/sdk, pinned npm project tests/frameworks/a2a_js)
drives the gateway's A2A front over JSON-RPC, HTTP+JSON and gRPC: send, stream, get, list, the
push-notification configs, subscribe, cancel and the extended agent card."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, Starter
from tests.frameworks.envs import FRAMEWORKS_DIR
from tests.helpers.frameworks import require_env

pytestmark = pytest.mark.frameworks
HOLD_LIMIT = 20.0


def holding_agent() -> web.Application:
    """An HTTP agent: "hold" waits until its caller goes away (bounded); anything else is answered."""

    async def answer(request: web.Request, streaming: bool) -> web.StreamResponse:
        text = (await request.json())["messages"][-1]["parts"][0]["text"]
        if text == "hold":
            deadline = asyncio.get_running_loop().time() + HOLD_LIMIT
            while asyncio.get_running_loop().time() < deadline:
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.02)
        reply = {"role": "ROLE_AGENT", "parts": [{"text": f"done: {text}"}]}
        if not streaming:
            return web.json_response({"messages": [reply]})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {json.dumps({'type': 'message', 'message': reply})}\n\n".encode())
        await response.write_eof()
        return response

    async def invoke(request: web.Request) -> web.StreamResponse:
        return await answer(request, False)

    async def stream(request: web.Request) -> web.StreamResponse:
        return await answer(request, True)

    app = web.Application()
    app.router.add_post("/invoke", invoke)
    app.router.add_post("/stream", stream)
    return app


API_KEY = "js-client-key"


def secured_yaml(agent: str, hooks: str) -> str:
    """The agent behind an API key on both listeners (so GetExtendedAgentCard answers), with
    push notifications allowed to the test's receiver."""
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key]}}
agents:
  echo: {{kind: http, endpoint: {agent}}}
security:
  api_keys: [{{identity: js, sha256: {digest}}}]
  authorization: [{{identities: [js], agents: [echo]}}]
runs: {{poll_interval: 50ms, webhooks: {{allowed_prefixes: ['{hooks}/hooks/'], secret: s3cret}}}}
"""


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON", "GRPC"])
async def test_the_typescript_sdk_client_drives_every_operation(
    pytestconfig: pytest.Config, gateway_factory: GatewayFactory, serve_app: Starter, binding: str
) -> None:
    node = require_env(pytestconfig, "a2a_js")
    agent = await serve_app(holding_agent())
    hooks = await serve_app(web.Application())
    async with gateway_factory(secured_yaml(agent, hooks)) as gw:
        process = await asyncio.create_subprocess_exec(
            str(node), str(FRAMEWORKS_DIR / "a2a_js" / "client.mjs"), f"http://{gw.addresses.http}/a2a/echo", binding,
            API_KEY, f"{hooks}/hooks/js",
            cwd=FRAMEWORKS_DIR / "a2a_js", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    steps: dict[str, Any] = {}
    for line in stdout.decode().splitlines():
        item = json.loads(line)
        steps[item["step"]] = item["value"]
    assert steps["transport"] == binding  # the SDK chose the binding asked for, not a fallback
    sent = steps["send"]
    assert sent["status"]["state"] == "TASK_STATE_COMPLETED"
    assert sent["artifacts"][0]["parts"][0]["text"] == "done: hello from js"
    assert "done: stream from js" in json.dumps(steps["stream"])
    assert len(steps["get"]["history"]) == 1 and steps["get"]["id"] == sent["id"]
    assert [t["id"] for t in steps["list"]["tasks"]] == [sent["id"]]
    created = steps["pushCreate"]
    assert created["url"] == f"{hooks}/hooks/js" and created["token"] == "js-token" and created["id"]
    assert steps["pushGet"] == created
    assert steps["pushList"]["configs"] == [created]
    assert steps["pushDeleted"].get("configs", []) == []
    assert steps["cancel"]["status"]["state"] == "TASK_STATE_CANCELED"
    assert "TASK_STATE_CANCELED" in json.dumps(steps["subscribe"][-1])
    # The extended card: the authenticated caller's view of the agent.
    assert steps["extendedCard"]["name"] == "echo"
    assert steps["extendedCard"]["description"].endswith("(as seen by js)")
