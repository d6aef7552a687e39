"""The official TypeScript SDK's clients (pinned in tests/frameworks/mcp) list and call federated tools
through the gateway, progress included: @modelcontextprotocol/sdk on 2025-11-25 (the newest revision
that package speaks; 1.32.2 is its latest release), and the SDK's v2 client package,
@modelcontextprotocol/client, pinned to 2026-07-28."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory
from tests.frameworks import envs
from tests.helpers.mcp import ToolServer

PROJECT = envs.FRAMEWORKS_DIR / "mcp"


@pytest.fixture(scope="module")
def node() -> Path:
    try:
        return envs.ensure_env("mcp")
    except envs.EnvUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the pinned MCP npm project is not installed: {exc}")


def gateway_yaml(server: ToolServer) -> str:
    return f"""\
mcp:
  upstreams:
    math: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
"""


async def run_client(node: Path, script: str, url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(node), script, url, tool, json.dumps(arguments),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=PROJECT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return answer


async def test_typescript_sdk_client_calls_a_federated_tool(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer], node: Path
) -> None:
    async with gateway_factory(gateway_yaml(tool_servers("ts-math"))) as gw:
        url = f"http://{gw.addresses.http}/mcp/tools"
        answer = await run_client(node, "ts_client.mjs", url, "math_count", {"n": 3})
    assert answer["session"]  # 2025-11-25: the gateway minted a session
    assert "math_add" in answer["tools"] and "math_count" in answer["tools"]
    assert answer["result"]["content"][0]["text"] == "counted to 3"
    assert answer["progress"] == [1, 2, 3]


async def test_typescript_sdk_v2_client_calls_a_federated_tool_on_2026_07_28(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer], node: Path
) -> None:
    async with gateway_factory(gateway_yaml(tool_servers("ts-math"))) as gw:
        url = f"http://{gw.addresses.http}/mcp/tools"
        answer = await run_client(node, "ts_client_modern.mjs", url, "math_count", {"n": 3})
    assert (answer["era"], answer["version"]) == ("modern", "2026-07-28")
    assert answer["supported"] == ["2026-07-28", "2025-11-25"]  # from the gateway's server/discover
    assert answer["session"] is None  # 2026-07-28: stateless, no Mcp-Session-Id
    assert "math_add" in answer["tools"] and "math_count" in answer["tools"]
    assert answer["result"]["content"][0]["text"] == "counted to 3"
    assert answer["progress"] == [1, 2, 3]
