"""The state service end to end through a running gateway: HTTP, gRPC and the Python client."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from multidict import CIMultiDict

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import state_pb2 as spb
from agentgateway.v1 import state_pb2_grpc as spb_grpc
from agentgateway_client import AgentClient, ClientError, StatusCode
from gateway import wire
from gateway.server.app import GatewayServer
from tests.conftest import GatewayFactory, Starter
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available

STATE_YAML = """
state:
  sqlite: {path: ':memory:'}
  limits: {max_value_bytes: 64, max_keys_per_scope: 4}
  allow_explicit_scopes: [workflow]
"""
S1 = {"x-session-id": "s-1"}


@pytest.fixture
async def gw(gateway_factory: GatewayFactory) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(STATE_YAML) as server:
        yield server


@pytest.fixture
async def http(gw: GatewayServer) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, f"http://{gw.addresses.http}/v1/state")


@pytest.fixture
async def stub(gw: GatewayServer) -> AsyncIterator[spb_grpc.StateServiceStub]:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        yield spb_grpc.StateServiceStub(channel)  # type: ignore[no-untyped-call]


class Http:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: str | None = None
    ) -> tuple[int, CIMultiDict[str], Any]:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            data = None
            if text:
                data = await response.json(content_type=None)
            return response.status, CIMultiDict(response.headers), data


def error_code(body: dict[str, Any]) -> str:
    code: str = body["error"]["code"]
    return code


async def test_http_put_get_list_delete(http: Http) -> None:
    status, headers, created = await http.call("PUT", "/session/plan/step-1", {"value": {"todo": [1, 2]}}, S1)
    assert status == 201
    assert created["value"] == {"todo": [1, 2]} and created["version"] == 1
    assert created["scope"] == "session" and created["scopeId"] == "s-1" and created["key"] == "plan/step-1"
    assert headers["ETag"] == f'"{created["etag"]}"'
    status, _, updated = await http.call("PUT", "/session/plan/step-1", {"value": "done"}, S1)
    assert status == 200 and updated["version"] == 2 and updated["etag"] != created["etag"]
    await http.call("PUT", "/session/plan/step-2", {"value": None}, S1)
    await http.call("PUT", "/session/other", {"value": 1}, S1)
    status, headers, got = await http.call("GET", "/session/plan/step-1", headers=S1)
    assert status == 200 and got["value"] == "done" and headers["ETag"] == f'"{updated["etag"]}"'
    assert got["updateTime"].endswith("Z") and "expireTime" not in got
    status, _, listing = await http.call("GET", "/session?prefix=plan/", headers=S1)
    assert status == 200
    assert [(e["key"], e["value"]) for e in listing["entries"]] == [("plan/step-1", "done"), ("plan/step-2", None)]
    status, _, first = await http.call("GET", "/session?limit=2", headers=S1)
    assert [e["key"] for e in first["entries"]] == ["other", "plan/step-1"] and first["nextPageToken"]
    status, _, rest = await http.call("GET", f"/session?limit=2&pageToken={first['nextPageToken']}", headers=S1)
    assert [e["key"] for e in rest["entries"]] == ["plan/step-2"] and "nextPageToken" not in rest
    status, _, _ = await http.call("DELETE", "/session/plan/step-1", headers=S1)
    assert status == 204
    status, _, missing = await http.call("GET", "/session/plan/step-1", headers=S1)
    assert status == 404 and error_code(missing) == "NOT_FOUND"
    status, _, missing = await http.call("DELETE", "/session/plan/step-1", headers=S1)
    assert status == 404


async def test_http_bytes_and_ttl(http: Http) -> None:
    blob = bytes(range(40))
    status, _, entry = await http.call(
        "PUT", "/session/blob", {"bytes": base64.b64encode(blob).decode(), "ttl": "250ms"}, S1
    )
    assert status == 201 and "expireTime" in entry
    status, _, got = await http.call("GET", "/session/blob", headers=S1)
    assert base64.b64decode(got["bytes"]) == blob and "value" not in got
    await asyncio.sleep(0.4)
    status, _, _ = await http.call("GET", "/session/blob", headers=S1)
    assert status == 404


async def test_http_conditional_writes(http: Http) -> None:
    _, _, first = await http.call("PUT", "/session/lock", {"value": "a"}, {**S1, "If-None-Match": "*"})
    status, _, body = await http.call("PUT", "/session/lock", {"value": "b"}, {**S1, "If-None-Match": "*"})
    assert status == 409 and error_code(body) == "ABORTED" and "already exists" in body["error"]["message"]
    etag = f'"{first["etag"]}"'
    status, _, second = await http.call("PUT", "/session/lock", {"value": "b"}, {**S1, "If-Match": etag})
    assert status == 200 and second["value"] == "b"
    status, _, body = await http.call("PUT", "/session/lock", {"value": "c"}, {**S1, "If-Match": etag})
    assert status == 409 and error_code(body) == "ABORTED"
    assert body["error"]["details"]["etag"] == second["etag"]
    status, _, _ = await http.call("DELETE", "/session/lock", headers={**S1, "If-Match": etag})
    assert status == 409
    status, _, _ = await http.call("GET", "/session/lock", headers={**S1, "If-None-Match": f'"{second["etag"]}"'})
    assert status == 304
    status, _, _ = await http.call("DELETE", "/session/lock", headers={**S1, "If-Match": f'"{second["etag"]}"'})
    assert status == 204
    status, _, body = await http.call("PUT", "/session/lock", {"value": 1}, {**S1, "If-Match": "*"})
    assert status == 409 and "does not exist" in body["error"]["message"]


async def test_http_scopes_come_from_context_and_foreign_ids_are_refused(http: Http) -> None:
    await http.call("PUT", "/session/k", {"value": "mine"}, S1)
    status, _, _ = await http.call("GET", "/session/k", headers={"x-session-id": "s-2"})
    assert status == 404  # another session sees its own, empty scope
    status, _, body = await http.call("GET", "/session/k?scopeId=s-1", headers={"x-session-id": "s-2"})
    assert status == 403 and error_code(body) == "PERMISSION_DENIED"
    assert "allow_explicit_scopes" in body["error"]["message"]
    status, _, body = await http.call("PUT", "/user/k?scopeId=u-9", {"value": 1}, {"x-user-id": "u-1"})
    assert status == 403
    status, _, body = await http.call("GET", "/session/k?scopeId=s-1", headers=S1)
    assert status == 200 and body["value"] == "mine"
    status, _, body = await http.call("GET", "/session/k")
    assert status == 400 and "x-session-id" in body["error"]["message"]
    # Thread and user scopes outlive a session.
    await http.call("PUT", "/thread/summary", {"value": "t"}, {"x-session-id": "a", "x-thread-id": "t-1"})
    await http.call("PUT", "/user/prefs", {"value": "u"}, {"x-session-id": "a", "x-user-id": "u-1"})
    status, _, body = await http.call("GET", "/thread/summary", headers={"x-session-id": "b", "x-thread-id": "t-1"})
    assert status == 200 and body["value"] == "t"
    status, _, body = await http.call("GET", "/user/prefs", headers={"x-session-id": "c", "x-user-id": "u-1"})
    assert status == 200 and body["value"] == "u"
    # The granted workflow scope may be named explicitly.
    status, _, _ = await http.call("PUT", "/workflow/out?scopeId=run-1", {"value": 1})
    assert status == 201
    status, _, body = await http.call("GET", "/galaxy/k", headers=S1)
    assert status == 400 and "unknown state scope" in body["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code", "fragment"),
    [
        ("{not json", {}, 400, "INVALID_ARGUMENT", "not valid JSON"),
        ("[1, 2]", {}, 400, "INVALID_ARGUMENT", "JSON object"),
        ('{"value": 1, "bytes": "AA=="}', {}, 400, "INVALID_ARGUMENT", "exactly one"),
        ("{}", {}, 400, "INVALID_ARGUMENT", "exactly one"),
        ('{"value": 1, "colour": "red"}', {}, 400, "INVALID_ARGUMENT", "colour"),
        ('{"bytes": "***"}', {}, 400, "INVALID_ARGUMENT", "base64"),
        ('{"value": 1, "ttl": "soon"}', {}, 400, "INVALID_ARGUMENT", "ttl"),
        ('{"value": 1, "ttl": 0}', {}, 400, "INVALID_ARGUMENT", "positive"),
        ('{"value": 1}', {"If-Match": 'W/"abc"'}, 400, "INVALID_ARGUMENT", "weak"),
        ('{"value": 1}', {"If-None-Match": '"abc"'}, 400, "INVALID_ARGUMENT", "If-None-Match: *"),
        ('{"value": "' + "x" * 80 + '"}', {}, 413, "INVALID_ARGUMENT", "max_value_bytes"),
    ],
)
async def test_http_malformed_puts(
    http: Http, raw: str, headers: dict[str, str], status: int, code: str, fragment: str
) -> None:
    got, _, body = await http.call("PUT", "/session/k", headers={**S1, **headers}, raw=raw)
    assert got == status
    assert error_code(body) == code
    assert fragment in body["error"]["message"]
    missing, _, _ = await http.call("GET", "/session/k", headers=S1)
    assert missing == 404  # nothing was written


async def test_http_limits_and_bad_queries(http: Http) -> None:
    for index in range(4):
        status, _, _ = await http.call("PUT", f"/session/k{index}", {"value": index}, S1)
        assert status == 201
    status, _, body = await http.call("PUT", "/session/k4", {"value": 4}, S1)
    assert status == 413 and error_code(body) == "RESOURCE_EXHAUSTED" and not body["error"]["transient"]
    status, _, body = await http.call("GET", "/session?limit=lots", headers=S1)
    assert status == 400
    status, _, body = await http.call("GET", "/session?limit=5000", headers=S1)
    assert status == 400 and "1000" in body["error"]["message"]


def state_error(error: grpc.aio.AioRpcError) -> pb.ErrorDetail:
    trailers = dict(error.trailing_metadata() or ())
    return pb.ErrorDetail.FromString(trailers[wire.ERROR_TRAILER])


async def test_grpc_put_get_list_delete(stub: spb_grpc.StateServiceStub) -> None:
    md = (("x-session-id", "s-1"),)
    session = spb.STATE_SCOPE_SESSION
    put = (await stub.PutState(spb.PutStateRequest(scope=session, key="a", json='{"n": 12345678901234567}'), metadata=md)).entry
    assert put.version == 1 and put.etag and put.scope_id == "s-1" and put.json == '{"n":12345678901234567}'
    await stub.PutState(spb.PutStateRequest(scope=session, key="b", bytes=b"\x00\x01"), metadata=md)
    got = (await stub.GetState(spb.GetStateRequest(scope=session, key="b"), metadata=md)).entry
    assert got.WhichOneof("value") == "bytes" and got.bytes == b"\x00\x01"
    listing = await stub.ListState(spb.ListStateRequest(scope=session, page_size=1), metadata=md)
    assert [e.key for e in listing.entries] == ["a"] and listing.next_page_token
    rest = await stub.ListState(
        spb.ListStateRequest(scope=session, page_size=1, page_token=listing.next_page_token), metadata=md
    )
    assert [e.key for e in rest.entries] == ["b"] and not rest.next_page_token
    await stub.DeleteState(spb.DeleteStateRequest(scope=session, key="a"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetState(spb.GetStateRequest(scope=session, key="a"), metadata=md)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_grpc_ttl(stub: spb_grpc.StateServiceStub) -> None:
    md = (("x-session-id", "s-1"),)
    request = spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="t", json="1")
    request.ttl.FromMilliseconds(200)
    entry = (await stub.PutState(request, metadata=md)).entry
    assert entry.HasField("expire_time")
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetState(spb.GetStateRequest(scope=spb.STATE_SCOPE_SESSION, key="t"), metadata=md)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "metadata", "code", "fragment"),
    [
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k", json="1", if_match="stale"), S1, "ABORTED", "does not exist"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k", json="1", scope_id="s-2"), S1, "PERMISSION_DENIED", "not the caller's own"),
        (spb.PutStateRequest(key="k", json="1"), S1, "INVALID_ARGUMENT", "'scope' is required"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k"), S1, "INVALID_ARGUMENT", "needs a value"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k", json="{oops"), S1, "INVALID_ARGUMENT", "not valid JSON"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="k", bytes=b"x" * 65), S1, "INVALID_ARGUMENT", "max_value_bytes"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_SESSION, key="", json="1"), S1, "INVALID_ARGUMENT", "cannot be empty"),
        (spb.PutStateRequest(scope=spb.STATE_SCOPE_THREAD, key="k", json="1"), S1, "INVALID_ARGUMENT", "x-thread-id"),
    ],
)
async def test_grpc_errors(
    stub: spb_grpc.StateServiceStub, request_: spb.PutStateRequest, metadata: dict[str, str], code: str, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PutState(request_, metadata=tuple(metadata.items()))
    assert info.value.code() == grpc.StatusCode[code]
    assert fragment in (info.value.details() or "")
    assert state_error(info.value).code == code


async def test_grpc_stale_etag_is_aborted_and_full_scope_exhausted(stub: spb_grpc.StateServiceStub) -> None:
    md = (("x-session-id", "s-1"),)
    session = spb.STATE_SCOPE_SESSION
    first = (await stub.PutState(spb.PutStateRequest(scope=session, key="k", json="1"), metadata=md)).entry
    await stub.PutState(spb.PutStateRequest(scope=session, key="k", json="2", if_match=first.etag), metadata=md)
    for request in (
        spb.PutStateRequest(scope=session, key="k", json="3", if_match=first.etag),
        spb.PutStateRequest(scope=session, key="k", json="3", if_none_match=True),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.PutState(request, metadata=md)
        assert info.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DeleteState(spb.DeleteStateRequest(scope=session, key="k", if_match=first.etag), metadata=md)
    assert info.value.code() == grpc.StatusCode.ABORTED
    for key in ("x", "y", "z"):
        await stub.PutState(spb.PutStateRequest(scope=session, key=key, json="0"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PutState(spb.PutStateRequest(scope=session, key="one-too-many", json="0"), metadata=md)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_grpc_malformed_protobuf(gw: GatewayServer) -> None:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        raw = channel.unary_unary("/agentgateway.v1.StateService/PutState")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await raw(b"\xff\xff\xff\xff garbage", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid agentgateway.v1 state request" in (info.value.details() or "")


async def test_python_client_and_both_fronts_share_one_store(gw: GatewayServer, http: Http) -> None:
    assert gw.addresses.grpc is not None
    inbound = {"x-session-id": "s-1", "x-user-id": "u-1"}
    async with AgentClient(gw.addresses.grpc, inbound=inbound) as client:
        record = await client.state.put("session", "plan", {"steps": ["search", "write"]})
        assert record.version == 1 and record.value.json() == {"steps": ["search", "write"]}
        # Written through gRPC, read through HTTP.
        status, headers, body = await http.call("GET", "/session/plan", headers=S1)
        assert status == 200 and body["value"] == {"steps": ["search", "write"]}
        assert headers["ETag"] == f'"{record.etag}"'
        updated = await client.state.compare_and_set("session", "plan", record.etag, {"steps": ["write"]})
        with pytest.raises(ClientError) as info:
            await client.state.compare_and_set("session", "plan", record.etag, {"steps": []})
        assert info.value.code is StatusCode.ABORTED
        with pytest.raises(ClientError) as info:
            await client.state.compare_and_set("session", "plan", None, {"steps": []})
        assert info.value.code is StatusCode.ABORTED
        got = await client.state.get("session", "plan")
        assert got is not None and got.etag == updated.etag and got.value.json() == {"steps": ["write"]}
        await client.state.put("user", "avatar", b"\x89PNG", ttl=60)
        avatar = await client.state.get("user", "avatar")
        assert avatar is not None and avatar.value.payload == b"\x89PNG" and avatar.expires_at is not None
        for index in range(3):
            await client.state.put("session", f"note/{index}", index)
        notes = await client.state.list("session", "note/", page_size=2)
        assert [(r.key, r.value.json()) for r in notes] == [("note/0", 0), ("note/1", 1), ("note/2", 2)]
        assert await client.state.delete("session", "note/0") is True
        assert await client.state.delete("session", "note/0") is False
        assert await client.state.get("session", "note/0") is None
        with pytest.raises(ClientError) as info:
            await client.state.get("session", "plan", scope_id="s-2")
        assert info.value.code is StatusCode.PERMISSION_DENIED


class StepAgents:
    """Two HTTP agents that use the gateway's state API with the context they received,
    as an agent calling its sidecar would: one writes a note, the other reads it."""

    def __init__(self) -> None:
        self.state_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/writer", self.writer)
        app.router.add_post("/reader", self.reader)
        return app

    def _forward(self, request: web.Request) -> dict[str, str]:
        return {h: request.headers[h] for h in ("baggage", "x-session-id") if h in request.headers}

    async def writer(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            headers = {**self._forward(request), "If-None-Match": "*"}  # create-only: once per run
            payload = {"value": "from the writer"}
            async with session.put(f"{self.state_url}/workflow/note", json=payload, headers=headers) as response:
                status = response.status
        return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": f"wrote {status}"}]}]})

    async def reader(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.state_url}/workflow/note", headers=self._forward(request)) as response:
                body = await response.json()
        text = body.get("value") or body.get("error", {}).get("code", "?")
        return web.json_response({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": text}]}]})


async def test_workflow_steps_share_the_run_scope(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    agents = StepAgents()
    url = await serve_app(agents.app())
    yaml_text = f"""
