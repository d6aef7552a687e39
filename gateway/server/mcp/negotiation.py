"""Which revision a POST speaks and in which session: ``initialize`` starts a 2025-11-25 session, a
request naming 2026-07-28 in its ``_meta`` is stateless (its mirrored headers must match its body), and
``server/discover`` tells a 2026-07-28 client what the server speaks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config.schema import McpStreams
from gateway.federation import VirtualServer
from gateway.protocols import mcp
from gateway.server.mcp.sessions import McpSession, Sessions
from gateway.server.mcp.wire import SERVER_INFO, request_context
from gateway.server.request_keys import IDENTITY_KEY


@dataclass(frozen=True, slots=True)
class Incoming:
    """One POSTed message: the server it is for, whether it speaks 2026-07-28, its 2025-11-25 session."""

    request: web.Request
    server: VirtualServer
    message: mcp.JsonRpcMessage
    modern: bool
    session: McpSession | None


def negotiate(
    request: web.Request,
    server: VirtualServer,
    message: mcp.JsonRpcMessage,
    headers: Mapping[str, str],
    sessions: Sessions,
) -> Incoming:
    """``message`` with its revision and session (an McpError when it speaks neither revision properly)."""
    if message.method == "initialize":
        if mcp.LEGACY not in server.versions:
            # A server without the handshake era names what it speaks (2026-07-28 versioning).
            asked = message.params.get("protocolVersion")
            raise mcp.unsupported_version(asked if isinstance(asked, str) else "", server.versions)
        return Incoming(request, server, message, False, None)
    if message.meta.get(mcp.META_VERSION) is not None or headers.get(mcp.HEADER_VERSION) == mcp.MODERN:
        mcp.check_modern_headers(message, headers, server.versions)
        return Incoming(request, server, message, True, None)
    return Incoming(request, server, message, False, sessions.find(request, headers, server))


async def initialize(incoming: Incoming, sessions: Sessions, settings: McpStreams) -> tuple[dict[str, Any], str]:
    """2025-11-25 ``initialize``: a new session at the version asked (or ours); the answer and the session's id."""
    request, server, message = incoming.request, incoming.server, incoming.message
    context = request_context(request, message)[1]
    await server.ready(context)
    asked = message.params.get("protocolVersion")
    version = asked if isinstance(asked, str) and asked in mcp.HANDSHAKE_VERSIONS else mcp.LEGACY
    session = McpSession(server.name, version, request[IDENTITY_KEY].name, settings)
    capabilities = message.params.get("capabilities")
    if isinstance(capabilities, Mapping):
        session.capabilities = dict(capabilities)
    session_id = sessions.start(session, request_context(request, None)[1])
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": server.capabilities(),
        "serverInfo": SERVER_INFO,
    }
    if server.spec.instructions:
        result["instructions"] = server.spec.instructions
    return {"result": result}, session_id


async def discover(incoming: Incoming) -> dict[str, Any]:
    """2026-07-28 ``server/discover``: the versions, capabilities and instructions of the server."""
    server = incoming.server
    await server.ready(request_context(incoming.request, incoming.message)[1])
    result: dict[str, Any] = {
        "supportedVersions": list(server.versions),
        "capabilities": server.capabilities(),
        "_meta": {mcp.META_SERVER_INFO: SERVER_INFO},
    }
    if server.spec.instructions:
        result["instructions"] = server.spec.instructions
    return {"result": result}
