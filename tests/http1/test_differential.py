"""The lean client against aiohttp's, request for request: identical bytes, identical errors.

Every case sends the same request through both clients behind ``HttpTransport.open`` and reads
the reply with the one bounded reader (``read_body``) inside the one error mapping
(``mapped_errors``): what an adapter sees must not depend on which client sent it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.model import UpstreamTls
from gateway.protocols.sse import parse_sse
from gateway.transport import MAX_ERROR_BODY_BYTES, mapped_errors
from tests.conftest import Starter
from tests.helpers.fault_upstream import FaultUpstream, Reply, SeenRequest, json_reply
from tests.http1.conftest import AUTO_HEADERS, Clients, call_with
from tests.security.pki import CertificateAuthority

BODY = json.dumps({"answer": "x" * 3000, "n": list(range(200))}).encode()

REPLIES = {
    "honest, random pieces": json_reply(BODY),
    "honest, one write": json_reply(BODY, chunks="one"),
    "chunked": json_reply(BODY, chunked=True),
    "read until close": json_reply(BODY, content_length="none"),
    "empty": json_reply(b""),
    "chunked, empty": json_reply(b"", chunked=True),
    "close mid-body": json_reply(BODY, cut_after=500),
    "chunked, close mid-body": json_reply(BODY, chunked=True, cut_after=500),
    "length promises more": json_reply(BODY, content_length=len(BODY) + 4000),
    "length promises less": json_reply(BODY, content_length=300, chunks="one"),
    "error status": Reply(status=500, body=b"Traceback: boom", headers={"content-type": "text/plain"}),
    "not found": Reply(status=404, body=b"no such thing"),
    # Framing said two ways (chunked and a length, two lengths): refused by both (smuggling shapes).
    "chunked and a length": Reply(
        body=BODY, chunked=True, headers={"content-type": "application/json", "content-length": "10"}
    ),
    "two lengths": Reply(body=BODY, headers={"content-type": "application/json", "content-length": "10"}),
    "extra headers": Reply(body=b"{}", headers={"x-upstream": "v\u00e9", "content-type": "application/json"}),
}


@pytest.mark.parametrize("name", list(REPLIES))
async def test_faulty_and_honest_replies_read_the_same(clients: Clients, name: str) -> None:
    async with FaultUpstream(REPLIES[name]) as upstream:
        via_aiohttp, via_lean = await clients.both(upstream.url, body={"q": 1})
    assert via_lean == via_aiohttp
    reply = REPLIES[name]
    if name in ("two lengths", "chunked and a length"):
        assert via_lean.error is not None and via_lean.error[0] == "UpstreamUnavailable"
    elif not reply.faulty or reply.content_length == "none":  # a body ended by the close is whole
        assert via_lean.body == reply.body
        assert via_lean.status == reply.status
    else:
        assert via_lean.error is not None and via_lean.error[0] == "UpstreamUnavailable"


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(BODY, hang_after_headers=True),
        json_reply(BODY, trickle=(100, 0.2)),
        json_reply(BODY, chunked=True, trickle=(100, 0.2)),
    ],
    ids=["stops after the head", "trickles", "trickles chunked"],
)
async def test_the_deadline_cuts_a_stalled_or_trickling_reply_alike(clients: Clients, reply: Reply) -> None:
    async with FaultUpstream(reply) as upstream:
        loop = asyncio.get_running_loop()
        started = loop.time()
        via_aiohttp, via_lean = await clients.both(upstream.url, timeout=0.4)
        elapsed = loop.time() - started
    assert via_lean == via_aiohttp
    assert via_lean.error == ("UpstreamTimeout", True, "the agent did not answer in time")
    assert elapsed < 2.5  # two calls of 0.4 s each, not the upstream's 30 s hang


async def test_a_declared_length_over_the_cap_is_refused_before_reading(clients: Clients) -> None:
    async with FaultUpstream(json_reply(BODY)) as upstream:
        via_aiohttp, via_lean = await clients.both(upstream.url, limit=1000)
    assert via_lean == via_aiohttp
    assert via_lean.error is not None and "declares" in via_lean.error[2]


async def test_a_chunked_body_growing_past_the_cap_fails_as_bytes_arrive(clients: Clients) -> None:
    async with FaultUpstream(json_reply(BODY, chunked=True)) as upstream:
        via_aiohttp, via_lean = await clients.both(upstream.url, limit=1000)
    assert via_lean == via_aiohttp
    assert via_lean.error == ("UpstreamError", True, "the agent's reply exceeded 1000 bytes")


async def test_an_error_body_is_truncated_at_the_same_byte(clients: Clients) -> None:
    big = b"E" * (3 * MAX_ERROR_BODY_BYTES)
    async with FaultUpstream(Reply(status=500, body=big, chunked=True)) as upstream:
        via_aiohttp, via_lean = await clients.both(upstream.url, limit=MAX_ERROR_BODY_BYTES, truncate=True)
    assert via_lean == via_aiohttp
    assert via_lean.body == big[:MAX_ERROR_BODY_BYTES]


async def test_a_refused_connection_is_unavailable_and_never_reached(clients: Clients) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        via_aiohttp, via_lean = await clients.both(f"http://127.0.0.1:{port}")
    assert via_lean == via_aiohttp
    assert via_lean.error is not None and via_lean.error[:2] == ("UpstreamUnavailable", False)
    assert via_lean.error[2].startswith("cannot connect to the agent: Connect call failed")


async def test_the_upstream_receives_the_same_request(clients: Clients) -> None:
    seen: list[SeenRequest] = []

    def answer(request: SeenRequest) -> Reply:
        seen.append(request)
        return json_reply(b"{}")

    async with FaultUpstream(answer) as upstream:
        body = {"text": "h\u00e9llo", "n": [1, 2.5, None]}
        for path in ("/runs/wait?x=1&y=a%2Fb", "/a b/\u00e9t\u00e9", "/.well-known/agent-card.json", "/x/../y"):
            await clients.both(upstream.url, "POST", path, body)
        await clients.both(upstream.url, "GET", "/threads/t-1")
    assert len(seen) == 10
    for via_aiohttp, via_lean in zip(seen[0::2], seen[1::2], strict=True):
        assert (via_lean.method, via_lean.target, via_lean.body) == (
            via_aiohttp.method,
            via_aiohttp.target,
            via_aiohttp.body,
        )
        assert {k: v for k, v in via_lean.headers.items() if k not in AUTO_HEADERS} == {
            k: v for k, v in via_aiohttp.headers.items() if k not in AUTO_HEADERS
        }
    assert seen[1].target == "/runs/wait?x=1&y=a/b"  # yarl's quoting, kept by both
    assert seen[3].target == "/a%20b/%C3%A9t%C3%A9"
    assert "accept-encoding" not in seen[1].headers  # replies come uncompressed


# Real aiohttp servers


@pytest.fixture
async def aiohttp_agent(serve_app: Starter) -> str:
    async def gzipped(_request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(BODY), headers={"content-encoding": "gzip", "content-type": "application/json"}
        )

    async def head(_request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/gzip", gzipped)
    app.router.add_route("*", "/plain", head)
    app.router.add_post("/echo", echo)
    return await serve_app(app)


async def test_a_compressed_reply_is_decoded_alike(clients: Clients, aiohttp_agent: str) -> None:
    via_aiohttp, via_lean = await clients.both(aiohttp_agent, "GET", "/gzip")
    assert via_lean == via_aiohttp
    assert via_lean.body == BODY


async def test_head_has_headers_and_no_body_and_the_pool_goes_on(clients: Clients, aiohttp_agent: str) -> None:
    via_aiohttp, via_lean = await clients.both(aiohttp_agent, "HEAD", "/plain", keep=("content-length",))
    assert via_lean == via_aiohttp
    assert via_lean.body == b"" and via_lean.headers["content-length"] == str(len(BODY))
    via_aiohttp, via_lean = await clients.both(aiohttp_agent, "GET", "/plain")
    assert via_lean == via_aiohttp and via_lean.body == BODY


async def test_sse_arrives_event_by_event_through_both(clients: Clients, serve_app: Starter) -> None:
    """Each event reaches the reader before the next is written (no buffering), in either client."""
    gates: list[asyncio.Event] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        gate = asyncio.Event()
        gates.append(gate)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"event: tick\ndata: {i}\n\n".encode())
            await asyncio.wait_for(gate.wait(), 5)  # until the client has read this event
            gate.clear()
        return response

    app = web.Application()
    app.router.add_post("/stream", stream)
    url = await serve_app(app)
    results = []
    for transport in clients.transports(url):
        events = []
        async for event in transport.stream_sse(call_with(5), "POST", "/stream", {"q": 1}):
            events.append((event.event, event.data))
            gates[-1].set()
        results.append(events)
    assert results[1] == results[0] == [("tick", "0"), ("tick", "1"), ("tick", "2")]


async def test_a_stream_cut_mid_event_fails_alike(clients: Clients) -> None:
    sse = b"".join(f"event: tick\ndata: {i}\n\n".encode() for i in range(50))
    reply = Reply(body=sse, headers={"content-type": "text/event-stream"}, chunked=True, cut_after=len(sse) // 2)
    errors = []
    async with FaultUpstream(reply) as upstream:
        for transport in clients.transports(upstream.url):
            try:
                with mapped_errors("agent"):
                    async for _ in parse_sse(_body(transport, upstream.url)):
                        pass
            except Exception as exc:
                errors.append((type(exc).__name__, str(exc).replace("ClientPayloadError", "IncompleteBody")))
    assert (
        errors[1]
        == errors[0]
        == ("UpstreamUnavailable", "the connection to the agent broke: IncompleteBody (agent 'agent')")
    )


async def _body(transport: object, url: str) -> AsyncIterator[bytes]:
    from gateway.transport import HttpTransport

    assert isinstance(transport, HttpTransport)
    async with transport.open(call_with(5), "GET", url + "/s", None, {}) as response:
        async for chunk in response.content.iter_any():
            yield chunk


# TLS: the agent's CA, server name and client certificate


@pytest.fixture
async def mtls_agent(tmp_path: Path, serve_app: Starter) -> tuple[str, UpstreamTls, CertificateAuthority]:
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("agent.internal", dns_names=("agent.internal",), stem="server")
    client = ca.issue("gateway", stem="client")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_file))
    context.load_cert_chain(server.cert, server.key)
    context.verify_mode = ssl.CERT_REQUIRED

    async def who(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        return web.json_response({"client": subject.get("commonName")})

    app = web.Application()
    app.router.add_get("/who", who)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    tls = UpstreamTls(
        ca_file=str(ca.cert_file), cert_file=str(client.cert), key_file=str(client.key), server_name="agent.internal"
    )
    yield f"https://127.0.0.1:{port}", tls, ca
    await runner.cleanup()


async def test_tls_with_the_agents_ca_server_name_and_client_certificate(
    clients: Clients, mtls_agent: tuple[str, UpstreamTls, CertificateAuthority]
) -> None:
    url, tls, _ = mtls_agent
    via_aiohttp, via_lean = await clients.both(url, "GET", "/who", tls=tls)
    assert via_lean == via_aiohttp
    assert json.loads(via_lean.body) == {"client": "gateway"}


async def test_tls_to_the_wrong_name_or_without_the_ca_fails_alike(
    clients: Clients, mtls_agent: tuple[str, UpstreamTls, CertificateAuthority]
) -> None:
    url, tls, _ = mtls_agent
    for wrong in (
        UpstreamTls(tls.ca_file, tls.cert_file, tls.key_file, "other.internal"),
        UpstreamTls(None, tls.cert_file, tls.key_file, "agent.internal"),
    ):
        via_aiohttp, via_lean = await clients.both(url, "GET", "/who", tls=wrong)
        assert via_lean == via_aiohttp
        assert via_lean.error is not None and via_lean.error[:2] == ("UpstreamUnavailable", False)
