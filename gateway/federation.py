"""MCP federation: upstream tool servers behind the policy chain, merged into virtual servers.

Each upstream gets the same chain an agent gets (timeouts, retries, breaker,
bulkhead) around one terminal that sends one MCP request; a tool call is an
ordinary :class:`Invocation` for ``mcp/<upstream>`` whose single data part is
the request, marked idempotent only when the tool says so (``readOnlyHint`` /
``idempotentHint``) or the config does, so the retry policy's own rules decide.

A virtual server lists each member's tools, prompts and resources, keeps what
its allow/deny lists let through, and names them ``<prefix>_<name>`` in member
order, so names are deterministic; a call is routed back by that name.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.adapters.mcp_stdio import McpStdioUpstream
from gateway.config.schema import McpConfig, McpMember, McpUpstream, McpVirtualServer
from gateway.context import outbound_headers
from gateway.model import (
    Call,
    Context,
    DataPart,
    Event,
    GatewayError,
    Invocation,
    Message,
    Options,
    Result,
    Role,
    TextPart,
    UpstreamError,
)
from gateway.pipeline import Gateway
from gateway.policies.base import Handler, StreamHandler, compose
from gateway.protocols import mcp
from gateway.telemetry import tracing as t

log = logging.getLogger("agent_gateway.mcp")

ATTR_MCP_METHOD = "mcp.method.name"
ATTR_MCP_VERSION = "mcp.protocol.version"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROMPT = "gen_ai.prompt.name"
ATTR_RESOURCE = "mcp.resource.uri"
ATTR_RPC_ERROR = "rpc.response.status_code"

# list method -> (item key, the field naming an item, the call method that uses it)
KINDS = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
CALLS = {"tools/call": "tools/list", "prompts/get": "prompts/list", "resources/read": "resources/list"}
AGENT_TOOL_PREFIX = "agent_"
_MAX_PAGES = 100


def request_invocation(
    upstream: str, method: str, params: Mapping[str, Any], context: Context, idempotent: bool
) -> Invocation:
    """The model's view of one MCP request to ``upstream``."""
    part = DataPart({"method": method, "params": dict(params)})
    return Invocation(f"mcp/{upstream}", (Message(Role.USER, (part,)),), context, Options(idempotent=idempotent))


def _request_of(invocation: Invocation) -> tuple[str, dict[str, Any]]:
    part = invocation.messages[0].parts[0]
    assert isinstance(part, DataPart)
    assert isinstance(part.data, dict)
    return part.data["method"], part.data["params"]


def response_of(result: Result) -> dict[str, Any]:
    part = result.messages[0].parts[0]
    assert isinstance(part, DataPart)
    assert isinstance(part.data, dict)
    return part.data


McpClient = McpHttpUpstream | McpStdioUpstream


