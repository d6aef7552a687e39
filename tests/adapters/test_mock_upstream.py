"""MockUpstream: a fake agent that answers from a function, under the real transport's mapping."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.adapters.http import HttpAgentAdapter
from gateway.adapters.mock_upstream import MockReply, MockRequest, MockUpstream
from gateway.model import AgentSpec, Attempt, Invocation, Message, UpstreamUnavailable

SPEC = AgentSpec("echo", "http", "http://agent.test/base", {"headers": {"x-api-key": "k"}})
CALL = Attempt(Invocation("echo", (Message.user("hi"),)), {"x-request-id": "r-1"})


async def test_an_async_handler_answers_and_sees_the_request() -> None:
    async def agent(request: MockRequest) -> MockReply:
        text = request.json["messages"][0]["parts"][0]["text"]
        return MockReply.json({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": f"echo: {text}"}]}]})

    upstream = MockUpstream(agent)
    async with upstream.resources() as resources:
        result = await HttpAgentAdapter(SPEC, resources).invoke(CALL)
    assert result.messages[0].text == "echo: hi"
    (request,) = upstream.requests
    assert (request.method, request.url) == ("POST", "http://agent.test/base/invoke")
    assert request.headers["x-api-key"] == "k" and request.headers["x-request-id"] == "r-1"
    assert request.ssl is True  # the system CAs: no tls block


async def test_statuses_and_transport_failures_map_as_with_a_real_agent() -> None:
    replies: list[MockReply | Exception] = [MockReply.text("busy", 503), aiohttp.ServerDisconnectedError()]

    def agent(request: MockRequest) -> MockReply:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async with MockUpstream(agent).resources() as resources:
        adapter = HttpAgentAdapter(SPEC, resources)
        with pytest.raises(UpstreamUnavailable) as busy:
            await adapter.invoke(CALL)
        with pytest.raises(UpstreamUnavailable) as broken:
            await adapter.invoke(CALL)
    assert busy.value.details["upstream_status"] == 503 and busy.value.upstream_body == "busy"
    assert "ServerDisconnectedError" in broken.value.message


async def test_a_stream_split_anywhere_parses_whole() -> None:
    reply = MockReply.sse([("delta", {"type": "delta", "message": {"parts": [{"text": "é"}]}})], chunk_size=1)
    async with MockUpstream(lambda request: reply).resources() as resources:
        events = [e async for e in HttpAgentAdapter(SPEC, resources).stream(CALL)]
    assert [(e.type, e.message.text if e.message else None) for e in events] == [("delta", "é")]
