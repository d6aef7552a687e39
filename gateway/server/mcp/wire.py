"""The MCP front's wire, both revisions: a request's headers and trace context, the DNS-rebinding check,
and JSON-RPC answers in the client's revision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.federation.catalog import KINDS
from gateway.model import Context, GatewayError
from gateway.propagation import context_from_headers
from gateway.protocols import mcp
from gateway.server.request_keys import HEADERS_KEY

SERVER_INFO = {"name": "agent-gateway", "version": "0.1.0"}
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# 2026-07-28 results that are CacheableResult (ttlMs and cacheScope required).
_CACHEABLE = frozenset({"server/discover", *KINDS, "resources/read"})


def request_headers(request: web.Request) -> dict[str, str]:
    """The request's headers, names in lower case."""
    return {k.lower(): v for k, v in request.headers.items()}


def request_context(request: web.Request, message: mcp.JsonRpcMessage | None) -> tuple[dict[str, str], Context]:
    """The headers the listener believed, and the call context they (and the message's ``_meta``) carry."""
    believed: dict[str, str] = request[HEADERS_KEY]
    headers = dict(believed)
    # Trace context in _meta (SEP-414) counts when the HTTP headers carry none.
    meta = message.meta if message is not None else {}
    for key in mcp.TRACE_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and key not in headers:
            headers[key] = value
    return headers, context_from_headers(headers)


def check_origin(request: web.Request, allowed_origins: list[str]) -> None:
    """DNS-rebinding defence (both revisions): on a loopback listener the Host must be a loopback
    name, and a browser Origin must be that host or an allowed origin."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    local = str(sockname[0]) if isinstance(sockname, tuple) and sockname else ""
    if local in _LOOPBACK and (urlsplit(f"//{request.host}").hostname or "") not in _LOOPBACK_NAMES:
        raise web.HTTPForbidden(reason="this Host may not call the MCP endpoint (DNS rebinding)")
    origin = request.headers.get("origin")
    if origin is None or origin in allowed_origins or "*" in allowed_origins:
        return
    if urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(reason="this Origin may not call the MCP endpoint")


def final_answer(message: mcp.JsonRpcMessage, answer: Mapping[str, Any], modern: bool) -> dict[str, Any]:
    """The client's response to ``message`` from an upstream's (or our own) answer, in the client's revision."""
    if "error" in answer:
        return {"jsonrpc": "2.0", "id": message.id, "error": answer["error"]}
    body = dict(answer.get("result") or {})
    if modern:
        body.setdefault("resultType", "complete")
        if message.method in _CACHEABLE:
            # Lists are filtered per identity: never shareable across callers.
            body["cacheScope"] = "private"
            body.setdefault("ttlMs", 0)
    else:
        for key in ("resultType", "cacheScope", "ttlMs"):
            body.pop(key, None)
    return mcp.result_message(message.id, body)


def json_answer(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers or {}))


def upstream_error(exc: GatewayError) -> mcp.McpError:
    """A failed upstream call (after the chain's retries) as the client's JSON-RPC error."""
    data = {"code": exc.code.value, "attempts": exc.details.get("attempts", 0)}
    return mcp.McpError(mcp.INTERNAL_ERROR, exc.message, data)
