"""An A2A agent behind a private CA is cancelled over the same TLS settings it is called with.

The real a2a-sdk agent (``tests/frameworks/a2a/server.py``) serves HTTPS in this process with a
certificate for ``a2a.internal`` only, signed by a CA made for the test; the gateway reaches it
at 127.0.0.1 with ``tls: {ca_file, server_name: a2a.internal}``. A caller who leaves a stream
mid-task must see the task end CANCELED: the cancel has to verify the agent the way the call did.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from agentgateway_client import AgentClient
from tests.conftest import GatewayFactory
from tests.frameworks.a2a.server import build_app
from tests.helpers.abandoned_task import abandon_mid_task, state_after
from tests.security.pki import CertificateAuthority

SERVER_NAME = "a2a.internal"


class TlsAgent:
    def __init__(self, url: str, ca_file: Path) -> None:
        self.url = url
        self.ca_file = ca_file
        self.client_ssl = ssl.create_default_context(cafile=str(ca_file))

    async def task_state(self, task_id: str) -> str:
        """The task's state, asked of the agent directly (over the same private CA)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{self.url}/a2a/jsonrpc",
                json=body,
                headers={"a2a-version": "1.0"},
                ssl=self.client_ssl,
                server_hostname=SERVER_NAME,
            ) as response:
                reply: dict[str, Any] = await response.json()
        state: str = reply["result"]["status"]["state"]
        return state


@pytest.fixture
async def tls_agent(tmp_path: Path) -> AsyncIterator[TlsAgent]:
    ca = CertificateAuthority(tmp_path)
    issued = ca.issue(SERVER_NAME, dns_names=(SERVER_NAME,), stem="a2a-server")
    # Bound first, so the agent card can name the port the agent listens on.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        build_app(url), ssl_certfile=str(issued.cert), ssl_keyfile=str(issued.key), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):  # bounded: the server starts in well under a second
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the TLS agent did not start"
    try:
        yield TlsAgent(url, ca.cert_file)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


async def test_an_abandoned_stream_cancels_the_task_behind_a_private_ca(
    gateway_factory: GatewayFactory, tls_agent: TlsAgent
) -> None:
    yaml_text = f"""
agents:
  secure:
    kind: a2a
    endpoint: {tls_agent.url}
    tls: {{ca_file: {tls_agent.ca_file}, server_name: {SERVER_NAME}}}
"""
    async with gateway_factory(yaml_text) as gw:
        assert gw.addresses.grpc is not None
        async with AgentClient(gw.addresses.grpc) as client:
            task_id = await abandon_mid_task(client, "secure")
        assert task_id, "the call itself must have reached the agent over TLS"
        state = await state_after(lambda: tls_agent.task_state(task_id), "TASK_STATE_CANCELED")
    assert state == "TASK_STATE_CANCELED"
