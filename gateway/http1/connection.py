"""One keep-alive HTTP/1.1 connection to an upstream: an asyncio protocol feeding httptools'
response parser, carrying one exchange at a time (no pipelining)."""

from __future__ import annotations

import asyncio
from typing import cast

import httptools
from multidict import CIMultiDict

from gateway.http1.errors import ConnectionLost, IncompleteBody, ResponseMalformed
from gateway.http1.response import Http1Response

# aiohttp's client limits, so a reply it refuses is refused here too.
MAX_FIELD_BYTES = 8190
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128


class Http1Connection(asyncio.Protocol):
    """The socket's side of an exchange: bytes in go to the parser, the parser's callbacks to
    the current :class:`Http1Response`."""

    # One per open upstream stream: slots, not a dict per connection.
    __slots__ = (
        "_done",
        "_drain",
        "_fields",
        "_head_bytes",
        "_interim",
        "_keep_alive",
        "_reason",
        "_write_paused",
        "closed",
        "exchanges",
        "idle_since",
        "live",
        "loop",
        "parser",
        "response",
        "reusable",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Http1Response | None = None
        self.closed = False
        # May carry another exchange: the last reply was read to its end and allowed keep-alive.
        self.reusable = False
        self.exchanges = 0
        self.idle_since = 0.0
        self._fields: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._reason = ""
        self._interim = False
        self._done = True
        self._keep_alive = False
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        # The client's set of open connections, left on close (so closing the client reaches all).
        self.live: set[Http1Connection] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or self._done:
            # Bytes nobody asked for, or more than the reply's framing declared: neither this
            # stream nor (as aiohttp's client also decides) the reply can be trusted.
            if response is not None:
                response.overrun()
            self.abort()
            return
        response.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(ResponseMalformed("the upstream switched protocols; only HTTP/1.1 replies are accepted"))
        except httptools.HttpParserError as exc:
            self._broken(ResponseMalformed(f"the upstream sent a malformed reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.live is not None:
            self.live.discard(self)
        response = self.response
        if response is not None and not self._done:
            self._done = True
            if not response.status:
                response.fail(ConnectionLost("the upstream closed the connection before its reply"))
            elif response.until_close and exc is None:
                response.ended()  # a body delimited by the close, complete
            else:
                response.fail(IncompleteBody("the connection closed before the reply's body ended"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionLost("the upstream closed the connection while the request was sent"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks (never raise from these: the parser would wrap it)
    def on_message_begin(self) -> None:
        if self._done and self.response is not None:
            self.response.overrun()  # a second reply to one request
        self._fields = []
        self._head_bytes = 0
        self._interim = False

    def on_status(self, status: bytes) -> None:
        self._reason = status.decode("utf-8", "surrogateescape")
        self._head_bytes += len(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if len(value) > MAX_FIELD_BYTES or len(name) > MAX_FIELD_BYTES:
            self._broken(ResponseMalformed(f"the upstream sent a header field over {MAX_FIELD_BYTES} bytes"))
            return
        self._fields.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None or self._done:
            return
        if self._head_bytes > MAX_HEAD_BYTES or len(self._fields) > MAX_HEADERS:
            too_long = f"the upstream's reply head is over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            self._broken(ResponseMalformed(too_long))
            return
        status = self.parser.get_status_code()
        if status == 101:
            self._broken(ResponseMalformed("the upstream switched protocols; only HTTP/1.1 replies are accepted"))
            return
        if 100 <= status < 200:
            self._interim = True  # 100 Continue, 103 Early Hints: the reply follows
            return
        # Asked here: once the message completes, the parser has reset for the next one.
        self._keep_alive = self.parser.should_keep_alive()
        fields, self._fields = self._fields, []  # copied into the headers: not kept for the stream's life
        response.head_received(status, self._reason, CIMultiDict(fields))
        if response.head_only:
            # A HEAD reply has no body whatever its Content-Length says; httptools cannot be
            # told, so the exchange ends here and the connection is not reused.
            self._done = True
            response.ended()

    def on_body(self, body: bytes) -> None:
        if not self._done:
            self.response.body_received(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._done:
            return
        self._done = True
        self.reusable = self._keep_alive
        self.response.ended()  # type: ignore[union-attr]

    # The client's side
    def begin(self, response: Http1Response) -> None:
        """Carry ``response``'s exchange next."""
        self.response = response
        self.reusable = False
        self._done = False
        self.exchanges += 1

    def finish(self) -> bool:
        """The exchange is over: True when the connection may go back to the pool."""
        self.response = None
        return self.reusable and not self.closed

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Until the transport's buffer is below its high-water mark (a large streamed body)."""
        if self.closed:
            raise ConnectionLost("the upstream closed the connection while the request was sent")
        if self._write_paused:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection at once (its reply unread, a deadline passed, a caller gone)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _broken(self, exc: Exception) -> None:
        response = self.response
        was_done = self._done
        self._done = True
        if response is not None:
            if was_done:
                response.overrun()  # the reply ended, and bytes that parse as nothing followed
            else:
                response.fail(exc)
        self.abort()
