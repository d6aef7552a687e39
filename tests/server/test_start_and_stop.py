"""The lifecycle undoes exactly what started: a start that fails halfway (the gRPC port is taken
after the HTTP listener and the admin listener are up) closes those again, in reverse."""

from __future__ import annotations

import socket

import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.config.loader import load_config_text
from gateway.server.app import GatewayServer
from gateway.server.connections import ListenError


def _can_bind(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


async def test_a_start_that_fails_halfway_closes_what_did_start(tracer_provider: TracerProvider,
                                                               echo_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        grpc_address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = load_config_text(
            "listeners:\n  http: {address: '127.0.0.1:0'}\n"
            f"  grpc: {{address: '{grpc_address}'}}\n"
            "admin: {address: '127.0.0.1:0'}\n"
            f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
        )
        server = GatewayServer(config, tracer_provider)
        with pytest.raises(ListenError, match="address already in use"):
            async with server:
                pass
    # The HTTP and admin listeners had bound before gRPC failed: both are closed again,
    # and the runtime's sessions with them.
    assert server.runner is not None and server.admin_runner is not None
    assert server.runner.addresses == [] and server.admin_runner.addresses == []
    assert server.http_session is not None and server.http_session.closed
    assert server.passthrough_session is not None and server.passthrough_session.closed


async def test_stop_closes_in_reverse_and_frees_the_ports(tracer_provider: TracerProvider, echo_url: str) -> None:
    config = load_config_text(
        "listeners:\n  http: {address: '127.0.0.1:0'}\n  grpc: {address: '127.0.0.1:0'}\n"
        "admin: {address: '127.0.0.1:0'}\n"
        f"agents:\n  echo: {{kind: http, endpoint: '{echo_url}'}}\n"
    )
    async with GatewayServer(config, tracer_provider) as server:
        addresses = server.addresses
        assert addresses.http and addresses.grpc and addresses.admin
        assert not _can_bind(addresses.http)
    for address in (addresses.http, addresses.grpc, addresses.admin):
        assert _can_bind(address), address
    assert server.http_session is not None and server.http_session.closed