class McpAttempt:
    """The terminal of an MCP upstream's chain: one request in a CLIENT span."""

    def __init__(self, name: str, client: McpClient, tracer: Tracer, metrics: Any) -> None:
        self.name = name
        self.client = client
        self.tracer = tracer
        self.metrics = metrics

    async def stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        """The request with its notifications (progress) as events, the response last."""
        invocation.record.attempts += 1
        method, params = _request_of(invocation)
        span = self.tracer.start_span(
            f"tools/call {params.get('name', '')}" if method == "tools/call" else method,
            kind=SpanKind.CLIENT,
            attributes=self._attributes(invocation, method, params),
        )
        headers = outbound_headers(invocation.context, trace.set_span_in_context(span, otel_context.get_current()))
        try:
            async for item in self.client.stream(Call(invocation, headers), method, params):
                yield Event("mcp", data=item)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute(
                t.ATTR_ERROR_TYPE, exc.code.value if isinstance(exc, GatewayError) else type(exc).__name__
            )
            raise
        finally:
            span.end()

    def _attributes(self, invocation: Invocation, method: str, params: Mapping[str, Any]) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            ATTR_MCP_METHOD: method,
            t.ATTR_ATTEMPT: invocation.attempt,
            t.ATTR_REQUEST_ID: invocation.context.request_id,
            "server.address": self.name,
        }
        if method == "tools/call":
            attributes[ATTR_TOOL] = params.get("name", "")
            attributes[t.ATTR_OPERATION] = "execute_tool"
        return attributes

    async def invoke(self, invocation: Invocation) -> Result:
        invocation.record.attempts += 1
        part = invocation.messages[0].parts[0]
        assert isinstance(part, DataPart)
        assert isinstance(part.data, dict)
        method: str = part.data["method"]
        params: dict[str, Any] = part.data["params"]
        attributes: dict[str, str | int] = {
            ATTR_MCP_METHOD: method,
            t.ATTR_ATTEMPT: invocation.attempt,
            t.ATTR_REQUEST_ID: invocation.context.request_id,
            "server.address": self.name,
        }
        span_name = method
        if method == "tools/call":
            attributes[ATTR_TOOL] = params.get("name", "")
            attributes[t.ATTR_OPERATION] = "execute_tool"
            span_name = f"tools/call {params.get('name', '')}"
        elif method == "prompts/get":
            attributes[ATTR_PROMPT] = params.get("name", "")
        elif method == "resources/read":
            attributes[ATTR_RESOURCE] = params.get("uri", "")
        span = self.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attributes)
        headers = outbound_headers(invocation.context, trace.set_span_in_context(span, otel_context.get_current()))
        started = time.perf_counter()
        outcome = "OK"
        try:
            with trace.use_span(span, end_on_exit=False):
                answer = await self.client.request(Call(invocation, headers), method, params)
            if self.client.version:
                span.set_attribute(ATTR_MCP_VERSION, self.client.version)
            if isinstance(answer.get("error"), dict):
                outcome = "RPC_ERROR"
                span.set_attribute(ATTR_RPC_ERROR, str(answer["error"].get("code")))
                span.set_attribute(t.ATTR_ERROR_TYPE, str(answer["error"].get("code")))
                span.set_status(Status(StatusCode.ERROR, str(answer["error"].get("message", ""))))
            elif isinstance(answer.get("result"), dict) and answer["result"].get("isError") is True:
                outcome = "TOOL_ERROR"
                span.set_attribute(t.ATTR_ERROR_TYPE, "tool_error")
                span.set_status(Status(StatusCode.ERROR, "the tool reported an error"))
            return Result(invocation.agent, (Message(Role.AGENT, (DataPart(answer),)),))
        except BaseException as exc:
            outcome = exc.code.value if isinstance(exc, GatewayError) else "CANCELLED"
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute(
                t.ATTR_ERROR_TYPE, exc.code.value if isinstance(exc, GatewayError) else type(exc).__name__
            )
            raise
        finally:
            span.end()
            if method == "tools/call" and self.metrics is not None:
                tool = f"{self.name}/{params.get('name', '')}"
                self.metrics.child(self.metrics.mcp_tool_calls, tool, outcome).inc()
                self.metrics.child(self.metrics.mcp_tool_seconds, tool, outcome).observe(time.perf_counter() - started)


