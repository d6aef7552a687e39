"""A fake upstream for adapter tests, in the spirit of httpx's ``MockTransport``.

A :class:`MockUpstream` answers every request an HTTP adapter sends from a Python function,
without a socket. It replaces only the one request of :meth:`HttpTransport.open`: header
merging, status mapping, bounded body reads, JSON and SSE parsing all run as they do against a
real agent. Every request is kept on ``.requests`` (with the TLS settings it was sent with)::

    def agent(request: MockRequest) -> MockReply:
        assert request.path == "/runs/wait"
        return MockReply.json({"messages": []})

    upstream = MockUpstream(agent)
    async with upstream.resources() as resources:  # or AdapterResources(session, transports=upstream.transport)
        adapter = LangGraphAdapter(spec, resources)
        result = await adapter.invoke(call)

The handler may be ``async``, and may raise (an ``aiohttp.ClientError`` or ``TimeoutError``
is mapped like a real transport failure).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.adapters.base import AdapterResources
from gateway.model import Attempt
from gateway.protocols.sse import format_sse
from gateway.transport import ByteStream, HttpTransport, UpstreamResponse, client_timeout


@dataclass(frozen=True, slots=True)
class MockRequest:
    """One request as the adapter sent it."""

    agent: str
    method: str
    url: str
    headers: Mapping[str, str]
    json: Any
    # The TLS settings the transport would have connected with.
    ssl: ssl.SSLContext | bool
    server_hostname: str | None

    @property
    def path(self) -> str:
        return URL(self.url).path


@dataclass(frozen=True, slots=True)
class MockReply:
    """What the upstream answers: a status, headers and a body sent in ``chunks``."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] = ()

    @classmethod
    def body(cls, raw: bytes, content_type: str, status: int = 200, chunk_size: int = 0) -> MockReply:
        """``raw`` bytes as the body, whole or in pieces of ``chunk_size`` (to split lines and events)."""
        size = chunk_size or max(len(raw), 1)
        return cls(status, {"content-type": content_type}, tuple(raw[i : i + size] for i in range(0, len(raw), size)))

    @classmethod
    def json(cls, value: Any, status: int = 200) -> MockReply:
        return cls.body(json.dumps(value).encode(), "application/json", status)

    @classmethod
    def text(cls, text: str, status: int = 200) -> MockReply:
        return cls.body(text.encode(), "text/plain", status)

    @classmethod
    def sse(cls, events: Iterable[tuple[str | None, Any]], chunk_size: int = 0) -> MockReply:
        """An event stream of ``(event name or None, data)``; data that is not a string is sent as JSON."""
        raw = b"".join(format_sse(d if isinstance(d, str) else json.dumps(d), name) for name, d in events)
        return cls.body(raw, "text/event-stream", chunk_size=chunk_size)


Handler = Callable[[MockRequest], MockReply | Awaitable[MockReply]]


class _Content:
    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: CIMultiDictProxy[str]
    content_length: int | None
    content: ByteStream


def _transport_of(upstream: MockUpstream) -> type[HttpTransport]:
    """An ``HttpTransport`` whose one request ``upstream`` answers (everything else is the real one)."""

    class MockTransport(HttpTransport):
        def open(
            self, call: Attempt, method: str, url: str, body: Any, headers: Mapping[str, str]
        ) -> contextlib.AbstractAsyncContextManager[UpstreamResponse]:
            client_timeout(call, self.agent)  # a spent deadline fails before sending, as with aiohttp
            request = MockRequest(self.agent, method, url, dict(headers), body, self.ssl, self.server_hostname)
            return upstream.answer(request)

    return MockTransport


class MockUpstream:
    """An upstream answering from ``handler``: ``AdapterResources(session, transports=upstream.transport)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[MockRequest] = []
        self.transport = _transport_of(self)

    @contextlib.asynccontextmanager
    async def answer(self, request: MockRequest) -> AsyncIterator[UpstreamResponse]:
        """The handler's reply to ``request`` (kept on ``.requests``) as the transport reads it."""
        self.requests.append(request)
        reply = self.handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        headers = CIMultiDictProxy(CIMultiDict(reply.headers))
        yield _Response(reply.status, headers, sum(map(len, reply.chunks)), _Content(reply.chunks))

    @contextlib.asynccontextmanager
    async def resources(self) -> AsyncIterator[AdapterResources]:
        """``AdapterResources`` whose HTTP adapters all reach this upstream."""
        async with aiohttp.ClientSession() as session:
            yield AdapterResources(session, transports=self.transport)
