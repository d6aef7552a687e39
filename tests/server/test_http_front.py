"""The HTTP front end to end: real gateway, real upstream agents, loopback only."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post, seen_headers

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
INBOUND_TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def agents_yaml(echo_url: str, **extra: str) -> str:
    more = "".join(f"  {name}:\n    kind: http\n    endpoint: {url}\n" for name, url in extra.items())
    return f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n{more}"


async def test_invoke_injects_context_headers_upstream(
    gateway_factory: GatewayFactory, echo_url: str, span_exporter: InMemorySpanExporter
) -> None:
    async with gateway_factory(agents_yaml(echo_url)) as gw:
        status, headers, response = await post(
            f"http://{gw.addresses.http}/v1/agents/echo/invoke",
            body("hi", context={"sessionId": "sess-1", "threadId": "thr-1", "userId": "u-1"},
                 options={"timeout": "5s"}),
            {"traceparent": INBOUND_TRACEPARENT, "baggage": "tenant=acme", "x-request-id": "req-42"},
        )
    assert status == 200
    assert response["agent"] == "echo"
    assert response["messages"][0]["parts"][0]["text"] == "echo: hi"
    seen = seen_headers(response)
    assert seen["x-session-id"] == "sess-1"
    assert seen["x-thread-id"] == "thr-1"
    assert seen["x-user-id"] == "u-1"
    assert seen["x-request-id"] == "req-42" == headers["x-request-id"]
    # The hop count and the ids travel as baggage too (the ids under their OpenTelemetry names).
    assert re.fullmatch(
        r"tenant=acme,agw.hops=1,agw.tree=[0-9a-f]{32},agw.calls=1,"
        r"session.id=sess-1,gen_ai.conversation.id=thr-1,enduser.id=u-1",
        seen["baggage"],
    )
    assert 0 < int(seen["x-timeout-ms"]) <= 5000
    # The upstream's parent span is the gateway's attempt span, in the caller's trace.
    _version, trace_id, parent_span, _flags = seen["traceparent"].split("-")
    assert trace_id == TRACE_ID
    spans = span_exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    attempt = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
    assert format(attempt.context.span_id, "016x") == parent_span
    assert attempt.attributes is not None and attempt.attributes["session.id"] == "sess-1"
    assert attempt.attributes["gen_ai.agent.name"] == "echo"


async def test_request_id_is_generated_and_headers_fill_context(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(agents_yaml(echo_url)) as gw:
        status, headers, response = await post(
            f"http://{gw.addresses.http}/v1/invoke", body(agent="echo"), {"x-session-id": "from-header"}
        )
    assert status == 200
    seen = seen_headers(response)
    assert len(seen["x-request-id"]) == 32
    assert headers["x-request-id"] == seen["x-request-id"] == response["context"]["requestId"]
    assert seen["x-session-id"] == "from-header"
    assert "x-timeout-ms" not in seen  # no deadline anywhere: none is invented


async def test_stream_relays_events_then_result(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(agents_yaml(echo_url)) as gw, aiohttp.ClientSession() as session:
        url = f"http://{gw.addresses.http}/v1/agents/echo/stream"
        async with session.post(url, json=body("one two"), headers={"x-session-id": "s9"}) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    names = [f.split("\n")[0] for f in frames]
    assert names == ["event: event"] * 4 + ["event: result"]
    payloads = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    deltas = [p["event"]["message"]["parts"][0]["text"] for p in payloads[:3]]
    assert deltas == ["echo: ", "one ", "two "]
    status_event = payloads[3]["event"]
    assert status_event["type"] == "status"
    assert status_event["data"]["headers"]["x-session-id"] == "s9"
    assert [p["event"]["sequence"] for p in payloads[:-1]] == ["1", "2", "3", "4"]
    result = payloads[-1]["result"]
    assert result["messages"][0]["parts"][0]["text"] == "echo: one two "


async def test_list_agents(gateway_factory: GatewayFactory, echo_url: str) -> None:
    yaml_text = agents_yaml(echo_url) + "routes:\n  - name: main\n    match: {agent: main}\n    target: echo\n"
    async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as session:
        async with session.get(f"http://{gw.addresses.http}/v1/agents") as response:
            listing = await response.json()
    assert listing["agents"] == [
        {"name": "echo", "kind": "http", "endpoint": echo_url, "streaming": True}
    ]
    assert listing["routes"] == [{"name": "main", "matchAgent": "main", "targets": ["echo"]}]


@pytest.mark.parametrize(
    ("payload", "status", "code", "fragment"),
    [
        ("{not json", 400, "INVALID_ARGUMENT", "not valid JSON"),
        ([1, 2], 400, "INVALID_ARGUMENT", "must be a JSON object"),
        (body(agent="echo", bogus=1), 400, "INVALID_ARGUMENT", "bogus"),
        (body(), 400, "INVALID_ARGUMENT", "'agent' field is required"),
        ({"agent": "echo"}, 400, "INVALID_ARGUMENT", "at least one message"),
        ({"agent": "echo", "messages": [{"parts": [{}]}]}, 400, "INVALID_ARGUMENT", "'text', 'data' or 'file'"),
        (body(agent="ghost"), 404, "NOT_FOUND", "no agent or route named 'ghost'"),
        (body(agent="echo", options={"timeout": "-1s"}), 400, "INVALID_ARGUMENT", "timeout"),
    ],
)
async def test_bad_requests_get_structured_errors(
    gateway_factory: GatewayFactory, echo_url: str, payload: Any, status: int, code: str, fragment: str
) -> None:
    async with gateway_factory(agents_yaml(echo_url)) as gw:
        got_status, _, response = await post(f"http://{gw.addresses.http}/v1/invoke", payload)
    assert got_status == status
    assert response["error"]["code"] == code
    assert fragment in response["error"]["message"]
    assert "Traceback" not in json.dumps(response)


async def test_body_too_large_is_413(gateway_factory: GatewayFactory, echo_url: str) -> None:
    yaml_text = "listeners:\n  http: {address: '127.0.0.1:0', max_body_bytes: 1024}\n  grpc: null\n" + agents_yaml(echo_url)
    async with gateway_factory(yaml_text) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/invoke", body("x" * 4096, agent="echo"))
    assert status == 413
    assert response["error"]["code"] == "INVALID_ARGUMENT"


async def test_unreachable_upstream_is_503_naming_the_agent(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(agents_yaml(echo_url, down="http://127.0.0.1:1")) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/invoke", body(agent="down"))
    assert status == 503
    assert response["error"]["code"] == "UNAVAILABLE"
    assert response["error"]["agent"] == "down"
    assert response["error"]["transient"] is True
    assert "cannot connect" in response["error"]["message"]


def failing_upstream(status: int, text: str = "", headers: dict[str, str] | None = None,
                     content_type: str = "application/json") -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, text=text, headers=headers, content_type=content_type)

    app = web.Application()
    app.router.add_post("/invoke", handler)
    app.router.add_post("/stream", handler)
    return app


@pytest.mark.parametrize(
    ("upstream_status", "text", "status", "code", "transient"),
    [
        (500, '{"oops": 1}', 502, "UNKNOWN", False),
        (503, "busy", 503, "UNAVAILABLE", True),
        (429, "slow down", 503, "UNAVAILABLE", True),
        (504, "", 504, "DEADLINE_EXCEEDED", True),
        (400, '{"detail": "bad"}', 502, "FAILED_PRECONDITION", False),
        (200, "{malformed", 502, "UNKNOWN", False),
    ],
)
async def test_upstream_failures_are_classified(
    gateway_factory: GatewayFactory, echo_url: str, serve_app: Starter,
    upstream_status: int, text: str, status: int, code: str, transient: bool,
) -> None:
    url = await serve_app(failing_upstream(upstream_status, text, {"retry-after": "7"}))
    async with gateway_factory(agents_yaml(echo_url, bad=url)) as gw:
        got, headers, response = await post(f"http://{gw.addresses.http}/v1/invoke", body(agent="bad"))
    assert (got, response["error"]["code"], response["error"]["transient"]) == (status, code, transient)
    assert response["error"]["agent"] == "bad"
    if upstream_status in (429, 503):
        assert headers["Retry-After"] == "7"


async def test_hanging_upstream_hits_the_deadline(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/invoke", hang)
    url = await serve_app(app)
    yaml_text = f"agents:\n  slow:\n    kind: http\n    endpoint: {url}\n    timeout: 200ms\n"
    async with gateway_factory(yaml_text) as gw:
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, _, response = await post(f"http://{gw.addresses.http}/v1/invoke", body(agent="slow"))
        elapsed = loop.time() - started
        release.set()
    assert status == 504
    assert response["error"]["code"] == "DEADLINE_EXCEEDED"
    assert elapsed < 2.0


async def test_stream_failure_before_first_event_gets_a_status(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(agents_yaml(echo_url, down="http://127.0.0.1:1")) as gw:
        status, headers, response = await post(f"http://{gw.addresses.http}/v1/agents/down/stream", body())
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    assert response["error"]["agent"] == "down"


async def test_stream_failure_midway_ends_with_an_error_event(gateway_factory: GatewayFactory,
                                                               serve_app: Starter) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"type": "delta", "message": {"parts": [{"text": "partial"}]}}\n\n')
        await response.write(b"data: {this is not json but is text}\n\n")
        await response.write(b"event: error\ndata: model crashed\n\n")
        return response

    app = web.Application()
    app.router.add_post("/stream", cut)
    url = await serve_app(app)
    async with gateway_factory(f"agents:\n  cut:\n    kind: http\n    endpoint: {url}\n") as gw, \
            aiohttp.ClientSession() as session:
        async with session.post(f"http://{gw.addresses.http}/v1/agents/cut/stream", json=body()) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: event")
    assert "partial" in frames[0]
    assert "{this is not json but is text}" in frames[1]
    assert frames[-1].startswith("event: error")
    error = json.loads(frames[-1].split("data: ", 1)[1])["error"]
    assert error["agent"] == "cut"
    assert "model crashed" in error["message"]


async def test_untrusted_stream_events_are_bounded_and_validated(gateway_factory: GatewayFactory,
                                                                  serve_app: Starter) -> None:
    async def bad_event(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"type": "delta", "message": {"parts": "not-a-list"}}\n\n')
        return response

    async def huge_event(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(64):  # never ends the event: the bound must cut it
            await response.write(b"data: " + b"z" * 1024 + b"\n")
        return response

    async def not_sse(request: web.Request) -> web.Response:
        return web.json_response({"messages": []})

    app = web.Application()
    app.router.add_post("/bad/stream", bad_event)
    app.router.add_post("/huge/stream", huge_event)
    app.router.add_post("/json/stream", not_sse)
    url = await serve_app(app)
    yaml_text = "agents:\n" + "".join(
        f"  {name}:\n    kind: http\n    endpoint: {url}/{name}\n    options: {{max_event_bytes: 4096}}\n"
        for name in ("bad", "huge", "json")
    )
    async with gateway_factory(yaml_text) as gw:
        for name, fragment in [("bad", "malformed event"), ("huge", "exceeded 4096 bytes"),
                               ("json", "expected an event stream")]:
            status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/{name}/stream", body())
            assert status == 502, name
            assert fragment in response["error"]["message"], name
            assert response["error"]["agent"] == name
