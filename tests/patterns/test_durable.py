"""Durable workflows (issue 17, item 8): a gateway SIGKILLed mid-run, another one finishes it.

The first gateway is a real process on the real Redis; the recording agents count every call
with its idempotency key, so "each step called exactly once" is what the agents saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, Starter
from tests.frameworks.servers import free_port
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available


class JournalAgents:
    """Agents that record (agent, idempotency key) per request; ``gate`` holds its first call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.executed: list[tuple[str, str]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["agent"]
        body = await request.json()
        text = "".join(p.get("text", "") for p in body["messages"][-1]["parts"])
        key = request.headers.get("idempotency-key", "")
        seen = any(k == key for _, k in self.calls)
        self.calls.append((name, key))
        if not seen:
            self.executed.append((name, key))
        if name == "gate" and not seen:
            # The first call holds (its gateway is killed meanwhile); a re-send of the same
            # key is recognized and answered without doing the work again.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 10)
        elif name == "gate":
            self.release.set()
        reply = {"upper": text.upper(), "plain": f"plain: {text}", "gate": f"passed {text}", "count": str(len(text))}
        return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": reply[name]}]}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{agent}/invoke", self.handle)
        return app

    def names(self, name: str) -> list[str]:
        return [k for n, k in self.calls if n == name]


def config(url: str, prefix: str) -> str:
    agents = "".join(f"  {n}: {{kind: http, endpoint: '{url}/{n}'}}\n" for n in ("upper", "plain", "gate", "count"))
    return f"""agents:
{agents}workflows:
  order:
    kind: sequential
    durable: true
    steps:
      - {{name: reserve, agent: upper}}
      - {{name: confirm, agent: plain, input: "{{{{ steps.reserve.text }}}}"}}
      - {{name: gate, agent: gate, input: "{{{{ steps.confirm.text }}}}"}}
      - {{name: measure, agent: count, input: "{{{{ steps.gate.text }}}}"}}
state: {{backend: redis, redis: {{url: '{REDIS_URL}', key_prefix: '{prefix}state:'}}}}
runs: {{key_prefix: '{prefix}runs:', lease: 1s}}
admin: null
"""


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    if not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    value = f"agw-test:{uuid.uuid4().hex}:"
    yield value
    await drop_prefix(value)


async def test_a_killed_gateway_s_run_is_finished_by_another_with_each_step_called_once(
    prefix: str, tmp_path: Path, serve_app: Starter, gateway_factory: GatewayFactory
) -> None:
    agents = JournalAgents()
    url = await serve_app(agents.app())
    http_port, grpc_port = free_port(), free_port()
    path = tmp_path / "gw.yaml"
    path.write_text(
        f"listeners:\n  http: {{address: '127.0.0.1:{http_port}'}}\n  grpc: {{address: '127.0.0.1:{grpc_port}'}}\n"
        + config(url, prefix)
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert b"ready" in await asyncio.wait_for(process.stdout.readline(), 20)
        async with aiohttp.ClientSession() as session:
            payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "order-9"}]}]}
            call = asyncio.create_task(session.post(f"http://127.0.0.1:{http_port}/v1/agents/order/invoke", json=payload))
            for _ in range(200):
                if agents.names("gate"):
                    break
                await asyncio.sleep(0.05)
            assert agents.names("gate"), "the run never reached its third step"
            process.send_signal(signal.SIGKILL)  # mid-step: no drain, no goodbye
            await process.wait()
            with contextlib.suppress(aiohttp.ClientError):
                await call
        run_id = agents.names("gate")[0].split(":")[0]
        # A second gateway on the same Redis takes the lapsed lease over and finishes the run.
        async with gateway_factory(config(url, prefix)) as second:
            for _ in range(300):
                if agents.names("count"):
                    break
                await asyncio.sleep(0.05)
            assert second.durable is not None
            journaled = None
            for _ in range(100):
                journaled = await second.durable.journal.get(run_id)
                if journaled is not None and journaled.finished:
                    break
                await asyncio.sleep(0.05)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Completed steps were not called again; the one in flight was re-sent with its key and
    # the agent did its work once; the last step ran at the second gateway.
    assert agents.names("upper") == [f"{run_id}:reserve"]
    assert agents.names("plain") == [f"{run_id}:confirm"]
    assert agents.names("gate") == [f"{run_id}:gate"] * 2
    assert agents.names("count") == [f"{run_id}:measure"]
    assert [n for n, _ in agents.executed] == ["upper", "plain", "gate", "count"]
    assert journaled is not None and journaled.finished
    assert journaled.outcome == {"ok": {"text": "21", "data": None, "agent": "order"}}  # len("passed plain: ORDER-9")
