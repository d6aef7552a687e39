"""Logging, completion and resource subscriptions federated to a real SDK upstream (the conformance
fixtures), for clients of both revisions and upstreams of both revisions: the log level reaches the
upstream (2026-07-28: in each request's _meta; 2025-11-25: logging/setLevel on the gateway's session)
and the logs come back on the tool call's stream, filtered to the client's level; completion is routed
by the reference's prefixed name; a subscribed resource's updates reach the subscribed client only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitResult,
    LoggingMessageNotificationParams,
    PromptReference,
    TextContent,
)

from gateway.protocols import mcp
from tests.conftest import GatewayFactory
from tests.helpers.mcp import KEY_A, KEY_B, ToolServer, sha, start_tool_server

HERE = Path(__file__).resolve().parent
UPSTREAM_REVISIONS = ["modern", mcp.LEGACY]
# Logging and resources/subscribe are what these tests exercise, deprecated in 2026-07-28 or not.
DEPRECATED = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@pytest.fixture
def fixtures() -> Iterator[ToolServer]:
    server = start_tool_server("fixtures", script=HERE / "conformance_server.py")
    yield server
    server.stop()


def gateway_yaml(server: ToolServer, upstream_revision: str, prefix: str = "") -> str:
    pin = f", protocol_version: '{upstream_revision}'" if upstream_revision != "modern" else ""
    return f"""\
mcp:
  upstreams:
    fixtures: {{url: {server.url}{pin}}}
  virtual_servers:
    conformance:
      upstreams: [{{upstream: fixtures, prefix: "{prefix}"}}]
