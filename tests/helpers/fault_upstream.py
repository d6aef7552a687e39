"""A fault-injecting HTTP/1.1 upstream for tests: a raw asyncio server on 127.0.0.1, port 0.

Each request is answered by ``responder(request) -> Reply``: a status, headers and body bytes,
written in random chunk sizes with random pauses (seeded; the seed is logged and kept on
``.seed``), chunked or with a Content-Length (honest or lying), trickled, cut off after some
body bytes, or stopped after the headers. Nothing is framed by a library, so the gateway
meets exactly the bytes a broken or slow agent would send. Every request the gateway sent is
recorded (``.requests``) with its method, target, headers and body; an answer written in full
counts in ``.replies_done``, one the client hung up on midway in ``.abandoned``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger("tests.fault_upstream")
log.setLevel(logging.INFO)  # the seed shows in a failed test's captured log

# Every wait of the server is bounded, so a test that forgets to hang up cannot hang the run.
MAX_HANG_SECONDS = 30.0
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the upstream received it (header names lower-case)."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Reply:
    """How to answer one request.

    ``chunks``: ``"random"`` writes the body in pieces of 1..``max_chunk`` bytes with pauses of
    0..``max_pause`` s; ``"one"`` writes it at once. ``trickle``: (bytes, pause) written in turn,
    slow enough to run into any sensible timeout. ``hang_after_headers``: the headers, then
    nothing until the client hangs up. ``cut_after``: close the connection after this many body
    bytes. ``content_length``: ``"honest"`` (``len(body)``), ``"none"`` (read until close), or a
    number (a lie when it is not ``len(body)``); ignored with ``chunked``.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    chunked: bool = False
    content_length: int | Literal["honest", "none"] = "honest"
    chunks: Literal["random", "one"] = "random"
    max_chunk: int = 64 * 1024
    max_pause: float = 0.002
    trickle: tuple[int, float] | None = None
    hang_after_headers: bool = False
    cut_after: int | None = None

    @property
    def faulty(self) -> bool:
        lying = isinstance(self.content_length, int) and self.content_length != len(self.body)
        return (
            self.hang_after_headers
            or self.cut_after is not None
            or lying
            or self.content_length == "none"
            or self.trickle is not None
        )


def json_reply(body: bytes, **kwargs: object) -> Reply:
    return Reply(body=body, headers={"content-type": "application/json"}, **kwargs)  # type: ignore[arg-type]


Responder = Callable[[SeenRequest], Reply]


class FaultUpstream:
    """``async with FaultUpstream(responder) as upstream:`` serves on ``upstream.url``."""

    def __init__(self, responder: Responder | Reply, seed: int | None = None) -> None:
        self.responder: Responder = responder if callable(responder) else (lambda _request: responder)
        if seed is None:
            seed = int(os.environ.get("FAULT_UPSTREAM_SEED") or random.randrange(2**32))
        self.seed = seed
        self.random = random.Random(seed)
        self.requests: list[SeenRequest] = []
        self.replies_done = 0
        self.abandoned = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> FaultUpstream:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=1 << 20)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        log.info("fault upstream at %s, seed=%d (rerun with FAULT_UPSTREAM_SEED=%d)", self.url, self.seed, self.seed)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                reply = self.responder(request)
                try:
                    keep_open = await self._answer(reply, reader, writer)
                except ConnectionError:
                    self.abandoned += 1
                    raise
                self.replies_done += 1
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Write ``reply``; True when the connection may serve another request."""
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        if reply.chunked:
            head.append("transfer-encoding: chunked")
        elif reply.content_length == "honest":
            head.append(f"content-length: {len(reply.body)}")
        elif isinstance(reply.content_length, int):
            head.append(f"content-length: {reply.content_length}")
        if reply.faulty:
            head.append("connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        if reply.hang_after_headers:
            await _until_client_leaves(reader)
            return False
        body = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
        for piece in self._pieces(reply, body):
            writer.write(_frame(piece) if reply.chunked else piece)
            await writer.drain()
            await asyncio.sleep(self._pause(reply))
        if reply.cut_after is not None:
            writer.transport.abort()  # a close mid-body, without the chunked terminator
            return False
        if reply.chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not reply.faulty

    def _pieces(self, reply: Reply, body: bytes) -> list[bytes]:
        if reply.trickle is not None:
            size = reply.trickle[0]
            return [body[i : i + size] for i in range(0, len(body), size)]
        if reply.chunks == "one" or not body:
            return [body] if body else []
        pieces, at = [], 0
        while at < len(body):
            size = self.random.randint(1, reply.max_chunk)
            pieces.append(body[at : at + size])
            at += size
        return pieces

    def _pause(self, reply: Reply) -> float:
        if reply.trickle is not None:
            return reply.trickle[1]
        return self.random.uniform(0, reply.max_pause) if reply.chunks == "random" else 0.0


def _frame(piece: bytes) -> bytes:
    return f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


async def _until_client_leaves(reader: asyncio.StreamReader) -> None:
    deadline = time.monotonic() + MAX_HANG_SECONDS
    with contextlib.suppress(TimeoutError, ConnectionError):
        while time.monotonic() < deadline:
            if not await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
                return


async def _read_request(reader: asyncio.StreamReader) -> SeenRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent by the gateway
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return SeenRequest(method, target, headers, bytes(body))
    length = int(headers.get("content-length", "0"))
    return SeenRequest(method, target, headers, await reader.readexactly(length) if length else b"")


@contextlib.contextmanager
def in_thread(responder: Responder | Reply, seed: int | None = None) -> Iterator[FaultUpstream]:
    """The upstream on its own event loop in a thread, for clients that block the test's loop
    (a synchronous fetch, like PyJWT's JWKS client, would otherwise wait on a server it stalls)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-upstream", daemon=True)
    thread.start()
    upstream = FaultUpstream(responder, seed)
    try:
        asyncio.run_coroutine_threadsafe(upstream.__aenter__(), loop).result(timeout=10)
        yield upstream
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(upstream.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
