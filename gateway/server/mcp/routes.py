"""Where the MCP front is mounted (``/mcp/<server>``), and its RFC 9728 protected-resource metadata."""

from __future__ import annotations

from aiohttp import web

from gateway.server.mcp.front import McpFront

MCP_FRONT_KEY = web.AppKey("mcp_front", McpFront)
METADATA_PATH = "/.well-known/oauth-protected-resource"


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def protected_resource_metadata(request: web.Request) -> web.Response:
    """RFC 9728 metadata for ``/mcp/<server>``: where a client gets a token for it."""
    front = request.app[MCP_FRONT_KEY]
    server = request.match_info.get("server")
    if server is not None and server not in front.federation.servers:
        raise web.HTTPNotFound(reason=f"no MCP server named {server!r}")
    resource = f"{_origin(request)}/mcp/{server}" if server else _origin(request)
    body = {
        "resource": resource,
        "authorization_servers": front.authorization_servers,
        "bearer_methods_supported": ["header"],
    }
    return web.json_response(body, headers={"cache-control": "max-age=300"})


async def _point_at_metadata(request: web.Request, response: web.StreamResponse) -> None:
    """A 401 from an MCP endpoint names its metadata (MCP authorization, RFC 9728 section 5.1)."""
    if response.status == 401 and request.path.startswith("/mcp/"):
        url = f"{_origin(request)}{METADATA_PATH}{request.path}"
        response.headers["www-authenticate"] = f'Bearer realm="agent-gateway", resource_metadata="{url}"'


async def _close_front(app: web.Application) -> None:
    await app[MCP_FRONT_KEY].aclose()


def add_mcp_routes(app: web.Application, front: McpFront) -> None:
    app[MCP_FRONT_KEY] = front
    app.on_shutdown.append(_close_front)
    app.router.add_get(METADATA_PATH, protected_resource_metadata)
    app.router.add_get(METADATA_PATH + "/mcp/{server}", protected_resource_metadata)
    app.on_response_prepare.append(_point_at_metadata)
    app.router.add_post("/mcp/{server}", front.post)
    app.router.add_get("/mcp/{server}", front.get)
    app.router.add_delete("/mcp/{server}", front.delete)
