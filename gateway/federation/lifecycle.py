"""The federation of a config's ``mcp:`` section: its upstreams and virtual servers, built, reloaded and closed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import aiohttp
from opentelemetry.trace import Tracer

from gateway.config.schema import McpConfig, McpUpstream
from gateway.federation.attempt import McpClient
from gateway.federation.notifications import UpstreamNotifications
from gateway.federation.upstream import FederatedUpstream, federated, upstream_client
from gateway.federation.virtual_server import VirtualServer
from gateway.pipeline import Gateway


class Federation:
    """Every MCP upstream and virtual server of a config (the `mcp:` section), rebuilt on a reload."""

    def __init__(self, config: McpConfig, gateway: Gateway, session: aiohttp.ClientSession, tracer: Tracer) -> None:
        self.config = config
        self.gateway = gateway
        self.session = session
        self.tracer = tracer
        self.notifications = UpstreamNotifications(self)
        self.upstreams = {
            name: self._federated(name, spec, self._client(name, spec)) for name, spec in config.upstreams.items()
        }
        self.servers = self._servers(config)

    def _client(self, name: str, spec: McpUpstream) -> McpClient:
        return upstream_client(name, spec, self.session, functools.partial(self.notifications.notified, name))

    def _federated(self, name: str, spec: McpUpstream, client: McpClient) -> FederatedUpstream:
        return federated(name, spec, client, self.gateway, self.tracer)

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
        self.notifications.replaced(gone)
        for name, server in self.servers.items():
            before = old_servers.get(name)
            members = {m.upstream for m in server.spec.upstreams}
            if before is None or before.spec != server.spec or members & gone:
                self.notifications.lists_changed(name)

        async def close() -> None:
            await asyncio.gather(*(u.client.aclose() for u in replaced), return_exceptions=True)

        return close

    async def aclose(self) -> None:
        await self.notifications.aclose()
        await asyncio.gather(*(u.client.aclose() for u in self.upstreams.values()), return_exceptions=True)
