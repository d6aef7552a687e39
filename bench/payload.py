"""The request every latency and throughput run sends: a ~1 KB InvokeRequest."""

from __future__ import annotations

import json
import struct

from agentgateway.v1 import gateway_pb2 as pb

TARGET_BYTES = 1024


def _text(size: int) -> str:
    return ("benchmark payload " * (size // 18 + 1))[:size]


def request_json(size: int = TARGET_BYTES) -> bytes:
    """InvokeRequest JSON of exactly ``size`` bytes (the text part is padded)."""

    def body(n: int) -> bytes:
        doc = {"messages": [{"role": "ROLE_USER", "parts": [{"text": _text(n)}]}], "context": {"sessionId": "bench"}}
        return json.dumps(doc, separators=(",", ":")).encode()

    overhead = len(body(0))
    return body(max(0, size - overhead))


def request_pb(agent: str, size: int = TARGET_BYTES) -> pb.InvokeRequest:
    text = _text(max(0, size - 40))
    return pb.InvokeRequest(
        agent=agent,
        messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text=text)])],
        context=pb.Context(session_id="bench"),
    )


def grpc_frame(message: pb.InvokeRequest) -> bytes:
    """The gRPC length-prefixed message (uncompressed) for a raw HTTP/2 client such as h2load."""
    data = message.SerializeToString()
    return struct.pack(">?I", False, len(data)) + data
