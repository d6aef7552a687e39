"""The server side of HTTP/1.1: one connection, parsed by httptools (llhttp, in its strict
mode), answered one request at a time and in order.

Hand-written for speed: aiohttp's server costs 150-230 us of CPU per request where this
protocol costs about 20 (bench/README.md). It serves only what a :data:`Router` claims; every
other request goes, re-framed byte for byte from what llhttp parsed, to the connection's
:class:`Fallback` (aiohttp's handler, behind ``gateway.server.aiohttp_bridge``), so one parser
frames every request of a connection and both sides stay in step. Tested against aiohttp's
server in tests/http1/test_server.py (pipelining, chunked bodies, Expect, limits, smuggling).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, cast

import httptools

log = logging.getLogger("agent_gateway.http")

_STATUS_TEXT = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    417: "Expectation Failed",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# The whole request head may be this many times the per-field limit.
HEAD_FIELDS = 8
# How much of a streamed request body is read ahead of its handler before reading pauses.
_STREAM_AHEAD = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


class HeadTooLarge(Exception):
    """The request line and header fields are over the listener's ``max_header_bytes``."""


class BodyTooLarge(Exception):
    """The request body is over the listener's ``max_body_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the listener's limit of {limit} bytes")
        self.limit = limit


class RequestHead:
    """A request line and its header fields as llhttp parsed them."""

    __slots__ = ("chunked", "expect", "headers", "keep_alive", "method", "path", "query", "raw", "target", "version")

    def __init__(
        self, method: str, target: bytes, version: str, raw: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.raw = raw
        self.keep_alive = keep_alive
        path, _, query = target.partition(b"?")
        self.path = path.decode("latin-1")
        self.query = query.decode("latin-1")
        # Names lower-cased; values decoded as aiohttp decodes them (UTF-8, undecodable bytes kept as surrogates).
        self.headers = [
            (name.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape")) for name, value in raw
        ]
        self.chunked = False
        self.expect: str | None = None
        for name, value in self.headers:
            if name == "transfer-encoding":
                self.chunked = True
            elif name == "expect":
                self.expect = value

    def header(self, name: str) -> str | None:
        """The first value of a header (``name`` lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def framed(self) -> bytes:
        """The request head again, as llhttp read it (the fallback parses it a second time)."""
        lines = [b"%s %s HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode())]
        lines.extend(b"%s: %s\r\n" % pair for pair in self.raw)
        lines.append(b"\r\n")
        return b"".join(lines)


class Fallback(Protocol):
    """Where the requests no route claims go, in order, one at a time."""

    def begin(self, head: RequestHead) -> None: ...
    def body(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def raw(self, data: bytes) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...


Handler = Callable[["Exchange"], Awaitable[None]]
Router = Callable[[RequestHead], Handler | None]


class Tracker(Protocol):
    """Who keeps the listener's open connections (aiohttp's ``web.Server`` has these two methods)."""

    def connection_made(self, handler: object, transport: asyncio.BaseTransport) -> None: ...
    def connection_lost(self, handler: object, exc: BaseException | None) -> None: ...


class Limits:
    """One listener's bounds, with the answers for the two refusals that happen before any request."""

    __slots__ = (
        "full",
        "header_timeout",
        "idle_timeout",
        "max_body_bytes",
        "max_connections",
        "max_head_bytes",
        "open",
    )

    def __init__(
        self,
        *,
        header_timeout: float,
        idle_timeout: float,
        max_head_bytes: int,
        max_body_bytes: int,
        max_connections: int,
        full: bytes,
    ) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.full = full
        self.open = 0


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """The Date header's value (RFC 9110 section 6.6.1), formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def response_head(
    status: int,
    headers: list[tuple[str, str]],
    close: bool,
    length: int | None,
    reason: str | None = None,
    framed: bool = True,
    dated: bool = True,
) -> bytes:
    """A status line and header fields; ``length`` None frames the body in chunks; ``framed``
    False: no framing header at all (a 204 or 304, whose answers have no body)."""
    text = reason if reason and reason.isprintable() else _STATUS_TEXT.get(status, "Unknown")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, text.encode("latin-1", "replace"))]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n".encode())
    if dated:
        lines.append(b"date: %s\r\n" % _date())
    if not framed:
        pass
    elif length is None:
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        lines.append(b"content-length: %d\r\n" % length)
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class Exchange:
    """One request served natively: its head, its body as it arrives, the one answer it gets."""

    __slots__ = (
        "_body",
        "_body_size",
        "_chunked",
        "_continued",
        "_no_body",
        "_waiter",
        "complete",
        "connection",
        "fallback",
        "handler",
        "head",
        "limit",
        "started",
        "too_large",
    )

    def __init__(self, connection: ServerConnection, head: RequestHead) -> None:
        self.connection = connection
        self.head = head
        self.handler: Handler | None = None
        self.fallback = False
        self.complete = False
        self.started = False
        self.too_large = False
        self._body: list[bytes] = []
        self._body_size = 0
        # The body bound; None: the handler streams the body (and reading pauses while it lags).
        self.limit: int | None = connection.limits.max_body_bytes
        self._chunked = True
        self._no_body = False
        self._continued = False
        self._waiter: asyncio.Future[None] | None = None

    # -- the request --------------------------------------------------------------------------

    def add_body(self, data: bytes) -> None:
        self._body_size += len(data)
        # A request for the fallback is held only while queued (reading is paused then), and its
        # limit is the fallback's to apply.
        if self.handler is not None and self.limit is not None and self._body_size > self.limit:
            self.too_large = True
            self._body.clear()
        elif not self.too_large:
            self._body.append(data)
            if self.limit is None:
                self._wake()
                if self._body_size > _STREAM_AHEAD:
                    self.connection.pause_reading()  # the handler is behind: let TCP hold the rest

    def finish_body(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def body_pieces(self) -> list[bytes]:
        pieces, self._body = self._body, []
        return pieces

    async def read(self) -> bytes:
        """The whole body; BodyTooLarge over the limit, ConnectionResetError when the caller leaves first."""
        limit = self.connection.limits.max_body_bytes
        declared = self.head.header("content-length")
        if self.too_large or (declared is not None and declared.isdigit() and int(declared) > limit):
            raise BodyTooLarge(limit)
        if not self.complete:
            self._expect_continue()
            self._waiter = self.connection.loop.create_future()
            self.connection.resume_reading()
            await self._waiter
            if self.too_large:
                raise BodyTooLarge(limit)
        return b"".join(self._body)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives, unbounded (a streamed body's bound is the handler's to keep)."""
        while True:
            if self._body:
                pieces, self._body = self._body, []
                self._body_size = 0
                self.connection.resume_reading()
                for piece in pieces:
                    yield piece
                continue
            if self.complete:
                return
            self._expect_continue()
            self._waiter = self.connection.loop.create_future()
            self.connection.resume_reading()
            await self._waiter

    def _expect_continue(self) -> None:
        if self.head.expect is not None and not self._continued:
            self._continued = True
            self.connection.write(_CONTINUE)

    @property
    def gone(self) -> bool:
        """The caller's connection is closed (or closing)."""
        return self.connection.closed

    def extra(self, name: str) -> object:
        return self.connection.extra(name)

    # -- the answer ---------------------------------------------------------------------------

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """The whole answer at once."""
        self.started = True
        close = self.connection.ends_after(self)
        self.connection.write(response_head(status, headers, close, len(body)) + body)
        self.connection.answered(self, close)

    def begin(
        self,
        status: int,
        headers: list[tuple[str, str]],
        length: int | None = None,
        reason: str | None = None,
        dated: bool = True,
    ) -> None:
        """Start an answer whose body follows (:meth:`send`, then :meth:`end`): of ``length``
        bytes, or in chunks. A HEAD's answer, a 204 and a 304 carry none (RFC 9110 section 6.4.1)."""
        self.started = True
        bodiless = status in (204, 304)
        self._no_body = bodiless or self.head.method == "HEAD"
        self._chunked = length is None and not self._no_body
        close = self.connection.ends_after(self)
        self.connection.write(response_head(status, headers, close, length, reason, not bodiless, dated))

    def send(self, data: bytes) -> None:
        if not data or self._no_body:
            return
        if self._chunked:
            self.connection.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.connection.write(data)

    async def drain(self) -> None:
        await self.connection.drain()

    def end(self) -> None:
        if self._chunked:
            self.connection.write(_LAST_CHUNK)
        self.connection.answered(self, self.connection.ends_after(self))

    def cut(self) -> None:
        """The answer cannot be finished: end the connection (the caller sees a truncated body)."""
        self.connection.abandon()


class ServerConnection(asyncio.Protocol):
    """One client connection: requests parsed in order, each served by its route's handler or
    the fallback, the next one started when the last is answered."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        router: Router,
        fallback: Callable[[ServerConnection], Fallback],
        tracker: Tracker | None = None,
        refuse: Callable[[int, str], bytes] | None = None,
    ) -> None:
        self.loop = loop
        self.limits = limits
        self.router = router
        self._make_fallback = fallback
        self._tracker = tracker
        self._refuse = refuse or _plain_refusal
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser = httptools.HttpRequestParser(self)
        self._fallback: Fallback | None = None
        self._current: Exchange | None = None
        self._queue: collections.deque[Exchange] = collections.deque()
        self._parsing: Exchange | None = None
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._raw = False
        self._error: tuple[int, str] | None = None
        self._closing = False
        self._counted = False
        self._paused_reading = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # One lazy timer per connection, not one per request: it fires at the earliest deadline
        # and looks at the times below (a head that arrives in one read never arms it).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._head_since: float | None = None
        self._idle_since: float | None = None
        self._in_head = False
        self._idle_done: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._extra: dict[str, object] = {}

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        limits = self.limits
        if limits.open >= limits.max_connections:
            self.transport.write(limits.full)
            self.transport.close()
            self.closed = True
            return
        limits.open += 1
        self._counted = True
        if self._tracker is not None:
            self._tracker.connection_made(self, transport)
        self._head_since = self.loop.time()
        self._watch()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self._counted:
            self.limits.open -= 1
            self._counted = False
        self._disarm()
        if self._tracker is not None and not self.tasks:
            self._tracker.connection_lost(self, exc)  # else when its last handler ends: a stop waits for it
        if self._fallback is not None:
            self._fallback.connection_lost(exc)
        for exchange in (self._current, *self._queue):
            if exchange is not None and exchange._waiter is not None and not exchange._waiter.done():
                exchange._waiter.set_exception(ConnectionResetError("the caller closed the connection"))
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("the caller closed the connection"))
        if self._idle_done is not None and not self._idle_done.done():
            self._idle_done.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._fallback is not None:
            self._fallback.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._drain_waiter = None
        if self._fallback is not None:
            self._fallback.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._raw:
            assert self._fallback is not None
            self._fallback.raw(data)
            return
        if self._error is not None:
            return  # after a malformed request nothing more is read
        try:
            self.parser.feed_data(data)
            if self._in_head:
                self._watch()  # a head spread over reads: its deadline counts
        except httptools.HttpParserUpgrade as upgrade:
            # The rest of the connection is not HTTP/1.1 requests: it is the fallback's, as it comes.
            if self._current is None or not self._current.fallback or self._queue:
                self._malformed(400, "an upgrade request must not follow other requests unanswered")
                return
            self._raw = True
            rest = data[upgrade.args[0] :]
            if rest:
                self._fallback_for().raw(rest)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._malformed(400, str(exc.__context__))
            else:  # our own callback failed: a bug, not the caller's fault
                log.error("unhandled error parsing a request", exc_info=exc.__context__ or exc)
                self._malformed(500, "internal gateway error")
        except httptools.HttpParserError as exc:
            self._malformed(400, f"the request is not valid HTTP/1.1: {exc}")

    # -- llhttp's callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._head_bytes = 0
        self._in_head = True
        self._idle_since = None
        if self._head_since is None:
            self._head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url), len(self._url), "the request line")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))
        self._count(len(name) + len(value) + 4, max(len(name), len(value)), "a header field")

    def on_headers_complete(self) -> None:
        parser = self.parser
        head = RequestHead(
            parser.get_method().decode(), self._url, parser.get_http_version(), self._fields, parser.should_keep_alive()
        )
        self._in_head = False
        self._head_since = None
        exchange = Exchange(self, head)
        # An upgrade (or CONNECT) hands the connection over: the fallback's from here on.
        if not self._raw and not parser.should_upgrade():
            exchange.handler = self.router(head)
            if getattr(exchange.handler, "streams_body", False):
                exchange.limit = None
        self._parsing = exchange
        if self._current is None:
            self._start(exchange)
        else:
            self._queue.append(exchange)
            self.pause_reading()  # one request ahead is enough

    def on_body(self, data: bytes) -> None:
        exchange = self._parsing
        if exchange is None:
            return
        if exchange.fallback and exchange is self._current:
            self._fallback_for().body(data)
        else:
            exchange.add_body(data)
            if exchange.too_large and exchange is self._current and exchange._waiter is not None:
                exchange.finish_body()

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is None:
            return
        exchange.finish_body()
        if exchange.fallback and exchange is self._current:
            self._fallback_for().end()

    # -- serving ------------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self._current = exchange
        handler = exchange.handler
        if handler is None:
            exchange.fallback = True
            fallback = self._fallback_for()
            fallback.begin(exchange.head)
            for piece in exchange.body_pieces():
                fallback.body(piece)
            if exchange.complete:
                fallback.end()
            return
        task = self.loop.create_task(self._serve(handler, exchange))
        self.tasks.add(task)
        task.add_done_callback(self._served)

    async def _serve(self, handler: Handler, exchange: Exchange) -> None:
        try:
            await handler(exchange)
        except Exception:
            log.exception("unhandled error serving %s %s", exchange.head.method, exchange.head.path)
            if not exchange.started and not self.closed:
                exchange.respond(
                    500, [("content-type", "application/json")], self._refuse(500, "internal gateway error")
                )
            elif self._current is exchange:
                self.abandon()
            return
        if self._current is exchange and not self.closed:
            if not exchange.started:
                exchange.respond(500, [("content-type", "application/json")], self._refuse(500, "no answer was made"))
            else:
                self.abandon()  # started and never ended

    def _served(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self.closed and not self.tasks and self._tracker is not None:
            self._tracker.connection_lost(self, None)

    def ends_after(self, exchange: Exchange) -> bool:
        """Whether the connection closes after this exchange's answer."""
        return self._closing or not exchange.head.keep_alive or not exchange.complete or exchange.too_large

    def answered(self, exchange: Exchange, close: bool) -> None:
        """The current exchange's answer is written (natively or by the fallback)."""
        if exchange is not self._current:
            return
        self._current = None
        if close or self.closed:
            self._close()
            return
        self._next()

    def fallback_done(self, close: bool) -> None:
        """The fallback finished its answer to the current exchange."""
        exchange = self._current
        if exchange is None or not exchange.fallback or self._raw:
            return
        self.answered(exchange, close or self.ends_after(exchange))

    def _next(self) -> None:
        if self._queue:
            self._start(self._queue.popleft())
            if not self._queue:
                self.resume_reading()
            return
        if self._error is not None:
            status, reason = self._error
            self._answer_and_close(status, reason)
            return
        self.resume_reading()
        if not self._in_head:
            self._idle_since = self.loop.time()
            self._watch()
        if self._idle_done is not None and not self._idle_done.done():
            self._idle_done.set_result(None)

    def abandon(self) -> None:
        if self.closed:
            return
        self._current = None
        self._queue.clear()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _malformed(self, status: int, reason: str) -> None:
        # Answered once the requests before it are (their answers come first).
        self._error = (status, reason)
        current = self._current
        if current is None and not self._queue:
            self._answer_and_close(status, reason)
        elif current is not None and current is self._parsing and not current.started:
            # The error is in the body of the request being served: it is the one answered.
            self._current = None
            self._queue.clear()
            self._answer_and_close(status, reason)
            if current._waiter is not None and not current._waiter.done():
                current._waiter.set_exception(ConnectionResetError("the request body is malformed"))
            if current.fallback and self._fallback is not None:
                self._fallback.connection_lost(None)
                self._fallback = None

    def _answer_and_close(self, status: int, reason: str) -> None:
        if self.transport is not None and not self.closed:
            body = self._refuse(status, reason)
            self.transport.write(response_head(status, [("content-type", "application/json")], True, len(body)) + body)
        self._close()

    def _count(self, size: int, field: int, what: str) -> None:
        # aiohttp's limits: ``max_head_bytes`` per line and per field; the whole head is bounded too.
        self._head_bytes += size
        limit = self.limits.max_head_bytes
        if field > limit:
            raise HeadTooLarge(f"Got more than {limit} bytes when reading {what}")
        if self._head_bytes > HEAD_FIELDS * limit:
            raise HeadTooLarge(f"Got more than {HEAD_FIELDS * limit} bytes when reading the request head")

    # -- the fallback ---------------------------------------------------------------------------

    def _fallback_for(self) -> Fallback:
        if self._fallback is None:
            self._fallback = self._make_fallback(self)
        return self._fallback

    def end_connection(self) -> None:
        """Close once what is written is sent (the fallback ended the connection)."""
        self._current = None
        self._queue.clear()
        self._close()

    def detach_fallback(self) -> None:
        """The fallback closed while it had no request: the connection goes on without it."""
        self._fallback = None

    # -- I/O ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the caller closed the connection")
        if self._write_paused:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter

    def extra(self, name: str) -> object:
        # Asked on every request (the peer's address and certificate); the transport's answer never changes.
        try:
            return self._extra[name]
        except KeyError:
            value = self._extra[name] = self.transport.get_extra_info(name) if self.transport is not None else None
            return value

    def pause_reading(self) -> None:
        if not self._paused_reading and self.transport is not None and not self.closed:
            self._paused_reading = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused_reading and self.transport is not None and not self.closed:
            self._paused_reading = False
            self.transport.resume_reading()

    # -- timers and shutdown ---------------------------------------------------------------

    def _watch(self) -> None:
        """Have the timer fire by the earliest deadline: the head's, or the idle connection's."""
        deadline = None
        if self._head_since is not None:
            deadline = self._head_since + self.limits.header_timeout
        if self._idle_since is not None:
            idle = self._idle_since + self.limits.idle_timeout
            deadline = idle if deadline is None else min(deadline, idle)
        if deadline is None or (self._timer is not None and self._timer_at <= deadline):
            return
        self._disarm()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self.loop.time()
        waiting = self._current is None and not self._queue
        if self._head_since is not None and now >= self._head_since + self.limits.header_timeout and waiting:
            self._headers_late()
        elif self._idle_since is not None and now >= self._idle_since + self.limits.idle_timeout and waiting:
            self._close()
        elif not self.closed:
            self._watch()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        if self.transport is not None:
            # Still no complete request head: a client this slow is a slowloris or broken.
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            self._close()

    def close(self) -> None:
        """No more requests: close now if idle, else after the answer in progress."""
        self._closing = True
        if self._current is None and not self._queue:
            self._close()

    async def shutdown(self, timeout: float | None) -> None:
        """Close once the answer in progress is written and its handler has finished (a drained
        call may still be undoing its steps after its answer), within ``timeout``."""
        self.close()
        waits: set[asyncio.Future[None]] = set(self.tasks)
        if not self.closed:
            self._idle_done = self.loop.create_future()
            waits.add(self._idle_done)
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        for task in self.tasks:
            task.cancel()
        if not self.closed and self.transport is not None:
            self.transport.abort()
            self.closed = True


def _plain_refusal(status: int, reason: str) -> bytes:
    return reason.encode()
