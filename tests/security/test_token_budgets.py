"""Token budgets per identity: what agents report using is charged to their caller, and a spent budget refuses."""

from __future__ import annotations

import hashlib

from aiohttp import web

from gateway.config.schema import TokenBudget
from gateway.model import ResourceExhausted
from gateway.security.budgets import TokenBudgets
from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def costly_agent(seen: list[str]) -> web.Application:
    """The generic HTTP agent protocol, reporting 40 input and 60 output tokens per answer."""

    async def invoke(request: web.Request) -> web.Response:
        seen.append(request.headers.get("x-user-id", ""))
        reply = {"role": "ROLE_AGENT", "parts": [{"text": "done"}]}
        return web.json_response({"messages": [reply], "usage": {"input_tokens": 40, "output_tokens": 60}})

    app = web.Application()
    app.router.add_post("/invoke", invoke)
    return app


async def test_a_spent_budget_refuses_until_its_window_ends(gateway_factory: GatewayFactory, serve_app: Starter) -> None:
    seen: list[str] = []
    url = await serve_app(costly_agent(seen))
    text = f"""
listeners:
  http: {{address: '127.0.0.1:0', auth: [api_key]}}
  grpc: {{address: '127.0.0.1:0', auth: [api_key]}}
agents:
  costly: {{kind: http, endpoint: "{url}"}}
security:
  api_keys:
    - {{identity: alice, sha256: {sha(ALICE)}}}
    - {{identity: bob, sha256: {sha(BOB)}}}
  authorization:
    - {{identities: ['*'], agents: ['*']}}
  token_budgets:
    - {{identities: [alice], tokens: 150, window: 1h}}
"""
    async with gateway_factory(text) as gw:
        invoke = f"http://{gw.addresses.http}/v1/agents/costly/invoke"
        for _ in range(2):  # 100 tokens, then 200: the budget is judged before a call, charged after it
            status, _, _ = await post(invoke, body(), {"x-api-key": ALICE})
            assert status == 200
        status, headers, answer = await post(invoke, body(), {"x-api-key": ALICE})
        assert status == 429
        assert answer["error"]["code"] == "RESOURCE_EXHAUSTED"
        assert "token budget of 150" in answer["error"]["message"]
        assert 3500 < int(headers["retry-after"]) <= 3600
        assert len(seen) == 2  # the refused call never reached the agent
        # Another identity has no budget: unaffected.
        status, _, _ = await post(invoke, body(), {"x-api-key": BOB})
        assert status == 200 and len(seen) == 3


def test_windows_reset_and_every_matching_budget_applies() -> None:
    now = [0.0]
    budgets = TokenBudgets(
        [TokenBudget(identities=["team-*"], tokens=100, window=60), TokenBudget(identities=["*"], tokens=200)],
        clock=lambda: now[0],
    )
    budgets.check("team-a")
    budgets.spend("team-a", 120)
    try:
        budgets.check("team-a")
        raise AssertionError("a spent budget must refuse")
    except ResourceExhausted as exc:
        assert exc.retry_after == 60
    budgets.check("team-b")  # each identity its own window
    now[0] = 60.0
    budgets.check("team-a")  # a new window
    budgets.spend("team-a", 90)  # 90 of the new minute's 100, but 210 of the hour's 200
    try:
        budgets.check("team-a")
        raise AssertionError("the wider budget applies too")
    except ResourceExhausted as exc:
        assert "token budget of 200 per 3600s" in exc.message
