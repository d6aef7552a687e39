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
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]  # the LF of a CRLF split across chunks
        buf = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buf:  # CRLF and CR line ends become LF (a CR ending the chunk may pair with the next's LF)
            self._pending_cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        if end < 0:
            self._buffer = buf
            if len(buf) + self._size > self._max:
                raise SseProtocolError(f"an event exceeded {self._max} bytes")
            return []
        self._buffer = buf[end + 1 :]
        # Whole lines decode as one text: a LF byte never falls inside a UTF-8 sequence.
        text = buf[:end].decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        events: list[SseEvent] = []
        for line in text.split("\n"):
            if not line:  # a blank line dispatches the event (none without data)
                if self._data:
                    events.append(SseEvent(self._event or "message", "\n".join(self._data), self._id, self._retry))
                    self._data, self._size, self._retry = [], 0, None
                self._event = ""
            elif line[0] != ":":  # a comment, used as keep-alive
                self._field(line)
        if len(self._buffer) + self._size > self._max:
            raise SseProtocolError(f"an event exceeded {self._max} bytes")
        return events

    def _field(self, line: str) -> None:
        name, _, value = line.partition(":")
        if value[:1] == " ":
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
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)


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
    head = (f"event: {event}\n" if event else "") + (f"id: {id}\n" if id is not None else "")
    return f"{head}data: {data.replace(_LF, _NEXT_DATA)}\n\n".encode()


_LF, _NEXT_DATA = "\n", "\ndata: "
