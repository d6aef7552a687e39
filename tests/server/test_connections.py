"""Connection limits of the listeners, tried with raw sockets as a slow or greedy client would:
a header-read timeout, a keep-alive idle timeout, a bound on open connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import GatewayFactory

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"


def listeners(http: str = "", grpc_extra: str = "") -> str:
    return (
        "listeners:\n"
        f"  http: {{address: '127.0.0.1:0'{http}}}\n"
        f"  grpc: {{address: '127.0.0.1:0'{grpc_extra}}}\n"
        "agents: {}\n"
    )


@contextlib.asynccontextmanager
async def connection(address: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.monotonic()
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(4096), limit):
            data += chunk
    return time.monotonic() - started, data


async def test_a_slowloris_client_is_closed_after_the_header_timeout(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(listeners(", header_timeout: 1s, idle_timeout: 30s")) as gw:
        async with connection(gw.addresses.http or "") as (reader, writer):
            started = time.monotonic()

            async def trickle() -> None:
                # One header byte every 0.2 s: it would take 8 s to finish the request.
                for byte in REQUEST:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)

            sender = asyncio.create_task(trickle())
            try:
                _, data = await closed_after(reader, 10)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await sender
            elapsed = time.monotonic() - started
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert 0.8 <= elapsed < 4.0, elapsed

        # A normal client is served as before; so is one slower than the timeout in all but its headers.
        async with connection(gw.addresses.http or "") as (reader, writer):
            writer.write(REQUEST)
            assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")


async def test_the_header_timeout_does_not_cut_a_long_call(gateway_factory: GatewayFactory, echo_url: str) -> None:
    text = listeners(", header_timeout: 0.5s, idle_timeout: 30s").replace(
        "agents: {}\n", f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
    )
    body = b'{"messages": [{"parts": [{"text": "slow"}]}], "options": {"params": {"delay": 1.5}}}'
    request = (
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with gateway_factory(text) as gw, connection(gw.addresses.http or "") as (reader, writer):
        for _ in range(2):  # and again on the kept-alive connection
            writer.write(request)
            response = await read_response(reader)
            assert response.startswith(b"HTTP/1.1 200 "), response
            assert b"echo: slow" in response


async def test_an_idle_keep_alive_connection_is_closed(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(listeners(", header_timeout: 10s, idle_timeout: 1s")) as gw:
        async with connection(gw.addresses.http or "") as (reader, writer):
            writer.write(REQUEST)
            assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
            elapsed, data = await closed_after(reader, 10)
        assert data == b""
        assert 0.5 <= elapsed < 4.0, elapsed


async def test_connections_over_the_bound_are_refused_while_the_others_are_served(
    gateway_factory: GatewayFactory,
) -> None:
    async with gateway_factory(listeners(", max_connections: 3, header_timeout: 30s, idle_timeout: 30s")) as gw:
        address = gw.addresses.http or ""
        async with contextlib.AsyncExitStack() as stack:
            held = [await stack.enter_async_context(connection(address)) for _ in range(3)]
            for reader, writer in held:  # all three are open and served
                writer.write(REQUEST)
                assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
            async with connection(address) as (reader, _):
                _, data = await closed_after(reader, 5)
            assert data.startswith(b"HTTP/1.1 503 "), data
            assert b'"code": "UNAVAILABLE"' in data
            # The connections within the bound are served on.
            reader, writer = held[0]
            writer.write(REQUEST)
            assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
            held[1][1].close()
            await asyncio.sleep(0.2)
            # A closed connection frees its place.
            async with connection(address) as (reader, writer):
                writer.write(REQUEST)
                assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")


async def test_grpc_connections_idle_too_long_are_sent_away(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(listeners(grpc_extra=", max_connection_idle: 0.5s")) as gw:
        states: list[grpc.ChannelConnectivity] = []
        async with grpc.aio.insecure_channel(gw.addresses.grpc or "") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest())
            assert channel.get_state() == grpc.ChannelConnectivity.READY
            for _ in range(40):
                await asyncio.sleep(0.1)
                states.append(channel.get_state())
                if states[-1] == grpc.ChannelConnectivity.IDLE:
                    break
            assert states[-1] == grpc.ChannelConnectivity.IDLE, states
            # The client reconnects on its next call.
            await stub.Check(health_pb2.HealthCheckRequest())


async def test_grpc_handshake_timeout_closes_a_silent_connection(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(listeners(grpc_extra=", handshake_timeout: 1s")) as gw:
        async with connection(gw.addresses.grpc or "") as (reader, writer):
            writer.write(b"PRI * HTTP/2.0\r\n")  # half a preface, then silence
            elapsed, _ = await closed_after(reader, 10)
        assert elapsed < 4.0, elapsed


async def test_grpc_connections_over_the_bound_are_refused(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(listeners(grpc_extra=", max_connections: 2")) as gw:
        address = gw.addresses.grpc or ""
        request = health_pb2.HealthCheckRequest()
        # Separate channels (no shared subchannel): one connection each.
        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(3)
        ]
        try:
            for channel in channels[:2]:
                await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
            try:
                await health_pb2_grpc.HealthStub(channels[2]).Check(request, timeout=2)
                refused = None
            except grpc.aio.AioRpcError as exc:
                refused = exc.code()
            assert refused in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), refused
            # The connections within the bound are served on.
            await health_pb2_grpc.HealthStub(channels[0]).Check(request, timeout=5)
        finally:
            for channel in channels:
                await channel.close()
