"""`make run`: start the example agents and the gateway, print how to call them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BANNER = """
agent-gateway is running with examples/gateway.yaml:
  HTTP  http://127.0.0.1:8080      gRPC  127.0.0.1:50051      admin  http://127.0.0.1:9901

Call the echo agent over HTTP (it echoes the context headers the gateway injected):
  curl -s http://127.0.0.1:8080/v1/agents/echo/invoke \\
    -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' \\
    -d '{"messages":[{"role":"ROLE_USER","parts":[{"text":"hello"}]}],"context":{"sessionId":"s1"}}'

Stream it (server-sent events):
  curl -sN http://127.0.0.1:8080/v1/agents/echo/stream -d '{"messages":[{"parts":[{"text":"hello there"}]}]}'

The same agent behind gRPC, through the canary route "assistant", and the agent list:
  curl -s http://127.0.0.1:8080/v1/agents/echo-grpc/invoke -d '{"messages":[{"parts":[{"text":"hi"}]}]}'
  curl -s http://127.0.0.1:8080/v1/agents/assistant/invoke -d '{"messages":[{"parts":[{"text":"hi"}]}]}'
  curl -s http://127.0.0.1:8080/v1/agents

From Python, over gRPC, with the client an agent uses to call other agents:
  .venv/bin/python -m examples.call_echo

MCP: a stdio tool server and the echo agent as tools, merged at /mcp/tools (any MCP client):
  curl -s http://127.0.0.1:8080/mcp/tools -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' \
    -H 'mcp-method: tools/call' -H 'mcp-name: agent_echo' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"agent_echo","arguments":{"message":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

Operate it: readiness, Prometheus metrics, live reload after editing examples/gateway.yaml:
  curl -s http://127.0.0.1:9901/readyz
  curl -s http://127.0.0.1:9901/metrics | grep agw_requests_total
  curl -s -X POST http://127.0.0.1:9901/reload

Press Ctrl-C to stop.
"""  # noqa: E501 - a copy-pasteable command line


def main() -> int:
    python = sys.executable
    children = [
        subprocess.Popen([python, "-m", "examples.echo_agent", "--port", "9101"]),
        subprocess.Popen([python, "-m", "examples.grpc_echo_agent", "--port", "9102"]),
    ]
    gateway = subprocess.Popen(
        [python, "-m", "gateway", "run", "-c", str(HERE / "gateway.yaml")],
        stdout=subprocess.PIPE, text=True,
    )
    children.append(gateway)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        assert gateway.stdout is not None
        line = gateway.stdout.readline()
        if "ready" not in line:
            print("the gateway did not start; see the messages above", file=sys.stderr)
            return 1
        time.sleep(0.5)
        if any(c.poll() is not None for c in children):
            print("an example agent failed to start (are ports 9101/9102 free?)", file=sys.stderr)
            return 1
        print(line.strip())
        print(BANNER)
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
