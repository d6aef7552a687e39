"""One upstream reply as it arrives: status, headers, and a body read chunk by chunk.

The connection's parser callbacks feed it; the reader awaits it. Reading is unbuffered (each
read returns what has arrived so far, joined) and flow-controlled (the socket stops being read
while more than ``HIGH_WATER`` bytes wait for the reader).
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from gateway.http1.errors import ResponseMalformed

if TYPE_CHECKING:
    from gateway.http1.connection import Http1Connection

# Bytes received but not yet read after which the socket is paused; it resumes once read.
HIGH_WATER = 256 * 1024
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class Http1Response:
    """A reply being received. ``content`` is the response itself (``iter_any`` and ``async for``)."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_deadline",
        "_decoder",
        "_exc",
        "_loop",
        "_paused",
        "_read_timeout",
        "_size",
        "_waiter",
        "complete",
        "content_length",
        "decompress",
        "head_only",
        "headers",
        "reason",
        "received",
        "status",
        "until_close",
    )

    def __init__(
        self,
        connection: Http1Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        head_only: bool,
        decompress: bool,
        read_timeout: float | None,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self.head_only = head_only
        self.decompress = decompress
        self._read_timeout = read_timeout
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.content_length: int | None = None
        # No Content-Length and not chunked: the body ends when the connection does.
        self.until_close = False
        self.complete = False
        # Whether any byte of the reply arrived (a reused connection that sent none may have gone stale).
        self.received = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._decoder: zlib._Decompress | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # What the connection's parser calls.
    def head_received(self, status: int, reason: str, headers: CIMultiDict[str]) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        raw = headers.get("content-length")
        self.content_length = int(raw) if raw is not None and raw.isdigit() else None
        self.until_close = raw is None and "chunked" not in headers.get("transfer-encoding", "").lower()
        if self.decompress and (encoding := headers.get("content-encoding")) is not None:
            wbits = _DECODERS.get(encoding.strip().lower())
            if wbits is not None:
                self._decoder = zlib.decompressobj(wbits)
        self._wake()

    def body_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._connection.pause_reading()
        self._wake()

    def ended(self) -> None:
        self.complete = True
        self.stop_deadline()
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self._exc is None and not self.complete:
            self._exc = exc
            self.stop_deadline()
            self._wake()

    def overrun(self) -> None:
        """More bytes than the reply's framing declared: the reply fails even if read whole."""
        if self._exc is None and not self.head_only:
            self._exc = ResponseMalformed("the upstream sent more bytes than its reply declared")
            self._wake()

    def arm_deadline(self, when: float) -> None:
        self._deadline = self._loop.call_at(when, self._deadline_passed)

    def stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.complete and self._exc is None:
            self._exc = TimeoutError("the upstream did not answer before the deadline")
            self._wake()
            self._connection.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = (
            self._loop.call_later(self._read_timeout, self._read_timed_out, waiter)
            if self._read_timeout is not None
            else None
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _read_timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self.fail(TimeoutError("the upstream sent nothing within the read timeout"))
            self._connection.abort()

    async def wait_head(self) -> None:
        """Until the head has arrived; raises what broke the exchange before the caller saw it
        (the reply's end included: bytes past its framing in the same read fail it here, as in aiohttp)."""
        while True:
            if self._exc is not None:
                raise self._exc
            if self.status:
                return
            await self._wait()

    # The body, as aiohttp's ``StreamReader`` shows it to the transport.
    @property
    def content(self) -> Http1Response:
        return self

    def iter_any(self) -> Http1Response:
        return self

    def __aiter__(self) -> Http1Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._exc is not None:
                raise self._exc  # as aiohttp's reader: a broken reply's buffered bytes are not handed out
            if self._chunks:
                chunks = self._chunks
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                self._size = 0
                if self._paused:
                    self._paused = False
                    self._connection.resume_reading()
                if self._decoder is not None:
                    data = self._decode(data)
                    if not data:
                        continue
                return data
            if self.complete:
                if self._decoder is not None:
                    tail, self._decoder = self._decoder.flush(), None
                    if tail:
                        return tail
                raise StopAsyncIteration
            if self._read_timeout is not None:
                await self._wait()
                continue
            # _wait without a read timeout, inline: a stream waits once for every chunk.
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read(self) -> bytes:
        """The whole (remaining) body, unbounded: for tests and small known replies."""
        return b"".join([chunk async for chunk in self])

    def _decode(self, data: bytes) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.decompress(data)
        except zlib.error as exc:
            raise ResponseMalformed(f"the body does not decode as {self.headers.get('content-encoding')}") from exc
