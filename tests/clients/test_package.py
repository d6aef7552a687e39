"""The client distribution on its own: built, installed into a fresh venv with only what it
declares, and calling a real gateway from there, without the gateway's dependencies."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import venv
from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer, start_tool_server

# What an agent must not pull in to call its sidecar (the gateway and its server-side stack).
ABSENT = ("gateway", "redis", "nats", "jwt", "pydantic", "aiohttp")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# Runs inside the venv: every part of the client against the gateway, the results as JSON.
AGENT = f"""
import asyncio, importlib.util, json, sys
from agentgateway_client import AgentClient, ClientError, StatusCode

INBOUND = {{
    "traceparent": "00-{TRACE_ID}-00f067aa0ba902b7-01",
    "x-session-id": "venv-session",
    "x-user-id": "venv-user",
    "x-timeout-ms": "8000",
    "baggage": "tenant=acme",
}}

async def main():
    grpc_target, http_target = sys.argv[1:3]
    out = {{"absent": [m for m in {ABSENT!r} if importlib.util.find_spec(m) is None]}}
    async with AgentClient(grpc_target, inbound=INBOUND, http_target=http_target) as client:
        result = await client.invoke("echo", "from the venv", thread_id="t-venv")
        out["text"] = result.text
        out["headers"] = result.messages[0].parts[1].data["headers"]
        out["deltas"] = "".join(
            [e.message.text async for e in client.stream("echo", "a b") if e.type == "delta" and e.message]
        )
        record = await client.state.put("session", "plan", {{"n": 7}})
        got = await client.state.get("session", "plan")
        out["state"] = [record.version, got.value.json(), got.etag == record.etag]
        tool = await client.tools.call("tools", "math_add", {{"a": 5, "b": 6}})
        out["tool"] = [tool.text, tool.is_error]
        try:
            await client.invoke("ghost", "hi")
        except ClientError as exc:
            out["error"] = [exc.code is StatusCode.NOT_FOUND, exc.code.value]
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> venv.ClientVenv:
    try:
        return venv.make(tmp_path_factory.mktemp("client-venv"))
    except venv.Unavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the client venv cannot be built offline here: {exc}")


@pytest.fixture(scope="module")
def tool_server() -> Iterator[ToolServer]:
    server = start_tool_server("venv-math")
    yield server
    server.stop()


def test_the_venv_holds_the_client_and_only_its_declared_closure(client_venv: venv.ClientVenv) -> None:
    assert client_venv.wheel.name == "agent_gateway_client-0.1.0-py3-none-any.whl"
    assert {"grpcio", "protobuf", "opentelemetry-api", "httpx"} <= set(client_venv.installed)
    assert not set(client_venv.installed) & {"agent-gateway", "redis", "nats-py", "pyjwt", "pydantic", "aiohttp"}


async def test_an_agent_in_the_venv_calls_a_running_gateway(
    client_venv: venv.ClientVenv, gateway_factory: GatewayFactory, echo_url: str, tool_server: ToolServer, tmp_path: Path
) -> None:
    config = f"""\
agents:
  echo: {{kind: http, endpoint: "{echo_url}"}}
mcp:
  upstreams:
    math: {{url: {tool_server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    async with gateway_factory(config) as gw:
        assert gw.addresses.grpc and gw.addresses.http
        # -I: isolated, so neither this checkout (the cwd) nor PYTHONPATH can lend the venv a module.
        process = await asyncio.create_subprocess_exec(
            str(client_venv.python), "-I", "-c", AGENT, gw.addresses.grpc, gw.addresses.http,
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-3000:]
    out = json.loads(stdout)
    assert out["absent"] == list(ABSENT)
    assert out["text"].startswith("echo: from the venv")
    headers = out["headers"]
    # The inbound context went on exactly as from the gateway's own environment (tests/test_client.py).
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    assert (headers["x-session-id"], headers["x-user-id"], headers["x-thread-id"]) == ("venv-session", "venv-user", "t-venv")
    assert headers["baggage"].startswith("tenant=acme,session.id=venv-session,gen_ai.conversation.id=t-venv,enduser.id=venv-user,")
    assert 0 < int(headers["x-timeout-ms"]) <= 8000
    assert out["deltas"] == "echo: a b "
    assert out["state"] == [1, {"n": 7}, True]
    assert out["tool"] == ["11", False]
    assert out["error"] == [True, "NOT_FOUND"]
    assert sys.executable != str(client_venv.python)
