"""What the federation follows upstream outside any request: list changes (each invalidates the merged
lists of the virtual servers it reaches) and the updates of subscribed resources, passed on to listeners."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.adapters.mcp_client import McpHttpUpstream
from gateway.federation.upstream import FederatedUpstream
from gateway.federation.virtual_server import VirtualServer
from gateway.model import Attempt, Context, GatewayError, Invocation
from gateway.protocols import mcp

log = logging.getLogger("agent_gateway.mcp")

# Called with (server, notification method) for a list change, or (server, exposed URI) for a resource update.
ChangeListener = Callable[[str, str], None]

# notification method -> the list it invalidates
LIST_CHANGED = {
    "notifications/tools/list_changed": "tools/list",
    "notifications/prompts/list_changed": "prompts/list",
    "notifications/resources/list_changed": "resources/list",
}


class Members(Protocol):
    """The federation's current upstreams and virtual servers (replaced on a reload)."""

    @property
    def upstreams(self) -> Mapping[str, FederatedUpstream]: ...

    @property
    def servers(self) -> Mapping[str, VirtualServer]: ...


@dataclass
class ResourceWatch:
    """How many clients follow one upstream resource, and the listen stream following it (2026-07-28 upstreams)."""

    count: int = 1
    task: asyncio.Task[None] | None = None


class UpstreamNotifications:
    """The upstreams' list changes and resource updates, followed for the virtual servers' clients."""

    def __init__(self, members: Members) -> None:
        self.members = members
        self.listeners: list[ChangeListener] = []
        # Called with (server, exposed URI) for each update of a subscribed resource.
        self.resource_listeners: list[ChangeListener] = []
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._watched: set[str] = set()
        self._resources: dict[tuple[str, str], ResourceWatch] = {}

    def watch(self, server: str) -> None:
        """Follow the list changes of ``server``'s HTTP upstreams (from now on, until the gateway stops):
        each invalidates the merged lists and is passed on to the listeners as (server, notification method)."""
        self._watched.add(server)
        for member in self.members.servers[server].spec.upstreams:
            self._watch_upstream(member.upstream)

    def _watch_upstream(self, name: str) -> None:
        upstream = self.members.upstreams[name]
        if name not in self._watchers and isinstance(upstream.client, McpHttpUpstream):
            self._watchers[name] = asyncio.create_task(self._follow(upstream.client), name=f"agw-mcp-watch-{name}")

    def replaced(self, gone: set[str]) -> None:
        """After a reload: what followed a replaced client stops; watched servers are followed again on the new ones."""
        for name in gone:
            task = self._watchers.pop(name, None)
            if task is not None:
                task.cancel()
        for key in [k for k in self._resources if k[0] in gone]:
            task = self._resources.pop(key).task
            if task is not None:
                task.cancel()
        self._watched &= set(self.members.servers)
        for watched in self._watched:
            self.watch(watched)

    def lists_changed(self, server: str) -> None:
        """Tell the listeners that every list of ``server`` changed."""
        for method in LIST_CHANGED:
            for listener in self.listeners:
                listener(server, method)

    async def subscribe(self, server: str, uri: str, context: Context) -> None:
        """Follow the resource exposed as ``uri`` by ``server``: its updates reach the resource listeners.
        Counted per upstream resource, so an upstream hears of it once however many clients follow it:
        a 2026-07-28 upstream through a ``subscriptions/listen`` naming it, a 2025-11-25 one by
        ``resources/subscribe`` on the gateway's session (its updates come on that session's GET stream)."""
        entry = await self.members.servers[server].resolve("resources/read", uri, context)
        key = (entry.upstream, entry.original)
        watch = self._resources.get(key)
        if watch is not None:
            watch.count += 1
            return
        upstream = self.members.upstreams[entry.upstream]
        watch = self._resources[key] = ResourceWatch()
        if isinstance(upstream.client, McpHttpUpstream) and upstream.client.version == mcp.MODERN:
            watch.task = asyncio.create_task(
                self._follow(upstream.client, [entry.original]), name=f"agw-mcp-resource-{entry.upstream}"
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
        entry = await self.members.servers[server].resolve("resources/read", uri, context)
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
        await self.members.upstreams[entry.upstream].request("resources/unsubscribe", {"uri": entry.original}, context)

    async def _follow(self, client: McpHttpUpstream, resources: Sequence[str] = ()) -> None:
        """Follow an HTTP upstream's notifications (its list changes, or the updates of ``resources``) until
        cancelled, reconnecting with a backoff when its stream ends."""
        what = f"resource stream for {resources[0]}" if resources else "list-change stream"
        backoff = 1.0
        while True:
            try:
                async for item in client.listen(Attempt(Invocation(f"mcp/{client.name}", ()), {}), resources=resources):
                    backoff = 1.0
                    self.notified(client.name, item)
            except GatewayError as exc:
                log.info("MCP upstream %s: %s ended (%s); again in %.0fs", client.name, what, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    def notified(self, upstream: str, item: Mapping[str, Any]) -> None:
        """A notification ``upstream`` sent outside any request (a list change or a resource update)."""
        method = str(item.get("method"))
        if method != mcp.RESOURCE_UPDATED:
            self._changed(upstream, method)
            return
        params = item.get("params")
        uri = params.get("uri") if isinstance(params, Mapping) else None
        if not isinstance(uri, str) or not any(key[0] == upstream for key in self._resources):
            return
        for server in self.members.servers.values():
            exposed = server.exposed_uri(upstream, uri)
            if exposed is not None:
                for listener in self.resource_listeners:
                    listener(server.name, exposed)

    def _changed(self, upstream: str, method: str) -> None:
        list_method = LIST_CHANGED.get(method)
        if list_method is None:
            return
        for server in self.members.servers.values():
            if any(m.upstream == upstream for m in server.spec.upstreams):
                server.catalog.pop(list_method, None)
                if list_method == "resources/list":
                    server.catalog.pop("resources/templates/list", None)
                for listener in self.listeners:
                    listener(server.name, method)

    async def aclose(self) -> None:
        """Stop following (the listen streams end)."""
        tasks = [*self._watchers.values(), *(w.task for w in self._resources.values() if w.task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
