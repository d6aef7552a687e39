"""Hostile input: every front and parser answers garbage with a clean error, never a crash or hang."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sse import SseParser, SseProtocolError
from gateway.config import ConfigError, load_config_text
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
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
        "context": json_values,
        "options": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "timeout": st.one_of(st.sampled_from(["1s", "-1s", "0.5s", "abc", "1e99s"]), json_values),
            "params": json_values})),
        "zzz": json_values,
    },
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, echo_url: str) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(f"agents:\n  echo:\n    kind: http\n    endpoint: {echo_url}\n") as server:
        yield server


async def test_http_json_front_answers_every_body(gateway: GatewayServer) -> None:
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:
        url = f"http://{gateway.addresses.http}/v1/invoke"

        @FUZZ
        @given(body=st.one_of(request_like, json_values))
        def probe(body: Any) -> None:
            statuses.append(asyncio.run_coroutine_threadsafe(send(body), loop).result(10))

        async def send(body: Any) -> int:
            async with session.post(url, data=json.dumps(body), timeout=aiohttp.ClientTimeout(total=5)) as response:
                payload = await response.json(content_type=None)
                assert response.status < 500 or response.status in (502, 503, 504), payload
                if response.status >= 400:
                    assert set(payload["error"]) >= {"code", "message"}
                return response.status

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, probe)
    assert 400 in statuses  # the fuzzer did reach the validation errors


async def test_grpc_front_rejects_random_bytes(gateway: GatewayServer) -> None:
    assert gateway.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gateway.addresses.grpc) as channel:
        raw = channel.unary_unary("/agentgateway.v1.AgentGatewayService/Invoke")
        codes: set[grpc.StatusCode] = set()

        @FUZZ
        @given(data=st.binary(max_size=200))
        def probe(data: bytes) -> None:
            codes.add(asyncio.run_coroutine_threadsafe(send(data), loop).result(10))

        async def send(data: bytes) -> grpc.StatusCode:
            try:
                await raw(data, timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                      grpc.StatusCode.UNAVAILABLE), exc
                return exc.code()
            return grpc.StatusCode.OK

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, probe)
    assert grpc.StatusCode.INVALID_ARGUMENT in codes


@settings(max_examples=300, deadline=None)
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


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300) | st.builds(lambda a, b: f"agents:\n  {a}:\n    {b}\n", st.text(max_size=10),
                                              st.text(max_size=30)))
def test_yaml_loader_only_raises_config_errors(text: str) -> None:
    try:
        load_config_text(text, "fuzz.yaml", {})
    except ConfigError as exc:
        assert all(str(p).startswith("fuzz.yaml") for p in exc.problems)
