"""MCP tools through the sidecar, as ``AgentClient.tools`` (revision 2026-07-28, stateless).

One JSON-RPC POST per call to the sidecar's MCP front (``/mcp/<virtual server>``), over httpx:
pure Python, typed, and already installed wherever an agent uses an LLM or the MCP SDK (both
build on it). The wire names are MCP's, shared with the gateway (``agentgateway_client.mcp_wire``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgateway_client.mcp_wire import META_CLIENT_CAPABILITIES, META_VERSION, MODERN, TRACE_KEYS, request_headers
from agentgateway_client.model import ClientError, StatusCode

if TYPE_CHECKING:
    import httpx

# aiohttp's default, which this client used before: a tool may take minutes; the gateway
# enforces the call's own deadline (x-timeout-ms).
_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer: its content blocks, structured content when given, and whether it failed."""

    content: list[dict[str, Any]]
    structured: Any
    is_error: bool

    @property
    def text(self) -> str:
        return "".join(str(c.get("text", "")) for c in self.content if c.get("type") == "text")


class ToolsClient:
    """MCP tools through the sidecar: ``await client.tools.call("tools", "math_add", {...})``.

    Each request carries the client's context (trace, baggage, session, user, deadline) in its
    headers and the trace context in ``_meta`` too, so the tool call joins the agent's trace."""

    def __init__(self, target: str, context: Callable[[], tuple[tuple[str, str], ...]]) -> None:
        self.base = target if "://" in target else f"http://{target}"
        self._context = context
        self._http: httpx.AsyncClient | None = None
        self._ids = 0

    async def _rpc(self, server: str, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        # Imported here: the gateway ships this package without httpx (it imports the model, not the tools).
        import httpx

        if self._http is None:
            # trust_env off: the sidecar is local, no proxy from the environment belongs in between.
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(_TIMEOUT_SECONDS), trust_env=False)
        carrier = dict(self._context())
        meta = {META_VERSION: MODERN, META_CLIENT_CAPABILITIES: {}}
        meta.update({k: v for k, v in carrier.items() if k in TRACE_KEYS})
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": {**params, "_meta": meta}}
        headers = {**carrier, "accept": "application/json, text/event-stream", "content-type": "application/json"}
        headers.update(request_headers(body))
        try:
            response = await self._http.post(f"{self.base}/mcp/{server}", json=body, headers=headers)
        except httpx.TransportError as exc:
            raise ClientError(StatusCode.UNAVAILABLE, f"the MCP front is unreachable: {exc}", transient=True) from None
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            text = f"HTTP {response.status_code} from the MCP front"
            raise ClientError(
                StatusCode.UNAVAILABLE if response.status_code >= 500 else StatusCode.INVALID_ARGUMENT, text
            )
        if "error" in answer:
            error = answer["error"]
            data = error.get("data") if isinstance(error.get("data"), dict) else {}
            code = (
                StatusCode(data["code"])
                if data.get("code") in StatusCode._value2member_map_
                else StatusCode.INVALID_ARGUMENT
            )
            raise ClientError(code, str(error.get("message", "")), details={"mcp_code": error.get("code")})
        result: dict[str, Any] = answer["result"]
        return result

    async def list(self, server: str) -> list[dict[str, Any]]:
        """The tools of virtual server ``server`` this caller may use."""
        tools: list[dict[str, Any]] = (await self._rpc(server, "tools/list", {})).get("tools", [])
        return tools

    async def call(self, server: str, name: str, arguments: Mapping[str, Any] | None = None) -> ToolResult:
        """Call tool ``name``; a tool's own failure is ``is_error``, a gateway failure raises ClientError."""
        result = await self._rpc(server, "tools/call", {"name": name, "arguments": dict(arguments or {})})
        return ToolResult(
            list(result.get("content") or []), result.get("structuredContent"), bool(result.get("isError"))
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
