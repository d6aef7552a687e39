"""One MCP upstream: its client (HTTP or stdio) and the policy chain its requests pass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer

from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.adapters.mcp_stdio import McpStdioUpstream
from gateway.config.schema import McpUpstream
from gateway.federation.attempt import McpAttempt, McpClient, request_invocation, response_of
from gateway.model import Attempt, Context, Event, GatewayError, Invocation
from gateway.pipeline import Gateway
from gateway.policies.base import Handler, StreamHandler, compose
from gateway.propagation import outbound_headers


@dataclass
class FederatedUpstream:
    """One MCP upstream: its client and its composed chain."""

    name: str
    spec: McpUpstream
    client: McpClient
    invoke: Handler
    open_stream: StreamHandler
    retry_safe: set[str] = field(default_factory=set)

    def _invocation(self, method: str, params: Mapping[str, Any], context: Context) -> Invocation:
        """The request as the chain's invocation: idempotent unless it calls a tool not known to be retry-safe,
        under the upstream's timeout when the caller set no deadline."""
        idempotent = method != "tools/call" or params.get("name") in self.retry_safe
        if self.spec.timeout is not None and context.deadline is None:
            context = context.with_timeout(self.spec.timeout)
        return request_invocation(self.name, method, params, context, idempotent)

    def stream(self, method: str, params: Mapping[str, Any], context: Context) -> AsyncIterator[dict[str, Any]]:
        """Notifications as they come, the response last, through the chain's stream path
        (retries only before anything reached the caller)."""
        return _messages(self.open_stream(self._invocation(method, params, context)))

    async def respond(self, answer: Mapping[str, Any], context: Context) -> None:
        """Answer a request the upstream made during a call (on its session, beside the call's stream)."""
        invocation = request_invocation(self.name, "respond", {}, context, True)
        await self.client.respond(Attempt(invocation, outbound_headers(context, otel_context.get_current())), answer)

    async def request(self, method: str, params: Mapping[str, Any], context: Context) -> dict[str, Any]:
        invocation = self._invocation(method, params, context)
        try:
            return response_of(await self.invoke(invocation))
        except GatewayError as exc:
            exc.details = {"attempts": invocation.record.attempts, **exc.details}
            raise


Notified = Callable[[Mapping[str, Any]], None]


def upstream_client(name: str, spec: McpUpstream, session: aiohttp.ClientSession, notified: Notified) -> McpClient:
    """A new client for ``spec``: over HTTP on the gateway's session, or a stdio process (whose
    list-changed and resource-updated notifications go to ``notified``)."""
    if spec.url is not None:
        return McpHttpUpstream(name, session, spec.url, spec.headers, protocol_version=spec.protocol_version)
    assert spec.command is not None
    client = McpStdioUpstream(name, spec.command, spec.args, spec.env, spec.max_restarts, spec.restart_backoff)
    client.on_notification = notified
    return client


def federated(name: str, spec: McpUpstream, client: McpClient, gateway: Gateway, tracer: Tracer) -> FederatedUpstream:
    """The upstream's chain on the gateway's current policies, ending in ``client``."""
    attempt = McpAttempt(name, client, tracer, gateway.metrics)
    chain = gateway.policy_chain(spec.policies, f"mcp/{name}")
    invoke, stream = compose(chain, attempt.invoke, attempt.stream)
    return FederatedUpstream(name, spec, client, invoke, stream, set(spec.idempotent_tools))


async def _messages(events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        if isinstance(event.data, dict):
            yield event.data
