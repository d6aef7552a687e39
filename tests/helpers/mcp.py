"""MCP tool servers in tests: the scripted stdio/HTTP tool server (tests/mcp/tool_server.py), started on an ephemeral port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.protocols import mcp

TOOL_SERVER = Path(__file__).parents[1] / "mcp" / "tool_server.py"


@dataclass
class ToolServer:
    process: subprocess.Popen[str]
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/mcp"

    def seen(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/seen", timeout=5) as response:
            seen: list[dict[str, Any]] = json.load(response)
            return seen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_tool_server(name: str, script: Path = TOOL_SERVER, tls: tuple[Path, Path] | None = None) -> ToolServer:
    """``tls``: (certificate, key) to serve HTTPS with (probed without verification: the test's CA)."""
    env = {**os.environ, **({"TOOL_SERVER_CERT": str(tls[0]), "TOOL_SERVER_KEY": str(tls[1])} if tls else {})}
    process = subprocess.Popen(
        [sys.executable, str(script), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the tool server did not start: {line!r}")
    server = ToolServer(process, int(line.split()[1]), "https" if tls else "http")
    probe = ssl._create_unverified_context() if tls else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{server.scheme}://127.0.0.1:{server.port}/", timeout=5, context=probe).close()
            return server
        except urllib.error.HTTPError:
            return server  # it answers (a 404 for "/"): up
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("the tool server never answered")


ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


# A 2025-11-25 initialize request.
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": {"name": "w", "version": "1"}},
}  # fmt: skip


async def read_event(response: aiohttp.ClientResponse, timeout: float = 10) -> dict[str, str] | None:
    """The next SSE event's fields (id, retry, data, event), keep-alive comments skipped; None at the end."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).decode()
        if not line:
            return None
        line = line.rstrip("\n")
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def open_session(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.post(url, data=json.dumps(INIT), headers=ACCEPT) as response:
        assert response.status == 200
        return {**ACCEPT, mcp.HEADER_SESSION: response.headers[mcp.HEADER_SESSION], mcp.HEADER_VERSION: mcp.LEGACY}


# API keys of the authorization tests' identities, and the digest the config holds.
KEY_A, KEY_B, KEY_C = "key-for-alice-0123456789", "key-for-bob-0123456789", "key-for-carol-0123456789"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
