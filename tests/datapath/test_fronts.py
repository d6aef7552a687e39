"""Every front against the fault upstream (through the HTTP adapter): HTTP stream, passthrough,
gRPC Invoke and InvokeStream, the A2A front's message/send and background runs. The caller gets
the agent's text or bytes exactly, or the exact error at about the right time."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from tests.conftest import GatewayFactory
from tests.datapath.shapes import CAP, KIB, MIB, OVER_CAP, SIZES, filler, replies, sse_body
from tests.helpers.datapath import Rig, RigFactory, answer_text, read_sse
from tests.helpers.fault_upstream import Reply

AGENT = 'agents:\n  agent: {kind: http, endpoint: "{url}"}\n'
DEADLINE_MS = 800
SLOW = (DEADLINE_MS / 1000 * 0.75, DEADLINE_MS / 1000 + 2.0)


def first_frame_bytes(text: str) -> int:
    return sse_body(text).index(b"\n\n") + 2


# -- HTTP stream --------------------------------------------------------------------------


async def stream(r: Rig, timeout_ms: int | None = None) -> tuple[int, list[tuple[str, str]], float]:
    headers = {"x-timeout-ms": str(timeout_ms)} if timeout_ms else {}
    started = time.monotonic()
    async with r.http.post(
        f"{r.base}/v1/agents/agent/stream", json={"messages": [{"parts": [{"text": "hi"}]}]}, headers=headers
    ) as response:
        r.last_headers = response.headers
        if response.status != 200:
            return response.status, [("status", await response.text())], time.monotonic() - started
        return 200, await read_sse(response), time.monotonic() - started


def streamed_text(frames: list[tuple[str, str]]) -> str:
    events = [json.loads(data)["event"] for name, data in frames if name == "event"]
    return "".join(p.get("text", "") for e in events for p in e.get("message", {}).get("parts", []))


@pytest.mark.parametrize("size", ["1KB", "65KB", "1MB"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_http_stream_whole(rig: RigFactory, size: str, chunked: bool) -> None:
    respond, text = replies(SIZES[size], chunked=chunked)
    async with rig(respond, AGENT) as r:
        status, frames, _ = await stream(r)
    assert status == 200
    assert streamed_text(frames) == text
    assert frames[-1][0] == "result" and answer_text(json.loads(frames[-1][1])["result"]) == text


async def test_http_stream_cut_after_an_event_ends_with_an_error_frame(rig: RigFactory) -> None:
    text = filler(40 * KIB, seed=11)
    cut = Reply(
        body=sse_body(text), headers={"content-type": "text/event-stream"}, cut_after=first_frame_bytes(text) + 100
    )
    async with rig(lambda _r: cut, AGENT) as r:
        status, frames, _ = await stream(r, DEADLINE_MS)
    assert status == 200
    assert streamed_text(frames) == text[: 16 * KIB]  # the one whole event, nothing invented
    name, data = frames[-1]
    assert name == "error" and json.loads(data)["error"]["code"] == "UNAVAILABLE"


@pytest.mark.parametrize("fault", [{"hang_after_headers": True}, {"trickle": (10, 0.05)}], ids=["hang", "trickle"])
async def test_http_stream_stall_before_any_event_is_a_timeout_status(rig: RigFactory, fault: dict[str, Any]) -> None:
    respond, _ = replies(1000, **fault)
    async with rig(respond, AGENT) as r:
        status, frames, elapsed = await stream(r, DEADLINE_MS)
    assert status == 504 and json.loads(frames[0][1])["error"]["code"] == "DEADLINE_EXCEEDED"
    assert r.last_headers["x-agw-attempts"] == "1"
    assert SLOW[0] <= elapsed < SLOW[1], elapsed


# -- passthrough ----------------------------------------------------------------------------

PASSTHROUGH_SIZES = {**SIZES, "32MiB": CAP, "33MiB": OVER_CAP}


@pytest.mark.parametrize(
    ("size", "chunked"),
    [(s, c) for s in SIZES for c in (False, True)] + [("32MiB", True), ("33MiB", False)],
)
async def test_passthrough_relays_exact_bytes(rig: RigFactory, size: str, chunked: bool) -> None:
    """Passthrough streams: no cap, any size, byte for byte, both ways."""
    body = filler(PASSTHROUGH_SIZES[size], seed=13).encode()
    sent_up = filler(100 * KIB, seed=17).encode()
    reply = Reply(body=body, headers={"content-type": "application/octet-stream"}, chunked=chunked, max_chunk=256 * KIB)
    async with rig(lambda _r: reply, AGENT) as r:
        async with r.http.post(f"{r.base}/v1/proxy/agent/any/path?q=1", data=sent_up) as response:
            got = await response.read()
            assert response.status == 200 and response.headers["x-agw-attempts"] == "1"
        seen = r.upstream.requests[-1]
    assert got == body
    assert (seen.method, seen.target, seen.body) == ("POST", "/any/path?q=1", sent_up)


@pytest.mark.parametrize(
    "fault",
    [{"cut_after": 5000}, {"content_length": 20000}, {"chunked": True, "cut_after": 5000}],
    ids=["close", "length_promises_more", "chunked_close"],
)
async def test_passthrough_cut_body_is_cut_for_the_caller(rig: RigFactory, fault: dict[str, Any]) -> None:
    """Headers are gone when the body breaks: the caller's connection is cut, never a short body
    that looks whole."""
    reply = Reply(body=filler(10_000, seed=1).encode(), **fault)
    async with rig(lambda _r: reply, AGENT) as r:
        async with r.http.get(f"{r.base}/v1/proxy/agent/x") as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()


async def test_passthrough_stall_after_headers_runs_into_the_deadline(rig: RigFactory) -> None:
    reply = Reply(body=b"x" * 1000, hang_after_headers=True)
    async with rig(lambda _r: reply, AGENT) as r:
        started = time.monotonic()
        async with r.http.get(f"{r.base}/v1/proxy/agent/x", headers={"x-timeout-ms": str(DEADLINE_MS)}) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        assert SLOW[0] <= time.monotonic() - started < SLOW[1]


# -- gRPC -----------------------------------------------------------------------------------


def grpc_request(text: str = "hi") -> pb.InvokeRequest:
    return pb.InvokeRequest(agent="agent", messages=[pb.Message(parts=[pb.Part(text=text)])])


def pb_text(messages: Any) -> str:
    return "".join(p.text for m in messages for p in m.parts)


@pytest.mark.parametrize("size", ["1KB", "65KB", "1MB"])
async def test_grpc_invoke_whole(rig: RigFactory, size: str) -> None:
    respond, text = replies(SIZES[size], chunked=True)
    async with rig(respond, AGENT) as r, grpc.aio.insecure_channel(r.server.addresses.grpc) as channel:
        response = await pb_grpc.AgentGatewayServiceStub(channel).Invoke(grpc_request())
    assert pb_text(response.messages) == text


@pytest.mark.parametrize("size", ["1KB", "1MB"])
async def test_grpc_invoke_stream_whole(rig: RigFactory, size: str) -> None:
    respond, text = replies(SIZES[size])
    async with rig(respond, AGENT) as r, grpc.aio.insecure_channel(r.server.addresses.grpc) as channel:
        items = [item async for item in pb_grpc.AgentGatewayServiceStub(channel).InvokeStream(grpc_request())]
    assert pb_text(i.event.message for i in items if i.HasField("event")) == text
    assert pb_text(items[-1].result.messages) == text


BIG_GRPC = """
listeners:
  http: {address: '127.0.0.1:0'}
  grpc: {address: '127.0.0.1:0', max_message_bytes: 41943040}
