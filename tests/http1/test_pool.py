"""What the lean client promises beyond aiohttp's behaviour: its pool (reuse, bounds, idle
expiry, never reusing a reply left unread), cancellation, streamed request bodies, a stale
kept connection, interim replies, read timeouts and header injection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from gateway.http1 import ConnectionLost, Http1Client, RequestBodyFailed, ResponseMalformed
from tests.conftest import Starter

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    lean = Http1Client()
    yield lean
    await lean.close()


@pytest.fixture
async def agent(serve_app: Starter) -> tuple[str, list[int], list[str]]:
    """An aiohttp agent that notes the client port of every request and every disconnect."""
    ports: list[int] = []
    gone: list[str] = []

    async def plain(request: web.Request) -> web.Response:
        ports.append(request.transport.get_extra_info("peername")[1] if request.transport else 0)
        return web.Response(body=b"x" * int(request.query.get("size", "100")))

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), headers={"x-te": request.headers.get("transfer-encoding", "")})

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(500):  # bounded: 5 s of ticks
                await response.write(b"tick\n")
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            gone.append("slow")
            raise
        return response

    app = web.Application()
    app.router.add_get("/plain", plain)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    return await serve_app(app), ports, gone


async def test_sequential_requests_share_one_connection(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    url, ports, _ = agent
    for _ in range(5):
        async with client.request("GET", f"{url}/plain", {}) as response:
            assert await response.read() == b"x" * 100
    assert len(set(ports)) == 1 and len(ports) == 5


async def test_a_reply_left_unread_never_goes_back_to_the_pool(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    url, ports, _ = agent
    async with client.request("GET", f"{url}/plain?size=1000000", {}) as response:
        assert response.status == 200  # the body is not read
    async with client.request("GET", f"{url}/plain", {}) as response:
        await response.read()
    assert len(set(ports)) == 2


async def test_idle_connections_expire(agent: tuple[str, list[int], list[str]]) -> None:
    url, ports, _ = agent
    client = Http1Client(idle_expiry=0.1)
    try:
        async with client.request("GET", f"{url}/plain", {}) as response:
            await response.read()
        assert len(client._live) == 1
        for _ in range(50):  # bounded: the sweep runs 0.1 s after the release
            if not client._live:
                break
            await asyncio.sleep(0.02)
        assert not client._live, "the idle connection outlived its expiry"
        async with client.request("GET", f"{url}/plain", {}) as response:
            await response.read()
        assert len(set(ports)) == 2
    finally:
        await client.close()


async def test_the_pool_keeps_at_most_its_bound_idle(agent: tuple[str, list[int], list[str]]) -> None:
    url, ports, _ = agent
    client = Http1Client(max_idle_per_origin=2)
    try:

        async def one() -> None:
            async with client.request("GET", f"{url}/plain", {}) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(6)))
        await asyncio.sleep(0.05)
        assert len(set(ports)) == 6
        assert len(client._live) == 2  # the other four were closed on release
    finally:
        await client.close()


async def test_cancelling_a_reader_closes_its_connection(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    url, _, gone = agent
    first = asyncio.Event()

    async def read_forever() -> None:
        async with client.request("GET", f"{url}/slow", {}) as response:
            async for _ in response.iter_any():
                first.set()

    task = asyncio.create_task(read_forever())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # bounded: the agent notices within a tick or two
        if gone:
            break
        await asyncio.sleep(0.02)
    assert gone == ["slow"]
    assert not client._live


async def _pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def test_streamed_bodies_chunked_or_with_their_length(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    url, _, _ = agent
    async with client.request("POST", f"{url}/echo", {}, _pieces(b"ab", b"", b"cd" * 40000)) as response:
        assert (await response.read(), response.headers["x-te"]) == (b"ab" + b"cd" * 40000, "chunked")
    async with client.request("POST", f"{url}/echo", {}, _pieces(b"ab", b"cd"), content_length=4) as response:
        assert (await response.read(), response.headers["x-te"]) == (b"abcd", "")


async def test_a_body_shorter_than_declared_or_broken_fails_to_send(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    url, _, _ = agent
    with pytest.raises(RequestBodyFailed, match="not the 10 declared"):
        async with client.request("POST", f"{url}/echo", {}, _pieces(b"ab"), content_length=10):
            pass

    with pytest.raises(RequestBodyFailed, match="not the 4 declared"):
        async with client.request("POST", f"{url}/echo", {}, _pieces(b"abc", b"defgh"), content_length=4):
            pass

    async def broken() -> AsyncIterator[bytes]:
        yield b"ab"
        raise OSError("the caller went away")

    with pytest.raises(RequestBodyFailed, match="the caller went away"):
        async with client.request("POST", f"{url}/echo", {}, broken()):
            pass


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A server writing exactly the bytes ``handler`` writes; its connections end with it."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_a_kept_connection_closed_by_the_upstream_is_retried_only_when_idempotent(
    client: Http1Client, method: str, retried: bool
) -> None:
    """The upstream answers the first request of each connection and closes on the second
    without a word: the race of a keep-alive timeout."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(Exception):
            await _read_head(reader)
            writer.write(OK)
            await writer.drain()
            await _read_head(reader)
        writer.close()

    async with raw_server(handler) as url:
        async with client.request(method, f"{url}/", {}) as response:
            assert await response.read() == b"ok"
        if retried:
            async with client.request(method, f"{url}/", {}) as response:
                assert await response.read() == b"ok"
            assert connections == 2
        else:
            with pytest.raises(ConnectionLost):
                async with client.request(method, f"{url}/", {}):
                    pass


