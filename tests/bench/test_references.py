"""The reference proxies relay what they are given, and the CPU accounting the
bench divides by is the process's own. Real servers on loopback, ephemeral ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web

from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from bench.agents import REPLY_TEXT
from bench.payload import request_json, request_pb
from bench.procs import Child, process_tree_cpu_seconds, start_agents, start_reference
from bench.references.bare_http import ClientConnection, UpstreamPool

Upstream = tuple[int, list[tuple[str, bytes]], set[int]]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An echo upstream recording each request (target, body) and each client port it saw."""
    seen: list[tuple[str, bytes]] = []
    peers: set[int] = set()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path_qs, body))
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername")[1])
        return web.Response(body=b"echo:" + body, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], seen, peers
    await runner.cleanup()


@pytest.fixture
async def bare_proxy(upstream: Upstream) -> AsyncIterator[int]:
    pool = UpstreamPool("127.0.0.1", upstream[0])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(pool), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_bare_proxy_relays_body_status_and_target_over_a_keep_alive_pool(
    upstream: Upstream, bare_proxy: int
) -> None:
    _, seen, peers = upstream
    async with aiohttp.ClientSession() as session:

        async def call(i: int) -> tuple[int, bytes]:
            url = f"http://127.0.0.1:{bare_proxy}/invoke/{i}?q={i}"
            async with session.post(url, data=b'{"n": %d}' % i) as r:
                return r.status, await r.read()

        for _ in range(5):
            answers = await asyncio.gather(*(call(i) for i in range(8)))
            assert answers == [(201, b'echo:{"n": %d}' % i) for i in range(8)]
    assert len(seen) == 40
    assert set(seen) == {(f"/invoke/{i}?q={i}", b'{"n": %d}' % i) for i in range(8)}
    # Kept alive: 40 calls, at most 8 at a time, reuse at most 8 upstream connections.
    assert 1 <= len(peers) <= 8


async def test_bare_proxy_answers_pipelined_requests_in_order_and_honours_close(bare_proxy: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", bare_proxy)
    request = b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n%s\r\n%s"
    writer.write(request % (b"a", b"", b"1") + request % (b"b", b"Connection: close\r\n", b"2"))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)  # EOF: the proxy closed after the second
    writer.close()
    first, second = data.index(b"echo:1"), data.index(b"echo:2")
    assert first < second
    assert data.count(b"HTTP/1.1 201") == 2
    assert b"Connection: close" in data[first:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_bare_proxy_answers_502_when_the_upstream_is_down() -> None:
    child, port = start_reference("bare_http", _free_port(), [0])
    with child, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert sock.recv(100).startswith(b"HTTP/1.1 502")


@pytest.fixture(scope="module")
def agents() -> Iterator[tuple[Child, int, int]]:
    child, http_port, grpc_port = start_agents([0])
    yield child, http_port, grpc_port
    child.stop()


def test_aiohttp_proxy_relays_to_the_bench_agent(agents: tuple[Child, int, int]) -> None:
    child, port = start_reference("aiohttp_proxy", agents[1], [0])
    with child:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invoke", data=request_json())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert REPLY_TEXT.encode() in response.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/nope", data=b"{}"), timeout=10)
        missing.value.close()
        assert missing.value.code == 404  # the upstream's status, relayed


@pytest.mark.parametrize("name", ["grpc_proxy", "grpc_threaded_proxy"])
def test_grpc_proxy_forwards_raw_bytes_of_any_unary_method(agents: tuple[Child, int, int], name: str) -> None:
    child, port = start_reference(name, agents[2], [0])
    with child, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.Invoke(request_pb("fast"), timeout=10)
        assert answer.messages[0].parts[0].text == REPLY_TEXT
        # Without a deadline too (as h2load calls): nothing is invented on the way.
        assert stub.Invoke(request_pb("fast")).messages[0].parts[0].text == REPLY_TEXT
        # A method the upstream does not have: the upstream's status comes back through the proxy.
        unknown = channel.unary_unary("/agentgateway.v1.AgentGatewayService/Nope")
        with pytest.raises(grpc.RpcError) as failed:
            unknown(b"", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cpu_accounting_counts_the_process_and_its_descendants() -> None:
    # A parent that idles while its child burns ~0.5 s of CPU: the tree must show it (nginx's worker case).
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    spawn = f"import subprocess, sys, time\nc = subprocess.Popen([sys.executable, '-c', {burn!r}])\nprint(c.pid, flush=True)\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    try:
        for _ in range(100):  # bounded: 5 s
            if process_tree_cpu_seconds(child_pid) >= 0.45:
                break
            time.sleep(0.05)
        assert process_tree_cpu_seconds(parent.pid) >= 0.45
        assert process_tree_cpu_seconds(child_pid) >= 0.45
        # ... while the parent's own share is its start-up only: the tree added the child's.
        own = Path(f"/proc/{parent.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert (int(own[11]) + int(own[12])) / os.sysconf("SC_CLK_TCK") < 0.3
    finally:
        os.kill(child_pid, signal.SIGKILL)
        parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()
