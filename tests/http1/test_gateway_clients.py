"""The gateway on either upstream client (``server.upstream_client``): the same faults give the
caller the same answer, through the typed invoke and the passthrough alike."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.helpers.fault_upstream import FaultUpstream, Reply, SeenRequest

TEXT = "z" * 5000
ANSWER = json.dumps({"messages": [{"role": "ROLE_AGENT", "parts": [{"text": TEXT}]}]}).encode()
CT = {"content-type": "application/json"}
FAULTS: dict[str, Reply] = {
    "honest": Reply(body=ANSWER, headers=CT),
    "chunked": Reply(body=ANSWER, headers=CT, chunked=True),
    "read until close": Reply(body=ANSWER, headers=CT, content_length="none"),
    "close mid-body": Reply(body=ANSWER, headers=CT, cut_after=1000),
    "length promises more": Reply(body=ANSWER, headers=CT, content_length=len(ANSWER) + 100),
    "length promises less": Reply(body=ANSWER, headers=CT, content_length=100, chunks="one"),
    "agent error": Reply(status=500, body=b"Traceback: boom", headers={"content-type": "text/plain"}),
    "stops after the head": Reply(body=ANSWER, headers=CT, hang_after_headers=True),
}


def config(url: str, client: str) -> str:
    return (
        f"agents:\n  agent: {{kind: http, endpoint: '{url}', options: {{invoke_path: /invoke}}}}\n"
        f"server: {{drain_timeout: 2s, upstream_client: {client}}}\n"
    )


async def outcomes(base: str, http: aiohttp.ClientSession) -> tuple[Any, Any]:
    """(the typed invoke's status and code or text, the passthrough's status and bytes or failure)."""
    headers = {"x-timeout-ms": "600"}
    body = {"messages": [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}]}
    async with http.post(f"{base}/v1/agents/agent/invoke", json=body, headers=headers) as response:
        answer = await response.json()
        typed = (response.status, answer["error"]["code"] if "error" in answer else answer["messages"][0]["parts"])
    try:
        async with http.post(f"{base}/v1/proxy/agent/invoke", json=body, headers=headers) as response:
            raw = await response.read()
            passed: Any = (response.status, raw)
            if response.headers.get("x-request-id") and b'"error"' in raw[:20]:
                passed = (response.status, json.loads(raw)["error"]["code"])  # the gateway's own answer
    except aiohttp.ClientPayloadError:
        passed = "cut for the caller"
    return typed, passed


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_both_clients_give_the_caller_the_same_answer(gateway_factory: GatewayFactory, fault: str) -> None:
    seen: list[SeenRequest] = []

    def answer(request: SeenRequest) -> Reply:
        seen.append(request)
        return FAULTS[fault]

    results = {}
    async with FaultUpstream(answer) as upstream, aiohttp.ClientSession() as http:
        for client in ("lean", "aiohttp"):
            async with gateway_factory(config(upstream.url, client)) as gw:
                assert (gw.upstream_client is not None) == (client == "lean")
                results[client] = await outcomes(f"http://{gw.addresses.http}", http)
    assert results["lean"] == results["aiohttp"]
    if fault == "honest":
        assert results["lean"][0] == (200, [{"text": TEXT}])
        assert results["lean"][1] == (200, ANSWER)
    # The typed invoke's request names its client; the passthrough's carries the caller's own.
    assert [r.headers.get("user-agent", "").split("/")[0] for r in seen] == [
        "agent-gateway",
        seen[1].headers.get("user-agent", "").split("/")[0],
        "Python",
        seen[3].headers.get("user-agent", "").split("/")[0],
    ]
    assert seen[1].headers.get("user-agent") == seen[3].headers.get("user-agent")
    assert seen[1].body == seen[3].body and seen[1].target == seen[3].target == "/invoke"
