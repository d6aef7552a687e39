"""What the A2A conformance suite (a2aproject/a2a-tck) found wrong in the front, each written
as the request that showed it, through the official a2a-sdk client where it applies."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import SendMessageRequest, SubscribeToTaskRequest, a2a_pb2, a2a_pb2_grpc
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from gateway.model import JSON
from gateway.runs.webhook import DELIVERY_HEADER
from tests.conftest import GatewayFactory, Starter
from tests.helpers.a2a import HeldAgent, agents_yaml


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


async def test_send_message_push_config_is_kept_before_the_turn_runs(
    gateway_factory: GatewayFactory, serve_app: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SendMessage carrying its own push config: the config is stored before the turn may end,
    so even a turn that ends at once on a slow store notifies it, as the turn starts and as it
    ends; a refused URL starts nothing."""
    agent = HeldAgent()
    agent.release.set()  # answers at once
    agent.url = await serve_app(agent.app())
    pushed: list[dict[str, Any]] = []
    deliveries: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        pushed.append(await request.json())
        deliveries.append(request.headers[DELIVERY_HEADER])
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hooks/a2a", hook)
    hooks = await serve_app(receiver)
    yaml = agents_yaml(agent.url).replace(
        "runs: {poll_interval: 50ms}",
        f"runs: {{poll_interval: 50ms, webhooks: {{allowed_prefixes: ['{hooks}/hooks/'], secret: s3cret}}}}",
    )
    async with gateway_factory(yaml) as gw, httpx.AsyncClient(timeout=10) as http:
        assert gw.tasks is not None
        store = gw.tasks.store
        save = store.save_push_config

        async def slow_save(task_id: str, config_id: str, config: JSON) -> None:
            # A store a little farther away than the agent (a remote Redis): the turn ends first.
            await asyncio.sleep(0.5)
            await save(task_id, config_id, config)

        monkeypatch.setattr(store, "save_push_config", slow_save)
        client = await create_client(
            f"http://{gw.addresses.http}/a2a/held", client_config=ClientConfig(streaming=False, httpx_client=http)
        )
        push = a2a_pb2.TaskPushNotificationConfig(url=f"{hooks}/hooks/a2a", token="t-1")
        request = SendMessageRequest(
            message=new_text_message("notify me"),
            configuration=a2a_pb2.SendMessageConfiguration(task_push_notification_config=push),
        )
        answers = [MessageToDict(a) async for a in client.send_message(request)]
        task_id = answers[-1]["task"]["id"]
        assert answers[-1]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        for _ in range(100):
            if len(pushed) == 2:
                break
            await asyncio.sleep(0.05)
        # The task as its turn started, then as it ended, in that order.
        assert [(p["task"]["id"], p["task"]["status"]["state"]) for p in pushed] == [
            (task_id, "TASK_STATE_SUBMITTED"),
            (task_id, "TASK_STATE_COMPLETED"),
        ]
        assert len(set(deliveries)) == 2  # a receiver deduplicating by delivery id keeps both
        # A URL the policy refuses: InvalidParams, and the agent never hears of the message.
        refused = a2a_pb2.TaskPushNotificationConfig(url=f"{hooks}/elsewhere")
        bad = SendMessageRequest(
            message=new_text_message("never sent"),
            configuration=a2a_pb2.SendMessageConfiguration(task_push_notification_config=refused),
        )
        with pytest.raises(InvalidParamsError):
            async for _ in client.send_message(bad):
                pass
        await client.close()
        await asyncio.sleep(0.3)
        assert agent.seen == ["notify me"]
