"""What the A2A conformance suite (a2aproject/a2a-tck) found wrong in the front, each written
as the request that showed it, through the official a2a-sdk client where it applies."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import SubscribeToTaskRequest, a2a_pb2, a2a_pb2_grpc
from a2a.utils.errors import TaskNotFoundError

from tests.conftest import GatewayFactory, Starter
from tests.server.test_a2a_operations import HeldAgent, agents_yaml


async def test_task_not_found_says_so_on_every_binding(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    """SubscribeToTask of a task that does not exist: TaskNotFoundError whose message says
    "not found" as the spec's examples do (clients, the TCK among them, match on it)."""
    agent = HeldAgent()
    agent.url = await serve_app(agent.app())
    missing = f"non-existent-{uuid.uuid4()}"
    async with gateway_factory(agents_yaml(agent.url)) as gw, httpx.AsyncClient(timeout=10) as http:
        client = await create_client(
            f"http://{gw.addresses.http}/a2a/held", client_config=ClientConfig(streaming=True, httpx_client=http)
        )
        with pytest.raises(TaskNotFoundError) as caught:
            async for _ in client.subscribe(SubscribeToTaskRequest(id=missing)):
                pass
        await client.close()
        assert "not found" in str(caught.value).lower() and missing in str(caught.value)
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in stub.SubscribeToTask(a2a_pb2.SubscribeToTaskRequest(tenant="held", id=missing)):
                    pass
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert "not found" in (failed.value.details() or "").lower()
