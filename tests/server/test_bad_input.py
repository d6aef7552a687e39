"""Bad caller input answers 400 INVALID_ARGUMENT (gRPC: INVALID_ARGUMENT) with a message, on every front.

Each test is a request that answered 500 INTERNAL before the input was checked at the boundary
(issue 15, defect 6).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import grpc
import pytest

from agentgateway.v1 import events_pb2 as epb
from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import runs_pb2 as rpb
from agentgateway.v1 import state_pb2 as spb
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory

HI = [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}]
# The API key "k-1234" (security.api_keys holds its sha256).
API_KEY_SHA256 = hashlib.sha256(b"k-1234").hexdigest()


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, echo_url: str) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n") as server:
        yield server


class _Errors(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def errors_logged() -> Iterator[list[logging.LogRecord]]:
    """The process's ERROR records during the test: bad input must log none (it is the caller's, not ours)."""
    records: list[logging.LogRecord] = []
    handler = _Errors(records)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)


async def post(url: str, data: str | bytes | io.BytesIO, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def assert_invalid(status: int, body: Any, *words: str) -> None:
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_ARGUMENT", body
    for word in words:
        assert word in body["error"]["message"], body


# -- ids: no control characters, header-safe ------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("sessionId", "a\r\nx-evil: 1"),
    ("requestId", "a\r\nb"),
    ("userId", "a\nb"),
    ("threadId", "a\x00b"),
    ("sessionId", "x" * 257),
])
async def test_http_control_characters_in_body_ids(
    gw: GatewayServer, errors_logged: list[logging.LogRecord], field: str, value: str
) -> None:
    body = {"agent": "echo", "messages": HI, "context": {field: value}}
    status, answer = await post(f"http://{gw.addresses.http}/v1/invoke", json.dumps(body))
    assert_invalid(status, answer, f"context.{field}", "printable ASCII")
    assert not errors_logged


@pytest.mark.parametrize(("field", "value"), [
    ("session_id", "a\r\nx-evil: 1"),
    ("request_id", "a\r\nb"),
    ("user_id", "a\nb"),
    ("thread_id", "caf\u00e9"),
])
async def test_grpc_control_characters_in_body_ids(
    gw: GatewayServer, errors_logged: list[logging.LogRecord], field: str, value: str
) -> None:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        invoke = channel.unary_unary(
            "/agentgateway.v1.AgentGatewayService/Invoke",
            request_serializer=pb.InvokeRequest.SerializeToString,
            response_deserializer=pb.InvokeResponse.FromString,
        )
        request = pb.InvokeRequest(agent="echo", messages=[pb.Message(parts=[pb.Part(text="hi")])])
        setattr(request.context, field, value)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await invoke(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "printable ASCII" in (caught.value.details() or "")
    assert not errors_logged


async def raw_http(address: str, request: bytes) -> tuple[int, Any]:
    """One HTTP/1.1 request written byte for byte (clients refuse to send non-ASCII header bytes)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def raw_post(path: str, header: bytes, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n".encode() + header + b"\r\n\r\n" + body
    )


async def test_http_non_ascii_byte_in_session_header(gw: GatewayServer, errors_logged: list[logging.LogRecord]) -> None:
    assert gw.addresses.http is not None
    body = json.dumps({"agent": "echo", "messages": HI}).encode()
    status, answer = await raw_http(gw.addresses.http, raw_post("/v1/invoke", b"x-session-id: caf\xe9\xff", body))
    assert_invalid(status, answer, "x-session-id")
    assert not errors_logged


async def test_http_non_utf8_api_key_header(gateway_factory: GatewayFactory, echo_url: str) -> None:
    config = (
        "listeners:\n  http: {address: '127.0.0.1:0', auth: [api_key]}\n"
        f"security:\n  api_keys: [{{identity: team-a, sha256: '{API_KEY_SHA256}'}}]\n"
        f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
    )
    async with gateway_factory(config) as server:
        assert server.addresses.http is not None
        body = json.dumps({"agent": "echo", "messages": HI}).encode()
        status, answer = await raw_http(server.addresses.http, raw_post("/v1/invoke", b"x-api-key: k-\xff\xfe", body))
    assert_invalid(status, answer, "x-api-key", "UTF-8")


# -- unpaired surrogates ------------------------------------------------------------


LONE = '"\\ud800"'
SURROGATE_BODIES = {
    "event body": ("/v1/events/events.test", '{"a": ' + LONE + "}"),
    "data key": ("/v1/invoke", '{"agent": "echo", "messages": [{"parts": [{"data": {' + LONE + ": 1}}]}]}"),
    "params key": ("/v1/invoke", '{"agent": "echo", "messages": ' + json.dumps(HI) + ', "options": {"params": {' + LONE + ": 1}}}"),
    "baggage value": ("/v1/invoke", '{"agent": "echo", "messages": ' + json.dumps(HI) + ', "context": {"baggage": {"k": ' + LONE + "}}}"),
    "stream text": ("/v1/stream", '{"agent": "echo", "messages": [{"parts": [{"text": "\\udfff"}]}]}'),
    "run data": ("/v1/runs", '{"agent": "echo", "messages": [{"parts": [{"data": ' + LONE + "}]}]}"),
    "state value": ("/v1/state/session/k?scopeId=s", '{"value": {' + LONE + ": 1}}"),
}


