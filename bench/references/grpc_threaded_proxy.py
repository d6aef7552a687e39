"""The bare grpcio proxy on grpc's threaded (synchronous) server: the other
well-kept serving path issue 19 asks to weigh against grpc.aio. One generic
handler forwards the raw request bytes of any unary method over one channel,
from a pool of threads.

    python -m bench.references.grpc_threaded_proxy --upstream 127.0.0.1:PORT   # prints "ready port=P"
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from bench.references.serving import add_upstream_argument

# As many threads as the bench's concurrency, so no call waits for a thread.
THREADS = 64
NO_DEADLINE = 365 * 86400.0  # seconds; a remaining time beyond this means the caller set none

Forward = Callable[[bytes, grpc.ServicerContext], bytes]


class ForwardingHandler(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc is untyped
    """Any method, as raw bytes (no (de)serializers on either side), to one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
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

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            # A call without a deadline has an infinite-future one here, whose remaining time,
            # passed on, overflows into an instant DEADLINE_EXCEEDED: pass on real deadlines only.
            remaining = context.time_remaining()
            try:
                reply: bytes = call(request, timeout=remaining if remaining < NO_DEADLINE else None)
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details() or "")
            return reply

        return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_upstream_argument(parser)
    args = parser.parse_args()
    host, port = args.upstream
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=THREADS), options=[("grpc.max_concurrent_streams", 1 << 20)]
        )
        server.add_generic_rpc_handlers((ForwardingHandler(channel),))
        bound = server.add_insecure_port(f"127.0.0.1:{args.port}")
        server.start()
        signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
        print(f"ready port={bound}", flush=True)
        server.wait_for_termination()


if __name__ == "__main__":
    main()
