"""Hostile input, fuzzed within a fixed budget in the normal test run (issue 15).

JSON bodies and headers on every HTTP route (invoke, stream, runs, state, events, the A2A
front, passthrough, admin), raw bytes as the request message of every gRPC method (ours,
health, reflection), mutated YAML through the config loader. The property: caller input
never gets a 5xx (every route points at a healthy echo agent, so no 502/504 is an
upstream's), never a traceback in a body, never an ERROR log record, never a hang.

Hypothesis runs with a fixed seed, so ``make test`` is reproducible; the seed is printed
(shown on failure). ``AGW_FUZZ_SEED=<n>`` explores other inputs, ``AGW_FUZZ_SCALE=<k>``
multiplies every budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from agentgateway.v1 import events_pb2, gateway_pb2, runs_pb2, state_pb2
from gateway.config import ConfigError, load_config_text
from gateway.protocols.sse import SseParser, SseProtocolError
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory

# The gateway serves on another thread while hypothesis draws, and OpenTelemetry's ids come from the
# global `random`: hypothesis would take that for a strategy using `random` (and fail at random).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
SEED = int(os.environ.get("AGW_FUZZ_SEED", "15"))
SCALE = float(os.environ.get("AGW_FUZZ_SCALE", "1"))
ROOT = Path(__file__).resolve().parents[2]
# A call that takes longer than this is a hang (the echo agent answers in milliseconds).
CASE_TIMEOUT = 10.0


def budget(examples: int) -> settings:
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def announce(test: str) -> None:
    print(f"{test}: hypothesis seed {SEED} (reproduce with AGW_FUZZ_SEED={SEED})")


# -- strategies -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
ids = st.one_of(st.sampled_from(["s-1", "sess-2", "r-1"]), st.sampled_from(["", " ", "a\r\nb", "é", "\x00", "x" * 300]),
                st.text(max_size=12))
# Bodies shaped like requests, with wrong types and unknown keys mixed in.
request_like = st.fixed_dictionaries(
    {},
    optional={
        "agent": st.one_of(st.just("echo"), st.text(max_size=10), json_values),
        "messages": st.one_of(json_values, st.lists(st.fixed_dictionaries(
            {}, optional={"role": st.one_of(st.sampled_from(["ROLE_USER", "ROLE_AGENT", "BAD"]), json_values),
                          "parts": st.one_of(json_values, st.lists(st.dictionaries(
                              st.sampled_from(["text", "data", "file", "metadata", "x"]), json_values,
                              max_size=2), max_size=3))}), max_size=3)),
        "context": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "sessionId": ids, "threadId": ids, "userId": ids, "requestId": ids,
            "baggage": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)})),
        "options": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "timeout": st.one_of(st.sampled_from(["1s", "-1s", "0.5s", "abc", "1e99s", "0.000000001s"]), json_values),
            "idempotent": json_values,
            "params": json_values})),
        "webhookUrl": st.one_of(st.sampled_from(["http://127.0.0.1:9/x", "ftp://x", ""]), json_values),
        "zzz": json_values,
    },
)
valid_request = st.builds(
    lambda text, ctx: {"agent": "echo", "messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}],
                       "context": ctx},
    st.text(max_size=30), st.fixed_dictionaries({}, optional={"sessionId": ids, "requestId": ids}),
)
a2a_envelope = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"]),
     "method": st.sampled_from(["SendMessage", "message/send", "SendStreamingMessage", "message/stream", "GetTask",
                                "tasks/get", "nope"])},
    optional={
        "id": json_values,
        "params": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "id": json_values,
            "message": st.one_of(json_values, st.fixed_dictionaries({}, optional={
                "role": st.sampled_from(["user", "ROLE_USER", "agent"]),
                "messageId": ids, "contextId": ids, "taskId": ids,
                "parts": st.one_of(json_values, st.lists(st.one_of(
                    st.fixed_dictionaries({"kind": st.just("text"), "text": st.text(max_size=10)}),
                    st.fixed_dictionaries({"text": st.text(max_size=10)}),
                    st.fixed_dictionaries({"data": json_values}),
                    st.dictionaries(st.sampled_from(["kind", "text", "data", "file", "raw", "url"]), json_values)),
                    max_size=3))}))})),
    },
)
state_body = st.fixed_dictionaries(
    {}, optional={"value": json_values, "bytes": st.one_of(st.sampled_from(["aGk=", "!!"]), json_values),
                  "ttl": st.one_of(st.sampled_from(["1s", "0s", "-1s", "1h"]), json_values)},
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


FULL_REQUEST: dict[str, Any] = {
    "agent": "echo",
    "messages": [{"role": "ROLE_USER", "messageId": "m1", "metadata": {"m": 1}, "parts": [
        {"text": "hi"}, {"data": {"k": [1, 2]}}, {"file": {"uri": "http://x", "mediaType": "t/p", "name": "n"}}]}],
    "context": {"sessionId": "s-1", "threadId": "t", "userId": "u", "requestId": "r", "baggage": {"k": "v"}},
    "options": {"timeout": "5s", "params": {"p": 1}, "idempotent": True},
}
HOSTILE_VALUES = st.one_of(
    st.sampled_from([None, True, 0, -1, 2**64, 1.5, 1e308, "", "x", "\r\n", "é", "\x00", [], {}, [1], {"a": 1},
                     "ROLE_USER", "1s", "-5s", "999999999999s", "echo", "a" * 300]),
    json_values,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


@st.composite
def mutated_request(draw: st.DrawFn) -> dict[str, Any]:
    """A complete, valid InvokeRequest with one to three fields replaced, dropped or added."""
    body: dict[str, Any] = json.loads(json.dumps(FULL_REQUEST))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(body))))
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if kind == "replace":
            parent[path[-1]] = draw(HOSTILE_VALUES)
        elif kind == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            key = draw(st.sampled_from(["zz", "text", "data", "file", "role", "kind", "session_id", "baggage"]))
            parent[key] = draw(HOSTILE_VALUES)
    return body


garbage = st.one_of(
    request_like.map(_dumps), a2a_envelope.map(_dumps), state_body.map(_dumps), json_values.map(_dumps),
    st.binary(max_size=64),
    st.sampled_from([b"", b"[" * 5000, b'{"a": "\\ud800"}', b'{"a": NaN}', b"1" * 5000, b'"\xff"']),
)
# What each kind of route takes when well-formed; half the bodies are, so calls get past validation.
WELL_FORMED = {
    "invoke": st.one_of(valid_request, mutated_request()).map(_dumps),
    "a2a": a2a_envelope.map(_dumps),
    "state": state_body.map(_dumps),
    "event": json_values.map(_dumps),
    "none": st.just(b""),
}


def body_for(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(WELL_FORMED[kind], garbage)


HEADER_NAMES = [
    "x-session-id", "x-thread-id", "x-user-id", "x-request-id", "x-timeout-ms", "traceparent", "tracestate",
    "baggage", "last-event-id", "if-match", "if-none-match", "x-event-id", "idempotency-key", "content-type",
    "a2a-version", "authorization", "x-api-key", "accept", "x-agw-anything", "origin", "content-encoding", "expect",
]
# Header values: any bytes but CR and LF (those end the header; aiohttp answers 400 for the rest).
header_values = st.one_of(
    st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(max_size=24).map(lambda t: t.replace("\r", "").replace("\n", "").encode()),
    st.sampled_from([b"0", b"-1", b"1e999", b"\xc2\xb2", b"*", b'"x"', b"W/\"x\"", b"application/json; charset=bogus",
                     b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b"Bearer a.b.c", b"k=v;p=1,%zz",
                     b"gzip", b"deflate", b"br", b"100-continue", b"http://127.0.0.1:1", b"null"]),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=3)
# The caller's session, unless the fuzzed headers name another: state and runs need one.
SESSION = [("x-session-id", b"s-1")]
segments = st.one_of(st.sampled_from(["echo", "session", "s-1", "events.test", "agent", "x"]), st.text(max_size=12))


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="") or "x"


# Every HTTP route of the gateway: (method, path with {segments}, body kind); "*" is any method.
ROUTES = [
    ("POST", "/v1/invoke", "invoke"), ("POST", "/v1/stream", "invoke"),
    ("POST", "/v1/agents/{0}/invoke", "invoke"), ("POST", "/v1/agents/{0}/stream", "invoke"),
    ("GET", "/v1/agents", "none"), ("GET", "/healthz", "none"),
    ("POST", "/v1/runs", "invoke"), ("POST", "/v1/agents/{0}/runs", "invoke"),
    ("GET", "/v1/runs?sessionId={0}&pageSize={1}&pageToken={2}", "none"), ("GET", "/v1/runs/{0}", "none"),
    ("GET", "/v1/runs/{0}/result", "none"), ("POST", "/v1/runs/{0}/cancel", "none"),
    ("GET", "/v1/runs/{0}/events?after={1}", "none"),
    ("GET", "/v1/state/session/{1}?scopeId={2}", "none"), ("PUT", "/v1/state/session/{1}?scopeId={2}", "state"),
    ("PUT", "/v1/state/{0}/{1}", "state"), ("DELETE", "/v1/state/{0}/{1}?scopeId={2}", "none"),
    ("GET", "/v1/state/{0}?prefix={1}&limit={2}&pageToken={2}", "none"),
    ("POST", "/v1/events/{0}", "event"),
    ("GET", "/a2a/{0}/.well-known/agent-card.json", "none"), ("POST", "/a2a/{0}", "a2a"),
    ("*", "/v1/proxy/{0}/{1}?{2}", "event"),
]
# The first segment a call needs to get far (half the cases use it).
GOOD_FIRST = {"agents": "echo", "events": "events.test", "state": "session", "a2a": "echo", "proxy": "echo"}
ADMIN_ROUTES = [
    ("GET", "/livez", "none"), ("GET", "/readyz", "none"), ("GET", "/metrics", "none"), ("GET", "/config", "none"),
    ("GET", "/breakers", "none"), ("POST", "/breakers/{0}/{1}/reset", "none"), ("POST", "/reload", "none"),
]


# -- the gateway under fire ----------------------------------------------------------


class ErrorLog(logging.Handler):
    """Every ERROR (or worse) record the process logs: caller input must cause none."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        lines = [f"{r.name}: {r.getMessage()}" for r in self.records]
        self.records.clear()
        return lines


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, echo_url: str) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n") as server:
        yield server


