"""A reload (POST /reload) applies a changed `mcp:` section live: virtual servers added, changed and
removed; an upstream whose settings did not change keeps its client (and so its session); clients
following a changed server are told its lists changed."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from opentelemetry.sdk.trace import TracerProvider

from gateway.config import load_config
from gateway.protocols import mcp
from gateway.server.app import GatewayServer
from tests.helpers.mcp import ACCEPT, ToolServer, open_session, read_event

CONFIG = """\
listeners:
  http: {{address: '127.0.0.1:0'}}
  grpc: null
admin: {{address: '127.0.0.1:0'}}
state: null
server: {{drain_timeout: 100ms}}
mcp:
  upstreams:
    a: {{url: {a}{a_extra}}}
    b: {{url: {b}}}
  virtual_servers:
{servers}"""


def write(path: Path, a: str, b: str, servers: str, a_extra: str = "") -> None:
    text = CONFIG.format(a=a, b=b, a_extra=a_extra, servers=textwrap.indent(textwrap.dedent(servers), "    "))
    path.write_text(text, encoding="utf-8")


async def tool_names(session: aiohttp.ClientSession, url: str) -> tuple[int, list[str]]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {"_meta": {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}},
    }
    headers = {**ACCEPT, **mcp.request_headers(body, mcp.MODERN)}
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        if response.status != 200:
            return response.status, []
        answer: dict[str, Any] = await response.json()
        return 200, sorted(t["name"] for t in answer["result"]["tools"])


async def test_a_reload_applies_the_mcp_section_live(
    tmp_path: Path, tool_servers: Callable[[str], ToolServer], tracer_provider: TracerProvider
) -> None:
    a, b = tool_servers("reload-a").url, tool_servers("reload-b").url
    path = tmp_path / "gateway.yaml"
    write(path, a, b, "tools: {upstreams: [{upstream: a}]}\nother: {upstreams: [{upstream: a}]}\n")
    async with (
        GatewayServer(load_config(path), tracer_provider, config_path=path) as gw,
        aiohttp.ClientSession() as session,
    ):
        base, admin = f"http://{gw.addresses.http}/mcp", f"http://{gw.addresses.admin}"
        status, names = await tool_names(session, f"{base}/tools")
        assert status == 200 and "a_add" in names and "b_add" not in names
        assert gw.federation is not None
        client_a = gw.federation.upstreams["a"].client
        legacy = await open_session(session, f"{base}/tools")
        async with session.get(f"{base}/tools", headers={**legacy, "accept": "text/event-stream"}) as stream:
            assert (await read_event(stream)) is not None  # the priming event: the stream is followed
            # b joins `tools`, `fresh` appears, `other` goes.
            write(
                path, a, b, "tools: {upstreams: [{upstream: a}, {upstream: b}]}\nfresh: {upstreams: [{upstream: b}]}\n"
            )
            async with session.post(f"{admin}/reload") as response:
                outcome = await response.json()
            assert response.status == 200 and outcome["applied"] == ["mcp"], outcome
            told = []
            for _ in range(3):  # the three list kinds, each once
                event = await read_event(stream, timeout=5)
                assert event is not None
                told.append(json.loads(event["data"])["method"])
        assert sorted(told) == sorted(
            [
                "notifications/tools/list_changed",
                "notifications/prompts/list_changed",
                "notifications/resources/list_changed",
            ]
        )
        status, names = await tool_names(session, f"{base}/tools")
        assert status == 200 and "a_add" in names and "b_add" in names
        assert (await tool_names(session, f"{base}/fresh"))[1] == [n for n in names if n.startswith("b_")]
        assert (await tool_names(session, f"{base}/other"))[0] == 404
        # a's settings did not change: the same client (its upstream session) goes on.
        assert gw.federation.upstreams["a"].client is client_a
        # Now they do: a new client for a, and calls go on through it.
        write(path, a, b, "tools: {upstreams: [{upstream: a}]}\n", a_extra=", headers: {x-api-key: k2}")
        async with session.post(f"{admin}/reload") as response:
            assert (await response.json())["applied"] == ["mcp"]
        assert gw.federation.upstreams["a"].client is not client_a
        status, names = await tool_names(session, f"{base}/tools")
        assert status == 200 and "a_add" in names and "b_add" not in names
    listed = [s for s in tool_servers("reload-a").seen() if s["method"] == "tools/list"]
    assert listed[-1]["headers"].get("x-api-key") == "k2"  # the new settings reached the upstream
