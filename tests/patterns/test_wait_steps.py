"""Wait steps (issue 17, item 9): a workflow paused for an approval, resumed through the API
after a restart, by an identity the authorization rules allow, bound to the step and its input."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import GatewayFactory, Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def config(url: str, db: Path) -> str:
    return agents_yaml(url) + f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: null
security:
  api_keys:
    - {{identity: alice, sha256: {hashlib.sha256(ALICE.encode()).hexdigest()}}}
    - {{identity: bob, sha256: {hashlib.sha256(BOB.encode()).hexdigest()}}}
  authorization:
    - {{identities: [alice, bob], agents: ["*"]}}
    - {{identities: [alice], approvals: [order]}}
workflows:
  order:
    kind: sequential
    durable: true
    steps_in_answer: status
    steps:
      - {{name: reserve, agent: upper, compensate: {{agent: undo}}}}
      - {{name: approve, wait: {{input: {{order: "{{{{ steps.reserve.text }}}}"}}, expires: 30s}}}}
      - {{name: charge, agent: plain, input: "{{{{ steps.approve.data.payload.amount }}}} by {{{{ steps.approve.data.approver }}}}"}}
state: {{sqlite: {{path: '{db}'}}}}
runs: {{lease: 1s}}
server: {{drain_timeout: 500ms}}
"""


async def test_a_wait_is_resumed_through_the_api_after_a_restart(
    tmp_path: Path, serve_app: Starter, gateway_factory: GatewayFactory
) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    text = config(url, tmp_path / "state.db")
    payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "order-3"}]}]}
    async with gateway_factory(text) as first, aiohttp.ClientSession(headers={"x-api-key": BOB}) as session:
        call = asyncio.create_task(
            session.post(f"http://{first.addresses.http}/v1/agents/order/invoke", json=payload)
        )
        for _ in range(100):
            if agents.names("upper"):
                break
            await asyncio.sleep(0.05)
        run_id = agents.headers[0]["idempotency-key"].split(":")[0]
        await asyncio.sleep(0.3)  # the run is waiting now
    # The first gateway drained: its waiting run was suspended (not compensated), not lost.
    call.cancel()
    assert not agents.names("undo")
    async with gateway_factory(text) as second:
        base = f"http://{second.addresses.http}/v1/workflow-runs/{run_id}/steps/approve"
        async with aiohttp.ClientSession(headers={"x-api-key": ALICE}) as alice:
            pending: dict[str, Any] = {}
            for _ in range(100):  # the second gateway takes the lapsed run over and waits again
                async with alice.get(base) as response:
                    if response.status == 200:
                        pending = await response.json()
                        break
                await asyncio.sleep(0.05)
            assert pending["input"] == {"order": "ORDER-3"}
            digest = hashlib.sha256(json.dumps({"order": "ORDER-3"}, separators=(",", ":")).encode()).hexdigest()
            assert pending["digest"] == digest
            # Bound to the input: an approval of another input is refused.
            async with alice.post(f"{base}/resume", json={"digest": "0" * 64, "payload": {}}) as response:
                assert response.status == 409
            # Bound to the step: no other step of the run is waiting.
            async with alice.post(
                f"http://{second.addresses.http}/v1/workflow-runs/{run_id}/steps/charge/resume",
                json={"digest": digest},
            ) as response:
                assert response.status == 404
            # Checked by the authorization rules: bob may call the workflow, not approve it.
            async with aiohttp.ClientSession(headers={"x-api-key": BOB}) as bob:
                async with bob.post(f"{base}/resume", json={"digest": digest, "payload": {"amount": 1}}) as response:
                    assert response.status == 403
            async with alice.post(f"{base}/resume", json={"digest": digest, "payload": {"amount": 42}}) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["approver"] == "alice"
            async with alice.post(f"{base}/resume", json={"digest": digest, "payload": {"amount": 43}}) as response:
                assert response.status == 409  # once only
            for _ in range(100):
                if agents.names("plain"):
                    break
                await asyncio.sleep(0.05)
            assert second.durable is not None
            journaled = None
            for _ in range(100):
                journaled = await second.durable.journal.get(run_id)
                if journaled is not None and journaled.finished:
                    break
                await asyncio.sleep(0.05)
    assert [c[1] for c in agents.calls if c[0] == "plain"] == ["42 by alice"]
    assert agents.names("upper") == ["upper"]  # the completed step was not called again
    assert journaled is not None and journaled.outcome["ok"]["text"] == "plain: 42 by alice"


