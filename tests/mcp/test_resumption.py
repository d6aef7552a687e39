"""2025-11-25 streams resumed with Last-Event-ID (Streamable HTTP "Resumability and Redelivery"):
the exact events a client missed are replayed, per stream and per session, over raw HTTP and
with the official Python SDK client; a stream nobody follows is given up after the resume window."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import GatewayFactory
from tests.helpers.mcp import ToolServer, open_session, read_event, start_tool_server


def gateway_yaml(server: ToolServer, streams: str = "{}") -> str:
    return f"""\
mcp:
  upstreams:
    counter: {{url: {server.url}}}
  virtual_servers:
    tools:
      upstreams: [{{upstream: counter, prefix: ""}}]
  streams: {streams}
"""


async def read_all(response: aiohttp.ClientResponse) -> list[tuple[str, Any]]:
    """Every event until the stream ends: (id, decoded data; None for a priming event)."""
    events: list[tuple[str, Any]] = []
    for _ in range(100):  # bounded
        event = await read_event(response)
        if event is None:
            return events
        events.append((event["id"], json.loads(event["data"]) if event["data"] else None))
    raise AssertionError("the stream did not end")


def counting(n: int, request_id: int = 3, name: str = "count") -> str:
    params = {"name": name, "arguments": {"n": n} if name == "count" else {}, "_meta": {"progressToken": "tok"}}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def progress_of(data: Any) -> float:
    assert data["method"] == "notifications/progress" and data["params"]["progressToken"] == "tok", data
    return float(data["params"]["progress"])


async def test_a_dropped_post_stream_is_replayed_exactly_after_the_last_event_id(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    async with gateway_factory(gateway_yaml(tool_servers("counter"))) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        legacy = await open_session(session, url)
        async with session.post(url, data=counting(5), headers=legacy) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            priming = await read_event(response)
            first = await read_event(response)
        # The stream opened with a priming event: an id, the reconnect delay, empty data.
        assert priming is not None and priming["data"] == "" and priming["retry"] == "1000"
        key = priming["id"].removesuffix("-0")
        assert priming["id"] == f"{key}-0" and len(key) == 12
        assert first is not None and first["id"] == f"{key}-1" and progress_of(json.loads(first["data"])) == 1
        # The client dropped the connection after progress 1; the call ran on. Resume after it.
        stream_get = {**legacy, "accept": "text/event-stream"}
        async with session.get(url, headers={**stream_get, "last-event-id": f"{key}-1"}) as response:
            assert response.status == 200
            replayed = await read_all(response)
        assert [event_id for event_id, _ in replayed] == [f"{key}-{n}" for n in range(2, 7)]
        assert [progress_of(data) for _, data in replayed[:4]] == [2, 3, 4, 5]
        answer = replayed[4][1]
        assert answer["id"] == 3 and answer["result"]["content"][0]["text"] == "counted to 5"
        # A cursor further on replays only what follows it, and the answer again (the client may have missed it).
        async with session.get(url, headers={**stream_get, "last-event-id": f"{key}-4"}) as response:
            assert [event_id for event_id, _ in await read_all(response)] == [f"{key}-5", f"{key}-6"]
        # Another session's cursor, an unknown stream or a number never given name nothing of this
        # stream: the GET opens a new stream of the asker's own, nothing replayed.
        other = await open_session(session, url)
        for headers, cursor in ((other, f"{key}-1"), (legacy, "0123456789ab-1"), (legacy, f"{key}-99")):
            async with session.get(
                url, headers={**headers, "accept": "text/event-stream", "last-event-id": cursor}
            ) as r:
                assert r.status == 200
                fresh = await read_event(r)
                assert fresh is not None and fresh["data"] == "" and fresh["id"].endswith("-0")
                assert not fresh["id"].startswith(key)
                try:
                    leaked = await read_event(r, timeout=0.5)
                except TimeoutError:
                    leaked = None
                assert leaked is None, leaked


async def test_the_get_stream_is_replayed_after_a_reconnect(gateway_factory: GatewayFactory) -> None:
    server = start_tool_server("grows-resumed")  # its own: growing changes its tool list
    try:
        async with gateway_factory(gateway_yaml(server)) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            legacy = await open_session(session, url)
            stream_get = {**legacy, "accept": "text/event-stream"}
            async with session.get(url, headers=stream_get) as response:
                priming = await read_event(response)
            assert priming is not None and priming["data"] == ""
            key = priming["id"].removesuffix("-0")
            for _ in range(100):  # bounded: until the gateway follows the upstream's changes
                if any(s["method"] == "subscriptions/listen" for s in server.seen()):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the upstream acknowledges its listen just after it logs it
            grow = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "grow", "arguments": {}}}
            async with session.post(url, data=json.dumps(grow), headers=legacy) as response:
                assert (await response.json())["result"]["content"][0]["text"] == "grew"
            # The change came while no connection followed the GET stream: it is the stream's next event.
            async with session.get(url, headers={**stream_get, "last-event-id": priming["id"]}) as response:
                missed = await read_event(response)
            assert missed is not None and missed["id"] == f"{key}-1"
            assert json.loads(missed["data"]) == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    finally:
        server.stop()


async def test_the_sdk_client_resumes_a_stream_the_gateway_closes(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    cursors: list[str] = []

    async def record(request: httpx2.Request) -> None:
        if request.method == "GET" and "last-event-id" in request.headers:
            cursors.append(request.headers["last-event-id"])

    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    config = gateway_yaml(tool_servers("counter"), "{hold: 150ms, retry: 50ms}")
    async with gateway_factory(config) as gw, httpx2.AsyncClient(event_hooks={"request": [record]}) as http:
        transport = streamable_http_client(f"http://{gw.addresses.http}/mcp/tools", http_client=http)
        async with Client(transport, mode="legacy") as client:
            # 8 steps of 50 ms: the gateway closes the connection (150 ms) mid-call, more than once.
            result = await client.call_tool("count", {"n": 8}, progress_callback=on_progress)
    assert result.content[0].text == "counted to 8"  # type: ignore[union-attr]
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8]  # every step once: nothing lost or repeated across reconnects
    assert cursors, "the client never reconnected with Last-Event-ID"


async def test_a_stream_nobody_follows_is_cancelled_after_the_resume_window(gateway_factory: GatewayFactory) -> None:
    server = start_tool_server("window")  # its own: the cancellation record must be this test's
    try:
        config = gateway_yaml(server, "{resume_window: 600ms}")
        async with gateway_factory(config) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            legacy = await open_session(session, url)
            async with session.post(url, data=counting(0, name="count_forever"), headers=legacy) as response:
                await read_event(response)  # priming
                await read_event(response)  # the first progress: the tool runs
            dropped = time.monotonic()
            await asyncio.sleep(0.2)
            # A disconnection is not a cancellation: within the window the call goes on.
            assert not any(s["method"] == "cancelled" for s in server.seen())
            for _ in range(100):  # bounded
                if any(s["method"] == "cancelled" for s in server.seen()):
                    break
                await asyncio.sleep(0.1)
            waited = time.monotonic() - dropped
        assert any(s["method"] == "cancelled" for s in server.seen())
        assert waited >= 0.5
    finally:
        server.stop()


async def test_notifications_cancelled_ends_a_streamed_call_without_an_answer(
    gateway_factory: GatewayFactory,
) -> None:
    server = start_tool_server("cancel-stream")
    try:
        async with gateway_factory(gateway_yaml(server)) as gw, aiohttp.ClientSession() as session:
            url = f"http://{gw.addresses.http}/mcp/tools"
            legacy = await open_session(session, url)
            async with session.post(url, data=counting(0, request_id=8, name="count_forever"), headers=legacy) as r:
                await read_event(r)  # priming
                await read_event(r)  # the first progress
                cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}}
                async with session.post(url, data=json.dumps(cancel), headers=legacy) as answer:
                    assert answer.status == 202
                rest = await read_all(r)
            # Progress until the cancel took, then the stream ends: no response to a cancelled request.
            assert all(data["method"] == "notifications/progress" for _, data in rest)
            for _ in range(100):
                if any(s["method"] == "cancelled" for s in server.seen()):
                    break
                await asyncio.sleep(0.1)
        assert any(s["method"] == "cancelled" for s in server.seen())
    finally:
        server.stop()


async def test_a_reconnect_takes_the_stream_over_from_the_older_connection(
    gateway_factory: GatewayFactory, tool_servers: Callable[[str], ToolServer]
) -> None:
    async with gateway_factory(gateway_yaml(tool_servers("counter"))) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/mcp/tools"
        stream_get = {**await open_session(session, url), "accept": "text/event-stream"}
        async with session.get(url, headers=stream_get) as older:
            priming = await read_event(older)
            assert priming is not None
            async with session.get(url, headers={**stream_get, "last-event-id": priming["id"]}) as newer:
                assert newer.status == 200
                # One connection per stream (a message is never sent on two): the older one ends.
                assert await read_event(older, timeout=5) is None
                assert not newer.content.at_eof()
