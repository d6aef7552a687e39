"""Fast upstream agents for the benchmarks: one process serving the gateway's
``http`` adapter protocol (aiohttp) and its ``grpc`` protocol (grpc.aio).

HTTP routes (paths carry the parameters, so a gateway agent selects its
behaviour with ``invoke_path``/``stream_path`` alone):

* ``POST /invoke``: reads the body, answers a constant ~1 KB InvokeResponse.
* ``POST /sleep/{ms}``: the same after sleeping ``ms`` milliseconds.
* ``POST /stream/{chunks}/{delay_ms}``: SSE of ``chunks`` delta events, each after ``delay_ms``.
* ``POST /burst/{events}``: SSE of ``events`` delta events written back to back.
* ``POST /hold``: SSE that sends one event, then holds the stream open until the
  client goes away (at most ``--hold-max`` seconds).

gRPC (``agentgateway.v1.AgentGatewayService``): ``Invoke`` answers the same constant;
``InvokeStream`` streams 20 chunks 10 ms apart for agent ``stream`` (or
``stream/{chunks}/{delay_ms}``) and holds after one event for agent ``hold``.

    python -m bench.agents --http-port 0 --grpc-port 0   # prints "ready http=P grpc=Q"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc

REPLY_TEXT = "x" * 900
REPLY = json.dumps({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": REPLY_TEXT}]}]}).encode()
REPLY_PB = pb.InvokeResponse(messages=[pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(text=REPLY_TEXT)])])


def _chunk(i: int) -> bytes:
    event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": f"chunk {i} "}]}}
    return f"data: {json.dumps(event)}\n\n".encode()


async def invoke(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=REPLY, content_type="application/json")


async def sleep_then_invoke(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(body=REPLY, content_type="application/json")


async def _sse(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-store"})
    await response.prepare(request)
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    chunks, delay = int(request.match_info["chunks"]), int(request.match_info["delay_ms"]) / 1000
    response = await _sse(request)
    for i in range(chunks):
        # Every chunk, the first too, follows the delay: a buffering proxy would
        # then show a first-chunk time near the total.
        await asyncio.sleep(delay)
        await response.write(_chunk(i))
    await response.write_eof()
    return response


async def burst(request: web.Request) -> web.StreamResponse:
    response = await _sse(request)
    for i in range(int(request.match_info["events"])):
        await response.write(_chunk(i))
    await response.write_eof()
    return response


async def hold(request: web.Request) -> web.StreamResponse:
    response = await _sse(request)
    await response.write(_chunk(0))
    # Returns when the client disconnects (the handler is cancelled) or at the cap.
    await asyncio.sleep(request.app[HOLD_MAX])
    await response.write_eof()
    return response


HOLD_MAX = web.AppKey("hold_max", float)


def build_http_app(hold_max: float) -> web.Application:
    app = web.Application()
    app[HOLD_MAX] = hold_max
    app.router.add_post("/invoke", invoke)
    app.router.add_post("/sleep/{ms:\\d+}", sleep_then_invoke)
    app.router.add_post("/stream/{chunks:\\d+}/{delay_ms:\\d+}", stream)
    app.router.add_post("/burst/{events:\\d+}", burst)
    app.router.add_post("/hold", hold)
    return app


class BenchAgent(pb_grpc.AgentGatewayServiceServicer):
    """The gRPC twin of the HTTP routes above."""

    def __init__(self, hold_max: float) -> None:
        self.hold_max = hold_max

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        return REPLY_PB

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        name, *params = request.agent.split("/")
        if name == "hold":
            yield _event_pb(0)
            await asyncio.sleep(self.hold_max)
            return
        chunks, delay_ms = (int(params[0]), int(params[1])) if len(params) == 2 else (20, 10)
        for i in range(chunks):
            await asyncio.sleep(delay_ms / 1000)
            yield _event_pb(i)


def _event_pb(i: int) -> pb.InvokeStreamResponse:
    message = pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(text=f"chunk {i} ")])
    return pb.InvokeStreamResponse(event=pb.Event(type="delta", message=message, sequence=i + 1))


def raise_nofile_limit() -> int:
    """Raise the open-file soft limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(http_port: int, grpc_port: int, hold_max: float) -> None:
    runner = web.AppRunner(build_http_app(hold_max), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", http_port, backlog=4096)
    await site.start()
    bound_http = runner.addresses[0][1]
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 1 << 20)])
    pb_grpc.add_AgentGatewayServiceServicer_to_server(BenchAgent(hold_max), server)  # type: ignore[no-untyped-call]
    bound_grpc = server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    print(f"ready http={bound_http} grpc={bound_grpc}", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(0)
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--hold-max", type=float, default=120.0, help="longest a /hold stream stays open (s)")
    args = parser.parse_args()
    raise_nofile_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.http_port, args.grpc_port, args.hold_max))


if __name__ == "__main__":
    main()
