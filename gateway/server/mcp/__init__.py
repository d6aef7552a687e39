"""The MCP front: each virtual server at ``/mcp/<name>`` over Streamable HTTP, both revisions side by side.

A request whose ``_meta`` names ``2026-07-28`` is served statelessly: its
mirrored ``MCP-Protocol-Version`` / ``Mcp-Method`` / ``Mcp-Name`` headers must
match the body (400 HeaderMismatch otherwise), there is no session, and
``server/discover`` and ``subscriptions/listen`` are served. ``initialize``
starts a 2025-11-25 session (``Mcp-Session-Id``; the GET stream; DELETE ends it).

Authentication and per-identity rate limits happen in the listener's middleware
like every other route. Authorization is default deny per identity, virtual
server and name (``security.authorization[].mcp``): a name an identity may not
use is neither listed nor callable, and its upstream never hears of the call.

The modules, one job each: ``front`` (the POST, GET and DELETE handlers), ``wire`` (headers, trace
context, origin check, answers in the client's revision), ``negotiation`` (revision and session of a
POST; initialize, server/discover), ``sessions`` (2025-11-25 sessions), ``dispatch`` (the answer per
method), ``streamed_call`` (a tools/call answered as a stream) with ``client_input`` (what a tool asks
the client), ``subscriptions`` (list changes; subscriptions/listen), ``event_streams`` and
``stream_serving`` (resumable streams and the GET stream), ``routes`` (mounting; RFC 9728 metadata).
"""

from gateway.server.mcp.front import McpFront
from gateway.server.mcp.routes import add_mcp_routes

__all__ = ["McpFront", "add_mcp_routes"]
