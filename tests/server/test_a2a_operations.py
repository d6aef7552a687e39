"""Every core operation of A2A 1.0 on the JSON-RPC front, against an agent the test holds
and releases: returnImmediately, GetTask historyLength, ListTasks, CancelTask,
SubscribeToTask, multi-turn, push notifications, the envelope and versions, restart
and fleet durability."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import pytest
from a2a.client import ClientCallContext, ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    a2a_pb2,
    a2a_pb2_grpc,
)
from a2a.utils.errors import TaskNotFoundError
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from gateway.runs.webhook import SIGNATURE_HEADER, sign
from tests.conftest import GatewayFactory, Starter
from tests.helpers.a2a import HeldAgent, agents_yaml
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available


@pytest.fixture
async def held(serve_app: Starter) -> HeldAgent:
    agent = HeldAgent()
    agent.url = await serve_app(agent.app())
    return agent


V1 = {"a2a-version": "1.0"}


class Rpc:
    """JSON-RPC calls to one agent's A2A endpoint."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str] | None = None) -> None:
        self.session = session
        self.url = f"{base}/a2a/held"
        self.headers = {**V1, **(headers or {})}

    async def raw(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        async with self.session.post(self.url, data=data, headers={**self.headers, **(headers or {})}) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def call(self, method: str, params: Any = None, **headers: str) -> dict[str, Any]:
        payload = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params or {}}
        reply = await self.raw(payload, headers)
        assert reply["id"] == payload["id"]
        return reply

    async def result(self, method: str, params: Any = None) -> Any:
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def error(self, method: str, params: Any = None) -> int:
        reply = await self.call(method, params)
        assert "error" in reply, reply
        code: int = reply["error"]["code"]
        return code

    async def stream(self, method: str, params: Any) -> AsyncIterator[dict[str, Any]]:
        payload = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        async with self.session.post(self.url, json=payload, headers=self.headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.content:
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {"message": {"role": "ROLE_USER", "messageId": uuid.uuid4().hex, "parts": [{"text": text}], **extra}}


async def _state_becomes(rpc: Rpc, task_id: str, state: str) -> dict[str, Any]:
    for _ in range(200):
        task: dict[str, Any] = await rpc.result("GetTask", {"id": task_id})
        if task["status"]["state"] == state:
            return task
        await asyncio.sleep(0.025)
    raise AssertionError(f"task {task_id} never became {state}: {task['status']}")


async def test_return_immediately_then_get_list_and_cancel(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        sent = await asyncio.wait_for(
            rpc.result("SendMessage", {**message("slow one"), "configuration": {"returnImmediately": True}}), 5
        )
        task = sent["task"]
        # Answered while the agent still holds the call: the task is not finished.
        assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
        await asyncio.wait_for(held.started.wait(), 5)
        working = await _state_becomes(rpc, task["id"], "TASK_STATE_WORKING")
        assert working["history"][0]["parts"] == [{"text": "slow one"}]
        listed = await rpc.result("ListTasks", {"status": "TASK_STATE_WORKING"})
        assert [t["id"] for t in listed["tasks"]] == [task["id"]]
        cancelled = await rpc.result("CancelTask", {"id": task["id"]})
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        # The cancel reached the upstream: its call was abandoned.
        await asyncio.wait_for(held.disconnected.wait(), 5)
        assert await rpc.error("CancelTask", {"id": task["id"]}) == -32002
        assert (await rpc.result("GetTask", {"id": task["id"]}))["status"]["state"] == "TASK_STATE_CANCELED"
        assert await rpc.error("CancelTask", {"id": str(uuid.uuid4())}) == -32001


async def test_blocking_send_history_length_and_multi_turn(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    held.release.set()
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        first = (await rpc.result("SendMessage", message("turn one")))["task"]
        assert first["status"]["state"] == "TASK_STATE_COMPLETED"
        assert first["artifacts"][0]["parts"] == [{"text": "done: turn one"}]
        context = first["contextId"]
        # A new task in the same context continues the conversation (the agent's session).
        second = (await rpc.result("SendMessage", message("turn two", contextId=context)))["task"]
        assert second["contextId"] == context and second["id"] != first["id"]
        listed = await rpc.result("ListTasks", {"contextId": context})
        assert [t["id"] for t in listed["tasks"]] == [second["id"], first["id"]]  # newest first
        assert all("artifacts" not in t for t in listed["tasks"])  # unless includeArtifacts
        assert listed["totalSize"] == 2 and listed["nextPageToken"] == ""
        full = await rpc.result("GetTask", {"id": first["id"]})
        assert [m["role"] for m in full["history"]] == ["ROLE_USER", "ROLE_AGENT"]
        last = await rpc.result("GetTask", {"id": first["id"], "historyLength": 1})
        assert last["history"] == full["history"][-1:]
        assert "history" not in await rpc.result("GetTask", {"id": first["id"], "historyLength": 0})
        assert await rpc.error("GetTask", {"id": first["id"], "historyLength": -1}) == -32602
        # A finished task takes no more messages (spec §3.1.1); a foreign context mismatch is refused.
        assert await rpc.error("SendMessage", message("again", taskId=first["id"])) == -32004
        mismatch = message("again", taskId=first["id"], contextId="another")
        assert await rpc.error("SendMessage", mismatch) == -32602
        assert held.seen == ["turn one", "turn two"]


async def test_subscribe_replays_the_turn_from_its_first_event(
    gateway_factory: GatewayFactory, held: HeldAgent
) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        frames: list[dict[str, Any]] = []
        async for frame in rpc.stream("SendStreamingMessage", message("stream me")):
            frames.append(frame["result"])
            if "artifactUpdate" in frame["result"]:
                break  # the caller goes away after the first chunk; the task goes on
        task_id = frames[0]["task"]["id"]
        assert frames[1]["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING"
        assert frames[2]["artifactUpdate"]["artifact"]["parts"] == [{"text": "part1 "}]
        resumed: list[dict[str, Any]] = []
        async for frame in rpc.stream("SubscribeToTask", {"id": task_id}):
            resumed.append(frame["result"])
            if len(resumed) == 2:
                held.release.set()
        assert resumed[0]["task"]["id"] == task_id
        chunks = [f["artifactUpdate"]["artifact"]["parts"][0]["text"] for f in resumed if "artifactUpdate" in f]
        assert chunks == ["part1 ", "part2"]  # the chunk sent before the reconnect is not lost
        assert resumed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
        done = await rpc.result("GetTask", {"id": task_id})
        assert done["artifacts"][0]["parts"] == [{"text": "part1 part2"}]
        # A streaming method's error comes as the stream's one frame.
        assert [f["error"]["code"] async for f in rpc.stream("SubscribeToTask", {"id": task_id})] == [-32004]


KEY_A, KEY_B = "ops-key-alice", "ops-key-bob"


def secured_yaml(url: str, extra: str = "") -> str:
    def sha(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    return f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key]}}
{agents_yaml(url)}
security:
  api_keys:
    - {{identity: alice, sha256: {sha(KEY_A)}}}
    - {{identity: bob, sha256: {sha(KEY_B)}}}
  authorization:
    - {{identities: [alice, bob], agents: [held]}}
{extra}
"""


async def test_list_tasks_pages_the_callers_tasks_only(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    held.release.set()
    async with gateway_factory(secured_yaml(held.url)) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}"
        alice, bob = Rpc(session, base, {"x-api-key": KEY_A}), Rpc(session, base, {"x-api-key": KEY_B})
        mine = [(await alice.result("SendMessage", message(f"a{i}")))["task"]["id"] for i in range(5)]
        theirs = [(await bob.result("SendMessage", message(f"b{i}")))["task"]["id"] for i in range(2)]
        pages: list[list[str]] = []
        token = ""
        for _ in range(5):
            page = await alice.result("ListTasks", {"pageSize": 2, "pageToken": token})
            assert page["totalSize"] == 5 and page["pageSize"] == len(page["tasks"])
            pages.append([t["id"] for t in page["tasks"]])
            token = page["nextPageToken"]
            if not token:
                break
        assert pages == [mine[::-1][0:2], mine[::-1][2:4], mine[::-1][4:]]
        assert [t["id"] for t in (await bob.result("ListTasks"))["tasks"]] == theirs[::-1]
        # Another's task is not found, for every method that names one.
        for method, params in [("GetTask", {"id": mine[0]}), ("CancelTask", {"id": mine[0]}),
                               ("SendMessage", message("hijack", taskId=mine[0]))]:
            assert await bob.error(method, params) == -32001, method
        assert [f["error"]["code"] async for f in bob.stream("SubscribeToTask", {"id": mine[0]})] == [-32001]
        for bad in [{"pageToken": "invalid-token-xyz"}, {"pageSize": 0}, {"pageSize": 101}, {"pageSize": -1},
                    {"status": "INVALID_STATUS"}, {"historyLength": -1}, {"statusTimestampAfter": "-1"},
                    {"unknownField": 1}]:
            assert await alice.error("ListTasks", bad) == -32602, bad
        async with session.post(f"{base}/a2a/held", json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks"}) as r:
            assert r.status == 401  # no credentials: the listener answers before any method


async def test_strict_envelope_and_versions(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        cases: list[tuple[Any, int, Any]] = [
            (b'{"jsonrpc": "2.0", "method": "SendMessage"', -32700, None),
            ([{"jsonrpc": "2.0", "id": 1, "method": "GetTask"}], -32600, None),
            ({"jsonrpc": "2.0", "id": {"bad": "type"}, "method": "GetTask"}, -32600, None),
            ({"jsonrpc": "2.0", "id": 1.5, "method": "GetTask"}, -32600, None),
            ({"jsonrpc": "1.0", "id": "r-1", "method": "GetTask", "params": {}}, -32600, "r-1"),
            ({"jsonrpc": "2.0", "id": 9, "params": {}}, -32600, 9),
            ({"jsonrpc": "2.0", "id": 9, "method": "GetTask", "extra": 1}, -32600, 9),
            ({"jsonrpc": "2.0", "id": "x", "method": "SendMessageXXX", "params": {}}, -32601, "x"),
            ({"jsonrpc": "2.0", "id": "4", "method": "SendMessage", "params": {"": "not_a_dict"}}, -32602, "4"),
            ({"jsonrpc": "2.0", "id": 5, "method": "SendMessage", "params": {"message": {"parts": "no"}}}, -32602, 5),
            ({"jsonrpc": "2.0", "id": 6, "method": "SendMessage",
              "params": {"message": {"role": "ROLE_USER", "parts": [{"text": "no id"}]}}}, -32602, 6),
            ({"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": []}, -32602, 7),
        ]
        for payload, code, request_id in cases:
            reply = await rpc.raw(payload)
            assert reply["error"]["code"] == code, payload
            assert reply["id"] == request_id, payload
        assert (await rpc.call("GetTask", {"id": "x"}, **{"a2a-version": "2.0"}))["error"]["code"] == -32009
        # Empty is 0.3 and a patch number does not count; both are served.
        for version in ("", "0.3", "1.0.1"):
            assert (await rpc.call("GetTask", {"id": "x"}, **{"a2a-version": version}))["error"]["code"] == -32001
        # Push notifications are off without allowed webhook URLs; the extended card without authentication.
        assert await rpc.error("ListTaskPushNotificationConfigs", {"taskId": "x"}) == -32003
        assert await rpc.error("GetExtendedAgentCard") == -32004
        async with session.get(f"{rpc.url}/.well-known/agent-card.json") as response:
            card = await response.json()
        assert card["capabilities"] == {"streaming": True, "pushNotifications": False, "extendedAgentCard": False}


async def test_push_notifications_are_signed_and_follow_the_url_rules(
    gateway_factory: GatewayFactory, held: HeldAgent, serve_app: Starter
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        arrived.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hooks/a2a", hook)
    hooks = await serve_app(receiver)
    extra = f"runs: {{poll_interval: 50ms, webhooks: {{allowed_prefixes: ['{hooks}/hooks/'], secret: s3cret}}}}"
    yaml = secured_yaml(held.url).replace("runs: {poll_interval: 50ms}\n", "") + extra
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        base = f"http://{gw.addresses.http}"
        alice, bob = Rpc(session, base, {"x-api-key": KEY_A}), Rpc(session, base, {"x-api-key": KEY_B})
        task = (await alice.result("SendMessage", {**message("notify me"),
                                                   "configuration": {"returnImmediately": True}}))["task"]
        config = {"taskId": task["id"], "url": f"{hooks}/hooks/a2a", "token": "t-1",
                  "authentication": {"scheme": "Bearer", "credentials": "c-1"}}
        created = await alice.result("CreateTaskPushNotificationConfig", config)
        assert created["url"] == config["url"] and created["id"]
        assert await alice.result("GetTaskPushNotificationConfig", {"task_id": task["id"], "id": created["id"]}) == created
        assert (await alice.result("ListTaskPushNotificationConfigs", {"taskId": task["id"]}))["configs"] == [created]
        assert await bob.error("ListTaskPushNotificationConfigs", {"taskId": task["id"]}) == -32001
        # Only allowed URLs: another path of the receiver, the gateway's own listener.
        for url in (f"{hooks}/elsewhere", f"{base}/hooks/a2a"):
            assert await alice.error("CreateTaskPushNotificationConfig", {**config, "url": url}) == -32602
        held.release.set()
        await asyncio.wait_for(arrived.wait(), 10)
        headers, body = received[0]
        assert headers[SIGNATURE_HEADER] == sign("s3cret", body)  # signed like a run's webhook
        assert headers["authorization"] == "Bearer c-1" and headers["x-a2a-notification-token"] == "t-1"
        pushed = json.loads(body)["task"]
        assert (pushed["id"], pushed["status"]["state"]) == (task["id"], "TASK_STATE_COMPLETED")
        assert await alice.result("DeleteTaskPushNotificationConfig", {"taskId": task["id"], "id": created["id"]}) == {}
        assert (await alice.result("ListTaskPushNotificationConfigs", {"taskId": task["id"]}))["configs"] == []


async def test_a2a_sdk_client_gets_lists_subscribes_and_cancels(
    gateway_factory: GatewayFactory, held: HeldAgent
) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session, \
            httpx.AsyncClient(timeout=10) as http:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        task = (await rpc.result("SendMessage", {**message("sdk"), "configuration": {"returnImmediately": True}}))
        task_id = task["task"]["id"]
        client = await create_client(f"http://{gw.addresses.http}/a2a/held",
                                     client_config=ClientConfig(streaming=True, httpx_client=http))
        await asyncio.wait_for(held.started.wait(), 5)
        got = MessageToDict(await client.get_task(GetTaskRequest(id=task_id)))
        assert got["id"] == task_id
        listed = MessageToDict(await client.list_tasks(ListTasksRequest()))
        assert [t["id"] for t in listed["tasks"]] == [task_id]

        async def follow() -> list[dict[str, Any]]:
            return [MessageToDict(f) async for f in client.subscribe(SubscribeToTaskRequest(id=task_id))]

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        cancelled = MessageToDict(await client.cancel_task(CancelTaskRequest(id=task_id)))
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        frames = await asyncio.wait_for(follower, 10)
        assert frames[0]["task"]["id"] == task_id
        assert frames[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
        await client.close()


async def test_finished_tasks_survive_a_restart(
    gateway_factory: GatewayFactory, held: HeldAgent, tmp_path: Path
) -> None:
    held.release.set()
    yaml = agents_yaml(held.url) + f"state: {{sqlite: {{path: '{tmp_path / 'state.db'}'}}}}\n"
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        task = (await Rpc(session, f"http://{gw.addresses.http}").result("SendMessage", message("keep me")))["task"]
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        rpc = Rpc(session, f"http://{gw.addresses.http}")
        again = await rpc.result("GetTask", {"id": task["id"]})
        assert again == task
        assert [t["id"] for t in (await rpc.result("ListTasks"))["tasks"]] == [task["id"]]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    if not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    prefix = f"agw-test-a2a:{uuid.uuid4().hex}:"
    yield prefix
    await drop_prefix(prefix)


async def test_a_fleet_answers_for_every_task_through_redis(
    gateway_factory: GatewayFactory, held: HeldAgent, redis_prefix: str
) -> None:
    yaml = agents_yaml(held.url).replace("runs: {poll_interval: 50ms}", "") + f"""
state:
  backend: redis
  redis: {{url: "{REDIS_URL}", key_prefix: "{redis_prefix}state:"}}
runs: {{key_prefix: "{redis_prefix}", poll_interval: 50ms}}
"""
    async with gateway_factory(yaml) as first, gateway_factory(yaml) as second, aiohttp.ClientSession() as session:
        one, two = Rpc(session, f"http://{first.addresses.http}"), Rpc(session, f"http://{second.addresses.http}")
        # A task created on the first gateway is got, listed and followed on the second...
        streamed = (await one.result("SendMessage", {**message("fleet"), "configuration": {"returnImmediately": True}}))
        task_id = streamed["task"]["id"]
        await asyncio.wait_for(held.started.wait(), 5)
        await _state_becomes(two, task_id, "TASK_STATE_WORKING")
        assert [t["id"] for t in (await two.result("ListTasks"))["tasks"]] == [task_id]
        # ... and cancelled there: the first gateway, running it, abandons the upstream call.
        cancelled = await asyncio.wait_for(two.result("CancelTask", {"id": task_id}), 15)
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        await asyncio.wait_for(held.disconnected.wait(), 5)
        assert (await one.result("GetTask", {"id": task_id}))["status"]["state"] == "TASK_STATE_CANCELED"
        # A task finished on one gateway is whole on the other, artifacts included.
        held.release.set()
        done = (await one.result("SendMessage", message("fleet two")))["task"]
        assert await two.result("GetTask", {"id": done["id"]}) == done

        # SubscribeToTask on the second gateway follows a turn streaming on the first.
        held.release.clear()
        frames: list[dict[str, Any]] = []
        async for frame in one.stream("SendStreamingMessage", message("fleet stream")):
            frames.append(frame["result"])
            if "artifactUpdate" in frame["result"]:
                break
        followed: list[dict[str, Any]] = []
        async for frame in two.stream("SubscribeToTask", {"id": frames[0]["task"]["id"]}):
            followed.append(frame["result"])
            if len(followed) == 2:
                held.release.set()
        chunks = [f["artifactUpdate"]["artifact"]["parts"][0]["text"] for f in followed if "artifactUpdate" in f]
        assert chunks == ["part1 ", "part2"]
        assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_rest_binding_through_the_a2a_sdk_client(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, aiohttp.ClientSession() as session, \
            httpx.AsyncClient(timeout=10) as http:
        base = f"http://{gw.addresses.http}/a2a/held"
        client = await create_client(base, client_config=ClientConfig(
            streaming=True, httpx_client=http, supported_protocol_bindings=["HTTP+JSON"]))
        request = SendMessageRequest(message=new_text_message("over rest", role=Role.ROLE_USER))
        frames: list[dict[str, Any]] = []
        async for frame in client.send_message(request):
            frames.append(MessageToDict(frame))
            if "artifactUpdate" in frames[-1]:
                break
        task_id = frames[0]["task"]["id"]
        listed = MessageToDict(await client.list_tasks(ListTasksRequest()))
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        follower = asyncio.create_task(
            _collect(client.subscribe(SubscribeToTaskRequest(id=task_id)))
        )
        await asyncio.sleep(0.2)
        held.release.set()
        followed = await asyncio.wait_for(follower, 10)
        assert followed[0]["task"]["id"] == task_id
        assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
        done = MessageToDict(await client.get_task(GetTaskRequest(id=task_id, history_length=1)))
        assert done["artifacts"][0]["parts"] == [{"text": "part1 part2"}] and len(done["history"]) == 1
        await client.close()
        # Raw REST: errors are google.rpc.Status with the A2A reason; a finished task is not cancelable.
        async with session.post(f"{base}/rest/tasks/{task_id}:cancel", headers=V1) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert error["details"][0]["reason"] == "TASK_NOT_CANCELABLE"
        async with session.get(f"{base}/rest/tasks/{uuid.uuid4()}", headers=V1) as response:
            assert response.status == 404
            assert (await response.json())["error"]["details"][0]["reason"] == "TASK_NOT_FOUND"
        async with session.get(f"{base}/rest/tasks?pageSize=0", headers=V1) as response:
            assert response.status == 400
        async with session.get(f"{base}/rest/tasks", headers={"a2a-version": "9.9"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["details"][0]["reason"] == "VERSION_NOT_SUPPORTED"
        async with session.post(f"{base}/rest/message:send", json={**message("again", taskId=task_id)}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["details"][0]["reason"] == "UNSUPPORTED_OPERATION"


async def _collect(frames: AsyncIterator[Any]) -> list[dict[str, Any]]:
    return [MessageToDict(f) async for f in frames]


async def test_grpc_binding_through_the_a2a_sdk_client(gateway_factory: GatewayFactory, held: HeldAgent) -> None:
    async with gateway_factory(agents_yaml(held.url)) as gw, httpx.AsyncClient(timeout=10) as http:
        base = f"http://{gw.addresses.http}/a2a/held"
        card = (await http.get(f"{base}/.well-known/agent-card.json")).json()
        grpc_interface = next(i for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC")
        assert grpc_interface == {"url": f"http://{gw.addresses.grpc}", "protocolBinding": "GRPC",
                                  "protocolVersion": "1.0", "tenant": "held"}
        client = await create_client(base, client_config=ClientConfig(
            streaming=True, httpx_client=http, supported_protocol_bindings=["GRPC"],
            grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url.split("://", 1)[-1])))
        frames: list[dict[str, Any]] = []
        async for frame in client.send_message(SendMessageRequest(message=new_text_message("over grpc"))):
            frames.append(MessageToDict(frame))
            if "artifactUpdate" in frames[-1]:
                break
        task_id = frames[0]["task"]["id"]
        listed = MessageToDict(await client.list_tasks(ListTasksRequest()))
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        follower = asyncio.create_task(_collect(client.subscribe(SubscribeToTaskRequest(id=task_id))))
        await asyncio.sleep(0.2)
        held.release.set()
        followed = await asyncio.wait_for(follower, 10)
        assert followed[0]["task"]["id"] == task_id
        assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
        done = MessageToDict(await client.get_task(GetTaskRequest(id=task_id)))
        assert done["artifacts"][0]["parts"] == [{"text": "part1 part2"}]
        await client.close()
        # Raw stub: the spec's status codes; the tenant names the agent.
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CancelTask(a2a_pb2.CancelTaskRequest(tenant="held", id=task_id))
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            details = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
            assert b"TASK_NOT_CANCELABLE" in details and b"a2a-protocol.org" in details
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="held", id=str(uuid.uuid4())))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="nobody", id=task_id))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="held", id=task_id), metadata=(("a2a-version", "7.0"),))
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            task = await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="held", id=task_id, history_length=1))
            assert task.status.state == a2a_pb2.TASK_STATE_COMPLETED and len(task.history) == 1


async def test_push_configs_and_extended_card_on_rest_and_grpc(
    gateway_factory: GatewayFactory, held: HeldAgent, serve_app: Starter
) -> None:
    hooks = await serve_app(web.Application())
    extra = f"runs: {{poll_interval: 50ms, webhooks: {{allowed_prefixes: ['{hooks}/hooks/'], secret: s3cret}}}}"
    yaml = secured_yaml(held.url).replace("runs: {poll_interval: 50ms}\n", "") + extra
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        alice = Rpc(session, f"http://{gw.addresses.http}", {"x-api-key": KEY_A})
        task_id = (await alice.result("SendMessage", {**message("p"), "configuration": {"returnImmediately": True}}))[
            "task"]["id"]
        rest = f"http://{gw.addresses.http}/a2a/held/rest"
        auth = {**V1, "x-api-key": KEY_A}
        async with session.post(f"{rest}/tasks/{task_id}/pushNotificationConfigs", headers=auth,
                                json={"url": f"{hooks}/hooks/rest"}) as response:
            assert response.status == 200
            created = await response.json()
        async with session.get(f"{rest}/tasks/{task_id}/pushNotificationConfigs/{created['id']}", headers=auth) as r:
            assert await r.json() == created
        async with session.delete(f"{rest}/tasks/{task_id}/pushNotificationConfigs/{created['id']}", headers=auth) as r:
            assert r.status == 200
        async with session.get(f"{rest}/tasks/{task_id}/pushNotificationConfigs", headers=auth) as r:
            assert (await r.json())["configs"] == []
        async with session.get(f"{rest}/extendedAgentCard", headers=auth) as r:
            assert (await r.json())["description"].endswith("(as seen by alice)")
        metadata = (("x-api-key", KEY_A), ("a2a-version", "1.0"))
        async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            config = await stub.CreateTaskPushNotificationConfig(a2a_pb2.TaskPushNotificationConfig(
                tenant="held", task_id=task_id, url=f"{hooks}/hooks/grpc"), metadata=metadata)
            listed = await stub.ListTaskPushNotificationConfigs(
                a2a_pb2.ListTaskPushNotificationConfigsRequest(tenant="held", task_id=task_id), metadata=metadata)
            assert [c.id for c in listed.configs] == [config.id]
            await stub.DeleteTaskPushNotificationConfig(a2a_pb2.DeleteTaskPushNotificationConfigRequest(
                tenant="held", task_id=task_id, id=config.id), metadata=metadata)
            card = await stub.GetExtendedAgentCard(a2a_pb2.GetExtendedAgentCardRequest(tenant="held"),
                                                   metadata=metadata)
            assert card.name == "held" and card.description.endswith("(as seen by alice)")
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # bob may call held but not see alice's task
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="held", id=task_id),
                                   metadata=(("x-api-key", KEY_B),))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="held", id=task_id))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        held.release.set()


def sdk_client_config(
    http: httpx.AsyncClient, binding: str, streaming: bool = False, channels: list[str] | None = None
) -> ClientConfig:
    """The a2a-sdk client on one binding; the card names the gRPC endpoint as http://host:port.
    ``channels`` records the gRPC channels it opens (none unless it chose gRPC)."""

    def channel(url: str) -> grpc.aio.Channel:
        if channels is not None:
            channels.append(url)
        return grpc.aio.insecure_channel(url.split("://", 1)[-1])

    return ClientConfig(
        streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding], grpc_channel_factory=channel
    )


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON", "GRPC"])
async def test_push_configs_and_extended_card_through_the_a2a_sdk_client(
    gateway_factory: GatewayFactory, held: HeldAgent, serve_app: Starter, binding: str
) -> None:
    """The official client's push-config operations (create, get, list, delete) and
    GetExtendedAgentCard on every binding; a created config receives the task's end."""
    pushed: list[tuple[dict[str, Any], str]] = []

    async def hook(request: web.Request) -> web.Response:
        pushed.append((await request.json(), request.headers.get("x-a2a-notification-token", "")))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hooks/sdk", hook)
    hooks = await serve_app(receiver)
    extra = f"runs: {{poll_interval: 50ms, webhooks: {{allowed_prefixes: ['{hooks}/hooks/'], secret: s3cret}}}}"
    yaml = secured_yaml(held.url).replace("runs: {poll_interval: 50ms}\n", "") + extra
    alice = ClientCallContext(service_parameters={"x-api-key": KEY_A})
    bob = ClientCallContext(service_parameters={"x-api-key": KEY_B})
    # The card is behind the listener's authentication too: the key on the client's own requests.
    async with gateway_factory(yaml) as gw, httpx.AsyncClient(timeout=10, headers={"x-api-key": KEY_A}) as http:
        channels: list[str] = []
        client = await create_client(
            f"http://{gw.addresses.http}/a2a/held", sdk_client_config(http, binding, channels=channels)
        )
        assert channels == ([f"http://{gw.addresses.grpc}"] if binding == "GRPC" else [])
        request = SendMessageRequest(
            message=new_text_message("push me"), configuration=SendMessageConfiguration(return_immediately=True)
        )
        answers = [MessageToDict(a) async for a in client.send_message(request, context=alice)]
        task_id = answers[-1]["task"]["id"]
        url = f"{hooks}/hooks/sdk"
        created = await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, url=url, token="sdk-token"), context=alice
        )
        assert created.id and (created.task_id, created.url, created.token) == (task_id, url, "sdk-token")
        got = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task_id, id=created.id), context=alice
        )
        assert got == created
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task_id), context=alice
        )
        assert list(listed.configs) == [created]
        with pytest.raises(TaskNotFoundError):  # bob may call held, but alice's task is not his
            await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id), context=bob
            )
        held.release.set()
        for _ in range(200):
            if any(p["task"]["status"]["state"] == "TASK_STATE_COMPLETED" for p, _ in pushed):
                break
            await asyncio.sleep(0.025)
        assert ({"id": task_id, "state": "TASK_STATE_COMPLETED"}, "sdk-token") in [
            ({"id": p["task"]["id"], "state": p["task"]["status"]["state"]}, token) for p, token in pushed
        ]
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=created.id), context=alice
        )
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task_id), context=alice
        )
        assert list(listed.configs) == []
        card = await client.get_extended_agent_card(GetExtendedAgentCardRequest(), context=alice)
        assert card.name == "held" and card.description.endswith("(as seen by alice)")
        await client.close()



