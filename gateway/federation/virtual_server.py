"""A virtual server: the merged lists of its member upstreams (and of the agents it exposes as tools),
and the routing of a call back to the member that serves the name it was listed under."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.config.schema import McpMember, McpVirtualServer
from gateway.federation.agent_tools import AGENT_TOOL_PREFIX, agent_tool, call_agent, exposed_agent
from gateway.federation.catalog import CALLS, KINDS, Entry, allowed, expose, match_template
from gateway.federation.upstream import FederatedUpstream
from gateway.model import Context, GatewayError, UpstreamError
from gateway.pipeline import Gateway
from gateway.protocols import mcp

log = logging.getLogger("agent_gateway.mcp")

_MAX_PAGES = 100


class VirtualServer:
    """A merged MCP server over several upstreams (and agents exposed as tools)."""

    def __init__(
        self, name: str, spec: McpVirtualServer, upstreams: Mapping[str, FederatedUpstream], gateway: Gateway
    ) -> None:
        self.name = name
        self.spec = spec
        self.upstreams = upstreams
        self.gateway = gateway
        self.catalog: dict[str, dict[str, Entry]] = {}

    @property
    def versions(self) -> tuple[str, ...]:
        """The MCP revisions this server offers: those all its upstreams are served under, newest first."""
        members = [self.upstreams[m.upstream].spec.versions for m in self.spec.upstreams]
        return tuple(v for v in mcp.SUPPORTED_VERSIONS if all(v in spoken for spoken in members))

    def capabilities(self) -> dict[str, Any]:
        capabilities: dict[str, Any] = {"tools": {"listChanged": True}}
        members = [self.upstreams[m.upstream].client.server_capabilities for m in self.spec.upstreams]
        if any("prompts" in c for c in members):
            capabilities["prompts"] = {"listChanged": True}
        if any("resources" in c for c in members):
            capabilities["resources"] = {"listChanged": True}
            if any(isinstance(c.get("resources"), dict) and c["resources"].get("subscribe") for c in members):
                capabilities["resources"]["subscribe"] = True
        for capability in ("completions", "logging"):
            if any(capability in c for c in members):
                capabilities[capability] = {}
        return capabilities

    async def ready(self, context: Context) -> None:
        """Speak once to each member not spoken to yet (a ping negotiates its revision and learns its
        capabilities), so what this server declares is what its members serve. A member that is down
        is left for later: it must not keep the others from being served."""
        unknown = [
            self.upstreams[m.upstream] for m in self.spec.upstreams if self.upstreams[m.upstream].client.version is None
        ]
        answers = await asyncio.gather(*(u.request("ping", {}, context) for u in unknown), return_exceptions=True)
        for upstream, answer in zip(unknown, answers, strict=True):
            if isinstance(answer, GatewayError):
                log.info("MCP upstream %s is not reachable yet: %s", upstream.name, answer)
            elif isinstance(answer, BaseException):
                raise answer

    async def set_log_level(self, level: str, context: Context) -> None:
        """2025-11-25 ``logging/setLevel``, passed on to each member that logs over a handshake session.
        A 2026-07-28 member has no such state: the level travels in each request's ``_meta`` instead."""
        await self.ready(context)
        members = [
            self.upstreams[m.upstream]
            for m in self.spec.upstreams
            if "logging" in self.upstreams[m.upstream].client.server_capabilities
            and self.upstreams[m.upstream].client.version != mcp.MODERN
        ]
        answers = await asyncio.gather(*(u.request("logging/setLevel", {"level": level}, context) for u in members))
        for upstream, answer in zip(members, answers, strict=True):
            if "error" in answer:
                log.info("MCP upstream %s refused logging/setLevel %s: %s", upstream.name, level, answer["error"])

    async def complete(self, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        """``completion/complete``, routed by its reference (a prompt's exposed name, or a resource
        template's or resource's exposed URI) to the member that serves it, under the original name."""
        ref = params.get("ref")
        if not isinstance(ref, Mapping) or ref.get("type") not in ("ref/prompt", "ref/resource"):
            raise mcp.McpError(mcp.INVALID_PARAMS, "params.ref must be a ref/prompt or a ref/resource")
        field_name = "name" if ref["type"] == "ref/prompt" else "uri"
        exposed = ref.get(field_name)
        if not isinstance(exposed, str):
            raise mcp.McpError(mcp.INVALID_PARAMS, f"params.ref.{field_name} must be a string")
        if ref["type"] == "ref/prompt":
            entry = await self.resolve("prompts/get", exposed, context)
        else:
            entry = await self.template(exposed, context) or await self.resolve("resources/read", exposed, context)
        forwarded = {**params, "ref": {**ref, field_name: entry.original}}
        return await self.upstreams[entry.upstream].request("completion/complete", forwarded, context)

    async def template(self, exposed: str, context: Context) -> Entry | None:
        """The member resource template listed as ``exposed`` (None when there is none)."""
        return (await self._templates(context)).get(exposed)

    async def _templates(self, context: Context) -> dict[str, Entry]:
        """The members' resource templates by exposed URI template (listed first when not yet)."""
        if "resources/templates/list" not in self.catalog:
            await self.list("resources/templates/list", context)
        return self.catalog.get("resources/templates/list", {})

    def exposed_uri(self, upstream: str, original: str) -> str | None:
        """The URI under which this server exposes ``upstream``'s resource ``original`` (None: not a member)."""
        for member in self.spec.upstreams:
            if member.upstream == upstream:
                return expose(member, original, "uri")
        return None

    async def _list_member(self, member: McpMember, method: str, context: Context) -> list[dict[str, Any]]:
        upstream = self.upstreams[member.upstream]
        key, name_field = KINDS[method]
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"cursor": cursor} if cursor else {}
            answer = await upstream.request(method, params, context)
            result = answer.get("result")
            if not isinstance(result, dict):
                if method != "tools/list":
                    return items  # the upstream has no prompts or resources
                raise UpstreamError(
                    f"MCP upstream {member.upstream!r} failed {method}: {answer.get('error')}", agent=member.upstream
                )
            for item in result.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get(name_field), str):
                    items.append(item)
            cursor = result.get("nextCursor")
            if not cursor:
                break
        if method == "tools/list" and isinstance(upstream.client, McpHttpUpstream):
            upstream.client.input_schemas = {i["name"]: i.get("inputSchema") for i in items}
        if method == "tools/list":
            upstream.retry_safe = {
                i["name"] for i in items if mcp.is_retry_safe(i) or i["name"] in upstream.spec.idempotent_tools
            }
        return items

    async def list(self, method: str, context: Context) -> list[dict[str, Any]]:
        """The merged list (every member asked at once), exposed names in member order."""
        key, name_field = KINDS[method]
        members = self.spec.upstreams
        if method != "tools/list":
            members = [
                m
                for m in members
                if (key if key != "resourceTemplates" else "resources")
                in self.upstreams[m.upstream].client.server_capabilities
                or self.upstreams[m.upstream].client.version is None
            ]
        answers = await asyncio.gather(*(self._list_member(m, method, context) for m in members))
        entries: dict[str, Entry] = {}
        out: list[dict[str, Any]] = []
        for member, items in zip(members, answers, strict=True):
            for item in items:
                original = item[name_field]
                if not allowed(member, item, name_field):
                    continue
                exposed = expose(member, original, name_field)
                if exposed in entries:
                    continue  # first member wins: deterministic
                entries[exposed] = Entry(member.upstream, original, item)
                out.append({**item, name_field: exposed})
        if method == "tools/list":
            for agent in self.spec.agents:
                exposed = AGENT_TOOL_PREFIX + agent
                out.append(agent_tool(agent, exposed))
        self.catalog[method] = entries
        return out

    async def resolve(self, call_method: str, exposed: str, context: Context) -> Entry:
        list_method = CALLS[call_method]
        entry = self.catalog.get(list_method, {}).get(exposed)
        if entry is None:
            await self.list(list_method, context)
            entry = self.catalog.get(list_method, {}).get(exposed)
        if entry is None and call_method == "resources/read":
            entry = match_template(await self._templates(context), exposed)
        if entry is None:
            raise mcp.McpError(mcp.INVALID_PARAMS, f"unknown {list_method.split('/')[0][:-1]}: {exposed!r}")
        return entry

    async def input_schema(self, exposed: str, context: Context) -> Any:
        """The input schema of tool ``exposed`` as listed (None for agents and unknown tools)."""
        if exposed_agent(self.spec, exposed) is not None:
            return None
        try:
            entry = await self.resolve("tools/call", exposed, context)
        except mcp.McpError:
            return None  # the call itself reports the unknown tool
        return entry.item.get("inputSchema")

    async def call(self, method: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        """Route a named request (tools/call, prompts/get, resources/read) to its upstream."""
        key, exposed = _named(method, params)
        agent = exposed_agent(self.spec, exposed) if method == "tools/call" else None
        if agent is not None:
            return await call_agent(self.gateway, agent, params, context)
        entry = await self.resolve(method, exposed, context)
        forwarded = {**params, key: entry.original}
        return await self.upstreams[entry.upstream].request(method, forwarded, context)

    async def call_stream(
        self, method: str, params: Mapping[str, Any], context: Context
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Like :meth:`call`, with the upstream's notifications (progress) first."""
        key, exposed = _named(method, params)
        if method == "tools/call" and exposed.startswith(AGENT_TOOL_PREFIX):
            yield await self.call(method, params, context)
            return
        entry = await self.resolve(method, exposed, context)
        async for item in self.upstreams[entry.upstream].stream(method, {**params, key: entry.original}, context):
            yield item

    async def respond(
        self, method: str, params: Mapping[str, Any], answer: Mapping[str, Any], context: Context
    ) -> None:
        """Answer a request the upstream serving ``method``/``params`` (the exposed name) made during that call."""
        entry = await self.resolve(method, str(params.get(mcp.NAMED_METHODS[method])), context)
        await self.upstreams[entry.upstream].respond(answer, context)


def _named(method: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """The parameter naming what a named request acts on, and that (exposed) name."""
    key = mcp.NAMED_METHODS[method]
    exposed = params.get(key)
    if not isinstance(exposed, str):
        raise mcp.McpError(mcp.INVALID_PARAMS, f"params.{key} must be a string")
    return key, exposed