@dataclass
class FederatedUpstream:
    """One MCP upstream: its client and its composed chain."""

    name: str
    spec: McpUpstream
    client: McpClient
    invoke: Handler
    open_stream: StreamHandler
    retry_safe: set[str] = field(default_factory=set)

    def stream(self, method: str, params: Mapping[str, Any], context: Context) -> AsyncIterator[dict[str, Any]]:
        """Notifications as they come, the response last, through the chain's stream path
        (retries only before anything reached the caller)."""
        idempotent = method != "tools/call" or params.get("name") in self.retry_safe
        if self.spec.timeout is not None and context.deadline is None:
            context = context.with_timeout(self.spec.timeout)
        invocation = request_invocation(self.name, method, params, context, idempotent)
        return _messages(self.open_stream(invocation))

    async def respond(self, answer: Mapping[str, Any], context: Context) -> None:
        """Answer a request the upstream made during a call (on its session, beside the call's stream)."""
        invocation = request_invocation(self.name, "respond", {}, context, True)
        await self.client.respond(Call(invocation, outbound_headers(context, otel_context.get_current())), answer)

    async def request(self, method: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        idempotent = method != "tools/call" or params.get("name") in self.retry_safe
        if self.spec.timeout is not None and context.deadline is None:
            context = context.with_timeout(self.spec.timeout)
        invocation = request_invocation(self.name, method, params, context, idempotent)
        try:
            return response_of(await self.invoke(invocation))
        except GatewayError as exc:
            exc.details = {"attempts": invocation.record.attempts, **exc.details}
            raise


def _allowed(member: McpMember, item: Mapping[str, Any], name_field: str) -> bool:
    """Allow/deny patterns match a name, or a resource's URI or its name."""
    keys = {str(item[name_field]), *([str(item["name"])] if isinstance(item.get("name"), str) else [])}
    if member.allow and not any(fnmatchcase(k, p) for k in keys for p in member.allow):
        return False
    return not any(fnmatchcase(k, p) for k in keys for p in member.deny)


@dataclass(frozen=True, slots=True)
class Entry:
    """An exposed name and where it goes."""

    upstream: str
    original: str
    item: Mapping[str, Any]


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
        if "resources/templates/list" not in self.catalog:
            await self.list("resources/templates/list", context)
        return self.catalog.get("resources/templates/list", {}).get(exposed)

    def exposed_uri(self, upstream: str, original: str) -> str | None:
        """The URI under which this server exposes ``upstream``'s resource ``original`` (None: not a member)."""
        for member in self.spec.upstreams:
            if member.upstream == upstream:
                return self._expose(member, original, "uri")
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
                if not _allowed(member, item, name_field):
                    continue
                exposed = self._expose(member, original, name_field)
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

    def _expose(self, member: McpMember, original: str, name_field: str) -> str:
        if name_field == "name":
            return member.name_prefix + original
        # URIs keep their shape: the prefix goes in front as a scheme-like tag only when set.
        return f"{member.name_prefix.rstrip('_')}+{original}" if member.name_prefix else original

    async def resolve(self, call_method: str, exposed: str, context: Context) -> Entry:
        list_method = CALLS[call_method]
        entry = self.catalog.get(list_method, {}).get(exposed)
        if entry is None:
            await self.list(list_method, context)
            entry = self.catalog.get(list_method, {}).get(exposed)
        if entry is None and call_method == "resources/read":
            entry = await self._template_for(exposed, context)
        if entry is None:
            raise mcp.McpError(mcp.INVALID_PARAMS, f"unknown {list_method.split('/')[0][:-1]}: {exposed!r}")
        return entry

    async def _template_for(self, exposed: str, context: Context) -> Entry | None:
        """A resource URI matched by a (level 1, RFC 6570) resource template of a member."""
        templates = self.catalog.get("resources/templates/list")
        if templates is None:
            await self.list("resources/templates/list", context)
            templates = self.catalog.get("resources/templates/list", {})
        for exposed_template, entry in templates.items():
            pattern = "".join(
                "[^/]+" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]*\})", exposed_template)
            )
            if re.fullmatch(pattern, exposed):
                prefix = exposed_template[: len(exposed_template) - len(entry.original)]
                return Entry(entry.upstream, exposed[len(prefix) :], entry.item)
        return None

    async def input_schema(self, exposed: str, context: Context) -> Any:
        """The input schema of tool ``exposed`` as listed (None for agents and unknown tools)."""
        if exposed.startswith(AGENT_TOOL_PREFIX) and exposed[len(AGENT_TOOL_PREFIX) :] in self.spec.agents:
            return None
        try:
            entry = await self.resolve("tools/call", exposed, context)
        except mcp.McpError:
            return None  # the call itself reports the unknown tool
        return entry.item.get("inputSchema")

    async def call(self, method: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        """Route a named request (tools/call, prompts/get, resources/read) to its upstream."""
        key = mcp.NAMED_METHODS[method]
        exposed = params.get(key)
        if not isinstance(exposed, str):
            raise mcp.McpError(mcp.INVALID_PARAMS, f"params.{key} must be a string")
        if (
            method == "tools/call"
            and exposed.startswith(AGENT_TOOL_PREFIX)
            and exposed[len(AGENT_TOOL_PREFIX) :] in self.spec.agents
        ):
            return await self._call_agent(exposed[len(AGENT_TOOL_PREFIX) :], params, context)
        entry = await self.resolve(method, exposed, context)
        forwarded = {**params, key: entry.original}
        return await self.upstreams[entry.upstream].request(method, forwarded, context)

    async def call_stream(
        self, method: str, params: Mapping[str, Any], context: Context
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Like :meth:`call`, with the upstream's notifications (progress) first."""
        key = mcp.NAMED_METHODS[method]
        exposed = params.get(key)
        if not isinstance(exposed, str):
            raise mcp.McpError(mcp.INVALID_PARAMS, f"params.{key} must be a string")
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

    async def _call_agent(self, agent: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        arguments = params.get("arguments") or {}
        text = arguments.get("message") if isinstance(arguments, Mapping) else None
        if not isinstance(text, str):
            raise mcp.McpError(mcp.INVALID_PARAMS, "arguments.message must be a string")
        invocation = Invocation(agent, (Message(Role.USER, (TextPart(text),)),), context)
        try:
            result = await self.gateway.invoke(invocation)
        except GatewayError as exc:
            return {"result": {"content": [{"type": "text", "text": exc.message}], "isError": True}}
        return {"result": {"content": [{"type": "text", "text": result.text}], "isError": False}}


def agent_tool(agent: str, exposed: str) -> dict[str, Any]:
    return {
        "name": exposed,
        "description": f"Ask the agent {agent!r} (routed through the gateway); returns its answer.",
        "inputSchema": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "what to ask the agent"}},
            "required": ["message"],
        },
    }


