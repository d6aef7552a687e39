"""The README's shell examples (and `make run`'s banner) run as written against `make run`'s config.

The example agents and the gateway of examples/gateway.yaml start on ephemeral ports; each example
block runs in bash with those ports put in place of 8080, 50051, 9901, 9101 and 9102, and with `curl`
failing on any HTTP error, so an example naming an agent that does not exist, or a body the gateway
refuses, fails here.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from examples import echo_agent, grpc_echo_agent
from examples.run import BANNER

ROOT = Path(__file__).resolve().parents[1]
# curl: fail on HTTP errors and never hang; jq as installed.
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 20 "$@"; }\n'


def _shell_blocks(markdown: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)
    return [b for b in blocks if re.search(r"(localhost|127\.0\.0\.1):(8080|9901)|agent-gateway |examples\.", b)]


def _banner_commands() -> list[str]:
    lines = [line.strip() for line in BANNER.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line.startswith(("curl ", ".venv/bin/python"))]


class Running:
    def __init__(self, ports: dict[str, str], workdir: Path) -> None:
        self.ports = ports
        self.workdir = workdir

    async def run(self, script: str) -> tuple[int, str]:
        for fixed, real in self.ports.items():
            script = script.replace(f"localhost:{fixed}", f"127.0.0.1:{real}").replace(
                f"127.0.0.1:{fixed}", f"127.0.0.1:{real}"
            )
        script = script.replace(".venv/bin/python", sys.executable)
        script = re.sub(r"\bagent-gateway ", f"{sys.executable} -m gateway ", script)
        script = script.replace("examples/gateway.yaml", "gateway.yaml")  # make run's config, on these ports
        env = {**os.environ, "AGENT_GATEWAY_GRPC": f"127.0.0.1:{self.ports['50051']}", "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            PRELUDE + script,
            cwd=self.workdir,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture
async def make_run(tmp_path: Path) -> AsyncIterator[Running]:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the README's examples use curl and jq")
    runner = web.AppRunner(echo_agent.build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    grpc_server, grpc_port = await grpc_echo_agent.start()
    config = (ROOT / "examples" / "gateway.yaml").read_text()
    config = config.replace("127.0.0.1:9101", f"127.0.0.1:{http_port}").replace("127.0.0.1:9102", f"127.0.0.1:{grpc_port}")
    config = config.replace('"127.0.0.1:8080"', '"127.0.0.1:0"').replace('"127.0.0.1:50051"', '"127.0.0.1:0"')
    assert "127.0.0.1:0" in config and str(http_port) in config, "examples/gateway.yaml changed shape"
    config += '\nadmin: {address: "127.0.0.1:0"}\n'
    (tmp_path / "gateway.yaml").write_text(config)
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", "gateway.yaml",
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert gateway.stdout is not None
        line = (await asyncio.wait_for(gateway.stdout.readline(), timeout=60)).decode()
        found = dict(re.findall(r"(http|grpc|admin)=127\.0\.0\.1:(\d+)", line))
        assert set(found) == {"http", "grpc", "admin"}, line
        ports = {"8080": found["http"], "50051": found["grpc"], "9901": found["admin"]}
        ports |= {"9101": str(http_port), "9102": str(grpc_port)}
        yield Running(ports, tmp_path)
    finally:
        gateway.terminate()
        await asyncio.wait_for(gateway.wait(), timeout=30)
        await grpc_server.stop(None)
        await runner.cleanup()


@pytest.mark.timeout(300)
async def test_every_readme_shell_example_runs_against_make_run(make_run: Running) -> None:
    blocks = _shell_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 4
    failures = []
    for block in blocks:
        # `make ...` is what this suite itself is; `agent-gateway run` serves until stopped (the fixture runs it).
        skipped = ("make ", "agent-gateway run ")
        block = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith(skipped))
        code, output = await make_run.run(block)
        if code != 0:
            failures.append(f"--- exit {code}:\n{block}\n--- output:\n{output[-1500:]}")
    assert failures == [], "\n".join(failures)


async def test_the_make_run_banner_commands_work(make_run: Running) -> None:
    commands = _banner_commands()
    assert len(commands) >= 8
    for command in commands:
        code, output = await make_run.run(command)
        assert code == 0, f"{command}\n{output[-1500:]}"
