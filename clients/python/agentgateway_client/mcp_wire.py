"""MCP's wire names and the headers a 2026-07-28 request mirrors (``Mcp-Method``, ``Mcp-Name``).

The one definition of them: the gateway's MCP protocol module (``gateway.protocols.mcp``) and the
client's tools (``agentgateway_client.tools``) both build on it. The standard library only; no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

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
SENTINEL_START, SENTINEL_END = "=?base64?", "?="


def encode_header_value(value: str) -> str:
    """The header form of ``value``: as is when it is plain visible ASCII, else the Base64 sentinel form."""
    plain = value.isascii() and all(0x20 <= ord(c) < 0x7F or c == "\t" for c in value)
    if plain and value == value.strip() and not (value.startswith(SENTINEL_START) and value.endswith(SENTINEL_END)):
        return value
    return SENTINEL_START + base64.b64encode(value.encode()).decode() + SENTINEL_END


def request_headers(message: Mapping[str, Any], version: str = MODERN) -> dict[str, str]:
    """The headers a client mirrors from ``message`` (``MCP-Protocol-Version``, and on 2026-07-28
    ``Mcp-Method`` and ``Mcp-Name``)."""
    headers = {HEADER_VERSION: version}
    method = message.get("method")
    if version == MODERN and isinstance(method, str):
        headers[HEADER_METHOD] = method
        key = NAMED_METHODS.get(method)
        params = message.get("params") or {}
        if key is not None and isinstance(params.get(key), str):
            headers[HEADER_NAME] = encode_header_value(params[key])
    return headers
