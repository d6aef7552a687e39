"""Dead letters of a trigger loop can be consumed (issue 17, item 4), on both bus backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.bus.nats_support import NATS_URL, Names, delete_nats_resources, require_nats
from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml


def loop_yaml(names: Names, backend: str) -> str:
    p, d = names.prefix, names.dead_letter_prefix
    nats = f", url: '{NATS_URL}', stream_prefix: {names.stream_prefix}, ack_wait: 5s" if backend == "nats" else ""
    return f"""
bus: {{backend: {backend}, prefixes: [{p}], dead_letter_prefix: {d}{nats},
      redelivery: {{max_deliver: 2, backoff: [50ms]}}}}
triggers:
  # An event loop: each answer is published where the trigger listens, until the hop limit.
  - name: echo-loop
    subject: {p}.loop
    agent: upper
    input: "{{{{ event.data.text }}}}"
    publish: {p}.loop
    output: {{text: "{{{{ result.text }}}}"}}
  # The dead letters' handler: it gets the loop's last letter, with a fresh hop count.
  - name: undertaker
    subject: "{d}.>"
    agent: plain
    input: "{{{{ event.data.error.code }}}}"
  # A dead letter's handler that fails: its letter is not dead-lettered again.
  - name: doomed
    subject: {p}.doomed
    agent: fail
  - name: doomed-letters
    subject: "{d}.{p}.doomed"
    agent: reject
server: {{drain_timeout: 1s, max_hops: 5}}
"""


@pytest.fixture(params=["memory", "nats"])
async def loop(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, serve_app: Starter
) -> AsyncIterator[tuple[ScriptedAgents, Names, str]]:
    if request.param == "nats":
        require_nats()
    names = Names.fresh()
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    yield agents, names, agents_yaml(url) + loop_yaml(names, request.param)
    if request.param == "nats":
        await delete_nats_resources(names)


async def publish(address: str, subject: str, body: object) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{address}/v1/events/{subject}", json=body) as response,
    ):
        return response.status


async def test_the_dead_letter_of_a_trigger_loop_is_consumed_once(
    loop: tuple[ScriptedAgents, Names, str], gateway_factory: GatewayFactory
) -> None:
    agents, names, yaml = loop
    async with gateway_factory(yaml) as gw:
        assert await publish(gw.addresses.http or "", f"{names.prefix}.loop", {"text": "ping"}) == 202
        for _ in range(200):
            if agents.names("plain"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # time for any re-dead-lettering to show
    # The loop ran to the hop limit (5 hops: 5 calls of upper), its letter was refused
    # there, and the dead-letter handler took it at once: one call, with the refusal's code.
    assert len(agents.names("upper")) == 5
    assert [c[1] for c in agents.calls if c[0] == "plain"] == ["RESOURCE_EXHAUSTED"]
    # The letter still belongs to the loop's request tree: its call count went on.
    baggage = agents.headers[[c[0] for c in agents.calls].index("plain")]["baggage"]
    assert "agw.tree=" in baggage and "agw.calls=6" in baggage


async def test_a_dead_letter_that_fails_again_is_not_dead_lettered_again(
    loop: tuple[ScriptedAgents, Names, str], gateway_factory: GatewayFactory
) -> None:
    agents, names, yaml = loop
    async with gateway_factory(yaml) as gw:
        assert await publish(gw.addresses.http or "", f"{names.prefix}.doomed", {"text": "x"}) == 202
        for _ in range(200):
            if agents.names("reject"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    # One letter for the failed event, tried max_deliver (2) times by its handler, and no
    # letter of that letter (the undertaker, on every dead letter, saw only the first).
    assert len(agents.names("reject")) == 2
    assert [c[1] for c in agents.calls if c[0] == "plain"] == ["UNAVAILABLE"]
