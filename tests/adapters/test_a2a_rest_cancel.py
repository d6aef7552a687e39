"""An A2A task over HTTP+JSON is cancelled even when the caller's deadline is what ended the stream.

The cancel used to go out with the call's own (spent) deadline and so never left; the kit's
``send_cancel`` sends it without one (``cancel_abandoned`` bounds it instead).
"""

from __future__ import annotations

import asyncio

from gateway.adapters.a2a import A2AAdapter
from gateway.adapters.mock_upstream import MockReply, MockRequest, MockUpstream
from gateway.model import AgentSpec, Attempt, Context, Invocation, Message

REST = "http://agent.test/rest"
SPEC = AgentSpec("rest", "a2a", "http://agent.test", {"binding": "HTTP+JSON", "rpc_url": REST})
TASK = {"taskId": "t-9", "contextId": "c-9"}


def agent(request: MockRequest) -> MockReply:
    if request.path.endswith(":cancel"):
        return MockReply.json({"id": "t-9", "status": {"state": "TASK_STATE_CANCELED"}})
    frames = [
        {"task": {"id": "t-9", "contextId": "c-9", "status": {"state": "TASK_STATE_WORKING"}}},
        {"artifactUpdate": {**TASK, "artifact": {"artifactId": "a", "parts": [{"text": "tick "}]}, "append": True}},
    ]
    return MockReply.sse([(None, frame) for frame in frames])


async def test_a_stream_left_at_its_deadline_cancels_the_task() -> None:
    upstream = MockUpstream(agent)
    context = Context().with_timeout(0.2)
    call = Attempt(Invocation("rest", (Message.user("slow"),), context), {"x-timeout-ms": "200"})
    async with upstream.resources() as resources:
        adapter = A2AAdapter(SPEC, resources)
        stream = adapter.stream(call)
        async for event in stream:
            if event.type == "delta":
                break
        await asyncio.sleep(0.3)  # the caller's deadline passes before the stream is left
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        await adapter.aclose()
    cancel = upstream.requests[-1]
    assert (cancel.method, cancel.url) == ("POST", f"{REST}/tasks/t-9:cancel")
    assert "x-timeout-ms" not in cancel.headers