async def test_a_wait_is_resumed_by_an_event(tmp_path: Path, serve_app: Starter, gateway_factory: GatewayFactory) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    text = agents_yaml(url) + f"""
workflows:
  ticket:
    kind: sequential
    durable: true
    steps:
      - {{name: open, agent: upper}}
      - {{name: signoff, wait: {{input: "{{{{ steps.open.text }}}}", subject: events.signoffs, expires: 30s}}}}
      - {{name: close, agent: plain, input: "{{{{ steps.signoff.data.approver }}}}: {{{{ steps.signoff.data.payload }}}}"}}
state: {{sqlite: {{path: '{tmp_path / "state.db"}'}}}}
"""
    payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "t-1"}]}]}
    async with gateway_factory(text) as gw, aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.post(f"http://{gw.addresses.http}/v1/agents/ticket/invoke", json=payload))
        for _ in range(100):
            if agents.names("upper"):
                break
            await asyncio.sleep(0.05)
        run_id = agents.headers[0]["idempotency-key"].split(":")[0]
        digest = hashlib.sha256(json.dumps("T-1").encode()).hexdigest()
        await asyncio.sleep(0.3)
        # An event for another input does not resume it (it is dead-lettered); the right one does.
        for event_digest, note in ((("0" * 64), "wrong"), (digest, "signed")):
            async with session.post(
                f"http://{gw.addresses.http}/v1/events/events.signoffs",
                json={"run_id": run_id, "digest": event_digest, "payload": note},
            ) as response:
                assert response.status == 202
        response = await asyncio.wait_for(call, 10)
        assert response.status == 200
        body = await response.json()
    assert body["messages"][0]["parts"][0]["text"] == "plain: event:events.signoffs: signed"
    assert [c[1] for c in agents.calls if c[0] == "plain"] == ["event:events.signoffs: signed"]


async def test_a_background_run_waits_and_shows_no_step_outputs(
    tmp_path: Path, serve_app: Starter, gateway_factory: GatewayFactory
) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    text = agents_yaml(url) + f"""
workflows:
  ticket:
    kind: sequential
    durable: true
    steps:
      - {{name: open, agent: upper}}
      - {{name: signoff, wait: {{input: "{{{{ steps.open.text }}}}", expires: 30s}}}}
      - {{name: close, agent: plain, input: "{{{{ steps.signoff.data.payload }}}}"}}
state: {{sqlite: {{path: '{tmp_path / "state.db"}'}}}}
"""
    payload = {"agent": "ticket", "messages": [{"role": "ROLE_USER", "parts": [{"text": "secret-1"}]}]}
    async with gateway_factory(text) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}"
        async with session.post(f"{base}/v1/runs", json=payload) as response:
            assert response.status == 202
            background = (await response.json())["runId"]
        for _ in range(100):
            if agents.names("upper"):
                break
            await asyncio.sleep(0.05)
        run_id = agents.headers[0]["idempotency-key"].split(":")[0]
        await asyncio.sleep(0.3)
        async with session.get(f"{base}/v1/workflow-runs/{run_id}/steps/signoff") as response:
            digest = (await response.json())["digest"]
        async with session.post(
            f"{base}/v1/workflow-runs/{run_id}/steps/signoff/resume", json={"digest": digest, "payload": "ok"}
        ) as response:
            assert response.status == 200
        result: dict[str, Any] = {}
        for _ in range(100):
            async with session.get(f"{base}/v1/runs/{background}/result") as response:
                if response.status == 200:
                    result = await response.json()
                    break
            await asyncio.sleep(0.05)
        async with session.get(f"{base}/v1/runs/{background}/events", headers={"accept": "application/json"}) as r:
            events = await r.text()
    assert result["messages"][0]["parts"][0]["text"] == "plain: ok"
    # The intermediate output (SECRET-1) is in no recorded event: the caller has no grant.
    assert "SECRET-1" not in events and "waiting" in events


async def test_over_grpc_a_durable_wait_resumed_by_a_grpc_published_event(
    tmp_path: Path, serve_app: Starter, gateway_factory: GatewayFactory
) -> None:
    import grpc
    from google.protobuf import struct_pb2

    from agentgateway.v1 import events_pb2, events_pb2_grpc
    from agentgateway_client import AgentClient

    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    text = agents_yaml(url) + f"""
workflows:
  ticket:
    kind: sequential
    durable: true
    steps:
      - {{name: open, agent: upper}}
      - {{name: signoff, wait: {{input: "{{{{ steps.open.text }}}}", subject: events.signoffs, expires: 30s}}}}
      - {{name: close, agent: plain, input: "{{{{ steps.signoff.data.payload }}}}"}}
state: {{sqlite: {{path: '{tmp_path / "state.db"}'}}}}
"""
    async with gateway_factory(text) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            call = asyncio.create_task(client.invoke("ticket", "g-1"))
            for _ in range(100):
                if agents.names("upper"):
                    break
                await asyncio.sleep(0.05)
            run_id = agents.headers[0]["idempotency-key"].split(":")[0]
            await asyncio.sleep(0.3)
            async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
                data = struct_pb2.Value()
                data.struct_value.update(
                    {"run_id": run_id, "digest": hashlib.sha256(json.dumps("G-1").encode()).hexdigest(), "payload": "yes"}
                )
                await events_pb2_grpc.EventsServiceStub(channel).PublishEvent(
                    events_pb2.PublishEventRequest(subject="events.signoffs", data=data)
                )
            result = await asyncio.wait_for(call, 10)
    assert result.text == "plain: yes"