"""


def text_of(result: Any) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


@DEPRECATED
@pytest.mark.parametrize("upstream_revision", UPSTREAM_REVISIONS)
@pytest.mark.parametrize("mode", ["legacy", mcp.MODERN])
async def test_tool_logs_reach_the_client_at_its_level(
    gateway_factory: GatewayFactory, fixtures: ToolServer, upstream_revision: str, mode: str
) -> None:
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with gateway_factory(gateway_yaml(fixtures, upstream_revision)) as gw:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        async with Client(url, mode=mode, logging_callback=on_log, log_level="info") as client:  # type: ignore[arg-type]
            if mode == "legacy":
                await client.set_logging_level("info")
            result = await client.call_tool("test_tool_with_logging", {})
            state = json.loads(text_of(await client.call_tool("session_state", {})))
    assert text_of(result) == "Logging test completed"
    # The three info logs, in order; the upstream's debug log is below the client's level (dropped upstream
    # on 2026-07-28, by the gateway for a 2025-11-25 upstream, which sends every level).
    assert [p.data for p in logs] == ["Tool execution started", "Tool processing data", "Tool execution completed"]
    assert {p.level for p in logs} == {"info"}
    if upstream_revision == mcp.LEGACY and mode == "legacy":
        assert state["levels"] == ["info"]  # logging/setLevel reached the 2025-11-25 upstream


@DEPRECATED
async def test_no_logs_without_a_level(gateway_factory: GatewayFactory, fixtures: ToolServer) -> None:
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with gateway_factory(gateway_yaml(fixtures, mcp.LEGACY)) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/conformance", mode="legacy", logging_callback=on_log) as c:
            assert text_of(await c.call_tool("test_tool_with_logging", {})) == "Logging test completed"
    assert logs == []


@pytest.mark.parametrize("upstream_revision", UPSTREAM_REVISIONS)
async def test_completion_is_routed_by_the_prefixed_prompt_name(
    gateway_factory: GatewayFactory, fixtures: ToolServer, upstream_revision: str
) -> None:
    async with gateway_factory(gateway_yaml(fixtures, upstream_revision, prefix="fx")) as gw:
        async with Client(f"http://{gw.addresses.http}/mcp/conformance", mode="legacy") as client:
            assert client.server_capabilities.completions is not None
            ref = PromptReference(type="ref/prompt", name="fx_test_prompt_with_arguments")
            result = await client.complete(ref, {"name": "arg1", "value": "ab"})
            with pytest.raises(Exception, match="unknown"):
                # The unprefixed name is not one the virtual server exposes.
                unprefixed = PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
                await client.complete(unprefixed, {"name": "arg1", "value": "ab"})
    assert result.completion.values == ["ab-1", "ab-2"]


@DEPRECATED
@pytest.mark.parametrize("upstream_revision", UPSTREAM_REVISIONS)
async def test_a_subscribed_resource_update_reaches_the_subscribed_client(
    gateway_factory: GatewayFactory, fixtures: ToolServer, upstream_revision: str
) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == mcp.RESOURCE_UPDATED:
            updates.append(str(message.params.uri))

    uri = "fx+test://watched-resource"
    async with gateway_factory(gateway_yaml(fixtures, upstream_revision, prefix="fx")) as gw:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        async with (
            Client(url, mode="legacy", message_handler=on_message) as watcher,
            Client(url, mode="legacy") as other,
        ):
            resources = watcher.server_capabilities.resources
            assert resources is not None and resources.subscribe
            await watcher.subscribe_resource(uri)
            await asyncio.sleep(0.5)  # the upstream's listen stream (2026-07-28) opens
            if upstream_revision == mcp.LEGACY:
                state = json.loads(text_of(await other.call_tool("fx_session_state", {})))
                assert state["subscribed"] == ["test://watched-resource"]  # the upstream heard it by its own URI
            await other.call_tool("fx_touch_watched_resource", {})
            for _ in range(50):
                if updates:
                    break
                await asyncio.sleep(0.1)
            assert updates == [uri]  # under the exposed (prefixed) URI, once
            await watcher.unsubscribe_resource(uri)
            await asyncio.sleep(0.5)
            await other.call_tool("fx_touch_watched_resource", {})
            await asyncio.sleep(0.5)
            if upstream_revision == mcp.LEGACY:
                state = json.loads(text_of(await other.call_tool("fx_session_state", {})))
                assert state["subscribed"] == []  # the last follower gone: the upstream is told
    assert updates == [uri]  # nothing after unsubscribing


def guarded_yaml(server: ToolServer) -> str:
    return f"""\
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: null
security:
  api_keys:
    - {{identity: alice, sha256: {sha(KEY_A)}}}
    - {{identity: bob, sha256: {sha(KEY_B)}}}
  authorization:
    - {{identities: [alice], mcp: ["conformance/*"]}}
    - {{identities: [bob], mcp: ["conformance/test_simple_text"]}}
{gateway_yaml(server, "modern")}"""


async def test_completion_and_subscription_are_authorized_per_name(
    gateway_factory: GatewayFactory, fixtures: ToolServer
) -> None:
    async def legacy_session(http: aiohttp.ClientSession, url: str, key: str) -> dict[str, str]:
        headers = {"x-api-key": key, "accept": "application/json, text/event-stream"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": mcp.LEGACY}}
        async with http.post(url, json=body, headers=headers) as response:
            assert response.status == 200
            return {**headers, mcp.HEADER_SESSION: response.headers[mcp.HEADER_SESSION]}

    requests = {
        "completion/complete": {
            "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
            "argument": {"name": "arg1", "value": "x"},
        },
        "resources/subscribe": {"uri": "test://watched-resource"},
    }
    async with gateway_factory(guarded_yaml(fixtures)) as gw, aiohttp.ClientSession() as http:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        answers: dict[tuple[str, str], dict[str, Any]] = {}
        for who, key in (("alice", KEY_A), ("bob", KEY_B)):
            headers = await legacy_session(http, url, key)
            for method, params in requests.items():
                body = {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}
                async with http.post(url, json=body, headers=headers) as response:
                    answers[who, method] = await response.json()
    assert answers["alice", "completion/complete"]["result"]["completion"]["values"] == ["x-1", "x-2"]
    assert answers["alice", "resources/subscribe"]["result"] == {}
    # Bob may use one tool only: the prompt and the resource are unknown names to him.
    assert answers["bob", "completion/complete"]["error"]["code"] == mcp.INVALID_PARAMS
    assert answers["bob", "resources/subscribe"]["error"]["code"] == mcp.INVALID_PARAMS


@pytest.mark.parametrize(("mode", "declined"), [("legacy", False), ("legacy", True), (mcp.MODERN, False)])
async def test_a_tools_request_for_input_reaches_the_client_and_its_answer_the_tool(
    gateway_factory: GatewayFactory, fixtures: ToolServer, mode: str, declined: bool
) -> None:
    """The 2026-07-28 upstream asks by an input_required result. A 2025-11-25 client knows only
    server-to-client requests: the gateway sends it each one on the call's stream and retries with its
    answers. A 2026-07-28 client gets the result untouched (its capabilities reached the upstream) and retries."""
    asked: list[Any] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="forty-two"), model="test-model"
        )

    async def elicit(context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        if declined:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.org"})

    async with gateway_factory(gateway_yaml(fixtures, "modern", prefix="fx")) as gw:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        async with Client(url, mode=mode, sampling_callback=sample, elicitation_callback=elicit) as client:  # type: ignore[arg-type]
            sampled = await client.call_tool("fx_test_sampling", {"prompt": "the answer?"})
            elicited = await client.call_tool("fx_test_elicitation", {"message": "who are you?"})
    assert text_of(sampled) == "LLM response: forty-two"
    first = asked[0]
    assert isinstance(first, CreateMessageRequestParams)
    assert first.max_tokens == 100 and first.messages[0].content == TextContent(type="text", text="the answer?")
    assert isinstance(asked[1], ElicitRequestFormParams) and asked[1].message == "who are you?"
    if declined:
        assert text_of(elicited) == "User response: action=decline, content=null"
    else:
        assert (
            text_of(elicited) == 'User response: action=accept, content={"username": "ada", "email": "ada@example.org"}'
        )


@pytest.mark.parametrize("mode", ["legacy", mcp.MODERN])
async def test_a_2025_11_25_upstreams_request_mid_call_is_relayed_to_the_client(
    gateway_factory: GatewayFactory, fixtures: ToolServer, mode: str
) -> None:
    """A 2025-11-25 upstream asks by a server-to-client request on the call's stream. A 2025-11-25
    client that declared the capability gets it on its own call's stream (an id of the gateway's) and
    its answer goes back to the upstream; a 2026-07-28 client cannot be asked so: the upstream is refused."""
    asked: list[Any] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="seven"), model="m")

    async def elicit(context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.org"})

    async with gateway_factory(gateway_yaml(fixtures, mcp.LEGACY)) as gw:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        async with Client(url, mode=mode, sampling_callback=sample, elicitation_callback=elicit) as client:  # type: ignore[arg-type]
            if mode == mcp.MODERN:
                # Never asked: the gateway refused the upstream's request, and the upstream failed the call with it.
                with pytest.raises(MCPError, match="cannot be asked sampling/createMessage"):
                    await client.call_tool("test_sampling", {"prompt": "how many?"})
                assert asked == []
                return
            sampled = await client.call_tool("test_sampling", {"prompt": "how many?"})
            elicited = await client.call_tool("test_elicitation", {"message": "who?"})
    assert text_of(sampled) == "LLM response: seven"
    assert text_of(elicited) == 'User response: action=accept, content={"username": "ada", "email": "ada@example.org"}'
    first = asked[0]
    assert isinstance(first, CreateMessageRequestParams)
    assert first.messages[0].content == TextContent(type="text", text="how many?")
    assert isinstance(asked[1], ElicitRequestFormParams) and asked[1].message == "who?"


@DEPRECATED
async def test_a_session_that_ends_drops_its_subscriptions_upstream(
    gateway_factory: GatewayFactory, fixtures: ToolServer
) -> None:
    async with gateway_factory(gateway_yaml(fixtures, mcp.LEGACY)) as gw:
        url = f"http://{gw.addresses.http}/mcp/conformance"
        async with Client(url, mode="legacy") as watcher:
            await watcher.subscribe_resource("test://watched-resource")
        # The watcher's client ended its session (DELETE) without unsubscribing.
        async with Client(url, mode="legacy") as other:
            state = json.loads(text_of(await other.call_tool("session_state", {})))
    assert state["subscribed"] == []