ChangeListener = Callable[[str, str], None]


@dataclass
class ResourceWatch:
    """How many clients follow one upstream resource, and the listen stream following it (2026-07-28 upstreams)."""

    count: int = 1
    task: asyncio.Task[None] | None = None


# notification method -> the list it invalidates
LIST_CHANGED = {
    "notifications/tools/list_changed": "tools/list",
    "notifications/prompts/list_changed": "prompts/list",
    "notifications/resources/list_changed": "resources/list",
}


class Federation:
    """Every MCP upstream and virtual server of a config (the `mcp:` section), rebuilt on a reload."""

    def __init__(self, config: McpConfig, gateway: Gateway, session: aiohttp.ClientSession, tracer: Tracer) -> None:
        self.config = config
        self.gateway = gateway
        self.session = session
        self.tracer = tracer
        self.upstreams = {
            name: self._federated(name, spec, self._client(name, spec)) for name, spec in config.upstreams.items()
        }
        self.servers = self._servers(config)

        self.listeners: list[ChangeListener] = []
        # Called with (server, exposed URI) for each update of a subscribed resource.
        self.resource_listeners: list[ChangeListener] = []
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._watched: set[str] = set()
        self._resources: dict[tuple[str, str], ResourceWatch] = {}

    def _client(self, name: str, spec: McpUpstream) -> McpClient:
        if spec.url is not None:
            return McpHttpUpstream(name, self.session, spec.url, spec.headers, protocol_version=spec.protocol_version)
        assert spec.command is not None
        client = McpStdioUpstream(name, spec.command, spec.args, spec.env, spec.max_restarts, spec.restart_backoff)
        client.on_notification = functools.partial(self._notified, name)
        return client

    def _federated(self, name: str, spec: McpUpstream, client: McpClient) -> FederatedUpstream:
        """The upstream's chain on the gateway's current policies, ending in ``client``."""
        attempt = McpAttempt(name, client, self.tracer, self.gateway.metrics)
        chain = self.gateway.policy_chain(spec.policies, f"mcp/{name}")
        invoke, stream = compose(chain, attempt.invoke, attempt.stream)
        return FederatedUpstream(name, spec, client, invoke, stream, set(spec.idempotent_tools))

    def _servers(self, config: McpConfig) -> dict[str, VirtualServer]:
        return {
            name: VirtualServer(name, spec, self.upstreams, self.gateway)
            for name, spec in config.virtual_servers.items()
        }

    def reload(self, config: McpConfig) -> Callable[[], Awaitable[None]]:
        """Apply a new `mcp:` section; calls already running finish on what they hold. An upstream whose
        settings did not change keeps its client (its session, its stdio process); the others get a new
        one, and every chain is rebuilt on the current policies. The virtual servers are rebuilt (their
        merged lists fetched again), and each whose members changed tells its listeners that its lists
        did. Returns the closer of the replaced clients, to await once their calls had time to finish."""
        old_upstreams, old_servers = self.upstreams, self.servers
        upstreams: dict[str, FederatedUpstream] = {}
        for name, spec in config.upstreams.items():
            previous = old_upstreams.get(name)
            client = previous.client if previous is not None and previous.spec == spec else self._client(name, spec)
            upstreams[name] = self._federated(name, spec, client)
        replaced = [
            u for name, u in old_upstreams.items() if name not in upstreams or upstreams[name].client is not u.client
        ]
        gone = {u.name for u in replaced}
        self.config, self.upstreams = config, upstreams
        self.servers = self._servers(config)
        # What followed a replaced client stops; watched servers are followed again on the new ones.
        for name in gone:
            task = self._watchers.pop(name, None)
            if task is not None:
                task.cancel()
        for key in [k for k in self._resources if k[0] in gone]:
            task = self._resources.pop(key).task
            if task is not None:
                task.cancel()
        self._watched &= set(self.servers)
        for watched in self._watched:
            self.watch(watched)
        for name, server in self.servers.items():
            before = old_servers.get(name)
            members = {m.upstream for m in server.spec.upstreams}
            if before is None or before.spec != server.spec or members & gone:
                for method in LIST_CHANGED:
                    for listener in self.listeners:
                        listener(name, method)

        async def close() -> None:
            await asyncio.gather(*(u.client.aclose() for u in replaced), return_exceptions=True)

        return close

    def watch(self, server: str) -> None:
        """Follow the list changes of ``server``'s HTTP upstreams (from now on, until the gateway stops):
        each invalidates the merged lists and is passed on to the listeners as (server, notification method)."""
        self._watched.add(server)
        for member in self.servers[server].spec.upstreams:
            self._watch_upstream(member.upstream)

    def _watch_upstream(self, name: str) -> None:
        upstream = self.upstreams[name]
        if name not in self._watchers and isinstance(upstream.client, McpHttpUpstream):
            self._watchers[name] = asyncio.create_task(self._follow(upstream.client), name=f"agw-mcp-watch-{name}")

    async def subscribe(self, server: str, uri: str, context: Context) -> None:
        """Follow the resource exposed as ``uri`` by ``server``: its updates reach the resource listeners.
        Counted per upstream resource, so an upstream hears of it once however many clients follow it:
        a 2026-07-28 upstream through a ``subscriptions/listen`` naming it, a 2025-11-25 one by
        ``resources/subscribe`` on the gateway's session (its updates come on that session's GET stream)."""
        entry = await self.servers[server].resolve("resources/read", uri, context)
        key = (entry.upstream, entry.original)
        watch = self._resources.get(key)
        if watch is not None:
            watch.count += 1
            return
        upstream = self.upstreams[entry.upstream]
        watch = self._resources[key] = ResourceWatch()
        if isinstance(upstream.client, McpHttpUpstream) and upstream.client.version == mcp.MODERN:
            watch.task = asyncio.create_task(
                self._follow_resource(upstream.client, entry.original), name=f"agw-mcp-resource-{entry.upstream}"
            )
            return
        try:
            answer = await upstream.request("resources/subscribe", {"uri": entry.original}, context)
        except BaseException:
            self._resources.pop(key, None)
            raise
        if isinstance(answer.get("error"), dict):
            self._resources.pop(key, None)
            error = answer["error"]
            raise mcp.McpError(int(error.get("code", mcp.INTERNAL_ERROR)), str(error.get("message")), error.get("data"))
        self._watch_upstream(entry.upstream)

    async def unsubscribe(self, server: str, uri: str, context: Context) -> None:
        """Stop following ``uri`` for one client; the upstream is told when its last follower goes."""
        entry = await self.servers[server].resolve("resources/read", uri, context)
        key = (entry.upstream, entry.original)
        watch = self._resources.get(key)
        if watch is None:
            return
        watch.count -= 1
        if watch.count > 0:
            return
        del self._resources[key]
        if watch.task is not None:
            watch.task.cancel()
            return
        await self.upstreams[entry.upstream].request("resources/unsubscribe", {"uri": entry.original}, context)

    async def _follow_resource(self, client: McpHttpUpstream, uri: str) -> None:
        backoff = 1.0
        while True:
            try:
                async for item in client.listen(Call(Invocation(f"mcp/{client.name}", ()), {}), resources=[uri]):
                    backoff = 1.0
                    self._notified(client.name, item)
            except GatewayError as exc:
                log.info(
                    "MCP upstream %s: resource stream for %s ended (%s); again in %.0fs", client.name, uri, exc, backoff
                )
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    def _notified(self, upstream: str, item: Mapping[str, Any]) -> None:
        method = str(item.get("method"))
        if method != mcp.RESOURCE_UPDATED:
            self._changed(upstream, method)
            return
        params = item.get("params")
        uri = params.get("uri") if isinstance(params, Mapping) else None
        if not isinstance(uri, str) or not any(key[0] == upstream for key in self._resources):
            return
        for server in self.servers.values():
            exposed = server.exposed_uri(upstream, uri)
            if exposed is not None:
                for listener in self.resource_listeners:
                    listener(server.name, exposed)

    async def _follow(self, client: McpHttpUpstream) -> None:
        backoff = 1.0
        while True:
            try:
                async for item in client.listen(Call(Invocation(f"mcp/{client.name}", ()), {})):
                    backoff = 1.0
                    self._notified(client.name, item)
            except GatewayError as exc:
                log.info("MCP upstream %s: list-change stream ended (%s); again in %.0fs", client.name, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    def _changed(self, upstream: str, method: str) -> None:
        list_method = LIST_CHANGED.get(method)
        if list_method is None:
            return
        for server in self.servers.values():
            if any(m.upstream == upstream for m in server.spec.upstreams):
                server.catalog.pop(list_method, None)
                if list_method == "resources/list":
                    server.catalog.pop("resources/templates/list", None)
                for listener in self.listeners:
                    listener(server.name, method)

    async def aclose(self) -> None:
        tasks = [*self._watchers.values(), *(w.task for w in self._resources.values() if w.task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(u.client.aclose() for u in self.upstreams.values()), return_exceptions=True)


async def _messages(events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        if isinstance(event.data, dict):
            yield event.data


def names(items: Sequence[Mapping[str, Any]], key: str = "name") -> list[str]:
    return [str(i.get(key)) for i in items]