agents:
  agent: {kind: http, endpoint: "{url}"}
"""


async def test_grpc_invoke_at_the_cap_with_raised_message_limits(rig: RigFactory) -> None:
    """A 32 MiB reply passes gRPC when the listener's and the client's limits allow it."""
    respond, text = replies(CAP, chunked=True, max_chunk=MIB, max_pause=0.0005)
    options = [("grpc.max_receive_message_length", 40 * MIB)]
    async with rig(respond, BIG_GRPC) as r, grpc.aio.insecure_channel(r.server.addresses.grpc, options=options) as ch:
        response = await pb_grpc.AgentGatewayServiceStub(ch).Invoke(grpc_request())
    assert pb_text(response.messages) == text


async def test_grpc_reply_over_the_listener_limit_is_resource_exhausted(rig: RigFactory) -> None:
    """The default 4 MiB gRPC message limit: a 5 MiB reply is refused with a clear status saying
    what to raise, not cut or hung; a stream of it gets its events, then the same status for the
    final result (which holds the whole text)."""
    respond, text = replies(5 * MIB, chunked=True, max_chunk=MIB, max_pause=0.0005)
    options = [("grpc.max_receive_message_length", 40 * MIB)]
    async with rig(respond, AGENT) as r, grpc.aio.insecure_channel(r.server.addresses.grpc, options=options) as ch:
        stub = pb_grpc.AgentGatewayServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Invoke(grpc_request())
        events: list[pb.InvokeStreamResponse] = []
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for item in stub.InvokeStream(grpc_request()):
                events.append(item)
    for caught in (unary, streamed):
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "listeners.grpc.max_message_bytes" in (caught.value.details() or "")
        assert dict(caught.value.trailing_metadata() or ())["x-agw-attempts"] == "1"
    assert pb_text(e.event.message for e in events) == text


@pytest.mark.parametrize(
    ("fault", "code", "slow"),
    [
        ({"hang_after_headers": True}, grpc.StatusCode.DEADLINE_EXCEEDED, True),
        ({"trickle": (10, 0.05)}, grpc.StatusCode.DEADLINE_EXCEEDED, True),
        ({"cut_after": 500}, grpc.StatusCode.UNAVAILABLE, False),
        ({"content_length": 5000}, grpc.StatusCode.UNAVAILABLE, False),
    ],
    ids=["hang", "trickle", "close", "length_promises_more"],
)
@pytest.mark.parametrize("method", ["Invoke", "InvokeStream"])
async def test_grpc_faults(
    rig: RigFactory, method: str, fault: dict[str, Any], code: grpc.StatusCode, slow: bool
) -> None:
    respond, _ = replies(1000, **fault)
    metadata = (("x-timeout-ms", str(DEADLINE_MS)),)
    async with rig(respond, AGENT) as r, grpc.aio.insecure_channel(r.server.addresses.grpc) as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method == "Invoke":
                await stub.Invoke(grpc_request(), metadata=metadata)
            else:
                async for _ in stub.InvokeStream(grpc_request(), metadata=metadata):
                    pass
        elapsed = time.monotonic() - started
    assert caught.value.code() == code, caught.value.details()
    trailers = dict(caught.value.trailing_metadata() or ())
    assert wire.ERROR_TRAILER in trailers and trailers["x-agw-attempts"] == "1"  # the gateway's answer
    if slow:
        assert SLOW[0] <= elapsed < SLOW[1], elapsed
    else:
        assert elapsed < DEADLINE_MS / 1000


# -- A2A front --------------------------------------------------------------------------------


async def a2a_send(r: Rig) -> dict[str, Any]:
    envelope = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "kind": "message",
                "parts": [{"kind": "text", "text": "hi"}],
                "messageId": "m-1",
            }
        },
    }
    async with r.http.post(
        f"{r.base}/a2a/agent", json=envelope, headers={"x-timeout-ms": str(DEADLINE_MS * 4)}
    ) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer["result"]


@pytest.mark.parametrize("size", ["1KB", "65KB", "1MB"])
async def test_a2a_front_message_send_whole(rig: RigFactory, size: str) -> None:
    respond, text = replies(SIZES[size], chunked=True)
    async with rig(respond, AGENT) as r:
        task = await a2a_send(r)
    assert task["status"]["state"] == "completed"
    assert "".join(p["text"] for a in task["artifacts"] for p in a["parts"]) == text


async def test_a2a_front_cut_reply_fails_the_task(rig: RigFactory) -> None:
    respond, _ = replies(1000, cut_after=500)
    async with rig(respond, AGENT) as r:
        task = await a2a_send(r)
    assert task["status"]["state"] == "failed"
    assert "connection to the agent broke" in task["status"]["message"]["parts"][0]["text"]


# -- background runs ------------------------------------------------------------------------


async def run_to_end(r: Rig, timeout: str | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    payload: dict[str, Any] = {"agent": "agent", "messages": [{"parts": [{"text": "hi"}]}]}
    if timeout:
        payload["options"] = {"timeout": timeout}
    async with r.http.post(f"{r.base}/v1/runs", json=payload) as response:
        assert response.status == 202
        run_id = (await response.json())["runId"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with r.http.get(f"{r.base}/v1/runs/{run_id}") as response:
            run: dict[str, Any] = await response.json()
        if run["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.02)
    if run["status"] != "succeeded":
        return run, None
    async with r.http.get(f"{r.base}/v1/runs/{run_id}/result") as response:
        return run, await response.json()


@pytest.mark.parametrize("size", ["65KB", "1MB"])
async def test_background_run_result_whole(rig: RigFactory, size: str) -> None:
    respond, text = replies(SIZES[size], chunked=True)
    async with rig(respond, AGENT) as r:
        run, result = await run_to_end(r)
    assert run["status"] == "succeeded" and result is not None
    assert answer_text(result) == text


@pytest.mark.parametrize(
    ("fault", "code"),
    [({"cut_after": 500}, "UNAVAILABLE"), ({"hang_after_headers": True}, "DEADLINE_EXCEEDED")],
    ids=["close", "hang"],
)
async def test_background_run_fault_fails_the_run(rig: RigFactory, fault: dict[str, Any], code: str) -> None:
    respond, _ = replies(1000, **fault)
    async with rig(respond, AGENT) as r:
        run, _ = await run_to_end(r, timeout="0.8s")
    assert run["status"] == "failed" and run["error"]["code"] == code, run


# -- the gRPC adapter -------------------------------------------------------------------------

BIG_GRPC_UPSTREAM = """
listeners:
  http: {address: '127.0.0.1:0'}
  grpc: {address: '127.0.0.1:0', max_message_bytes: 41943040}
