"""Record the frames of ``scenarios.py`` from the real framework servers (run once, commit the files).

    .venv/bin/python -m tests.adapters.frames.record [scenario ...]

Starts each framework test server the scenarios need (as ``tests/frameworks`` does: build the
environments first with ``make frameworks``), makes each scenario's call through its adapter
with a transport that keeps every request and the bytes of its answer, and writes them to
``tests/adapters/frames/<scenario>.json`` with the server's URL written as ``ENDPOINT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from gateway.adapters.base import AdapterResources
from gateway.adapters.registry import adapter_class
from gateway.model import Attempt, GatewayError
from gateway.transport import ByteStream, HttpTransport, UpstreamResponse
from tests.adapters.frames.scenarios import ENDPOINT, SCENARIOS, Scenario
from tests.frameworks.apps import SERVERS
from tests.frameworks.servers import ServerProcess


@dataclass
class _Tee:
    """A response whose body chunks are kept as they are read."""

    inner: UpstreamResponse
    chunks: list[bytes]

    @property
    def status(self) -> int:
        return self.inner.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self.inner.headers

    @property
    def content_length(self) -> int | None:
        return self.inner.content_length

    @property
    def content(self) -> ByteStream:
        return self

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner.content.iter_any():
            self.chunks.append(chunk)
            yield chunk


def recording_transport(exchanges: list[dict[str, Any]]) -> type[HttpTransport]:
    class RecordingTransport(HttpTransport):
        @contextlib.asynccontextmanager
        async def _tee(
            self, call: Attempt, method: str, url: str, body: Any, headers: Mapping[str, str]
        ) -> AsyncIterator[UpstreamResponse]:
            async with super().open(call, method, url, body, headers) as response:
                # Kept at once: a stream left early is closed only when its generator is collected.
                chunks: list[bytes] = []
                exchanges.append(
                    {
                        "method": method,
                        "path": URL(url).path,
                        "request": body,
                        "status": response.status,
                        "content_type": response.headers.get("content-type", ""),
                        "body": chunks,
                    }
                )
                yield _Tee(response, chunks)

        def open(
            self, call: Attempt, method: str, url: str, body: Any, headers: Mapping[str, str]
        ) -> contextlib.AbstractAsyncContextManager[UpstreamResponse]:
            return self._tee(call, method, url, body, headers)

    return RecordingTransport


async def record(scenario: Scenario, server: ServerProcess, session: aiohttp.ClientSession) -> None:
    exchanges: list[dict[str, Any]] = []
    adapter = adapter_class(scenario.kind)(
        scenario.spec(server.url), AdapterResources(session, transports=recording_transport(exchanges))
    )
    outcome = "ok"
    try:
        if scenario.stream:
            async for _ in adapter.stream(scenario.call()):
                pass
        else:
            await adapter.invoke(scenario.call())
    except GatewayError as exc:
        outcome = f"{type(exc).__name__}: {exc.message}"
    finally:
        await adapter.aclose()
    for exchange in exchanges:
        exchange["body"] = b"".join(exchange["body"]).decode()
    text = json.dumps({"server": scenario.server, "exchanges": exchanges}, indent=1) + "\n"
    # No local paths in the files (a stack trace names this checkout's).
    text = re.sub(r"file://[^\s\"'()]*?/tests/frameworks/", "file:///repo/tests/frameworks/", text)
    scenario.path.write_text(text.replace(server.url, ENDPOINT))
    print(f"{scenario.name}: {len(exchanges)} exchanges, {outcome}")


async def main(names: list[str]) -> None:
    chosen = [SCENARIOS[n] for n in names] if names else list(SCENARIOS.values())
    workdir = Path(tempfile.mkdtemp(prefix="agw-frames-"))
    servers: dict[str, ServerProcess] = {}
    try:
        for name in sorted({s.server for s in chosen}):
            (workdir / name).mkdir()
            servers[name] = SERVERS[name][1](workdir / name, workdir / name / "server.log")
        async with aiohttp.ClientSession() as session:
            for scenario in chosen:
                await record(scenario, servers[scenario.server].wait_ready(), session)
    finally:
        for server in servers.values():
            server.stop(grace=1)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
