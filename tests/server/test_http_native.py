"""The native HTTP/1.1 server of the HTTP listener (gateway/http1/server.py) against aiohttp's.

Every case sends the same bytes to a gateway with ``server.http_server: native`` (the default)
and one with ``aiohttp`` and compares what comes back; the rest are the network as it is:
pipelined requests mixing native and aiohttp routes, bytes split anywhere, smuggling attempts,
limits, upgrades and callers that leave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import httptools
import pytest

from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory

SEED = random.randrange(1 << 30)
HI = [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}]


def config(echo_url: str, server: str, http: str = "") -> str:
    return (
        f"listeners:\n  http: {{address: '127.0.0.1:0'{http}}}\n  grpc: null\n"
        f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
        f"server: {{drain_timeout: 2s, http_server: {server}}}\n"
    )


@pytest.fixture
async def both(gateway_factory: GatewayFactory, echo_url: str) -> AsyncIterator[dict[str, GatewayServer]]:
    async with (
        gateway_factory(config(echo_url, "native")) as native,
        gateway_factory(config(echo_url, "aiohttp")) as old,
    ):
        yield {"native": native, "aiohttp": old}


class Answer:
    """One parsed HTTP/1.1 response."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.done = False

    def json(self) -> Any:
        return json.loads(self.body)


class Answers:
    """The responses on one connection, in order (httptools' response parser)."""

    def __init__(self, head_only: bool = False) -> None:
        self.list: list[Answer] = []
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only

    def on_message_begin(self) -> None:
        self.list.append(Answer())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.list[-1].headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.list[-1].status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        self.list[-1].body += data

    def on_message_complete(self) -> None:
        self.list[-1].done = True

    def final(self) -> list[Answer]:
        return [a for a in self.list if a.done and a.status >= 200]


