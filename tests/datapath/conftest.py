"""A gateway in front of the fault upstream, and the caller's side of each front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.helpers.datapath import Rig, RigFactory
from tests.helpers.fault_upstream import FaultUpstream, Responder, in_thread


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
def rig(gateway_factory: GatewayFactory, http: aiohttp.ClientSession) -> RigFactory:
    """``async with rig(responder, agents_yaml_template) as r``: ``{url}`` in the YAML is the upstream."""

    @asynccontextmanager
    async def start(responder: Responder, agents: str, threaded: bool = False) -> AsyncIterator[Rig]:
        if threaded:
            with in_thread(responder) as upstream:
                async with gateway_factory(agents.replace("{url}", upstream.url)) as server:
                    yield Rig(server, upstream, http)
            return
        async with FaultUpstream(responder) as upstream:
            async with gateway_factory(agents.replace("{url}", upstream.url)) as server:
                yield Rig(server, upstream, http)

    return start


