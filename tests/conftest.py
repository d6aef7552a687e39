"""Shared fixtures: real example agents and real gateways on loopback."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples import echo_agent, grpc_echo_agent
from gateway.config import load_config_text
from gateway.server.app import GatewayServer


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app on an ephemeral loopback port; returns (runner, base URL)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    runner, url = await start_app(echo_agent.build_app())
    yield url
    await runner.cleanup()


@pytest.fixture
async def grpc_echo_address() -> AsyncIterator[str]:
    server, port = await grpc_echo_agent.start("127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


GatewayFactory = Callable[[str], AbstractAsyncContextManager[GatewayServer]]


@pytest.fixture
def gateway_factory(tracer_provider: TracerProvider) -> GatewayFactory:
    """``async with gateway_factory(yaml) as server``: a real gateway on ephemeral ports.

    The YAML needs only ``agents``/``routes``; listeners default to port 0.
    """

    @asynccontextmanager
    async def factory(yaml_text: str) -> AsyncIterator[GatewayServer]:
        text = textwrap.dedent(yaml_text)
        if "listeners:" not in text:
            text = "listeners:\n  http: {address: '127.0.0.1:0'}\n  grpc: {address: '127.0.0.1:0'}\n" + text
        if "server:" not in text:
            text += "\nserver: {drain_timeout: 2s}\n"
        if "admin:" not in text:
            text += "\nadmin: {address: '127.0.0.1:0'}\n"
        if "state:" not in text:
            text += "\nstate: {sqlite: {path: ':memory:'}}\n"
        config = load_config_text(text, "test.yaml")
        server = GatewayServer(config, tracer_provider=tracer_provider)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    return factory


Starter = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[Starter]:
    """Start any aiohttp app (fault-injecting upstreams) on loopback for the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner, url = await start_app(app)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()
