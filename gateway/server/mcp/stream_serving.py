"""A 2025-11-25 session's resumable streams over SSE: its GET stream opened (or any of its streams
resumed after a ``Last-Event-ID``), and one connection following a stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from aiohttp import web

from gateway.config.schema import McpStreams
from gateway.federation import VirtualServer
from gateway.model import Cancelled
from gateway.protocols.sse import format_sse
from gateway.server.disconnect import caller_gone, unless_caller_leaves
from gateway.server.mcp.event_streams import EventStream
from gateway.server.mcp.sessions import McpSession
from gateway.server.mcp.subscriptions import StreamSubscriber, Subscribers
from gateway.server.sse_writer import SSE_HEADERS, SseWriter


def get_stream(
    server: VirtualServer, session: McpSession, headers: Mapping[str, str], subscribers: Subscribers
) -> tuple[EventStream, int]:
    """What a GET follows, and after which event: the stream its ``Last-Event-ID`` names (a POST's answer
    or a GET stream), or a new GET stream."""
    last_event_id = headers.get("last-event-id")
    found = session.events.find(last_event_id) if last_event_id else None
    if found is not None:
        return found
    # No cursor, or one naming no stream of this session (another session's, or one given up): the spec
    # lets a server ignore it, and never replay another stream's messages. A new GET stream.
    stream = session.events.open()
    if session.primes:
        stream.append("")
    subscriber = StreamSubscriber(stream)
    session.streams.add(subscriber)
    subscribers.follow(server.name, subscriber)

    def unsubscribe() -> None:
        session.streams.discard(subscriber)
        subscribers.leave(server.name, subscriber)

    stream.on_abandoned = unsubscribe
    return stream, -1


async def serve_stream(
    request: web.Request,
    session: McpSession,
    stream: EventStream,
    after: int,
    settings: McpStreams,
    keepalive: float | None,
) -> web.StreamResponse:
    """One connection following a session's stream from the event after number ``after``: until
    the stream ends, the client leaves, a newer connection takes it over, or (``streams.hold``)
    the gateway closes the connection, not the stream, so the client polls with Last-Event-ID."""
    hold = settings.hold if session.primes else None
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        async with SseWriter(response, keepalive) as writer:
            # The client leaving (a closed connection, seen even while the stream is quiet) ends the
            # connection, not the stream: it waits for a reconnect for the resume window.
            with contextlib.suppress(Cancelled):
                await unless_caller_leaves(
                    lambda: caller_gone(request), _pump(writer, stream, after, hold, settings.retry)
                )
        await response.write_eof()
    except ConnectionError:
        pass
    finally:
        session.events.watch(stream)
    return response


async def _pump(writer: SseWriter, stream: EventStream, after: int, hold: float | None, retry: float) -> None:
    retry_field = f"retry: {round(retry * 1000)}\n"
    try:
        async with asyncio.timeout(hold), contextlib.aclosing(stream.follow(after)) as events:
            async for event_id, data in events:
                if data:
                    await writer.send(format_sse(data, "message", event_id))
                else:  # the priming event: a cursor before any message, and the reconnect delay
                    await writer.send(f"id: {event_id}\n{retry_field}data: \n\n".encode())
    except TimeoutError:
        await writer.send(f"{retry_field}\n".encode())  # closing the connection, not the stream: poll again