def fleet_yaml(url: str, prefix: str) -> str:
    """Gateways sharing one Redis for their runs and tasks."""
    return agents_yaml(url).replace("runs: {poll_interval: 50ms}", "") + f"""
state:
  backend: redis
  redis: {{url: "{REDIS_URL}", key_prefix: "{prefix}state:"}}
runs: {{key_prefix: "{prefix}", poll_interval: 50ms}}
"""


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON", "GRPC"])
async def test_a_fleet_answers_the_a2a_sdk_client_for_every_task(
    gateway_factory: GatewayFactory, held: HeldAgent, redis_prefix: str, binding: str
) -> None:
    """Two gateways on the real Redis: a task the official client created on the first is got,
    listed, followed and cancelled through the second; a finished one reads the same on both."""
    yaml = fleet_yaml(held.url, redis_prefix)
    async with gateway_factory(yaml) as first, gateway_factory(yaml) as second, \
            httpx.AsyncClient(timeout=10) as http:
        one = await create_client(f"http://{first.addresses.http}/a2a/held", sdk_client_config(http, binding))
        two = await create_client(
            f"http://{second.addresses.http}/a2a/held", sdk_client_config(http, binding, streaming=True)
        )
        request = SendMessageRequest(
            message=new_text_message("fleet"), configuration=SendMessageConfiguration(return_immediately=True)
        )
        task_id = [MessageToDict(a) async for a in one.send_message(request)][-1]["task"]["id"]
        await asyncio.wait_for(held.started.wait(), 5)
        for _ in range(200):
            got = MessageToDict(await two.get_task(GetTaskRequest(id=task_id)))
            if got["status"]["state"] == "TASK_STATE_WORKING":
                break
            await asyncio.sleep(0.025)
        assert got["id"] == task_id and got["status"]["state"] == "TASK_STATE_WORKING"
        listed = MessageToDict(await two.list_tasks(ListTasksRequest()))
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        follower = asyncio.create_task(_collect(two.subscribe(SubscribeToTaskRequest(id=task_id))))
        await asyncio.sleep(0.3)
        # Cancelled on the second gateway: the first, running the turn, abandons the upstream call.
        cancelled = MessageToDict(await asyncio.wait_for(two.cancel_task(CancelTaskRequest(id=task_id)), 15))
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        followed = await asyncio.wait_for(follower, 10)
        assert followed[0]["task"]["id"] == task_id
        assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
        await asyncio.wait_for(held.disconnected.wait(), 5)
        assert MessageToDict(await one.get_task(GetTaskRequest(id=task_id)))["status"]["state"] == "TASK_STATE_CANCELED"
        # A task finished on the first gateway reads the same on the second, artifacts included.
        held.release.set()
        done = [MessageToDict(a) async for a in one.send_message(SendMessageRequest(message=new_text_message("two")))]
        finished = done[-1]["task"]
        assert finished["status"]["state"] == "TASK_STATE_COMPLETED"
        assert MessageToDict(await two.get_task(GetTaskRequest(id=finished["id"]))) == finished
        await one.close()
        await two.close()
