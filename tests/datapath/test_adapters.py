"""Every adapter against the fault upstream, through the HTTP invoke front: the caller gets the
agent's text exactly, at every size up to the 32 MiB cap in random chunks with random pauses,
a clear error past the cap, a timeout for a trickle or a stall, and a transient error for a
body cut short (a close mid-body, a Content-Length promising more than was sent)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.datapath.shapes import CAP, KIB, OVER_CAP, SHAPES, SIZES, STREAM_SHAPES, Shape, filler, stream_responder
from tests.helpers.datapath import Rig, RigFactory, answer_text, read_sse
from tests.helpers.fault_upstream import Reply

ADAPTERS = sorted(SHAPES)


def agents(shape: Shape) -> str:
    return "agents:\n" + shape.agent_yaml("agent", "{url}")


class Holder:
    url = ""


def responder_for(shape: Shape, main: Reply) -> tuple[Callable[..., Reply], Holder]:
    holder = Holder()
    return shape.responder(main, lambda: holder.url), holder


async def call(
    rig: RigFactory, shape: Shape, main: Reply, timeout_ms: int | None = None
) -> tuple[int, dict, float, Rig]:
    respond, holder = responder_for(shape, main)
    async with rig(respond, agents(shape)) as r:
        holder.url = r.upstream.url
        status, body, elapsed = await r.invoke("agent", timeout_ms=timeout_ms)
        return status, body, elapsed, r


NONEMPTY = [name for name, size in SIZES.items() if size]


@pytest.mark.parametrize("size", NONEMPTY)
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_whole_reply_at_every_size(rig: RigFactory, adapter: str, size: str, chunked: bool) -> None:
    shape = SHAPES[adapter]
    main, text = shape.reply(SIZES[size], chunked=chunked)
    status, body, _, r = await call(rig, shape, main)
    assert status == 200, body
    assert answer_text(body) == text
    assert r.last_headers["x-agw-attempts"] == "1"


# The caller's deadline for the fault cases; the margins around it are generous (2 cores, shared).
DEADLINE_MS = 800

FAULTS = {
    # (reply changes, expected status, expected code, slow: runs into the deadline)
    "trickle": ({"trickle": (10, 0.05)}, 504, "DEADLINE_EXCEEDED", True),
    "headers_then_hang": ({"hang_after_headers": True}, 504, "DEADLINE_EXCEEDED", True),
    "close_mid_body": ({"cut_after": 500}, 503, "UNAVAILABLE", False),
    "length_promises_more": ({"content_length": 5000}, 503, "UNAVAILABLE", False),
    "length_promises_less": ({"content_length": 300, "chunks": "one"}, 503, "UNAVAILABLE", False),
    "chunked_close_mid_body": ({"chunked": True, "cut_after": 500}, 503, "UNAVAILABLE", False),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_faulty_reply(rig: RigFactory, adapter: str, fault: str) -> None:
    changes, want_status, want_code, slow = FAULTS[fault]
    shape = SHAPES[adapter]
    main, _ = shape.reply(1000, **changes)
    status, body, elapsed, r = await call(rig, shape, main, timeout_ms=DEADLINE_MS)
    assert (status, body["error"]["code"]) == (want_status, want_code), body
    assert body["error"]["transient"] is True
    assert r.last_headers["x-agw-attempts"] == "1"
    if slow:  # ran into the deadline: not at once, not much later
        assert DEADLINE_MS / 1000 * 0.75 <= elapsed < DEADLINE_MS / 1000 + 2.0, elapsed
    else:
        assert elapsed < DEADLINE_MS / 1000, elapsed


EMPTY = {
    # LangGraph's /runs/wait answers the run's values; no values come back as a null data part.
    "http": (200, None),
    "langgraph": (200, None),
    "mastra": (502, "UNKNOWN"),
    "crewai": (404, "NOT_FOUND"),
    "a2a": (502, "UNKNOWN"),
}


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_empty_reply(rig: RigFactory, adapter: str) -> None:
    """Zero bytes: a null data part where the protocol allows any JSON, else a clear permanent error."""
    shape = SHAPES[adapter]
    main, _ = shape.reply(0)
    status, body, _, _ = await call(rig, shape, main)
    want_status, want_code = EMPTY[adapter]
    assert status == want_status, body
    if want_code is None:
        assert body["messages"][0]["parts"] == [{"data": None}], body
    else:
        assert body["error"]["code"] == want_code and body["error"]["transient"] is False, body


# The cap on two adapters only (32 MiB bodies take a while): exactly at it passes whole, past it
# is refused: from the Content-Length before reading, or as the chunks arrive.
@pytest.mark.parametrize("adapter", ["http", "langgraph"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_reply_at_the_cap_arrives_whole(rig: RigFactory, adapter: str, chunked: bool) -> None:
    shape = SHAPES[adapter]
    main, text = shape.reply(CAP, chunked=chunked, max_chunk=1024 * 1024, max_pause=0.0005)
    status, body, _, _ = await call(rig, shape, main)
    assert status == 200, body.get("error")
    assert answer_text(body) == text


@pytest.mark.parametrize("adapter", ["http", "langgraph"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_reply_past_the_cap_is_refused(rig: RigFactory, adapter: str, chunked: bool) -> None:
    shape = SHAPES[adapter]
    main, _ = shape.reply(OVER_CAP, chunked=chunked, max_chunk=1024 * 1024, max_pause=0.0005)
    status, body, _, _ = await call(rig, shape, main)
    assert (status, body["error"]["code"], body["error"]["transient"]) == (502, "UNKNOWN", False), body
    if chunked:
        assert body["error"]["message"] == f"the agent's reply exceeded {CAP} bytes"
    else:
        assert body["error"]["message"] == f"the agent's reply declares {OVER_CAP} bytes, over the {CAP}-byte limit"


# -- streams, through the HTTP stream front -------------------------------------------------------


async def open_stream(r: Rig, timeout_ms: int | None = None) -> tuple[int, list[tuple[str, str]]]:
    headers = {"x-timeout-ms": str(timeout_ms)} if timeout_ms else {}
    async with r.http.post(
        f"{r.base}/v1/agents/agent/stream", json={"messages": [{"parts": [{"text": "hi"}]}]}, headers=headers
    ) as response:
        if response.status != 200:
            return response.status, [("status", await response.text())]
        return 200, await read_sse(response)


def streamed_text(frames: list[tuple[str, str]]) -> str:
    events = [json.loads(data)["event"] for name, data in frames if name == "event"]
    return "".join(p.get("text", "") for e in events for p in (e.get("message") or {}).get("parts", []))


@pytest.mark.parametrize("size", ["1KB", "65KB", "1MB"])
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_every_adapter_streams_whole(rig: RigFactory, adapter: str, size: str) -> None:
    holder = Holder()
    if adapter in STREAM_SHAPES:
        text = filler(SIZES[size], seed=19)
        respond = stream_responder(adapter, text, lambda: holder.url, chunked=True)
    else:  # CrewAI streams by polling: the same JSON replies as a call
        main, text = SHAPES[adapter].reply(SIZES[size], chunked=True)
        respond = SHAPES[adapter].responder(main, lambda: holder.url)
    async with rig(respond, agents(SHAPES[adapter])) as r:
        holder.url = r.upstream.url
        status, frames = await open_stream(r)
    assert status == 200, frames
    assert streamed_text(frames) == text
    assert frames[-1][0] == "result"


@pytest.mark.parametrize("adapter", sorted(STREAM_SHAPES))
async def test_every_adapter_stream_cut_after_an_event_ends_in_an_error_frame(rig: RigFactory, adapter: str) -> None:
    holder = Holder()
    text = filler(40 * KIB, seed=23)
    first = len(STREAM_SHAPES[adapter].frame(text[: 16 * KIB]))
    respond = stream_responder(adapter, text, lambda: holder.url, cut_after=first + 100)
    async with rig(respond, agents(SHAPES[adapter])) as r:
        holder.url = r.upstream.url
        # The deadline only bounds a hang here (the cut must end the stream at once); streams honour
        # it now, so it is roomy enough for a loaded machine.
        status, frames = await open_stream(r, 10 * DEADLINE_MS)
    assert status == 200
    assert streamed_text(frames) == text[: 16 * KIB]
    name, data = frames[-1]
    assert name == "error" and json.loads(data)["error"]["code"] == "UNAVAILABLE", frames[-1]


@pytest.mark.parametrize("size", NONEMPTY)
async def test_a_text_reply_in_pieces_arrives_whole(rig: RigFactory, size: str) -> None:
    """A plain-text reply (the HTTP adapter takes it as one text part) used to come back 200 and
    cut short when it arrived in more than one piece."""
    text = filler(SIZES[size], seed=29)
    reply = Reply(body=text.encode(), headers={"content-type": "text/plain; charset=utf-8"}, max_chunk=4096)
    async with rig(lambda _r: reply, agents(SHAPES["http"])) as r:
        status, body, _ = await r.invoke("agent")
    assert status == 200 and answer_text(body) == text
