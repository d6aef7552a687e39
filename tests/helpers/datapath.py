"""The data-path rig: a gateway in front of a fault-injecting upstream, and reading its answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.server.app import GatewayServer
from tests.helpers.fault_upstream import FaultUpstream


@dataclass
class Rig:
    server: GatewayServer
    upstream: FaultUpstream
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://{self.server.addresses.http}"

    async def invoke(self, agent: str, text: str = "hi", timeout_ms: int | None = None) -> tuple[int, Any, float]:
        """(status, decoded body, seconds) of an HTTP invoke."""
        headers = {"x-timeout-ms": str(timeout_ms)} if timeout_ms else {}
        started = time.monotonic()
        async with self.http.post(
            f"{self.base}/v1/agents/{agent}/invoke",
            json={"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]},
            headers=headers,
        ) as response:
            body = await response.json()
            self.last_headers = response.headers
            return response.status, body, time.monotonic() - started


def answer_text(body: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for m in body.get("messages", []) for p in m.get("parts", []))


RigFactory = Callable[..., AbstractAsyncContextManager[Rig]]


async def read_sse(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """(event name, data) per frame of the whole stream; comments (keep-alives) are skipped.
    Read whole, then split: a frame may be longer than aiohttp's line limit."""
    frames: list[tuple[str, str]] = []
    for block in (await response.text()).split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            frames.append((name, "\n".join(data)))
    return frames