def drive(probe: Callable[..., None]) -> Callable[[], Coroutine[Any, Any, None]]:
    """Run a hypothesis test (blocking) off the event loop the gateway serves on."""

    async def run() -> None:
        await asyncio.get_running_loop().run_in_executor(None, probe)

    return run


async def raw_http(address: str, method: str, target: str, header_list: list[tuple[str, bytes]],
                   body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (clients refuse to send many of these headers)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
        raw = head.encode() + b"".join(name.encode() + b": " + value + b"\r\n" for name, value in header_list)
        try:
            writer.write(raw + b"\r\n" + body)
            await writer.drain()
        except ConnectionError:
            pass  # the server answered (400) and closed before reading it all: read the answer
        answer = b""
        try:
            while chunk := await reader.read(65536):
                answer += chunk
        except ConnectionError:
            if not answer:
                return RESET, b""  # closed with unread bytes: the kernel's reset can overtake the 400
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2, f"no HTTP answer: {answer[:200]!r}"
    return int(status_line[1]), answer


RESET = 0  # the status of a connection reset before its answer could be read


def check_http_answer(status: int, answer: bytes, request: str) -> None:
    assert b"Traceback" not in answer and b'File "' not in answer, f"{request}: a traceback in the answer"
    if status >= 500:
        payload = answer.partition(b"\r\n\r\n")[2]
        # A deadline the caller set itself running out is its own doing: 504 DEADLINE_EXCEEDED.
        assert status == 504 and b"DEADLINE_EXCEEDED" in payload, f"{request}: {status} {answer[:600]!r}"


async def test_http_routes_answer_every_body_and_header(gateway: GatewayServer, error_log: ErrorLog) -> None:
    announce("http routes")
    assert gateway.addresses.http is not None and gateway.addresses.admin is not None
    loop = asyncio.get_running_loop()
    statuses: dict[str, set[int]] = {}

    @budget(500)
    @seed(SEED)
    @given(case=st.sampled_from(ROUTES + ADMIN_ROUTES).flatmap(lambda r: st.tuples(st.just(r), body_for(r[2]))),
           parts=st.lists(segments, min_size=3, max_size=3),
           method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), header_list=headers,
           good=st.booleans())
    def probe(case: tuple[tuple[str, str, str], bytes], parts: list[str], method: str,
              header_list: list[tuple[str, bytes]], good: bool) -> None:
        (verb, template, _), body = case
        verb = method if verb == "*" else verb
        section = template.split("/")[2] if template.count("/") > 1 else ""
        if good and section in GOOD_FIRST:
            parts = [GOOD_FIRST[section], "invoke" if section == "proxy" else parts[1], parts[2]]
        address = gateway.addresses.admin if case[0] in ADMIN_ROUTES else gateway.addresses.http
        assert address is not None
        target = template.format(*(_segment(p) for p in parts))
        if not any(name == "x-session-id" for name, _ in header_list):
            header_list = SESSION + header_list
        request = f"{verb} {target} headers={header_list!r} body={body[:200]!r}"
        call = asyncio.wait_for(raw_http(address, verb, target, header_list, body), CASE_TIMEOUT)
        try:
            status, answer = asyncio.run_coroutine_threadsafe(call, loop).result(CASE_TIMEOUT + 5)
        except TimeoutError:
            raise AssertionError(f"{request}: no answer within {CASE_TIMEOUT}s") from None
        check_http_answer(status, answer, request)
        logged = error_log.take()
        assert not logged, f"{request}: logged {logged}"
        statuses.setdefault(template, set()).add(status)

    await drive(probe)()
    await asyncio.sleep(0.2)  # background work (runs, events) the inputs started
    assert not error_log.take()
    # The fuzzer did get past the front door: successes and validation errors alike.
    reached = set().union(*statuses.values())
    print("statuses by route:", {k: sorted(v) for k, v in statuses.items()})
    assert 200 in reached and 400 in reached, statuses


