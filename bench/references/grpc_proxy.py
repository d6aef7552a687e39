"""The bare grpc.aio proxy: one generic handler takes every unary method and
forwards its request bytes, unparsed, over one channel to the upstream, and the
reply bytes back. No features: grpc.aio's own cost of a proxied unary call.

    python -m bench.references.grpc_proxy --upstream 127.0.0.1:PORT   # prints "ready port=P"
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bench.references.serving import add_upstream_argument, run_forever

Forward = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


class ForwardingHandler(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc is untyped
    """Any method, as raw bytes (no (de)serializers on either side), to one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.handlers: dict[str, Any] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method: str = handler_call_details.method
        handler = self.handlers.get(method)
        if handler is None:
            handler = self.handlers[method] = grpc.unary_unary_rpc_method_handler(self._forward(method))
        return handler

    def _forward(self, method: str) -> Forward:
        call = self.channel.unary_unary(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                reply: bytes = await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            return reply

        return forward


async def serve(upstream: tuple[str, int], port: int) -> None:
    async with grpc.aio.insecure_channel(f"{upstream[0]}:{upstream[1]}") as channel:
        server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 1 << 20)])
        server.add_generic_rpc_handlers((ForwardingHandler(channel),))
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"ready port={bound}", flush=True)
        try:
            await server.wait_for_termination()
        finally:
            await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_upstream_argument(parser)
    args = parser.parse_args()
    run_forever(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
