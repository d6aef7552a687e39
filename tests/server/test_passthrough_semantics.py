"""The passthrough as an HTTP intermediary (RFC 9110): the caller's headers as they were, Via on
both hops, counted like every call, routable by method and path, spans by the conventions."""

from __future__ import annotations

import asyncio

from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import GatewayFactory, Starter
from tests.helpers.metrics import get, samples, value
from tests.security.recording import recording_upstream


async def raw_request(address: str, head: str, body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
    """Send exactly these bytes (no client library adds a header) and read the whole answer."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_and_headers, _, payload = answer.partition(b"\r\n\r\n")
    lines = status_and_headers.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, field_value = line.partition(":")
        headers[name.strip().lower()] = field_value.strip()
    return lines[0], headers, payload


async def test_headers_arrive_as_the_caller_sent_them_with_via(gateway_factory: GatewayFactory) -> None:
    async with recording_upstream() as upstream, gateway_factory(f"agents:\n  lg: {{kind: http, endpoint: '{upstream.url}/base'}}\n") as gw:
        assert gw.addresses.http is not None
        head = (
            "POST /v1/proxy/lg/threads HTTP/1.1\nHost: gw\nConnection: close\nContent-Type: application/json\n"
            "X-Custom: one\nX-Custom: two\nVia: 1.0 edge-proxy\nContent-Length: 2\n"
        )
        status, headers, _ = await raw_request(gw.addresses.http, head, b"{}")
        assert status.startswith("HTTP/1.1 200")
        seen = upstream.requests[-1]
        # A client that advertised no encoding gets no gzip body it cannot read: none was asked for.
        assert "accept-encoding" not in seen.headers
        assert "user-agent" not in seen.headers
        assert seen.headers.getall("x-custom") == ["one", "two"]
        assert seen.headers["via"] == "1.0 edge-proxy, 1.1 agent-gateway"
        assert seen.target == "/base/threads"
        assert headers["via"] == "1.1 agent-gateway"
        # What the caller did advertise still passes.
        head = "GET /v1/proxy/lg/x HTTP/1.1\nHost: gw\nConnection: close\nAccept-Encoding: br\nUser-Agent: curl/8\n"
        await raw_request(gw.addresses.http, head)
        assert upstream.requests[-1].headers["accept-encoding"] == "br"
        assert upstream.requests[-1].headers["user-agent"] == "curl/8"


async def test_proxied_calls_are_counted_with_their_status(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path}, status=404 if "missing" in request.path else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    url = await serve_app(app)
    async with gateway_factory(f"agents:\n  lg: {{kind: http, endpoint: '{url}'}}\n") as gw:
        assert gw.addresses.http is not None
        for path in ("/v1/proxy/lg/ok", "/v1/proxy/lg/ok", "/v1/proxy/lg/missing"):
            await raw_request(gw.addresses.http, f"GET {path} HTTP/1.1\nHost: gw\nConnection: close\n")
        _, text = await get(f"http://{gw.addresses.admin}/metrics")
    metrics = samples(text)
    assert value(metrics, "agw_requests_total", agent="lg", route="", outcome="OK") == 2
    assert value(metrics, "agw_requests_total", agent="lg", route="", outcome="NOT_FOUND") == 1


async def test_passthrough_routes_by_method_and_path_prefix(gateway_factory: GatewayFactory) -> None:
    async with recording_upstream() as main, recording_upstream() as writes:
        config = f"""
agents:
  lg: {{kind: http, endpoint: '{main.url}'}}
  lg-writer: {{kind: http, endpoint: '{writes.url}'}}
routes:
  - name: thread-writes
    match: {{agent: lg, methods: [POST], path_prefix: /threads}}
    target: lg-writer
"""
        async with gateway_factory(config) as gw:
            assert gw.addresses.http is not None
            post = "POST /v1/proxy/lg/threads/t1/runs HTTP/1.1\nHost: gw\nConnection: close\nContent-Length: 2\n"
            await raw_request(gw.addresses.http, post, b"{}")
            await raw_request(gw.addresses.http, "GET /v1/proxy/lg/threads/t1 HTTP/1.1\nHost: gw\nConnection: close\n")
            await raw_request(gw.addresses.http, "POST /v1/proxy/lg/assistants HTTP/1.1\nHost: gw\nConnection: close\nContent-Length: 0\n")
    assert [r.request_line for r in writes.requests] == ["POST /threads/t1/runs HTTP/1.1"]
    assert [r.request_line for r in main.requests] == ["GET /threads/t1 HTTP/1.1", "POST /assistants HTTP/1.1"]


async def test_passthrough_spans(gateway_factory: GatewayFactory, span_exporter: InMemorySpanExporter) -> None:
    async with recording_upstream() as upstream, gateway_factory(f"agents:\n  lg: {{kind: http, endpoint: '{upstream.url}'}}\n") as gw:
        assert gw.addresses.http is not None
        await raw_request(gw.addresses.http, "GET /v1/proxy/lg/a/b?q=1 HTTP/1.1\nHost: gw\nConnection: close\n")
    spans = span_exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert server.name == "GET /v1/proxy/{agent}/{tail}"
    assert server.attributes is not None and client.attributes is not None
    assert server.attributes["http.route"] == "/v1/proxy/{agent}/{tail}"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.scheme"] == "http"
    port = int(upstream.url.rsplit(":", 1)[1])
    assert client.attributes["http.request.method"] == "GET"
    assert (client.attributes["server.address"], client.attributes["server.port"]) == ("127.0.0.1", port)
    assert client.attributes["url.full"] == f"{upstream.url}/a/b?q=1"
    assert client.attributes["http.response.status_code"] == 200
