"""An incremental server-sent events parser (the WHATWG event-stream rules).

Fed raw bytes as they arrive, it yields complete events; it tolerates CRLF, LF
and CR line ends split anywhere across chunks, and bounds the size of one
event because upstream streams are untrusted.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class SseProtocolError(ValueError):
    """The stream broke the event-stream format or a size bound."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SseParser:
    """Push bytes in with :meth:`feed`, get complete events out."""

    # One per stream read from an upstream.
    __slots__ = ("_buffer", "_data", "_event", "_id", "_max", "_pending_cr", "_retry", "_size", "_started")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        events: list[SseEvent] = []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        self._buffer += chunk
        start = 0
        buf = self._buffer
        length = len(buf)
        while start < length:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                end, next_start = cr, cr + 1
                if next_start < length and buf[next_start : next_start + 1] == b"\n":
                    next_start += 1
                elif next_start == length:
                    self._pending_cr = True
            else:
                end, next_start = lf, lf + 1
            if (event := self._line(buf[start:end])) is not None:
                events.append(event)
            start = next_start
        self._buffer = buf[start:]
        if len(self._buffer) + self._size > self._max:
            raise SseProtocolError(f"an event exceeded {self._max} bytes")
        return events

    def _line(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, used as keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self._max:
                raise SseProtocolError(f"an event exceeded {self._max} bytes")
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id, self._retry)
        self._event, self._data, self._size, self._retry = "", [], 0, None
        return event


async def parse_sse(
    chunks: AsyncIterable[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[SseEvent]:
    """Events from a byte stream; a trailing event without a blank line is dropped, as the spec says."""
    parser = SseParser(max_event_bytes)
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event


def format_sse(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """One event on the wire (multi-line data split into data: lines)."""
    out = []
    if event:
        out.append(f"event: {event}")
    if id is not None:
        out.append(f"id: {id}")
    out.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(out) + "\n\n").encode()
