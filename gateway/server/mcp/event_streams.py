"""Resumable SSE streams of 2025-11-25 MCP sessions (Streamable HTTP, "Resumability and Redelivery").

Every event of a session's streams (a POST's answer, the GET stream) has an id
``<stream>-<n>``: unique within the session and naming its stream (a random key),
so a GET with ``Last-Event-ID`` resumes that stream and no other, and an id from
another session names nothing here. A stream opens with a priming event (an id,
empty data, a ``retry``), so a client holds a cursor before the first message.

A stream outlives its connections: what it produces while no client follows is
kept (the last ``keep_events`` events, at most ``keep_bytes`` of them; the newest
always) and replayed after the cursor a client reconnects with. One connection
follows a stream at a time; a newer one takes over. A stream nobody follows for
the resume window is given up (its ``on_abandoned`` runs: a call is cancelled).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable

# The streams one session keeps (finished ones dropped first, then the oldest).
MAX_STREAMS = 32


class EventStream:
    """One SSE stream: its numbered events, the last ones kept, and at most one connection following it."""

    def __init__(self, key: str, keep_events: int, keep_bytes: int) -> None:
        self.key = key
        self.keep_events = keep_events
        self.keep_bytes = keep_bytes
        self._events: deque[tuple[int, str]] = deque()
        self._bytes = 0
        self._next = 0
        self.closed = False  # no more events: the answer went out, or the call or session ended
        self.reader: object | None = None  # the connection following it (a token; a newer one takes over)
        self.left = time.monotonic()  # when the last reader left
        self._delivered = -1  # the attached reader's cursor (for backpressure)
        self._waiters: set[asyncio.Future[None]] = set()
        self.on_abandoned: Callable[[], object] | None = None

    @property
    def issued(self) -> int:
        """How many events the stream has had."""
        return self._next

    def event_id(self, number: int) -> str:
        return f"{self.key}-{number}"

    def append(self, data: str) -> str:
        """Add an event (``""``: the priming event); returns its id. The oldest are dropped past the limits."""
        number = self._next
        self._next += 1
        self._events.append((number, data))
        self._bytes += len(data)
        while len(self._events) > 1 and (len(self._events) > self.keep_events or self._bytes > self.keep_bytes):
            self._bytes -= len(self._events.popleft()[1])
        self._wake()
        return self.event_id(number)

    async def room(self) -> None:
        """Wait while the connection following the stream has ``keep_events`` unread (a slow reader
        slows the producer instead of losing events); without a reader, never."""
        while not self.closed and self.reader is not None and self._next - 1 - self._delivered >= self.keep_events:
            await self._wait()

    def close(self) -> None:
        self.closed = True
        self._wake()

    async def follow(self, after: int) -> AsyncGenerator[tuple[str, str], None]:
        """The events after number ``after`` (ids and data), then new ones as they come, until the stream
        closes or another connection takes it over."""
        token = object()
        self.reader = token
        self._delivered = after
        self._wake()  # a reader it takes over from stops
        cursor = after
        try:
            while self.reader is token:
                pending = [(n, d) for n, d in self._events if n > cursor]
                if not pending:
                    if self.closed:
                        return
                    await self._wait()
                    continue
                for number, data in pending:
                    if self.reader is not token:
                        return  # taken over: the newer connection sends the rest
                    yield self.event_id(number), data
                    cursor = self._delivered = number
                    self._wake()
        finally:
            if self.reader is token:
                self.reader = None
                self.left = time.monotonic()
                self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)


class SessionStreams:
    """A session's resumable streams, by key."""

    def __init__(self, keep_events: int, keep_bytes: int, resume_window: float) -> None:
        self.keep_events = keep_events
        self.keep_bytes = keep_bytes
        self.resume_window = resume_window
        self.streams: OrderedDict[str, EventStream] = OrderedDict()

    def open(self) -> EventStream:
        self._sweep()
        stream = EventStream(secrets.token_hex(6), self.keep_events, self.keep_bytes)
        self.streams[stream.key] = stream
        return stream

    def find(self, last_event_id: str) -> tuple[EventStream, int] | None:
        """The stream an event id of this session names and the number after which to resume; None for
        an id this session never gave (another session's, malformed) or whose stream is gone."""
        self._sweep()
        key, _, number = last_event_id.strip().rpartition("-")
        stream = self.streams.get(key)
        if stream is None or not number.isdigit() or int(number) >= stream.issued:
            return None
        return stream, int(number)

    def close(self) -> None:
        """The session ended: every stream ends, the calls behind them too."""
        for stream in self.streams.values():
            if not stream.closed and stream.on_abandoned is not None:
                stream.on_abandoned()
            stream.close()
        self.streams.clear()

    def watch(self, stream: EventStream) -> None:
        """After a reader left: give the stream up unless one comes back within the resume window."""
        left = stream.left

        def check() -> None:
            if stream.reader is not None or stream.left != left or self.streams.get(stream.key) is not stream:
                return  # followed again (or already gone)
            if not stream.closed and stream.on_abandoned is not None:
                stream.on_abandoned()
            stream.close()
            self.streams.pop(stream.key, None)

        asyncio.get_running_loop().call_later(self.resume_window, check)

    def _sweep(self) -> None:
        """Drop the excess: finished streams first, then the oldest."""
        while len(self.streams) >= MAX_STREAMS:
            victim = next((s for s in self.streams.values() if s.closed and s.reader is None), None)
            victim = victim or next(iter(self.streams.values()))
            if not victim.closed and victim.on_abandoned is not None:
                victim.on_abandoned()
            victim.close()
            self.streams.pop(victim.key, None)
