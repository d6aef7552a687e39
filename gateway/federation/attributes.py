"""Span attribute names of MCP calls (OpenTelemetry's MCP and GenAI conventions), on both sides of the gateway."""

ATTR_MCP_METHOD = "mcp.method.name"
ATTR_MCP_VERSION = "mcp.protocol.version"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROMPT = "gen_ai.prompt.name"
ATTR_RESOURCE = "mcp.resource.uri"
ATTR_RPC_ERROR = "rpc.response.status_code"
