"""An agent that serves the gateway's own proto (the `grpc` adapter's upstream).

It echoes the last user message plus the context metadata it received:

    python -m examples.grpc_echo_agent --port 9102
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import grpc

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc

CONTEXT_KEYS = ("traceparent", "tracestate", "baggage", "x-session-id", "x-thread-id", "x-user-id", "x-request-id")


def _last_text(request: pb.InvokeRequest) -> str:
    for message in reversed(request.messages):
        texts = [p.text for p in message.parts if p.WhichOneof("kind") == "text"]
        if texts:
            return "".join(texts)
    return ""


def _seen(context: grpc.aio.ServicerContext) -> dict[str, str]:
    metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    seen = {k: metadata[k] for k in CONTEXT_KEYS if k in metadata}
    remaining = context.time_remaining()
    if remaining is not None and remaining < 1e8:
        seen["grpc-timeout-remaining-ms"] = str(int(remaining * 1000))
    return seen


def _data_part(values: dict[str, str]) -> pb.Part:
    # Structured data travels as JSON text (`data_json`), which keeps integers exact.
    return pb.Part(data_json=json.dumps({"headers": values}))


class EchoAgent(pb_grpc.AgentGatewayServiceServicer):
    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        reply = pb.Message(
            role=pb.ROLE_AGENT, parts=[pb.Part(text=f"echo: {_last_text(request)}"), _data_part(_seen(context))]
        )
        return pb.InvokeResponse(agent=request.agent, messages=[reply])

    async def InvokeStream(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvokeStreamResponse]:
        words = f"echo: {_last_text(request)}".split(" ")
        for i, word in enumerate(words, 1):
            message = pb.Message(role=pb.ROLE_AGENT, parts=[pb.Part(text=word + " ")])
            yield pb.InvokeStreamResponse(event=pb.Event(type="delta", message=message, sequence=i))
        status = pb.Event(type="status", data_json=json.dumps({"headers": _seen(context)}), sequence=len(words) + 1)
        yield pb.InvokeStreamResponse(event=status)

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        return pb.ListAgentsResponse(agents=[pb.AgentInfo(name="echo", kind="grpc", streaming=True)])


async def start(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    pb_grpc.add_AgentGatewayServiceServicer_to_server(EchoAgent(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def _main(host: str, port: int) -> None:
    server, _ = await start(host, port)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102)
    args = parser.parse_args()
    try:
        asyncio.run(_main(args.host, args.port))
    except RuntimeError as exc:  # grpc's "Failed to bind": one line, like the gateway's own
        raise SystemExit(f"gRPC echo agent: cannot listen on {args.host}:{args.port}: {exc}") from None


if __name__ == "__main__":
    main()
