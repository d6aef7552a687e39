"""What the A2A conformance suite (a2aproject/a2a-tck) found wrong in the front, each written
as the request that showed it, through the official a2a-sdk client where it applies."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import CancelTaskRequest, SendMessageRequest, SubscribeToTaskRequest, a2a_pb2, a2a_pb2_grpc
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from examples import tck_agent
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


@contextlib.asynccontextmanager
async def _tck_agent() -> AsyncIterator[str]:
    """examples/tck_agent.py in this process, on an ephemeral loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(tck_agent.build_app(url), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started, "the TCK agent did not start"
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


async def test_the_tck_config_keeps_a_task_open_across_blocking_sends(gateway_factory: GatewayFactory) -> None:
    """examples/a2a-tck.yaml and its agent: a blocking SendMessage returns once the task waits
    for input (so the TCK's multi-turn, history and cancel tests find it open), a message naming
    the task continues it, 'done' completes it, and an open task cancels."""
    config = (Path(__file__).parents[2] / "examples" / "a2a-tck.yaml").read_text(encoding="utf-8")
    async with _tck_agent() as agent_url:
        yaml = (
            config.replace("localhost:8095", "127.0.0.1:0")
            .replace("localhost:50095", "127.0.0.1:0")
            .replace("http://127.0.0.1:9102", agent_url)
        )
        assert agent_url in yaml, "examples/a2a-tck.yaml no longer routes to the TCK agent"
        async with gateway_factory(yaml) as gw, httpx.AsyncClient(timeout=10) as http:
            client = await create_client(
                f"http://{gw.addresses.http}/a2a/tck", client_config=ClientConfig(streaming=False, httpx_client=http)
            )

            async def send(text: str, task_id: str = "") -> dict[str, Any]:
                message = new_text_message(text, task_id=task_id or None)
                answers = [MessageToDict(a) async for a in client.send_message(SendMessageRequest(message=message))]
                task: dict[str, Any] = answers[-1]["task"]
                return task

            first = await send("hello")
            assert first["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert "echo: hello" in first["status"]["message"]["parts"][0]["text"]
            second = await send("more", first["id"])
            assert second["id"] == first["id"] and second["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert [m["role"] for m in second["history"]] == ["ROLE_USER", "ROLE_AGENT"] * 2
            done = await send("done", first["id"])
            assert done["status"]["state"] == "TASK_STATE_COMPLETED"
            other = await send("to be cancelled")
            cancelled = MessageToDict(await client.cancel_task(CancelTaskRequest(id=other["id"])))
            assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
            await client.close()
