"""TLS towards agents: a custom CA to verify them, a client certificate for agents that demand mTLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aiohttp import web

from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from examples import echo_agent, grpc_echo_agent
from tests.conftest import GatewayFactory
from tests.helpers.http import body, post
from tests.security.pki import CertificateAuthority, Issued


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def gateway_client(ca: CertificateAuthority) -> Issued:
    return ca.issue("gateway-sidecar", stem="gateway-client")


@pytest.fixture
async def https_echo(ca: CertificateAuthority) -> AsyncIterator[str]:
    """The echo agent over HTTPS, demanding a client certificate from our CA."""
    server = ca.issue("echo.test", server=True, stem="echo-server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_file))
    context.load_cert_chain(server.cert, server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(echo_agent.build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def grpcs_echo(ca: CertificateAuthority) -> AsyncIterator[str]:
    issued = ca.issue("echo.test", server=True, stem="grpc-echo-server")
    server = grpc.aio.server()
    pb_grpc.add_AgentGatewayServiceServicer_to_server(grpc_echo_agent.EchoAgent(), server)
    credentials = grpc.ssl_server_credentials(
        [(issued.key.read_bytes(), issued.cert.read_bytes())],
        root_certificates=ca.cert_file.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


def agents(endpoint: str, kind: str, tls: str) -> str:
    return f"agents:\n  echo: {{kind: {kind}, endpoint: '{endpoint}', tls: {tls}}}\n"


async def test_http_agent_behind_mtls(
    gateway_factory: GatewayFactory, https_echo: str, ca: CertificateAuthority, gateway_client: Issued
) -> None:
    full = f"{{ca_file: {ca.cert_file}, cert_file: {gateway_client.cert}, key_file: {gateway_client.key}}}"
    async with gateway_factory(agents(https_echo, "http", full)) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/echo/invoke", body("tls"))
    assert status == 200, response
    assert response["messages"][0]["parts"][0]["text"] == "echo: tls"


async def test_http_agent_refuses_a_gateway_without_client_certificate(
    gateway_factory: GatewayFactory, https_echo: str, ca: CertificateAuthority
) -> None:
    async with gateway_factory(agents(https_echo, "http", f"{{ca_file: {ca.cert_file}}}")) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/echo/invoke", body())
    assert status == 503
    assert response["error"]["code"] == "UNAVAILABLE"


async def test_http_agent_with_a_certificate_from_an_unknown_ca_is_not_trusted(
    gateway_factory: GatewayFactory, https_echo: str, gateway_client: Issued, tmp_path: Path
) -> None:
    other = CertificateAuthority(tmp_path, name="other CA")
    tls = f"{{ca_file: {other.cert_file}, cert_file: {gateway_client.cert}, key_file: {gateway_client.key}}}"
    async with gateway_factory(agents(https_echo, "http", tls)) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/echo/invoke", body())
    assert status == 503
    assert "certificate" in response["error"]["message"].lower()


async def test_grpc_agent_behind_mtls(
    gateway_factory: GatewayFactory, grpcs_echo: str, ca: CertificateAuthority, gateway_client: Issued
) -> None:
    tls = (
        f"{{ca_file: {ca.cert_file}, cert_file: {gateway_client.cert}, key_file: {gateway_client.key}, "
        "server_name: localhost}"
    )
    yaml_text = agents(grpcs_echo, "grpc", tls).replace("}\n", ", options: {remote_agent: echo}}\n")
    async with gateway_factory(yaml_text) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/agents/echo/invoke", body("rpc"))
    assert status == 200, response
    assert response["messages"][0]["parts"][0]["text"] == "echo: rpc"


@pytest.mark.parametrize("client", ["lean", "aiohttp"])
async def test_the_passthrough_to_an_agent_behind_mtls_uses_its_tls_settings(
    gateway_factory: GatewayFactory, https_echo: str, ca: CertificateAuthority, gateway_client: Issued, client: str
) -> None:
    # The passthrough reaches the same agent as the typed call: verified with the agent's CA and
    # presenting the gateway's client certificate (the system CAs know neither), on either client.
    full = f"{{ca_file: {ca.cert_file}, cert_file: {gateway_client.cert}, key_file: {gateway_client.key}}}"
    config = agents(https_echo, "http", full) + f"server: {{upstream_client: {client}}}\n"
    async with gateway_factory(config) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/proxy/echo/invoke", body("through"))
    assert status == 200, response
    assert response["messages"][0]["parts"][0]["text"] == "echo: through"


async def test_the_passthrough_refuses_an_agent_its_ca_does_not_vouch_for(
    gateway_factory: GatewayFactory, https_echo: str, gateway_client: Issued, tmp_path: Path
) -> None:
    other = CertificateAuthority(tmp_path, name="other CA")
    tls = f"{{ca_file: {other.cert_file}, cert_file: {gateway_client.cert}, key_file: {gateway_client.key}}}"
    async with gateway_factory(agents(https_echo, "http", tls)) as gw:
        status, _, response = await post(f"http://{gw.addresses.http}/v1/proxy/echo/invoke", body())
    assert status == 503, response
    assert "certificate" in response["error"]["message"].lower()
