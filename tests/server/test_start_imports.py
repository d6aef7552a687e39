"""What a gateway loads: the optional pieces a configuration does not use stay out of memory.

Redis, NATS, JWT (PyJWT, cryptography), the a2a-sdk, the MCP SDK, jsonschema and
grpcio-reflection cost 1-25 MB of resident memory each; they load where they are used
(a store, a bus, ``security.jwt``, the first A2A gRPC or reflection call, a check), not at
start. Each test runs in a fresh interpreter, so what the rest of the suite imported does
not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Top-level modules (or the piece of one) that the default configuration does not need.
OPTIONAL = (
    "redis",
    "nats",
    "jwt",
    "cryptography",
    "a2a",
    "mcp",
    "jsonschema",
    "grpc_reflection.v1alpha.reflection",
    # Our own MCP front and federation: only with an `mcp.virtual_servers` entry.
    "gateway.federation",
    "gateway.server.mcp",
)


def _run(script: str) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_server_loads_no_optional_piece() -> None:
    script = f"""
import json, sys
import gateway.cli, gateway.server.app
print(json.dumps({{"loaded": [m for m in {OPTIONAL!r} if m in sys.modules]}}))
"""
    assert _run(script) == {"loaded": []}


def test_a_started_gateway_loads_the_a2a_binding_and_reflection_at_their_first_call() -> None:
    """Started with both listeners and an agent, nothing optional is loaded; reflection then
    describes the A2A service (loading its messages), and the A2A binding answers."""
    script = f"""
import asyncio, json, sys
import grpc
from gateway.config import load_config_text
from gateway.server.app import GatewayServer

CONFIG = '''
listeners: {{http: {{address: "127.0.0.1:0"}}, grpc: {{address: "127.0.0.1:0"}}}}
agents: {{echo: {{kind: http, endpoint: "http://127.0.0.1:9"}}}}
'''

def loaded():
    return [m for m in {OPTIONAL!r} if m in sys.modules]

async def main():
    out = {{}}
    async with GatewayServer(load_config_text(CONFIG, "test.yaml")) as server:
        out["started"] = loaded()
        async with grpc.aio.insecure_channel(server.addresses.grpc) as channel:
            # Raw bytes on the wire, so this client loads neither reflection nor a2a-sdk itself.
            call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
            # ServerReflectionRequest{{file_containing_symbol (field 4) = "lf.a2a.v1.A2AService"}}
            symbol = b"lf.a2a.v1.A2AService"
            async def requests():
                yield bytes([0x22, len(symbol)]) + symbol
            answers = [a async for a in call(requests(), timeout=30)]
            # A method only a2a.proto's descriptor names (the answer also echoes the request).
            out["reflected"] = [str(b"SendStreamingMessage" in answers[0])]
            out["after_reflection"] = loaded()
            from a2a.types import a2a_pb2, a2a_pb2_grpc
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            try:
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="echo", id="no-such-task"), timeout=30)
                out["get_task"] = ["answered"]
            except grpc.aio.AioRpcError as exc:
                out["get_task"] = [exc.code().name]
    print(json.dumps(out))

asyncio.run(main())
"""
    result = _run(script)
    assert result["started"] == []
    assert result["reflected"] == ["True"]  # the answer carries a2a.proto
    assert "a2a" in result["after_reflection"]
    assert "grpc_reflection.v1alpha.reflection" in result["after_reflection"]
    assert result["get_task"] == ["NOT_FOUND"]
