"""The real `agent-gateway run` process: readiness, SIGTERM drains in-flight calls."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from examples import echo_agent
from tests.conftest import start_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    runner, echo_url = await start_app(echo_agent.build_app())
    http_port, grpc_port = free_port(), free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"listeners:\n  http: {{address: '127.0.0.1:{http_port}'}}\n  grpc: {{address: '127.0.0.1:{grpc_port}'}}\n"
        f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n"
        "server: {drain_timeout: 5s}\n"
        f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b"ready" in ready
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(session.post(
                f"http://127.0.0.1:{http_port}/v1/agents/echo/invoke",
                json={"messages": [{"parts": [{"text": "slow"}]}], "options": {"params": {"delay": 1.0}}},
            ))
            await asyncio.sleep(0.3)  # the call is in flight at the agent
            process.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(slow, 10)
            assert response.status == 200
            assert (await response.json())["messages"][0]["parts"][0]["text"] == "echo: slow"
        code = await asyncio.wait_for(process.wait(), 10)
        assert code == 0
        # After the drain the listener is closed.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", http_port)) != 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()


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
