"""The lean client's request: a pooled connection, the request written in one piece, the reply's
head awaited, and the connection returned to its pool when (and only when) the reply was read
to its end and allowed keep-alive."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType

from yarl import URL

from gateway.http1.connection import Http1Connection
from gateway.http1.errors import ConnectFailed, ConnectionLost, RequestBodyFailed
from gateway.http1.pool import OriginPool
from gateway.http1.response import Http1Response

Body = bytes | AsyncIterable[bytes] | None

# A request target sent as written: what yarl would leave unchanged (no %, no dot segments).
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*\Z")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# Framing is this client's: a caller's own values would contradict the body it sends.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
# Methods that may be sent again when a reused connection turned out closed (RFC 9110 9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_BODY_EXPECTED = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Origins come from config and from agents (A2A task URLs): past this many, unused entries go.
_MAX_ORIGINS = 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a URL's requests go: parsed once per origin string and kept."""

    scheme: str
    host: str
    port: int
    host_header: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def parse_origin(scheme: str, authority: str) -> Origin:
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"the lean HTTP client speaks http and https, not {scheme}")
    if "@" in authority or not authority.isascii():
        # Credentials or an international name: yarl knows the rules (and aiohttp fits better).
        url = URL(f"{scheme}://{authority}")
        if url.user is not None:
            raise ValueError("credentials in the URL are not sent by the lean HTTP client; use a header")
        authority = url.raw_authority
    host, port = authority, _DEFAULT_PORTS[scheme]
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1 :]
        if rest.startswith(":") and rest[1:]:
            port = int(rest[1:])
    elif ":" in authority:
        host, _, raw_port = authority.rpartition(":")
        if raw_port:
            port = int(raw_port)
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host
    header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return Origin(scheme, host, port, header)


class Http1Client:
    """Keep-alive HTTP/1.1 requests to any number of origins (one pool each); TLS per request."""

    def __init__(self, *, max_idle_per_origin: int = 256, idle_expiry: float = 15.0) -> None:
        self.max_idle_per_origin = max_idle_per_origin
        self.idle_expiry = idle_expiry
        self._origins: dict[str, Origin] = {}
        self._pools: dict[tuple[str, ssl.SSLContext | None, str | None], OriginPool] = {}
        self._live: set[Http1Connection] = set()
        self._default_tls: dict[bool, ssl.SSLContext] = {}
        self.closed = False

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        content_length: int | None = None,
        content_type: str | None = None,
        ssl: ssl.SSLContext | bool = True,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        decompress: bool = True,
        encoded: bool = False,
        default_headers: Mapping[str, str] | None = None,
    ) -> Exchange:
        """One request, as ``async with client.request(...) as response``.

        ``body``: bytes (sent with their Content-Length), an async iterable of bytes (streamed:
        with ``content_length`` when known, else chunked), or None. ``timeout``: seconds for the
        whole exchange, body included (None: no limit); ``connect_timeout`` bounds opening a
        connection, ``read_timeout`` (None: none) each wait for bytes. ``encoded``: the URL's
        path and query are sent byte for byte (a proxy's); else they are quoted as yarl does.
        ``content_type`` and ``default_headers`` are sent unless ``headers`` has them.
        """
        match = _URL.match(url)
        if match is None:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        scheme, authority, target = match.groups()
        prefix = url[: match.start(3)]
        origin = self._origins.get(prefix)
        if origin is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._forget_unused()
            origin = self._origins[prefix] = parse_origin(scheme, authority)
        target = _target(target, url, encoded)
        method = method.upper()
        head = _head(method, target, origin, headers, body, content_length, content_type, default_headers)
        tls = self._tls(ssl) if origin.tls else None
        key = (prefix, tls, server_hostname if origin.tls else None)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = OriginPool(asyncio.get_running_loop(), self.max_idle_per_origin, self.idle_expiry)
        exchange = Exchange(self, pool, origin, tls, server_hostname, method, head, body)
        exchange.timeout, exchange.connect_timeout, exchange.read_timeout = timeout, connect_timeout, read_timeout
        exchange.decompress = decompress
        exchange.content_length = content_length
        return exchange

    def _forget_unused(self) -> None:
        """Drop parsed origins and the pools holding no idle connection (a busy exchange keeps its own)."""
        self._origins.clear()
        self._pools = {key: pool for key, pool in self._pools.items() if pool.idle}

    def _tls(self, setting: ssl.SSLContext | bool) -> ssl.SSLContext:
        if isinstance(setting, ssl.SSLContext):
            return setting
        context = self._default_tls.get(setting)
        if context is None:
            context = ssl.create_default_context()
            if not setting:  # ssl=False, as aiohttp reads it: encrypted, not verified
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._default_tls[setting] = context
        return context

    async def connect(
        self, origin: Origin, tls: ssl.SSLContext | None, server_hostname: str | None, bound: float
    ) -> Http1Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(bound):
                _, connection = await loop.create_connection(
                    lambda: Http1Connection(loop),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=(server_hostname or origin.host) if tls is not None else None,
                )
        except OSError as exc:
            raise ConnectFailed(exc) from exc
        connection.live = self._live
        self._live.add(connection)
        return connection

    async def close(self) -> None:
        """Close every connection, idle or busy (a busy exchange then fails)."""
        self.closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        for connection in list(self._live):
            connection.abort()
        for _ in range(10):  # bounded: connection_lost runs on the loop's next iterations
            if not self._live:
                break
            await asyncio.sleep(0)


