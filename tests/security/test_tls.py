"""TLS and mTLS on both fronts: client-certificate identity, refusal without one, reload without restart."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory
from tests.helpers.http import body, seen_headers
from tests.security.pki import CertificateAuthority, Issued


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("gateway.test", server=True, stem="server")


@pytest.fixture
async def gateway(
    gateway_factory: GatewayFactory, echo_url: str, ca: CertificateAuthority, server_cert: Issued
) -> AsyncIterator[GatewayServer]:
    tls = (
        f"{{cert_file: {server_cert.cert}, key_file: {server_cert.key}, "
        f"client_ca_file: {ca.cert_file}, client_cert: require}}"
    )
    yaml_text = f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [mtls], tls: {tls}}}
  grpc: {{address: '127.0.0.1:0', auth: [mtls], tls: {tls}}}
agents:
  echo: {{kind: http, endpoint: {echo_url}}}
  secret: {{kind: http, endpoint: {echo_url}}}
security:
  mtls: {{identity_from: san_uri}}
  authorization:
    - {{identities: ['spiffe://test/billing'], agents: [echo]}}
"""
    async with gateway_factory(yaml_text) as server:
        yield server


def client_context(ca: CertificateAuthority, client: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


async def call(gateway: GatewayServer, context: ssl.SSLContext, agent: str = "echo") -> tuple[int, dict[str, object]]:
    url = f"https://{gateway.addresses.http}/v1/agents/{agent}/invoke"
    async with aiohttp.ClientSession() as session, session.post(url, json=body(), ssl=context) as response:
        return response.status, await response.json()


async def test_http_mtls_identity_comes_from_the_certificate(gateway: GatewayServer, ca: CertificateAuthority) -> None:
    billing = ca.issue("billing", uri="spiffe://test/billing")
    status, response = await call(gateway, client_context(ca, billing))
    assert status == 200
    assert seen_headers(response)["x-user-id"] == "spiffe://test/billing"
    status, response = await call(gateway, client_context(ca, billing), "secret")
    assert status == 403


async def test_http_without_client_certificate_is_refused(gateway: GatewayServer, ca: CertificateAuthority) -> None:
    with pytest.raises(aiohttp.ClientError):
        await call(gateway, client_context(ca, None))
    stranger_ca = CertificateAuthority(ca.directory, name="stranger CA")
    with pytest.raises(aiohttp.ClientError):
        await call(gateway, client_context(ca, stranger_ca.issue("billing", uri="spiffe://test/billing")))


def grpc_credentials(ca: CertificateAuthority, client: Issued | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_file.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


def request(agent: str) -> pb.InvokeRequest:
    return pb.InvokeRequest(agent=agent, messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="hi")])])


async def test_grpc_mtls(gateway: GatewayServer, ca: CertificateAuthority) -> None:
    assert gateway.addresses.grpc is not None
    target = gateway.addresses.grpc.replace("127.0.0.1", "localhost")
    billing = ca.issue("billing", uri="spiffe://test/billing")
    async with grpc.aio.secure_channel(target, grpc_credentials(ca, billing)) as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)
        response = await stub.Invoke(request("echo"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.Invoke(request("secret"), timeout=10)
    assert response.messages[0].parts[0].text == "echo: hi"
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with grpc.aio.secure_channel(target, grpc_credentials(ca, None)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.AgentGatewayServiceStub(channel).Invoke(request("echo"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake itself fails


def served_certificate_cn(address: str, ca: CertificateAuthority, client: Issued) -> str:
    host, _, port = address.rpartition(":")
    context = client_context(ca, client)
    import socket

    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(
        raw, server_hostname="localhost"
    ) as tls:
        cert = tls.getpeercert()
    assert cert is not None
    return next(v for rdn in cert["subject"] for k, v in rdn if k == "commonName")


async def test_certificate_reload_without_restart(
    gateway: GatewayServer, ca: CertificateAuthority, server_cert: Issued
) -> None:
    assert gateway.addresses.http is not None and gateway.addresses.grpc is not None
    billing = ca.issue("billing", uri="spiffe://test/billing")
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, served_certificate_cn, gateway.addresses.http, ca, billing) == "gateway.test"
    renewed = ca.issue("gateway-renewed.test", server=True, stem="renewed")
    server_cert.cert.write_bytes(renewed.cert.read_bytes())
    server_cert.key.write_bytes(renewed.key.read_bytes())
    assert gateway.cert_reloader is not None and gateway.cert_reloader.reload_if_changed()
    http_cn = await loop.run_in_executor(None, served_certificate_cn, gateway.addresses.http, ca, billing)
    grpc_cn = await loop.run_in_executor(None, served_certificate_cn, gateway.addresses.grpc, ca, billing)
    assert http_cn == "gateway-renewed.test"
    assert grpc_cn == "gateway-renewed.test"  # gRPC fetches the new files on the next handshake


async def test_broken_certificate_files_keep_the_old_certificate(
    gateway: GatewayServer, ca: CertificateAuthority, server_cert: Issued
) -> None:
    assert gateway.addresses.http is not None and gateway.cert_reloader is not None
    server_cert.cert.write_text("not a certificate")
    assert not gateway.cert_reloader.reload_if_changed()
    status, _ = await call(gateway, client_context(ca, ca.issue("billing", uri="spiffe://test/billing")))
    assert status == 200
