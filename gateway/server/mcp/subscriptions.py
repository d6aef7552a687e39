"""Clients following a virtual server's list changes: a 2026-07-28 ``subscriptions/listen`` stream, or a
2025-11-25 session's GET stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.federation import VirtualServer
from gateway.federation.notifications import UpstreamNotifications
from gateway.protocols import mcp
from gateway.protocols.sse import format_sse
from gateway.server.mcp.event_streams import EventStream
from gateway.server.sse_writer import SseWriter

# subscriptions/listen's filter keys and the notification each asks for.
_FILTER_KEYS = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}


class Subscriber:
    """A client stream waiting for list changes: a 2026-07-28 listen (its filter and id) or a 2025-11-25 GET stream."""

    def __init__(self, methods: frozenset[str] | None, subscription_id: mcp.RequestId | None = None) -> None:
        self.methods = methods
        self.subscription_id = subscription_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)

    def offer(self, method: str) -> None:
        if self.methods is not None and method not in self.methods:
            return  # never a notification type the client did not ask for
        params: dict[str, Any] = {}
        if self.subscription_id is not None:
            params["_meta"] = {mcp.META_SUBSCRIPTION: self.subscription_id}
        self.push(mcp.notification(method, params or None))

    def push(self, message: dict[str, Any]) -> None:
        if not self.queue.full():  # a client too slow to read loses hints, not the gateway's memory
            self.queue.put_nowait(message)


class StreamSubscriber(Subscriber):
    """A 2025-11-25 GET stream: what it is sent is numbered and kept for a ``Last-Event-ID`` replay
    (the oldest dropped past the stream's limits), followed by a connection or not."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(None)
        self.stream = stream

    def push(self, message: dict[str, Any]) -> None:
        if not self.stream.closed:
            self.stream.append(json.dumps(message))


class Subscribers:
    """Every client stream following list changes, by virtual server."""

    def __init__(self, notifications: UpstreamNotifications) -> None:
        self.notifications = notifications
        self._by_server: dict[str, set[Subscriber]] = {}
        notifications.listeners.append(self._on_change)

    def follow(self, server: str, subscriber: Subscriber) -> None:
        """``subscriber`` gets ``server``'s list changes from now on (its upstreams followed for them)."""
        self._by_server.setdefault(server, set()).add(subscriber)
        self.notifications.watch(server)

    def leave(self, server: str, subscriber: Subscriber) -> None:
        self._by_server.get(server, set()).discard(subscriber)

    def _on_change(self, server: str, method: str) -> None:
        for subscriber in self._by_server.get(server, ()):
            subscriber.offer(method)


async def listen(
    request: web.Request,
    server: VirtualServer,
    message: mcp.JsonRpcMessage,
    subscribers: Subscribers,
    keepalive: float | None,
) -> web.StreamResponse:
    """2026-07-28 ``subscriptions/listen``: acknowledge the filter, then pass on the list changes it
    asked for (from every upstream of the server) until the client closes the stream."""
    wanted = message.params.get("notifications")
    wanted = wanted if isinstance(wanted, Mapping) else {}
    honoured = {k: v for k, v in wanted.items() if k in _FILTER_KEYS and v is True}
    assert message.id is not None
    subscriber = Subscriber(frozenset(_FILTER_KEYS[k] for k in honoured), message.id)
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no"}
    )
    await response.prepare(request)
    ack = mcp.notification(
        "notifications/subscriptions/acknowledged",
        {"_meta": {mcp.META_SUBSCRIPTION: message.id}, "notifications": honoured},
    )
    subscribers.follow(server.name, subscriber)
    try:
        async with SseWriter(response, keepalive) as writer:
            await writer.send(format_sse(json.dumps(ack), "message"))
            # Until the client closes the stream (a write or keep-alive fails) or the gateway stops.
            while (item := await subscriber.queue.get()) is not None:
                await writer.send(format_sse(json.dumps(item), "message"))
    finally:
        subscribers.leave(server.name, subscriber)
    return response