async def exchange(
    address: str, pieces: list[bytes], expect: int, pause: float = 0.0, timeout: float = 10.0
) -> tuple[list[Answer], bool]:
    """Write ``pieces`` (pausing between them), read until ``expect`` answers or the server closes."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    answers = Answers()
    closed = False
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        async with asyncio.timeout(timeout):
            while len(answers.final()) < expect:
                data = await reader.read(65536)
                if not data:
                    closed = True
                    break
                answers.parser.feed_data(data)
            if not closed:
                # A server that closes after its last answer says so at once.
                try:
                    async with asyncio.timeout(0.2):
                        closed = await reader.read(1) == b""
                except TimeoutError:
                    pass
    finally:
        writer.close()
    return answers.final(), closed


def post(path: str, body: bytes, *headers: str, close: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gw", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += list(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: gw\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()


INVOKE = json.dumps({"messages": HI}).encode()


def shape(answer: Answer) -> tuple[int, str | None, str | None, Any]:
    """What must match between the two servers: status, content type, attempts, body less its ids."""
    body: Any = answer.body
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        # Event names and payloads, less the ids and the data parts (the headers the agent saw).
        frames = [f for f in answer.body.decode().split("\n\n") if f.strip()]
        body = []
        for frame in frames:
            fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            body.append((fields.get("event"), re.sub("[0-9a-f]{16,32}", "ID", fields.get("data", ""))))
    elif answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
        if isinstance(body.get("error"), dict):
            body["error"].pop("requestId", None)
        body.pop("context", None)
        if "messages" in body:  # the echo agent's reply: its text, and the names of the headers it saw (ids differ)
            body["messages"] = [
                [p.get("text") or sorted(p["data"]["headers"]) for p in m["parts"]] for m in body["messages"]
            ]
    return answer.status, answer.headers.get("content-type"), answer.headers.get("x-agw-attempts"), body


CASES: dict[str, bytes] = {
    "invoke": post("/v1/agents/echo/invoke", INVOKE, close=True),
    "invoke by body": post("/v1/invoke", json.dumps({"agent": "echo", "messages": HI}).encode(), close=True),
    "unknown agent": post("/v1/agents/nope/invoke", INVOKE, close=True),
    "encoded agent": post("/v1/agents/ec%68o/invoke", INVOKE, close=True),
    "agent mismatch": post("/v1/agents/echo/invoke", json.dumps({"agent": "x", "messages": HI}).encode(), close=True),
    "not json": post("/v1/agents/echo/invoke", b"{nope", close=True),
    "deep json": post("/v1/agents/echo/invoke", b"[" * 200 + b"]" * 200, close=True),
    "bad field": post("/v1/agents/echo/invoke", b'{"messages": 3}', close=True),
    "bad context": post(
        "/v1/invoke", json.dumps({"agent": "echo", "context": {"sessionId": "\n"}}).encode(), close=True
    ),
    "bad expect": post("/v1/agents/echo/invoke", INVOKE, "Expect: teapot", close=True),
    "get on invoke": get("/v1/agents/echo/invoke", close=True),
    "trailing slash": post("/v1/agents/echo/invoke/", INVOKE, close=True),
    "non-utf8 header": post("/v1/agents/echo/invoke", INVOKE, "x-session-id: caf@", close=True).replace(
        b"caf@", b"caf\xe9"
    ),
    "chunked body": (
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(INVOKE[i : i + 7]), INVOKE[i : i + 7]) for i in range(0, len(INVOKE), 7))
        + b"0\r\n\r\n"
    ),
    "query": post("/v1/agents/echo/invoke?a=1&a=2&b=", INVOKE, close=True),
    "stream": post(
        "/v1/agents/echo/stream", json.dumps({"messages": [{"parts": [{"text": "a b c"}]}]}).encode(), close=True
    ),
    "stream by body": post("/v1/stream", json.dumps({"agent": "echo", "messages": HI}).encode(), close=True),
    "stream unknown agent": post("/v1/agents/nope/stream", INVOKE, close=True),
    "stream not json": post("/v1/agents/echo/stream", b"[", close=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_native_answers_as_aiohttp_does(both: dict[str, GatewayServer], case: str) -> None:
    shapes = {}
    for name, server in both.items():
        assert server.addresses.http is not None
        answers, _ = await exchange(server.addresses.http, [CASES[case]], 1)
        assert len(answers) == 1, (name, case)
        shapes[name] = shape(answers[0])
    assert shapes["native"] == shapes["aiohttp"]
    assert shapes["native"][0] < 500


async def test_body_over_the_limit_is_413_on_both(gateway_factory: GatewayFactory, echo_url: str) -> None:
    big = json.dumps({"messages": [{"role": "ROLE_USER", "parts": [{"text": "x" * 5000}]}]}).encode()
    statuses = {}
    for server in ("native", "aiohttp"):
        async with gateway_factory(config(echo_url, server, ", max_body_bytes: 4096")) as gw:
            assert gw.addresses.http is not None
            answers, _closed = await exchange(gw.addresses.http, [post("/v1/agents/echo/invoke", big)], 1)
            statuses[server] = (answers[0].status, answers[0].json()["error"]["code"])
    assert statuses["native"] == statuses["aiohttp"] == (413, "INVALID_ARGUMENT")


async def test_pipelined_requests_mixing_both_servers_answer_in_order(both: dict[str, GatewayServer]) -> None:
    address = both["native"].addresses.http
    assert address is not None
    texts = [f"n{i}" for i in range(6)]
    requests = []
    for i, text in enumerate(texts):
        payload = json.dumps({"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}]}).encode()
        requests.append(post("/v1/agents/echo/invoke", payload))
        if i % 2:
            requests.append(get("/v1/agents"))  # aiohttp's, between two native ones
    requests.append(get("/healthz", close=True))
    answers, closed = await exchange(address, [b"".join(requests)], len(requests))
    assert [a.status for a in answers] == [200] * len(requests)
    invoked = [a.json()["messages"][0]["parts"][0]["text"] for a in answers if "messages" in a.json()]
    assert invoked == [f"echo: {t}" for t in texts]
    assert answers[-1].json() == {"status": "ok"}
    assert closed


@pytest.mark.parametrize("trial", range(6))
async def test_bytes_split_anywhere_give_the_same_answers(both: dict[str, GatewayServer], trial: int) -> None:
    rng = random.Random(SEED + trial)
    logging.getLogger(__name__).info("seed %d", SEED + trial)
    address = both["native"].addresses.http
    assert address is not None
    stream = b"".join(
        [
            post("/v1/agents/echo/invoke", INVOKE),
            get("/v1/agents"),
            CASES["chunked body"].replace(b"Connection: close\r\n", b""),
            post("/v1/invoke", json.dumps({"agent": "echo", "messages": HI}).encode(), close=True),
        ]
    )
    cuts = sorted(rng.sample(range(1, len(stream)), 12))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    answers, closed = await exchange(address, pieces, 4, pause=0.005)
    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert closed


async def test_keep_alive_goes_back_and_forth(both: dict[str, GatewayServer]) -> None:
    address = both["native"].addresses.http
    assert address is not None
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    answers = Answers()
    try:
        for request in [get("/healthz"), post("/v1/agents/echo/invoke", INVOKE), get("/v1/agents")] * 3:
            writer.write(request)
            wanted = len(answers.final()) + 1
            async with asyncio.timeout(5):
                while len(answers.final()) < wanted:
                    answers.parser.feed_data(await reader.read(65536))
    finally:
        writer.close()
    assert [a.status for a in answers.final()] == [200] * 9


@pytest.mark.parametrize(
    "attack",
    [
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /v1/agents HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n"
        b"{}{}GET /v1/agents HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\nGET /v1/agents HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"POST /v1/agents/echo/invoke HTTP/1.1\r\nHost: gw\r\n Content-Length: 4\r\n\r\n{}{}",
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\nb\r\n\r\n",
    ],
)
async def test_smuggling_attempts_get_one_400_and_the_connection_ends(
    both: dict[str, GatewayServer], attack: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    address = both["native"].addresses.http
    assert address is not None
    with caplog.at_level(logging.ERROR):
        answers, closed = await exchange(address, [attack], 2, timeout=3)
    assert [a.status for a in answers] == [400]  # nothing smuggled through after it
    assert answers[0].json()["error"]["code"] == "INVALID_ARGUMENT"
    assert closed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_oversized_head_is_refused_before_it_is_all_read(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(config(echo_url, "native", ", max_header_bytes: 2048")) as gw:
        assert gw.addresses.http is not None
        long_url, _ = await exchange(gw.addresses.http, [get("/healthz?" + "a" * 4000)], 1)
        many = "".join(f"x-h{i}: {'v' * 1000}\r\n" for i in range(40))
        many_fields, closed = await exchange(
            gw.addresses.http, [get("/healthz").replace(b"\r\n\r\n", b"\r\n" + many.encode() + b"\r\n")], 1
        )
    assert long_url[0].status == 400 and "Got more than 2048 bytes" in long_url[0].json()["error"]["message"]
    assert many_fields[0].status == 400 and "Got more than" in many_fields[0].json()["error"]["message"]
    assert closed


async def test_expect_100_continue_is_answered_before_the_body(both: dict[str, GatewayServer]) -> None:
    for server in both.values():
        assert server.addresses.http is not None
        host, port = server.addresses.http.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = post("/v1/agents/echo/invoke", INVOKE, "Expect: 100-continue", close=True)
            head, _, body = head.partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(body)
            rest = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        assert rest.startswith(b"HTTP/1.1 200 ")


async def test_a_caller_that_leaves_mid_body_costs_nothing(
    both: dict[str, GatewayServer], caplog: pytest.LogCaptureFixture
) -> None:
    address = both["native"].addresses.http
    assert address is not None
    host, port = address.rsplit(":", 1)
    with caplog.at_level(logging.ERROR):
        for cut in (10, 60, len(post("/v1/agents/echo/invoke", INVOKE)) - 3):
            _reader, writer = await asyncio.open_connection(host, int(port))
            # Content-Length says more than is sent, then the caller resets.
            writer.write(post("/v1/agents/echo/invoke", INVOKE)[:cut])
            await writer.drain()
            writer.transport.abort()
        await asyncio.sleep(0.2)
        answers, _ = await exchange(address, [post("/v1/agents/echo/invoke", INVOKE, close=True)], 1)
    assert answers[0].status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_upgrade_goes_to_aiohttp_and_the_connection_is_its(both: dict[str, GatewayServer]) -> None:
    address = both["native"].addresses.http
    assert address is not None
    request = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    answers, _ = await exchange(address, [request], 1, timeout=5)
    assert len(answers) == 1 and answers[0].status < 500
