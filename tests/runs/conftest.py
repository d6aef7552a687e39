"""Fixtures for background runs: a slow streaming agent that records when its caller goes away."""

from __future__ import annotations

import pytest

from tests.conftest import Starter
from tests.helpers.runs import SlowAgent, slow_agent_app


@pytest.fixture
async def slow_agent(serve_app: Starter) -> SlowAgent:
    agent = SlowAgent()
    agent.url = await serve_app(slow_agent_app(agent))
    return agent
