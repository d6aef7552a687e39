"""MCP federation: upstream tool servers behind the policy chain, merged into virtual servers.

Each upstream gets the same chain an agent gets (timeouts, retries, breaker,
bulkhead) around one terminal that sends one MCP request; a tool call is an
ordinary :class:`Invocation` for ``mcp/<upstream>`` whose single data part is
the request, marked idempotent only when the tool says so (``readOnlyHint`` /
``idempotentHint``) or the config does, so the retry policy's own rules decide.

A virtual server lists each member's tools, prompts and resources, keeps what
its allow/deny lists let through, and names them ``<prefix>_<name>`` in member
order, so names are deterministic; a call is routed back by that name.

The modules, one job each: ``catalog`` (the lists and their exposed names), ``agent_tools``
(agents exposed as tools), ``attempt`` (one MCP request in a CLIENT span, the chain's terminal),
``upstream`` (an upstream's client and chain), ``virtual_server`` (the merge and the routing of
calls), ``notifications`` (list changes and resource subscriptions followed upstream) and
``lifecycle`` (the whole federation of a config: built, reloaded, closed).
"""

from gateway.federation.lifecycle import Federation
from gateway.federation.virtual_server import VirtualServer

__all__ = ["Federation", "VirtualServer"]
