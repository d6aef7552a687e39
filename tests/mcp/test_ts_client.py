"""The official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in tests/frameworks/mcp) lists and
calls federated tools through the gateway (2025-11-25, the newest revision that SDK speaks), progress included."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

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


async def test_typescript_sdk_client_calls_a_federated_tool(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer], node: Path
) -> None:
    server = tool_servers("ts-math")
    config = f"""\
mcp:
  upstreams:
    math: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: math}}]
"""
    async with gateway_factory(config) as gw:
        url = f"http://{gw.addresses.http}/mcp/tools"
        process = await asyncio.create_subprocess_exec(
            str(node), "ts_client.mjs", url, "math_count", json.dumps({"n": 3}),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=PROJECT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()[-3000:]
    answer = json.loads(out.decode().strip().splitlines()[-1])
    assert answer["session"]  # 2025-11-25: the gateway minted a session
    assert "math_add" in answer["tools"] and "math_count" in answer["tools"]
    assert answer["result"]["content"][0]["text"] == "counted to 3"
    assert answer["progress"] == [1, 2, 3]
