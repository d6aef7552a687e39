"""The bare Python HTTP proxy: uvloop, httptools' parsers on asyncio protocols,
and a keep-alive pool of upstream connections. No features: an HTTP/1.1 relay of
a request body to one fixed upstream (the request target kept), whose answer is
sent back with a Content-Length. The floor under any Python HTTP proxy.

    python -m bench.references.bare_http --upstream 127.0.0.1:PORT   # prints "ready port=P"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from typing import cast

import httptools

from bench.references.serving import add_upstream_argument, run_forever


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the upstream carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.keep_alive = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("the upstream closed the connection"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        # Asked here: once the message completes, the parser has reset for the next one.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.answer is not None
        self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []

    def exchange(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer


class UpstreamPool:
    """Idle keep-alive connections to one upstream, opened on demand."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[UpstreamConnection] = []
        self.host_header = f"Host: {host}:{port}\r\n".encode()

    async def call(self, method: bytes, target: bytes, body: bytes) -> tuple[int, bytes]:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                break
        else:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(UpstreamConnection, self.host, self.port)
        head = b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
            method,
            target,
            self.host_header,
            len(body),
        )
        answer = await connection.exchange(head + body)
        if connection.keep_alive and not connection.closed:
            self.idle.append(connection)
        elif connection.transport is not None:
            connection.transport.close()
        return answer


class ClientConnection(asyncio.Protocol):
    """One inbound connection; requests are answered in order (pipelining safe)."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.target = b""
        self.keep_alive = True
        self.body: list[bytes] = []
        self.queue: collections.deque[tuple[bytes, bytes, bytes, bool]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker is not None:
            self.worker.cancel()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        self.queue.append((method, self.target, b"".join(self.body), self.keep_alive))
        self.target, self.body = b"", []
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self.relay())

    async def relay(self) -> None:
        assert self.transport is not None
        while self.queue:
            method, target, body, keep_alive = self.queue.popleft()
            try:
                status, answer = await self.pool.call(method, target, body)
            except OSError:
                status, answer = 502, b""
            self.transport.write(
                b"HTTP/1.1 %d -\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                % (status, len(answer), b"" if keep_alive else b"Connection: close\r\n", answer)
            )
            if not keep_alive:
                self.transport.close()
                return


async def serve(upstream: tuple[str, int], port: int) -> None:
    pool = UpstreamPool(*upstream)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(pool), "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready port={bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_upstream_argument(parser)
    args = parser.parse_args()
    run_forever(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