agents:
  agent: {kind: http, endpoint: "{url}"}
"""


@pytest.mark.parametrize("limit", [None, 40 * MIB], ids=["default_limit", "raised_limit"])
async def test_grpc_adapter_message_limit(rig: RigFactory, gateway_factory: GatewayFactory, limit: int | None) -> None:
    """A gateway calling another through the gRPC adapter: a 5 MiB reply is over the adapter's
    default 4 MiB limit (a clear permanent error, not retried); with the limit raised it arrives whole."""
    respond, text = replies(5 * MIB, chunked=True, max_chunk=MIB, max_pause=0.0005)
    options = f", options: {{max_message_bytes: {limit}}}" if limit else ""
    near = (
        "policies:\n  default: {retry: {max_attempts: 3, backoff: {base: 1ms, max: 2ms}, budget: null}}\n"
        'agents:\n  agent: {kind: grpc, endpoint: "grpc://%s"%s}\n'
    )
    async with rig(respond, BIG_GRPC_UPSTREAM) as far:
        async with gateway_factory(near % (far.server.addresses.grpc, options)) as server:
            async with far.http.post(
                f"http://{server.addresses.http}/v1/agents/agent/invoke",
                json={"messages": [{"parts": [{"text": "hi"}]}]},
            ) as response:
                body = await response.json()
                attempts = response.headers["x-agw-attempts"]
    if limit is None:
        assert (response.status, body["error"]["code"], body["error"]["transient"]) == (502, "UNKNOWN", False)
        assert "options.max_message_bytes" in body["error"]["message"] and attempts == "1"
    else:
        assert response.status == 200 and answer_text(body) == text
