"""Bounded fuzzing of the A2A front (a fixed seed and case budget): mutated JSON-RPC envelopes,
params and REST bodies never get a 5xx, a traceback, or a hang."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp

from tests.conftest import GatewayFactory

SEED, CASES = 20261202, 150
METHODS = ["SendMessage", "GetTask", "ListTasks", "CancelTask", "SubscribeToTask", "SendStreamingMessage",
           "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "message/send", "tasks/get",
           "GetExtendedAgentCard", "nope"]
FIELDS = ["message", "id", "historyLength", "pageSize", "pageToken", "status", "contextId", "taskId", "parts",
          "role", "messageId", "configuration", "returnImmediately", "statusTimestampAfter", "url", "text", ""]


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 101, 2**63, 1.5, -0.0])
    if kind == 3:
        return rng.choice(["", "x", "TASK_STATE_WORKING", "ROLE_USER", "\ud800", "a" * 300, "\x00\r\n", "-1"])
    if kind == 4:
        return rng.choice(["2026-01-01T00:00:00Z", "not-a-time", "user"])
    if kind == 5:
        return "".join(rng.choice("ab{}[]\":,\\") for _ in range(rng.randrange(8)))
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randrange(5))}


def envelope(rng: random.Random) -> Any:
    body: dict[str, Any] = {"jsonrpc": rng.choice(["2.0", "2.0", "1.0", 2]), "id": rng.choice([1, "a", None, [], 1.5])}
    body["method"] = rng.choice(METHODS)
    body["params"] = value(rng) if rng.random() < 0.3 else {k: value(rng) for k in rng.sample(FIELDS, 3)}
    if rng.random() < 0.2 and isinstance(body["params"], dict):
        body["params"]["message"] = {"role": "ROLE_USER", "messageId": "m", "parts": value(rng)}
    return body if rng.random() < 0.9 else value(rng)


async def test_no_input_breaks_the_a2a_front(gateway_factory: GatewayFactory, echo_url: str) -> None:
    rng = random.Random(SEED)
    yaml = f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
    timeout = aiohttp.ClientTimeout(total=10)
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession(timeout=timeout) as session:
        base = f"http://{gw.addresses.http}/a2a/echo"
        for case in range(CASES):
            body = json.dumps(envelope(rng)).encode()
            async with session.post(base, data=body, headers={"a2a-version": "1.0"}) as response:
                text = await response.text()
                assert response.status < 500 and "Traceback" not in text, (SEED, case, body[:300], text[:300])
            rest = rng.choice(["/rest/message:send", "/rest/message:stream", "/rest/tasks", "/rest/tasks/x:cancel"])
            method = "GET" if rest == "/rest/tasks" else "POST"
            query = {"pageSize": str(value(rng))} if method == "GET" else None
            async with session.request(method, base + rest, data=body, params=query) as response:
                text = await response.text()
                assert response.status < 500 and "Traceback" not in text, (SEED, case, rest, body[:300], text[:300])