# -- gRPC: raw bytes on every method --------------------------------------------------

SERVICES = [
    gateway_pb2.DESCRIPTOR.services_by_name["AgentGatewayService"],
    runs_pb2.DESCRIPTOR.services_by_name["RunService"],
    state_pb2.DESCRIPTOR.services_by_name["StateService"],
    events_pb2.DESCRIPTOR.services_by_name["EventsService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]
# (path, method): every method of every service the gateway serves; reflection v1 is v1alpha's messages.
_REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
METHODS: list[tuple[str, MethodDescriptor]] = [
    *((f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods),
    (_REFLECTION_V1, reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].methods_by_name[
        "ServerReflectionInfo"]),
]
HI = gateway_pb2.Message(role=gateway_pb2.ROLE_USER, parts=[
    gateway_pb2.Part(text="hi"), gateway_pb2.Part(data_json='{"k": [1, {"a": "\\u00e9"}]}')])
INVOKE = gateway_pb2.InvokeRequest(agent="echo", messages=[HI], context=gateway_pb2.Context(session_id="s-1"))
# One well-formed request per message type, for mutations that reach past the parser.
SAMPLES: dict[str, bytes] = {
    "agentgateway.v1.InvokeRequest": INVOKE.SerializeToString(),
    "agentgateway.v1.InvokeStreamRequest": INVOKE.SerializeToString(),  # the same fields
    "agentgateway.v1.SubmitRunRequest": runs_pb2.SubmitRunRequest(invocation=INVOKE).SerializeToString(),
    "agentgateway.v1.PutStateRequest": state_pb2.PutStateRequest(
        scope=state_pb2.STATE_SCOPE_SESSION, scope_id="s-1", key="k", json='{"a": [1, 2]}').SerializeToString(),
    "agentgateway.v1.GetStateRequest": state_pb2.GetStateRequest(
        scope=state_pb2.STATE_SCOPE_SESSION, scope_id="s-1", key="k").SerializeToString(),
    "agentgateway.v1.ListStateRequest": state_pb2.ListStateRequest(
        scope=state_pb2.STATE_SCOPE_SESSION, scope_id="s-1", page_token="x").SerializeToString(),
    "agentgateway.v1.PublishEventRequest": events_pb2.PublishEventRequest(
        subject="events.test", event_id="e-1").SerializeToString(),
    "agentgateway.v1.ListRunsRequest": runs_pb2.ListRunsRequest(session_id="s-1", page_size=5).SerializeToString(),
    "grpc.health.v1.HealthCheckRequest": health_pb2.HealthCheckRequest(service="").SerializeToString(),
    "grpc.reflection.v1alpha.ServerReflectionRequest": reflection_pb2.ServerReflectionRequest(
        list_services="").SerializeToString(),
}


def _sample(descriptor: Descriptor) -> bytes:
    if descriptor.full_name in SAMPLES:
        return SAMPLES[descriptor.full_name]
    return bytes(message_factory.GetMessageClass(descriptor)().SerializeToString())


def _invoke_bytes(body: dict[str, Any], descriptor: Descriptor) -> bytes | None:
    """A mutated InvokeRequest body as protobuf (wrapped for SubmitRun); None when it has no protobuf form."""
    request = gateway_pb2.InvokeRequest()
    try:
        json_format.ParseDict(body, request)
    except (json_format.ParseError, ValueError, TypeError, RecursionError):
        return None
    if descriptor.full_name == "agentgateway.v1.SubmitRunRequest":
        return bytes(runs_pb2.SubmitRunRequest(invocation=request).SerializeToString())
    return bytes(request.SerializeToString())


INVOKE_TYPES = {"agentgateway.v1.InvokeRequest", "agentgateway.v1.InvokeStreamRequest", "agentgateway.v1.SubmitRunRequest"}


@st.composite
def grpc_payloads(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    """Arbitrary bytes; a well-formed message with bytes flipped, cut, inserted or appended; or, for
    invocations, a complete InvokeRequest with fields replaced (the field-level mutations of HTTP)."""
    if descriptor.full_name in INVOKE_TYPES and draw(st.booleans()):
        mutated = _invoke_bytes(draw(mutated_request()), descriptor)
        if mutated is not None:
            return mutated
    if draw(st.booleans()):
        return draw(st.binary(max_size=120))
    data = bytearray(_sample(descriptor))
    for _ in range(draw(st.integers(0, 4))):  # none: the well-formed call itself
        kind = draw(st.sampled_from(["flip", "cut", "insert", "append"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


GRPC_SESSION = (("x-session-id", "s-1"),)
# Codes a caller's input must never produce.
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}


async def grpc_call(channel: grpc.aio.Channel, path: str, method: MethodDescriptor, data: bytes) -> grpc.StatusCode:
    start = time.monotonic()
    try:
        if method.client_streaming:
            stream = channel.stream_stream(path)(iter([data]), timeout=CASE_TIMEOUT, metadata=GRPC_SESSION)
            await _read_some(stream)
        elif method.server_streaming:
            stream = channel.unary_stream(path)(data, timeout=CASE_TIMEOUT, metadata=GRPC_SESSION)
            await _read_some(stream)
        else:
            await channel.unary_unary(path)(data, timeout=CASE_TIMEOUT, metadata=GRPC_SESSION)
    except grpc.aio.AioRpcError as exc:
        details = exc.details() or ""
        assert exc.code() not in BROKEN, f"{path} {data!r}: {exc.code()} {details}"
        assert "Traceback" not in details, f"{path} {data!r}: {details}"
        # Our deadline expiring means the gateway hung; its own DEADLINE_EXCEEDED (a deadline in the message) comes sooner.
        assert time.monotonic() - start < CASE_TIMEOUT - 1, f"{path} {data!r}: no answer within {CASE_TIMEOUT}s"
        return exc.code()
    return grpc.StatusCode.OK


async def _read_some(stream: Any) -> None:
    """A few messages of a stream; one that stays open after answering (Health/Watch) is no hang."""
    try:
        for _ in range(20):
            item = await asyncio.wait_for(stream.read(), 2)
            if item is grpc.aio.EOF:
                break
    except TimeoutError:
        pass
    finally:
        stream.cancel()


async def test_grpc_methods_answer_every_message(gateway: GatewayServer, error_log: ErrorLog) -> None:
    announce("grpc methods")
    assert gateway.addresses.grpc is not None
    loop = asyncio.get_running_loop()
    codes: dict[str, set[grpc.StatusCode]] = {}
    async with grpc.aio.insecure_channel(gateway.addresses.grpc) as channel:

        @budget(300)
        @seed(SEED)
        @given(case=st.sampled_from(METHODS).flatmap(lambda c: st.tuples(st.just(c), grpc_payloads(c[1].input_type))))
        def probe(case: tuple[tuple[str, MethodDescriptor], bytes]) -> None:
            (path, method), data = case
            call = grpc_call(channel, path, method, data)
            code = asyncio.run_coroutine_threadsafe(call, loop).result(CASE_TIMEOUT + 5)
            logged = error_log.take()
            assert not logged, f"{path} {data!r}: logged {logged}"
            codes.setdefault(path, set()).add(code)

        await drive(probe)()
    await asyncio.sleep(0.2)
    assert not error_log.take()
    assert len(codes) == len(METHODS), f"methods never called: {set(p for p, _ in METHODS) - set(codes)}"
    assert grpc.StatusCode.INVALID_ARGUMENT in set().union(*codes.values())
    print("codes by method:", {k: sorted(c.name for c in v) for k, v in codes.items()})
    assert grpc.StatusCode.OK in codes["/agentgateway.v1.AgentGatewayService/Invoke"]


# -- parsers --------------------------------------------------------------------------


@budget(300)
@seed(SEED)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20))
def test_sse_parser_survives_any_bytes(chunks: list[bytes]) -> None:
    parser = SseParser(max_event_bytes=256)
    total = 0
    try:
        for chunk in chunks:
            for event in parser.feed(chunk):
                total += len(event.data)
                assert len(event.data) <= 256
    except SseProtocolError:
        return
    assert total <= sum(len(c) for c in chunks)


EXAMPLE_CONFIG = (ROOT / "examples" / "gateway.yaml").read_text(encoding="utf-8")
YAML_NOISE = ["&a ", "*a", "<<: *a", "[", "]", "{", "}", ": ", "- ", "!!python/object:os.system ", "!!binary ", "? ",
              "|", ">", "'", '"', "#", "%YAML 1.1\n", "---\n", "...\n", "\t", "\x00", "\ufeff", "${X}", "$$", "~",
              "0x1F", "1e999", "yes", "2026-12-01", "\\", "&b [*b]", "*zz"]


@st.composite
def mutated_config(draw: st.DrawFn) -> str:
    """The example config with lines dropped, duplicated or indented, and YAML syntax sprinkled in."""
    lines = EXAMPLE_CONFIG.splitlines(keepends=True)
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 6))):
        at = rng.randrange(len(lines))
        kind = draw(st.sampled_from(["drop", "dup", "indent", "noise", "noise", "text"]))
        if kind == "drop":
            del lines[at]
        elif kind == "dup":
            lines.insert(at, lines[at])
        elif kind == "indent":
            lines[at] = " " * rng.randrange(1, 5) + lines[at]
        else:
            piece = draw(st.sampled_from(YAML_NOISE)) if kind == "noise" else draw(st.text(max_size=8))
            column = rng.randrange(len(lines[at]) + 1)
            lines[at] = lines[at][:column] + piece + lines[at][column:]
        if not lines:
            break
    return "".join(lines)


@budget(250)
@seed(SEED)
@given(text=st.one_of(
    mutated_config(), st.text(max_size=300),
    st.builds(lambda a, b: f"agents:\n  {a}:\n    {b}\n", st.text(max_size=10), st.text(max_size=30)),
))
def test_yaml_loader_only_raises_config_errors(text: str) -> None:
    start = time.process_time()
    try:
        load_config_text(text, "fuzz.yaml", {"X": "x"})
    except ConfigError as exc:
        assert exc.problems
        assert all(str(p).startswith("fuzz.yaml") for p in exc.problems)
    assert time.process_time() - start < 2.0, "the loader took over 2 s of CPU"
