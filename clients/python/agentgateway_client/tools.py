"""MCP tools through the sidecar, as ``AgentClient.tools`` (revision 2026-07-28, stateless).

One JSON-RPC POST per call to the sidecar's MCP front (``/mcp/<virtual server>``), over httpx:
pure Python, typed, and already installed wherever an agent uses an LLM or the MCP SDK (both
build on it). The wire names below are the gateway's own (``gateway.protocols.mcp``); the
client's tests keep them equal.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agentgateway_client.model import ClientError, StatusCode

MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
HEADER_VERSION = "mcp-protocol-version"
HEADER_METHOD = "mcp-method"
HEADER_NAME = "mcp-name"
# Methods whose `params.name` (or `params.uri`) is mirrored in `Mcp-Name`.
NAMED_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# Trace context carried in `_meta` (SEP-414) as well as in HTTP headers.
TRACE_KEYS = ("traceparent", "tracestate", "baggage")
_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="
# aiohttp's default, which this client used before: a tool may take minutes; the gateway
# enforces the call's own deadline (x-timeout-ms).
_TIMEOUT = httpx.Timeout(300.0)


def encode_header_value(value: str) -> str:
    """The header form of ``value``: as is when it is plain visible ASCII, else the Base64 sentinel form."""
    plain = value.isascii() and all(0x20 <= ord(c) < 0x7F or c == "\t" for c in value)
    if plain and value == value.strip() and not (value.startswith(_SENTINEL_START) and value.endswith(_SENTINEL_END)):
        return value
    return _SENTINEL_START + base64.b64encode(value.encode()).decode() + _SENTINEL_END


def request_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """The headers a 2026-07-28 client mirrors from ``message``: the version, method and name."""
    headers = {HEADER_VERSION: MODERN}
    method = message.get("method")
    if isinstance(method, str):
        headers[HEADER_METHOD] = method
        key = NAMED_METHODS.get(method)
        params = message.get("params") or {}
        if key is not None and isinstance(params.get(key), str):
            headers[HEADER_NAME] = encode_header_value(params[key])
    return headers


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
        if self._http is None:
            # trust_env off: the sidecar is local, no proxy from the environment belongs in between.
            self._http = httpx.AsyncClient(timeout=_TIMEOUT, trust_env=False)
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