agents:
  writer: {{kind: http, endpoint: "{url}", options: {{invoke_path: /writer}}}}
  reader: {{kind: http, endpoint: "{url}", options: {{invoke_path: /reader}}}}
workflows:
  pass-note:
    kind: sequential
    steps_in_answer: outputs
    steps:
      - {{name: write, agent: writer}}
      - {{name: read, agent: reader}}
state: {{sqlite: {{path: ':memory:'}}}}
"""
    async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as session:
        agents.state_url = f"http://{gw.addresses.http}/v1/state"
        payload = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "go"}]}]}
        for _ in range(2):  # each run has a scope of its own, so create-only succeeds twice
            async with session.post(f"http://{gw.addresses.http}/v1/agents/pass-note/invoke", json=payload) as response:
                body = await response.json()
            assert response.status == 200, body
            steps = {s["name"]: s["output"]["text"] for s in body["metadata"]["steps"]}
            assert steps == {"write": "wrote 201", "read": "from the writer"}
        # Outside a run there is no workflow scope, and naming one is refused without a grant.
        async with session.get(f"{agents.state_url}/workflow/note") as response:
            assert response.status == 400
        async with session.get(f"{agents.state_url}/workflow/note?scopeId=guess") as response:
            assert response.status == 403


async def test_state_can_be_disabled(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory("state: null\n") as gw, aiohttp.ClientSession() as session:
        assert gw.state is None
        async with session.get(f"http://{gw.addresses.http}/v1/state/session/k", headers=S1) as response:
            assert response.status == 404


async def test_redis_backend_through_the_gateway(gateway_factory: GatewayFactory) -> None:
    if not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    prefix = f"agw-test:{uuid.uuid4().hex}:"
    yaml_text = f"state: {{backend: redis, redis: {{url: '{REDIS_URL}', key_prefix: '{prefix}'}}}}\n"
    try:
        async with gateway_factory(yaml_text) as gw, aiohttp.ClientSession() as session:
            base = f"http://{gw.addresses.http}/v1/state"
            async with session.put(f"{base}/session/k", json={"value": [1]}, headers=S1) as response:
                assert response.status == 201
                etag = response.headers["ETag"]
            async with session.put(f"{base}/session/k", json={"value": [2]}, headers={**S1, "If-Match": '"nope"'}) as response:
                assert response.status == 409
            async with session.get(f"{base}/session/k", headers=S1) as response:
                assert (await response.json())["value"] == [1] and response.headers["ETag"] == etag
    finally:
        await drop_prefix(prefix)
