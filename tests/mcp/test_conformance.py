"""The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
tests/frameworks/mcp) against the gateway's MCP front, with the suite's fixtures served by a
real SDK server federated behind it. Scenarios the gateway does not serve yet are listed in
conformance-baseline.yml: the suite fails the run if one of them starts passing (stale baseline)
or any other scenario fails."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.frameworks import envs
from tests.helpers.mcp import ToolServer, start_tool_server

HERE = Path(__file__).resolve().parent
PROJECT = envs.FRAMEWORKS_DIR / "mcp"


@pytest.fixture(scope="module")
def node() -> Path:
    try:
        return envs.ensure_env("mcp")
    except envs.EnvUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the pinned MCP npm project is not installed: {exc}")


async def test_conformance_suite_passes_through_the_gateway(
    gateway_factory: GatewayFactory, node: Path, tmp_path: Path
) -> None:
    fixtures: ToolServer = start_tool_server("conformance", script=HERE / "conformance_server.py")
    config = f"""\
mcp:
  upstreams:
    fixtures: {{url: {fixtures.url}}}
  virtual_servers:
    conformance:
      upstreams: [{{upstream: fixtures, prefix: ""}}]
"""
    try:
        async with gateway_factory(config) as gw:
            url = f"http://{gw.addresses.http}/mcp/conformance"
            cli = PROJECT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
            argv = [str(node), str(cli), "server", "--url", url, "--suite", "all"]
            argv += ["--expected-failures", str(HERE / "conformance-baseline.yml"), "-o", str(tmp_path)]
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=PROJECT
            )
            output, _ = await asyncio.wait_for(process.communicate(), 300)
    finally:
        fixtures.stop()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
