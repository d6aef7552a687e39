"""Leave an A2A task mid-way and watch the agent cancel it (the A2A tests over HTTP and HTTPS)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from agentgateway_client import AgentClient


async def abandon_mid_task(client: AgentClient, agent: str, ticks: int = 2) -> str:
    """Stream the scripted agent's slow task and go away after ``ticks`` deltas; the task's id."""
    task_id = ""
    seen = 0
    async for event in client.stream(agent, "slow please", timeout=30):
        if event.type == "status":
            task_id = event.data["task_id"]
        seen += event.type == "delta"
        if seen == ticks:
            break  # the caller goes away mid-task
    return task_id


async def state_after(read_state: Callable[[], Awaitable[str]], wanted: str, seconds: float = 5.0) -> str:
    """The task's state once it is ``wanted``, or the last one read when ``seconds`` ran out."""
    state = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and state != wanted:
        state = await read_state()
        await asyncio.sleep(0.1)
    return state
