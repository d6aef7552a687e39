"""The Python load client, run as its own process (pinned to its own CPU).

Used where wrk/h2load cannot measure (stream timings, held streams, fan-out) and
as the fallback latency client. Prints one JSON document on stdout.

    python -m bench.pyclient latency --url URL --body FILE --concurrency 1 --requests 200
    python -m bench.pyclient latency --grpc HOST:PORT --agent NAME --concurrency 32 --duration 3
    python -m bench.pyclient stream --url URL --body FILE --reps 10
    python -m bench.pyclient hold --url URL --body FILE --streams 1000   # then "close" on stdin
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from bench.payload import request_pb
from bench.stats import percentile

Call = Callable[[], Awaitable[None]]


async def _timed_loop(call: Call, concurrency: int, requests: int, duration: float) -> dict[str, Any]:
    """``concurrency`` workers call back to back until ``requests`` are done or
    ``duration`` has passed (whichever first); latencies in ms."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal errors
        while len(latencies) + errors < requests and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                await call()
            except (TimeoutError, aiohttp.ClientError, grpc.aio.AioRpcError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "ok": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": sum(latencies) / len(latencies) if latencies else 0.0,
    }


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    limit = args.requests
    if args.grpc:
        async with grpc.aio.insecure_channel(args.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)  # type: ignore[no-untyped-call]
            message = request_pb(args.agent)

            async def call_grpc() -> None:
                await stub.Invoke(message, timeout=10)

            for _ in range(args.warmup):
                await call_grpc()
            return {**await _timed_loop(call_grpc, args.concurrency, limit, args.duration), "warmup": args.warmup}
    body = args.body_bytes
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call_http() -> None:
            async with session.post(args.url, data=body, headers={"content-type": "application/json"}) as r:
                await r.read()
                if r.status != 200:
                    raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)

        for _ in range(args.warmup):
            await call_http()
        return {**await _timed_loop(call_http, args.concurrency, limit, args.duration), "warmup": args.warmup}


async def stream(args: argparse.Namespace) -> dict[str, Any]:
    """Sequential streams: time to the first chunk and to the end, in ms."""
    ttfb: list[float] = []
    total: list[float] = []
    chunks: list[int] = []
    seen = 0  # every event, the warm-up stream's too (a proxy's CPU counts them all)
    if args.grpc:
        async with grpc.aio.insecure_channel(args.grpc) as channel:
            stub = pb_grpc.AgentGatewayServiceStub(channel)  # type: ignore[no-untyped-call]
            message = request_pb(args.agent)
            for rep in range(args.reps + 1):
                t0 = time.perf_counter()
                first, count = 0.0, 0
                async for item in stub.InvokeStream(message, timeout=30):
                    if item.HasField("event"):
                        count += 1
                        first = first or time.perf_counter() - t0
                seen += count
                if rep:  # the first one warms the connection
                    ttfb.append(first * 1000)
                    total.append((time.perf_counter() - t0) * 1000)
                    chunks.append(count)
    else:
        body = args.body_bytes
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for rep in range(args.reps + 1):
                t0 = time.perf_counter()
                first, count = 0.0, 0
                async with session.post(args.url, data=body, headers={"content-type": "application/json"}) as r:
                    r.raise_for_status()
                    # Each chunk is its own SSE frame; count the data lines of delta events.
                    async for line in r.content:
                        if line.startswith(b"data:") and b'"delta"' in line:
                            count += 1
                            first = first or time.perf_counter() - t0
                seen += count
                if rep:
                    ttfb.append(first * 1000)
                    total.append((time.perf_counter() - t0) * 1000)
                    chunks.append(count)
    return {
        "reps": len(total),
        "chunks_min": min(chunks, default=0),
        "chunks_all": seen,
        "ttfb_p50_ms": percentile(ttfb, 50),
        "total_p50_ms": percentile(total, 50),
    }


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    """End-to-end time of the workflow call (``--url``) and, as the reference, of
    the client itself calling every branch URL (``--branch``) concurrently."""
    body = args.body_bytes
    headers = {"content-type": "application/json"}
    gateway_ms: list[float] = []
    direct_ms: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(url: str) -> None:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                r.raise_for_status()

        for rep in range(args.reps + 1):
            t0 = time.perf_counter()
            await post(args.url)
            t1 = time.perf_counter()
            await asyncio.gather(*(post(url) for url in args.branch))
            t2 = time.perf_counter()
            if rep:
                gateway_ms.append((t1 - t0) * 1000)
                direct_ms.append((t2 - t1) * 1000)
    return {
        "reps": len(gateway_ms),
        "gateway_p50_ms": percentile(gateway_ms, 50),
        "gateway_p99_ms": percentile(gateway_ms, 99),
        "direct_p50_ms": percentile(direct_ms, 50),
        "direct_p99_ms": percentile(direct_ms, 99),
    }


async def hold(args: argparse.Namespace) -> dict[str, Any]:
    """Open ``--streams`` streams, wait until each has its first event, report
    "open", then hold them until "close" arrives on stdin (or the time cap)."""
    body = args.body_bytes
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    opened = failed = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    # Connect in waves so the listen backlog is not flooded (SYNs would be retried after 1 s).
    gate = asyncio.Semaphore(args.connect_parallelism)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        def counted() -> None:
            if opened + failed == args.streams:
                all_open.set()

        async def one() -> None:
            nonlocal opened, failed
            try:
                async with gate:
                    response = await session.post(args.url, data=body, headers={"content-type": "application/json"})
                    if response.status != 200:
                        response.close()
                        raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
                    await response.content.readuntil(b"\n\n")
            except (TimeoutError, aiohttp.ClientError, ValueError):
                failed += 1
                counted()
                return
            opened += 1
            counted()
            try:
                await release.wait()
            finally:
                response.close()

        started = time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(args.streams)]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_open.wait(), args.timeout)
        open_s = time.perf_counter() - started
        print(json.dumps({"event": "open", "opened": opened, "failed": failed, "open_s": open_s}), flush=True)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.timeout)
        release.set()
        await asyncio.wait(tasks, timeout=30)
    return {"event": "closed", "opened": opened, "failed": failed, "open_s": open_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("latency", "stream", "fanout", "hold"):
        sub = modes.add_parser(name)
        sub.add_argument("--url")
        sub.add_argument("--body")
        sub.add_argument("--grpc", help="HOST:PORT of a gRPC AgentGatewayService")
        sub.add_argument("--agent", default="fast")
    lat = modes.choices["latency"]
    lat.add_argument("--concurrency", type=int, default=1)
    lat.add_argument("--requests", type=int, default=1_000_000)
    lat.add_argument("--duration", type=float, default=3.0)
    lat.add_argument("--warmup", type=int, default=20)
    modes.choices["stream"].add_argument("--reps", type=int, default=10)
    fan = modes.choices["fanout"]
    fan.add_argument("--reps", type=int, default=20)
    fan.add_argument("--branch", action="append", default=[])
    held = modes.choices["hold"]
    held.add_argument("--streams", type=int, default=1000)
    held.add_argument("--timeout", type=float, default=120.0)
    held.add_argument("--connect-parallelism", type=int, default=256)
    args = parser.parse_args()
    args.body_bytes = Path(args.body).read_bytes() if args.body else b""
    from bench.agents import raise_nofile_limit

    raise_nofile_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run({"latency": latency, "stream": stream, "fanout": fanout, "hold": hold}[args.mode](args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
