"""A small MCP tool server (the official SDK's MCPServer) that `make run`'s gateway launches over stdio
and federates at /mcp/tools as local_add and local_word_count."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("example-tools", instructions="Arithmetic and text helpers.")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


if __name__ == "__main__":
    server.run("stdio")
