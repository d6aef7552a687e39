"""The real `agent-gateway run` process: readiness, SIGTERM drain, start-up failures.

Every gateway here is a subprocess on ephemeral ports (port 0); the addresses
it bound are read back from its ready line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from examples import echo_agent
from tests.conftest import start_app

READY = re.compile(rb"ready: http=(\S+) grpc=(\S+) admin=(\S+)")


@dataclass
class RunningGateway:
    process: asyncio.subprocess.Process
    http: str
    grpc: str

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.read(), 10)).decode()


async def start_gateway(config: Path) -> RunningGateway:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    match = READY.search(line)
    if match is None:
        process.kill()
        _, err = await process.communicate()
        raise AssertionError(f"no ready line: {line!r}\n{err.decode()}")
    return RunningGateway(process, match.group(1).decode(), match.group(2).decode())


@contextlib.asynccontextmanager
async def gateway_process(config: Path) -> AsyncIterator[RunningGateway]:
    gateway = await start_gateway(config)
    try:
        yield gateway
    finally:
        if gateway.process.returncode is None:
            gateway.process.kill()
            await gateway.process.wait()


def write_config(tmp_path: Path, agents: str, extra: str = "") -> Path:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "listeners:\n  http: {address: '127.0.0.1:0'}\n  grpc: {address: '127.0.0.1:0'}\n"
        "admin: {address: '127.0.0.1:0'}\n"
        f"agents:\n{agents}{extra}"
        f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
    )
    return config


async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    runner, echo_url = await start_app(echo_agent.build_app())
    config = write_config(tmp_path, f"  echo:\n    kind: http\n    endpoint: {echo_url}\n", "server: {drain_timeout: 5s}\n")
    try:
        async with gateway_process(config) as gateway, aiohttp.ClientSession() as session:
            slow = asyncio.create_task(session.post(
                f"http://{gateway.http}/v1/agents/echo/invoke",
                json={"messages": [{"parts": [{"text": "slow"}]}], "options": {"params": {"delay": 1.0}}},
            ))
            await asyncio.sleep(0.3)  # the call is in flight at the agent
            gateway.process.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(slow, 10)
            assert response.status == 200
            assert (await response.json())["messages"][0]["parts"][0]["text"] == "echo: slow"
            code = await asyncio.wait_for(gateway.process.wait(), 10)
            assert code == 0
            # After the drain the listener is closed.
            host, _, port = gateway.http.rpartition(":")
            with socket.socket() as sock:
                assert sock.connect_ex((host, int(port))) != 0
    finally:
        await runner.cleanup()


# --- the drain deadline: every call still running gets an answer --------------------------------


class HangingAgent:
    """An HTTP agent that never finishes: invokes hang, streams send one event and hang,
    the passthrough path hangs before its headers. ``arrived`` counts the calls in flight."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[str] = asyncio.Queue()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/invoke", self.invoke)
        app.router.add_post("/stream", self.stream)
        app.router.add_get("/raw/hang", self.invoke)
        return app

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        await self.arrived.put(request.path)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": "thinking"}]}}
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await self.arrived.put(request.path)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def start_hanging(agent: HangingAgent) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(agent.app(), access_log=None, shutdown_timeout=0.5)  # its calls never end
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _http_invoke(session: aiohttp.ClientSession, base: str) -> tuple[int, str, dict[str, object]]:
    async with session.post(f"{base}/v1/agents/slow/invoke", json={"messages": [{"parts": [{"text": "hi"}]}]}) as r:
        return r.status, r.headers.get("x-request-id", ""), await r.json()


async def _http_stream(session: aiohttp.ClientSession, base: str, started: asyncio.Event) -> tuple[int, str]:
    async with session.post(f"{base}/v1/agents/slow/stream", json={"messages": [{"parts": [{"text": "hi"}]}]}) as r:
        body = b""
        async for chunk in r.content.iter_any():
            body += chunk
            if b"event: event" in body:
                started.set()
        return r.status, body.decode()


async def _grpc_unary(stub: pb_grpc.AgentGatewayServiceStub) -> grpc.aio.AioRpcError:
    request = pb.InvokeRequest(agent="slow", messages=[pb.Message(parts=[pb.Part(text="hi")])])
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Invoke(request)
    return failure.value


async def _grpc_stream(stub: pb_grpc.AgentGatewayServiceStub, started: asyncio.Event) -> tuple[int, grpc.aio.AioRpcError]:
    request = pb.InvokeRequest(agent="slow", messages=[pb.Message(parts=[pb.Part(text="hi")])])
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in stub.InvokeStream(request):
            received += 1
            started.set()
    return received, failure.value


async def _a2a_stream(session: aiohttp.ClientSession, base: str, started: asyncio.Event) -> tuple[int, str]:
    envelope = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
    async with session.post(f"{base}/a2a/slow", json=envelope, headers={"a2a-version": "1.0"}) as r:
        body = b""
        async for chunk in r.content.iter_any():
            body += chunk
            if b"data:" in body:
                started.set()
        return r.status, body.decode()


async def _passthrough(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, object]]:
    async with session.get(f"{base}/v1/proxy/slow/raw/hang") as r:
        return r.status, await r.json()