async def test_interim_replies_are_skipped(client: Http1Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK)
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url, client.request("GET", f"{url}/", {}) as response:
        assert (response.status, await response.read()) == (200, b"ok")


async def test_an_upgrade_is_refused(client: Http1Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    async with raw_server(handler) as url:
        with pytest.raises(ResponseMalformed, match="switched protocols"):
            async with client.request("GET", f"{url}/", {}):
                pass


async def test_a_read_timeout_bounds_each_wait(client: Http1Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    async with raw_server(handler) as url:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with client.request("GET", f"{url}/", {}, read_timeout=0.2) as response:
            with pytest.raises(TimeoutError):
                await response.read()
        assert loop.time() - started < 1.5


async def test_header_injection_is_refused(client: Http1Client) -> None:
    with pytest.raises(ValueError, match="CR, LF"):
        client.request("GET", "http://127.0.0.1:9/", {"x-a": "1\r\nx-b: 2"})
    with pytest.raises(ValueError, match="CR, LF"):
        client.request("GET", "http://127.0.0.1:9/", {"x-a\nb": "1"})


async def test_a_slow_reader_pauses_the_socket(client: Http1Client, agent: tuple[str, list[int], list[str]]) -> None:
    """8 MB the reader does not read: what is buffered stays near the high-water mark."""
    from gateway.http1.response import HIGH_WATER

    url, _, _ = agent
    async with client.request("GET", f"{url}/plain?size=8000000", {}) as response:
        await asyncio.sleep(0.3)
        buffered = sum(map(len, response._chunks))
        assert buffered < HIGH_WATER + 512 * 1024
        assert len(await response.read()) == 8_000_000


async def test_an_exchange_ending_after_the_client_closed_leaves_nothing_open(
    agent: tuple[str, list[int], list[str]],
) -> None:
    url, _, _ = agent
    client = Http1Client()
    async with client.request("GET", f"{url}/plain", {}) as response:
        body = await response.read()
        await client.close()  # a stop while a reply is being handled
    assert body == b"x" * 100
    await asyncio.sleep(0.05)
    assert not client._live and not client._pools


async def test_an_open_reply_keeps_neither_the_request_nor_the_raw_header_list(
    client: Http1Client, agent: tuple[str, list[int], list[str]]
) -> None:
    """A stream held open keeps only what reading it needs (the request is never resent
    once answered): per open stream, memory is the goal."""
    url, _, _ = agent
    exchange = client.request("POST", f"{url}/echo", {"x-a": "1"}, b"y" * 4096)
    assert exchange.head and exchange.body
    async with exchange as response:
        assert (exchange.head, exchange.body) == (b"", None)
        assert exchange.connection is not None and exchange.connection._fields == []
        assert response.headers["content-length"] == "4096"
        assert await response.read() == b"y" * 4096
