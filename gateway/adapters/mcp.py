"""An MCP tool as an agent: ``kind: mcp`` calls one tool of an MCP server (over Streamable HTTP),
so workflow steps, hierarchical workers, routes and fallbacks can be tool calls, with the agents'
policies and tracing. The input's data part (an object) is the tool's arguments; a text input goes
in the argument named by ``options.argument``. The answer is the tool's text, and its structured
content as a data part.

    agents:
      add:
        kind: mcp
        endpoint: http://127.0.0.1:8080/mcp/tools     # the gateway's own virtual server, or any MCP server
        options: {tool: math_add}
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import structured_input
from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.model import (
    AgentSpec,
    Attempt,
    DataPart,
    Message,
    Part,
    Result,
    Role,
    TextPart,
    UpstreamError,
    UpstreamRejected,
)


class McpToolOptions(AdapterOptions):
    # The tool to call.
    tool: str
    # The argument a text input goes in (a data-part input is the whole arguments object).
    argument: str = "message"
    # Headers sent with every request (credentials of that MCP server).
    headers: dict[str, str] = {}


class McpToolAdapter(Adapter):
    kind = "mcp"
    Options = McpToolOptions
    streaming = False

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: McpToolOptions
        self.client = McpHttpUpstream(spec.name, resources.http, spec.endpoint, self.options.headers, tls=spec.tls)

    def _arguments(self, call: Attempt) -> dict[str, Any]:
        message = call.invocation.messages[-1] if call.invocation.messages else None
        found = structured_input(message, self.options.argument) if message is not None else None
        return found if found is not None else {self.options.argument: ""}

    async def invoke(self, call: Attempt) -> Result:
        answer = await self.client.request(
            call, "tools/call", {"name": self.options.tool, "arguments": self._arguments(call)}
        )
        if isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise UpstreamRejected(
                f"the MCP tool failed: {error.get('message')}",
                agent=self.spec.name,
                details={"mcp_code": error.get("code")},
            )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise UpstreamError("the MCP server sent no result", agent=self.spec.name)
        text = "".join(
            str(c.get("text", ""))
            for c in result.get("content") or []
            if isinstance(c, dict) and c.get("type") == "text"
        )
        if result.get("isError") is True:
            raise UpstreamRejected(f"the MCP tool reported an error: {text[:512]}", agent=self.spec.name)
        parts: list[Part] = [TextPart(text)]
        if result.get("structuredContent") is not None:
            parts.append(DataPart(result["structuredContent"]))
        return Result(self.spec.name, (Message(Role.AGENT, tuple(parts)),))

    async def aclose(self) -> None:
        await self.client.aclose()
        await super().aclose()
