"""A real MCP tool server (the official SDK's MCPServer, ex-FastMCP) over Streamable HTTP,
for the gateway's MCP tests: ``python tool_server.py NAME`` binds 127.0.0.1:0 and prints
``PORT <n>``. ``GET /seen`` returns what reached it (method, tool, selected headers), so
a test can assert what the upstream saw, and that it saw nothing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

NAME = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "tools"
SEEN: list[dict[str, Any]] = []
server = MCPServer(NAME, instructions=f"the {NAME} test server")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case the text (not idempotent by annotation)."""
    return text.upper()


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def big(size: int) -> str:
    """A result of ``size`` characters."""
    return "x" * size


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "late"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def hang_read() -> str:
    """Never answers, but is safe to call again."""
    await asyncio.sleep(3600)
    return "late"


@server.tool()
def crash() -> str:
    """Kills its own server process (a crashing stdio server)."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id (to see a restart)."""
    return os.getpid()


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Counts to n, reporting progress at each step."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
        await asyncio.sleep(0.05)
    return f"counted to {n}"


@server.tool()
async def count_forever(ctx: Context) -> str:
    """Reports progress until cancelled; records the cancellation in /seen."""
    try:
        i = 0
        while True:
            i += 1
            await ctx.report_progress(i, None, "still going")
            await asyncio.sleep(0.05)
    except BaseException:
        SEEN.append({"method": "cancelled", "name": "count_forever", "meta": {}, "headers": {}})
        raise


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds a tool named `grown` and tells listeners the tool list changed."""

    def grown() -> str:
        return "grown"

    server.add_tool(grown, name="grown")
    await ctx.notify_tools_changed()  # 2026-07-28 listeners
    send = getattr(ctx.session, "send_tool_list_changed", None)
    if send is not None and "--stdio" in sys.argv:
        await send()  # 2025-11-25 over stdio: on the session's one channel
    return "grew"


@server.tool()
def region_query(region: str, query: str) -> str:
    """Runs a query in a region (the region is mirrored in an Mcp-Param-Region header)."""
    return f"{query} in {region}"


_region_tool = server._tool_manager.get_tool("region_query")
assert _region_tool is not None
_region_tool.parameters = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}, "query": {"type": "string"}},
    "required": ["region", "query"],
}


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Say hello to {name}"


@server.resource("memo://motd", name="motd")
def motd() -> str:
    return f"message of the day from {NAME}"


def recording(app: Any) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/seen":
            body = json.dumps(SEEN).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        params = payload.get("params") or {}
        SEEN.append(
            {
                "method": payload.get("method"),
                "name": params.get("name"),
                "meta": params.get("_meta") or {},
                "headers": {
                    k: headers[k]
                    for k in ("authorization", "traceparent", "mcp-protocol-version", "x-api-key", "mcp-param-region")
                    if k in headers
                },
            }
        )
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


def main() -> None:
    if "--stdio" in sys.argv:
        server.run("stdio")
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    app = recording(server.streamable_http_app())
    # Served over TLS when the test gives a certificate (an MCP server behind a private CA).
    cert, key = os.environ.get("TOOL_SERVER_CERT"), os.environ.get("TOOL_SERVER_KEY")
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ssl_certfile=cert, ssl_keyfile=key)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
