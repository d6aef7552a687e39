"""Background runs from the Python client an agent uses to reach its sidecar."""

from __future__ import annotations

import asyncio

import pytest

from agentgateway_client import AgentClient, ClientError, StatusCode
from tests.conftest import GatewayFactory
from tests.helpers.runs import SlowAgent, agents_yaml


async def test_submit_watch_resume_result_and_cancel(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent
) -> None:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            run = await client.runs.submit("slow", "go", session_id="s-client", params={"count": 4})
            assert run.status in ("queued", "running") and run.agent == "slow"
            seen = [(s, e.message.text if e.message else "") async for s, e in client.runs.watch(run.run_id)]
            assert seen == [(1, "w1 "), (2, "w2 "), (3, "w3 "), (4, "w4 ")]
            resumed = [s async for s, _ in client.runs.watch(run.run_id, after=2)]
            assert resumed == [3, 4]  # no gap, no duplicate
            result = await client.runs.result(run.run_id)
            assert result.text == "w1 w2 w3 w4 "  # the deltas joined into the answer
            assert (await client.runs.get(run.run_id)).status == "succeeded"

            slow_agent.started.clear()  # the first run set it
            slow = await client.runs.submit("slow", "stop me", params={"count": 1, "pause": 5})
            await asyncio.wait_for(slow_agent.started.wait(), 5)
            cancelled = await client.runs.cancel(slow.run_id)
            assert cancelled.status == "cancelled"
            with pytest.raises(ClientError) as caught:
                await client.runs.result(slow.run_id)
            assert caught.value.code is StatusCode.CANCELLED
            await asyncio.wait_for(slow_agent.disconnected.wait(), 5)  # the cancel reached the agent
