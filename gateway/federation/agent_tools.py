"""Agents exposed as tools of a virtual server (``agent_<name>``): a call is an ordinary invocation of the agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.schema import McpVirtualServer
from gateway.model import Context, GatewayError, Invocation, Message, Role, TextPart
from gateway.pipeline import Gateway
from gateway.protocols import mcp

AGENT_TOOL_PREFIX = "agent_"


def agent_tool(agent: str, exposed: str) -> dict[str, Any]:
    """The tool listed for ``agent``."""
    return {
        "name": exposed,
        "description": f"Ask the agent {agent!r} (routed through the gateway); returns its answer.",
        "inputSchema": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "what to ask the agent"}},
            "required": ["message"],
        },
    }


def exposed_agent(spec: McpVirtualServer, exposed: str) -> str | None:
    """The agent a virtual server exposes as tool ``exposed`` (None: not an agent of it)."""
    if exposed.startswith(AGENT_TOOL_PREFIX) and exposed[len(AGENT_TOOL_PREFIX) :] in spec.agents:
        return exposed[len(AGENT_TOOL_PREFIX) :]
    return None


async def call_agent(gateway: Gateway, agent: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
    """``tools/call`` of an agent's tool: its ``arguments.message`` asked, its answer (or failure) the tool's result."""
    arguments = params.get("arguments") or {}
    text = arguments.get("message") if isinstance(arguments, Mapping) else None
    if not isinstance(text, str):
        raise mcp.McpError(mcp.INVALID_PARAMS, "arguments.message must be a string")
    invocation = Invocation(agent, (Message(Role.USER, (TextPart(text),)),), context)
    try:
        result = await gateway.invoke(invocation)
    except GatewayError as exc:
        return {"result": {"content": [{"type": "text", "text": exc.message}], "isError": True}}
    return {"result": {"content": [{"type": "text", "text": result.text}], "isError": False}}
