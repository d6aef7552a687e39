"""2025-11-25 sessions (``Mcp-Session-Id``): each one's state, the table of them (least recently used
first, idle and excess ones dropped), and the requests in progress a ``notifications/cancelled`` stops."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web

from gateway.config.schema import McpStreams
from gateway.federation import VirtualServer
from gateway.federation.notifications import UpstreamNotifications
from gateway.model import Context, GatewayError
from gateway.protocols import mcp
from gateway.server.mcp.event_streams import SessionStreams
from gateway.server.mcp.subscriptions import Subscriber
from gateway.server.request_keys import IDENTITY_KEY

_MAX_SESSIONS = 10_000
_SESSION_IDLE = 3600.0


class McpSession:
    """A 2025-11-25 session: its negotiated version and its GET streams."""

    def __init__(self, server: str, version: str, identity: str, settings: McpStreams) -> None:
        self.server = server
        self.version = version
        self.identity = identity
        self.used = time.monotonic()
        # Its GET streams' subscriptions, and all its SSE streams (for Last-Event-ID).
        self.streams: set[Subscriber] = set()
        self.events = SessionStreams(settings.replay_events, settings.replay_bytes, settings.resume_window)
        # Requests in progress, by JSON-RPC id, for notifications/cancelled.
        self.inflight: dict[mcp.RequestId, asyncio.Future[Any]] = {}
        # logging/setLevel: the least severe log notification this client gets (None: none at all).
        self.log_level: str | None = None
        # resources/subscribe: the exposed URIs whose updates go to this session's GET streams.
        self.resources: set[str] = set()
        # The client's capabilities (initialize): what a tool may ask of it (sampling, elicitation, roots).
        self.capabilities: dict[str, Any] = {}
        # Requests the gateway sent this client on a tool call's stream, by id, awaiting its POSTed answer.
        self.awaiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def primes(self) -> bool:
        """Its streams open with a priming event and may be closed early for polling: 2025-11-25 (older
        clients cannot parse an event with empty data)."""
        return self.version == mcp.LEGACY

    async def tracked(self, work: Awaitable[dict[str, Any]], request_id: Any) -> dict[str, Any]:
        """Run one of its requests so its ``notifications/cancelled`` can stop it (and its upstream call)."""
        task = asyncio.ensure_future(work)
        self.inflight[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or current is None or current.cancelling():
                raise
            # Cancelled by the client: it ignores any answer now; this one only closes the POST.
            raise mcp.McpError(mcp.INTERNAL_ERROR, "the client cancelled the request") from None
        finally:
            self.inflight.pop(request_id, None)

    def cancel(self, request_id: Any) -> None:
        """``notifications/cancelled``: stop the request in progress with that id."""
        task = self.inflight.get(request_id)
        if task is not None:
            task.cancel()

    def answered(self, message: mcp.JsonRpcMessage) -> None:
        """The client's answer to a request relayed on a tool call's stream."""
        waiter = self.awaiting.pop(str(message.id), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(dict(message.raw))


class Sessions:
    """The front's 2025-11-25 sessions, least recently used first."""

    def __init__(self, notifications: UpstreamNotifications) -> None:
        self.notifications = notifications
        self._sessions: OrderedDict[str, McpSession] = OrderedDict()
        self._releasing: set[asyncio.Task[None]] = set()
        notifications.resource_listeners.append(self._on_resource_updated)

    def find(self, request: web.Request, headers: Mapping[str, str], server: VirtualServer) -> McpSession:
        """The session a 2025-11-25 request names, for its identity on its server (an McpError otherwise)."""
        version = headers.get(mcp.HEADER_VERSION)
        if version is not None and version not in mcp.HANDSHAKE_VERSIONS:
            raise mcp.unsupported_version(version, server.versions)
        session_id = headers.get(mcp.HEADER_SESSION)
        if session_id is None:
            raise mcp.McpError(
                mcp.INVALID_REQUEST,
                "Bad Request: no Mcp-Session-Id; send initialize first, or use 2026-07-28 with "
                f"params._meta[{mcp.META_VERSION!r}]",
                status=400,
            )
        session = self._sessions.get(session_id)
        if session is None or session.server != server.name or session.identity != request[IDENTITY_KEY].name:
            raise mcp.McpError(mcp.INVALID_REQUEST, "Session not found: initialize again", status=404)
        session.used = time.monotonic()
        self._sessions.move_to_end(session_id)
        return session

    def start(self, session: McpSession, context: Context) -> str:
        """Add a new session; return its id. Idle sessions (their clients initialize again on a 404) and
        the excess are dropped, least recently used first."""
        session_id = secrets.token_urlsafe(24)
        self._sessions[session_id] = session
        idle_since = time.monotonic() - _SESSION_IDLE
        while self._sessions and (
            len(self._sessions) > _MAX_SESSIONS or next(iter(self._sessions.values())).used < idle_since
        ):
            oldest = next(iter(self._sessions.values()))
            if oldest.streams and len(self._sessions) <= _MAX_SESSIONS:
                break  # a session with an open GET stream is in use
            _, dropped = self._sessions.popitem(last=False)
            dropped.events.close()
            if dropped.resources:
                # Its subscriptions go with it (the upstream is told when no one follows a resource any more).
                release = asyncio.create_task(self.release(dropped, context))
                self._releasing.add(release)
                release.add_done_callback(self._releasing.discard)
        return session_id

    async def end(self, session_id: str, context: Context) -> None:
        """DELETE: the session ends, its streams and the calls still running for them, and its subscriptions."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.events.close()
            await self.release(session, context)

    async def release(self, session: McpSession, context: Context) -> None:
        """Drop an ended session's resource subscriptions."""
        for uri in sorted(session.resources):
            with contextlib.suppress(mcp.McpError, GatewayError):
                await self.notifications.unsubscribe(session.server, uri, context)
        session.resources.clear()

    def _on_resource_updated(self, server: str, uri: str) -> None:
        """An upstream resource changed: tell the sessions that subscribed to it, on their GET streams."""
        update = mcp.notification(mcp.RESOURCE_UPDATED, {"uri": uri})
        for session in self._sessions.values():
            if session.server == server and uri in session.resources:
                for stream in session.streams:
                    stream.push(update)