@pytest.mark.parametrize("case", sorted(SURROGATE_BODIES))
async def test_http_unpaired_surrogates(gw: GatewayServer, errors_logged: list[logging.LogRecord], case: str) -> None:
    path, body = SURROGATE_BODIES[case]
    method = "PUT" if path.startswith("/v1/state") else "POST"
    async with aiohttp.ClientSession() as session, session.request(
        method, f"http://{gw.addresses.http}{path}", data=body, headers={"x-session-id": "s"}
    ) as response:
        assert_invalid(response.status, await response.json(content_type=None), "surrogate")
    assert not errors_logged


async def test_http_paired_surrogate_escapes_are_fine(gw: GatewayServer) -> None:
    body = '{"agent": "echo", "messages": [{"parts": [{"text": "\\ud83d\\ude00 \\\\ud800"}]}]}'
    status, answer = await post(f"http://{gw.addresses.http}/v1/invoke", body)
    assert status == 200, answer
    assert answer["messages"][0]["parts"][0]["text"] == "echo: \U0001f600 \\ud800"


async def test_grpc_invalid_utf8_strings(gw: GatewayServer, errors_logged: list[logging.LogRecord]) -> None:
    """protobuf refuses strings that are not UTF-8 (a CESU-8 surrogate here) before anything else sees them."""
    assert gw.addresses.grpc is not None
    subject = b"events.\xed\xa0\x80"
    publish = b"\x0a" + bytes([len(subject)]) + subject  # field 1 (subject), written by hand
    assert epb.PublishEventRequest.FromString(b"\x0a\x04a.bc").subject == "a.bc"  # the framing is right
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        raw = channel.unary_unary("/agentgateway.v1.EventsService/PublishEvent")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(publish, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not errors_logged


# -- nesting depth ------------------------------------------------------------------


DEEP = "[" * 2_000_000
DEEP_BODIES = {
    "invoke": ("POST", "/v1/invoke"),
    "stream": ("POST", "/v1/stream"),
    "runs": ("POST", "/v1/runs"),
    "events": ("POST", "/v1/events/events.test"),
    "state": ("PUT", "/v1/state/session/k?scopeId=s"),
}


@pytest.mark.parametrize("route", sorted(DEEP_BODIES))
async def test_http_deeply_nested_body(gw: GatewayServer, errors_logged: list[logging.LogRecord], route: str) -> None:
    method, path = DEEP_BODIES[route]
    async with aiohttp.ClientSession() as session, session.request(
        method, f"http://{gw.addresses.http}{path}", data=io.BytesIO(DEEP.encode()), headers={"x-session-id": "s"}
    ) as response:
        assert_invalid(response.status, await response.json(content_type=None), "more than 32 levels")
    assert not errors_logged


async def test_a2a_deeply_nested_body_is_a_parse_error(gw: GatewayServer, errors_logged: list[logging.LogRecord]) -> None:
    envelope = '{"jsonrpc": "2.0", "id": 1, "params": ' + DEEP
    status, answer = await post(f"http://{gw.addresses.http}/a2a/echo", io.BytesIO(envelope.encode()))
    assert status == 200
    assert answer["error"]["code"] == -32700
    assert "more than 32 levels" in answer["error"]["message"]
    assert not errors_logged


async def test_nesting_limit_is_configurable_and_counts_only_real_brackets(
    gateway_factory: GatewayFactory, echo_url: str
) -> None:
    config = (
        "listeners:\n  http: {address: '127.0.0.1:0', max_json_depth: 8}\n"
        f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
    )

    def nested(depth: int) -> Any:
        value: Any = "[[[[[[[[[[{{{{{{{{{{"  # brackets inside a string do not nest
        for _ in range(depth):
            value = [value]
        return value

    async with gateway_factory(config) as server:
        url = f"http://{server.addresses.http}/v1/invoke"
        # the body opens 5 levels (object, messages, message, parts, part) before the data
        fits = {"agent": "echo", "messages": [{"parts": [{"data": nested(3)}]}]}
        status, answer = await post(url, json.dumps(fits))
        assert status == 200, answer
        too_deep = {"agent": "echo", "messages": [{"parts": [{"data": nested(4)}]}]}
        status, answer = await post(url, json.dumps(too_deep))
        assert_invalid(status, answer, "more than 8 levels")


async def test_grpc_state_json_too_deep(gw: GatewayServer, errors_logged: list[logging.LogRecord]) -> None:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        put = channel.unary_unary(
            "/agentgateway.v1.StateService/PutState",
            request_serializer=spb.PutStateRequest.SerializeToString,
            response_deserializer=spb.PutStateResponse.FromString,
        )
        request = spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, scope_id="s", key="k", json="[" * 1_000_000)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await put(request, metadata=(("x-session-id", "s"),), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 32 levels" in (caught.value.details() or "")
    assert not errors_logged


async def test_grpc_run_with_control_characters_in_ids(gw: GatewayServer, errors_logged: list[logging.LogRecord]) -> None:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        submit = channel.unary_unary(
            "/agentgateway.v1.RunService/SubmitRun",
            request_serializer=rpb.SubmitRunRequest.SerializeToString,
            response_deserializer=rpb.SubmitRunResponse.FromString,
        )
        invocation = pb.InvokeRequest(
            agent="echo", messages=[pb.Message(parts=[pb.Part(text="hi")])], context=pb.Context(session_id="s\r\nx")
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await submit(rpb.SubmitRunRequest(invocation=invocation), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not errors_logged


# -- whole numbers in queries and headers ------------------------------------------------


@pytest.mark.parametrize(("path", "header"), [
    ("/v1/runs?sessionId=s&pageSize=%C2%B2", None),
    ("/v1/runs/run_x/events", "\u00b2"),
    ("/v1/state/session?scopeId=s&limit=%C2%B2", None),
])
async def test_http_unicode_digits_are_not_numbers(
    gw: GatewayServer, errors_logged: list[logging.LogRecord], path: str, header: str | None
) -> None:
    """'²'.isdigit() is true but int('²') fails: these answered 500."""
    headers = {"x-session-id": "s", **({"last-event-id": header} if header else {})}
    async with aiohttp.ClientSession() as session, session.get(
        f"http://{gw.addresses.http}{path}", headers=headers
    ) as response:
        assert_invalid(response.status, await response.json(content_type=None))
    assert not errors_logged


# -- requests the libraries refuse ----------------------------------------------------------


async def test_http_unparseable_request_is_400_without_an_error_log(
    gw: GatewayServer, errors_logged: list[logging.LogRecord]
) -> None:
    """aiohttp answers 400 itself, and logged an ERROR with a traceback for each: anyone could fill the log."""
    assert gw.addresses.http is not None
    raw = b"GET /v1/agents HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nx-session-id: a\x00b\r\n\r\n"
    host, port = gw.addresses.http.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    assert not errors_logged


@pytest.mark.parametrize("method", [
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
])
async def test_grpc_library_services_refuse_garbage_with_invalid_argument(
    gw: GatewayServer, errors_logged: list[logging.LogRecord], method: str
) -> None:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if "Reflection" in method:
                call = channel.stream_stream(method)(iter([b"\x00"]), timeout=10)
                async for _ in call:
                    pass
            else:
                await channel.unary_unary(method)(b"\x00", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert not errors_logged


@pytest.mark.parametrize("path", ["/v1/invoke", "/no/such/route"])
async def test_http_unknown_expect_is_417(gw: GatewayServer, errors_logged: list[logging.LogRecord], path: str) -> None:
    """aiohttp answers Expect before any middleware and echoed a non-UTF-8 value into its 417: a 500."""
    assert gw.addresses.http is not None
    body = json.dumps({"agent": "echo", "messages": HI}).encode()
    status, answer = await raw_http(gw.addresses.http, raw_post(path, b"expect: \xf1\xce!", body))
    assert status == 417, answer
    assert answer["error"]["code"] == "INVALID_ARGUMENT"
    assert not errors_logged


async def test_http_expect_100_continue_still_works(gw: GatewayServer) -> None:
    body = json.dumps({"agent": "echo", "messages": HI}).encode()
    async with aiohttp.ClientSession() as session, session.post(
        f"http://{gw.addresses.http}/v1/invoke", data=body, expect100=True
    ) as response:
        assert response.status == 200


@pytest.mark.parametrize("path", ["/v1/invoke", "/v1/events/events.test", "/v1/proxy/echo/invoke"])
async def test_http_body_that_does_not_decode(gw: GatewayServer, errors_logged: list[logging.LogRecord], path: str) -> None:
    """Content-Encoding: gzip on a body that is not gzip: aiohttp's decoding error was a 500."""
    assert gw.addresses.http is not None
    status, answer = await raw_http(gw.addresses.http, raw_post(path, b"content-encoding: gzip", b"{}"))
    assert_invalid(status, answer, "cannot be read")
    assert not errors_logged


@pytest.mark.parametrize(("text", "words"), [
    ("[" * 100_000, "levels deep"),
    ('"\\ud800"', "surrogate"),
    ('{"a": NaN}', "NaN"),
])
async def test_grpc_json_text_fields_are_checked(
    gw: GatewayServer, errors_logged: list[logging.LogRecord], text: str, words: str
) -> None:
    """Structured data crosses gRPC as JSON text (Part.data_json): the same decoder as HTTP bodies."""
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        invoke = channel.unary_unary(
            "/agentgateway.v1.AgentGatewayService/Invoke",
            request_serializer=pb.InvokeRequest.SerializeToString,
            response_deserializer=pb.InvokeResponse.FromString,
        )
        request = pb.InvokeRequest(agent="echo", messages=[pb.Message(parts=[pb.Part(data_json=text)])])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await invoke(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert words in (caught.value.details() or "")
    assert not errors_logged
