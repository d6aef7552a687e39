"""The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
tests/frameworks/mcp) against the gateway's MCP front, with the suite's fixtures served by a
real SDK server federated behind it. Every server scenario must pass: no expected failures.

The gateway holds a 2025-11-25 connection for 1 s here (``streams.hold``), so the suite's
test_reconnection (1.5 s) has its POST's connection closed and is resumed with Last-Event-ID
(SEP-1699); any other call that ran longer would be resumed by the suite's SDK client the same way.
Every check of every scenario must succeed: a warning (the suite's "SHOULD") fails here too."""

from __future__ import annotations

import asyncio
import json
import os
import re
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
  streams: {{hold: 1s, retry: 100ms}}
"""
    try:
        async with gateway_factory(config) as gw:
            url = f"http://{gw.addresses.http}/mcp/conformance"
            cli = PROJECT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
            argv = [str(node), str(cli), "server", "--url", url, "--suite", "all"]
            argv += ["-o", str(tmp_path)]
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=PROJECT
            )
            output, _ = await asyncio.wait_for(process.communicate(), 300)
    finally:
        fixtures.stop()
    text = output.decode(errors="replace")
    print(text[text.find("=== SUMMARY") :])  # the suite's figures, shown with pytest -s
    assert process.returncode == 0, text[-6000:]
    summary = re.search(r"Total: (\d+) passed, (\d+) failed", text)
    assert summary is not None and int(summary.group(2)) == 0, text[-6000:]
    assert "server-sse-polling" in text and "✗" not in text, text[-6000:]
    checks = scenario_checks(tmp_path)
    assert checks["server-sse-polling"]["server-sse-disconnect-resume"] == "SUCCESS", checks["server-sse-polling"]
    doubtful = {name: ids for name, ids in checks.items() if {"WARNING", "FAILURE"} & set(ids.values())}
    assert not doubtful, doubtful


def scenario_checks(results: Path) -> dict[str, dict[str, str]]:
    """Each scenario's checks (id -> status) from the suite's output (``server-<scenario>-<timestamp>/``)."""
    checks: dict[str, dict[str, str]] = {}
    for path in results.glob("*/checks.json"):
        scenario = path.parent.name.removeprefix("server-").rsplit("-", 6)[0]
        checks[scenario] = {check["id"]: check["status"] for check in json.loads(path.read_text())}
    return checks
