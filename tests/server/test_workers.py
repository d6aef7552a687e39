"""`agent-gateway run --workers 2`: real supervisor and worker processes on loopback.

Calls spread over the workers (each worker's count is on the admin listener's
/workers), a killed worker is started again, SIGTERM drains every worker within
server.drain_timeout, and /metrics adds the workers' counters up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from examples import echo_agent
from tests.conftest import start_app

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers need SO_REUSEPORT (Linux)")

READY = re.compile(rb"ready: http=(\S+) grpc=(\S+) admin=(\S+) workers=(\d+)")
BODY = {"messages": [{"parts": [{"text": "hi"}]}]}


@dataclass
class Fleet:
    process: asyncio.subprocess.Process
    http: str
    grpc: str
    admin: str

    async def workers(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(f"http://{self.admin}/workers") as response:
            assert response.status == 200
            found: list[dict[str, Any]] = (await response.json())["workers"]
            return found

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"http://{self.admin}/metrics") as response:
            assert response.status == 200
            return await response.text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def write_config(tmp_path: Path, echo_url: str, extra: str = "") -> Path:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "listeners:\n  http: {address: '127.0.0.1:0'}\n  grpc: {address: '127.0.0.1:0'}\n"
        "admin: {address: '127.0.0.1:0'}\n"
        f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
        f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
        "telemetry: {tracing: {export: false}}\n" + extra
    )
    return config


@contextlib.asynccontextmanager
async def fleet(config: Path, workers: int = 2) -> AsyncIterator[Fleet]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config), "--workers", str(workers),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    pids: list[int] = []
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        match = READY.search(line)
        if match is None:
            process.kill()
            raise AssertionError(f"no ready line: {line!r}\n{(await stderr).decode()[-3000:]}")
        assert int(match.group(4)) == workers
        running = Fleet(process, *(match.group(i).decode() for i in (1, 2, 3)))
        pids = [w["pid"] for w in await running.workers()]
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        for pid in pids:  # never leave a worker behind, whatever the test did
            with contextlib.suppress(ProcessLookupError):
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        stderr.cancel()


async def _invoke_new_connections(http: str, count: int, params: dict[str, Any] | None = None) -> list[int]:
    """``count`` invokes, each on a connection of its own (the kernel spreads connections, not calls)."""
    body = {**BODY, "options": {"params": params}} if params else BODY
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(f"http://{http}/v1/agents/echo/invoke", json=body) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    runner, url = await start_app(echo_agent.build_app())
    yield url
    await runner.cleanup()


async def test_calls_spread_over_the_workers_on_both_fronts(tmp_path: Path, echo: str) -> None:
    async with fleet(write_config(tmp_path, echo)) as gw:
        assert await _invoke_new_connections(gw.http, 40) == [200] * 40
        workers = await gw.workers()
        assert len({w["pid"] for w in workers}) == 2
        assert gw.process.pid not in {w["pid"] for w in workers}  # the supervisor serves no calls
        http_counts = [w["requests"] for w in workers]
        assert sum(http_counts) == 40
        assert all(n > 0 for n in http_counts), http_counts  # 40 connections on one worker: 2^-39
        for _ in range(20):  # a channel per call: one HTTP/2 connection each
            async with grpc.aio.insecure_channel(gw.grpc) as channel:
                stub = pb_grpc.AgentGatewayServiceStub(channel)  # type: ignore[no-untyped-call]
                answer = await stub.Invoke(pb.InvokeRequest(agent="echo", messages=[pb.Message(parts=[pb.Part(text="x")])]))
                assert answer.messages[0].parts[0].text == "echo: x"
        grpc_counts = [w["requests"] - n for w, n in zip(await gw.workers(), http_counts, strict=True)]
        assert sum(grpc_counts) == 20
        assert all(n > 0 for n in grpc_counts), grpc_counts


async def test_a_killed_worker_is_started_again_and_counts_are_kept(tmp_path: Path, echo: str) -> None:
    async with fleet(write_config(tmp_path, echo)) as gw:
        assert await _invoke_new_connections(gw.http, 20) == [200] * 20
        before = await gw.workers()
        victim = before[0]
        os.kill(victim["pid"], signal.SIGKILL)

        async def replaced() -> dict[str, Any] | None:
            now = (await gw.workers())[0]
            return now if now["serving"] and now["pid"] != victim["pid"] else None

        now = await _until(replaced, 30, "worker 0 started again")
        assert now["restarts"] == 1 and now["lastExitCode"] == -signal.SIGKILL
        assert not _alive(victim["pid"])
        assert (await gw.workers())[1]["pid"] == before[1]["pid"]  # the other worker served on
        assert await _invoke_new_connections(gw.http, 20) == [200] * 20
        # The dead worker's calls still count: the total never goes down.
        total = _sample(await gw.metrics(), "agw_requests_total", agent="echo", outcome="OK")
        assert total == 40
        restarts = _sample(await gw.metrics(), "agw_worker_restarts_total", worker="0")
        assert restarts == 1


async def test_sigterm_drains_every_worker_within_the_drain_timeout(tmp_path: Path, echo: str) -> None:
    config = write_config(tmp_path, echo, "server: {drain_timeout: 3s}\n")
    async with fleet(config) as gw:
        pids = [w["pid"] for w in await gw.workers()]
        # Calls of 2 s finish within the drain; calls of 6 s are answered 503 at its end.
        short = asyncio.create_task(_invoke_new_connections(gw.http, 16, {"delay": 2}))
        long = asyncio.create_task(_invoke_new_connections(gw.http, 16, {"delay": 6}))

        async def both_busy() -> bool:
            busy = [w["inFlight"] for w in await gw.workers()]
            return sum(busy) == 32 and all(n > 0 for n in busy)

        await _until(both_busy, 5, "every call in flight at the agent, on both workers")
        started = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(short, 10) == [200] * 16
        assert await asyncio.wait_for(long, 10) == [503] * 16
        answered = time.monotonic() - started
        assert 3 <= answered < 3 + 0.5 + 1.5, answered  # at the drain deadline, with the answer time
        # 0: every worker exited by itself (the supervisor kills, and exits 1, only 5 s after the drain).
        assert await asyncio.wait_for(gw.process.wait(), 15) == 0
        assert time.monotonic() - started < 3 + 0.5 + 5
        assert not any(_alive(pid) for pid in pids)
        for address in (gw.http, gw.grpc, gw.admin):
            host, _, port = address.rpartition(":")
            with socket.socket() as sock:
                assert sock.connect_ex((host, int(port))) != 0, address


async def test_workers_outlive_no_supervisor(tmp_path: Path, echo: str) -> None:
    """SIGKILL of the supervisor ends its workers too (their stdin pipe closes), after a drain."""
    config = write_config(tmp_path, echo, "server: {drain_timeout: 1s}\n")
    async with fleet(config) as gw:
        pids = [w["pid"] for w in await gw.workers()]
        gw.process.kill()
        await gw.process.wait()

        async def gone() -> bool:
            return not any(_alive(pid) for pid in pids)

        await _until(gone, 15, "the workers exit after their supervisor")


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_metrics_add_up_over_the_workers(tmp_path: Path, echo: str) -> None:
    async with fleet(write_config(tmp_path, echo)) as gw:
        assert await _invoke_new_connections(gw.http, 30) == [200] * 30
        text = await gw.metrics()
        per_worker = [w["requests"] for w in await gw.workers()]
        assert sum(per_worker) == 30 and all(n > 0 for n in per_worker)
        assert _sample(text, "agw_requests_total", agent="echo", outcome="OK") == 30
        assert _sample(text, "agw_request_duration_seconds_count", agent="echo", outcome="OK") == 30
        assert _sample(text, "agw_request_duration_seconds_bucket", agent="echo", outcome="OK", le="+Inf") == 30
        assert _sample(text, "agw_workers") == 2 and _sample(text, "agw_workers_serving") == 2
        # One family per name (no duplicate TYPE lines), as Prometheus requires.
        types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(types) == len(set(types))
        if shutil.which("promtool"):
            argv = ["promtool", "check", "metrics"]
            check = await asyncio.to_thread(subprocess.run, argv, input=text, capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{gw.admin}/readyz") as response:
                ready = await response.json()
                assert response.status == 200, ready
                assert [w["status"] for w in ready["workers"]] == ["ready", "ready"]
            async with session.get(f"http://{gw.admin}/livez") as response:
                assert response.status == 200
                assert (await response.json())["serving"] == 2


async def test_a_worker_that_cannot_listen_fails_the_start(tmp_path: Path, echo: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "gw.yaml"
        config.write_text(
            f"listeners:\n  http: {{address: '127.0.0.1:{port}'}}\n  grpc: null\nadmin: null\n"
            f"agents:\n  echo: {{kind: http, endpoint: '{echo}'}}\n"
            f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\nserver: {{workers: 2}}\n"
        )
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gateway", "run", "-c", str(config)],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in done.stderr


async def test_admin_reaches_every_worker_breakers_readiness_reload_config(tmp_path: Path) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"error": "down"}, status=503)

    failing = web.Application()
    failing.router.add_post("/invoke", down)
    runner, failing_url = await start_app(failing)
    path = tmp_path / "gw.yaml"
    path.write_text(
        "listeners:\n  http: {address: '127.0.0.1:0'}\n  grpc: {address: '127.0.0.1:0'}\n"
        "admin: {address: '127.0.0.1:0', ready_requires: [flaky]}\n"
        "policies:\n  guarded: {circuit_breaker: {consecutive_failures: 2, reset_timeout: 60s}}\n"
        f"agents:\n  flaky: {{kind: http, endpoint: '{failing_url}', policies: [guarded]}}\n"
        f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
    )
    try:
        async with fleet(path) as gw, aiohttp.ClientSession() as session:
            admin = f"http://{gw.admin}"
            for _ in range(2):  # one kept-alive connection: one worker's breaker opens
                async with session.post(f"http://{gw.http}/v1/agents/flaky/invoke", json=BODY) as response:
                    assert response.status == 503
            async with session.get(f"{admin}/readyz") as response:
                ready = await response.json()
                assert response.status == 503, ready
                statuses = sorted(w["status"] for w in ready["workers"])
                assert statuses == ["not ready", "ready"], ready
                assert "circuit open for required agents: flaky" in str(ready["workers"])
                assert ready["breakers"] == {"agent/flaky": "open"}
            async with session.get(f"{admin}/breakers") as response:
                assert await response.json() == {"agent/flaky": "open"}  # the worst worker's
            async with session.post(f"{admin}/breakers/agent/flaky/reset") as response:
                assert response.status == 200 and await response.json() == {"agent/flaky": "closed"}
            async with session.post(f"{admin}/breakers/agent/nope/reset") as response:
                assert response.status == 404 and "agent/flaky" in (await response.json())["error"]
            async with session.get(f"{admin}/readyz") as response:
                assert response.status == 200
            async with session.post(f"{admin}/reload") as response:
                reload = await response.json()
                assert response.status == 200 and reload["workers"] == 2 and reload["changed"] is False, reload
            async with session.get(f"{admin}/config") as response:
                assert response.status == 200 and '"flaky"' in await response.text()
    finally:
        await runner.cleanup()