class Exchange(AbstractAsyncContextManager[Http1Response]):
    """One request and its reply; entering sends the request and waits for the reply's head."""

    __slots__ = (
        "body",
        "client",
        "connect_timeout",
        "connection",
        "content_length",
        "decompress",
        "head",
        "method",
        "origin",
        "pool",
        "read_timeout",
        "response",
        "server_hostname",
        "timeout",
        "tls",
    )

    def __init__(
        self,
        client: Http1Client,
        pool: OriginPool,
        origin: Origin,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
        method: str,
        head: bytes,
        body: Body,
    ) -> None:
        self.client, self.pool, self.origin = client, pool, origin
        self.tls, self.server_hostname = tls, server_hostname
        self.method, self.head, self.body = method, head, body
        self.timeout: float | None = None
        self.connect_timeout = 10.0
        self.read_timeout: float | None = None
        self.decompress = True
        # A streamed body's declared length; None: sent chunked.
        self.content_length: int | None = None
        self.connection: Http1Connection | None = None
        self.response: Http1Response | None = None

    async def __aenter__(self) -> Http1Response:
        loop = asyncio.get_running_loop()
        deadline = None
        if self.timeout is not None:
            if self.timeout <= 0:
                raise TimeoutError("the deadline passed before the request was sent")
            deadline = loop.time() + self.timeout
        retried = False
        while True:
            connection = self.pool.acquire()
            reused = connection is not None
            if connection is None:
                bound = self.connect_timeout if deadline is None else min(self.connect_timeout, deadline - loop.time())
                connection = await self.client.connect(self.origin, self.tls, self.server_hostname, bound)
            response = Http1Response(
                connection,
                loop,
                head_only=self.method == "HEAD",
                decompress=self.decompress,
                read_timeout=self.read_timeout,
            )
            connection.begin(response)
            self.connection, self.response = connection, response
            if deadline is not None:
                response.arm_deadline(deadline)
            try:
                await self._send(connection, response)
                await response.wait_head()
                # Sent and answered, so never sent again: a stream held open need not keep them.
                self.head, self.body = b"", None
                return response
            except ConnectionLost:
                self._drop()
                # A kept connection the upstream had closed, before it said a word: safe to send
                # again on a fresh one, once, when sending twice cannot do a thing twice.
                stale = reused and not response.received and not retried
                if stale and self.method in _IDEMPOTENT and not isinstance(self.body, AsyncIterable):
                    retried = True
                    continue
                raise
            except BaseException:
                self._drop()
                raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, response = self.connection, self.response
        if connection is None or response is None:
            return
        self.connection = None
        response.stop_deadline()
        if connection.finish() and not self.client.closed:
            self.pool.release(connection)
        elif response.complete:
            connection.close()
        else:
            connection.abort()  # the rest of the reply is not worth reading: never reuse it

    def _drop(self) -> None:
        if self.connection is not None and self.response is not None:
            self.response.stop_deadline()
            self.connection.abort()
            self.connection.finish()
            self.connection = None

    async def _send(self, connection: Http1Connection, response: Http1Response) -> None:
        body = self.body
        if body is None:
            connection.write(self.head)
            return
        if isinstance(body, bytes | bytearray | memoryview):
            connection.write(self.head + bytes(body))
            return
        # The head waits for the first chunk: a source failing at once sends the upstream nothing.
        pending = self.head
        chunked = self.content_length is None
        sent = 0
        try:
            async for chunk in body:
                if not chunk:
                    continue
                sent += len(chunk)
                if not chunked and sent > self.content_length:  # type: ignore[operator]
                    break  # more than declared: refused below, before the surplus is sent
                data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
                connection.write(pending + data if pending else data)
                pending = b""
                await connection.drain()
        except ConnectionLost:
            if response.status:
                return  # the upstream answered (early, say a 413) and closed: the reply stands
            raise
        except (asyncio.CancelledError, TimeoutError):
            raise
        except Exception as exc:
            raise RequestBodyFailed(f"the request body could not be sent: {type(exc).__name__}: {exc}") from exc
        if not chunked and sent != self.content_length:
            raise RequestBodyFailed(f"the request body was {sent} bytes, not the {self.content_length} declared")
        connection.write(pending + b"0\r\n\r\n" if chunked else pending)


def _target(target: str, url: str, encoded: bool) -> str:
    if not target:
        return "/"
    if target[0] == "?":
        target = "/" + target
    if encoded:
        target = target.partition("#")[0]
        if _CONTROL.search(target):
            raise ValueError(f"the request target {target!r} holds spaces or control characters")
        return target
    if _PLAIN_TARGET.match(target) and "/." not in target:
        return target
    return URL(url).raw_path_qs  # quoted (and dot segments resolved) the way aiohttp sends it


def _head(
    method: str,
    target: str,
    origin: Origin,
    headers: Mapping[str, str],
    body: Body,
    content_length: int | None,
    content_type: str | None,
    default_headers: Mapping[str, str] | None,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if lower in _FRAMING:
            continue
        seen.add(lower)
        lines.append(f"{name}: {value}\r\n")
    if "host" not in seen:
        lines.append(f"host: {origin.host_header}\r\n")
    if content_type is not None and "content-type" not in seen:
        lines.append(f"content-type: {content_type}\r\n")
    if default_headers:
        lines.extend(f"{name}: {value}\r\n" for name, value in default_headers.items() if name.lower() not in seen)
    if body is None:
        if method in _BODY_EXPECTED:
            lines.append("content-length: 0\r\n")
    elif isinstance(body, bytes | bytearray | memoryview):
        lines.append(f"content-length: {len(body)}\r\n")
    elif content_length is not None:
        lines.append(f"content-length: {content_length}\r\n")
    else:
        lines.append("transfer-encoding: chunked\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # One line per entry: a CR or LF inside a name or value would start a header of its own.
    if text.count("\n") != len(lines) or text.count("\r") != len(lines) or " " in target:
        raise ValueError("a header name or value (or the target) holds CR, LF or a space where it may not")
    return text.encode("utf-8")
