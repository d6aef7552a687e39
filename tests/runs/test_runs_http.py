"""Background runs through the HTTP front: submit, poll, result, list, follow and resume, cancel, keep-alives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.helpers.runs import SlowAgent, agents_yaml, base, body, read_sse, submit, wait_status


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_submit_poll_and_result(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as server:
        run = await submit(http, server, body("echo", delay=0.05))
        assert run["status"] in ("queued", "running")
        assert run["runId"].startswith("run_") and run["sessionId"] == "s-1" and run["agent"] == "echo"
        # Not finished yet: the result endpoint says come back later.
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/result") as response:
            assert response.status == 202
            assert response.headers["retry-after"] == "1"
            assert (await response.json())["status"] in ("queued", "running")
        done = await wait_status(http, server, run["runId"], {"succeeded"})
        assert done["answeredBy"] == "echo" and done["finishTime"] and done["lastSequence"] >= 2
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/result") as response:
            assert response.status == 200
            result = await response.json()
        assert result["agent"] == "echo"
        assert "".join(p.get("text", "") for m in result["messages"] for p in m["parts"]).startswith(
            "echo: hello world"
        )


async def test_failed_run_keeps_its_error(
    gateway_factory: GatewayFactory, echo_url: str, http: aiohttp.ClientSession
) -> None:
    yaml = agents_yaml(echo_url, "http://127.0.0.1:9") + "\n"
    async with gateway_factory(yaml) as server:
        run = await submit(http, server, body("slow"))
        failed = await wait_status(http, server, run["runId"], {"failed"})
        assert failed["error"]["code"] == "UNAVAILABLE"
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/result") as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "UNAVAILABLE"


async def test_bad_requests_are_structured_errors(
    gateway_factory: GatewayFactory, echo_url: str, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, echo_url)) as server:
        async with http.post(f"{base(server)}/v1/runs", json=body("nobody")) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "NOT_FOUND"
        async with http.get(f"{base(server)}/v1/runs/run_doesnotexist") as response:
            assert response.status == 404
        async with http.get(f"{base(server)}/v1/runs/not a run!") as response:
            assert response.status == 400
        payload = {**body("echo"), "webhookUrl": "http://127.0.0.1:1/hook"}
        async with http.post(f"{base(server)}/v1/runs", json=payload) as response:
            assert response.status == 400
            assert "runs.webhooks.allowed_prefixes" in (await response.json())["error"]["message"]
        async with http.get(f"{base(server)}/v1/runs") as response:
            assert response.status == 400
            assert "sessionId" in (await response.json())["error"]["message"]
        run = await submit(http, server, body("echo"))
        headers = {"last-event-id": "three"}
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/events", headers=headers) as response:
            assert response.status == 400


async def test_list_runs_of_a_session(
    gateway_factory: GatewayFactory, echo_url: str, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, echo_url)) as server:
        ids = [(await submit(http, server, body("echo", session="s-list")))["runId"] for _ in range(3)]
        other = (await submit(http, server, body("echo", session="s-other")))["runId"]
        async with http.get(f"{base(server)}/v1/runs", params={"sessionId": "s-list", "pageSize": "2"}) as response:
            first = await response.json()
        assert [r["runId"] for r in first["runs"]] == ids[::-1][:2]
        params = {"sessionId": "s-list", "pageSize": "2", "pageToken": first["nextPageToken"]}
        async with http.get(f"{base(server)}/v1/runs", params=params) as response:
            second = await response.json()
        assert [r["runId"] for r in second["runs"]] == [ids[0]]
        assert "nextPageToken" not in second
        async with http.get(f"{base(server)}/v1/runs", headers={"x-session-id": "s-other"}) as response:
            assert [r["runId"] for r in (await response.json())["runs"]] == [other]


async def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as server:
        run = await submit(http, server, body("slow", count=12, interval=0.03))
        url = f"{base(server)}/v1/runs/{run['runId']}/events"
        async with http.get(url) as response:
            assert response.headers["content-type"] == "text/event-stream"
            head = await read_sse(response, stop_after_events=4)
        # Disconnected mid-run; reconnect where we left off.
        last_id = [f for f in head if f[0] == "event"][-1][1]
        assert last_id == "4"
        async with http.get(url, headers={"last-event-id": last_id}) as response:
            tail = await read_sse(response)
        assert tail[-1][0] == "result"
        resumed = [f for f in head + tail if f[0] == "event"]
        # The uninterrupted sequence, replayed from the store once the run is over.
        async with http.get(url) as response:
            whole = await read_sse(response)
        uninterrupted = [f for f in whole if f[0] == "event"]
        assert [f[1] for f in uninterrupted] == [str(i) for i in range(1, 13)]
        assert resumed == uninterrupted
        texts = [json.loads(f[2])["event"]["message"]["parts"][0]["text"] for f in uninterrupted]
        assert texts == [f"w{i} " for i in range(1, 13)]
        result = json.loads(whole[-1][2])["result"]
        assert result["messages"][0]["parts"][0]["text"] == "".join(texts)
        # ?after= works as well as the header.
        async with http.get(url, params={"after": "10"}) as response:
            assert [f[1] for f in await read_sse(response) if f[0] == "event"] == ["11", "12"]


async def test_cancel_reaches_the_upstream(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as server:
        run = await submit(http, server, body("slow", count=1000, interval=0.02))
        await asyncio.wait_for(slow_agent.started.wait(), 5)
        async with http.post(f"{base(server)}/v1/runs/{run['runId']}/cancel") as response:
            assert response.status == 200
            cancelled = await response.json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["code"] == "CANCELLED"
        await asyncio.wait_for(slow_agent.disconnected.wait(), 5)
        assert slow_agent.completed == 0
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/result") as response:
            assert response.status == 499
        # A follower of a cancelled run gets its events, then the error.
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/events") as response:
            frames = await read_sse(response)
        assert frames[-1][0] == "error" and json.loads(frames[-1][2])["error"]["code"] == "CANCELLED"
        # Cancelling again answers the final status.
        async with http.post(f"{base(server)}/v1/runs/{run['runId']}/cancel") as response:
            assert (await response.json())["status"] == "cancelled"


async def test_cancelled_workflow_cancels_its_running_step(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as server:
        run = await submit(http, server, body("pipeline", count=1000, interval=0.02))
        await asyncio.wait_for(slow_agent.started.wait(), 5)
        async with http.post(f"{base(server)}/v1/runs/{run['runId']}/cancel") as response:
            assert (await response.json())["status"] == "cancelled"
        await asyncio.wait_for(slow_agent.disconnected.wait(), 5)


async def test_result_survives_a_restart(
    gateway_factory: GatewayFactory, echo_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    yaml = agents_yaml(echo_url, echo_url) + f"\nstate: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
    async with gateway_factory(yaml) as first:
        done = await submit(http, first, body("echo", text="kept"))
        await wait_status(http, first, done["runId"], {"succeeded"})
        # Still running when the gateway is asked to stop: the drain lets it finish.
        running = await submit(http, first, body("echo", text="drained", delay=0.3))
    async with gateway_factory(yaml) as second:
        for run_id, text in ((done["runId"], "kept"), (running["runId"], "drained")):
            async with http.get(f"{base(second)}/v1/runs/{run_id}/result") as response:
                assert response.status == 200, await response.text()
                result = await response.json()
            assert result["messages"][0]["parts"][0]["text"].strip() == f"echo: {text}"


async def test_keepalive_comments_on_an_idle_stream(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    yaml = "listeners:\n  http: {address: '127.0.0.1:0', sse_keepalive: 100ms}\n  grpc: null\n"
    async with gateway_factory(yaml + agents_yaml(echo_url, slow_agent.url)) as server:
        run = await submit(http, server, body("slow", count=2, pause=0.5))
        async with http.get(f"{base(server)}/v1/runs/{run['runId']}/events") as response:
            frames = await read_sse(response)
        names = [f[0] for f in frames]
        # Comments while the agent thinks, then the events and the result.
        assert names.index(":") < names.index("event")
        assert (":", None, ": keep-alive") in frames
        assert names[-1] == "result"
        # The foreground stream too.
        async with http.post(f"{base(server)}/v1/stream", json=body("slow", count=2, pause=0.5)) as response:
            frames = await read_sse(response)
        assert (":", None, ": keep-alive") in frames
        assert [f[1] for f in frames if f[0] == "event"] == ["1", "2"]


async def test_foreground_call_is_cancelled_when_its_caller_leaves(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession
) -> None:
    yaml = "listeners:\n  http: {address: '127.0.0.1:0', cancel_on_disconnect: true}\n  grpc: null\n"
    async with gateway_factory(yaml + agents_yaml(echo_url, slow_agent.url)) as server:
        with pytest.raises(TimeoutError):
            async with http.post(
                f"{base(server)}/v1/invoke",
                json=body("slow", count=500, interval=0.02),
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        # The gateway noticed and dropped the upstream call: the agent saw its caller go.
        await asyncio.wait_for(slow_agent.disconnected.wait(), 5)
        assert slow_agent.completed == 0


async def test_a_run_whose_gateway_dies_is_reported_lost(
    gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Gateways sharing a store: a live one keeps renewing its runs; one that stops renewing
    (as after a crash) has them reported failed once their lease runs out."""
    extra = f"""
state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}
runs: {{poll_interval: 50ms, lease: 400ms}}
"""
    yaml = agents_yaml(echo_url, slow_agent.url, extra)
    async with gateway_factory(yaml) as first, gateway_factory(yaml) as second:
        run = await submit(http, first, body("slow", count=1, pause=3))
        await asyncio.wait_for(slow_agent.started.wait(), 5)
        await asyncio.sleep(0.8)  # two leases: renewed all along
        async with http.get(f"{base(second)}/v1/runs/{run['runId']}") as response:
            assert (await response.json())["status"] == "running"
        assert first.runs is not None and first.runs._poller is not None
        first.runs._poller.cancel()  # the first gateway stops renewing, as if it had crashed
        lost = await wait_status(http, second, run["runId"], {"failed"}, limit=3.0)
        assert lost["error"]["code"] == "UNAVAILABLE"
        assert "stopped refreshing" in lost["error"]["message"]