async def test_drain_deadline_answers_every_call_still_running(tmp_path: Path) -> None:
    agent = HangingAgent()
    runner, url = await start_hanging(agent)
    drain = 3.0
    config = write_config(tmp_path, f"  slow:\n    kind: http\n    endpoint: {url}\n", f"server: {{drain_timeout: {drain}s}}\n")
    try:
        async with gateway_process(config) as gateway, aiohttp.ClientSession() as session, grpc.aio.insecure_channel(
            gateway.grpc
        ) as channel:
            base = f"http://{gateway.http}"
            stub = pb_grpc.AgentGatewayServiceStub(channel)
            http_started, grpc_started, a2a_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
            calls = (
                asyncio.create_task(_http_invoke(session, base)),
                asyncio.create_task(_http_stream(session, base, http_started)),
                asyncio.create_task(_grpc_unary(stub)),
                asyncio.create_task(_grpc_stream(stub, grpc_started)),
                asyncio.create_task(_passthrough(session, base)),
                asyncio.create_task(_a2a_stream(session, base, a2a_started)),
            )
            # Every call has reached the agent, and the streams have relayed their first event.
            arrived = [await asyncio.wait_for(agent.arrived.get(), 10) for _ in calls]
            assert sorted(arrived) == ["/invoke", "/invoke", "/raw/hang", "/stream", "/stream", "/stream"]
            await asyncio.wait_for(http_started.wait(), 10)
            await asyncio.wait_for(grpc_started.wait(), 10)
            await asyncio.wait_for(a2a_started.wait(), 10)

            signalled = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            invoke, streamed, unary, (received, stream_error), proxied, a2a = await asyncio.wait_for(
                asyncio.gather(*calls), drain + 10
            )
            answered = time.monotonic() - signalled
            code = await asyncio.wait_for(gateway.process.wait(), drain + 10)
            exited = time.monotonic() - signalled
            stderr = await gateway.stderr()

        # Calls ran until the deadline, not a moment less; the process ended within a second of it
        # (plus room for a loaded machine).
        assert drain - 0.5 <= answered, answered
        assert exited < drain + 2.0, f"exit {exited:.2f}s after SIGTERM, drain_timeout {drain}s"
        assert code == 0

        status, request_id, body = invoke
        assert status == 503, body
        assert body["error"]["code"] == "UNAVAILABLE"  # type: ignore[index]
        assert request_id and body["error"]["requestId"] == request_id  # type: ignore[index]
        assert "shutting down" in body["error"]["message"]  # type: ignore[index]

        status, text = streamed
        assert status == 200
        assert "event: event" in text
        last = text.strip().split("\n\n")[-1]
        assert last.startswith("event: error"), text
        assert json.loads(last.partition("data: ")[2])["error"]["code"] == "UNAVAILABLE"

        assert unary.code() == grpc.StatusCode.UNAVAILABLE, unary
        assert received == 1
        assert stream_error.code() == grpc.StatusCode.UNAVAILABLE, stream_error

        status, proxied_body = proxied
        assert status == 503
        assert proxied_body["error"]["code"] == "UNAVAILABLE"  # type: ignore[index]

        # The A2A stream ends with an error frame of its own, never cut.
        status, text = a2a
        assert status == 200
        frames = [json.loads(f.partition("data: ")[2]) for f in text.strip().split("\n\n") if "data: " in f]
        assert frames and all(f["id"] == 7 for f in frames)
        assert "shutting down" in frames[-1]["error"]["message"], frames[-1]

        assert "Traceback" not in stderr, stderr
    finally:
        await runner.cleanup()


# --- start-up failures: one line, no traceback ----------------------------------------------------


async def _run_to_exit(config: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_second_gateway_on_a_grpc_port_in_use_fails_at_start(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    async with gateway_process(write_config(first_dir, "  {}\n")) as first:
        config = write_config(second_dir, "  {}\n")
        config.write_text(config.read_text().replace("grpc: {address: '127.0.0.1:0'}", f"grpc: {{address: '{first.grpc}'}}"))
        code, stdout, stderr = await _run_to_exit(config)
        assert code != 0
        assert "ready" not in stdout
        assert stderr.splitlines() == [f"agent-gateway: cannot listen on {first.grpc}: address already in use"]
        # The first one still has the port to itself.
        async with grpc.aio.insecure_channel(first.grpc) as channel:
            await pb_grpc.AgentGatewayServiceStub(channel).ListAgents(pb.ListAgentsRequest(), timeout=5)


async def test_a_busy_http_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        config = write_config(tmp_path, "  {}\n")
        config.write_text(config.read_text().replace("http: {address: '127.0.0.1:0'}", f"http: {{address: '{address}'}}"))
        code, stdout, stderr = await _run_to_exit(config)
    assert code == 1
    assert "ready" not in stdout
    # Nothing else: no traceback, no "Unclosed client session" from sessions left open.
    assert stderr.splitlines() == [f"agent-gateway: cannot listen on {address}: address already in use"]


async def test_run_with_invalid_config_exits_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("agents:\n  a:\n    kind: http\n    endpoint: nowhere\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert f"{config}:4: agents.a.endpoint:" in stderr.decode()
    assert b"Traceback" not in stderr
