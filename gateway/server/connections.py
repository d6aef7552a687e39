"""HTTP connection limits aiohttp does not have: a header-read timeout, a bound on
open connections, and a listening socket that fails with one clear line.

aiohttp waits for a request's headers as long as its keep-alive timeout (an hour
by default), so a client sending a header byte a second holds its connection, and
enough of them hold every file descriptor (slowloris). Here each listener's
connections are served by :class:`GuardedRequestHandler`: a request's headers
must be complete within ``header_timeout`` of its first byte (of the connection,
for the first request), or the client gets 408 and the connection is closed; a
connection over ``max_connections`` gets 503 and is closed at once, while the
others are served on. Idle keep-alive connections close after ``idle_timeout``
(aiohttp's own keep-alive timer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire
from gateway.config.schema import HttpListener
from gateway.http1.server import Limits, Router, ServerConnection
from gateway.model import StatusCode, Unavailable
from gateway.server.aiohttp_bridge import aiohttp_fallback

_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def _full_answer() -> bytes:
    body = json.dumps(wire.error_json(Unavailable("too many connections to this listener; retry shortly"))).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_FULL = _full_answer()


def _refusal(status: int, reason: str) -> bytes:
    """The body of an answer the native server makes itself (a malformed request, a bug)."""
    code = StatusCode.INTERNAL if status >= 500 else StatusCode.INVALID_ARGUMENT
    detail = pb.ErrorDetail(code=code.value, message=reason)
    return json.dumps({"error": wire.to_json(detail, with_defaults=True)}).encode()


class _NativeConnections:
    """A listener's native connections, to close them when it stops."""

    def __init__(self) -> None:
        self.open: set[ServerConnection] = set()

    def connection_made(self, handler: object, transport: asyncio.BaseTransport) -> None:
        assert isinstance(handler, ServerConnection)
        self.open.add(handler)

    def connection_lost(self, handler: object, exc: BaseException | None) -> None:
        assert isinstance(handler, ServerConnection)
        self.open.discard(handler)


class ListenError(Exception):
    """A listener could not be opened (the port is in use, the address is not local, ...)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason

    @classmethod
    def from_os_error(cls, address: str, error: OSError) -> ListenError:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        return cls(address, reason)


def bind_failure(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound (None: it can), found by trying: gRPC says only
    "failed to bind", and logs the reason on stderr, in its own format."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return str(exc.strerror or exc).lower()
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return ListenError.from_os_error("", exc).reason
    return None


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """The logger of aiohttp's connection handler. aiohttp logs every request it cannot
    parse, or whose body it cannot decode (the caller's fault, answered 400), as an ERROR with
    a traceback, so anyone could fill the log; those become one INFO line. Anything else stays
    an ERROR."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            self.info("%s: %s", str(msg) % args, getattr(exc_info, "message", "") or exc_info, **kwargs)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def protocol_log() -> ProtocolLog:
    return ProtocolLog(logging.getLogger("aiohttp.server"))


class ConnectionCount:
    """The open connections of one listener, against its bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler with a header-read deadline and a connection bound.

    It reads three fields of aiohttp's handler (``_messages``, ``_request_in_progress``,
    ``_waiter``) to know whether a request's headers are still awaited; the tests of
    tests/server/test_connections.py fail if a new aiohttp changes them.
    """

    def __init__(self, manager: web.Server, *, header_timeout: float, count: ConnectionCount, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._count = count
        self._counted = False
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._count.open >= self._count.limit:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_FULL)
            self.force_close()
            return
        self._count.open += 1
        self._counted = True
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._count.open -= 1
            self._counted = False
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and data and self._between_requests():
            self._arm()  # the first byte of the next request
        super().data_received(data)
        if self._header_timer is not None and not self._between_requests():
            self._disarm()  # the headers are complete: the request is aiohttp's now

    def _between_requests(self) -> bool:
        return not self._messages and not self._request_in_progress

    def _arm(self) -> None:
        self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        waiting = self._waiter is not None and not self._waiter.done()
        if waiting and not self._messages and self.transport is not None:
            # Still no complete request: a client this slow is a slowloris or broken.
            self.transport.write(_TIMED_OUT)
            self.force_close()


class ListenerSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedRequestHandler` s; a failure to
    listen raises :class:`ListenError`. No SO_REUSEPORT unless ``reuse_port`` (the workers
    of ``server.workers``): otherwise a second process on the port fails."""

    __slots__ = (
        "_count",
        "_host",
        "_limits",
        "_listener",
        "_native",
        "_port",
        "_reuse_port",
        "_router",
        "_shutdown_timeout",
    )

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        listener: HttpListener,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        router: Router | None = None,
        shutdown_timeout: float = 60.0,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._shutdown_timeout = shutdown_timeout
        self._reuse_port = reuse_port
        self._host = host
        self._port = port
        self._listener = listener
        self._count = ConnectionCount(listener.max_connections)
        # With a router, connections are the native server's (gateway.http1.server); aiohttp serves
        # what the router does not claim, behind each of them.
        self._router = router
        self._native = _NativeConnections()
        self._limits = Limits(
            header_timeout=listener.header_timeout,
            idle_timeout=listener.idle_timeout,
            max_head_bytes=listener.max_header_bytes,
            max_body_bytes=listener.max_body_bytes,
            max_connections=listener.max_connections,
            full=_FULL,
        )

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        return self._count.open if self._router is None else self._limits.open

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        listener = self._listener

        router = self._router
        fallback = aiohttp_fallback(
            server,
            keepalive_timeout=listener.idle_timeout,
            access_log=None,
            max_field_size=listener.max_header_bytes,
            max_line_size=listener.max_header_bytes,
            logger=protocol_log(),
        )

        def connection() -> asyncio.Protocol:
            if router is not None:
                return ServerConnection(loop, self._limits, router, fallback, self._native, _refusal)
            return GuardedRequestHandler(
                server,
                loop=loop,
                header_timeout=listener.header_timeout,
                count=self._count,
                keepalive_timeout=listener.idle_timeout,
                access_log=None,
                max_field_size=listener.max_header_bytes,
                max_line_size=listener.max_header_bytes,
                logger=protocol_log(),
            )

        try:
            self._server = await loop.create_server(
                connection,
                self._host,
                self._port,
                ssl=self._ssl_context,
                backlog=self._backlog,
                reuse_address=True,
                reuse_port=self._reuse_port,
            )
        except OSError as exc:
            raise ListenError.from_os_error(self._listener.address, exc) from None

    async def stop(self) -> None:
        """Stop listening; the native connections close when their answers in progress are written
        (aiohttp's handlers behind them close with the runner's other connections)."""
        await super().stop()
        connections = list(self._native.open)
        await asyncio.gather(*(c.shutdown(self._shutdown_timeout) for c in connections), return_exceptions=True)
